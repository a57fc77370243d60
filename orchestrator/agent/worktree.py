"""A real checkout of a task's tree, for the commands an agent runs (``run_command``).

The workspace keeps the agent's files in memory until a command needs them on disk. Then this
makes a detached git worktree of the task's stacked tree in a temporary folder (never the
user's checkout), writes the agent's changes into it, and from then on every tool write also
lands on disk. After each command, ``sync`` reads back what the command changed — tracked
files, and new files git does not ignore — into the workspace, so the task's patch holds the
command's work (a formatter's edits, a generated file) but not caches or build output. What the
sandbox cannot make is not taken back: symlinks, files over the size limit, protected paths;
the agent is told which.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.gitrepo import protected_reason, run_git
from orchestrator.merge import SAFE_CONFIG, git_env

if TYPE_CHECKING:
    from orchestrator.agent.workspace import Workspace

#: Never taken back from a command's tree: caches and tool state, whatever .gitignore says.
JUNK_PATTERNS = (
    "__pycache__/",
    "*.py[cod]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".tox/",
    ".nox/",
    ".coverage",
    ".coverage.*",
    "htmlcov/",
    "*.egg-info/",
    "node_modules/",
    ".venv/",
    ".orchestrator/",
)


class TaskTree:
    """A detached worktree of ``workspace``'s stacked tree plus the agent's changes."""

    def __init__(self, workspace: Workspace, holder: Path, path: Path) -> None:
        self.workspace = workspace
        self.holder = holder
        self.path = path
        self._excludes = holder / "excludes"
        self._excludes.write_text("\n".join(JUNK_PATTERNS) + "\n")

    @classmethod
    def create(cls, workspace: Workspace) -> TaskTree:
        """Check the stacked tree out in a temporary folder and write the agent's changes."""
        holder = Path(tempfile.mkdtemp(prefix="orchestrator-task-"))
        path = holder / "tree"
        commit = workspace.stack_commit()
        try:
            run_git(
                workspace.root,
                *SAFE_CONFIG,
                "worktree",
                "add",
                "--detach",
                "-q",
                str(path),
                commit,
                env=git_env(),
            )
        except BaseException:
            shutil.rmtree(holder, ignore_errors=True)
            raise
        tree = cls(workspace, holder, path)
        for rel, data in workspace.overlay().items():
            tree.write(rel, data)
        return tree

    def write(self, rel: str, data: bytes | None) -> None:
        """Mirror one workspace change on disk (``None``: delete)."""
        target = self.path / rel
        if data is None:
            if target.is_symlink() or target.is_file():
                target.unlink()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_bytes(data)

    def sync(self) -> list[str]:
        """Take what the last command changed back into the workspace; notes for the agent."""
        workspace = self.workspace
        notes: list[str] = []
        for rel in sorted(set(self._changed()) | set(workspace.overlay())):
            target = self.path / rel
            try:
                info = target.lstat()
            except FileNotFoundError:
                workspace.record(rel, None)
                continue
            if stat.S_ISLNK(info.st_mode):
                notes.append(f"{rel}: a symlink; not kept (only regular files are)")
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            reason = protected_reason(
                rel, allow_workflow_edits=workspace.limits.allow_workflow_edits
            )
            if reason:
                notes.append(f"{rel}: not kept ({reason})")
                continue
            if info.st_size > workspace.limits.max_file_bytes:
                notes.append(f"{rel}: {info.st_size} bytes, over limits.max_file_bytes; not kept")
                continue
            workspace.record(rel, target.read_bytes())
        return notes

    def _changed(self) -> list[str]:
        """Tracked files that differ from the stacked tree, and new files git does not ignore."""
        out = run_git(
            self.path,
            "-c",
            f"core.excludesFile={self._excludes}",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            env=git_env({"GIT_OPTIONAL_LOCKS": "0"}),
        ).stdout.decode("utf-8", "surrogateescape")
        return [entry[3:] for entry in out.split("\0") if len(entry) > 3]

    def close(self) -> None:
        """Remove the checkout and git's record of it."""
        root = self.workspace.root
        run_git(root, "worktree", "remove", "--force", str(self.path), check=False, env=git_env())
        shutil.rmtree(self.holder, ignore_errors=True)
        run_git(root, "worktree", "prune", check=False, env=git_env())

    def __repr__(self) -> str:
        return f"TaskTree({os.fspath(self.path)!r})"
