"""A lean install: the real CLI in a fresh process where some extras' modules cannot be imported.

Each run starts ``python -c BLOCKER``: a meta-path finder placed first refuses the named
top-level modules exactly as a missing package does (``ModuleNotFoundError``), then the real
``orchestrator`` entry point runs. A missing extra is one line and exit 2 naming what to install;
the core alone runs the plan, task and aggregate jobs of a replayed run end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo

BLOCKER = """
import sys

blocked = set(filter(None, sys.argv[1].split(",")))


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
sys.argv = ["orchestrator", *sys.argv[2:]]
from orchestrator.cli import main

raise SystemExit(main())
"""

#: The top-level modules of every extra and what they bring: blocked, only the core is left.
EVERY_EXTRA = ("openai", "anthropic", "google", "githubkit", "githubkit_schemas", "hishel",
               "httpx", "httpx2", "httpcore", "jwt", "cryptography", "mcp", "anyio")  # fmt: skip
FEATURE = ["--workflow", "parallel_feature_implementation", "--task", "pace metrics"]
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "GITHUB_TOKEN")


def orchestrator(
    cwd: Path, blocked: tuple[str, ...], *args: str, keys: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process with ``blocked`` not importable; no real model request."""
    env = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("GITHUB_")}
    env.update(keys or {})
    env["ORCHESTRATOR_ALLOW_MODEL_REQUESTS"] = "0"
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(blocked), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line of an exit-2 run (no traceback)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    return line


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "project", {"calc.py": "def add(a, b):\n    return a + b\n"})


def planned(project: Path, out: Path, keys: dict[str, str]) -> str:
    """plan.json for one code task routed with ``keys`` (nothing blocked); its task id."""
    proc = orchestrator(project, (), "plan", *FEATURE, "--repo", str(project), "--out", str(out),
                        keys=keys)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (task,) = json.loads((out / "plan.json").read_text())["tasks"]
    return str(task["id"])


def test_a_task_whose_agent_lacks_its_sdk_names_agent_provider_and_extra(
    project: Path, tmp_path: Path
) -> None:
    keys = {"ANTHROPIC_API_KEY": "sk-ant-test"}
    out = tmp_path / "run"
    task = planned(project, out, keys)
    task_args = ("task", "--plan", str(out / "plan.json"), "--task", task, "--repo", str(project))
    line = refused(orchestrator(project, ("anthropic",), *task_args, keys=keys))
    assert line == (
        "orchestrator: error: agents.yml: agents.claude.provider: provider anthropic needs the "
        "'anthropic' extra: pip install 'gh-orchestrator[anthropic]'"
    )
    assert not (out / "tasks" / task / "result.json").exists()  # refused before any work
    # With the SDK there, the same job gets as far as the (switched-off) model request.
    ran = orchestrator(project, (), *task_args, keys=keys)
    assert ran.returncode == 1, ran.stderr
    result = json.loads((out / "tasks" / task / "result.json").read_text())
    assert "real model requests are disabled" in result["error"]


def test_a_backup_without_its_sdk_is_refused_before_the_primary_runs(
    project: Path, tmp_path: Path
) -> None:
    keys = {"ANTHROPIC_API_KEY": "sk-ant-test", "DEEPSEEK_API_KEY": "sk-test"}
    out = tmp_path / "run"
    task = planned(project, out, keys)
    plan = json.loads((out / "plan.json").read_text())
    assert (plan["tasks"][0]["agent"], plan["tasks"][0]["backups"]) == ("claude", ["deepseek"])
    line = refused(orchestrator(project, ("openai",), "task", "--plan", str(out / "plan.json"),
                                "--task", task, "--repo", str(project), keys=keys))  # fmt: skip
    assert line.endswith(
        "agents.yml: agents.deepseek.provider: provider openai_compatible needs the 'openai' "
        "extra: pip install 'gh-orchestrator[openai]'"
    )


def test_the_llm_planner_without_its_sdk_is_refused(project: Path) -> None:
    keys = {"ANTHROPIC_API_KEY": "sk-ant-test"}
    args = ("plan", "--request", "add a subtract function", "--repo", str(project), "--dry-run")
    line = refused(orchestrator(project, ("anthropic",), *args, keys=keys))
    assert "agents.claude.provider: provider anthropic needs the 'anthropic' extra" in line
    # Unblocked, the planner is really asked (and the switched-off request fails the run).
    asked = orchestrator(project, (), *args, keys=keys)
    assert asked.returncode == 1 and "planner agent claude failed" in asked.stderr


@pytest.mark.parametrize("command", ["plan", "progress"])
def test_publishing_without_the_github_extra_is_refused(
    command: str, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    planned(project, out, {"ANTHROPIC_API_KEY": "k"})
    args = {
        "plan": ("plan", *FEATURE, "--repo", str(project), "--publish"),
        "progress": ("progress", "--plan", str(out / "plan.json")),
    }[command]
    line = refused(orchestrator(project, ("githubkit",), *args, keys={"ANTHROPIC_API_KEY": "k"}))
    assert line == (
        "orchestrator: error: GitHub: publishing and reading GitHub needs the 'github' extra: "
        "pip install 'gh-orchestrator[github]'"
    )
    # With githubkit importable the command gets further: to the missing Actions environment.
    further = orchestrator(project, (), *args, keys={"ANTHROPIC_API_KEY": "k"})
    assert further.returncode == 2 and "'github' extra" not in further.stderr
    assert "GITHUB_" in further.stderr, further.stderr


def test_the_mcp_server_without_the_mcp_extra_is_refused(tmp_path: Path) -> None:
    line = refused(orchestrator(tmp_path, ("mcp",), "mcp"))
    assert line == (
        "orchestrator: error: orchestrator mcp: the MCP server needs the 'mcp' extra: "
        "pip install 'gh-orchestrator[mcp]'"
    )


def test_the_core_alone_runs_the_plan_task_and_aggregate_jobs_of_a_replayed_run(
    project: Path, replay_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = ("--config", str(replay_config))
    steps = [
        ("plan", *FEATURE, "--repo", str(project), "--out", str(out), *config),
        ("task", "--plan", str(out / "plan.json"), "--task", "pace-metrics",
         "--repo", str(project), *config),
        ("aggregate", "--plan", str(out / "plan.json"), "--repo", str(project),
         "--out", str(tmp_path / "aggregate"), *config),
    ]  # fmt: skip
    for args in steps:
        proc = orchestrator(project, EVERY_EXTRA, *args)
        assert proc.returncode == 0, (args[0], proc.stderr)
    aggregate = json.loads((tmp_path / "aggregate" / "aggregate.json").read_text())
    assert aggregate["status"] == "succeeded"
    assert [task["id"] for task in aggregate["tasks"] if task["commit"]] == ["pace-metrics"]
