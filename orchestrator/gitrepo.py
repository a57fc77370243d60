"""Thin wrappers over the git command line, the one place that runs ``git``.

We shell out to git rather than use a library: the patches we produce and apply must be exactly
what ``git apply`` on a runner understands, and git is on every runner already. Commits are
made with a fixed identity passed through the environment, so no ``git config`` is needed on the
machine (CI runners and fresh clones often have none).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from orchestrator.errors import InputError, OrchestratorError

BOT_NAME = "orchestrator[bot]"
BOT_EMAIL = "orchestrator@users.noreply.github.com"

#: Paths a patch may never touch, whatever the configuration.
ALWAYS_PROTECTED = (".git/",)
#: Folders a patch may touch only when ``limits.allow_workflow_edits`` is set: what runs in CI
#: with the repository's secrets.
WORKFLOW_DIR = ".github/workflows/"
ACTIONS_DIR = ".github/actions/"
#: File names (in any folder) that change how git itself behaves (submodule commands, filters
#: and merge drivers), under the same opt-in.
GIT_BEHAVIOUR_FILES = (".gitmodules", ".gitattributes")


class GitError(OrchestratorError):
    """A git command failed; ``stderr`` holds git's own words."""

    def __init__(self, args: list[str], code: int, stderr: str) -> None:
        self.args_list = args
        self.code = code
        self.stderr = stderr.strip()
        super().__init__(f"git {' '.join(args[:3])} failed ({code}): {self.stderr[:300]}")


def commit_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment plus the bot identity for author and committer."""
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME=BOT_NAME,
        GIT_AUTHOR_EMAIL=BOT_EMAIL,
        GIT_COMMITTER_NAME=BOT_NAME,
        GIT_COMMITTER_EMAIL=BOT_EMAIL,
    )
    if extra:
        env.update(extra)
    return env


def run_git(
    repo: Path,
    *args: str,
    input_bytes: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -C repo ARGS``; raise ``GitError`` on a non-zero exit when ``check``."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=input_bytes,
        capture_output=True,
        env=dict(env) if env is not None else None,
        check=False,
    )
    if check and proc.returncode != 0:
        raise GitError(list(args), proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return proc


def git_text(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git and return its standard output as stripped text."""
    return run_git(repo, *args, env=env).stdout.decode("utf-8", "replace").strip()


def require_repo(repo: Path, *, source: str = "--repo", clean: bool = True) -> Path:
    """Check that ``repo`` is a git work tree (and clean); return its top-level path.

    Files under ``.orchestrator/`` (our own run outputs) do not count as changes.

    Raises:
        InputError: not a directory, not a git repository, no commit yet, or uncommitted changes.
    """
    if not repo.is_dir():
        raise InputError(source, "", f"{repo} is not a directory")
    proc = run_git(repo, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        raise InputError(source, "", f"{repo} is not a git repository")
    top = Path(proc.stdout.decode().strip())
    if run_git(top, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode != 0:
        raise InputError(source, "", f"{top} has no commit yet")
    if clean:
        status = git_text(top, "status", "--porcelain", "--", ".", ":(exclude).orchestrator")
        if status:
            first = status.splitlines()[0]
            raise InputError(
                source, "", f"{top} has uncommitted changes ({first.strip()}); commit or stash them"
            )
    return top


def head_sha(repo: Path) -> str:
    """The full SHA of ``HEAD``."""
    return git_text(repo, "rev-parse", "HEAD")


def tracked_files(repo: Path, rev: str) -> list[str]:
    """Paths of the files (blobs and symlinks) in ``rev``'s tree."""
    out = run_git(repo, "ls-tree", "-r", "-z", "--name-only", rev).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def normal_path(path: str) -> str:
    """A repository path as it is compared with protected paths: POSIX separators, no empty,
    ``.`` or leading parts, NFC, case-folded (a case-insensitive checkout, as on macOS or
    Windows, reads ``.GitHub/Workflows`` as ``.github/workflows``)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return unicodedata.normalize("NFC", "/".join(parts)).casefold()


def protected_reason(path: str, *, allow_workflow_edits: bool) -> str | None:
    """Why a patch or tool may not touch ``path``, or ``None`` when it may."""
    normal = normal_path(path)
    parts = normal.split("/")
    if ".git" in parts:
        return ".git/ is never touched (in any letter case or folder)"
    if allow_workflow_edits:
        return None
    for folder in (WORKFLOW_DIR, ACTIONS_DIR):
        if normal == folder.rstrip("/") or normal.startswith(folder):
            return f"{folder} is protected (set limits.allow_workflow_edits to allow it)"
    if parts[-1] in GIT_BEHAVIOUR_FILES:
        return f"{parts[-1]} is protected (set limits.allow_workflow_edits to allow it)"
    return None


# --------------------------------------------------------------------------- object store


@dataclass(frozen=True)
class Entry:
    """One blob of a commit's tree: file mode, blob SHA and size."""

    mode: str
    sha: str
    size: int


@dataclass(frozen=True)
class Tree:
    """A commit's files (``path → Entry``) and its submodule paths (gitlinks)."""

    commit: str
    entries: Mapping[str, Entry]
    gitlinks: frozenset[str]


class Objects:
    """Read access to one repository's objects, shared by every task of the process.

    Tasks of one wave read the same commit: its tree is listed once (``ls-tree``), its blobs
    read in batches (``cat-file --batch``) and small ones kept. Nothing here writes to the
    repository except :func:`write_commits` (new objects, never a ref the user has).
    """

    _shared: ClassVar[dict[Path, Objects]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()
    #: Blobs up to this size are kept in memory once read.
    KEEP_BYTES = 256 * 1024

    def __init__(self, top: Path) -> None:
        self.top = top
        self._lock = threading.Lock()
        self._commits: dict[str, str] = {}
        self._trees: dict[str, Tree] = {}
        self._blobs: dict[str, bytes] = {}
        self._clean: dict[str, bool] = {}
        objects = git_text(top, "rev-parse", "--git-path", "objects")
        self.objects_dir = (
            str((top / objects).resolve()) if not Path(objects).is_absolute() else objects
        )

    @classmethod
    def of(cls, path: Path) -> Objects:
        """The shared instance for the repository holding ``path``.

        Raises:
            InputError: ``path`` is not inside a git repository.
        """
        proc = run_git(path, "rev-parse", "--show-toplevel", check=False)
        if proc.returncode != 0:
            raise InputError(str(path), "", "not a git repository")
        top = Path(proc.stdout.decode("utf-8", "surrogateescape").strip()).resolve()
        with cls._shared_lock:
            found = cls._shared.get(top)
            if found is None:
                found = cls._shared[top] = cls(top)
            return found

    def commit(self, rev: str) -> str:
        """The full SHA of commit ``rev``.

        Raises:
            InputError: ``rev`` is not a commit of this repository.
        """
        with self._lock:
            known = self._commits.get(rev)
        if known is not None:
            return known
        proc = run_git(self.top, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise InputError(str(self.top), "base_sha", f"{rev!r} is not a commit")
        sha = proc.stdout.decode().strip()
        with self._lock:
            self._commits[rev] = sha
        return sha

    def tree(self, commit: str) -> Tree:
        """Every file of ``commit`` (one ``ls-tree`` per commit per process)."""
        sha = self.commit(commit)
        with self._lock:
            cached = self._trees.get(sha)
        if cached is not None:
            return cached
        raw = run_git(self.top, "ls-tree", "-r", "-l", "-z", "--full-tree", sha).stdout
        entries: dict[str, Entry] = {}
        gitlinks: set[str] = set()
        for record in raw.decode("utf-8", "surrogateescape").split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, _kind, blob, size = meta.split()
            if mode == GITLINK_MODE:
                gitlinks.add(path)
                continue
            entries[path] = Entry(mode=mode, sha=blob, size=int(size))
        tree = Tree(sha, entries, frozenset(gitlinks))
        with self._lock:
            self._trees[sha] = tree
        return tree

    def blobs(self, shas: Iterable[str]) -> dict[str, bytes]:
        """Blob contents by SHA, read in one ``cat-file --batch`` for those not in memory.

        Raises:
            GitError: a blob is missing from the object store.
        """
        wanted = list(dict.fromkeys(shas))
        with self._lock:
            found = {s: self._blobs[s] for s in wanted if s in self._blobs}
        missing = [s for s in wanted if s not in found]
        if missing:
            out = run_git(
                self.top,
                "cat-file",
                "--batch",
                input_bytes="".join(f"{s}\n" for s in missing).encode(),
            ).stdout
            pos = 0
            for sha in missing:
                end = out.index(b"\n", pos)
                header = out[pos:end].split()
                if len(header) != 3:
                    raise GitError(["cat-file", "--batch"], 1, f"object {sha} is missing")
                size = int(header[2])
                found[sha] = out[end + 1 : end + 1 + size]
                pos = end + 1 + size + 1
            with self._lock:
                for sha in missing:
                    if len(found[sha]) <= self.KEEP_BYTES:
                        self._blobs[sha] = found[sha]
        return found

    def clean_at(self, commit: str) -> bool:
        """Whether the checkout is at ``commit`` with no tracked file modified (its files on
        disk are then the commit's, and reading them is cheaper than reading objects)."""
        sha = self.commit(commit)
        with self._lock:
            known = self._clean.get(sha)
        if known is not None:
            return known
        env = commit_env({"GIT_OPTIONAL_LOCKS": "0"})
        head = run_git(self.top, "rev-parse", "-q", "--verify", "HEAD", env=env, check=False)
        clean = False
        if head.returncode == 0 and head.stdout.decode().strip() == sha:
            status = run_git(
                self.top, "status", "--porcelain", "--untracked-files=no", env=env, check=False
            )
            clean = status.returncode == 0 and not status.stdout.strip()
        with self._lock:
            self._clean[sha] = clean
        return clean


def blob_sha(data: bytes) -> str:
    """The SHA-1 git gives ``data`` as a blob (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


GITLINK_MODE = "160000"
SYMLINK_MODE = "120000"


@dataclass(frozen=True)
class NewCommit:
    """A commit to write: its message, author/committer date and file changes.

    ``changes`` maps a path to ``(mode, content)``, or to ``None`` for a deletion.
    """

    message: str
    date: datetime
    changes: Mapping[str, tuple[str, bytes] | None]


def clean_message(message: str) -> str:
    """The message as ``git commit --cleanup=whitespace`` leaves it (trailing spaces and
    surrounding blank lines gone, runs of blank lines collapsed), ending in one newline."""
    lines = [line.rstrip() for line in message.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def _fast_import_path(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    if b"\n" in raw or raw.startswith(b'"') or b"\\" in raw:
        escaped = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
        return b'"' + escaped + b'"'
    return raw


def write_commits(repo: Path, parent: str, commits: Sequence[NewCommit]) -> list[str]:
    """Write ``commits`` as a chain on top of ``parent`` with one ``git fast-import``; their SHAs.

    The same commits on the same parent always give the same SHAs (author, committer, dates and
    messages are fixed), so re-running a merge reproduces its branch exactly. No ref is left
    behind: the chain is imported under a temporary ref that is deleted at once; callers point
    their branch at the last SHA.

    Raises:
        GitError: fast-import refused the stream.
    """
    if not commits:
        return []
    ref = f"refs/orchestrator/import-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    stream = bytearray()
    ident = f"{BOT_NAME} <{BOT_EMAIL}>".encode()
    for number, new in enumerate(commits, start=1):
        moment = new.date if new.date.tzinfo else new.date.replace(tzinfo=UTC)
        when = f"{int(moment.timestamp())} +0000".encode()
        message = clean_message(new.message).encode("utf-8")
        stream += b"commit " + ref.encode() + b"\nmark :%d\n" % number
        stream += b"author " + ident + b" " + when + b"\ncommitter " + ident + b" " + when + b"\n"
        stream += b"data %d\n" % len(message) + message
        stream += b"from " + (parent.encode() if number == 1 else b":%d" % (number - 1)) + b"\n"
        for path, change in sorted(new.changes.items()):
            if change is None:
                stream += b"D " + _fast_import_path(path) + b"\n"
                continue
            mode, data = change
            stream += b"M " + mode.encode() + b" inline " + _fast_import_path(path) + b"\n"
            stream += b"data %d\n" % len(data) + data + b"\n"
        stream += b"\n"
    stream += b"done\n"
    with tempfile.TemporaryDirectory(prefix="orchestrator-import-") as tmp:
        marks = Path(tmp) / "marks"
        run_git(
            repo,
            "fast-import",
            "--quiet",
            "--done",
            f"--export-marks={marks}",
            input_bytes=bytes(stream),
            env=commit_env(),
        )
        shas = dict(line.split() for line in marks.read_text().splitlines())
    run_git(repo, "update-ref", "-d", ref, check=False)
    return [shas[f":{number}"] for number in range(1, len(commits) + 1)]
