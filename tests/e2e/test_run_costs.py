"""A whole local run against the loopback Anthropic API: the tasks share one cached prompt
prefix, and a batch run goes through Message Batches at the batch discount.

The fake's prompt cache follows Anthropic's guide (prefix hashes up to ``cache_control``
breakpoints); the costs asserted are the run's own accounting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import orchestrator.providers as providers
from orchestrator.config import default_config_dir
from orchestrator.contracts import TaskResult, Usage
from orchestrator.coordinator import Coordinator, RunOutcome, cli_request
from orchestrator.providers.ratelimit import reset_limits
from tests.fakes.anthropic_fake import AnthropicFake, call, tool_calls

KEY_ENV = "FAKE_RUN_ANTHROPIC_KEY"
TOPICS = ["lap timing", "tyre wear", "weather", "pit stops"]


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(KEY_ENV, "sk-ant-run-costs-0000000000000000")
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "off")
    reset_limits()
    yield
    reset_limits()


def layer(folder: Path, fake: AnthropicFake) -> Path:
    """claude (bundled model and prices) on the fake; four research tasks, one at a time."""
    folder.mkdir()
    bundled = yaml.safe_load((default_config_dir() / "agents.yml").read_text())["agents"]["claude"]
    prices = {k: v for k, v in bundled.items() if "per_mtok" in k or k == "batch_discount"}
    spec = fake.spec(key_env=KEY_ENV, model=bundled["model"], timeout_s=10.0, **prices)
    agents = {"claude": spec.model_dump(exclude_defaults=True, mode="json")}
    (folder / "agents.yml").write_text(yaml.safe_dump({"agents": agents}))
    routes = {"research": {"primary": "claude", "changes": False}}
    (folder / "routing_rules.yml").write_text(yaml.safe_dump({"routes": routes}))
    stage = {"id": "survey", "type": "research", "for_each": "item", "title": "Survey {item}",
             "instructions": "Summarise how the code handles {item}."}  # fmt: skip
    (folder / "workflows.yml").write_text(
        yaml.safe_dump({"workflows": {"survey": {"stages": [stage]}}})
    )
    settings = {
        "batch": {"window_s": 0.01, "poll_s": 0.01},
        "planning": {"max_parallel": 1, "default_workflow": "survey"},
    }
    (folder / "settings.yml").write_text(yaml.safe_dump(settings))
    return folder


def survey(
    repo: Path, tmp_path: Path, *, mode: str | None = None
) -> tuple[RunOutcome, AnthropicFake]:
    with AnthropicFake(batch_polls=1) as fake:
        turns = [tool_calls(call("list_files", path=".")), tool_calls(call("finish", summary="ok"))]
        fake.script(*(turns * len(TOPICS)))
        config = layer(tmp_path / f"cfg-{mode}", fake)
        request = cli_request("Survey the code.", workflow="survey", items=TOPICS, source="api")
        request = request.model_copy(update={"mode": mode})
        coordinator = Coordinator(repo, config=config, out=tmp_path / f"out-{mode}")
        outcome = asyncio.run(coordinator.run(request))
    assert fake.violations == []
    return outcome, fake


def usage_of(results: dict[str, TaskResult]) -> Usage:
    return sum((r.usage for r in results.values()), Usage())


def test_every_task_reads_the_shared_prefix_the_first_one_wrote(repo: Path, tmp_path: Path) -> None:
    outcome, fake = survey(repo, tmp_path)
    assert {r.status for r in outcome.results.values()} == {"succeeded"}
    bodies = fake.bodies
    # The system prompt (our rules) and the shared context (the request and the repository
    # map, fenced as data) are byte-identical for every task; the task's own text follows.
    prefixes = {json.dumps([body["system"], body["messages"][0]["content"][0]]) for body in bodies}
    assert len(prefixes) == 1
    system, context = bodies[0]["system"][0]["text"], bodies[0]["messages"][0]["content"][0]
    assert "Survey the code." in context["text"] and "Survey the code." not in system
    assert context["cache_control"] == {"type": "ephemeral"}  # the end of the shared prefix
    assert "Survey tyre wear" not in context["text"]
    # … so the first turn of tasks 2–4 reads it from the cache the first task wrote.
    first_turns = fake.cache.calls[0::2]
    assert first_turns[0].cache_read_input_tokens == 0
    assert first_turns[0].cache_creation_input_tokens > 0
    # (The first task's write also covers its own first message: the rolling breakpoint.)
    shared = {later.cache_read_input_tokens for later in first_turns[1:]}
    assert len(shared) == 1 and 512 < shared.pop() < first_turns[0].cache_creation_input_tokens
    for later in first_turns[1:]:  # only the task's own message is written
        assert later.cache_creation_input_tokens < later.cache_read_input_tokens / 5
    usage = usage_of(outcome.results)
    assert usage.cached_input_tokens > usage.input_tokens / 2
    assert usage.cache_write_input_tokens > 0


def test_a_batch_run_costs_the_batch_discount_of_the_same_run(repo: Path, tmp_path: Path) -> None:
    interactive, _ = survey(repo, tmp_path, mode="interactive")
    batched, fake = survey(repo, tmp_path, mode="batch")
    assert batched.plan.batch.enabled and batched.plan.batch.reason == "api asked for batch"
    assert fake.bodies == [] and len(fake.batch_bodies) == 2 * len(TOPICS)  # one turn per batch
    same = usage_of(interactive.results)
    usage = usage_of(batched.results)
    assert usage.batched_requests == 2 * len(TOPICS)
    assert (usage.input_tokens, usage.cached_input_tokens) == (
        same.input_tokens,
        same.cached_input_tokens,
    )
    cost = sum(r.cost_usd or 0 for r in batched.results.values())
    full = sum(r.cost_usd or 0 for r in interactive.results.values())
    assert cost == pytest.approx(full * 0.5)
    assert batched.aggregate is not None
    assert batched.aggregate.totals.cost_usd == pytest.approx(cost)
