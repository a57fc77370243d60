"""The agent's view of its task tree: one commit of a checkout, the earlier waves' work, its own.

A task's tree is the plan's ``base_sha`` plus the patches of every succeeded task of earlier
waves (its :class:`Stack`, built by ``stacking.py`` with the aggregate step's merge code), plus
what the agent itself changes. Untracked and ignored files of the checkout (``.env``, ``.venv``,
build output) are invisible. The agent's writes land in an in-memory overlay (``path →
bytes``, ``None`` meaning deleted) — and, once ``run_command`` needs files on disk, also in a
real checkout of the tree (``agent/worktree.py``), whose changes flow back into the overlay.
``diff()`` turns the overlay into a git patch against the stacked tree; the checkout's index,
work tree and refs are never modified.

Every path goes through one set of rules (``_resolve``): relative POSIX paths only, no ``..``
leaving the repository, no NUL, symlinks followed only while they stay inside the tree,
``.git/`` never touched, protected paths (workflows, actions, git behaviour files) read-only
unless the limits allow edits. A violation raises ``ToolError``, whose message the agent loop
hands back to the model.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.contracts import Limits
from orchestrator.gitrepo import (
    NewCommit,
    Objects,
    blob_sha,
    commit_env,
    protected_reason,
    run_git,
    write_commits,
)
from orchestrator.patches import FileChange, unified_patch

if TYPE_CHECKING:
    from orchestrator.agent.worktree import TaskTree

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
REGULAR_MODES = ("100644", "100755")
#: How many bytes are sniffed for a NUL byte when deciding "binary".
BINARY_SNIFF = 8192
MAX_SYMLINK_HOPS = 40
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class ToolError(Exception):
    """A tool call the sandbox refuses or cannot serve; ``message`` goes back to the model."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Entry:
    """One file of the stacked tree: a blob of the base commit, or content the stack changed."""

    mode: str
    sha: str
    size: int
    data: bytes | None = None  # inline: a file an earlier wave's patch wrote


@dataclass(frozen=True)
class Stack:
    """The earlier waves' work under a task: what their patches changed, in plan order.

    ``changes`` maps a path to ``(mode, content)``, or to ``None`` where a patch deleted it.
    ``commit`` is the stacked tree written as a commit, when one was written (``stacking.py``);
    a checkout for ``run_command`` and git's own diff start from it.
    """

    applied: tuple[str, ...] = ()
    changes: Mapping[str, tuple[str, bytes] | None] = field(default_factory=dict)
    commit: str | None = None


class Workspace:
    """A view of ``root`` at ``base_sha`` plus a :class:`Stack` (see ``Workspace.open``)."""

    def __init__(
        self,
        objects: Objects,
        base_sha: str,
        limits: Limits,
        entries: dict[str, _Entry],
        gitlinks: frozenset[str],
        *,
        stack: Stack,
        disk_ok: bool,
    ) -> None:
        self.objects = objects
        self.root = objects.top
        self.base_sha = base_sha
        self.limits = limits
        self.stack = stack
        self.read_from_disk = disk_ok
        self._base = entries
        self._gitlinks = gitlinks
        self._overlay: dict[str, bytes | None] = {}
        self._files_cache: list[str] | None = None
        #: The checkout of this tree for run_command, once one is made (``agent/worktree.py``).
        self.tree: TaskTree | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def open(
        cls, root: Path, base_sha: str, limits: Limits, *, stack: Stack | None = None
    ) -> Workspace:
        """Open the view over the git checkout ``root`` at commit ``base_sha`` plus ``stack``.

        The commit's tree is listed once per process (``gitrepo.Objects``), so every task of a
        wave opens its view without running git. Files are read from disk when ``root``'s HEAD
        is ``base_sha`` and no tracked file is modified; otherwise from git's objects.

        Raises:
            InputError: ``root`` is not a git checkout or ``base_sha`` is not a commit in it.
        """
        objects = Objects.of(Path(root))
        base = objects.commit(base_sha)
        tree = objects.tree(base)
        entries = {path: _Entry(e.mode, e.sha, e.size) for path, e in tree.entries.items()}
        stack = stack or Stack()
        for path, change in stack.changes.items():
            if change is None:
                entries.pop(path, None)
            else:
                mode, data = change
                entries[path] = _Entry(mode, blob_sha(data), len(data), data)
        return cls(
            objects,
            base,
            limits,
            entries,
            tree.gitlinks,
            stack=stack,
            disk_ok=objects.clean_at(base),
        )

    # ------------------------------------------------------------------ public API

    def list_files(self, path: str = ".") -> list[str]:
        """Every file under ``path`` (recursive, sorted), or ``[path]`` when it is a file."""
        rel = self._resolve(path, allow_root=True)
        files = self._files()
        if not rel:
            return list(files)
        if self._is_file(rel):
            return [rel]
        prefix = rel + "/"
        found = [f for f in files if f.startswith(prefix)]
        if not found:
            raise ToolError(f"{path}: no such file or directory")
        return found

    def exists(self, path: str) -> bool:
        """True when ``path`` is a file of the workspace (after this agent's changes)."""
        rel = self._resolve(path)
        return self._is_file(rel)

    def is_dir(self, path: str) -> bool:
        """True when ``path`` is a directory holding at least one file."""
        rel = self._resolve(path, allow_root=True)
        return not rel or self._is_dir(rel)

    def read_bytes(self, path: str) -> bytes:
        """The content of a file, at most ``limits.max_file_bytes`` long."""
        return self._read(self._resolve(path), shown=path)

    def read_text(self, path: str) -> str:
        """The content of a text (UTF-8) file; binary files raise ``ToolError``."""
        rel = self._resolve(path)
        data = self._read(rel, shown=path)
        text = _as_text(data)
        if text is None:
            raise ToolError(f"{path} is a binary file ({len(data)} bytes); it cannot be shown")
        return text

    def iter_text_files(self, path: str = ".") -> Iterator[tuple[str, str]]:
        """(path, text) for every readable text file under ``path``; binary, oversized and
        unreadable files are skipped silently. Blobs are fetched from git in batches."""
        files = self.list_files(path)
        batch: list[str] = []
        for name in files:
            batch.append(name)
            if len(batch) >= 256:
                yield from self._texts(batch)
                batch = []
        yield from self._texts(batch)

    def write(self, path: str, content: str) -> bool:
        """Create or overwrite a file; returns True when the file did not exist before."""
        rel = self._resolve(path, write=True)
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ToolError(f"{path}: content is not valid UTF-8 text ({exc.reason})") from None
        if len(data) > self.limits.max_file_bytes:
            raise ToolError(
                f"{path}: content is {len(data)} bytes, over the {self.limits.max_file_bytes}"
                " bytes limit (limits.max_file_bytes)"
            )
        if self._is_dir(rel):
            raise ToolError(f"{path} is a directory")
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if self._is_file(parent) or parent in self._gitlinks:
                raise ToolError(f"{path}: {parent} is a file, not a directory")
        if rel in self._gitlinks:
            raise ToolError(f"{path} is a git submodule; it cannot be written")
        created = not self._is_file(rel)
        self._set(rel, data)
        return created

    def overlay(self) -> dict[str, bytes | None]:
        """The agent's changes: path → new content, ``None`` for a deleted file."""
        return dict(self._overlay)

    def record(self, rel: str, data: bytes | None) -> None:
        """Take a change a command made in the checkout (``TaskTree.sync``) into the view."""
        self._set(rel, data, mirror=False)

    def checkout(self) -> Path:
        """The task's tree on disk, made on first use (for ``run_command``)."""
        if self.tree is None:
            from orchestrator.agent.worktree import TaskTree

            self.tree = TaskTree.create(self)
        return self.tree.path

    def sync_checkout(self) -> list[str]:
        """Take a command's changes in the checkout into the view; notes on what was not kept."""
        return self.tree.sync() if self.tree is not None else []

    def close(self) -> None:
        """Remove the on-disk checkout, if one was made."""
        if self.tree is not None:
            self.tree.close()
            self.tree = None

    def _set(self, rel: str, data: bytes | None, *, mirror: bool = True) -> None:
        """Record ``rel``'s new content (``None``: deleted); a change back to the stacked
        content is no change at all. With a checkout, the change is written there too."""
        entry = self._base.get(rel)
        if data is None:
            unchanged = entry is None
        else:
            unchanged = (
                entry is not None
                and entry.mode in REGULAR_MODES
                and entry.size == len(data)
                and self._base_bytes(rel, entry) == data
            )
        if unchanged:
            self._overlay.pop(rel, None)
        else:
            self._overlay[rel] = data
        self._files_cache = None
        if mirror and self.tree is not None:
            self.tree.write(rel, data)

    def delete(self, path: str) -> None:
        """Delete a file (a symlink itself, not its target)."""
        rel = self._resolve(path, write=True, follow_last=False)
        if not self._is_file(rel):
            if self._is_dir(rel):
                raise ToolError(f"{path} is a directory; delete its files one by one")
            raise ToolError(f"{path}: no such file")
        self._set(rel, None)

    def changed_files(self) -> list[str]:
        """Paths that differ from ``base_sha`` (created, modified or deleted), sorted."""
        return sorted(self._overlay)

    def diff_bytes(self) -> bytes:
        """The overlay as a git patch against the stacked tree (``b""`` when nothing changed).

        Made in Python for text files (``patches.unified_patch``); binary and non-UTF-8 files,
        odd paths and huge files go through git (``--binary --full-index``) in a temporary
        index and object directory, so the checkout's index, work tree, refs and object store
        are never modified. Either way ``git apply --3way`` and the aggregate step accept it.
        """
        changed = self.changed_files()
        if not changed:
            return b""
        changes = [
            FileChange(path, self._mode_for(path), self._lower_bytes(path), self._overlay[path])
            for path in changed
        ]
        made = unified_patch(changes)
        return made if made is not None else self._git_diff(changed)

    def _mode_for(self, path: str) -> str:
        entry = self._base.get(path)
        return entry.mode if entry is not None and entry.mode in REGULAR_MODES else "100644"

    def _lower_bytes(self, path: str) -> bytes | None:
        entry = self._base.get(path)
        return None if entry is None else self._base_bytes(path, entry)

    def stack_commit(self) -> str:
        """The stacked tree as a commit (written once, with fast-import, when first needed)."""
        if not self.stack.changes:
            return self.base_sha
        if self.stack.commit is None:
            message = "Stacked: " + ", ".join(self.stack.applied)
            (sha,) = write_commits(
                self.root,
                self.base_sha,
                [NewCommit(message, datetime.fromtimestamp(0, UTC), self.stack.changes)],
            )
            self.stack = Stack(self.stack.applied, self.stack.changes, sha)
        return self.stack.commit or self.base_sha

    def _git_diff(self, changed: list[str]) -> bytes:
        base = self.stack_commit()
        with tempfile.TemporaryDirectory(prefix="orchestrator-diff-") as tmp:
            tmp_dir = Path(tmp)
            objects = tmp_dir / "objects"
            blobs = tmp_dir / "blobs"
            objects.mkdir()
            blobs.mkdir()
            env = _quiet_env(
                {
                    "GIT_INDEX_FILE": str(tmp_dir / "index"),
                    "GIT_OBJECT_DIRECTORY": str(objects),
                    "GIT_ALTERNATE_OBJECT_DIRECTORIES": self.objects.objects_dir,
                }
            )
            run_git(self.root, "read-tree", base, env=env)
            removed = [p for p in changed if self._overlay[p] is None]
            added = [p for p in changed if self._overlay[p] is not None]
            lines = [f"0 {'0' * 40}\t{p}" for p in removed]
            if added:
                blob_paths = []
                for index, name in enumerate(added):
                    blob = blobs / str(index)
                    blob.write_bytes(self._overlay[name] or b"")
                    blob_paths.append(str(blob))
                out = run_git(
                    self.root,
                    "hash-object",
                    "-w",
                    "--no-filters",
                    "--stdin-paths",
                    input_bytes="\n".join(blob_paths).encode() + b"\n",
                    env=env,
                ).stdout
                for name, sha in zip(added, out.decode().split(), strict=True):
                    lines.append(f"{self._mode_for(name)} {sha}\t{name}")
            # Text that is not UTF-8 (a Latin-1 file the agent replaced or deleted) goes out as a
            # binary patch, so the patch itself is always valid UTF-8.
            attributes = tmp_dir / "attributes"
            attributes.write_bytes(b"".join(_binary_rule(p) for p in self._non_utf8(changed)))
            payload = "".join(line + "\0" for line in lines)
            run_git(
                self.root,
                "update-index",
                "-z",
                "--index-info",
                input_bytes=payload.encode("utf-8", "surrogateescape"),
                env=env,
            )
            return run_git(
                self.root,
                "-c",
                "core.quotepath=false",
                "-c",
                f"core.attributesFile={attributes}",
                "diff",
                "--cached",
                "--binary",
                "--full-index",
                "--no-renames",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--src-prefix=a/",
                "--dst-prefix=b/",
                base,
                "--",
                env=env,
            ).stdout

    def diff(self) -> str:
        """``diff_bytes()`` as text ("" when nothing changed).

        Non-UTF-8 bytes (only possible in removed lines of a non-UTF-8 base file) survive as
        surrogate escapes; prefer ``diff_bytes()`` when writing the patch to a file.
        """
        return self.diff_bytes().decode("utf-8", "surrogateescape")

    def _non_utf8(self, paths: list[str]) -> list[str]:
        """Changed paths whose base content is text-like but not UTF-8."""
        found = []
        for path in paths:
            entry = self._base.get(path)
            if entry is None or entry.mode not in REGULAR_MODES:
                continue
            data = self._base_bytes(path, entry)
            if b"\0" not in data[:BINARY_SNIFF] and _as_text(data) is None:
                found.append(path)
        return found

    # ------------------------------------------------------------------ path rules

    def _resolve(
        self,
        path: str,
        *,
        allow_root: bool = False,
        write: bool = False,
        follow_last: bool = True,
    ) -> str:
        """Normalise ``path`` and follow symlinks inside the tree; raise ``ToolError`` on any
        rule violation. Returns the repository-relative path ("" for the root)."""
        if not isinstance(path, str):
            raise ToolError("path must be a string")
        if "\0" in path:
            raise ToolError("path contains a NUL character")
        shown = path
        if path.startswith(("/", "\\")) or _DRIVE.match(path):
            raise ToolError(
                f"{shown}: absolute paths are not allowed; use a path relative to the repository"
            )
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise ToolError(f"{shown}: path escapes the repository")
                parts.pop()
                continue
            parts.append(part)
        rel = "/".join(parts)
        self._check_protected(rel, shown, write=write)
        rel = self._follow(rel, shown, follow_last=follow_last)
        self._check_protected(rel, shown, write=write)
        if not rel and not allow_root:
            raise ToolError(f"{shown or '.'}: is the repository root, not a file")
        return rel

    def _check_protected(self, rel: str, shown: str, *, write: bool) -> None:
        if any(part.lower() == ".git" for part in rel.split("/")):
            raise ToolError(f"{shown}: .git/ is never touched")
        reason = protected_reason(
            rel, allow_workflow_edits=self.limits.allow_workflow_edits or not write
        )
        if reason:
            raise ToolError(f"{shown}: {reason}")

    def _follow(self, rel: str, shown: str, *, follow_last: bool) -> str:
        pending = [p for p in rel.split("/") if p]
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if not done:
                    raise ToolError(f"{shown}: a symlink on the path leads outside the repository")
                done.pop()
                continue
            candidate = "/".join([*done, part])
            target = self._link_target(candidate)
            if target is None or (not pending and not follow_last):
                done.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise ToolError(f"{shown}: too many levels of symbolic links")
            if target.startswith("/") or _DRIVE.match(target):
                raise ToolError(
                    f"{shown}: symlink {candidate} points outside the repository ({target})"
                )
            pending = [p for p in target.split("/") if p] + pending
        return "/".join(done)

    def _link_target(self, rel: str) -> str | None:
        if rel in self._overlay:
            return None
        entry = self._base.get(rel)
        if entry is None or entry.mode != SYMLINK_MODE:
            return None
        return self._base_bytes(rel, entry).decode("utf-8", "surrogateescape")

    # ------------------------------------------------------------------ file state

    def _files(self) -> list[str]:
        if self._files_cache is None:
            current = {
                path
                for path in self._base
                if path not in self._overlay or self._overlay[path] is not None
            }
            current.update(p for p, data in self._overlay.items() if data is not None)
            self._files_cache = sorted(current)
        return self._files_cache

    def _is_file(self, rel: str) -> bool:
        if rel in self._overlay:
            return self._overlay[rel] is not None
        return rel in self._base

    def _is_dir(self, rel: str) -> bool:
        if not rel:
            return True
        prefix = rel + "/"
        return any(f.startswith(prefix) for f in self._files()) or any(
            g.startswith(prefix) for g in self._gitlinks
        )

    def _read(self, rel: str, *, shown: str) -> bytes:
        if rel in self._overlay:
            data = self._overlay[rel]
            if data is None:
                raise ToolError(f"{shown}: no such file (it was deleted)")
            return data
        entry = self._base.get(rel)
        if entry is None:
            if rel in self._gitlinks:
                raise ToolError(f"{shown} is a git submodule, not a file")
            if self._is_dir(rel):
                raise ToolError(f"{shown} is a directory")
            raise ToolError(f"{shown}: no such file")
        if entry.size > self.limits.max_file_bytes:
            raise ToolError(
                f"{shown} is {entry.size} bytes, over the {self.limits.max_file_bytes} bytes"
                " read limit (limits.max_file_bytes); use search to find what you need"
            )
        return self._base_bytes(rel, entry)

    def _base_bytes(self, rel: str, entry: _Entry) -> bytes:
        if entry.data is not None:
            return entry.data
        if self.read_from_disk and entry.mode in REGULAR_MODES:
            data = self._disk_bytes(rel, entry)
            if data is not None:
                return data
        return self._blob(entry.sha)

    def _disk_bytes(self, rel: str, entry: _Entry) -> bytes | None:
        """The checkout's copy when it is safe and byte-identical in size to the blob."""
        disk = self.root / rel
        try:
            if os.path.realpath(disk) != str(disk) or disk.stat().st_size != entry.size:
                return None
            return disk.read_bytes()
        except OSError:
            return None

    def _blob(self, sha: str) -> bytes:
        return self.objects.blobs([sha])[sha]

    def _texts(self, names: list[str]) -> Iterator[tuple[str, str]]:
        contents: dict[str, bytes] = {}
        from_git: dict[str, str] = {}
        for name in names:
            data = self._overlay.get(name)
            if data is not None:
                contents[name] = data
                continue
            entry = self._base.get(name)
            if entry is None or entry.mode not in REGULAR_MODES:
                continue
            if entry.size > self.limits.max_file_bytes:
                continue
            if entry.data is not None:
                contents[name] = entry.data
                continue
            disk = self._disk_bytes(name, entry) if self.read_from_disk else None
            if disk is not None:
                contents[name] = disk
            else:
                from_git[name] = entry.sha
        if from_git:
            blobs = self.objects.blobs(from_git.values())
            for name, sha in from_git.items():
                contents[name] = blobs[sha]
        for name in names:
            if name in contents:
                text = _as_text(contents[name])
                if text is not None:
                    yield name, text


def _as_text(data: bytes) -> str | None:
    """``data`` decoded as UTF-8, or ``None`` when it looks binary."""
    if b"\0" in data[:BINARY_SNIFF]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _binary_rule(path: str) -> bytes:
    """A gitattributes line marking ``path`` binary (``-diff``).

    Bytes that would need quoting become ``?``; a pattern that also matches a sibling only makes
    that sibling's patch binary too, which is still a correct patch.
    """
    safe = bytes(
        c if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "._/-") else ord("?")
        for c in path.encode("utf-8", "surrogateescape")
    )
    return b"/" + safe + b" -diff\n"


def _quiet_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for git commands that must not take optional locks or touch the index."""
    env = commit_env(extra)
    env["GIT_OPTIONAL_LOCKS"] = "0"
    return env
