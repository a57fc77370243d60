"""Vendor coding-agent CLIs as workers, end to end: the real programs, sandboxed, offline.

``orchestrator run`` plans three tasks and routes each to another CLI — Claude Code, Codex CLI,
Gemini CLI, at their pinned versions (``make agent-clis``) — each pointed at its own loopback
fake provider (tests/fakes/agent_cli_fake.py) by its documented base-URL setting. Each CLI runs
in the sandbox with the egress to its fake only; the fakes script the CLIs' own edit tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.agent_clis.catalog import CLIS
from orchestrator.agent_clis.install import DIR_ENV, find
from orchestrator.cli import main
from orchestrator.contracts import Aggregate, TaskResult
from orchestrator.fileio import read_model
from orchestrator.redact import reset_default_redactor
from tests.conftest import git
from tests.e2e.conftest import write_file_turns
from tests.fakes.agent_cli_fake import CODEX_MODEL, AgentCliFake, Create, Replace, Usage

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INSTALLS = ROOT / ".cache" / "agent-clis"
#: A value in the job's environment the CLIs must never see.
CANARY = "canary-d41d8cd98f00b204e980"
KEY = "sk-cli-test-key-0123456789abcdef"
#: task type → (its task id, the CLI agent that does it).
TASKS = {
    "code_generation": ("claude-task", "claude-code"),
    "documentation": ("codex-task", "codex-cli"),
    "test_generation": ("gemini-task", "gemini-cli"),
}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    missing = [
        cli.provider for cli in CLIS.values() if find(cli, environ={DIR_ENV: str(INSTALLS)}) is None
    ]
    assert not missing, f"vendor CLIs not installed: {missing}: run `make agent-clis`"
    monkeypatch.setenv(DIR_ENV, str(INSTALLS))
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "off")
    monkeypatch.setenv("CLI_TEST_KEY", KEY)
    monkeypatch.setenv("UNRELATED_CANARY_VALUE", CANARY)
    reset_default_redactor()
    yield
    reset_default_redactor()


def edits(name: str) -> list[Create | Replace]:
    return [
        Create(f"{name}.txt", f"draft of {name}\n"),
        Replace(f"{name}.txt", f"draft of {name}", f"{name} done"),
    ]


def config(folder: Path, fakes: dict[str, AgentCliFake], backup: str = "") -> Path:
    """A config layer: the three CLI agents (each on its fake), a replay agent ``loop`` of our
    own, and one workflow whose three tasks go one to each CLI."""
    folder.mkdir()
    lines = ["agents:"]
    for provider, fake in fakes.items():
        lines += [
            f"  {provider}:",
            f"    provider: {provider}",
            f"    model: {CODEX_MODEL if provider == 'codex-cli' else provider + '-model'}",
            "    api_key: ${CLI_TEST_KEY}",
            f"    base_url: {fake.base_url(provider)}",
            "    timeout_s: 60",
            "    input_per_mtok: 2.0",
            "    output_per_mtok: 10.0",
        ]
    script = folder / "loop.json"
    turns = {
        task_id: write_file_turns(f"{task_id}.loop", "by our loop\n", "loop did it")
        for task_id, _ in TASKS.values()
    }
    script.write_text(json.dumps({"tasks": turns}))
    lines += ["  loop:", "    provider: replay", "    model: loop", f"    script: {script}"]
    (folder / "agents.yml").write_text("\n".join(lines) + "\n")
    routes = ["routes:"]
    for kind, (_, provider) in TASKS.items():
        chain = f"[{backup}]" if backup else "[]"
        routes.append(f"  {kind}: {{primary: {provider}, backup: {chain}, changes: true}}")
    (folder / "routing_rules.yml").write_text("\n".join(routes) + "\n")
    stages = ["workflows:", "  three_clis:", "    description: one task per CLI", "    stages:"]
    for kind, (task_id, _) in TASKS.items():
        stages += [
            f"      - id: {task_id}",
            f"        type: {kind}",
            f"        title: Write {task_id}.txt",
            f"        instructions: Create {task_id}.txt and finish it.",
        ]
    (folder / "workflows.yml").write_text("\n".join(stages) + "\n")
    # The three files make a complete set (it replaces the defaults), so it names its default.
    (folder / "settings.yml").write_text(
        "planning:\n  default_workflow: three_clis\n  planner_agent: loop\n"
    )
    return folder


def run(repo: Path, folder: Path, out: Path) -> int:
    return main(
        [
            "run",
            "--workflow",
            "three_clis",
            "--repo",
            str(repo),
            "--config",
            str(folder),
            "--out",
            str(out),
        ]
    )


def test_three_tasks_one_per_cli_land_on_one_branch(repo: Path, tmp_path: Path) -> None:
    """The issue's check: a 3-task local run, one task on each CLI, lands one branch."""
    usage = Usage(input_tokens=100, output_tokens=20, cached_tokens=0)
    fakes = {
        provider: AgentCliFake(edits(task_id), final_text=f"{task_id} finished", usage=usage)
        for task_id, provider in TASKS.values()
    }
    out = tmp_path / "out"
    with fakes["claude-code"], fakes["codex-cli"], fakes["gemini-cli"]:
        assert run(repo, config(tmp_path / "cfg", fakes), out) == 0

    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded" and aggregate.branch
    for task_id, provider in TASKS.values():
        result = read_model(out / "tasks" / task_id / "result.json", TaskResult)
        assert result.status == "succeeded", result.error
        (attempt,) = result.attempts
        assert (attempt.agent, attempt.provider) == (provider, provider)
        assert result.files_changed == [f"{task_id}.txt"]
        assert result.summary == f"{task_id} finished"
        # Three model calls (create, edit, final) of 100 in / 20 out each, priced by us.
        assert result.turns == 3
        assert (result.usage.input_tokens, result.usage.output_tokens) == (300, 60)
        assert result.cost_usd == pytest.approx((300 * 2.0 + 60 * 10.0) / 1e6)
        patch = (out / "tasks" / task_id / "changes.patch").read_text()
        assert f"+++ b/{task_id}.txt" in patch and f"+{task_id} done" in patch
        assert git(repo, "show", f"{aggregate.branch}:{task_id}.txt") == f"{task_id} done"
        transcript = (out / "tasks" / task_id / "transcript.jsonl").read_text()
        kinds = [json.loads(line)["kind"] for line in transcript.splitlines()]
        assert kinds.count("cli_start") == 1 and kinds.count("cli_event") >= 3
        # The key went to the provider only: nothing written holds it; the canary went nowhere.
        for written in (out / "tasks" / task_id).iterdir():
            assert KEY not in written.read_text()
        fake = fakes[provider]
        assert fake.model_calls == 3
        assert fake.saw(KEY) and not fake.saw(CANARY)
        # Our prompt reached the CLI: the task's own text and our rules.
        assert fake.saw(f"Create {task_id}.txt and finish it.") and fake.saw("do not commit")
    log = git(repo, "log", "--format=%s", f"main..{aggregate.branch}").splitlines()
    assert len(log) == 3
    assert git(repo, "status", "--porcelain") == ""


def test_a_hung_cli_is_stopped_by_its_time_limit_and_our_loop_takes_over(
    repo: Path, tmp_path: Path
) -> None:
    fakes = {
        provider: AgentCliFake(edits(task_id), hang_s=30) for task_id, provider in TASKS.values()
    }
    out = tmp_path / "out"
    with fakes["claude-code"], fakes["codex-cli"], fakes["gemini-cli"]:
        folder = config(tmp_path / "cfg", fakes, backup="loop")
        (folder / "agents.yml").write_text(
            (folder / "agents.yml").read_text().replace("    timeout_s: 60\n", "    timeout_s: 4\n")
        )
        assert run(repo, folder, out) == 0
    for task_id, provider in TASKS.values():
        result = read_model(out / "tasks" / task_id / "result.json", TaskResult)
        first, second = result.attempts
        assert (first.agent, first.status) == (provider, "failed")
        assert first.error is not None and "time limit of 4 s" in first.error
        duration = (first.finished_at - first.started_at).total_seconds()
        assert 3.5 <= duration < 20
        assert (second.agent, second.status, result.status) == ("loop", "succeeded", "succeeded")
        assert result.files_changed == [f"{task_id}.loop"]


def test_our_budget_stops_a_cli_and_keeps_its_work(repo: Path, tmp_path: Path) -> None:
    """max_usd: Claude Code gets it as --max-budget-usd and is stopped by it or by us, whichever
    counts first (its stream has every response's tokens); Codex and Gemini report theirs at the
    end, so their runs are reported as over budget. A response costs $0.0004 by our prices."""
    usage = Usage(input_tokens=100, output_tokens=20, cached_tokens=0)
    # A second per response, so our reading of the stream is ahead of the third response.
    fakes = {
        provider: AgentCliFake(edits(task_id), usage=usage, hang_s=1.0)
        for task_id, provider in TASKS.values()
    }
    out = tmp_path / "out"
    with fakes["claude-code"], fakes["codex-cli"], fakes["gemini-cli"]:
        folder = config(tmp_path / "cfg", fakes)
        with (folder / "settings.yml").open("a") as settings:
            settings.write("limits:\n  max_usd: 0.0005\n")
        run(repo, folder, out)
    for task_id, provider in TASKS.values():
        result = read_model(out / "tasks" / task_id / "result.json", TaskResult)
        assert result.status == "budget_exceeded", result.error
        assert result.error is not None and "max_usd budget reached" in result.error
        if provider != "claude-code":  # Claude Code stops before the tools of its last response
            assert result.files_changed == [f"{task_id}.txt"]  # the work done is kept
    claude = read_model(out / "tasks" / "claude-task" / "result.json", TaskResult)
    assert claude.turns <= 2 and fakes["claude-code"].model_calls <= 2


def test_max_turns_stops_each_cli_by_its_own_limit_or_ours(repo: Path, tmp_path: Path) -> None:
    """max_turns 1: Claude Code's --max-turns and Gemini's maxSessionTurns stop them; Codex has
    no turn limit of its own, so our reading of its stream stops it."""
    fakes = {
        provider: AgentCliFake(edits(task_id), hang_s=1.0) for task_id, provider in TASKS.values()
    }
    out = tmp_path / "out"
    with fakes["claude-code"], fakes["codex-cli"], fakes["gemini-cli"]:
        folder = config(tmp_path / "cfg", fakes)
        with (folder / "settings.yml").open("a") as settings:
            settings.write("limits:\n  max_turns: 1\n")
        run(repo, folder, out)
    for task_id, provider in TASKS.values():
        result = read_model(out / "tasks" / task_id / "result.json", TaskResult)
        assert result.status == "budget_exceeded", (provider, result.error)
        assert result.error is not None and "max_turns budget reached" in result.error
    codex = read_model(out / "tasks" / "codex-task" / "result.json", TaskResult)
    assert codex.error is not None and "2 turns used (limit 1)" in codex.error
    # Stopped before its final answer (its third call may have been under way).
    assert codex.summary != "Done."
