"""Thin wrappers over the git command line, the one place that runs ``git``.

We shell out to git rather than use a library: the patches we produce and apply must be exactly
what ``git apply`` on a runner understands, and git is on every runner already. Commits are
made with a fixed identity passed through the environment, so no ``git config`` is needed on the
machine (CI runners and fresh clones often have none).
"""

from __future__ import annotations

import os
import subprocess
import unicodedata
from collections.abc import Mapping
from pathlib import Path

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
