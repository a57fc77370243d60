"""Every bad input is one line and exit 2: never a traceback, never a hang, never a paid request.

Each case drives the real CLI (``orchestrator.cli.main``) in-process: a traceback would escape
``main`` and fail the test, a hang is cut by the per-test timeout, and the replay script counts
every model turn it serves, so "no provider was called" is checked, not assumed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from orchestrator.contracts import Plan
from orchestrator.fileio import read_model
from tests.conftest import git

ITEM = ["--workflow", "parallel_feature_implementation", "--task", "pace metrics"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the CLI; return the exit code and stderr (asserted to be one line when non-empty)."""
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    if code == 2:
        lines = [line for line in err.splitlines() if line.startswith("orchestrator")]
        assert len(lines) == 1, err
        assert "Traceback" not in err
    return code, err


def planned(
    capsys: pytest.CaptureFixture[str], repo: Path, config: Path, out: Path
) -> dict[str, Any]:
    code, err = run(capsys, "plan", *ITEM, "--repo", str(repo), "--config", str(config),
                    "--out", str(out))  # fmt: skip
    assert code == 0, err
    data: dict[str, Any] = json.loads((out / "plan.json").read_text())
    return data


# -- output folders that are files (and files that are folders) ---------------------------------


@pytest.mark.parametrize("command", ["plan", "run"])
def test_out_that_is_a_file_is_refused(
    command: str,
    repo: Path,
    replay_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    code, err = run(capsys, command, *ITEM, "--repo", str(repo), "--config",
                    str(replay_config), "--out", str(target))  # fmt: skip
    assert code == 2 and "--out" in err and "is a file, not a folder" in err
    assert target.read_text() == "x"


def test_demo_out_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    code, err = run(capsys, "demo", "--out", str(target))
    assert code == 2 and "--out" in err and "is a file" in err


def test_task_out_and_results_that_are_files_are_refused(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    planned(capsys, repo, replay_config, out)
    target = tmp_path / "a-file"
    target.write_text("x")
    code, err = run(capsys, "task", "--plan", str(out / "plan.json"), "--task", "pace-metrics",
                    "--repo", str(repo), "--out", str(target))  # fmt: skip
    assert code == 2 and "--out" in err and "is a file" in err
    code, err = run(capsys, "aggregate", "--plan", str(out / "plan.json"),
                    "--results", str(target), "--repo", str(repo))  # fmt: skip
    assert code == 2 and "--results" in err and "is a file" in err


def test_stats_out_that_is_a_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text("")
    code, err = run(capsys, "stats", str(history), "--out", str(tmp_path))
    assert code == 2 and "--out" in err and "is a folder" in err


# -- plans that are not DAGs of known tasks ------------------------------------------------------


def rewrite_plan(path: Path, change: dict[str, Any], task: int = 0) -> None:
    data = json.loads(path.read_text())
    data["tasks"][task].update(change)
    path.write_text(json.dumps(data))


@pytest.fixture
def two_task_plan(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Path:
    out = tmp_path / "planned"
    code, err = run(capsys, "plan", "--workflow", "parallel_feature_implementation", "--task",
                    "pace metrics", "--task", "jockey ratings", "--repo", str(repo), "--config",
                    str(replay_config), "--out", str(out))  # fmt: skip
    assert code == 0, err
    return out / "plan.json"


@pytest.mark.timeout(30)
def test_a_dependency_cycle_is_refused_not_run_forever(
    two_task_plan: Path, repo: Path, replay_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite_plan(two_task_plan, {"depends_on": ["jockey-ratings"]}, task=0)
    rewrite_plan(two_task_plan, {"depends_on": ["pace-metrics"]}, task=1)
    started = time.monotonic()
    code, err = run(capsys, "run", "--plan", str(two_task_plan), "--repo", str(repo),
                    "--config", str(replay_config))  # fmt: skip
    assert code == 2 and "tasks[0].depends_on" in err and "cycle" in err
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"type": "telepathy"}, "tasks[0].type", "unknown task type 'telepathy'"),
        ({"agent": "nobody"}, "tasks[0].agent", "agent 'nobody' is not in the plan's agents"),
        ({"backups": ["ghost"]}, "tasks[0].backups", "agent 'ghost' is not in the plan's agents"),
        ({"id": "jockey-ratings"}, "tasks[1].id", "duplicate task id"),
        ({"wave": 3}, "tasks[0].wave", "beyond the plan's 1 waves"),
    ],
)
def test_an_inconsistent_plan_is_refused_before_any_model_call(
    change: dict[str, Any],
    field: str,
    words: str,
    two_task_plan: Path,
    repo: Path,
    replay_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rewrite_plan(two_task_plan, change)
    for command in (
        ["run", "--plan", str(two_task_plan), "--config", str(replay_config)],
        ["task", "--plan", str(two_task_plan), "--task", "jockey-ratings"],
        ["aggregate", "--plan", str(two_task_plan)],
    ):
        code, err = run(capsys, *command, "--repo", str(repo))
        assert code == 2, (command, err)
        assert str(two_task_plan) in err and field in err and words in err, err
    code, err = run(capsys, "validate", str(two_task_plan), "--config", str(replay_config))
    assert code == 2 and field in err
    # Nothing ran: no task left a result.
    assert not list(two_task_plan.parent.glob("tasks/*/result.json"))


def test_a_dependency_in_the_same_wave_is_refused(
    two_task_plan: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite_plan(two_task_plan, {"depends_on": ["pace-metrics"]}, task=1)
    code, err = run(capsys, "validate", str(two_task_plan))
    assert code == 2 and "tasks[1].wave" in err and "earlier wave" in err


# -- results of another run -----------------------------------------------------------------------


def test_aggregate_refuses_a_result_of_another_run(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        code, err = run(capsys, "run", *ITEM, "--repo", str(repo), "--config",
                        str(replay_config), "--out", str(out))  # fmt: skip
        assert code == 0, err
    # The second run's folder gets the first run's result for the same task id.
    shutil.copy(first / "tasks/pace-metrics/result.json", second / "tasks/pace-metrics/")
    code, err = run(capsys, "aggregate", "--plan", str(second / "plan.json"), "--repo", str(repo))
    assert code == 2 and "tasks/pace-metrics/result.json: run_id" in err
    assert "belongs to another run" in err or "of another run" in err


def test_aggregate_refuses_a_result_made_on_another_base(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, err = run(capsys, "run", *ITEM, "--repo", str(repo), "--config", str(replay_config),
                    "--out", str(out))  # fmt: skip
    assert code == 0, err
    result = out / "tasks/pace-metrics/result.json"
    data = json.loads(result.read_text())
    data["base_sha"] = "0" * 40
    result.write_text(json.dumps(data))
    code, err = run(capsys, "aggregate", "--plan", str(out / "plan.json"), "--repo", str(repo))
    assert code == 2 and "base_sha" in err and "0" * 40 in err


def test_every_result_names_its_run_and_base(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run(capsys, "run", *ITEM, "--repo", str(repo), "--config", str(replay_config),
               "--out", str(out))[0] == 0  # fmt: skip
    plan = read_model(out / "plan.json", Plan)
    result = json.loads((out / "tasks/pace-metrics/result.json").read_text())
    assert result["run_id"] == plan.run_id and result["base_sha"] == plan.base_sha


def test_an_out_folder_of_another_run_is_refused_and_a_rerun_starts_clean(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run(capsys, "run", *ITEM, "--repo", str(repo), "--config", str(replay_config),
               "--out", str(out))[0] == 0  # fmt: skip
    code, err = run(capsys, "run", "--workflow", "parallel_feature_implementation", "--task",
                    "jockey ratings", "--repo", str(repo), "--config", str(replay_config),
                    "--out", str(out))  # fmt: skip
    assert code == 2 and "--out" in err and "already holds run" in err
    # The same plan again in the same folder: an old task folder of it does not survive.
    stale = out / "tasks" / "leftover"
    stale.mkdir()
    code, err = run(capsys, "run", "--plan", str(out / "plan.json"), "--repo", str(repo),
                    "--config", str(replay_config), "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert not stale.exists() and (out / "tasks/pace-metrics/result.json").exists()


# -- requests about nothing -----------------------------------------------------------------------


def test_an_empty_item_is_refused(
    repo: Path, replay_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "run", "--workflow", "parallel_feature_implementation", "--task", "",
                    "--repo", str(repo), "--config", str(replay_config))  # fmt: skip
    assert code == 2 and "--task" in err and "empty" in err
    assert not (repo / ".orchestrator" / "runs").exists()


def test_a_workflow_without_items_or_text_is_refused(
    repo: Path, replay_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "run", "--workflow", "parallel_feature_implementation",
                    "--repo", str(repo), "--config", str(replay_config))  # fmt: skip
    assert code == 2 and "needs at least one item" in err
    assert not (repo / ".orchestrator" / "runs").exists()


# -- validate ------------------------------------------------------------------------------------


def test_validate_says_file_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "validate", str(tmp_path / "nope.json"))
    assert code == 2 and "nope.json: file not found" in err


def test_validate_decides_the_kind_by_content(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run(capsys, "run", *ITEM, "--repo", str(repo), "--config", str(replay_config),
               "--out", str(out))[0] == 0  # fmt: skip
    renamed = {
        "x.json": out / "plan.json",
        "plan.json": out / "tasks/pace-metrics/result.json",
        "result.json": out / "aggregate.json",
    }
    folder = tmp_path / "renamed"
    folder.mkdir()
    for name, source in renamed.items():
        shutil.copy(source, folder / name)
    code = main(["validate", *(str(folder / name) for name in renamed)])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"{folder / 'x.json'}: valid plan" in printed
    assert f"{folder / 'plan.json'}: valid result" in printed
    assert f"{folder / 'result.json'}: valid aggregate" in printed
    (folder / "other.json").write_text('{"hello": 1}')
    code, err = run(capsys, "validate", str(folder / "other.json"))
    assert code == 2 and "not a plan, result or aggregate" in err


def test_repo_that_is_not_a_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "run", *ITEM, "--repo", str(tmp_path / "missing"))
    assert code == 2 and "--repo" in err


def test_workspace_is_the_same_option_as_repo(
    repo: Path, replay_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    planned(capsys, repo, replay_config, out)
    code = main(["task", "--plan", str(out / "plan.json"), "--task", "pace-metrics",
                 "--workspace", str(repo)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert git(repo, "status", "--porcelain") == ""
