"""`orchestrator demo`, run for real: stacked waves, a resolved conflict, a fixed regression.

The demo plays orchestrator/demo/script.yml on the bundled sample project. Its header promises
what the run shows; this file holds the run to it: wave 2 starts from the design, wave 3 from
wave 2's merged work; implement-weather-normalization conflicts and resolve-… merges it;
implement-pace-metrics breaks an existing test, attribution names it and fix-… repairs it; the
final verify passes, and the merged branch passes every sample test when run on its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from orchestrator import demo
from orchestrator.cli import main
from orchestrator.contracts import Aggregate, TaskResult, VerifyOutcome
from orchestrator.fileio import read_model
from orchestrator.gitrepo import commit_env, run_git
from orchestrator.providers.replay import load_script

pytestmark = pytest.mark.slow

#: The planner's task ids for analysis_implementation_pipeline on demo.ITEMS, in plan order.
PLAN_ORDER = [
    "design",
    "implement-pace-metrics",
    "implement-weather-normalization",
    "test-pace-metrics",
    "test-weather-normalization",
    "integrate",
]
REPAIRS = ["resolve-implement-weather-normalization", "fix-implement-pace-metrics"]
WAVES = [PLAN_ORDER[:1], PLAN_ORDER[1:5], PLAN_ORDER[5:]]
CONFLICTED = "implement-weather-normalization"
#: Sample tests: 8 in the pristine project; 23 once every task's work is merged and repaired.
PRISTINE_PASSED = 8
MERGED_PASSED = 23


@dataclass
class Demo:
    repo: Path
    out: Path
    printed: str
    aggregate: Aggregate


def git(repo: Path, *args: str) -> str:
    return run_git(repo, *args, env=commit_env()).stdout.decode().strip()


def sample_tests(cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the sample project's own tests in ``cwd`` with this interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def passed(proc: subprocess.CompletedProcess[str]) -> int:
    match = re.search(r"(\d+) passed", proc.stdout)
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One real `orchestrator demo` run."""
    base = tmp_path_factory.mktemp("demo")
    capture = base / "printed.txt"
    saved = sys.stdout
    with capture.open("w") as stream:
        sys.stdout = stream
        try:
            code = main(["demo", "--out", str(base)])
        finally:
            sys.stdout = saved
    printed = capture.read_text()
    assert code == 0, printed
    (run_dir,) = [p for p in base.iterdir() if p.is_dir()]
    aggregate = read_model(run_dir / "out" / "aggregate.json", Aggregate)
    return Demo(run_dir / "repo", run_dir / "out", printed, aggregate)


def test_script_covers_the_plan_and_its_repairs_and_looks_real() -> None:
    raw = yaml.safe_load(demo.SCRIPT.read_text(encoding="utf-8"))
    assert raw["planner"] == []
    assert list(raw["tasks"]) == PLAN_ORDER + REPAIRS
    script = load_script(demo.SCRIPT)
    for task_id, turns in script.tasks.items():
        assert len(turns) >= 3, task_id
        first = {call.name for call in turns[0].tool_calls}
        assert first <= {"list_files", "read_file", "search"}, f"{task_id} should look first"
        for turn in turns:
            assert 0.2 <= turn.latency_s <= 0.6
            assert turn.usage is not None
            assert 1500 <= turn.usage.input_tokens <= 12000
            assert 50 <= turn.usage.output_tokens <= 1500
            assert turn.usage.cached_input_tokens < turn.usage.input_tokens
    # The demo's agents must finish in seconds: the critical path of scripted latency.
    critical = sum(
        max(sum(turn.latency_s for turn in script.tasks[task_id]) for task_id in wave)
        for wave in WAVES
    )
    assert critical < 6.0


def test_demo_agents_mirror_the_default_agents() -> None:
    defaults = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "configs/orchestration/agents.yml").read_text()
    )["agents"]
    agents = yaml.safe_load(demo.AGENTS_FILE.read_text(encoding="utf-8"))["agents"]
    assert set(agents) == {"codex", "claude", "gemini", "deepseek", "copilot"} == set(defaults)
    for name, spec in agents.items():
        assert spec["provider"] == "replay"
        assert (demo.AGENTS_FILE.parent / spec["script"]).resolve() == demo.SCRIPT
        assert "api_key" not in spec
        for key in ("model", "vision", "batch_discount", *(k for k in spec if "per_mtok" in k)):
            assert spec.get(key) == defaults[name].get(key), f"{name}.{key}"
        assert {k for k in defaults[name] if "per_mtok" in k} <= set(spec), name


def test_pristine_sample_project_passes_its_tests(ran: Demo) -> None:
    proc = sample_tests(ran.repo)  # the demo's repository, on main: the sample as committed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert passed(proc) == PRISTINE_PASSED


def test_each_wave_starts_from_the_earlier_waves_merged_work(ran: Demo) -> None:
    stacked = {
        task_id: read_model(ran.out / "tasks" / task_id / "result.json", TaskResult).stacked_on
        for task_id in PLAN_ORDER
    }
    assert stacked["design"] == []
    assert all(stacked[task_id] == ["design"] for task_id in WAVES[1])
    # The conflicting task's work is not under wave 3: it did not merge.
    assert stacked["integrate"] == [t for t in PLAN_ORDER[:5] if t != CONFLICTED]


def test_the_conflict_is_resolved_and_the_regression_attributed_and_fixed(ran: Demo) -> None:
    aggregate = ran.aggregate
    assert aggregate.status == "succeeded", aggregate.reason
    weather = next(t for t in aggregate.tasks if t.id == CONFLICTED)
    assert weather.conflict_files == ["racing/__init__.py"]
    assert weather.resolved_by == REPAIRS[0]
    verified = read_model(ran.out / "verify.json", VerifyOutcome)
    (first,) = verified.verify.rounds
    assert first.status == "failed" and first.culprit == "implement-pace-metrics"
    assert "test_win_rate" in first.output_tail
    assert verified.verify.status == "passed"
    assert [(r.task_id, r.kept) for r in verified.repairs] == [
        (REPAIRS[0], True),
        (REPAIRS[1], True),
    ]
    fixer = ran.out / "tasks" / REPAIRS[1] / "transcript.jsonl"
    commands = [
        json.loads(line)["result"]
        for line in fixer.read_text().splitlines()
        if json.loads(line).get("name") == "run_command" and json.loads(line)["kind"] == "tool"
    ]
    assert len(commands) == 1 and "exit code 0" in commands[0]
    for words in ("merged by resolve-", "first red commit: implement-pace-metrics",
                  "fix-implement-pace-metrics fixed it", "Final verify: passed"):  # fmt: skip
        assert words in ran.printed, ran.printed


def test_the_merged_branch_passes_every_sample_test_on_its_own(ran: Demo, tmp_path: Path) -> None:
    branch = ran.aggregate.branch or ""
    subjects = git(ran.repo, "log", "--format=%s", "--reverse", f"main..{branch}").splitlines()
    assert len(subjects) == 7
    assert subjects[-2:] == [
        "Resolve the conflict of implement-weather-normalization",
        "Fix what broke the tests after implement-pace-metrics",
    ]
    checkout = tmp_path / "merged"
    git(ran.repo, "worktree", "add", "-q", "--detach", str(checkout), branch)
    try:
        proc = sample_tests(checkout)
        assert proc.returncode == 0, proc.stdout
        assert passed(proc) == MERGED_PASSED
        cli = subprocess.run(
            [sys.executable, "-m", "racing", "--race", "R05", "--going-adjusted"],
            cwd=checkout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert "124.23" in cli.stdout
    finally:
        git(ran.repo, "worktree", "remove", "--force", str(checkout))


def test_the_review_comment_survives(ran: Demo) -> None:
    comments = ran.aggregate.review_comments
    assert [(c.task_id, c.path, c.line) for c in comments] == [("integrate", "racing/data.py", 51)]
