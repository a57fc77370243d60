"""The merge engine: task patches applied in plan order onto the plan's base, in memory.

One engine serves three steps, so they can never disagree about what a merged tree is:

* stacking (``stacking.py``): the tree a wave-k task starts from is the base plus every
  succeeded task of waves < k, merged here;
* the verify stage: the merged tree that is verified, fixed and whose conflicts are resolved;
* the aggregate step: one commit per task, in plan order, on the run's branch.

Patches are parsed once (``diffapply``) and checked on that same parse (no second reading that
could disagree with what is applied): only regular files, new ones with mode 100644, no
symlink, submodule, mode change, rename or copy, no protected path. A patch whose hunks do not
apply exactly (context moved by an earlier task) falls back to ``git apply --3way`` in a
temporary worktree of the merged tree so far; one that still does not apply is a conflict.
Commits are written with one ``git fast-import`` (``gitrepo.write_commits``): the same inputs
give the same SHAs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.agent.workspace import Stack
from orchestrator.diffapply import ApplyConflict, FileDiff, PatchError, apply_file, parse_patch
from orchestrator.gitrepo import (
    NewCommit,
    Objects,
    commit_env,
    git_text,
    protected_reason,
    run_git,
    write_commits,
)
from orchestrator.patches import patch_paths, patch_refusal

#: Git settings for our own worktrees: no user hooks, no signing prompts, no rerere.
SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "rerere.enabled=false",
)
#: Variables that would redirect git away from the worktree we pass with ``-C``.
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")

FileState = tuple[str, bytes] | None


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The bot identity, without variables that would point git elsewhere."""
    env = commit_env(extra)
    for name in _GIT_LOCATION_VARS:
        env.pop(name, None)
    return env


@dataclass(frozen=True)
class Applied:
    """The patch applied; ``changes`` are its files' new states."""

    changes: dict[str, FileState]


@dataclass(frozen=True)
class Refused:
    """The patch was refused before applying (not a patch the sandbox can make)."""

    reason: str


@dataclass(frozen=True)
class Conflicted:
    """The patch does not apply on the merged tree; ``files`` are the ones that clash."""

    files: list[str]


Outcome = Applied | Refused | Conflicted


@dataclass
class Merger:
    """The merged tree so far, over ``base`` of ``repo``, and the commits that made it."""

    repo: Path
    base: str
    allow_workflow_edits: bool = False
    files: dict[str, FileState] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    commits: list[NewCommit] = field(default_factory=list)
    _objects: Objects | None = None
    _tip: str | None = None  # the merged tree written as a commit, when a fallback needed it

    @property
    def objects(self) -> Objects:
        """The repository's object store."""
        if self._objects is None:
            self._objects = Objects.of(self.repo)
        return self._objects

    # ------------------------------------------------------------------ reading the tree

    def state(self, path: str) -> FileState:
        """``(mode, content)`` of ``path`` in the merged tree, ``None`` when absent."""
        if path in self.files:
            return self.files[path]
        entry = self.objects.tree(self.base).entries.get(path)
        if entry is None:
            return None
        return entry.mode, self.objects.blobs([entry.sha])[entry.sha]

    def stack(self) -> Stack:
        """The merged tree as a task's :class:`Stack` (what every applied patch changed)."""
        return Stack(tuple(self.applied), dict(self.files))

    def snapshot(self) -> dict[str, FileState]:
        """A copy of the changes so far (a wave's stacked base, for conflict resolution)."""
        return dict(self.files)

    # ------------------------------------------------------------------ applying

    def apply(
        self,
        task_id: str,
        patch: bytes,
        *,
        message: str | None = None,
        date: datetime | None = None,
    ) -> Outcome:
        """Apply ``patch`` on the merged tree; with ``message`` also record its commit."""
        try:
            diffs = parse_patch(patch)
        except PatchError as exc:
            return Refused(f"changes.patch is not a valid git patch: {exc}")
        refused = self._refusal(diffs)
        if refused is not None:
            return Refused(refused)
        changes: dict[str, FileState] | None = {}
        try:
            for diff in diffs:
                changes[diff.path] = self._apply_one(diff)  # type: ignore[index]
        except ApplyConflict:
            changes = None
        if changes is None:
            fallback = self._apply_with_git(patch)
            if not isinstance(fallback, Applied):
                return fallback
            changes = fallback.changes
        self.files.update(changes)
        self.applied.append(task_id)
        self._tip = None
        if message is not None:
            when = date or datetime.fromtimestamp(0, UTC)
            self.commits.append(NewCommit(message, when, changes))
        return Applied(changes)

    def _apply_one(self, diff: FileDiff) -> FileState:
        current = self.state(diff.old_path) if diff.old_path else None
        old = current[1] if current is not None else None
        if diff.old_path is not None and current is None:
            raise ApplyConflict(diff.old_path, "does not exist in the merged tree")
        if diff.old_path is None and self.state(diff.path) is not None:
            raise ApplyConflict(diff.path, "already exists in the merged tree")
        new = apply_file(old, diff)
        if new is None:
            return None
        mode = current[0] if current is not None else "100644"
        return mode, new

    def _refusal(self, diffs: list[FileDiff]) -> str | None:
        for diff in diffs:
            if diff.old_path and diff.new_path and diff.old_path != diff.new_path:
                return "patch refused: it renames or copies a file (the sandbox makes neither)"
            for mode in (diff.old_mode, diff.new_mode):
                if mode == "120000" and diff.new_path is not None:
                    # Deleting a link is what the sandbox can do; making or changing one is not.
                    return f"patch refused: {diff.path} is a symlink"
                if mode == "160000":
                    return f"patch refused: {diff.path} is a submodule (gitlink)"
            if diff.old_mode and diff.new_mode and diff.old_mode != diff.new_mode:
                return f"patch refused: it changes the mode of {diff.path}"
            if diff.old_path is None and diff.new_mode not in (None, "100644"):
                return f"patch refused: it creates {diff.path} with mode {diff.new_mode}"
            reason = protected_reason(diff.path, allow_workflow_edits=self.allow_workflow_edits)
            if reason:
                return f"patch refused: it touches {diff.path} ({reason})"
        return None

    # ------------------------------------------------------------------ git's 3-way fallback

    def tip(self) -> str:
        """The merged tree as a commit (written when first needed)."""
        if not self.files:
            return self.base
        if self._tip is None:
            (self._tip,) = write_commits(
                self.repo,
                self.base,
                [NewCommit("merged so far", datetime.fromtimestamp(0, UTC), self.files)],
            )
        return self._tip

    def _apply_with_git(self, patch: bytes) -> Outcome:
        """``git apply --3way`` on a worktree of the merged tree: the new states, or why not."""
        with temporary_worktree(self.repo, self.tip()) as tree:
            try:
                paths = patch_paths(tree, patch)
            except ValueError as exc:
                return Refused(f"changes.patch is not a valid git patch: {exc}")
            refused = patch_refusal(
                patch, paths, allow_workflow_edits=self.allow_workflow_edits, repo=tree
            )
            if refused:
                return Refused(refused)
            patch_file = tree.parent / "changes.patch"
            patch_file.write_bytes(patch)
            proc = run_git(
                tree,
                *SAFE_CONFIG,
                "apply",
                "--3way",
                "--index",
                "--whitespace=nowarn",
                str(patch_file),
                check=False,
                env=git_env(),
            )
            if proc.returncode != 0:
                unmerged = git_text(tree, "diff", "--name-only", "--diff-filter=U", env=git_env())
                files = unmerged.splitlines() or sorted(paths)
                return Conflicted(files)
            return Applied(_staged_changes(tree, self.tip()))


def _staged_changes(tree: Path, since: str) -> dict[str, FileState]:
    """The files the index of ``tree`` changes against commit ``since``: their new states."""
    names = run_git(
        tree, "diff", "--cached", "--name-status", "--no-renames", "-z", since, env=git_env()
    ).stdout.decode("utf-8", "surrogateescape")
    fields = [f for f in names.split("\0") if f]
    changes: dict[str, FileState] = {}
    staged: dict[str, tuple[str, str]] = {}
    for status, path in zip(fields[::2], fields[1::2], strict=True):
        if status == "D":
            changes[path] = None
            continue
        line = git_text(tree, "ls-files", "-s", "--", path, env=git_env())
        mode, sha = line.split()[:2]
        staged[path] = (mode, sha)
    blobs = Objects.of(tree).blobs(sha for _, sha in staged.values())
    for path, (mode, sha) in staged.items():
        changes[path] = (mode, blobs[sha])
    return changes


@contextmanager
def temporary_worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A detached worktree of ``repo`` at ``commit`` in a temporary folder, removed afterwards."""
    holder = Path(tempfile.mkdtemp(prefix="orchestrator-tree-"))
    tree = holder / "tree"
    env = git_env()
    run_git(repo, *SAFE_CONFIG, "worktree", "add", "--detach", "-q", str(tree), commit, env=env)
    try:
        yield tree
    finally:
        run_git(repo, "worktree", "remove", "--force", str(tree), check=False, env=env)
        shutil.rmtree(holder, ignore_errors=True)
        run_git(repo, "worktree", "prune", check=False, env=env)
