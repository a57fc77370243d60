"""The run's artifacts in GitHub Actions: their names, and the stack each wave leaves.

Every job of the reusable workflow talks to the others through artifacts named
``orchestrator-<run-id>-<part>`` (the run id made safe for artifact names):

    plan               plan.json and the request's images        (plan job)
    w<k>-task-<id>     tasks/<id>/ in full: result, patch, transcript (task job of wave k)
    stack-<k>          tasks/<id>/{result.json, changes.patch} of wave k's tasks (progress-k)
    verify             verify.json and the fix-*/resolve-* tasks  (verify job)
    aggregate          aggregate.json, summary.md                 (aggregate job)

Why the stack artifacts: a wave-k task builds on every earlier wave's work (``stacking.py``).
Downloading each earlier task's artifact would make a run's downloads grow with N²; instead the
small job after wave k bundles what stacking reads of that wave into one ``stack-<k>``, so a
task downloads the plan plus at most ``MAX_WAVES - 1`` stacks, and the progress, verify and
aggregate jobs read each task's artifact once. The composite actions under ``actions/`` spell
these names in YAML; ``tests/unit/test_artifacts.py`` checks that they spell them as here.

Command line, for the composite actions::

    python -m orchestrator.github.artifacts task-names --plan P --task ID
    python -m orchestrator.github.artifacts stage-stack --plan P --results DIR --wave K --out DIR
    python -m orchestrator.github.artifacts stacks-complete --plan P --results DIR --task ID
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.contracts import Plan, Task
from orchestrator.errors import InputError
from orchestrator.runfolder import RESULT_FILE, RunFolder

__all__ = [
    "STACK_FILES",
    "artifact_name",
    "stack_name",
    "stacks_complete",
    "stage_stack",
    "task_name",
]

#: What a stack artifact keeps of each task: what ``stacking.stack_for_wave`` and the tracking
#: comment read (never the transcript, which only the task's own artifact carries).
STACK_FILES = (RESULT_FILE, "changes.patch")


def artifact_name(run_id: str, part: str) -> str:
    """``orchestrator-<run-id>-<part>``; ``run_id`` is the plan job's (already safe) ``run-id``."""
    return f"orchestrator-{run_id}-{part}"


def task_name(run_id: str, wave: int, task_id: str) -> str:
    """The artifact of one task job: ``orchestrator-<run-id>-w<k>-task-<id>``."""
    return artifact_name(run_id, f"w{wave}-task-{task_id}")


def stack_name(run_id: str, wave: int) -> str:
    """What wave ``wave`` leaves for later waves: ``orchestrator-<run-id>-stack-<k>``."""
    return artifact_name(run_id, f"stack-{wave}")


def stage_stack(plan: Plan, results_dir: Path, wave: int, out: Path) -> list[str]:
    """Copy the stacking files of wave ``wave``'s finished tasks into ``out/tasks/<id>/``.

    Returns the staged task ids. A task with no result (its job died) is left out, as the
    stacking step leaves it out; each result is checked to belong to the plan's run.

    Raises:
        InputError: ``wave`` is not one of the plan's waves, or a result is of another run.
    """
    if not 1 <= wave <= plan.waves:
        raise InputError("--wave", "", f"{wave}: the plan has waves 1 to {plan.waves}")
    source, target = RunFolder(results_dir), RunFolder(out)
    staged = []
    for task in plan.wave(wave):
        if source.read_result(plan, task) is None:
            continue
        target.task_dir(task.id).mkdir(parents=True, exist_ok=True)
        for name in STACK_FILES:
            path = source.task_dir(task.id) / name
            if path.is_file():
                shutil.copy2(path, target.task_dir(task.id) / name)
        staged.append(task.id)
    return staged


def stacks_complete(plan: Plan, results_dir: Path, task_id: str) -> bool:
    """Whether every earlier wave of ``task_id`` has left its stack in ``results_dir``.

    A wave counts as present when any of its tasks has a result there. A graph without the
    progress jobs (the composite actions used on their own) has no stacks: the task action then
    falls back to downloading every task artifact of the run.
    """
    folder = RunFolder(results_dir)
    wave = plan.task(task_id).wave
    return all(
        any(folder.result(t.id).is_file() for t in plan.wave(earlier)) for earlier in range(1, wave)
    )


# -- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m orchestrator.github.artifacts task-names|stage-stack|stacks-complete``."""
    from orchestrator.fileio import read_model
    from orchestrator.github.actions import artifact_safe, input_error, set_outputs

    parser = argparse.ArgumentParser(prog="python -m orchestrator.github.artifacts")
    sub = parser.add_subparsers(dest="command", required=True)
    names = sub.add_parser("task-names", help="the task's wave and artifact name → outputs")
    names.add_argument("--plan", type=Path, required=True)
    names.add_argument("--task", required=True)
    stage = sub.add_parser("stage-stack", help="wave K's stacking files → OUT/tasks/")
    stage.add_argument("--plan", type=Path, required=True)
    stage.add_argument("--results", type=Path, required=True)
    stage.add_argument("--wave", type=int, required=True)
    stage.add_argument("--out", type=Path, required=True)
    complete = sub.add_parser("stacks-complete", help="output complete=true|false")
    complete.add_argument("--plan", type=Path, required=True)
    complete.add_argument("--results", type=Path, required=True)
    complete.add_argument("--task", required=True)
    args = parser.parse_args(argv)
    try:
        plan = read_model(args.plan, Plan)
        run_id = artifact_safe(plan.run_id)
        if args.command == "stage-stack":
            if args.out.exists():
                shutil.rmtree(args.out)
            staged = stage_stack(plan, args.results, args.wave, args.out)
            sys.stdout.write(f"stack of wave {args.wave}: {len(staged)} task(s) staged\n")
            set_outputs({"name": stack_name(run_id, args.wave), "tasks": str(len(staged))})
            return 0
        task = _task(plan, args.task)
        if args.command == "task-names":
            from orchestrator.agent_clis.needs import cache_key, task_clis

            clis = task_clis(plan, task.id)
            set_outputs(
                {
                    "wave": str(task.wave),
                    "artifact": task_name(run_id, task.wave, task.id),
                    # the vendor CLIs the task's chain may run (orchestrator/agent_clis/)
                    "agent-clis": " ".join(clis),
                    "agent-clis-key": cache_key(clis),
                }
            )
        else:
            done = stacks_complete(plan, args.results, task.id)
            set_outputs({"complete": "true" if done else "false"})
    except InputError as exc:
        return input_error(exc)
    return 0


def _task(plan: Plan, task_id: str) -> Task:
    try:
        return plan.task(task_id)
    except KeyError:
        raise InputError("--task", "", f"{task_id!r} is not a task of the plan") from None


if __name__ == "__main__":
    raise SystemExit(main())
