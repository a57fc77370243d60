"""The run folder (contract): where every stage's files live, by one name each.

    OUT/plan.json  OUT/images/<sha256>.<ext>  (the request's screenshots, by content)
    OUT/tasks/<id>/{result.json, changes.patch, transcript.jsonl}
    OUT/verify.json  (the verify stage: final verify, fix-*/resolve-* tasks under tasks/)
    OUT/aggregate.json  OUT/summary.md  OUT/metrics.jsonl  OUT/conflicts/<id>.patch

A ``RunFolder`` knows these paths; the checks here keep a folder from mixing two runs: an output
folder must be a folder (not a file), and a folder that already holds another run's plan is
refused rather than silently merged into.
"""

from __future__ import annotations

from orchestrator.errors import InputError
from orchestrator.fileio import PRIVATE_DIR, load_json, private_dir, read_model

# Only names and the standard library's cheap parts at import: the skip path of
# ``orchestrator plan`` (``trigger_gate.py``) names plan.json from here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.contracts import Plan, Task, TaskResult

PLAN_FILE = "plan.json"
TASKS_DIR = "tasks"
RESULT_FILE = "result.json"
PATCH_FILE = "changes.patch"
TRANSCRIPT_FILE = "transcript.jsonl"
AGGREGATE_FILE = "aggregate.json"
SUMMARY_FILE = "summary.md"
METRICS_FILE = "metrics.jsonl"
VERIFY_FILE = "verify.json"
CONFLICTS_DIR = "conflicts"
IMAGES_DIR = "images"
#: Run folders, relative to the repository.
RUNS_DIR = f"{PRIVATE_DIR}/runs"


class RunFolder:
    """Paths of one run's files under ``root``."""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"RunFolder({self.root!r})"

    @property
    def plan(self) -> Path:
        """``OUT/plan.json``."""
        return self.root / PLAN_FILE

    @property
    def images_dir(self) -> Path:
        """``OUT/images/``: the request's images (``Request.images``)."""
        return self.root / IMAGES_DIR

    def image(self, sha256: str, ext: str) -> Path:
        """``OUT/images/<sha256>.<ext>``."""
        return self.images_dir / f"{sha256}.{ext}"

    def task_dir(self, task_id: str) -> Path:
        """``OUT/tasks/<id>/``."""
        return self.root / TASKS_DIR / task_id

    def result(self, task_id: str) -> Path:
        """``OUT/tasks/<id>/result.json`` (written last: its presence means "finished")."""
        return self.task_dir(task_id) / RESULT_FILE

    def patch(self, task_id: str) -> Path:
        """``OUT/tasks/<id>/changes.patch``."""
        return self.task_dir(task_id) / PATCH_FILE

    def transcript(self, task_id: str) -> Path:
        """``OUT/tasks/<id>/transcript.jsonl``."""
        return self.task_dir(task_id) / TRANSCRIPT_FILE

    @property
    def aggregate(self) -> Path:
        """``OUT/aggregate.json``."""
        return self.root / AGGREGATE_FILE

    @property
    def summary(self) -> Path:
        """``OUT/summary.md``."""
        return self.root / SUMMARY_FILE

    @property
    def verify(self) -> Path:
        """``OUT/verify.json`` (``VerifyOutcome``)."""
        return self.root / VERIFY_FILE

    @property
    def metrics(self) -> Path:
        """``OUT/metrics.jsonl``."""
        return self.root / METRICS_FILE

    def conflict_patch(self, task_id: str) -> Path:
        """``OUT/conflicts/<id>.patch``: a patch that did not apply, kept whole."""
        return self.root / CONFLICTS_DIR / f"{task_id}.patch"

    def read_result(self, plan: Plan, task: Task) -> TaskResult | None:
        """The task's ``result.json`` if present, checked to belong to this plan's run.

        Results are untrusted input (downloaded artifacts, folders reused between runs): one
        written for another run, another task or another base commit is refused, never merged.

        Raises:
            InputError: the file is malformed, or its ``task_id``, ``run_id`` or ``base_sha``
                does not match the plan (exit 2, naming the file).
        """
        from orchestrator.contracts import TaskResult

        path = self.result(task.id)
        if not path.is_file():
            return None
        result = read_model(path, TaskResult)
        expected = {"task_id": task.id, "run_id": plan.run_id, "base_sha": plan.base_sha}
        for field, want in expected.items():
            got = getattr(result, field)
            if got != want:
                shown = "missing" if got is None else f"is {got!r}"
                raise InputError(
                    str(path), field, f"{shown}, expected {want!r}: the result is of another run"
                )
        return result

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder, POSIX style (as aggregate.json records it)."""
        return path.relative_to(self.root).as_posix()


def default_out_dir(repo: Path, run_id: str) -> Path:
    """``<repo>/.orchestrator/runs/<run-id>/``, in a folder git ignores by itself."""
    private_dir(repo)
    return repo / RUNS_DIR / run_id


def require_folder(path: Path, flag: str) -> Path:
    """``path`` when it is a folder or does not exist yet; an existing file is an input error."""
    if path.exists() and not path.is_dir():
        raise InputError(flag, "", f"{path} is a file, not a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(flag, "", f"{parent} is a file, not a folder")
            break
    return path


def require_file_target(path: Path, flag: str) -> Path:
    """``path`` when a file may be written there; an existing folder is an input error."""
    if path.is_dir():
        raise InputError(flag, "", f"{path} is a folder; give a file name")
    require_folder(path.parent, flag)
    return path


def recorded_run(out: Path) -> str | None:
    """The run id of the ``plan.json`` already in ``out``, or ``None`` when there is none."""
    plan = out / PLAN_FILE
    if not plan.is_file():
        return None
    data = load_json(plan)
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return str(run_id) if run_id is not None else None


def _has_work(out: Path) -> bool:
    tasks = out / TASKS_DIR
    return (tasks.is_dir() and any(tasks.iterdir())) or (out / AGGREGATE_FILE).exists()


def claim(out: Path, run_id: str, flag: str = "--out") -> RunFolder:
    """The run folder at ``out`` for ``run_id``, emptied of an earlier attempt of the same run.

    A folder holding another run's results is refused: mixing two runs' task folders would let
    the aggregate step merge stale work (a lone ``plan.json`` of another run is just replaced).
    A re-run of the same run starts clean: its old task folders, conflict patches and
    aggregate files go; nothing else is touched.

    Raises:
        InputError: ``out`` is a file, or it holds another run's results.
    """
    require_folder(out, flag)
    existing = recorded_run(out)
    if existing != run_id and out.is_dir() and _has_work(out):
        held = f"run {existing!r}" if existing else "task results of an unknown run"
        raise InputError(
            flag, "", f"{out} already holds {held}; choose another folder or delete it"
        )
    for stale in (out / TASKS_DIR, out / CONFLICTS_DIR):
        if stale.exists() or stale.is_symlink():
            import shutil

            shutil.rmtree(stale, ignore_errors=True)
    for name in (AGGREGATE_FILE, SUMMARY_FILE, METRICS_FILE, VERIFY_FILE):
        (out / name).unlink(missing_ok=True)
    return RunFolder(out)


def require_same_run(out: Path, run_id: str, flag: str = "--out") -> RunFolder:
    """``out`` as a run folder that several ``task`` jobs of ``run_id`` may share.

    Raises:
        InputError: ``out`` is a file, or its ``plan.json`` belongs to another run.
    """
    require_folder(out, flag)
    existing = recorded_run(out)
    if existing is not None and existing != run_id:
        raise InputError(flag, "", f"{out} holds run {existing!r}, not {run_id!r}")
    return RunFolder(out)
