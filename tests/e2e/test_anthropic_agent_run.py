"""Two tasks of a run on a thinking Claude model: the agent loop keeps the thinking blocks, the
second task reads the first one's cached tools + system prompt, and the cost prices reads and
writes at their own rates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import orchestrator.providers as providers
from orchestrator.agent.loop import LoopOutcome, run_agent
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import Limits
from orchestrator.pricing import cost_usd
from orchestrator.providers.anthropic import AnthropicModel
from tests.conftest import git
from tests.fakes.anthropic_fake import AnthropicFake, Step, call, tool_calls, with_thinking

ENV = "FAKE_ANTHROPIC_E2E_KEY"
KEY = "sk-ant-e2e-test-000000000000000000"
#: The run's shared system prompt, well over Opus 5.5's 512-token cacheable minimum.
SYSTEM = "You are a careful engineer. Change only what the task asks for. " * 60
PRICES = {
    "input_per_mtok": 4.0,
    "cache_write_per_mtok": 5.0,
    "cached_input_per_mtok": 0.2,
    "output_per_mtok": 20.0,
}


def task_steps(path: str, content: str) -> list[Step]:
    """Think, write the file, think again, finish."""
    return [
        with_thinking(
            tool_calls(call("write_file", path=path, content=content)),
            f"Write {path}.",
            redacted=True,
        ),
        with_thinking(tool_calls(call("finish", summary=f"wrote {path}")), "Done."),
    ]


def run_task(model: AnthropicModel, repo: Path, task: str, prompt: str) -> LoopOutcome:
    workspace = Workspace.open(repo, git(repo, "rev-parse", "HEAD"), Limits())
    return asyncio.run(
        run_agent(
            model,
            ToolBox(workspace, task_id=task),
            system=SYSTEM,
            prompt=prompt,
            limits=Limits(max_turns=6),
            transcript=Transcript(),
            cache_key="run-1",
        )
    )


def test_two_thinking_tasks_share_the_cached_prefix(
    monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)
    with AnthropicFake(expected_key=KEY) as fake:
        fake.script(task_steps("A.md", "a\n"), task_steps("B.md", "b\n"))
        spec = fake.spec(key_env=ENV, model="claude-opus-5-5", **PRICES)
        first = run_task(AnthropicModel("claude", spec, "t1"), repo, "t1", "Write A.md.")
        second = run_task(AnthropicModel("claude", spec, "t2"), repo, "t2", "Write B.md.")
        bodies = fake.bodies
        calls = fake.cache.calls
    assert fake.violations == [], fake.violations
    for outcome in (first, second):
        assert outcome.status == "succeeded", outcome.error
        assert outcome.turns == 2

    # Each finishing turn sent its thinking blocks back first in the previous assistant turn.
    for body in (bodies[1], bodies[3]):
        kinds = [b["type"] for b in body["messages"][1]["content"]]
        assert kinds == ["thinking", "redacted_thinking", "tool_use"]

    # Task 1 wrote the prefix; task 2's first call read tools + system from it.
    assert calls[0].cache_read_input_tokens == 0 and calls[0].cache_creation_input_tokens > 0
    assert calls[2].cache_read_input_tokens > 512
    assert second.usage.cached_input_tokens > 0
    # Our usage counts every input token; the API's input_tokens is only the uncached rest.
    for outcome, pair in ((first, calls[:2]), (second, calls[2:])):
        assert outcome.usage.input_tokens == sum(c.total_input_tokens for c in pair)
        assert outcome.usage.cached_input_tokens == sum(c.cache_read_input_tokens for c in pair)
        assert outcome.usage.cache_write_input_tokens == sum(
            c.cache_creation_input_tokens for c in pair
        )
        assert outcome.cost_usd == pytest.approx(cost_usd(spec, outcome.usage))
    assert (second.cost_usd or 0) < (first.cost_usd or 0)
