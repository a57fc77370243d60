"""aggregate_run against real temporary git repositories and real ``git diff`` patches."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.aggregate import (
    aggregate_run,
    commit_message,
    compute_totals,
    load_results,
    run_status,
)
from orchestrator.contracts import (
    Aggregate,
    AggregateTask,
    Limits,
    Plan,
    ReviewComment,
    Task,
    TaskResult,
    Usage,
)
from orchestrator.errors import InputError
from orchestrator.fileio import read_model
from orchestrator.patches import header_paths, patch_paths, patch_refusal
from tests.conftest import agents_for, git, make_repo

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
LONG = "".join(f"line {n}\n" for n in range(1, 31))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo",
        {
            "README.md": "# sample\n",
            "src/app.py": "def greet(name):\n    return 'hello ' + name\n",
            "src/util.py": "VALUE = 1\n",
            "docs/long.txt": LONG,
            ".github/workflows/ci.yml": "on: push\n",
        },
    )


def make_patch(repo: Path, tmp_path: Path, edits: dict[str, str | None]) -> bytes:
    """A real ``git diff --binary --full-index`` patch of ``edits`` made in a fresh clone."""
    base = git(repo, "rev-parse", "HEAD")
    clone = tmp_path / f"clone-{len(list(tmp_path.glob('clone-*')))}"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    for name, content in edits.items():
        target = clone / name
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
    git(clone, "add", "-A")
    return subprocess.run(
        ["git", "-C", str(clone), "diff", "--cached", "--binary", "--full-index", base],
        capture_output=True,
        check=True,
    ).stdout


def make_plan(repo: Path, ids: list[str], **limits: bool) -> Plan:
    tasks = [
        Task(
            id=task_id,
            type="implement",
            title=f"Implement {task_id}",
            instructions="do it",
            agent="codex",
            depends_on=[ids[0]] if index else [],
            wave=1 if index == 0 else 2,
        )
        for index, task_id in enumerate(ids)
    ]
    return Plan(
        run_id="run-1",
        status="planned",
        reason="asked",
        base_sha=git(repo, "rev-parse", "HEAD"),
        created_at=T0,
        tasks=tasks,
        waves=max((task.wave for task in tasks), default=0),
        agents=agents_for(tasks),
        limits=Limits(**limits),
    )


def write_result(
    results: Path,
    plan: Plan,
    task_id: str,
    patch: bytes = b"",
    *,
    status: str = "succeeded",
    cost: float | None = 0.01,
    start: float = 0.0,
    duration: float = 10.0,
    comments: list[ReviewComment] | None = None,
    files: list[str] | None = None,
) -> TaskResult:
    result = TaskResult(
        task_id=task_id,
        run_id=plan.run_id,
        base_sha=plan.base_sha,
        status=status,  # type: ignore[arg-type]
        agent="codex",
        summary=f"Did {task_id}.\n\n# heading kept",
        files_changed=files if files is not None else (["x"] if patch else []),
        review_comments=comments or [],
        usage=Usage(input_tokens=100, output_tokens=20, cached_input_tokens=5),
        cost_usd=cost,
        started_at=T0 + timedelta(seconds=start),
        finished_at=T0 + timedelta(seconds=start + duration),
        duration_s=duration,
        error="boom" if status == "failed" else None,
    )
    folder = results / "tasks" / task_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(result.model_dump_json(), encoding="utf-8")
    (folder / "changes.patch").write_bytes(patch)
    return result


def user_state(repo: Path) -> tuple[str, str, str, str]:
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        git(repo, "status", "--porcelain"),
        (repo / "src/app.py").read_text(),
    )


def test_three_tasks_three_commits_in_plan_order(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["alpha", "beta", "gamma"])
    write_result(out, plan, "alpha", make_patch(repo, tmp_path, {"src/app.py": "A = 1\n"}))
    write_result(out, plan, "beta", make_patch(repo, tmp_path, {"src/util.py": None}))
    write_result(out, plan, "gamma", make_patch(repo, tmp_path, {"new/file.txt": "new\n"}))
    before = user_state(repo)

    agg = aggregate_run(plan, out, repo, out)

    assert agg.status == "succeeded", agg.reason
    assert agg.branch == "orchestrator/run-1"
    assert [t.applied for t in agg.tasks] == [True, True, True]
    assert git(repo, "rev-parse", "orchestrator/run-1") == agg.head_sha
    log = git(repo, "log", "--format=%s", f"{plan.base_sha}..orchestrator/run-1").splitlines()
    assert log == ["Implement gamma", "Implement beta", "Implement alpha"]
    message = git(repo, "log", "-1", "--format=%B", agg.tasks[0].commit or "")
    assert "# heading kept" in message
    trailers = git(repo, "log", "-1", "--format=%(trailers)", agg.tasks[0].commit or "")
    assert "Orchestrator-Task: alpha" in trailers
    assert "Orchestrator-Agent: codex" in trailers
    assert "Orchestrator-Tokens: 100/20" in trailers
    assert "Orchestrator-Cost: 0.010000" in trailers
    assert "Orchestrator-Run: run-1" in trailers
    tree = git(repo, "ls-tree", "-r", "--name-only", "orchestrator/run-1").splitlines()
    assert "new/file.txt" in tree and "src/util.py" not in tree
    # The user's checkout is untouched and no worktree is left behind.
    assert user_state(repo) == before
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    on_disk = read_model(out / "aggregate.json", Aggregate)
    assert on_disk == agg
    assert (out / "summary.md").read_text().startswith("## ")


def test_same_line_edit_is_a_kept_conflict(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["first", "second"])
    write_result(out, plan, "first", make_patch(repo, tmp_path, {"src/app.py": "ONE\n"}))
    second = make_patch(repo, tmp_path, {"src/app.py": "TWO\n", "src/util.py": "VALUE = 2\n"})
    write_result(out, plan, "second", second)

    agg = aggregate_run(plan, out, repo, out)

    assert agg.status == "partial"
    first, other = agg.tasks
    assert first.applied and not other.applied
    assert other.conflict_files == ["src/app.py"]
    assert agg.conflicts[0].task_id == "second"
    assert agg.conflicts[0].files == ["src/app.py"]
    assert agg.conflicts[0].patch == "conflicts/second.patch"
    assert (out / "conflicts" / "second.patch").read_bytes() == second
    assert "conflict (second): src/app.py" in agg.reason
    # Nothing of the conflicting patch leaked into the branch (util.py is unchanged).
    assert git(repo, "show", "orchestrator/run-1:src/util.py") == "VALUE = 1"
    assert git(repo, "show", "orchestrator/run-1:src/app.py") == "ONE"
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_nearby_hunks_in_one_file_merge_three_way(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["top", "bottom"])
    top = LONG.replace("line 8\n", "line EIGHT\n")
    bottom = LONG.replace("line 11\n", "line ELEVEN\n")
    write_result(out, plan, "top", make_patch(repo, tmp_path, {"docs/long.txt": top}))
    write_result(out, plan, "bottom", make_patch(repo, tmp_path, {"docs/long.txt": bottom}))

    agg = aggregate_run(plan, out, repo, out)

    assert agg.status == "succeeded", agg.reason
    merged = git(repo, "show", "orchestrator/run-1:docs/long.txt")
    assert "line EIGHT" in merged and "line ELEVEN" in merged


@pytest.mark.parametrize("allow", [False, True])
def test_workflow_patch_needs_permission(repo: Path, tmp_path: Path, allow: bool) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["wf"], allow_workflow_edits=allow)
    patch = make_patch(repo, tmp_path, {".github/workflows/ci.yml": "on: [push, pull_request]\n"})
    write_result(out, plan, "wf", patch)

    agg = aggregate_run(plan, out, repo, out)

    task = agg.tasks[0]
    if allow:
        assert task.applied and agg.status == "succeeded"
    else:
        assert not task.applied and task.status == "failed"
        assert task.error and ".github/workflows/ci.yml" in task.error
        assert "refused" in task.error
        assert agg.status == "failed" and agg.branch is None
        assert not agg.conflicts


def test_rename_out_of_workflows_is_refused(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["mv"])
    patch = make_patch(repo, tmp_path, {".github/workflows/ci.yml": None, "ci.yml": "on: push\n"})
    assert b"rename from .github/workflows/ci.yml" in patch
    write_result(out, plan, "mv", patch)

    agg = aggregate_run(plan, out, repo, out)

    assert agg.tasks[0].status == "failed" and not agg.tasks[0].applied


def test_git_config_patch_is_refused(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["evil", "fine"], allow_workflow_edits=True)
    evil = (
        b"diff --git a/.git/config b/.git/config\n"
        b"--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-[core]\n+[core] # evil\n"
    )
    write_result(out, plan, "evil", evil)
    write_result(out, plan, "fine", make_patch(repo, tmp_path, {"README.md": "# fine\n"}))
    config_before = (repo / ".git" / "config").read_text()

    agg = aggregate_run(plan, out, repo, out)

    assert agg.tasks[0].status == "failed"
    assert agg.tasks[0].error and ".git/config" in agg.tasks[0].error
    assert agg.tasks[1].applied and agg.status == "partial"
    assert (repo / ".git" / "config").read_text() == config_before


def test_invalid_patch_is_a_visible_failure(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["junk"])
    write_result(out, plan, "junk", b"this is not a patch\n")

    agg = aggregate_run(plan, out, repo, out)

    assert agg.status == "failed"
    assert agg.tasks[0].error and "not a valid git patch" in agg.tasks[0].error


def test_missing_result_is_a_failed_task(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["alive", "dead"])
    write_result(out, plan, "alive", make_patch(repo, tmp_path, {"README.md": "# hi\n"}))

    agg = aggregate_run(plan, out, repo, out)

    dead = agg.tasks[1]
    assert dead.status == "failed" and not dead.applied
    assert dead.error == "artifact missing: tasks/dead/result.json"
    assert agg.status == "partial"
    assert "dead: artifact missing" in agg.reason
    assert agg.totals.cost_usd is None  # a leg that died spent an unknown amount
    assert "dead" in (out / "summary.md").read_text()


def test_all_results_missing_fails_the_run(repo: Path, tmp_path: Path) -> None:
    agg = aggregate_run(make_plan(repo, ["a", "b"]), tmp_path / "r", repo, tmp_path / "o")
    assert agg.status == "failed"
    assert agg.branch is None
    assert (tmp_path / "o" / "aggregate.json").is_file()


def test_patch_missing_while_files_changed_is_a_failure(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["ghost"])
    write_result(out, plan, "ghost", b"", files=["src/app.py"])

    agg = aggregate_run(plan, out, repo, out)

    assert agg.tasks[0].status == "failed"
    assert agg.tasks[0].error and "changes.patch" in agg.tasks[0].error


def test_malformed_result_names_file_and_field(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["bad"])
    write_result(out, plan, "bad")
    path = out / "tasks" / "bad" / "result.json"
    data = json.loads(path.read_text())
    data["status"] = "exploded"
    path.write_text(json.dumps(data))

    with pytest.raises(InputError) as caught:
        aggregate_run(plan, out, repo, out)

    assert caught.value.exit_code == 2
    assert caught.value.field == "status"
    assert str(path) in str(caught.value)


def test_result_for_another_task_is_an_input_error(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["mine"])
    write_result(out, plan, "theirs")
    (out / "tasks" / "theirs").rename(out / "tasks" / "mine")

    with pytest.raises(InputError, match="task_id"):
        aggregate_run(plan, out, repo, out)


def test_review_task_without_patch_is_listed_with_comments(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["review"])
    comment = ReviewComment(path="src/app.py", line=2, body="Use an f-string.")
    write_result(out, plan, "review", comments=[comment])
    before = git(repo, "for-each-ref")

    agg = aggregate_run(plan, out, repo, out)

    task = agg.tasks[0]
    assert agg.status == "succeeded"
    assert not task.applied and task.commit is None and task.conflict_files == []
    assert agg.review_comments == [comment.model_copy(update={"task_id": "review"})]
    assert agg.branch is None and agg.head_sha == plan.base_sha
    assert git(repo, "for-each-ref") == before  # no branch for a run with nothing to merge
    assert "Review comments: 1" in (out / "summary.md").read_text()


def test_budget_exceeded_work_is_applied_and_marked(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["big"])
    write_result(
        out,
        plan,
        "big",
        make_patch(repo, tmp_path, {"README.md": "# p\n"}),
        status="budget_exceeded",
    )

    agg = aggregate_run(plan, out, repo, out)

    assert agg.tasks[0].applied and agg.status == "partial"
    body = git(repo, "log", "-1", "--format=%B", "orchestrator/run-1")
    assert "Orchestrator-Status: budget_exceeded" in body
    assert "Partial work" in body


def test_failed_task_patch_is_not_applied(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["ok", "broken"])
    write_result(out, plan, "ok", make_patch(repo, tmp_path, {"README.md": "# ok\n"}))
    write_result(
        out, plan, "broken", make_patch(repo, tmp_path, {"src/util.py": "X\n"}), status="failed"
    )

    agg = aggregate_run(plan, out, repo, out)

    assert [t.applied for t in agg.tasks] == [True, False]
    assert agg.status == "partial" and "broken: boom" in agg.reason


def test_cost_none_propagates_and_is_shown_unknown(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["a", "b"])
    write_result(out, plan, "a", cost=0.5)
    write_result(out, plan, "b", cost=None)

    agg = aggregate_run(plan, out, repo, out)

    assert agg.tasks[1].cost_usd is None
    assert agg.totals.cost_usd is None
    assert agg.totals.input_tokens == 200 and agg.totals.output_tokens == 40
    assert agg.totals.cached_input_tokens == 10
    summary = (out / "summary.md").read_text()
    assert "Cost: unknown" in summary and "$0.0000" not in summary


def test_speedup_math(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["a", "b", "c"])
    write_result(out, plan, "a", start=0, duration=10, cost=0.25)
    write_result(out, plan, "b", start=0, duration=10, cost=0.25)
    write_result(out, plan, "c", start=10, duration=10, cost=0.5)

    agg = aggregate_run(plan, out, repo, out)

    assert agg.totals.task_s_sum == 30
    assert agg.totals.wall_s == 20
    assert agg.totals.speedup == 1.5
    assert agg.totals.cost_usd == pytest.approx(1.0)
    given = aggregate_run(plan, out, repo, out, wall_s=15)
    assert given.totals.wall_s == 15 and given.totals.speedup == 2.0
    zero = aggregate_run(plan, out, repo, out, wall_s=0)
    assert zero.totals.speedup == 0


def test_rerun_is_idempotent_and_resets_the_branch(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["a", "b"])
    write_result(out, plan, "a", make_patch(repo, tmp_path, {"README.md": "# a\n"}))
    write_result(out, plan, "b", make_patch(repo, tmp_path, {"src/util.py": "VALUE = 3\n"}))
    first = aggregate_run(plan, out, repo, out)
    git(repo, "branch", "-f", "orchestrator/run-1", "main")  # someone moved it

    second = aggregate_run(plan, out, repo, out)

    assert second.head_sha == first.head_sha
    assert git(repo, "rev-parse", "orchestrator/run-1") == first.head_sha
    assert [t.commit for t in second.tasks] == [t.commit for t in first.tasks]
    assert second.model_dump() == first.model_dump()


def test_custom_branch_and_checked_out_branch_refused(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["a"])
    write_result(out, plan, "a", make_patch(repo, tmp_path, {"README.md": "# a\n"}))

    agg = aggregate_run(plan, out, repo, out, branch="feature/x")
    assert agg.branch == "feature/x"
    with pytest.raises(InputError, match="checked out"):
        aggregate_run(plan, out, repo, out, branch="main")
    with pytest.raises(InputError, match="branch"):
        aggregate_run(plan, out, repo, out, branch="bad..name")
    assert git(repo, "status", "--porcelain") == ""


def test_unknown_base_sha_is_an_input_error(repo: Path, tmp_path: Path) -> None:
    plan = make_plan(repo, ["a"]).model_copy(update={"base_sha": "0" * 40})
    with pytest.raises(InputError, match="base_sha"):
        aggregate_run(plan, tmp_path, repo, tmp_path)


def test_stale_conflict_patch_is_removed_on_rerun(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["a"])
    write_result(out, plan, "a", make_patch(repo, tmp_path, {"README.md": "# a\n"}))
    stale = out / "conflicts" / "a.patch"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")

    aggregate_run(plan, out, repo, out)

    assert not stale.exists()


def test_skipped_plan_writes_both_files(repo: Path, tmp_path: Path) -> None:
    plan = make_plan(repo, []).model_copy(update={"status": "skipped", "reason": "not trusted"})
    agg = aggregate_run(plan, tmp_path / "r", repo, tmp_path / "o")
    assert agg.status == "succeeded"
    assert agg.reason == "plan skipped: not trusted"
    assert agg.branch is None
    assert read_model(tmp_path / "o" / "aggregate.json", Aggregate) == agg
    assert "plan skipped" in (tmp_path / "o" / "summary.md").read_text()


def test_plan_without_tasks_fails(repo: Path, tmp_path: Path) -> None:
    agg = aggregate_run(make_plan(repo, []), tmp_path, repo, tmp_path / "o")
    assert agg.status == "failed" and agg.reason == "plan has no tasks"


def test_load_results_returns_present_results(repo: Path, tmp_path: Path) -> None:
    plan = make_plan(repo, ["a", "b"])
    result = write_result(tmp_path, plan, "a")
    assert load_results(plan, tmp_path) == {"a": result}


def test_summary_has_graph_classes_and_table(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = make_plan(repo, ["first", "second"])
    write_result(out, plan, "first", make_patch(repo, tmp_path, {"src/app.py": "ONE\n"}))
    write_result(out, plan, "second", make_patch(repo, tmp_path, {"src/app.py": "TWO\n"}))

    aggregate_run(plan, out, repo, out)

    summary = (out / "summary.md").read_text()
    assert "```mermaid\nflowchart TD" in summary
    assert "t_first --> t_second" in summary
    assert "classDef succeeded" in summary and "class t_first succeeded" in summary
    assert "classDef conflict" in summary and "class t_second conflict" in summary
    assert "gantt" in summary and "dateFormat x" in summary
    assert "| Task | Type | Agent | Status |" in summary
    assert "| `first` | implement | codex |" in summary
    assert "conflicts/second.patch" in summary


# --------------------------------------------------------------------------- helpers


def test_header_paths_reads_quoted_renames_and_skips_hunk_bodies() -> None:
    patch = (
        'diff --git "a/sp ace\\303\\251.txt" "b/sp ace\\303\\251.txt"\n'
        "index 1..2 100644\n"
        '--- "a/sp ace\\303\\251.txt"\n'
        '+++ "b/sp ace\\303\\251.txt"\n'
        "@@ -1,2 +1,2 @@\n"
        "--- a/.git/config\n"
        "+rename from .github/workflows/x.yml\n"
        " keep\n"
        "diff --git a/old name.txt b/new name.txt\n"
        "similarity index 90%\n"
        "rename from old name.txt\n"
        "rename to new name.txt\n"
    )
    assert header_paths(patch) == {"sp aceé.txt", "old name.txt", "new name.txt"}


def test_patch_paths_uses_git_and_headers(repo: Path, tmp_path: Path) -> None:
    patch = make_patch(repo, tmp_path, {"src/app.py": None, "src/moved.py": "x\n"})
    assert {"src/app.py", "src/moved.py"} <= patch_paths(repo, patch)
    with pytest.raises(ValueError):
        patch_paths(repo, b"nonsense\n")


def refusal(paths: set[str], *, allow_workflow_edits: bool) -> str | None:
    return patch_refusal(b"", paths, allow_workflow_edits=allow_workflow_edits)


def test_refusal_rules() -> None:
    assert refusal({"src/a.py"}, allow_workflow_edits=False) is None
    assert refusal({".github/workflows/a.yml"}, allow_workflow_edits=True) is None
    assert refusal({".github/workflows/a.yml"}, allow_workflow_edits=False)
    assert refusal({".git/hooks/pre-commit"}, allow_workflow_edits=True)
    assert refusal({"sub/.GIT/config"}, allow_workflow_edits=True)


def test_commit_message_trims_subject_and_marks_unknown_cost() -> None:
    task = Task(
        id="t", type="x", title="  " + "word " * 30 + "\nsecond", instructions="", agent="a", wave=1
    )
    result = TaskResult(
        task_id="t", status="succeeded", agent="b", cost_usd=None, started_at=T0, finished_at=T0
    )
    message = commit_message(task, result, "r")
    subject = message.splitlines()[0]
    assert len(subject) <= 72 and subject.startswith("word word")
    assert "Orchestrator-Cost: unknown" in message
    assert "Orchestrator-Agent: b" in message


def test_run_status_rules() -> None:
    ok = AggregateTask(id="a", status="succeeded")
    conflict = AggregateTask(id="b", status="succeeded", conflict_files=["f"])
    failed = AggregateTask(id="c", status="failed", error="x")
    assert run_status([ok])[0] == "succeeded"
    assert run_status([ok, conflict])[0] == "partial"
    assert run_status([conflict])[0] == "failed"
    assert run_status([failed])[0] == "failed"
    assert run_status([])[0] == "failed"


def test_compute_totals_without_results() -> None:
    totals = compute_totals([], [], None)
    assert totals.wall_s == 0 and totals.speedup == 0 and totals.cost_usd == 0


def test_worktree_is_removed_when_git_fails(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A git failure in the 3-way fallback's worktree leaves no worktree, branch or change."""
    import orchestrator.merge as merge_module
    from orchestrator.gitrepo import GitError

    real = merge_module.run_git

    def explode(tree: Path, *args: str, **kwargs: object) -> object:
        if "apply" in args and "--3way" in args:
            raise GitError(["apply"], 1, "disk full")
        return real(tree, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(merge_module, "run_git", explode)
    out = tmp_path / "out"
    plan = make_plan(repo, ["a", "b"])
    # b's context was changed by a: only git's 3-way merge can apply it (the fallback).
    write_result(
        out,
        plan,
        "a",
        make_patch(repo, tmp_path, {"docs/long.txt": LONG.replace("line 5\n", "line FIVE\n")}),
    )
    write_result(
        out,
        plan,
        "b",
        make_patch(repo, tmp_path, {"docs/long.txt": LONG.replace("line 6\n", "line SIX\n")}),
    )
    before = user_state(repo)

    with pytest.raises(GitError):
        aggregate_run(plan, out, repo, out)

    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert user_state(repo) == before
    assert git(repo, "branch", "--list", "orchestrator/*") == ""
