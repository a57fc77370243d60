"""Task results → one merged branch, ``aggregate.json`` and ``summary.md``.

The aggregator reads every task's ``result.json`` and ``changes.patch`` (plan order), applies
the patches 3-way onto the plan's pinned ``base_sha`` in a temporary detached worktree (so the
user's checkout, index and current branch are never touched), makes one commit per applied
task, and points ``orchestrator/<run_id>`` at the result. Nothing is dropped silently: a missing
artifact is a failed task, a patch touching a protected path is refused, and a patch that does
not apply is recorded as a conflict with the patch kept under ``conflicts/``.

Commit dates come from each result's ``finished_at``, so aggregating the same plan and results
again gives the same commits (same SHAs), and the branch is reset to them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator import report
from orchestrator.contracts import (
    Aggregate,
    AggregateTask,
    Conflict,
    Plan,
    ReviewComment,
    RunStatus,
    Task,
    TaskResult,
    Totals,
)
from orchestrator.errors import InputError
from orchestrator.fileio import write_atomic, write_model
from orchestrator.gitrepo import commit_env, git_text, run_git
from orchestrator.markdown import one_line
from orchestrator.patches import patch_paths, patch_refusal
from orchestrator.runfolder import RunFolder
from orchestrator.text import plural

#: Result statuses whose patch is applied (over-budget work is kept, marked in the commit).
APPLY_STATUSES = frozenset({"succeeded", "budget_exceeded"})
SUBJECT_MAX = 72
#: Git settings for our own worktree: no user hooks, no signing prompts, no rerere.
_SAFE_CONFIG = (
    "-c",
    f"core.hooksPath={os.devnull}",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "rerere.enabled=false",
)
#: Variables that would redirect git away from the worktree we pass with ``-C``.
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")


@dataclass
class TaskInput:
    """What one plan task left in the results folder."""

    task: Task
    result: TaskResult | None
    patch: bytes
    error: str | None = None


# --------------------------------------------------------------------------- reading inputs


def load_results(plan: Plan, results_dir: Path) -> dict[str, TaskResult]:
    """The results present under ``results_dir/tasks/<id>/result.json``, by task id.

    Raises:
        InputError: a result file is malformed or belongs to another task.
    """
    return {i.task.id: i.result for i in read_inputs(plan, results_dir) if i.result is not None}


def read_inputs(plan: Plan, results_dir: Path) -> list[TaskInput]:
    """Each plan task's result and patch, in plan order; missing artifacts become errors."""
    inputs = []
    run = RunFolder(results_dir)
    for task in plan.tasks:
        result = run.read_result(plan, task)
        if result is None:
            missing = f"artifact missing: tasks/{task.id}/result.json"
            inputs.append(TaskInput(task, None, b"", missing))
            continue
        patch_path = run.patch(task.id)
        patch = patch_path.read_bytes() if patch_path.is_file() else b""
        error = None
        if not patch.strip() and result.files_changed and result.status in APPLY_STATUSES:
            error = (
                f"artifact missing: tasks/{task.id}/changes.patch is empty but the result "
                f"lists {plural(len(result.files_changed), 'changed file')}"
            )
        inputs.append(TaskInput(task, result, patch if patch.strip() else b"", error))
    return inputs


# --------------------------------------------------------------------------- git worktree


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = commit_env(extra)
    for name in _GIT_LOCATION_VARS:
        env.pop(name, None)
    return env


@contextmanager
def temporary_worktree(repo: Path, base_sha: str) -> Iterator[Path]:
    """A detached worktree of ``repo`` at ``base_sha``, removed (and pruned) afterwards."""
    holder = Path(tempfile.mkdtemp(prefix="orchestrator-aggregate-"))
    tree = holder / "tree"
    env = _env()
    run_git(repo, *_SAFE_CONFIG, "worktree", "add", "--detach", "-q", str(tree), base_sha, env=env)
    try:
        yield tree
    finally:
        run_git(repo, "worktree", "remove", "--force", str(tree), check=False, env=env)
        shutil.rmtree(holder, ignore_errors=True)
        run_git(repo, "worktree", "prune", check=False, env=env)


def _reset(tree: Path) -> None:
    run_git(tree, "reset", "-q", "--hard", "HEAD", env=_env())
    run_git(tree, "clean", "-q", "-fdx", env=_env())


_APPLY_ERRORS = (
    re.compile(r"^error: patch failed: (.+):\d+$"),
    re.compile(
        r"^error: (.+?): (?:patch does not apply|already exists in (?:index|working directory)"
        r"|does not exist in index|does not match index|No such file or directory)$"
    ),
)


def _failed_paths(stderr: str) -> list[str]:
    found: list[str] = []
    for line in stderr.splitlines():
        for pattern in _APPLY_ERRORS:
            match = pattern.match(line.strip())
            if match and match.group(1) not in found:
                found.append(match.group(1))
    return found


def apply_patch(tree: Path, patch_file: Path, paths: set[str]) -> list[str]:
    """Apply a patch 3-way to the worktree's index; return conflicting files (``[]`` = applied).

    On a conflict the worktree is restored to its last commit.
    """
    proc = run_git(
        tree,
        *_SAFE_CONFIG,
        "apply",
        "--3way",
        "--index",
        "--whitespace=nowarn",
        str(patch_file),
        check=False,
        env=_env(),
    )
    if proc.returncode == 0:
        return []
    unmerged = git_text(tree, "diff", "--name-only", "--diff-filter=U", env=_env())
    files = unmerged.splitlines() or _failed_paths(proc.stderr.decode("utf-8", "replace"))
    _reset(tree)
    return files or sorted(paths)


def _git_date(moment: datetime) -> str:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return f"{int(aware.timestamp())} +0000"


def commit_message(task: Task, result: TaskResult, run_id: str) -> str:
    """Subject (task title, ≤72 chars), the agent's summary, then ``Orchestrator-*`` trailers."""
    title = one_line(task.title.strip().splitlines()[0] if task.title.strip() else task.id)
    subject = title if len(title) <= SUBJECT_MAX else title[: SUBJECT_MAX - 1].rstrip() + "…"
    body = []
    if result.status == "budget_exceeded":
        body.append("Partial work: the task stopped at its budget (budget_exceeded).")
    if result.summary.strip():
        body.append(result.summary.strip())
    cost = "unknown" if result.cost_usd is None else f"{result.cost_usd:.6f}"
    trailers = [
        f"Orchestrator-Task: {task.id}",
        f"Orchestrator-Agent: {one_line(result.agent or task.agent, 100)}",
        f"Orchestrator-Tokens: {result.usage.input_tokens}/{result.usage.output_tokens}",
        f"Orchestrator-Cost: {cost}",
        f"Orchestrator-Run: {one_line(run_id, 100)}",
    ]
    if result.status != "succeeded":
        trailers.append(f"Orchestrator-Status: {result.status}")
    return "\n\n".join([subject, *body, "\n".join(trailers)]) + "\n"


def commit_task(tree: Path, task: Task, result: TaskResult, run_id: str) -> str | None:
    """Commit the staged patch; return the new SHA, or ``None`` when it changed nothing."""
    if run_git(tree, "diff", "--cached", "--quiet", check=False, env=_env()).returncode == 0:
        return None
    date = _git_date(result.finished_at)
    env = _env({"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    message = commit_message(task, result, run_id).encode("utf-8")
    run_git(
        tree,
        *_SAFE_CONFIG,
        "commit",
        "-q",
        "--no-verify",
        "--cleanup=whitespace",
        "-F",
        "-",
        input_bytes=message,
        env=env,
    )
    return git_text(tree, "rev-parse", "HEAD", env=_env())


def update_branch(repo: Path, branch: str, sha: str) -> None:
    """Create or force ``branch`` to ``sha``; refuse a branch checked out in some worktree."""
    ref = f"refs/heads/{branch}"
    listing = git_text(repo, "worktree", "list", "--porcelain", env=_env())
    if f"branch {ref}" in listing.splitlines():
        raise InputError("--branch", "", f"{branch} is checked out in a worktree; not resetting it")
    run_git(repo, "update-ref", "-m", "orchestrator aggregate", ref, sha, env=_env())


def _resolve_base(plan: Plan, repo: Path) -> str:
    rev = plan.base_sha or "HEAD"
    proc = run_git(repo, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
    if proc.returncode != 0:
        raise InputError("plan", "base_sha", f"commit {rev} not found in {repo}")
    return proc.stdout.decode().strip()


def _check_branch(repo: Path, branch: str) -> None:
    proc = run_git(repo, "check-ref-format", "--branch", branch, check=False)
    if proc.returncode != 0 or branch.startswith("-"):
        raise InputError("--branch", "", f"{branch!r} is not a valid branch name")


# --------------------------------------------------------------------------- merging


@dataclass
class Merge:
    """The outcome of applying every patch."""

    tasks: list[AggregateTask]
    conflicts: list[Conflict]
    head_sha: str


def _line(item: TaskInput) -> AggregateTask:
    result = item.result
    if result is None:
        return AggregateTask(
            id=item.task.id, status="failed", agent=item.task.agent, cost_usd=None, error=item.error
        )
    duration = result.duration_s or max(
        0.0, (_utc(result.finished_at) - _utc(result.started_at)).total_seconds()
    )
    return AggregateTask(
        id=item.task.id,
        status="failed" if item.error else result.status,
        agent=result.agent,
        cost_usd=result.cost_usd,
        duration_s=duration,
        error=item.error or result.error,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        started_at=result.started_at,
        finished_at=result.finished_at,
    )


def merge_patches(
    plan: Plan, inputs: list[TaskInput], repo: Path, base: str, out_dir: Path
) -> Merge:
    """Apply each applicable patch in plan order in one temporary worktree; commit each."""
    lines = [_line(item) for item in inputs]
    conflicts: list[Conflict] = []
    allow = plan.limits.allow_workflow_edits
    todo = [
        (item, line)
        for item, line in zip(inputs, lines, strict=True)
        if item.result and item.patch and not item.error and item.result.status in APPLY_STATUSES
    ]
    if not todo:
        return Merge(lines, conflicts, base)
    scratch = Path(tempfile.mkdtemp(prefix="orchestrator-patches-"))
    try:
        with temporary_worktree(repo, base) as tree:
            for item, line in todo:
                conflict = _merge_one(plan, item, line, tree, scratch, allow)
                if conflict:
                    _keep_patch(out_dir, conflict, item.patch)
                    conflicts.append(conflict)
            head = git_text(tree, "rev-parse", "HEAD", env=_env())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Merge(lines, conflicts, head)


def _merge_one(
    plan: Plan, item: TaskInput, line: AggregateTask, tree: Path, scratch: Path, allow: bool
) -> Conflict | None:
    assert item.result is not None
    try:
        paths = patch_paths(tree, item.patch)
    except ValueError as exc:
        line.status, line.error = "failed", f"changes.patch is not a valid git patch: {exc}"
        return None
    refused = patch_refusal(item.patch, paths, allow_workflow_edits=allow, repo=tree)
    if refused:
        line.status, line.error = "failed", refused
        return None
    patch_file = scratch / f"{item.task.id}.patch"
    patch_file.write_bytes(item.patch)
    files = apply_patch(tree, patch_file, paths)
    if files:
        line.conflict_files = files
        return Conflict(task_id=item.task.id, files=files, patch=f"conflicts/{item.task.id}.patch")
    line.applied = True
    line.commit = commit_task(tree, item.task, item.result, plan.run_id)
    return None


def _keep_patch(out_dir: Path, conflict: Conflict, patch: bytes) -> None:
    write_atomic(out_dir / conflict.patch, patch)


def _drop_stale_conflicts(out_dir: Path, plan: Plan, conflicts: list[Conflict]) -> None:
    kept = {c.task_id for c in conflicts}
    for task in plan.tasks:
        if task.id not in kept:
            (out_dir / "conflicts" / f"{task.id}.patch").unlink(missing_ok=True)


# --------------------------------------------------------------------------- totals and status


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def compute_totals(
    lines: list[AggregateTask], results: list[TaskResult], wall_s: float | None
) -> Totals:
    """Summed tokens and cost (``None`` if any cost is unknown), wall time and speedup."""
    costs = [line.cost_usd for line in lines]
    task_s = sum(line.duration_s for line in lines)
    if wall_s is None:
        if results:
            start = min(_utc(r.started_at) for r in results)
            end = max(_utc(r.finished_at) for r in results)
            wall_s = max(0.0, (end - start).total_seconds())
        else:
            wall_s = 0.0
    return Totals(
        input_tokens=sum(r.usage.input_tokens for r in results),
        output_tokens=sum(r.usage.output_tokens for r in results),
        cached_input_tokens=sum(r.usage.cached_input_tokens for r in results),
        cost_usd=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        wall_s=round(wall_s, 3),
        task_s_sum=round(task_s, 3),
        speedup=round(task_s / wall_s, 3) if wall_s > 0 else 0.0,
        cost_simulated=any(r.cost_simulated for r in results),
    )


def _ids(lines: list[AggregateTask], limit: int = 3) -> str:
    shown = ", ".join(line.id for line in lines[:limit])
    return shown + (f" +{len(lines) - limit} more" if len(lines) > limit else "")


def run_status(lines: list[AggregateTask]) -> tuple[RunStatus, str]:
    """``succeeded`` when all tasks succeeded and merged; ``failed`` when nothing useful did.

    A task is useful when it succeeded and its patch (if any) applied, or when it ran over
    budget and its partial work applied; everything else makes the run ``partial``.
    """
    if not lines:
        return "failed", "plan has no tasks"
    conflicted = [t for t in lines if t.conflict_files and not t.applied]
    ok = [t for t in lines if t.status == "succeeded" and not (t.conflict_files and not t.applied)]
    useful = ok + [t for t in lines if t.status == "budget_exceeded" and t.applied]
    if len(ok) == len(lines):
        applied = sum(1 for t in lines if t.applied)
        return (
            "succeeded",
            f"{plural(len(lines), 'task')} succeeded, "
            f"{plural(applied, 'patch', 'patches')} applied",
        )
    parts = []
    for task in conflicted[:3]:
        files = ", ".join(task.conflict_files[:3])
        parts.append(f"conflict ({task.id}): {files}")
    if len(conflicted) > 3:
        parts.append(f"+{len(conflicted) - 3} more conflicts")
    for status, word in (("failed", "failed"), ("skipped", "skipped")):
        group = [t for t in lines if t.status == status]
        if group:
            errors = "; ".join(f"{t.id}: {one_line(t.error or status, 80)}" for t in group[:3])
            extra = f" +{len(group) - 3} more" if len(group) > 3 else ""
            parts.append(f"{plural(len(group), 'task')} {word} ({errors}{extra})")
    over = [t for t in lines if t.status == "budget_exceeded"]
    if over:
        parts.append(f"{plural(len(over), 'task')} over budget ({_ids(over)})")
    return ("partial" if useful else "failed"), "; ".join(parts)


# --------------------------------------------------------------------------- entry point


def _write(out_dir: Path, plan: Plan, aggregate: Aggregate, results: dict[str, TaskResult]) -> None:
    write_model(out_dir / "aggregate.json", aggregate)
    write_atomic(out_dir / "summary.md", report.render_summary(plan, aggregate, results))


def aggregate_run(
    plan: Plan,
    results_dir: Path,
    repo: Path,
    out_dir: Path,
    *,
    wall_s: float | None = None,
    branch: str | None = None,
) -> Aggregate:
    """Merge a run's task results into one branch and write ``aggregate.json`` + ``summary.md``.

    Args:
        plan: The validated plan (its ``base_sha`` is where the branch is cut).
        results_dir: Folder holding ``tasks/<id>/{result.json,changes.patch}``.
        repo: The git repository (its checkout, index and current branch are left alone).
        out_dir: Where ``aggregate.json``, ``summary.md`` and ``conflicts/`` go (may equal
            ``results_dir``).
        wall_s: Wall-clock time of the run when known; else max(finished) − min(started).
        branch: Branch to create or reset; default ``orchestrator/<run_id>``. It is only
            created when at least one commit was made (else ``Aggregate.branch`` is ``None``).

    Raises:
        InputError: a malformed or mismatched ``result.json``, an unknown ``base_sha`` or a bad
            branch name (exit 2).
        GitError: git itself failed (exit 1).
    """
    if plan.status == "skipped":
        skipped = Aggregate(
            run_id=plan.run_id,
            status="succeeded",
            reason=f"plan skipped: {plan.reason}",
            base_sha=plan.base_sha,
            head_sha=plan.base_sha,
        )
        _write(out_dir, plan, skipped, {})
        return skipped
    branch = branch or f"orchestrator/{plan.run_id}"
    inputs = read_inputs(plan, results_dir)
    results = {i.task.id: i.result for i in inputs if i.result is not None}
    base = _resolve_base(plan, repo)
    if any(i.patch for i in inputs):
        _check_branch(repo, branch)
    merge = merge_patches(plan, inputs, repo, base, out_dir)
    made_commits = merge.head_sha != base
    if made_commits:
        update_branch(repo, branch, merge.head_sha)
    _drop_stale_conflicts(out_dir, plan, merge.conflicts)
    status, reason = run_status(merge.tasks)
    aggregate = Aggregate(
        run_id=plan.run_id,
        status=status,
        reason=reason,
        branch=branch if made_commits else None,
        base_sha=base,
        head_sha=merge.head_sha,
        tasks=merge.tasks,
        conflicts=merge.conflicts,
        review_comments=_comments(inputs),
        totals=compute_totals(merge.tasks, list(results.values()), wall_s),
    )
    _write(out_dir, plan, aggregate, results)
    return aggregate


def _comments(inputs: list[TaskInput]) -> list[ReviewComment]:
    comments = []
    for item in inputs:
        if item.result is not None:
            for comment in item.result.review_comments:
                comments.append(comment.model_copy(update={"task_id": item.task.id}))
    return comments
