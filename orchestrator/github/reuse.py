"""``/retry``: the results a retried run reuses, read from the earlier workflow run's artifacts.

A retry (``Plan.reuse``) runs only some tasks again; the others' ``tasks/<id>/`` folders come
from the workflow run that made them (``Reuse.workflow_run_id``). They are listed and downloaded
through the REST API (``actions: read``): each task's own artifact
(``orchestrator-<run-id>-w<k>-task-<id>``), or, for a task an earlier retry had reused, that
run's ``orchestrator-<run-id>-reused``. Archives are untrusted input: sizes are capped, entries
must be plain files inside ``tasks/<id>/``, and every result is checked to belong to the plan's
run (``RunFolder.read_result``) before it is kept.

Command line, for the ``reuse`` job (``actions/reuse``)::

    python -m orchestrator.github.reuse --plan run/plan.json --out reused/
"""

from __future__ import annotations

import argparse
import io
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from orchestrator.contracts import Plan
from orchestrator.errors import InputError
from orchestrator.github.artifacts import artifact_name, task_name
from orchestrator.github.client import GitHubClient, GitHubError
from orchestrator.runfolder import TASKS_DIR, RunFolder

__all__ = ["MAX_ARCHIVE_BYTES", "MAX_EXTRACTED_BYTES", "Reused", "fetch_reused", "main"]

#: Largest artifact archive downloaded, and most bytes extracted from one (zip bombs).
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_EXTRACTED_BYTES = 1024 * 1024 * 1024
#: The artifact a retry uploads with the results it reused (read by the jobs after it).
REUSED_PART = "reused"


@dataclass
class Reused:
    """Which reused tasks were found in the earlier run's artifacts."""

    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def fetch_reused(client: GitHubClient, plan: Plan, out: Path) -> Reused:
    """Download the reused tasks' folders into ``out/tasks/<id>/``.

    Raises:
        GitHubError: the artifacts could not be listed or downloaded (403: no ``actions: read``).
        InputError: an archive is unsafe, or a result belongs to another run.
    """
    from orchestrator.github.actions import artifact_safe

    if plan.reuse is None:
        return Reused()
    run = artifact_safe(plan.run_id)
    listed = {
        a.name: a for a in client.list_run_artifacts(plan.reuse.workflow_run_id) if not a.expired
    }
    bundle = artifact_name(run, REUSED_PART)
    sources: dict[str, list[str]] = {}
    for task in plan.tasks:
        if task.id in plan.reuse.tasks:
            own = task_name(run, task.wave, task.id)
            source = own if own in listed else bundle if bundle in listed else None
            if source is not None:
                sources.setdefault(source, []).append(task.id)
    target = RunFolder(out)
    with tempfile.TemporaryDirectory(prefix="orchestrator-reuse-") as scratch:
        for name, task_ids in sources.items():
            archive = client.download_artifact(listed[name].id)
            folder = Path(scratch) / name
            extract(archive, folder, name)
            for task_id in task_ids:
                found = RunFolder(folder).task_dir(task_id)
                if found.is_dir():
                    shutil.copytree(found, target.task_dir(task_id), dirs_exist_ok=True)
    reused = Reused()
    for task in plan.tasks:
        if task.id in plan.reuse.tasks:
            present = target.read_result(plan, task) is not None
            (reused.found if present else reused.missing).append(task.id)
    return reused


def extract(archive: bytes, dest: Path, name: str) -> None:
    """Unpack an artifact archive: plain files under ``tasks/`` only, within the size caps.

    Raises:
        InputError: the archive is too big, not a zip, or holds a path outside ``tasks/``,
            a link or a special file.
    """
    if len(archive) > MAX_ARCHIVE_BYTES:
        raise InputError(name, "", f"archive of {len(archive)} bytes (at most {MAX_ARCHIVE_BYTES})")
    try:
        zipped = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile:
        raise InputError(name, "", "not a zip archive") from None
    with zipped:
        total = 0
        for info in zipped.infolist():
            path = PurePosixPath(info.filename)
            mode = info.external_attr >> 16
            if info.is_dir():
                continue
            if (
                path.is_absolute()
                or ".." in path.parts
                or "\\" in info.filename
                or path.parts[:1] != (TASKS_DIR,)
                or (mode and not stat.S_ISREG(mode))
            ):
                raise InputError(name, info.filename, "not a plain file under tasks/")
            total += info.file_size
            if total > MAX_EXTRACTED_BYTES:
                raise InputError(name, "", f"expands beyond {MAX_EXTRACTED_BYTES} bytes")
            target = dest.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(info) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m orchestrator.github.reuse --plan P --out DIR``: fetch, then say what."""
    from orchestrator.fileio import read_model
    from orchestrator.github.actions import artifact_safe, error, input_error, set_outputs, warning

    parser = argparse.ArgumentParser(prog="python -m orchestrator.github.reuse")
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        plan = read_model(args.plan, Plan)
        if plan.reuse is None:
            raise InputError(str(args.plan), "reuse", "not set: the plan is not a /retry")
        reused = fetch_reused(GitHubClient.from_env(), plan, args.out)
    except GitHubError as exc:
        hint = (
            " — listing another run's artifacts needs `actions: read` in the caller workflow's "
            "permissions (see examples/workflows/orchestrate-comment.yml)"
            if exc.status in (401, 403, 404)
            else ""
        )
        error(f"/retry could not read the earlier run's artifacts: {exc}{hint}", title="reuse")
        return 1
    except InputError as exc:
        return input_error(exc)
    for task_id in reused.missing:
        warning(f"task {task_id}: no artifact in workflow run {plan.reuse.workflow_run_id}")
    sys.stdout.write(
        f"reused {len(reused.found)} task(s) from workflow run {plan.reuse.workflow_run_id}: "
        f"{', '.join(reused.found) or 'none'}\n"
    )
    bundle = artifact_name(artifact_safe(plan.run_id), REUSED_PART)
    set_outputs({"name": bundle, "found": str(len(reused.found))})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
