"""The tree a task starts from: the plan's base plus every succeeded task of earlier waves.

A wave-k task builds on wave k-1's files, not on their description: before its agent starts,
the patches of every task of waves < k that succeeded (or ran over budget, whose partial work
is kept) are merged onto ``base_sha`` in plan order, with the same merge engine the aggregate
step uses (``merge.py``). A patch that conflicts or is refused is left out, as the aggregate
step will leave it out. The task's ``result.json`` records the applied ids (``stacked_on``)
and its patch is relative to that tree; the aggregate step, merging in plan order, reaches the
same tree at the start of each wave, so every patch applies where it was made.

The same function serves the local executor (once per wave) and a matrix job of wave k (which
first downloads the results of waves < k): both merge the same files, so both build the same
tree.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.agent.workspace import Stack
from orchestrator.contracts import Plan
from orchestrator.gitrepo import Objects
from orchestrator.merge import Merger
from orchestrator.runfolder import RunFolder

#: Result statuses whose patch is built on (over-budget work is kept, as the aggregate keeps it).
STACKED_STATUSES = frozenset({"succeeded", "budget_exceeded"})


def stack_for_wave(plan: Plan, wave: int, results_dir: Path, repo: Path) -> Stack:
    """The stack under every task of ``wave``: earlier waves' usable patches, merged.

    Raises:
        InputError: an earlier result belongs to another run (``RunFolder.read_result``).
    """
    if wave <= 1 or plan.base_sha is None:
        return Stack()
    folder = RunFolder(results_dir)
    merger = Merger(
        repo,
        Objects.of(repo).commit(plan.base_sha),
        allow_workflow_edits=plan.limits.allow_workflow_edits,
    )
    for task in plan.tasks:
        if task.wave >= wave:
            continue
        result = folder.read_result(plan, task)
        patch_path = folder.patch(task.id)
        if result is None or result.status not in STACKED_STATUSES or not patch_path.is_file():
            continue
        patch = patch_path.read_bytes()
        if patch.strip():
            merger.apply(task.id, patch)  # a conflict or refusal is left out, as aggregate will
    return merger.stack()
