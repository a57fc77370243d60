"""Read git patches and apply them in memory, byte for byte as ``git apply`` does.

The aggregate step merges every task's ``changes.patch`` (``git diff --cached --binary
--full-index --no-renames`` against the run's base commit) onto one branch. Running git once per
patch costs several processes each; this module does the same work in memory:

- ``parse_patch`` reads a git patch into one ``FileDiff`` per file (paths C-unquoted, ``a/``
  and ``b/`` removed, modes, index SHAs, hunks, binary sections);
- ``apply_file`` computes one file's new content exactly as ``git apply --whitespace=nowarn``
  (no ``--3way``, default context, no fuzz) would, and raises ``ApplyConflict`` exactly where
  git refuses, so the caller can fall back to ``git apply --3way`` for that patch.

It follows git's ``apply.c`` step by step:

- a hunk's preimage (context and ``-`` lines) must match the file byte for byte; the search
  starts at the hunk's *new* start line and goes outward (``+1, -1, +2, -2, ...``), the first
  match wins; lines written by an earlier hunk of the same file cannot be matched again;
- a hunk starting at old line 0 or 1 must match at the beginning of the file, a hunk without
  trailing context must match at its end (no context reduction: git's default ``-C`` is "all");
- git compares a preimage whose last line has no newline (``\\ No newline at end of file``) as a
  byte prefix, so such a line also matches a longer line that only adds whitespace (with the
  same whitespace-blind 24-bit line hash); the postimage then replaces the whole line, as in git;
- a deletion must leave nothing behind; a new file must not exist yet, a modified one must;
- binary patches (``GIT binary patch``, ``literal`` or ``delta``, base85 + zlib) need the full
  index line: the old content must have the index line's old blob SHA-1 and the result must
  have its new one, whatever the method, so a delta against another base never yields garbage.

Divergences from git, all of them refusals of patches ``git diff`` never writes (so never a
different result): a traditional diff without a ``diff --git`` header, a ``\\ No newline`` marker
after a line that is not the last of its side (or after an empty line) and a non-SHA-1 index
line raise ``PatchError``; a ``Binary files ... differ`` section (a patch made without
``--binary``), which git can apply only from its own object store, raises ``ApplyConflict``.
Several sections for the same path in one patch are applied one after the other by the caller
(``git apply`` chains them the same way).
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

__all__ = ["ApplyConflict", "FileDiff", "Hunk", "PatchError", "apply_file", "parse_patch"]

#: Hex digits of a full SHA-1 object name (git's ``hexsz``); the index line's names are longer
#: than this in a SHA-256 repository, which git (and this module) then ignore.
HEXSZ = 40
NULL_SHA = "0" * HEXSZ

_FRAGMENT = re.compile(rb"@@ -([0-9]+)(?:,([0-9]+))? \+([0-9]+)(?:,([0-9]+))? @@")
_MODE = re.compile(rb"([0-7]+)[ \t\r\n]")
_LEADING_NUMBER = re.compile(rb"[ \t\n\r\v\f]*\+?([0-9]+)")
#: git's ``isspace`` (its own ctype table): tab, newline, carriage return, space.
_GIT_SPACE = frozenset(b"\t\n\r ")
_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
    ord("\\"): 92,
    ord('"'): 34,
}


class PatchError(ValueError):
    """The bytes are not a git patch this module can read; the message says what and where."""


class ApplyConflict(Exception):  # noqa: N818 - the name is the module's API
    """A file diff does not apply to the given content (``git apply`` would refuse it).

    Attributes:
        path: The file's path (new path, or old path for a deletion).
        reason: What failed, in git's terms.
        hunks: 1-based numbers of the hunks that did not apply (empty when the failure is not
            about hunks: a missing or existing file, a binary base mismatch, ...). Like
            ``git apply --reject``, later hunks are still tried after a failing one.
        lines: The old-file start line (``@@ -N``) of each failing hunk, as git reports it
            (``patch failed: path:N``).
    """

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        hunks: tuple[int, ...] = (),
        lines: tuple[int, ...] = (),
    ) -> None:
        self.path = path
        self.reason = reason
        self.hunks = hunks
        self.lines = lines
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_conflict, (self.path, self.reason, self.hunks, self.lines))


def _rebuild_conflict(
    path: str, reason: str, hunks: tuple[int, ...], lines: tuple[int, ...]
) -> ApplyConflict:
    return ApplyConflict(path, reason, hunks=hunks, lines=lines)


@dataclass(frozen=True)
class Hunk:
    """One ``@@ -a,b +c,d @@`` hunk.

    Attributes:
        old_start: ``a`` (0 for a hunk that adds to an empty file).
        old_count: ``b``.
        new_start: ``c``.
        new_count: ``d``.
        lines: The body lines, each with its ``' '``, ``'-'`` or ``'+'`` prefix and without its
            newline (a CR before it is kept). ``\\ No newline at end of file`` markers are not
            lines: they are the two flags below.
        old_eof_newline: False when the last old-side line (the last ``' '`` or ``'-'`` line)
            has no newline, i.e. the old file ends without one.
        new_eof_newline: The same for the last new-side line (``' '`` or ``'+'``).
    """

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[bytes, ...]
    old_eof_newline: bool = True
    new_eof_newline: bool = True

    def preimage(self) -> list[bytes]:
        """The old-side lines the hunk expects, each with its newline as in the file."""
        lines = [line[1:] + b"\n" for line in self.lines if line[:1] in (b" ", b"-")]
        if lines and not self.old_eof_newline:
            lines[-1] = lines[-1][:-1]
        return lines

    def postimage(self) -> list[bytes]:
        """The new-side lines the hunk writes, each with its newline as in the file."""
        lines = [line[1:] + b"\n" for line in self.lines if line[:1] in (b" ", b"+")]
        if lines and not self.new_eof_newline:
            lines[-1] = lines[-1][:-1]
        return lines

    @property
    def trailing(self) -> int:
        """Context lines after the last change (0: the hunk must match at the end of file)."""
        count = 0
        for line in reversed(self.lines):
            if line[:1] != b" ":
                break
            count += 1
        return count


@dataclass(frozen=True)
class FileDiff:
    """The changes a patch makes to one file.

    Attributes:
        old_path: Path before the change (``None`` for a new file).
        new_path: Path after the change (``None`` for a deleted file).
        old_mode: Mode before (``"100644"``), from ``old mode``, ``deleted file mode`` or the
            ``index`` line; ``None`` for a new file or when the patch does not say.
        new_mode: Mode after, from ``new mode`` or ``new file mode``; when the patch keeps the
            mode (``index a..b 100644``) it is the old mode; ``None`` for a deleted file.
        old_sha: Old blob name from ``index OLD..NEW`` (all zeros for a new file).
        new_sha: New blob name from the same line (all zeros for a deleted file).
        hunks: The text hunks, in patch order.
        binary: The raw binary section: ``GIT binary patch`` and its ``literal``/``delta``
            hunks (forward, then the optional reverse one), or the ``Binary files ... differ``
            line of a patch made without ``--binary``; ``None`` for a text diff.
        is_rename: ``rename from``/``rename to`` headers (the paths differ).
        is_copy: ``copy from``/``copy to`` headers (the old file stays).
    """

    old_path: str | None
    new_path: str | None
    old_mode: str | None
    new_mode: str | None
    old_sha: str | None
    new_sha: str | None
    hunks: tuple[Hunk, ...]
    binary: bytes | None
    is_rename: bool = False
    is_copy: bool = False

    @property
    def kind(self) -> Literal["add", "delete", "modify"]:
        """``add`` (no old path), ``delete`` (no new path) or ``modify``."""
        if self.old_path is None:
            return "add"
        if self.new_path is None:
            return "delete"
        return "modify"

    @property
    def path(self) -> str:
        """The new path, or the old one for a deletion."""
        path = self.new_path if self.new_path is not None else self.old_path
        assert path is not None  # parse_patch never builds a diff without a path
        return path


# --------------------------------------------------------------------------------- parsing


def _split_keepends(data: bytes) -> list[bytes]:
    """Lines split on LF only, each keeping its LF (the last one may have none)."""
    lines = data.split(b"\n")
    last = lines.pop()
    out = [line + b"\n" for line in lines]
    if last:
        out.append(last)
    return out


def _show(line: bytes, limit: int = 80) -> str:
    text = line.rstrip(b"\n").decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _unquote_c(text: bytes, start: int = 0) -> tuple[bytes, int] | None:
    """git's ``unquote_c_style``: the string quoted at ``text[start]`` and the index after its
    closing quote, or ``None`` if it is not a valid C-quoted string."""
    if text[start : start + 1] != b'"':
        return None
    out = bytearray()
    i = start + 1
    size = len(text)
    while i < size:
        ch = text[i]
        if ch == 0x22:  # closing quote
            return bytes(out), i + 1
        if ch != 0x5C:  # not a backslash
            out.append(ch)
            i += 1
            continue
        if i + 1 >= size:
            return None
        esc = text[i + 1]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif 0x30 <= esc <= 0x33:  # octal, first digit 0-3
            digits = text[i + 1 : i + 4]
            if len(digits) != 3 or any(not 0x30 <= d <= 0x37 for d in digits[1:]):
                return None
            out.append(int(digits, 8))
            i += 4
        else:
            return None
    return None


def _skip_tree_prefix(name: bytes) -> bytes | None:
    """Drop the first path component (``-p1``); ``None`` for an absolute or prefix-less name."""
    slash = name.find(b"/")
    if slash <= 0:
        return None
    return name[slash + 1 :]


def _squash_slash(name: bytes) -> bytes:
    while b"//" in name:
        name = name.replace(b"//", b"/")
    return name


def _git_header_name(rest: bytes) -> bytes | None:
    """git's ``git_header_name``: the one path of ``diff --git A B`` when both sides name the
    same file (``rest`` is the line after ``diff --git ``, newline included)."""
    if rest.startswith(b'"'):
        return _quoted_header_name(rest)
    body = rest[:-1] if rest.endswith(b"\n") else rest
    name = _skip_tree_prefix(body)
    if name is None:
        return None
    quote = name.find(b'"')
    if quote != -1:
        quoted = _unquote_c(rest, len(body) - len(name) + quote)
        other = None if quoted is None else _skip_tree_prefix(quoted[0])
        if other is None:
            return None
        size = len(other)
        if size < quote and name[:size] == other and name[size] in _GIT_SPACE:
            return other
        return None
    for size, ch in enumerate(name):
        if ch not in (0x20, 0x09):
            continue
        if size + 1 >= len(name):
            return None
        second = _skip_tree_prefix(name[size + 1 :])
        if second is not None and second == name[:size]:
            return name[:size]
    return None


def _quoted_header_name(rest: bytes) -> bytes | None:
    """``git_header_name`` when the first name is C-quoted."""
    first = _unquote_c(rest)
    if first is None:
        return None
    stripped = _skip_tree_prefix(first[0])
    if stripped is None:
        return None
    after = first[1]
    while after < len(rest) and rest[after] in _GIT_SPACE:
        after += 1
    if after >= len(rest):
        return None
    if rest[after : after + 1] == b'"':
        second = _unquote_c(rest, after)
        other = None if second is None else _skip_tree_prefix(second[0])
        return stripped if other == stripped else None
    # git compares an unquoted second name *with* its newline: never equal in practice.
    return stripped if _skip_tree_prefix(rest[after:]) == stripped else None


def _find_name(rest: bytes, *, strip: bool, stop_at_tab: bool) -> bytes | None:
    """git's ``find_name``: a path from a ``---``/``+++`` (``strip``, ends at a tab) or
    ``rename``/``copy`` header (whole line)."""
    if rest.startswith(b'"'):
        quoted = _unquote_c(rest)
        if quoted is not None:
            name: bytes | None = quoted[0]
            if strip:
                slash = quoted[0].find(b"/")
                name = None if slash == -1 else quoted[0][slash + 1 :]
            if name is not None:
                return _squash_slash(name)
    end = 0
    while end < len(rest):
        ch = rest[end]
        if ch == 0x0A or ch == 0x0D or (ch == 0x09 and stop_at_tab):
            break
        end += 1
    text = rest[:end]
    if strip:
        slash = text.find(b"/")
        if slash == -1:
            return None
        text = text[slash + 1 :]
    return _squash_slash(text) if text else None


def _is_dev_null(rest: bytes) -> bool:
    return rest.startswith(b"/dev/null") and rest[9:10] in (b"\t", b"\n", b"\r", b" ")


def _parse_mode(rest: bytes, lineno: int) -> str:
    match = _MODE.match(rest)
    if match is None:
        raise PatchError(f"line {lineno}: invalid mode: {_show(rest)!r}")
    return format(int(match.group(1), 8), "o")


def _fragment_header(line: bytes) -> tuple[int, int, int, int] | None:
    if not line.endswith(b"\n"):
        return None
    match = _FRAGMENT.match(line)
    if match is None:
        return None
    old_count, new_count = match.group(2), match.group(4)
    return (
        int(match.group(1)),
        1 if old_count is None else int(old_count),
        int(match.group(3)),
        1 if new_count is None else int(new_count),
    )


@dataclass
class _Header:
    """What ``parse_git_diff_header`` gathers for one file."""

    old_name: bytes | None = None
    new_name: bytes | None = None
    old_mode: str | None = None
    new_mode: str | None = None
    old_sha: str | None = None
    new_sha: str | None = None
    is_new: bool = False
    is_delete: bool = False
    is_rename: bool = False
    is_copy: bool = False

    def extensions(self) -> int:
        return self.is_new + self.is_delete + self.is_rename + self.is_copy


class _Parser:
    """A port of git's patch reader (``find_header`` / ``parse_chunk``) over split lines."""

    def __init__(self, data: bytes) -> None:
        self.lines = _split_keepends(data)
        self.starts = list(accumulate(map(len, self.lines), initial=0))
        self.total = len(data)

    def remaining(self, index: int) -> int:
        """Bytes from the start of line ``index`` to the end of the input."""
        return self.total - self.starts[index] if index < len(self.lines) else 0

    def parse(self) -> list[FileDiff]:
        lines, count = self.lines, len(self.lines)
        files: list[FileDiff] = []
        index = 0
        while index < count:
            line = lines[index]
            if len(line) < 6:
                index += 1
                continue
            if line.startswith(b"@@ -"):
                if _fragment_header(line) is not None:
                    raise PatchError(
                        f"line {index + 1}: hunk without a file header: {_show(line)!r}"
                    )
                index += 1
                continue
            if self.remaining(index) < len(line) + 6:
                break
            if line.startswith(b"diff --git "):
                parsed = self.file_diff(index)
                if parsed is None:
                    index += 1
                    continue
                diff, index = parsed
                files.append(diff)
                continue
            if (
                line.startswith(b"--- ")
                and index + 2 < count
                and lines[index + 1].startswith(b"+++ ")
                and lines[index + 2].startswith(b"@@ -")
            ):
                raise PatchError(
                    f"line {index + 1}: a diff without a 'diff --git' header "
                    "(only git patches are read)"
                )
            index += 1
        if not files and self.total and any(line.strip() for line in lines):
            raise PatchError("no file diff in the patch (no 'diff --git' section found)")
        return files

    def header(self, index: int) -> tuple[_Header, int]:
        """Extended header lines after ``diff --git`` at ``index``; returns where they end."""
        lines, count = self.lines, len(self.lines)
        def_name = _git_header_name(lines[index][len(b"diff --git ") :])
        head = _Header()
        at = index + 1
        while at < count:
            line = lines[at]
            lineno = at + 1
            if not line.endswith(b"\n") or line.startswith(b"@@ -"):
                break
            if line.startswith(b"--- "):
                head.old_name = self.verify_name(line[4:], head.is_new, head.old_name, "old")
            elif line.startswith(b"+++ "):
                head.new_name = self.verify_name(line[4:], head.is_delete, head.new_name, "new")
            elif line.startswith(b"old mode "):
                head.old_mode = _parse_mode(line[9:], lineno)
            elif line.startswith(b"new mode "):
                head.new_mode = _parse_mode(line[9:], lineno)
            elif line.startswith(b"deleted file mode "):
                head.is_delete = True
                head.old_name = def_name
                head.old_mode = _parse_mode(line[18:], lineno)
            elif line.startswith(b"new file mode "):
                head.is_new = True
                head.new_name = def_name
                head.new_mode = _parse_mode(line[14:], lineno)
            elif line.startswith((b"copy from ", b"copy to ")):
                head.is_copy = True
                name = _find_name(line.split(b" ", 2)[2], strip=False, stop_at_tab=False)
                if line.startswith(b"copy from "):
                    head.old_name = name
                else:
                    head.new_name = name
            elif line.startswith((b"rename old ", b"rename new ", b"rename from ", b"rename to ")):
                head.is_rename = True
                name = _find_name(line.split(b" ", 2)[2], strip=False, stop_at_tab=False)
                if line.startswith((b"rename old ", b"rename from ")):
                    head.old_name = name
                else:
                    head.new_name = name
            elif line.startswith((b"similarity index ", b"dissimilarity index ")):
                pass
            elif line.startswith(b"index "):
                self.index_line(line[6:], head, lineno)
            else:
                break
            if head.extensions() > 1:
                raise PatchError(
                    f"line {lineno}: inconsistent header lines (new, deleted, renamed, copied)"
                )
            at += 1
        if head.old_name is None and head.new_name is None:
            if def_name is None:
                raise PatchError(
                    f"line {index + 1}: git diff header lacks filename information: "
                    f"{_show(lines[index])!r}"
                )
            head.old_name = head.new_name = def_name
        if (head.new_name is None and not head.is_delete) or (
            head.old_name is None and not head.is_new
        ):
            raise PatchError(f"line {at}: git diff header lacks filename information")
        return head, at

    def verify_name(
        self, rest: bytes, is_null: bool, current: bytes | None, side: str
    ) -> bytes | None:
        """git's ``gitdiff_verify_name`` for a ``---`` (old) or ``+++`` (new) line."""
        if current is None and not is_null:
            return _find_name(rest, strip=True, stop_at_tab=True)
        if current is not None:
            if is_null:
                raise PatchError(f"bad git diff: expected /dev/null, got {_show(current)!r}")
            another = _find_name(rest, strip=True, stop_at_tab=True)
            if another != current:
                raise PatchError(f"bad git diff: inconsistent {side} filename {_show(rest)!r}")
            return current
        if not _is_dev_null(rest):
            raise PatchError(f"bad git diff: expected /dev/null, got {_show(rest)!r}")
        return None

    @staticmethod
    def index_line(rest: bytes, head: _Header, lineno: int) -> None:
        """git's ``gitdiff_index``: ``OLD..NEW[ MODE]`` (ignored when malformed, as git does)."""
        dots = rest.find(b".")
        if dots == -1 or rest[dots + 1 : dots + 2] != b"." or dots > HEXSZ:
            return
        old = rest[:dots]
        after = rest[dots + 2 :]
        end = len(after)
        for stop in (b" ", b"\n"):
            found = after.find(stop)
            if found != -1:
                end = min(end, found)
        new = after[:end]
        if len(new) > HEXSZ:
            return
        head.old_sha = old.decode("ascii", "replace")
        head.new_sha = new.decode("ascii", "replace")
        if after[end : end + 1] == b" ":
            head.old_mode = _parse_mode(after[end + 1 :], lineno)

    def file_diff(self, index: int) -> tuple[FileDiff, int] | None:
        """One file's diff starting at a ``diff --git`` line, and the index after it; ``None``
        when the line has no header lines after it (git skips such a line)."""
        head, at = self.header(index)
        if at == index + 1:
            return None
        hunks: list[Hunk] = []
        while (
            at < len(self.lines) and self.remaining(at) > 4 and self.lines[at].startswith(b"@@ -")
        ):
            hunk, at = self.hunk(at)
            hunks.append(hunk)
        old_lines = sum(h.old_count for h in hunks)
        new_lines = sum(h.new_count for h in hunks)
        name = _show(head.new_name or head.old_name or b"")
        if head.is_new and old_lines:
            raise PatchError(f"new file {name} depends on old contents")
        if head.is_delete and new_lines:
            raise PatchError(f"deleted file {name} still has contents")
        binary: bytes | None = None
        if not hunks:
            binary, at = self.binary_section(at)
            metadata = (
                head.is_new
                or head.is_delete
                or head.is_rename
                or head.is_copy
                or (head.old_mode is not None and head.new_mode not in (None, head.old_mode))
            )
            if binary is None and not metadata:
                raise PatchError(f"line {at}: patch with only garbage (no change to {name})")
        new_mode = head.new_mode
        if new_mode is None and not head.is_delete:
            new_mode = head.old_mode
        diff = FileDiff(
            old_path=None if head.is_new or head.old_name is None else _decode_path(head.old_name),
            new_path=(
                None if head.is_delete or head.new_name is None else _decode_path(head.new_name)
            ),
            old_mode=None if head.is_new else head.old_mode,
            new_mode=None if head.is_delete else new_mode,
            old_sha=head.old_sha,
            new_sha=head.new_sha,
            hunks=tuple(hunks),
            binary=binary,
            is_rename=head.is_rename,
            is_copy=head.is_copy,
        )
        if (
            diff.old_path is not None
            and diff.new_path is not None
            and diff.old_path != diff.new_path
            and not (diff.is_rename or diff.is_copy)
        ):
            raise PatchError(
                f"line {index + 1}: old and new paths differ ({diff.old_path!r} and "
                f"{diff.new_path!r}) without a rename or copy header"
            )
        return diff, at

    def hunk(self, index: int) -> tuple[Hunk, int]:
        """git's ``parse_fragment``: one hunk at ``index``; returns it and the index after it."""
        lines, count = self.lines, len(self.lines)
        header = _fragment_header(lines[index])
        if header is None:
            raise PatchError(f"line {index + 1}: corrupt hunk header: {_show(lines[index])!r}")
        old_start, old_count, new_start, new_count = header
        old_left, new_left = old_count, new_count
        body: list[bytes] = []
        no_newline: list[int] = []  # body indices followed by a "\ No newline" marker
        added = deleted = 0
        at = index + 1
        previous_is_body = False
        while at < count and (old_left or new_left):
            line = lines[at]
            if not line.endswith(b"\n"):
                raise PatchError(f"line {at + 1}: corrupt patch: truncated hunk line")
            first = line[:1]
            if first in (b" ", b"\n"):
                if not old_left or not new_left:
                    raise self.corrupt(at, "more context lines than the hunk header counts")
                old_left -= 1
                new_left -= 1
                body.append(b" " + line[1:-1] if first == b" " else b" ")
                previous_is_body = True
            elif first == b"-":
                if not old_left:
                    raise self.corrupt(at, "more removed lines than the hunk header counts")
                old_left -= 1
                deleted += 1
                body.append(line[:-1])
                previous_is_body = True
            elif first == b"+":
                if not new_left:
                    raise self.corrupt(at, "more added lines than the hunk header counts")
                new_left -= 1
                added += 1
                body.append(line[:-1])
                previous_is_body = True
            elif first == b"\\":
                if len(line) < 12 or not line.startswith(b"\\ "):
                    raise self.corrupt(at, f"unexpected line {_show(line)!r}")
                if previous_is_body:
                    no_newline.append(len(body) - 1)
                previous_is_body = False
            else:
                raise self.corrupt(at, f"unexpected line {_show(line)!r}")
            at += 1
        if old_left or new_left:
            raise PatchError(
                f"line {at + 1}: corrupt patch: hunk at line {index + 1} ends early "
                f"({old_left} old and {new_left} new lines missing)"
            )
        if not added and not deleted:
            raise self.corrupt(index, "hunk changes nothing")
        if at < count and self.remaining(at) > 12 and lines[at].startswith(b"\\ "):
            if previous_is_body:
                no_newline.append(len(body) - 1)
            at += 1
        old_eof, new_eof = self.fold_markers(body, no_newline, index)
        hunk = Hunk(old_start, old_count, new_start, new_count, tuple(body), old_eof, new_eof)
        return hunk, at

    @staticmethod
    def corrupt(index: int, what: str) -> PatchError:
        return PatchError(f"line {index + 1}: corrupt patch: {what}")

    @staticmethod
    def fold_markers(body: list[bytes], marked: list[int], index: int) -> tuple[bool, bool]:
        """Turn ``\\ No newline`` markers into the two end-of-file flags."""
        old_eof = new_eof = True
        for at in marked:
            kind = body[at][:1]
            later = {line[:1] for line in body[at + 1 :]}
            sides = {b" ": {b" ", b"-", b"+"}, b"-": {b" ", b"-"}, b"+": {b" ", b"+"}}[kind]
            if later & sides or len(body[at]) == 1:
                raise PatchError(
                    f"hunk at line {index + 1}: '\\ No newline at end of file' after a line that "
                    "is not the last of its side (a patch git diff does not write)"
                )
            if kind in (b" ", b"-"):
                old_eof = False
            if kind in (b" ", b"+"):
                new_eof = False
        return old_eof, new_eof

    def binary_section(self, index: int) -> tuple[bytes | None, int]:
        """A ``GIT binary patch`` section or a ``Binary files ... differ`` line at ``index``."""
        lines = self.lines
        if index >= len(lines):
            return None, index
        line = lines[index]
        if line == b"GIT binary patch\n":
            forward = _binary_hunk(lines, index + 1)
            if forward is None:
                raise PatchError(f"line {index + 2}: unrecognized binary patch")
            at = forward[2]
            reverse = _binary_hunk(lines, at)
            if reverse is not None:
                at = reverse[2]
            return b"".join(lines[index:at]), at
        if line.endswith(b" differ\n") and line.startswith((b"Binary files ", b"Files ")):
            return line, index + 1
        return None, index


def _binary_hunk(lines: list[bytes], index: int) -> tuple[str, bytes, int] | None:
    """git's ``parse_binary_hunk``: ``(method, inflated data, next index)``, or ``None`` when
    ``lines[index]`` starts no ``literal``/``delta`` hunk.

    Raises:
        PatchError: The hunk is corrupt (bad line length, base85, zlib stream or size).
    """
    if index >= len(lines):
        return None
    line = lines[index]
    if line.startswith(b"delta "):
        method, rest = "delta", line[6:]
    elif line.startswith(b"literal "):
        method, rest = "literal", line[8:]
    else:
        return None
    number = _LEADING_NUMBER.match(rest)
    size = int(number.group(1)) if number else 0
    at = index + 1
    groups: list[bytes] = []
    lengths: list[int] = []
    while True:
        if at >= len(lines):
            raise PatchError(f"line {at + 1}: corrupt binary patch: missing data")
        data = lines[at]
        at += 1
        if len(data) == 1:
            break
        llen = len(data)
        if llen < 7 or (llen - 2) % 5 or not data.endswith(b"\n"):
            raise PatchError(f"line {at}: corrupt binary patch: {_show(data)!r}")
        max_length = (llen - 2) // 5 * 4
        code = data[0]
        if 0x41 <= code <= 0x5A:
            length = code - 0x41 + 1
        elif 0x61 <= code <= 0x7A:
            length = code - 0x61 + 27
        else:
            raise PatchError(f"line {at}: corrupt binary patch: bad length byte {_show(data)!r}")
        if max_length < length or length <= max_length - 4:
            raise PatchError(f"line {at}: corrupt binary patch: length does not match the data")
        groups.append(data[1:-1])
        lengths.append(length)
    try:
        decoded = base64.b85decode(b"".join(groups))
    except ValueError as exc:
        raise PatchError(f"line {index + 1}: corrupt binary patch: bad base85 ({exc})") from None
    pieces = []
    offset = 0
    for group, length in zip(groups, lengths, strict=True):
        pieces.append(decoded[offset : offset + length])
        offset += len(group) // 5 * 4
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(b"".join(pieces), size + 1)
    except zlib.error as exc:
        raise PatchError(f"line {index + 1}: corrupt binary patch: {exc}") from None
    if not inflater.eof or len(inflated) != size:
        raise PatchError(
            f"line {index + 1}: corrupt binary patch: data does not inflate to {size} bytes"
        )
    return method, inflated, at


def parse_patch(data: bytes) -> list[FileDiff]:
    """Read a git patch (``git diff --binary --full-index`` output) into its file diffs.

    Text before, between and after the file sections (a commit message, a ``-- `` signature) is
    skipped, as ``git apply`` does. An empty patch has no file diffs.

    Args:
        data: The patch bytes; never decoded as a whole (content lines stay bytes).

    Returns:
        One ``FileDiff`` per ``diff --git`` section, in patch order.

    Raises:
        PatchError: The bytes are not a git patch we can read (the message names the line).
    """
    return _Parser(data).parse()


# --------------------------------------------------------------------------------- applying


def _line_hash(line: bytes) -> int:
    """git's whitespace-blind line hash, as its 24-bit line table keeps it."""
    value = 0
    for ch in line:
        if ch not in _GIT_SPACE:
            value = (value * 3 + ch) & 0xFFFFFF
    return value


def _matches(
    img: list[bytes], patched: bytearray, pre: list[bytes], at: int, match_end: bool
) -> bool:
    """git's ``match_fragment`` without whitespace fixing (``--whitespace=nowarn``)."""
    size = len(pre)
    end = at + size
    if end > len(img) or (match_end and end != len(img)):
        return False
    if not size:
        return True
    if patched.find(1, at, end) != -1:
        return False
    last = size - 1
    if last and img[at : at + last] != pre[:last]:
        return False
    mine, theirs = img[at + last], pre[last]
    if mine == theirs:
        return True
    if match_end or theirs.endswith(b"\n"):
        return False
    # A last preimage line without its newline is compared as a byte prefix (memcmp over the
    # preimage's length) after the whitespace-blind hash check, exactly as git does.
    return mine.startswith(theirs) and _line_hash(mine) == _line_hash(theirs)


def _find_pos(
    img: list[bytes],
    patched: bytearray,
    pre: list[bytes],
    line: int,
    match_beginning: bool,
    match_end: bool,
) -> int:
    """git's ``find_pos``: the first matching line from ``line`` outwards, or -1."""
    count = len(img)
    if match_beginning:
        return 0 if _matches(img, patched, pre, 0, match_end) else -1
    if match_end:
        at = count - len(pre)
        return at if at >= 0 and _matches(img, patched, pre, at, True) else -1
    if line < 0 or line > count:
        line = count
    if not pre:
        return line
    first = pre[0]
    single = len(pre) == 1
    if (single or img[line : line + 1] == [first]) and _matches(img, patched, pre, line, False):
        return line
    for distance in range(1, count + 1):
        ahead, behind = line + distance, line - distance
        if ahead > count and behind < 0:
            break
        if (
            ahead <= count
            and (single or img[ahead : ahead + 1] == [first])
            and _matches(img, patched, pre, ahead, False)
        ):
            return ahead
        if (
            behind >= 0
            and (single or img[behind] == first)
            and _matches(img, patched, pre, behind, False)
        ):
            return behind
    return -1


def _apply_hunks(path: str, content: bytes, hunks: tuple[Hunk, ...]) -> bytes:
    img = _split_keepends(content)
    patched = bytearray(len(img))
    failed: list[int] = []
    failed_lines: list[int] = []
    for number, hunk in enumerate(hunks, 1):
        pre = hunk.preimage()
        at = _find_pos(
            img,
            patched,
            pre,
            hunk.new_start - 1 if hunk.new_start else 0,
            hunk.old_start <= 1,
            hunk.trailing == 0,
        )
        if at < 0:
            failed.append(number)
            failed_lines.append(hunk.old_start)
            continue
        post = hunk.postimage()
        img[at : at + len(pre)] = post
        patched[at : at + len(pre)] = b"\x01" * len(post)
    if failed:
        where = ", ".join(
            f"#{n} (line {line})" for n, line in zip(failed, failed_lines, strict=True)
        )
        raise ApplyConflict(
            path,
            f"patch failed: {path}:{failed_lines[0]} (hunk {where} does not apply)",
            hunks=tuple(failed),
            lines=tuple(failed_lines),
        )
    return b"".join(img)


def _blob_sha(data: bytes) -> str:
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def _delta_size(delta: bytes, at: int) -> tuple[int, int]:
    """git's ``get_delta_hdr_size``: a little-endian base-128 number; returns it and the index
    after it."""
    size = shift = 0
    while True:
        byte = delta[at]
        at += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80 or at >= len(delta):
            return size, at


def _patch_delta(path: str, base: bytes, delta: bytes) -> bytes:
    """git's ``patch_delta``: copy (from ``base``) and insert opcodes.

    Raises:
        ApplyConflict: The delta is for a base of another size, or its opcodes are invalid.
    """
    if len(delta) < 4:
        raise ApplyConflict(path, "binary patch does not apply: delta too short")
    base_size, at = _delta_size(delta, 0)
    if base_size != len(base):
        raise ApplyConflict(
            path, f"binary patch does not apply: delta base has {base_size} bytes, not {len(base)}"
        )
    size, at = _delta_size(delta, at)
    out = bytearray()
    top = len(delta)
    while at < top:
        cmd = delta[at]
        at += 1
        if cmd & 0x80:
            offset = length = 0
            for bit, shift in ((0x01, 0), (0x02, 8), (0x04, 16), (0x08, 24)):
                if cmd & bit:
                    if at >= top:
                        raise ApplyConflict(path, "binary patch does not apply: truncated delta")
                    offset |= delta[at] << shift
                    at += 1
            for bit, shift in ((0x10, 0), (0x20, 8), (0x40, 16)):
                if cmd & bit:
                    if at >= top:
                        raise ApplyConflict(path, "binary patch does not apply: truncated delta")
                    length |= delta[at] << shift
                    at += 1
            if not length:
                length = 0x10000
            if offset + length > len(base) or length > size - len(out):
                raise ApplyConflict(path, "binary patch does not apply: delta copy out of range")
            out += base[offset : offset + length]
        elif cmd:
            if cmd > size - len(out) or cmd > top - at:
                raise ApplyConflict(path, "binary patch does not apply: delta insert too long")
            out += delta[at : at + cmd]
            at += cmd
        else:
            raise ApplyConflict(path, "binary patch does not apply: unexpected delta opcode 0")
    if len(out) != size:
        raise ApplyConflict(path, "binary patch does not apply: delta result has the wrong size")
    return bytes(out)


def _is_full_sha(sha: str | None) -> bool:
    return sha is not None and len(sha) == HEXSZ and all(c in "0123456789abcdefABCDEF" for c in sha)


def _apply_binary(path: str, content: bytes, diff: FileDiff) -> bytes:
    section = diff.binary or b""
    if not section.startswith(b"GIT binary patch\n"):
        raise ApplyConflict(
            path, "binary patch without data (made without --binary): git needs the new blob"
        )
    if not (_is_full_sha(diff.old_sha) and _is_full_sha(diff.new_sha)):
        raise ApplyConflict(path, "cannot apply binary patch without full index line")
    if diff.old_path is not None:
        actual = _blob_sha(content)
        if actual != diff.old_sha:
            raise ApplyConflict(
                path,
                f"the patch applies to {diff.old_sha}, which does not match the current "
                f"contents ({actual})",
            )
    elif content:
        raise ApplyConflict(path, "the patch applies to an empty file but it is not empty")
    if diff.new_sha == NULL_SHA:
        return b""
    try:
        forward = _binary_hunk(_split_keepends(section), 1)
    except PatchError as exc:
        raise ApplyConflict(path, f"binary patch does not apply: {exc}") from None
    if forward is None:
        raise ApplyConflict(path, "binary patch does not apply: no literal or delta hunk")
    method, data, _ = forward
    result = data if method == "literal" else _patch_delta(path, content, data)
    actual = _blob_sha(result)
    if actual != diff.new_sha:
        raise ApplyConflict(
            path,
            f"binary patch creates incorrect result (expecting {diff.new_sha}, got {actual})",
        )
    return result


def apply_file(old: bytes | None, diff: FileDiff) -> bytes | None:
    """Apply one file's diff to its content, exactly as ``git apply --whitespace=nowarn`` would.

    Args:
        old: The file's current content, or ``None`` if it does not exist.
        diff: One ``FileDiff`` from ``parse_patch``.

    Returns:
        The new content, or ``None`` when the diff deletes the file. A mode-only change returns
        ``old`` unchanged (the new mode is ``diff.new_mode``).

    Raises:
        ApplyConflict: git would refuse this file: a hunk's context is not found (no fuzz, at
            the hunk's anchor when it must match the start or the end of the file), a new file
            already exists, a changed or deleted file does not, a deletion leaves content, or a
            binary patch's old or new blob SHA does not match.
    """
    path = diff.path
    if diff.old_path is None:
        if old is not None:
            raise ApplyConflict(path, "already exists")
        content = b""
    else:
        if old is None:
            raise ApplyConflict(path, "does not exist")
        content = old
    if diff.binary is not None:
        result = _apply_binary(path, content, diff)
    elif diff.hunks:
        result = _apply_hunks(path, content, diff.hunks)
    else:
        result = content
    if diff.new_path is None:
        if result:
            raise ApplyConflict(path, "removal patch leaves file contents")
        return None
    return result
