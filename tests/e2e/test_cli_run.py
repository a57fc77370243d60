"""The CLI and the Python API end to end on temporary git repositories, replay agents only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.contracts import Aggregate, Plan, TaskResult
from orchestrator.coordinator import Coordinator
from orchestrator.fileio import read_model
from tests.conftest import git
from tests.e2e.conftest import make_replay_config, write_file_turns

ITEMS = ["pace metrics", "weather normalization", "jockey ratings"]


def run_cli(*args: str) -> int:
    return main(list(args))


def test_run_leaves_one_branch_with_one_commit_per_task(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["run", "--workflow", "parallel_feature_implementation"]
    for item in ITEMS:
        args += ["--task", item]
    code = run_cli(*args, "--repo", str(repo), "--config", str(replay_config), "--out", str(out))
    printed = capsys.readouterr().out
    assert code == 0, printed
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded"
    assert aggregate.branch and aggregate.branch.startswith("orchestrator/")
    log = git(repo, "log", "--format=%s%n%b---", f"main..{aggregate.branch}")
    subjects = [block.strip().splitlines()[0] for block in log.split("---") if block.strip()]
    assert subjects == [f"Implement {item}" for item in reversed(ITEMS)]
    assert "Orchestrator-Task: pace-metrics" in log
    assert git(repo, "show", f"{aggregate.branch}:src/jockey.py") == "RATINGS = {}"
    # The user's checkout is untouched: still on main, clean, no new files.
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / "src" / "pace.py").exists()
    for item_id in ("pace-metrics", "weather-normalization", "jockey-ratings"):
        folder = out / "tasks" / item_id
        result = read_model(folder / "result.json", TaskResult)
        assert result.status == "succeeded" and result.agent == "codex"
        assert result.usage.input_tokens > 0 and result.cost_usd and result.cost_usd > 0
        assert (folder / "changes.patch").read_text().startswith("diff --git")
        assert len((folder / "transcript.jsonl").read_text().splitlines()) >= 4
    summary = (out / "summary.md").read_text()
    assert "```mermaid" in summary and "pace-metrics" in summary
    totals = aggregate.totals
    assert totals.input_tokens == sum(t.input_tokens for t in aggregate.tasks)
    assert "branch: orchestrator/" in printed and "summary:" in printed


def test_default_out_dir_is_ignored_by_git(repo: Path, replay_config: Path) -> None:
    code = run_cli(
        "run", "--task", "pace metrics", "--repo", str(repo), "--config", str(replay_config)
    )
    assert code == 0
    runs = list((repo / ".orchestrator" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "aggregate.json").exists()
    assert git(repo, "status", "--porcelain") == ""
    # and a second run is not refused as "uncommitted changes"
    assert (
        run_cli(
            "run", "--task", "pace metrics", "--repo", str(repo), "--config", str(replay_config)
        )
        == 0
    )


def test_python_api_execute_workflow(repo: Path, tmp_path: Path) -> None:
    tasks = {
        "pace-features": write_file_turns("a.py", "A = 1\n", "a"),
        "weather-features": write_file_turns("b.py", "B = 2\n", "b"),
        "jockey-features": write_file_turns("c.py", "C = 3\n", "c"),
    }
    config = make_replay_config(tmp_path / "cfg", tasks)
    coordinator = Coordinator(repo, config=config, out=tmp_path / "runs")
    results = asyncio.run(
        coordinator.execute_workflow(
            workflow="parallel_feature_implementation",
            tasks=["pace_features", "weather_features", "jockey_features"],
        )
    )
    assert results.status == "succeeded"
    assert [t.id for t in results.tasks] == ["pace-features", "weather-features", "jockey-features"]
    assert all(t.applied and t.commit for t in results.tasks)
    assert coordinator.last_run is not None
    assert (coordinator.last_run.out_dir / "summary.md").exists()


def test_matrix_style_plan_task_aggregate_share_one_folder(
    repo: Path, replay_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run-folder"
    args = [
        "plan",
        "--workflow",
        "parallel_feature_implementation",
        "--task",
        ITEMS[0],
        "--task",
        ITEMS[1],
    ]
    assert (
        run_cli(*args, "--repo", str(repo), "--config", str(replay_config), "--out", str(out)) == 0
    )
    plan = read_model(out / "plan.json", Plan)
    assert plan.status == "planned" and plan.base_sha == git(repo, "rev-parse", "HEAD")
    # A later commit on main must not leak into the tasks: they start from base_sha.
    (repo / "late.txt").write_text("late\n")
    git(repo, "add", "late.txt")
    git(repo, "commit", "-qm", "late")
    for task in plan.tasks:
        assert (
            run_cli(
                "task",
                "--plan",
                str(out / "plan.json"),
                "--task",
                task.id,
                "--workspace",
                str(repo),
            )
            == 0
        )
    assert run_cli("aggregate", "--plan", str(out / "plan.json"), "--workspace", str(repo)) == 0
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.base_sha == plan.base_sha
    files = git(repo, "ls-tree", "-r", "--name-only", aggregate.branch or "")
    assert "src/pace.py" in files and "late.txt" not in files


def test_a_task_job_writes_its_own_summary_page_and_its_job_link(
    repo: Path, replay_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run-folder"
    plan_args = ["plan", "--workflow", "parallel_feature_implementation", "--task", ITEMS[0]]
    assert (
        run_cli(*plan_args, "--repo", str(repo), "--config", str(replay_config), "--out", str(out))
        == 0
    )
    page = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(page))
    for name, value in {"GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "5"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORCHESTRATOR_CHECK_RUN_ID", "42")  # the task action's job.check_run_id
    task = read_model(out / "plan.json", Plan).tasks[0]
    assert (
        run_cli(
            "task", "--plan", str(out / "plan.json"), "--task", task.id, "--workspace", str(repo)
        )
        == 0
    )
    result = read_model(out / "tasks" / task.id / "result.json", TaskResult)
    text = page.read_text()
    assert text.startswith(f"### ✅ Task `{task.id}` — succeeded")
    assert "| agents tried | time | tokens in / out | cost |" in text
    assert f"| {result.usage.input_tokens:,} / {result.usage.output_tokens:,} |" in text
    assert result.summary and result.summary in text
    assert "Files changed: `src/pace.py`" in text
    assert result.log_url == "https://github.com/o/r/actions/runs/5/job/42"


def test_failed_task_makes_the_run_fail_visibly(repo: Path, tmp_path: Path) -> None:
    tasks = {
        "good": write_file_turns("g.py", "G = 1\n", "ok"),
        # finishes without changing anything: a code task that did nothing is a failure
        "lazy": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "nothing to do"}}]}],
    }
    config = make_replay_config(tmp_path / "cfg", tasks)
    out = tmp_path / "out"
    code = run_cli(
        "run",
        "--task",
        "good",
        "--task",
        "lazy",
        "--repo",
        str(repo),
        "--config",
        str(config),
        "--out",
        str(out),
    )
    assert code == 1
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "partial"
    lazy = next(t for t in aggregate.tasks if t.id == "lazy")
    assert lazy.status == "failed" and "without changing any file" in (lazy.error or "")
    result = read_model(out / "tasks" / "lazy" / "result.json", TaskResult)
    # every agent of the chain was tried before giving up
    assert [a.agent for a in result.attempts] == ["codex", "claude", "deepseek"]
    assert "lazy" in (out / "summary.md").read_text()


def test_dependents_of_a_failed_task_are_skipped(repo: Path, tmp_path: Path) -> None:
    tasks = {
        "design": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "no design"}}]}],
    }
    config = make_replay_config(tmp_path / "cfg", tasks)
    out = tmp_path / "out"
    code = run_cli(
        "run",
        "--workflow",
        "analysis_implementation_pipeline",
        "--task",
        "x",
        "--repo",
        str(repo),
        "--config",
        str(config),
        "--out",
        str(out),
    )
    assert code == 1
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "failed"
    statuses = {t.id: t.status for t in aggregate.tasks}
    assert statuses == {
        "design": "failed",
        "implement-x": "skipped",
        "test-x": "skipped",
        "integrate": "skipped",
    }


def test_console_script_exit_codes(repo: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "orchestrator"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    bad = subprocess.run(
        [str(exe), "run", "--task", "x", "--repo", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("orchestrator: error: --repo: ")
    assert "not a git repository" in bad.stderr
    usage = subprocess.run(
        [str(exe), "frobnicate"], capture_output=True, text=True, env=env, check=False
    )
    assert usage.returncode == 2


def test_bad_inputs_exit_2_with_one_line(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def error(*args: str) -> str:
        assert run_cli(*args) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        return lines[-1]

    (repo / "README.md").write_text("dirty\n")
    assert "uncommitted changes" in error(
        "run", "--task", "a", "--repo", str(repo), "--config", str(replay_config)
    )
    git(repo, "checkout", "--", "README.md")
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps({"schema_version": "1", "run_id": "r", "status": "planned"}))
    assert error(
        "task", "--plan", str(plan_path), "--task", "a", "--workspace", str(repo)
    ).startswith(f"orchestrator: error: {plan_path}: reason: ")
    plan_path.write_text('{"schema_version": "1", "run_id": ')
    assert "invalid JSON" in error("aggregate", "--plan", str(plan_path), "--workspace", str(repo))
    assert "unknown workflow 'nope'" in error(
        "run",
        "--workflow",
        "nope",
        "--task",
        "a",
        "--repo",
        str(repo),
        "--config",
        str(replay_config),
    )
    assert "--max-parallel" in error(
        "run", "--task", "a", "--max-parallel", "0", "--repo", str(repo)
    )
    assert "give a REQUEST" in error("run", "--repo", str(repo))
    out = tmp_path / "out"
    assert (
        run_cli(
            "plan",
            "--task",
            "a",
            "--repo",
            str(repo),
            "--config",
            str(replay_config),
            "--out",
            str(out),
        )
        == 0
    )
    assert "no task 'zzz'" in error(
        "task", "--plan", str(out / "plan.json"), "--task", "zzz", "--workspace", str(repo)
    )


def test_runs_record_metrics_and_stats_renders_the_history(
    repo: Path, replay_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        code = run_cli(
            "run", "--task", "pace metrics", "--repo", str(repo), "--config", str(replay_config)
        )
        assert code == 0
    history = repo / ".orchestrator" / "history.jsonl"
    lines = history.read_text().splitlines()
    assert len(lines) == 3
    record = json.loads(lines[0])
    assert record["tasks"] == 1 and record["succeeded"] == 1
    assert record["agents"][0]["agent"] == "codex"
    runs = sorted((repo / ".orchestrator" / "runs").iterdir())
    assert all((run / "metrics.jsonl").exists() for run in runs)
    assert git(repo, "status", "--porcelain") == ""
    capsys.readouterr()
    assert run_cli("stats", "--repo", str(repo), "--config", str(replay_config)) == 0
    text = capsys.readouterr().out
    assert "## Orchestrator history: 3 runs" in text
    assert "| codex | code_generation | 3 | 100% |" in text
    assert "xychart-beta" in text


def test_stats_on_a_bad_history_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "h.jsonl"
    history.write_text('{"run_id": 1}\n')
    assert run_cli("stats", str(history)) == 2
    assert f"{history}:1" in capsys.readouterr().err


def test_unknown_price_is_reported_as_unknown_with_a_warning(repo: Path, tmp_path: Path) -> None:
    config = make_replay_config(tmp_path / "cfg", {"a": write_file_turns("a.py", "A = 1\n", "a")})
    agents = (config / "agents.yml").read_text()
    (config / "agents.yml").write_text(
        agents.replace("    input_per_mtok: 2.0\n", "", 1)  # codex loses its input price
    )
    out = tmp_path / "out"
    assert (
        run_cli(
            "run", "--task", "a", "--repo", str(repo), "--config", str(config), "--out", str(out)
        )
        == 0
    )
    result = read_model(out / "tasks" / "a" / "result.json", TaskResult)
    assert result.cost_usd is None
    assert result.warnings == ["cost unknown: no price configured for codex"]
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.totals.cost_usd is None
    assert "unknown" in (out / "summary.md").read_text()


def test_run_prints_where_a_conflict_patch_is_kept(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = {
        "pace-metrics": write_file_turns("src/app.py", "PACE = 1\n", "pace"),
        "jockey-ratings": write_file_turns("src/app.py", "JOCKEY = 2\n", "jockey"),
    }
    config = make_replay_config(tmp_path / "cfg", tasks)
    out = tmp_path / "out"
    code = run_cli("run", "--workflow", "parallel_feature_implementation", "--task",
                   "pace metrics", "--task", "jockey ratings", "--repo", str(repo),
                   "--config", str(config), "--out", str(out))  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 1
    kept = out / "conflicts" / "jockey-ratings.patch"
    assert kept.is_file()
    assert "conflict: jockey-ratings on src/app.py; its patch is kept at" in printed
    assert f"  {kept}" in printed.splitlines()
