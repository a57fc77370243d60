"""The aggregate step accepts only patches the sandbox could have made (artifacts are untrusted).

Each attack is a real ``git diff`` made in a clone (a poisoned artifact or a prompt-injected
agent writing its own ``changes.patch``): symlinks, gitlinks, mode changes, case variants of
protected folders and git-behaviour files. Before this check they were applied and committed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.aggregate import aggregate_run
from orchestrator.contracts import Limits, Plan, Task, TaskResult, Usage
from orchestrator.patches import patch_refusal
from tests.conftest import agents_for, git, make_repo

Edit = Callable[[Path], None]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(
        tmp_path / "repo",
        {
            "README.md": "# sample\n",
            "src/app.py": "A = 1\n",
            ".github/workflows/ci.yml": "on: push\n",
        },
    )
    os.symlink("README.md", path / "link")
    git(path, "add", "link")
    git(path, "commit", "-qm", "a symlink")
    return path


def patch_of(repo: Path, tmp_path: Path, edit: Edit) -> bytes:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    edit(clone)
    git(clone, "add", "-A")
    return subprocess.run(
        ["git", "-C", str(clone), "diff", "--cached", "--binary", "--full-index", "HEAD"],
        capture_output=True,
        check=True,
    ).stdout


def run_with(repo: Path, tmp_path: Path, patch: bytes, **limits: bool) -> tuple[str, str | None]:
    task = Task(id="evil", type="code_generation", title="t", instructions="i", agent="a", wave=1)
    plan = Plan(
        run_id="r-1",
        status="planned",
        reason="x",
        base_sha=git(repo, "rev-parse", "HEAD"),
        created_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        tasks=[task],
        waves=1,
        agents=agents_for([task]),
        limits=Limits(**limits),
    )
    out = tmp_path / "out"
    folder = out / "tasks" / "evil"
    folder.mkdir(parents=True)
    result = TaskResult(
        task_id="evil",
        run_id=plan.run_id,
        base_sha=plan.base_sha,
        status="succeeded",
        agent="a",
        files_changed=["x"],
        usage=Usage(),
        started_at=plan.created_at,
        finished_at=plan.created_at,
    )
    (folder / "result.json").write_text(result.model_dump_json())
    (folder / "changes.patch").write_bytes(patch)
    aggregate = aggregate_run(plan, out, repo, out)
    line = aggregate.tasks[0]
    return line.status, line.error


def write(path: str, content: str) -> Edit:
    def edit(clone: Path) -> None:
        target = clone / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    return edit


def symlink(path: str, target: str) -> Edit:
    def edit(clone: Path) -> None:
        (clone / path).unlink(missing_ok=True)
        os.symlink(target, clone / path)

    return edit


def gitlink(clone: Path) -> None:
    # An embedded repository: `git add` records it as a gitlink (mode 160000).
    make_repo(clone / "vendor" / "lib", {"lib.py": "X = 1\n"})


def chmod_x(clone: Path) -> None:
    (clone / "src/app.py").chmod(0o755)


ATTACKS: dict[str, tuple[Edit, str]] = {
    "symlink to /etc/passwd": (symlink("passwd", "/etc/passwd"), "symlink"),
    "symlink to the workflows": (symlink("wf", ".github/workflows"), "symlink"),
    "existing symlink retargeted outside": (symlink("link", "/etc/shadow"), "symlink"),
    "a submodule (gitlink)": (gitlink, "submodule"),
    "a mode change": (chmod_x, "mode"),
    "a new executable file": (
        lambda c: (write("run.sh", "echo hi\n")(c), (c / "run.sh").chmod(0o755)),
        "mode",
    ),
    "a workflow in another letter case": (
        write(".github/Workflows/x.yml", "on: push\n"),
        "protected",
    ),
    "a workflow under a folder of another case": (
        write(".GitHub/workflows/x.yml", "on: push\n"),
        "protected",
    ),
    ".gitmodules with an update command": (
        write(".gitmodules", '[submodule "x"]\n\tpath = x\n\turl = ./x\n\tupdate = !sh -c id\n'),
        "protected",
    ),
    ".gitattributes with a filter": (write(".gitattributes", "*.py filter=evil\n"), "protected"),
    "a nested .gitattributes": (write("src/.gitattributes", "* filter=evil\n"), "protected"),
    "a composite action": (write(".github/actions/x/action.yml", "runs: {}\n"), "protected"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_patches_the_sandbox_cannot_make_are_refused(name: str, repo: Path, tmp_path: Path) -> None:
    edit, word = ATTACKS[name]
    patch = patch_of(repo, tmp_path, edit)
    assert patch.startswith(b"diff --git")
    status, error = run_with(repo, tmp_path, patch)
    assert status == "failed", name
    assert error is not None and error.startswith("patch refused") and word in error, error
    assert git(repo, "branch", "--list", "orchestrator/*") == ""  # nothing was committed


def test_protected_git_files_may_be_edited_with_the_opt_in(repo: Path, tmp_path: Path) -> None:
    patch = patch_of(repo, tmp_path, write(".gitattributes", "*.png binary\n"))
    status, error = run_with(repo, tmp_path, patch, allow_workflow_edits=True)
    assert status == "succeeded", error


def test_symlinks_stay_refused_even_with_the_opt_in(repo: Path, tmp_path: Path) -> None:
    patch = patch_of(repo, tmp_path, symlink("passwd", "/etc/passwd"))
    status, error = run_with(repo, tmp_path, patch, allow_workflow_edits=True)
    assert status == "failed" and error and "symlink" in error


def test_deleting_a_symlink_and_editing_an_executable_are_fine(repo: Path, tmp_path: Path) -> None:
    """What the sandbox can do stays allowed: delete a link, edit a file keeping its mode."""

    def edit(clone: Path) -> None:
        (clone / "link").unlink()
        (clone / "src/app.py").write_text("A = 2\n")

    status, error = run_with(repo, tmp_path, patch_of(repo, tmp_path, edit))
    assert status == "succeeded", error


def test_mode_lines_are_read_from_the_headers_too() -> None:
    crafted = (
        b"diff --git a/x b/x\nold mode 100644\nnew mode 100755\n"
        b"diff --git a/y b/y\nnew file mode 120000\nindex 0000000..1111111\n"
    )
    reason = patch_refusal(crafted, set(), allow_workflow_edits=True)
    assert reason is not None and "mode" in reason
