"""Local executor: runs a plan's waves with asyncio, as the Actions matrix would, in one process.

Wave by wave, as the Actions jobs run: every task of wave k starts from the tree its matrix job
would build (``stacking.stack_for_wave``: the base plus every usable task of waves < k), built
once per wave; within a wave the tasks run at once, up to ``max_parallel``. Each task runs
through ``task_runner.run_task`` (the code a matrix job runs), so local and Actions results are
the same files, and spends by the same rule (``budget.task_budget``: each task's share of what
earlier waves left of the run budget). A task whose dependency did not succeed is recorded as
``skipped``. Git work
(building a stack, opening a tree, making a patch) runs in worker threads, never on the event
loop, so tasks do not wait for each other's git processes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.agent.workspace import Stack
from orchestrator.budget import task_budget
from orchestrator.contracts import Plan, Task, TaskResult
from orchestrator.fileio import write_atomic, write_model
from orchestrator.progress import Progress
from orchestrator.runfolder import RunFolder
from orchestrator.stacking import stack_for_wave
from orchestrator.task_runner import run_task


async def execute_plan(
    plan: Plan,
    *,
    repo: Path,
    out_dir: Path,
    max_parallel: int | None = None,
    progress: Progress | None = None,
) -> dict[str, TaskResult]:
    """Run every task of ``plan``; return results by task id (also written under ``out_dir``)."""
    slots = asyncio.Semaphore(max(1, max_parallel or plan.max_parallel))
    results: dict[str, TaskResult] = {}

    async def one(
        task: Task, stack_ready: asyncio.Future[Stack], earlier: list[TaskResult]
    ) -> None:
        blocked = [d for d in task.depends_on if results[d].status not in _USABLE]
        if blocked:
            results[task.id] = skip_task(plan, task, out_dir, blocked)
        else:
            stack = await stack_ready
            # Fixed before any task of the wave runs, from earlier waves only: what a matrix
            # job of this wave computes from the results it downloaded.
            budget = task_budget(plan, task, earlier)
            async with slots:
                if progress:
                    progress.started(task)
                result = await run_task(
                    plan,
                    task.id,
                    workspace_root=repo,
                    out_dir=out_dir,
                    budget=budget,
                    stack=stack,
                )
                results[task.id] = result
        if progress:
            progress.finished(task, results[task.id])

    for wave in range(1, plan.waves + 1):
        tasks = plan.wave(wave)
        earlier = list(results.values())
        # Built once per wave, in a thread; only tasks that will run wait for it.
        stack_ready = asyncio.ensure_future(
            asyncio.to_thread(stack_for_wave, plan, wave, out_dir, repo)
        )
        try:
            await asyncio.gather(*(one(task, stack_ready, earlier) for task in tasks))
        finally:
            if not stack_ready.done():
                stack_ready.cancel()
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
    folder = RunFolder(out_dir)
    write_atomic(folder.patch(task.id), "")
    write_atomic(folder.transcript(task.id), "")
    write_model(folder.result(task.id), result)
    return result
