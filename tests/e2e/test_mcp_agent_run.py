"""``provider: mcp`` agents end to end: ``orchestrator run`` with agents that are MCP servers.

The agents are the real stdio server in tests/fakes/mcp_task_server.py; they go through the same
loop, sandbox, budgets and result contract as model agents.
"""

from __future__ import annotations

import functools
import re
import shutil
import sys
from pathlib import Path

import pytest

import orchestrator.providers as providers
import orchestrator.task_runner as task_runner
from orchestrator.cli import main
from orchestrator.config import default_config_dir
from orchestrator.contracts import Aggregate, TaskResult
from orchestrator.fileio import read_model
from orchestrator.providers.retry import RetryPolicy
from tests.conftest import git

FAKE_SERVER = Path(__file__).resolve().parents[1] / "fakes" / "mcp_task_server.py"
AGENTS = ("codex", "claude", "gemini", "deepseek", "copilot")


def make_mcp_config(folder: Path, tools: dict[str, str], *, timeout_s: float = 20.0) -> Path:
    """The default config set with every agent an MCP agent calling ``tools[agent]`` of the fake
    server (``implement`` when not given); code tasks go to codex, then claude only."""
    shutil.copytree(default_config_dir(), folder)
    lines = ["agents:"]
    for name in AGENTS:
        tool = tools.get(name, "implement")
        lines += [
            f"  {name}:",
            "    provider: mcp",
            f"    model: fake-{tool}",
            f"    command: [{sys.executable!r}, {str(FAKE_SERVER)!r}]",
            f"    tool: {tool}",
            f"    timeout_s: {timeout_s if tool != 'hang' else 1.0}",
            "    env: {FAKE_MODE: e2e}",
            "    input_per_mtok: 0",
            "    output_per_mtok: 0",
        ]
    (folder / "agents.yml").write_text("\n".join(lines) + "\n")
    routing = folder / "routing_rules.yml"
    routing.write_text(
        re.sub(
            r"^  code_generation:.*$",
            "  code_generation: {primary: codex, backup: [claude], changes: true}",
            routing.read_text(),
            flags=re.MULTILINE,
        )
    )
    return folder


@pytest.fixture(autouse=True)
def _mcp_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        providers.PROVIDERS, "mcp", "orchestrator.providers.mcp_agent:McpAgentModel"
    )
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "off")


def run(repo: Path, config: Path, out: Path, *items: str) -> int:
    args = ["run", "--workflow", "parallel_feature_implementation"]
    for item in items:
        args += ["--task", item]
    return main([*args, "--repo", str(repo), "--config", str(config), "--out", str(out)])


def test_an_mcp_agent_completes_a_task(repo: Path, tmp_path: Path) -> None:
    """The issue's check: an ``mcp`` agent completes a task."""
    config = make_mcp_config(tmp_path / "config", {})
    out = tmp_path / "out"
    assert run(repo, config, out, "alpha feature", "beta feature") == 0

    for task_id in ("alpha-feature", "beta-feature"):
        folder = out / "tasks" / task_id
        result = read_model(folder / "result.json", TaskResult)
        assert result.status == "succeeded", result.error
        assert result.agent == "codex" and result.attempts[0].provider == "mcp"
        assert result.summary == f"implemented {task_id} (Implement {task_id.replace('-', ' ')})"
        assert result.files_changed == [f"generated/{task_id}.py"]
        assert [(c.path, c.line) for c in result.review_comments] == [
            (f"generated/{task_id}.py", 3)
        ]
        assert result.usage.total == 0 and result.cost_usd == 0.0
        assert result.turns == 2
        patch = (folder / "changes.patch").read_text()
        assert f"+++ b/generated/{task_id}.py" in patch and f'+TASK_ID = "{task_id}"' in patch
        transcript = (folder / "transcript.jsonl").read_text()
        assert '"name": "write_file"' in transcript and '"name": "finish"' in transcript

    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded" and aggregate.branch
    shown = git(repo, "show", f"{aggregate.branch}:generated/alpha-feature.py")
    assert 'TASK_ID = "alpha-feature"' in shown
    assert git(repo, "status", "--porcelain") == ""


def test_a_path_traversal_from_an_mcp_agent_is_refused(repo: Path, tmp_path: Path) -> None:
    config = make_mcp_config(tmp_path / "config", {"codex": "escape"})
    out = tmp_path / "out"
    assert run(repo, config, out, "alpha") == 0

    result = read_model(out / "tasks" / "alpha" / "result.json", TaskResult)
    first, second = result.attempts
    assert first.agent == "codex" and first.status == "failed"
    assert first.error is not None
    assert "sandbox refused 1 change from MCP tool escape" in first.error
    assert "../outside.txt" in first.error
    # The backup agent did the task; nothing of the refused attempt survives.
    assert second.agent == "claude" and result.status == "succeeded"
    assert result.files_changed == ["generated/alpha.py"]
    assert not (repo.parent / "outside.txt").exists()
    assert not (tmp_path / "outside.txt").exists()
    assert "inside.txt" not in (out / "tasks" / "alpha" / "changes.patch").read_text()


def test_a_hanging_mcp_tool_times_out(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_wait(seconds: float) -> None:
        return None

    # One retry (not the default four) keeps the test short; the timeout is 1 s.
    monkeypatch.setattr(
        task_runner,
        "build_model",
        functools.partial(providers.build_model, retry=RetryPolicy(max_retries=1), sleep=no_wait),
    )
    config = make_mcp_config(tmp_path / "config", {"codex": "hang", "claude": "hang"})
    out = tmp_path / "out"
    assert run(repo, config, out, "alpha") == 1

    result = read_model(out / "tasks" / "alpha" / "result.json", TaskResult)
    assert result.status == "failed"
    assert [a.agent for a in result.attempts] == ["codex", "claude"]
    for attempt in result.attempts:
        assert attempt.status == "failed" and attempt.error is not None
        assert "MCP tool hang" in attempt.error and "did not answer within 1s" in attempt.error
        assert "gave up after 1 retry" in attempt.error
        assert len(attempt.retries) == 1
    assert result.error is not None and result.error.startswith("all 2 agents failed")
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "failed"
