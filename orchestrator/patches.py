"""Reading git patches: the paths they touch, the modes they set, the lines their hunks show.

A task's ``changes.patch`` is untrusted input when it reaches the aggregate step (a downloaded
artifact, possibly written by a prompt-injected agent rather than by our sandbox). The sandbox
can only make regular files (mode 100644, or an existing file keeping 100755) and delete files;
so a patch that creates or changes a symlink or a submodule, changes a mode, renames or copies,
or touches a protected path is refused here, whatever its paths look like. Paths are read two
ways, git's own (``git apply --numstat``/``--summary``) and from the headers, so a crafted
header that git reads differently from us cannot slip a path past the check.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.gitrepo import blob_sha, protected_reason, run_git

__all__ = [
    "FileChange",
    "diff_lines",
    "header_paths",
    "patch_paths",
    "patch_refusal",
    "unified_patch",
    "unquote",
]

#: File modes the sandbox writes: a regular file, or an existing executable keeping its mode.
FILE_MODES = frozenset({"100644", "100755"})
SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_PATH_HEADERS = ("rename from ", "rename to ", "copy from ", "copy to ", "--- ", "+++ ")
_INDEX = re.compile(r"^index [0-9a-f]+\.\.[0-9a-f]+(?: (\d{6}))?$")
_SUMMARY = re.compile(r"^ (?:create|delete) mode (\d{6}) |^ mode change (\d{6}) => (\d{6}) ")


def unquote(text: str) -> str:
    """Undo git's C-style path quoting (``"a/\\303\\251 x"``); plain text is returned as is."""
    if not (len(text) >= 2 and text.startswith('"') and text.endswith('"')):
        return text
    body, out, i = text[1:-1], bytearray(), 0
    simple = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
                continue
            if re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
        out += ch.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _strip_prefix(path: str) -> str:
    path = unquote(path.rstrip("\t"))
    return path[2:] if path[:2] in ("a/", "b/") else path


def _diff_git_paths(rest: str) -> set[str]:
    """Paths of a ``diff --git a/X b/Y`` line (ambiguous with spaces: keep every reading)."""
    if rest.startswith('"'):
        end = rest.find('" ', 1)
        while end != -1 and rest[end - 1] == "\\":
            end = rest.find('" ', end + 1)
        if end == -1:
            return {_strip_prefix(rest)}
        return {_strip_prefix(rest[: end + 1]), _strip_prefix(rest[end + 2 :])}
    paths = set()
    for match in re.finditer(r" (?=b/|\")", rest):
        paths |= {_strip_prefix(rest[: match.start()]), _strip_prefix(rest[match.start() + 1 :])}
    return paths or {_strip_prefix(rest)}


def header_lines(patch: str) -> Iterator[str]:
    """The header lines of a git patch (``diff --git``, modes, index, ---/+++), skipping hunks."""
    old_left = new_left = 0
    for line in patch.splitlines():
        if old_left > 0 or new_left > 0:
            if line[:1] in ("-", "+", " ", "\\", ""):
                old_left -= line[:1] in ("-", " ", "")
                new_left -= line[:1] in ("+", " ", "")
                continue
            old_left = new_left = 0
        hunk = _HUNK.match(line)
        if hunk:
            old_left, new_left = int(hunk.group(1) or 1), int(hunk.group(3) or 1)
            continue
        yield line


def header_paths(patch: str) -> set[str]:
    """Every path a git patch's headers name (old and new sides), skipping hunk bodies."""
    paths: set[str] = set()
    for line in header_lines(patch):
        if line.startswith("diff --git "):
            paths |= _diff_git_paths(line[len("diff --git ") :])
        else:
            paths |= {_strip_prefix(line[len(p) :]) for p in _PATH_HEADERS if line.startswith(p)}
    return {p for p in paths if p and p not in ("/dev/null", "dev/null")}


def patch_paths(repo: Path, patch: bytes) -> set[str]:
    """Paths a patch touches: git's own reading (``apply --numstat``) plus the headers.

    Raises:
        ValueError: git does not recognise the bytes as a patch.
    """
    proc = run_git(repo, "apply", "--numstat", "-z", "-", input_bytes=patch, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ValueError(reason[0] if reason else "git apply --numstat failed")
    numstat = set()
    for record in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        name = record.split("\t", 2)[-1]
        if name:
            numstat.add(name)
    return numstat | header_paths(patch.decode("utf-8", "surrogateescape"))


def summary_modes(repo: Path, patch: bytes) -> set[tuple[str, str]]:
    """What git's own ``apply --summary`` reads in the patch: ``(kind, mode)`` pairs, kind being
    ``create``, ``delete`` or ``change`` (mode ``A=>B``)."""
    proc = run_git(repo, "apply", "--summary", "-", input_bytes=patch, check=False)
    modes: set[tuple[str, str]] = set()
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        match = _SUMMARY.match(line)
        if match is None:
            continue
        if match.group(1):
            modes.add((line.split()[0], match.group(1)))
        else:
            modes.add(("change", f"{match.group(2)}=>{match.group(3)}"))
    return modes


def mode_refusal(patch: str) -> str | None:
    """Why the patch's headers show something the sandbox cannot make, or ``None``."""
    for line in header_lines(patch):
        words = line.split()
        if line.startswith(("old mode ", "new mode ")):
            return f"it changes a file mode ({line.strip()})"
        if line.startswith("new file mode "):
            mode = words[-1]
            if mode == SYMLINK_MODE:
                return "it creates a symlink"
            if mode == GITLINK_MODE:
                return "it adds a submodule (gitlink)"
            if mode != "100644":
                return f"it creates a file with mode {mode}"
        if line.startswith("deleted file mode ") and words[-1] == GITLINK_MODE:
            return "it removes a submodule (gitlink)"
        index = _INDEX.match(line)
        if index and index.group(1) == SYMLINK_MODE:
            return "it changes a symlink's target"
        if index and index.group(1) == GITLINK_MODE:
            return "it moves a submodule (gitlink)"
        if line.startswith(("rename from ", "copy from ")):
            return f"it {words[0]}s a file (the sandbox makes neither renames nor copies)"
    return None


def _summary_refusal(modes: set[tuple[str, str]]) -> str | None:
    for kind, mode in sorted(modes):
        if kind == "change":
            return f"it changes a file mode ({mode})"
        if kind == "create" and mode == SYMLINK_MODE:
            return "it creates a symlink"
        if mode == GITLINK_MODE:
            return f"it {'adds' if kind == 'create' else 'removes'} a submodule (gitlink)"
        if kind == "create" and mode != "100644":
            return f"it creates a file with mode {mode}"
    return None


def patch_refusal(
    patch: bytes, paths: set[str], *, allow_workflow_edits: bool, repo: Path | None = None
) -> str | None:
    """Why a patch must not be applied, or ``None``.

    Args:
        patch: The patch bytes.
        paths: The paths it touches (``patch_paths``).
        allow_workflow_edits: ``limits.allow_workflow_edits`` (workflows, actions and git
            behaviour files); symlinks, submodules and modes are refused regardless.
        repo: A repository to ask ``git apply --summary`` in (git's own reading of modes).
    """
    reason = mode_refusal(patch.decode("utf-8", "surrogateescape"))
    if reason is None and repo is not None:
        reason = _summary_refusal(summary_modes(repo, patch))
    if reason is not None:
        return f"patch refused: {reason}"
    for path in sorted(paths):
        protected = protected_reason(path, allow_workflow_edits=allow_workflow_edits)
        if protected:
            return f"patch refused: it touches {path} ({protected})"
    return None


def diff_lines(patch: str | None) -> set[int]:
    """Right-side line numbers a file's diff shows (hunk context and added lines).

    GitHub accepts an inline review comment (``side: RIGHT``) only on these lines.
    """
    if not patch:
        return set()
    lines: set[int] = set()
    for line in patch.splitlines():
        match = _HUNK.match(line)
        if match:
            start = int(match.group(2))
            count = int(match.group(3)) if match.group(3) is not None else 1
            lines.update(range(start, start + count))
    return lines


# --------------------------------------------------------------------------- writing patches


@dataclass(frozen=True)
class FileChange:
    """One file's change for :func:`unified_patch`: ``None`` content means absent."""

    path: str
    mode: str
    old: bytes | None
    new: bytes | None


#: Files larger than this (or with very many lines) are diffed by git, not difflib: difflib's
#: matcher is quadratic in the worst case.
MAX_PY_DIFF_BYTES = 512 * 1024
_ZERO = "0" * 40
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._/+@=,-]+")


def unified_patch(changes: list[FileChange], context: int = 3) -> bytes | None:
    """The changes as a git patch (``git diff --full-index`` format), made in Python.

    What ``git apply`` (and ``diffapply``) accept and apply to exactly the new contents. Returns
    ``None`` when a change needs git itself: binary or non-UTF-8 content, a path that git would
    quote or pad, or a very large file. The caller then diffs with git (``Workspace``).
    """
    out: list[bytes] = []
    for change in sorted(changes, key=lambda c: c.path):
        piece = _file_patch(change, context)
        if piece is None:
            return None
        out.append(piece)
    return b"".join(out)


def _is_text(data: bytes | None) -> bool:
    if data is None:
        return True
    if len(data) > MAX_PY_DIFF_BYTES or b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _file_patch(change: FileChange, context: int) -> bytes | None:
    path = change.path
    if not _PLAIN_PATH.fullmatch(path) or not (_is_text(change.old) and _is_text(change.new)):
        return None
    if change.old == change.new:
        return b""
    old_sha = blob_sha(change.old) if change.old is not None else _ZERO
    new_sha = blob_sha(change.new) if change.new is not None else _ZERO
    head = [f"diff --git a/{path} b/{path}"]
    if change.old is None:
        head += [f"new file mode {change.mode}", f"index {old_sha}..{new_sha}"]
    elif change.new is None:
        head += [f"deleted file mode {change.mode}", f"index {old_sha}..{new_sha}"]
    else:
        head += [f"index {old_sha}..{new_sha} {change.mode}"]
    old_lines = _git_lines(change.old or b"")
    new_lines = _git_lines(change.new or b"")
    if not old_lines and not new_lines:
        return ("\n".join(head) + "\n").encode()
    head += [
        "--- /dev/null" if change.old is None else f"--- a/{path}",
        "+++ /dev/null" if change.new is None else f"+++ b/{path}",
    ]
    body = bytearray(("\n".join(head) + "\n").encode())
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        o1, o2, n1, n2 = first[1], last[2], first[3], last[4]
        body += _hunk_header(o1, o2 - o1, n1, n2 - n1)
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for line in old_lines[i1:i2]:
                    body += _line(b" ", line)
                continue
            for line in old_lines[i1:i2]:
                body += _line(b"-", line)
            for line in new_lines[j1:j2]:
                body += _line(b"+", line)
    return bytes(body)


_GIT_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


def _git_lines(data: bytes) -> list[bytes]:
    """Lines as git counts them: split after each LF only (a CR is part of the line)."""
    return _GIT_LINE.findall(data)


def _hunk_header(start_old: int, count_old: int, start_new: int, count_new: int) -> bytes:
    def side(start: int, count: int) -> str:
        first = start + 1 if count else start
        return f"{first}" if count == 1 else f"{first},{count}"

    return f"@@ -{side(start_old, count_old)} +{side(start_new, count_new)} @@\n".encode()


def _line(prefix: bytes, line: bytes) -> bytes:
    if line.endswith(b"\n"):
        return prefix + line
    return prefix + line + b"\n\\ No newline at end of file\n"
