"""The agent loop on the Responses API: reasoning items survive the loop's transcript, so a
reasoning model's multi-turn tool use works statelessly end to end."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

import orchestrator.providers as providers
from orchestrator.agent.loop import run_agent
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import Limits
from orchestrator.providers import build_model
from tests.conftest import git
from tests.fakes.openai_fake import FAKE_KEY_ENV, OpenAIFake, write_file_then_finish


@pytest.fixture(autouse=True)
def allow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to model requests (only the loopback fake answers) and set the fake's key."""
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(FAKE_KEY_ENV, "sk-test")


def test_a_reasoning_model_writes_a_file_through_the_responses_api(repo: Path) -> None:
    steps = [
        replace(step, reasoning=f"step {n}: decide the next tool")
        for n, step in enumerate(write_file_then_finish("hello.txt", "hello\n", "wrote it"))
    ]
    box = ToolBox(Workspace.open(repo, git(repo, "rev-parse", "HEAD"), Limits()), task_id="t1")
    with OpenAIFake(steps) as fake:
        model = build_model("codex", fake.spec(model="gpt-5-codex"), "t1")
        outcome = asyncio.run(
            run_agent(
                model,
                box,
                system="You are a careful engineer.",
                prompt="Add hello.txt.",
                limits=Limits(max_turns=10),
                transcript=Transcript(),
            )
        )
        bodies = fake.response_bodies()
    assert outcome.status == "succeeded", outcome
    assert box.workspace.read_text("hello.txt") == "hello\n"
    assert not fake.bodies()  # nothing went to Chat Completions
    # The fake refuses a function_call replayed without its reasoning item, so getting here
    # means the loop kept provider_data; the last request carries both earlier turns' items.
    kinds = [item["type"] for item in bodies[2]["input"]]
    assert kinds.count("reasoning") == 2 and kinds.count("function_call_output") == 2
    assert all(b["instructions"] == bodies[0]["instructions"] for b in bodies)
    assert outcome.usage.input_tokens > 0
