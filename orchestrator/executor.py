"""Local executor: runs a plan's DAG with asyncio, as the Actions matrix would, but in one process.

Ready-set scheduling: a task starts as soon as all its dependencies have finished and a slot
is free (``max_parallel``), not wave by wave, so a slow task never holds back unrelated work.
Each task runs through ``task_runner.run_task`` (the code a matrix job runs), so local and
Actions results are the same files. A task whose dependency failed is recorded as ``skipped``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.contracts import Plan, Task, TaskResult
from orchestrator.fileio import write_atomic, write_model
from orchestrator.progress import Progress
from orchestrator.task_runner import run_task, task_dir


class RunSpend:
    """Run-wide spend so far, read by every task's budget check before each model call."""

    def __init__(self) -> None:
        self.usd = 0.0

    def __call__(self) -> float:
        return self.usd


async def execute_plan(
    plan: Plan,
    *,
    repo: Path,
    out_dir: Path,
    max_parallel: int | None = None,
    progress: Progress | None = None,
) -> dict[str, TaskResult]:
    """Run every task of ``plan``; return results by task id (also written under ``out_dir``)."""
    limit = max(1, max_parallel or plan.max_parallel)
    slots = asyncio.Semaphore(limit)
    spend = RunSpend()
    results: dict[str, TaskResult] = {}
    finished: dict[str, asyncio.Event] = {task.id: asyncio.Event() for task in plan.tasks}

    async def one(task: Task) -> None:
        try:
            for dep in task.depends_on:
                await finished[dep].wait()
            blocked = [d for d in task.depends_on if results[d].status not in _USABLE]
            if blocked:
                results[task.id] = skip_task(plan, task, out_dir, blocked)
            else:
                async with slots:
                    if progress:
                        progress.started(task)
                    result = await run_task(
                        plan, task.id, workspace_root=repo, out_dir=out_dir, spent_usd=spend
                    )
                    spend.usd += result.cost_usd or 0.0
                    results[task.id] = result
            if progress:
                progress.finished(task, results[task.id])
        finally:
            finished[task.id].set()

    await asyncio.gather(*(one(task) for task in plan.tasks))
    return {task.id: results[task.id] for task in plan.tasks}


_USABLE = ("succeeded", "budget_exceeded")


def skip_task(plan: Plan, task: Task, out_dir: Path, blocked: list[str]) -> TaskResult:
    """Record a task that did not run because a dependency failed."""
    now = datetime.now(UTC)
    result = TaskResult(
        task_id=task.id,
        run_id=plan.run_id,
        base_sha=plan.base_sha,
        status="skipped",
        agent=None,
        started_at=now,
        finished_at=now,
        error=f"skipped: dependency {', '.join(blocked)} did not succeed",
    )
    folder = task_dir(out_dir, task.id)
    write_atomic(folder / "changes.patch", "")
    write_atomic(folder / "transcript.jsonl", "")
    write_model(folder / "result.json", result)
    return result
