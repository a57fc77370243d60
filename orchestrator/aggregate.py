"""Task results → one merged branch, ``aggregate.json`` and ``summary.md``.

The aggregator reads every task's ``result.json`` and ``changes.patch`` (plan order), merges
the patches onto the plan's pinned ``base_sha`` with the merge engine (``merge.py``: in memory,
``git apply --3way`` as the fallback, the same code that built each wave's stacked tree), writes
one commit per applied task with one ``git fast-import``, and points ``orchestrator/<run_id>``
at the result. The user's checkout, index and current branch are never touched. Nothing is
dropped silently: a missing artifact is a failed task, a patch the sandbox could not have made
is refused, and a patch that does not apply is a conflict with the patch kept under
``conflicts/``.

Commit dates come from each result's ``finished_at``, so aggregating the same plan and results
again gives the same commits (same SHAs), and the branch is reset to them.
"""

from __future__ import annotations

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
    VerifyOutcome,
    VerifyRecord,
)
from orchestrator.errors import InputError
from orchestrator.fileio import read_model, write_atomic, write_model
from orchestrator.gitrepo import git_text, run_git, write_commits
from orchestrator.markdown import one_line
from orchestrator.merge import Conflicted, Merger, Outcome, Refused, git_env
from orchestrator.runfolder import RunFolder
from orchestrator.text import plural

#: Result statuses whose patch is applied (over-budget work is kept, marked in the commit).
APPLY_STATUSES = frozenset({"succeeded", "budget_exceeded"})
SUBJECT_MAX = 72


@dataclass
class TaskInput:
    """What one plan task left in the results folder."""

    task: Task
    result: TaskResult | None
    patch: bytes
    error: str | None = None


# --------------------------------------------------------------------------- reading inputs


def load_results(plan: Plan, results_dir: Path) -> dict[str, TaskResult]:
    """The results present under ``results_dir/tasks/<id>/result.json``, by task id: the
    plan's tasks, then the repair tasks the verify stage ran (``verify.json``).

    Raises:
        InputError: a result file is malformed or belongs to another task or run.
    """
    verified = read_verify(plan, results_dir)
    repairs = repair_inputs(plan, verified, results_dir) if verified else []
    inputs = [*read_inputs(plan, results_dir), *repairs]
    return {i.task.id: i.result for i in inputs if i.result is not None}


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


def read_verify(plan: Plan, results_dir: Path) -> VerifyOutcome | None:
    """The verify stage's ``verify.json``, if it ran, checked to belong to this run.

    Raises:
        InputError: the file is malformed or belongs to another run (exit 2, naming it).
    """
    path = RunFolder(results_dir).verify
    if not path.is_file():
        return None
    outcome = read_model(path, VerifyOutcome)
    for field, want in (("run_id", plan.run_id), ("base_sha", plan.base_sha)):
        if getattr(outcome, field) != want:
            raise InputError(str(path), field, f"expected {want!r}: verify.json is of another run")
    return outcome


def repair_inputs(plan: Plan, outcome: VerifyOutcome, results_dir: Path) -> list[TaskInput]:
    """The repair tasks that ran, in the order they land: a kept one with its patch, one that
    was not kept without it (listed and accounted, never merged)."""
    folder = RunFolder(results_dir)
    inputs = []
    for repair in outcome.repairs:
        task = Task(
            id=repair.task_id,
            type=repair.task_type,
            title=repair.title,
            instructions="",
            agent="-",
            wave=plan.waves + 1,
        )
        result = folder.read_result(plan, task)
        if result is None:
            if repair.kept:
                missing = f"artifact missing: tasks/{task.id}/result.json"
                inputs.append(TaskInput(task, None, b"", missing))
            continue  # never ran (no agent for its type): verify.json says why
        patch_path = folder.patch(task.id)
        patch = patch_path.read_bytes() if repair.kept and patch_path.is_file() else b""
        inputs.append(TaskInput(task, result, patch if patch.strip() else b""))
    return inputs


# --------------------------------------------------------------------------- commits


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


def update_branch(repo: Path, branch: str, sha: str) -> None:
    """Create or force ``branch`` to ``sha``; refuse a branch checked out in some worktree."""
    ref = f"refs/heads/{branch}"
    listing = git_text(repo, "worktree", "list", "--porcelain", env=git_env())
    if f"branch {ref}" in listing.splitlines():
        raise InputError("--branch", "", f"{branch} is checked out in a worktree; not resetting it")
    run_git(repo, "update-ref", "-m", "orchestrator aggregate", ref, sha, env=git_env())


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
            id=item.task.id,
            status="failed",
            type=item.task.type,
            agent=item.task.agent,
            cost_usd=None,
            error=item.error,
        )
    duration = result.duration_s or max(
        0.0, (_utc(result.finished_at) - _utc(result.started_at)).total_seconds()
    )
    return AggregateTask(
        id=item.task.id,
        status="failed" if item.error else result.status,
        type=item.task.type,
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
    plan: Plan,
    inputs: list[TaskInput],
    repo: Path,
    base: str,
    out_dir: Path,
    repairs: list[TaskInput] | None = None,
) -> Merge:
    """Apply each applicable patch in plan order (``merge.Merger``), then the kept repair
    tasks' patches in the verify stage's order; one commit each."""
    repairs = repairs or []
    inputs = [*inputs, *repairs]
    lines = [_line(item) for item in inputs]
    conflicts: list[Conflict] = []
    merger = Merger(repo, base, allow_workflow_edits=plan.limits.allow_workflow_edits)
    for item, line in zip(inputs, lines, strict=True):
        outcome = apply_input(merger, item, plan.run_id)
        if outcome is None:
            continue
        if isinstance(outcome, Refused):
            line.status, line.error = "failed", outcome.reason
        elif isinstance(outcome, Conflicted):
            line.conflict_files = outcome.files
            conflict = Conflict(
                task_id=item.task.id, files=outcome.files, patch=f"conflicts/{item.task.id}.patch"
            )
            _keep_patch(out_dir, conflict, item.patch)
            conflicts.append(conflict)
        else:
            line.applied = True
    committed = [task_id for task_id in merger.applied]
    shas = write_commits(repo, base, merger.commits)
    by_task = dict(zip(committed, shas, strict=True))
    for line in lines:
        line.commit = by_task.get(line.id)
    return Merge(lines, conflicts, shas[-1] if shas else base)


def apply_input(merger: Merger, item: TaskInput, run_id: str) -> Outcome | None:
    """Apply one task's patch as a commit of ``merger``; ``None`` when there is nothing to
    apply (no result or patch, an error, a status whose work is not kept)."""
    result = item.result
    if not (result and item.patch and not item.error and result.status in APPLY_STATUSES):
        return None
    message = commit_message(item.task, result, run_id)
    return merger.apply(item.task.id, item.patch, message=message, date=result.finished_at)


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


def _mark_repairs(lines: list[AggregateTask], verified: VerifyOutcome) -> None:
    """Name what each repair task repaired, and which conflicts a resolution merged."""
    by_id = {line.id: line for line in lines}
    for repair in verified.repairs:
        line = by_id.get(repair.task_id)
        if line is None:
            continue
        line.repair_of = repair.of
        if not repair.kept and line.status == "succeeded":
            line.error = f"not kept: {repair.reason or 'the final verify did not pass'}"
        target = by_id.get(repair.of)
        if repair.kind == "resolve" and line.applied and target is not None:
            target.resolved_by = repair.task_id


def _conflicted(task: AggregateTask) -> bool:
    return bool(task.conflict_files) and not task.applied and task.resolved_by is None


def run_status(
    lines: list[AggregateTask], verify: VerifyRecord | None = None
) -> tuple[RunStatus, str]:
    """``succeeded`` when all tasks succeeded and merged; ``failed`` when nothing useful did.

    A task is useful when it succeeded and its patch (if any) applied (or a resolve task merged
    it), or when it ran over budget and its partial work applied; everything else — and a
    failed verify of the merged branch — makes the run ``partial``.
    """
    if not lines:
        return "failed", "plan has no tasks"
    conflicted = [t for t in lines if _conflicted(t)]
    ok = [t for t in lines if t.status == "succeeded" and not _conflicted(t)]
    useful = ok + [t for t in lines if t.status == "budget_exceeded" and t.applied]
    verify_failed = verify is not None and verify.status == "failed"
    if len(ok) == len(lines) and not verify_failed:
        applied = sum(1 for t in lines if t.applied)
        resolved = sum(1 for t in lines if t.resolved_by)
        repairs = sum(1 for t in lines if t.repair_of)
        tasks = plural(len(lines) - repairs, "task")
        if repairs:
            tasks += f" and {plural(repairs, 'repair task')}"
        reason = f"{tasks} succeeded, {plural(applied, 'patch', 'patches')} applied" + (
            f", {plural(resolved, 'conflict')} resolved" if resolved else ""
        )
        return "succeeded", reason + _verify_words(verify)
    parts = []
    if verify_failed and verify is not None:
        culprit = f", first red at {verify.culprit}" if verify.culprit else ""
        parts.append(f"verify failed ({one_line(verify.command or '?', 60)}{culprit})")
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
    if not verify_failed:
        parts[-1:] = [parts[-1] + _verify_words(verify)] if parts else []
    return ("partial" if useful else "failed"), "; ".join(parts)


def _verify_words(verify: VerifyRecord | None) -> str:
    if verify is None:
        return ""
    if verify.status == "passed":
        return f"; verify passed ({one_line(verify.command or '?', 60)})"
    if verify.status == "skipped":
        return f"; verify skipped ({one_line(verify.reason, 120)})"
    return ""


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
    verified = read_verify(plan, results_dir)
    repairs = repair_inputs(plan, verified, results_dir) if verified else []
    results = {i.task.id: i.result for i in [*inputs, *repairs] if i.result is not None}
    base = _resolve_base(plan, repo)
    if any(i.patch for i in [*inputs, *repairs]):
        _check_branch(repo, branch)
    merge = merge_patches(plan, inputs, repo, base, out_dir, repairs)
    if verified is not None:
        _mark_repairs(merge.tasks, verified)
    made_commits = merge.head_sha != base
    if made_commits:
        update_branch(repo, branch, merge.head_sha)
    _drop_stale_conflicts(out_dir, plan, merge.conflicts)
    status, reason = run_status(merge.tasks, verified.verify if verified else None)
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
        totals=compute_totals(merge.tasks, list(results.values()), wall_s).model_copy(
            update={"verify_s": verified.stage_s if verified else 0.0}
        ),
        verify=verified.verify if verified else None,
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
