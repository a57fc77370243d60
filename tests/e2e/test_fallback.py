"""Provider faults through the real CLI, task runner and loop: retries, fallbacks, budgets.

Every agent is a replay agent with its own script, so one agent can fail while its backup
succeeds. Waits go through an injected sleep that records them and returns at once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.cli import main
from orchestrator.config import default_config_dir
from orchestrator.contracts import AgentSpec, Aggregate, Plan, TaskResult, Usage
from orchestrator.fileio import read_model
from orchestrator.providers import retry
from orchestrator.providers.base import Message, ModelResponse, ModelSettings, ToolCall, ToolSpec
from orchestrator.providers.ratelimit import reset_limits
from tests.conftest import git
from tests.e2e.conftest import AGENT_NAMES, write_file_turns

TASK = "pace-metrics"  # `--task "pace metrics"`: code_generation, chain codex → claude → deepseek
GOOD = write_file_turns("src/pace.py", "def pace(t):\n    return 1000 / t\n", "pace added")


def fault(message: str, retryable: bool, retry_after: float | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "retryable": retryable}
    if retry_after is not None:
        error["retry_after"] = retry_after
    return {"error": error}


RATE_LIMITED = fault("429 Too Many Requests", True, 3)
OVERLOADED = fault("529 overloaded_error", True)
SERVER_ERROR = fault("500 internal server error", True)
UNAUTHORIZED = fault("401 invalid x-api-key", False)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    reset_limits()
    monkeypatch.delenv("ORCHESTRATOR_CACHE_DIR", raising=False)
    yield
    reset_limits()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every retry/rate-limit wait, recorded instead of slept."""
    recorded: list[float] = []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(retry, "default_sleep", sleep)
    return recorded


def config_with(
    folder: Path,
    scripts: dict[str, list[dict[str, Any]]],
    *,
    extra: dict[str, str] | None = None,
    limits: str = "",
) -> Path:
    """The default config set with one replay script per agent (agents not named fail)."""
    shutil.copytree(default_config_dir(), folder)
    lines = ["agents:"]
    for name in AGENT_NAMES:
        turns = scripts.get(name, [fault(f"{name} is not scripted", False)])
        (folder / f"{name}.json").write_text(json.dumps({"tasks": {"*": turns}}))
        lines += [
            f"  {name}:",
            "    provider: replay",
            f"    model: {name}-model",
            f"    script: {name}.json",
            "    input_per_mtok: 2.0",
            "    output_per_mtok: 10.0",
        ]
        lines += [f"    {line}" for line in (extra or {}).get(name, "").splitlines()]
    (folder / "agents.yml").write_text("\n".join(lines) + "\n")
    if limits:
        with (folder / "settings.yml").open("a") as handle:
            handle.write(limits)
    return folder


def run(repo: Path, config: Path, out: Path, *items: str) -> int:
    args = ["run", "--workflow", "parallel_feature_implementation"]
    for item in items or ("pace metrics",):
        args += ["--task", item]
    return main([*args, "--repo", str(repo), "--config", str(config), "--out", str(out)])


def result_of(out: Path, task_id: str = TASK) -> TaskResult:
    return read_model(out / "tasks" / task_id / "result.json", TaskResult)


def test_retries_then_success_are_recorded(repo: Path, tmp_path: Path, waits: list[float]) -> None:
    capped = fault("429 rate limit", True, 120)
    config = config_with(tmp_path / "cfg", {"codex": [RATE_LIMITED, OVERLOADED, capped, *GOOD]})
    out = tmp_path / "out"
    assert run(repo, config, out) == 0
    result = result_of(out)
    assert result.status == "succeeded" and result.agent == "codex"
    [attempt] = result.attempts
    assert [r.error for r in attempt.retries] == [
        "429 Too Many Requests",
        "529 overloaded_error",
        "429 rate limit",
    ]
    # Retry-After honoured (3 s), backoff for the second retry (2 s, up to 25 % jitter),
    # Retry-After 120 capped at 60 s.
    assert waits[0] == 3.0 and 1.5 <= waits[1] <= 2.0 and waits[2] == 60.0
    assert [r.wait_s for r in attempt.retries] == waits
    assert attempt.wait_s == pytest.approx(sum(waits), abs=1e-3)
    assert attempt.calls == 3 and attempt.turns == 3  # retries happen below the loop
    transcript = (out / "tasks" / TASK / "transcript.jsonl").read_text()
    assert transcript.count('"retry"') == 3
    summary = (out / "summary.md").read_text()
    assert "### Attempts" in summary
    assert f"`{TASK}`: codex ✔ (3 retries, waited 1m 0" in summary


def test_exhausted_retries_fall_back_to_the_backup(
    repo: Path, tmp_path: Path, waits: list[float]
) -> None:
    codex = [fault("429 Too Many Requests", True, 1)] * 5
    config = config_with(tmp_path / "cfg", {"codex": codex, "claude": GOOD})
    out = tmp_path / "out"
    assert run(repo, config, out) == 0
    result = result_of(out)
    assert result.status == "succeeded" and result.agent == "claude" and result.error is None
    codex_try, claude_try = result.attempts
    assert (codex_try.agent, codex_try.status) == ("codex", "failed")
    assert codex_try.error == "codex: 429 Too Many Requests (gave up after 4 retries)"
    assert [r.wait_s for r in codex_try.retries] == [1.0] * 4 and codex_try.wait_s == 4.0
    assert (claude_try.agent, claude_try.status, claude_try.retries) == ("claude", "succeeded", [])
    assert waits == [1.0] * 4
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded" and aggregate.tasks[0].agent == "claude"
    summary = (out / "summary.md").read_text()
    assert (
        f"`{TASK}`: codex ✘ 429 Too Many Requests (4 retries, waited 4.0s) → claude ✔"
    ) in summary
    assert "2 (fallback → claude)" in summary


def test_non_retryable_error_falls_back_at_once(
    repo: Path, tmp_path: Path, waits: list[float]
) -> None:
    config = config_with(tmp_path / "cfg", {"codex": [UNAUTHORIZED, *GOOD], "claude": GOOD})
    out = tmp_path / "out"
    assert run(repo, config, out) == 0
    result = result_of(out)
    codex_try, claude_try = result.attempts
    assert codex_try.error == "codex: 401 invalid x-api-key"
    assert codex_try.retries == [] and codex_try.calls == 1 and codex_try.wait_s == 0.0
    assert claude_try.status == "succeeded" and waits == []


def test_every_agent_failing_fails_the_task_and_the_run(
    repo: Path, tmp_path: Path, waits: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with(
        tmp_path / "cfg",
        {
            "codex": [UNAUTHORIZED],
            "claude": [SERVER_ERROR] * 5,
            # deepseek: finishes without changing anything
            "deepseek": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "meh"}}]}],
        },
    )
    out = tmp_path / "out"
    assert run(repo, config, out) == 1
    result = result_of(out)
    assert result.status == "failed"
    assert [(a.agent, a.status) for a in result.attempts] == [
        ("codex", "failed"),
        ("claude", "failed"),
        ("deepseek", "failed"),
    ]
    assert result.error == (
        "all 3 agents failed: codex: 401 invalid x-api-key; "
        "claude: 500 internal server error (gave up after 4 retries); "
        "deepseek: code_generation task finished without changing any file"
    )
    # only claude's failures were retried: backoff 1, 2, 4, 8 s, each up to 25 % shorter
    assert len(waits) == 4
    assert all(0.75 * b <= w <= b for w, b in zip(waits, [1.0, 2.0, 4.0, 8.0], strict=True))
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "failed"
    assert "all 3 agents failed" in (aggregate.tasks[0].error or "")
    assert (out / "tasks" / TASK / "changes.patch").read_text() == ""
    summary = (out / "summary.md").read_text()
    assert "codex ✘ 401 invalid x-api-key → claude ✘" in summary
    assert "→ deepseek ✘" in summary


def test_budget_exceeded_keeps_and_applies_partial_work(
    repo: Path, tmp_path: Path, waits: list[float]
) -> None:
    turns = [
        {
            "tool_calls": [
                {"name": "write_file", "arguments": {"path": "half.py", "content": "H\n"}}
            ]
        },
        {"tool_calls": [{"name": "list_files", "arguments": {"path": "."}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "never reached"}}]},
    ]
    config = config_with(
        tmp_path / "cfg", {"codex": turns, "claude": GOOD}, limits="\nlimits:\n  max_turns: 2\n"
    )
    out = tmp_path / "out"
    code = run(repo, config, out)
    result = result_of(out)
    assert result.status == "budget_exceeded" and result.agent == "codex"
    assert len(result.attempts) == 1  # over budget is kept work, not a reason to fall back
    assert "max_turns budget reached" in (result.error or "")
    assert "half.py" in (out / "tasks" / TASK / "changes.patch").read_text()
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.tasks[0].applied and aggregate.branch
    assert git(repo, "show", f"{aggregate.branch}:half.py") == "H"
    assert aggregate.status == "partial" and code == 1


def test_planner_caps_max_parallel_by_the_primaries_concurrency(repo: Path, tmp_path: Path) -> None:
    # All replay agents share one endpoint; the smallest limit among them applies.
    config = config_with(
        tmp_path / "cfg",
        {"codex": GOOD},
        extra={"codex": "max_concurrency: 3", "claude": "max_concurrency: 2"},
    )
    items = ["a one", "b two", "c three"]

    def planned(out: Path, *items: str) -> Plan:
        args = ["plan", "--workflow", "parallel_feature_implementation"]
        for item in items:
            args += ["--task", item]
        assert main([*args, "--repo", str(repo), "--config", str(config), "--out", str(out)]) == 0
        return read_model(out / "plan.json", Plan)

    assert planned(tmp_path / "three", *items).max_parallel == 2
    # two tasks fit in two slots: the configured 4 stands
    assert planned(tmp_path / "two", *items[:2]).max_parallel == 4
    uncapped = config_with(tmp_path / "cfg2", {"codex": GOOD})
    args = ["plan", "--task", "a", "--task", "b", "--task", "c", "--repo", str(repo)]
    assert main([*args, "--config", str(uncapped), "--out", str(tmp_path / "u")]) == 0
    assert read_model(tmp_path / "u" / "plan.json", Plan).max_parallel == 4


class InFlight:
    """A network-like provider that measures how many of its calls are in flight at once."""

    current = 0
    peak = 0

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent, self.spec, self.purpose = agent, spec, purpose

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        cls = type(self)
        cls.current += 1
        cls.peak = max(cls.peak, cls.current)
        # Stay in flight until the other tasks could have joined (tasks open their trees in
        # worker threads, so they reach the model at slightly different times): as long as
        # fewer than three calls are in flight, wait up to 0.3 s for more.
        deadline = time.monotonic() + 0.3
        while cls.current < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            cls.peak = max(cls.peak, cls.current)
        cls.current -= 1
        done = sum(1 for m in messages if m.role == "assistant")
        path = f"{self.purpose}.py"
        step = [
            ToolCall(id="w", name="write_file", arguments={"path": path, "content": "X = 1\n"}),
            ToolCall(id="f", name="finish", arguments={"summary": "done"}),
        ][done]
        return ModelResponse(tool_calls=(step,), usage=Usage(input_tokens=10, output_tokens=1))


@pytest.mark.parametrize(("limit", "peak"), [(None, 3), (1, 1), (2, 2)])
def test_endpoint_concurrency_limit_holds_while_tasks_run(
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limit: int | None,
    peak: int,
) -> None:
    monkeypatch.setitem(providers.PROVIDERS, "inflight", "tests.e2e.test_fallback:InFlight")
    monkeypatch.setattr(InFlight, "current", 0)
    monkeypatch.setattr(InFlight, "peak", 0)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "off")
    config = config_with(
        tmp_path / "cfg", {}, extra={"codex": f"max_concurrency: {limit}" if limit else ""}
    )
    agents = (config / "agents.yml").read_text()
    (config / "agents.yml").write_text(
        agents.replace(
            "provider: replay\n    model: codex-model", "provider: inflight\n    model: i"
        )
    )
    args = ["run", "--task", "a one", "--task", "b two", "--task", "c three"]
    # --max-parallel 3: the executor runs all three tasks at once, whatever the plan says;
    # only the endpoint's gate stands between them and the provider.
    args += ["--max-parallel", "3", "--repo", str(repo), "--config", str(config)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert InFlight.peak == peak and InFlight.current == 0


class FileWriter:
    """A network-like provider (cacheable) with deterministic turns; counts real calls."""

    calls = 0

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent, self.spec = agent, spec

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        type(self).calls += 1
        done = sum(1 for m in messages if m.role == "assistant")
        usage = Usage(input_tokens=100, output_tokens=10)
        step = [
            ToolCall(id="w", name="write_file", arguments={"path": "c.py", "content": "C\n"}),
            ToolCall(id="f", name="finish", arguments={"summary": "wrote c.py"}),
        ][done]
        return ModelResponse(tool_calls=(step,), usage=usage)


def test_rerunning_a_task_is_served_from_the_cache(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(providers.PROVIDERS, "filewriter", "tests.e2e.test_fallback:FileWriter")
    monkeypatch.setattr(FileWriter, "calls", 0)
    config = config_with(tmp_path / "cfg", {})
    agents = (config / "agents.yml").read_text()
    (config / "agents.yml").write_text(
        agents.replace(
            "provider: replay\n    model: codex-model", "provider: filewriter\n    model: w"
        )
    )
    out = tmp_path / "plan"
    plan_args = ["plan", "--task", "pace metrics", "--repo", str(repo), "--config", str(config)]
    assert main([*plan_args, "--out", str(out)]) == 0
    task_args = ["task", "--plan", str(out / "plan.json"), "--task", TASK]
    assert main([*task_args, "--workspace", str(repo), "--out", str(tmp_path / "one")]) == 0
    first = result_of(tmp_path / "one")
    assert FileWriter.calls == 2 and first.attempts[0].cache_hits == 0
    assert first.usage.input_tokens == 200
    cache = repo / ".orchestrator" / "cache"
    assert len(list(cache.rglob("*.json"))) == 2
    assert (repo / ".orchestrator" / ".gitignore").read_text() == "*\n"
    assert git(repo, "status", "--porcelain") == ""  # the cache never dirties the checkout

    assert main([*task_args, "--workspace", str(repo), "--out", str(tmp_path / "two")]) == 0
    second = result_of(tmp_path / "two")
    assert FileWriter.calls == 2  # zero provider calls the second time
    assert second.status == "succeeded" and second.attempts[0].cache_hits == 2
    assert second.usage == Usage() and second.cost_usd == 0.0
    assert (tmp_path / "two" / "tasks" / TASK / "changes.patch").read_text() == (
        tmp_path / "one" / "tasks" / TASK / "changes.patch"
    ).read_text()

    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "off")
    assert main([*task_args, "--workspace", str(repo), "--out", str(tmp_path / "three")]) == 0
    assert FileWriter.calls == 4
