"""The in-memory patch applier against real git: same bytes, same refusals.

Every patch here is made by git (``git diff --cached --binary --full-index --no-renames``, as the
sandbox makes ``changes.patch``) in a temporary repository, and applied both by
``orchestrator.diffapply`` and by ``git apply --whitespace=nowarn`` (no ``--3way``) on a real
worktree: the contents must match byte for byte, and one refuses exactly when the other does.
"""

from __future__ import annotations

import base64
import os
import random
import re
import subprocess
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.diffapply import (
    ApplyConflict,
    FileDiff,
    Hunk,
    PatchError,
    apply_file,
    parse_patch,
)

Tree = dict[str, bytes]

_GIT_ENV = {
    key: value
    for key, value in os.environ.items()
    if key not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")
}
_GIT_ENV.update(
    GIT_CONFIG_NOSYSTEM="1",
    GIT_CONFIG_GLOBAL=os.devnull,
    GIT_AUTHOR_NAME="t",
    GIT_AUTHOR_EMAIL="t@example.com",
    GIT_COMMITTER_NAME="t",
    GIT_COMMITTER_EMAIL="t@example.com",
)
DIFF = ("diff", "--cached", "--binary", "--full-index", "--no-renames")
APPLY = ("apply", "--whitespace=nowarn")


class Repo:
    """A scratch repository: write files, commit, make patches, apply them with git."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        for key, value in (
            ("core.autocrlf", "false"),
            ("core.safecrlf", "false"),
            ("core.filemode", "true"),
            ("core.quotepath", "true"),
        ):
            self.git("config", key, value)

    def git(
        self, *args: str, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=stdin,
            capture_output=True,
            env=_GIT_ENV,
            check=False,
        )
        if check and proc.returncode:
            raise AssertionError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
        return proc

    def write(self, files: Mapping[str, bytes | None]) -> None:
        for name, data in files.items():
            target = self.path / name
            if data is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def commit(self, files: Mapping[str, bytes | None], message: str = "c") -> str:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.decode().strip()

    def patch(self, files: Mapping[str, bytes | None], *diff_args: str) -> bytes:
        """The patch that makes ``files`` on top of HEAD (the worktree is reset afterwards)."""
        self.write(files)
        self.git("add", "-A")
        patch = self.git(*(diff_args or DIFF)).stdout
        self.reset("HEAD")
        return patch

    def reset(self, rev: str) -> None:
        self.git("reset", "-q", "--hard", rev)
        self.git("clean", "-q", "-fdx")

    def read(self, name: str) -> bytes | None:
        target = self.path / name
        return target.read_bytes() if target.exists() else None

    def tree(self) -> Tree:
        names = self.git("ls-files", "-z").stdout.decode("utf-8", "surrogateescape").split("\0")
        return {name: (self.path / name).read_bytes() for name in names if name}


def apply_ours(tree: Mapping[str, bytes], patch: bytes) -> Tree:
    """Apply every file diff of ``patch`` to ``tree`` in memory (raises ``ApplyConflict``)."""
    out = dict(tree)
    for diff in parse_patch(patch):
        old = out.get(diff.old_path) if diff.old_path is not None else out.get(diff.path)
        new = apply_file(old, diff)
        if diff.old_path is not None and diff.is_rename:
            out.pop(diff.old_path, None)
        if new is None:
            out.pop(diff.path, None)
        else:
            out[diff.path] = new
    return out


@dataclass
class Outcome:
    git: Tree | None  # None: git refused
    ours: Tree | None  # None: ApplyConflict
    conflict: ApplyConflict | None
    stderr: str


def both_apply(repo: Repo, target: str, patch: bytes) -> Outcome:
    """``git apply --index`` and ``apply_file`` on the tree of commit ``target``."""
    repo.reset(target)
    before = repo.tree()
    conflict = None
    try:
        ours: Tree | None = apply_ours(before, patch)
    except ApplyConflict as exc:
        ours, conflict = None, exc
    proc = repo.git(*APPLY, "--index", "-", stdin=patch, check=False)
    theirs = repo.tree() if proc.returncode == 0 else None
    return Outcome(theirs, ours, conflict, proc.stderr.decode("utf-8", "replace"))


def assert_same(outcome: Outcome, *, applies: bool) -> None:
    assert outcome.ours == outcome.git, outcome.stderr
    assert (outcome.git is not None) is applies, outcome.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def lines(count: int, prefix: str = "line") -> bytes:
    return b"".join(f"{prefix} {i}\n".encode() for i in range(1, count + 1))


# ------------------------------------------------------------------------ randomized, text

VOCAB = (
    b"",
    b"{",
    b"}",
    b"same",
    b"same",
    b"return x",
    b"    indented",
    b"\tstatement();",
    b"caf\xc3\xa9",
    b"\xff\xfe not utf-8 \x80",
    b"# comment",
)


def random_line(rng: random.Random) -> bytes:
    if rng.random() < 0.55:
        text = rng.choice(VOCAB)
    else:
        text = f"line {rng.randrange(40)}".encode() + rng.choice((b"", b"", b"\xe9", b"\xc3"))
    tail = rng.choice((b"", b"", b"", b"", b" ", b"  ", b"\t"))
    return text + tail + (b"\r\n" if rng.random() < 0.15 else b"\n")


def render(body: list[bytes], final_newline: bool) -> bytes:
    data = b"".join(body)
    return data[:-1] if body and not final_newline else data


def random_base(rng: random.Random) -> tuple[list[bytes], bool]:
    size = rng.choice((rng.randrange(0, 12), rng.randrange(8, 40), rng.randrange(30, 120)))
    return [random_line(rng) for _ in range(size)], rng.random() > 0.25


def random_edit(rng: random.Random, body: list[bytes], final_newline: bool) -> bytes:
    """Insert, delete or replace a few lines at random places (maybe toggle the last newline)."""
    base = render(body, final_newline)
    body = list(body)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(("insert", "insert", "delete", "replace", "replace", "ws", "eof", "end"))
        at = rng.randrange(len(body) + 1)
        fresh = [random_line(rng) for _ in range(rng.randint(1, 3))]
        if op == "insert":
            body[at:at] = fresh
        elif op == "end":
            body.extend(fresh)
        elif op == "delete":
            del body[at : at + rng.randint(1, 3)]
        elif op == "replace":
            body[at : at + rng.randint(1, 3)] = fresh
        elif op == "ws" and at < len(body):
            line = body[at]
            eol = b"\r\n" if line.endswith(b"\r\n") else b"\n"
            text = line[: -len(eol)]
            body[at] = (text.rstrip() if text != text.rstrip() else text + b" ") + eol
        elif op == "eof":
            final_newline = not final_newline
    edited = render(body, final_newline)
    return edited if edited != base else edited + b"tail\n"


@dataclass
class Corpus:
    """Random files, two independent random edits of each, and both patches (git-made)."""

    repo: Repo
    base_rev: str
    base: Tree
    patch_a: bytes
    patch_b: bytes
    edit_a: Tree
    edit_b: Tree


CASES = 200


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    rng = random.Random(20240611)
    repo = Repo(tmp_path_factory.mktemp("random") / "repo")
    base: Tree = {}
    edit_a: Tree = {}
    edit_b: Tree = {}
    for case in range(CASES):
        name = f"case_{case:03d}.txt"
        body, final_newline = random_base(rng)
        base[name] = render(body, final_newline)
        edit_a[name] = random_edit(rng, body, final_newline)
        edit_b[name] = random_edit(rng, body, final_newline)
    base_rev = repo.commit(base)
    return Corpus(
        repo, base_rev, base, repo.patch(edit_a), repo.patch(edit_b), dict(edit_a), dict(edit_b)
    )


def file_sections(patch: bytes) -> dict[str, bytes]:
    """The patch cut at each ``diff --git`` line, by path (plain ASCII names only)."""
    sections = [s for s in re.split(rb"(?m)^(?=diff --git )", patch) if s]
    return {s.split(b"\n", 1)[0].rsplit(b" b/", 1)[1].decode(): s for s in sections}


def test_random_edits_apply_like_git_apply(corpus: Corpus) -> None:
    """A then B, 200 random files: same bytes as ``git apply --index``, same refusals."""
    repo = corpus.repo
    repo.reset(corpus.base_rev)
    repo.git(*APPLY, "--index", "-", stdin=corpus.patch_a)
    after_a = repo.tree()
    assert apply_ours(corpus.base, corpus.patch_a) == after_a == corpus.edit_a
    ours_b = {d.path: d for d in parse_patch(corpus.patch_b)}
    assert set(ours_b) == set(corpus.base)
    refused = merged = 0
    for name, section in sorted(file_sections(corpus.patch_b).items()):
        proc = repo.git(*APPLY, "--index", "-", stdin=section, check=False)
        try:
            ours: bytes | None = apply_file(after_a[name], ours_b[name])
        except ApplyConflict as exc:
            assert exc.path == name
            assert exc.hunks
            ours = None
        if proc.returncode:
            assert ours is None, f"{name}: git refused, we applied\n{proc.stderr.decode()}"
            refused += 1
            continue
        assert ours is not None, f"{name}: git applied, we refused"
        assert ours == repo.read(name), name
        merged += ours not in (corpus.edit_a[name], corpus.edit_b[name])
    # The corpus exercises both outcomes, and real merges (hunks found at an offset).
    assert 20 < refused < CASES - 20
    assert merged > 20


def rejected_hunks(stderr: str) -> dict[str, list[int]]:
    """``git apply --reject`` output: the rejected hunk numbers of each file."""
    out: dict[str, list[int]] = {}
    current = ""
    for line in stderr.splitlines():
        applying = re.match(r"Applying patch (\S+) with \d+ rejects?\.\.\.$", line)
        if applying:
            current = applying.group(1)
            out[current] = []
        rejected = re.match(r"Rejected hunk #(\d+)\.$", line)
        if rejected:
            out[current].append(int(rejected.group(1)))
    return out


@pytest.mark.parametrize("order", ["a-then-b", "b-then-a"])
def test_random_failing_hunks_are_the_ones_git_rejects(corpus: Corpus, order: str) -> None:
    """With ``--reject`` git reports each failing hunk: ``ApplyConflict.hunks`` says the same,
    and every file git applies cleanly has our bytes."""
    repo = corpus.repo
    first, second = (corpus.edit_a, corpus.patch_b)
    if order == "b-then-a":
        first, second = (corpus.edit_b, corpus.patch_a)
    start = repo.commit(first, message=order)
    repo.reset(start)
    proc = repo.git(*APPLY, "--reject", "-", stdin=second, check=False)
    stderr = proc.stderr.decode("utf-8", "replace")
    git_rejects = rejected_hunks(stderr)
    ours_rejects: dict[str, list[int]] = {}
    for diff in parse_patch(second):
        try:
            result = apply_file(first[diff.path], diff)
        except ApplyConflict as exc:
            ours_rejects[diff.path] = list(exc.hunks)
            assert list(exc.lines) == [diff.hunks[n - 1].old_start for n in exc.hunks]
            continue
        assert result == repo.read(diff.path), diff.path
    assert ours_rejects == git_rejects
    assert len(ours_rejects) > 20
    repo.reset(corpus.base_rev)


# ------------------------------------------------------------------------------ edge cases


def test_new_file(repo: Repo) -> None:
    base = repo.commit({"README": b"r\n"})
    patch = repo.patch({"src/new.py": b"A = 1\nB = 2\n"})
    (diff,) = parse_patch(patch)
    assert (diff.kind, diff.old_path, diff.new_path, diff.path) == (
        "add",
        None,
        "src/new.py",
        "src/new.py",
    )
    assert (diff.old_mode, diff.new_mode) == (None, "100644")
    assert diff.old_sha == "0" * 40 and diff.new_sha is not None and len(diff.new_sha) == 40
    assert diff.hunks == (Hunk(0, 0, 1, 2, (b"+A = 1", b"+B = 2")),)
    assert_same(both_apply(repo, base, patch), applies=True)
    existing = repo.commit({"src/new.py": b"mine\n"})
    outcome = both_apply(repo, existing, patch)
    assert_same(outcome, applies=False)
    assert outcome.conflict is not None and "already exists" in str(outcome.conflict)


def test_new_empty_file_has_no_hunks(repo: Repo) -> None:
    base = repo.commit({"README": b"r\n"})
    patch = repo.patch({"empty.txt": b""})
    (diff,) = parse_patch(patch)
    assert (diff.kind, diff.path, diff.hunks, diff.binary) == ("add", "empty.txt", (), None)
    assert apply_file(None, diff) == b""
    assert_same(both_apply(repo, base, patch), applies=True)


def test_delete_file(repo: Repo) -> None:
    base = repo.commit({"gone.txt": b"one\ntwo\n", "keep": b"k\n"})
    patch = repo.patch({"gone.txt": None})
    (diff,) = parse_patch(patch)
    assert (diff.kind, diff.old_path, diff.new_path, diff.path) == (
        "delete",
        "gone.txt",
        None,
        "gone.txt",
    )
    assert (diff.old_mode, diff.new_mode) == ("100644", None)
    assert apply_file(b"one\ntwo\n", diff) is None
    assert_same(both_apply(repo, base, patch), applies=True)


def test_delete_refused_when_the_file_changed_or_is_missing(repo: Repo) -> None:
    base = repo.commit({"gone.txt": b"one\ntwo\n", "keep": b"k\n"})
    patch = repo.patch({"gone.txt": None})
    grown = repo.commit({"gone.txt": b"one\ntwo\nthree\n"})
    outcome = both_apply(repo, grown, patch)
    assert_same(outcome, applies=False)
    missing = repo.commit({"gone.txt": None})
    assert_same(both_apply(repo, missing, patch), applies=False)
    assert_same(both_apply(repo, base, patch), applies=True)


def test_delete_empty_file_has_no_hunks(repo: Repo) -> None:
    base = repo.commit({"empty": b"", "keep": b"k\n"})
    patch = repo.patch({"empty": None})
    (diff,) = parse_patch(patch)
    assert (diff.kind, diff.hunks, diff.binary) == ("delete", (), None)
    assert apply_file(b"", diff) is None
    assert_same(both_apply(repo, base, patch), applies=True)
    filled = repo.commit({"empty": b"now it has content\n"})
    outcome = both_apply(repo, filled, patch)
    assert_same(outcome, applies=False)
    assert outcome.conflict is not None and "leaves file contents" in outcome.conflict.reason


def test_modify_a_missing_file_is_refused(repo: Repo) -> None:
    repo.commit({"a.txt": b"a\n", "keep": b"k\n"})
    patch = repo.patch({"a.txt": b"b\n"})
    missing = repo.commit({"a.txt": None})
    outcome = both_apply(repo, missing, patch)
    assert_same(outcome, applies=False)
    assert outcome.conflict is not None and outcome.conflict.reason == "does not exist"


def test_mode_only_change(repo: Repo) -> None:
    base = repo.commit({"run.sh": b"#!/bin/sh\necho hi\n"})
    (repo.path / "run.sh").chmod(0o755)
    patch = repo.patch({})
    (diff,) = parse_patch(patch)
    assert (diff.kind, diff.old_mode, diff.new_mode, diff.hunks, diff.old_sha) == (
        "modify",
        "100644",
        "100755",
        (),
        None,
    )
    assert apply_file(b"#!/bin/sh\necho hi\n", diff) == b"#!/bin/sh\necho hi\n"
    assert_same(both_apply(repo, base, patch), applies=True)


def test_mode_is_kept_from_the_index_line(repo: Repo) -> None:
    repo.commit({"run.sh": b"echo 1\n"})
    (repo.path / "run.sh").chmod(0o755)
    repo.commit({})
    patch = repo.patch({"run.sh": b"echo 2\n"})
    (diff,) = parse_patch(patch)
    assert (diff.old_mode, diff.new_mode) == ("100755", "100755")


@pytest.mark.parametrize(
    ("old", "new", "old_eof", "new_eof"),
    [
        (b"a\nb\nc", b"a\nb\nc\n", False, True),
        (b"a\nb\nc\n", b"a\nb\nc", True, False),
        (b"a\nb\nc", b"a\nB\nc", False, False),
        (b"a\nb\nc", b"a\nb\nC", False, False),
        (b"only", b"other", False, False),
    ],
    ids=["old-side", "new-side", "context-line", "changed-last-line", "one-line"],
)
def test_no_newline_at_end_of_file(
    repo: Repo, old: bytes, new: bytes, old_eof: bool, new_eof: bool
) -> None:
    base = repo.commit({"f": old})
    patch = repo.patch({"f": new})
    assert b"\\ No newline at end of file" in patch
    (diff,) = parse_patch(patch)
    (hunk,) = diff.hunks
    assert (hunk.old_eof_newline, hunk.new_eof_newline) == (old_eof, new_eof)
    assert not any(line.startswith(b"\\") for line in hunk.lines)
    assert apply_file(old, diff) == new
    assert_same(both_apply(repo, base, patch), applies=True)


def test_context_without_newline_matches_a_longer_line_as_git_does(repo: Repo) -> None:
    """git compares a last context line without newline as a byte prefix: ``x`` matches ``x\\n``
    (and ``x \\n``), and the result glues the next line on. We do the same."""
    repo.commit({"f": b"a\nb\nc\nd\nx"})
    patch = repo.patch({"f": b"a\nb\nC\nd\nx"})
    for grown in (b"a\nb\nc\nd\nx\nmore\n", b"a\nb\nc\nd\nx  \nmore\n", b"a\nb\nc\nd\nxy\n"):
        target = repo.commit({"f": grown})
        outcome = both_apply(repo, target, patch)
        assert outcome.ours == outcome.git, outcome.stderr
    assert apply_file(b"a\nb\nc\nd\nx\nmore\n", parse_patch(patch)[0]) == b"a\nb\nC\nd\nxmore\n"


def test_crlf_content_is_kept_byte_for_byte(repo: Repo) -> None:
    old = b"one\r\ntwo\r\nthree\r\nfour\r\n"
    new = b"one\r\nTWO\r\nthree\r\nfour\r\nfive\n"
    base = repo.commit({"win.txt": old})
    patch = repo.patch({"win.txt": new})
    (diff,) = parse_patch(patch)
    assert b"-two\r" in diff.hunks[0].lines
    assert apply_file(old, diff) == new
    assert_same(both_apply(repo, base, patch), applies=True)
    # LF where the patch expects CRLF: no match (git has no fuzz either).
    lf = repo.commit({"win.txt": old.replace(b"\r\n", b"\n")})
    assert_same(both_apply(repo, lf, patch), applies=False)


def test_non_utf8_bytes(repo: Repo) -> None:
    old = b"caf\xe9\n\xff\xfe\x80 raw\nplain\n"
    new = b"caf\xe9\n\xff\xfe\x81 raw\nplain\n\xc3\x28\n"
    base = repo.commit({"latin1.txt": old})
    patch = repo.patch({"latin1.txt": new})
    assert apply_file(old, parse_patch(patch)[0]) == new
    assert_same(both_apply(repo, base, patch), applies=True)


def test_multiple_hunks_and_an_offset(repo: Repo) -> None:
    old = lines(60)
    new = (
        old.replace(b"line 5\n", b"five\n")
        .replace(b"line 30\n", b"")
        .replace(b"line 55\n", b"line 55\nafter 55\n")
    )
    base = repo.commit({"f": old})
    patch = repo.patch({"f": new})
    (diff,) = parse_patch(patch)
    assert len(diff.hunks) == 3
    assert_same(both_apply(repo, base, patch), applies=True)
    # Ten lines inserted in the middle shift the last two hunks: found at an offset.
    shifted = repo.commit({"f": old.replace(b"line 20\n", b"line 20\n" + lines(10, "extra"))})
    outcome = both_apply(repo, shifted, patch)
    assert_same(outcome, applies=True)
    assert outcome.ours is not None and b"extra 10\n" in outcome.ours["f"]


def test_search_goes_outward_and_takes_the_first_match(repo: Repo) -> None:
    """Repeated blocks: the hunk matches several places; git's search order decides."""
    block = b"x\ny\nz\nw\nv\n"
    old = lines(3, "head") + block + lines(3, "mid") + block + lines(3, "tail")
    repo.commit({"f": old})
    patch = repo.patch({"f": old.replace(b"z\n", b"Z\n", 1)})
    for extra in range(0, 12, 3):
        target = repo.commit({"f": lines(extra, "pad") + old})
        assert_same(both_apply(repo, target, patch), applies=True)


def test_hunk_at_the_start_must_match_at_the_start(repo: Repo) -> None:
    old = lines(20)
    repo.commit({"f": old})
    patch = repo.patch({"f": old.replace(b"line 1\n", b"first\n")})
    assert parse_patch(patch)[0].hunks[0].old_start == 1
    moved = repo.commit({"f": b"new top\n" + old})
    outcome = both_apply(repo, moved, patch)
    assert_same(outcome, applies=False)
    assert outcome.conflict is not None
    assert (outcome.conflict.hunks, outcome.conflict.lines) == ((1,), (1,))


def test_hunk_at_the_end_must_match_at_the_end(repo: Repo) -> None:
    old = lines(20)
    repo.commit({"f": old})
    patch = repo.patch({"f": old.replace(b"line 20\n", b"last\n")})
    assert parse_patch(patch)[0].hunks[0].trailing == 0
    grown = repo.commit({"f": old + b"new bottom\n"})
    assert_same(both_apply(repo, grown, patch), applies=False)
    top = repo.commit({"f": b"new top\n" + old})
    assert_same(both_apply(repo, top, patch), applies=True)


def test_lines_written_by_an_earlier_hunk_are_not_matched_again(repo: Repo) -> None:
    old = b"".join(b"k\n" for _ in range(30))
    repo.commit({"f": old})
    new = b"k\n" * 4 + b"A\n" + b"k\n" * 20 + b"B\n" + b"k\n" * 6
    patch = repo.patch({"f": new})
    assert len(parse_patch(patch)[0].hunks) == 2
    for target_body in (b"k\n" * 30, b"k\n" * 12, b"k\n" * 40):
        target = repo.commit({"f": target_body})
        outcome = both_apply(repo, target, patch)
        assert outcome.ours == outcome.git, outcome.stderr


def test_several_files_in_one_patch(repo: Repo) -> None:
    base = repo.commit({"a.txt": lines(10), "b.txt": lines(5), "c/d.txt": b"d\n"})
    patch = repo.patch(
        {"a.txt": lines(11), "b.txt": None, "c/d.txt": b"D\n", "c/e.txt": b"e\n", "z": b""}
    )
    diffs = parse_patch(patch)
    assert [(d.kind, d.path) for d in diffs] == [
        ("modify", "a.txt"),
        ("delete", "b.txt"),
        ("modify", "c/d.txt"),
        ("add", "c/e.txt"),
        ("add", "z"),
    ]
    assert_same(both_apply(repo, base, patch), applies=True)


def test_quoted_path_with_non_ascii_and_space(repo: Repo) -> None:
    base = repo.commit({"keep": b"k\n", "dir é/x y.txt": b"1\n"})
    patch = repo.patch({"dir é/x y.txt": b"2\n", "é new.txt": b"n\n", "é empty": b""})
    assert b'"a/dir \\303\\251/x y.txt"' in patch
    assert [d.path for d in parse_patch(patch)] == ["dir é/x y.txt", "é empty", "é new.txt"]
    assert_same(both_apply(repo, base, patch), applies=True)


def test_path_with_spaces_unquoted(repo: Repo) -> None:
    base = repo.commit({"my dir/a b.txt": b"1\n", "my dir/gone b.txt": b""})
    patch = repo.patch(
        {"my dir/a b.txt": b"2\n", "my dir/empty b.txt": b"", "my dir/gone b.txt": None}
    )
    assert b"+++ b/my dir/a b.txt\t\n" in patch
    diffs = parse_patch(patch)
    assert [(d.old_path, d.new_path) for d in diffs] == [
        ("my dir/a b.txt", "my dir/a b.txt"),
        (None, "my dir/empty b.txt"),
        ("my dir/gone b.txt", None),
    ]
    assert_same(both_apply(repo, base, patch), applies=True)


def test_rename_and_copy_are_parsed(repo: Repo) -> None:
    text, source = lines(40, "old"), lines(40, "src")
    repo.commit({"old.txt": text, "src.txt": source})
    renamed = repo.patch(
        {"old.txt": None, "new.txt": text},
        "diff",
        "--cached",
        "-M",
        "--full-index",
    )
    (diff,) = parse_patch(renamed)
    assert (diff.is_rename, diff.is_copy, diff.old_path, diff.new_path, diff.kind) == (
        True,
        False,
        "old.txt",
        "new.txt",
        "modify",
    )
    copied = repo.patch(
        {"copy.txt": source + b"y\n"},
        "diff",
        "--cached",
        "-C",
        "--find-copies-harder",
        "--full-index",
    )
    (diff,) = parse_patch(copied)
    assert (diff.is_copy, diff.old_path, diff.new_path) == (True, "src.txt", "copy.txt")
    assert apply_file(source, diff) == source + b"y\n"


def test_hunk_fields(repo: Repo) -> None:
    repo.commit({"f": lines(10)})
    patch = repo.patch({"f": lines(10).replace(b"line 5\n", b"five\n")})
    (hunk,) = parse_patch(patch)[0].hunks
    assert hunk == Hunk(
        2,
        7,
        2,
        7,
        (
            b" line 2",
            b" line 3",
            b" line 4",
            b"-line 5",
            b"+five",
            b" line 6",
            b" line 7",
            b" line 8",
        ),
    )
    assert hunk.preimage()[3] == b"line 5\n" and hunk.postimage()[3] == b"five\n"


def test_commit_message_and_signature_around_the_diff_are_skipped(repo: Repo) -> None:
    repo.commit({"f": b"a\n"})
    patch = repo.patch({"f": b"b\n"})
    wrapped = b"Subject: change\n\nsome text\n---\n f | 2 +-\n\n" + patch + b"-- \n2.39.5\n\n"
    assert parse_patch(wrapped) == parse_patch(patch)
    assert parse_patch(b"") == []


# ---------------------------------------------------------------------------------- binary


def random_bytes(rng: random.Random, size: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(size))


def fresh_repo(tmp_path: Path, name: str, files: Mapping[str, bytes]) -> tuple[Repo, str]:
    """A new repository holding only ``files``: git apply cannot take a binary patch's new blob
    from its object store there (it does when the blob exists), so it replays the patch data."""
    other = Repo(tmp_path / name)
    return other, other.commit(files)


def test_binary_literal_and_delta_match_git(repo: Repo, tmp_path: Path) -> None:
    rng = random.Random(7)
    base_files = {
        f"bin/{i}.dat": b"\0" + random_bytes(rng, rng.randrange(1, 30000)) for i in range(16)
    }
    repo.commit(base_files)
    changed: dict[str, bytes | None] = {}
    for i, (name, data) in enumerate(sorted(base_files.items())):
        if i % 4 == 0:  # heavy: new random content (literal)
            changed[name] = b"\0" + random_bytes(rng, rng.randrange(1, 20000))
        elif i % 4 == 3 and i > 8:
            changed[name] = None
        else:  # slight: a few bytes changed, inserted, removed (delta when smaller)
            body = bytearray(data)
            for _ in range(rng.randint(1, 5)):
                at = rng.randrange(len(body))
                body[at : at + rng.randrange(3)] = random_bytes(rng, rng.randrange(4))
            changed[name] = bytes(body)
    changed["bin/new.dat"] = b"\0\1\2" + random_bytes(rng, 5000)
    changed["bin/empty-new.dat"] = b"\0"
    changed["bin/1.dat"] = b""  # a binary file emptied
    patch = repo.patch(changed)
    diffs = {d.path: d for d in parse_patch(patch)}
    methods = {path: d.binary.split(b"\n")[1].split()[0] for path, d in diffs.items() if d.binary}
    assert set(methods) == set(changed)
    assert {b"delta", b"literal"} <= set(methods.values())
    other, base = fresh_repo(tmp_path, "fresh", base_files)
    assert_same(both_apply(other, base, patch), applies=True)
    expected = {k: v for k, v in base_files.items() if k not in changed}
    expected.update({k: v for k, v in changed.items() if v is not None})
    assert apply_ours(base_files, patch) == expected


def binary_patch(repo: Repo, old: bytes, new: bytes) -> tuple[str, bytes]:
    base = repo.commit({"blob.bin": old})
    return base, repo.patch({"blob.bin": new})


def test_binary_delta_on_another_base_is_refused(repo: Repo, tmp_path: Path) -> None:
    rng = random.Random(11)
    old = b"\0" + random_bytes(rng, 4000)
    new = old[:1000] + b"changed" + old[1007:]
    _, patch = binary_patch(repo, old, new)
    assert b"\ndelta " in patch
    other, target = fresh_repo(tmp_path, "other", {"blob.bin": b"\0" + random_bytes(rng, 4000)})
    outcome = both_apply(other, target, patch)
    assert_same(outcome, applies=False)
    assert outcome.conflict is not None and "does not match" in outcome.conflict.reason


def forged_delta(repo: Repo, tmp_path: Path) -> tuple[bytes, bytes]:
    """A delta patch whose index line names ``other`` (same size) as its base."""
    rng = random.Random(12)
    old = b"\0" + random_bytes(rng, 4000)
    new = old[:2000] + b"xyz" + old[2003:]
    _, patch = binary_patch(repo, old, new)
    assert b"\ndelta " in patch
    (diff,) = parse_patch(patch)
    other = b"\0" + random_bytes(rng, 4000)
    other_sha = repo.git("hash-object", "--stdin", stdin=other).stdout.decode().strip()
    assert diff.old_sha is not None
    return patch.replace(diff.old_sha.encode(), other_sha.encode()), other


def test_binary_delta_with_forged_base_sha_never_yields_garbage(repo: Repo, tmp_path: Path) -> None:
    """The delta replays on the wrong base, and the result's SHA is not the index line's new
    one: refused, as by git."""
    forged, other = forged_delta(repo, tmp_path)
    fresh, target = fresh_repo(tmp_path, "fresh", {"blob.bin": other})
    outcome = both_apply(fresh, target, forged)
    assert_same(outcome, applies=False)
    assert outcome.conflict is not None and "incorrect result" in outcome.conflict.reason


def test_git_takes_a_known_new_blob_from_its_object_store(repo: Repo, tmp_path: Path) -> None:
    """The one divergence for binary patches: where the repository already has the new blob,
    git uses it whatever the patch data says; we cannot see the object store and refuse (the
    caller falls back to git, which then succeeds)."""
    forged, other = forged_delta(repo, tmp_path)
    target = repo.commit({"blob.bin": other})
    outcome = both_apply(repo, target, forged)
    assert outcome.ours is None and outcome.git is not None


def test_binary_needs_the_full_index_line(repo: Repo, tmp_path: Path) -> None:
    _, patch = binary_patch(repo, b"\0old", b"\0new")
    (diff,) = parse_patch(patch)
    assert diff.old_sha is not None and diff.new_sha is not None
    index = f"index {diff.old_sha}..{diff.new_sha}".encode()
    short = patch.replace(index, f"index {diff.old_sha[:7]}..{diff.new_sha[:7]}".encode())
    assert short != patch
    fresh, base = fresh_repo(tmp_path, "fresh", {"blob.bin": b"\0old"})
    outcome = both_apply(fresh, base, short)
    assert_same(outcome, applies=False)
    assert outcome.conflict is not None and "full index" in outcome.conflict.reason


def test_binary_without_data_is_parsed_but_not_applied(repo: Repo) -> None:
    repo.commit({"blob.bin": b"\0old"})
    patch = repo.patch({"blob.bin": b"\0new"}, "diff", "--cached", "--full-index")
    (diff,) = parse_patch(patch)
    assert diff.binary is not None and diff.binary.startswith(b"Binary files ")
    with pytest.raises(ApplyConflict, match="without data"):
        apply_file(b"\0old", diff)


# ------------------------------------------------------------------------------ bad input


def git_checks(repo: Repo, patch: bytes) -> bool:
    return repo.git("apply", "--check", "-", stdin=patch, check=False).returncode == 0


SIMPLE = (
    b"diff --git a/f b/f\n"
    b"index 0123456789012345678901234567890123456789.."
    b"1123456789012345678901234567890123456789 100644\n"
    b"--- a/f\n"
    b"+++ b/f\n"
    b"@@ -1,2 +1,2 @@\n"
    b" a\n"
    b"-b\n"
    b"+c\n"
)


def _binary_patch_text(method: bytes, data_lines: bytes) -> bytes:
    return (
        b"diff --git a/b.bin b/b.bin\n"
        b"index 0123456789012345678901234567890123456789.."
        b"1123456789012345678901234567890123456789\n"
        b"GIT binary patch\n" + method + b"\n" + data_lines + b"\n"
    )


def _encode85_line(data: bytes) -> bytes:
    length = len(data)
    code = bytes([ord("A") + length - 1 if length <= 26 else ord("a") + length - 27])
    padded = data + b"\0" * (-len(data) % 4)
    return code + base64.b85encode(padded) + b"\n"


#: git applies a modification whose ---/+++ names differ (as a rename); we refuse it.
GIT_PATHS_DIFFER = False

BAD_PATCHES = {
    "garbage": (b"hello\nthis is not a patch\n", "no file diff", True),
    "fragment-without-header": (b"@@ -1 +1 @@\n-a\n+b\n", "without a file header", True),
    "truncated-hunk": (SIMPLE[:-3], "ends early", True),
    "too-many-lines": (SIMPLE.replace(b"-b\n+c\n", b"+x\n+y\n-b\n"), "more added lines", True),
    "bad-line": (SIMPLE.replace(b"-b\n", b"?b\n"), "unexpected line", True),
    "bad-hunk-header": (
        SIMPLE.replace(b"@@ -1,2 +1,2 @@", b"@@ -1,2 +x @@"),
        "corrupt hunk header",
        True,
    ),
    "invalid-mode": (
        b"diff --git a/f b/f\nold mode 100644\nnew mode 10x755\n",
        "invalid mode",
        True,
    ),
    "no-filename": (b"diff --git a/f b/g\nnew file mode 100644\n", "lacks filename", True),
    "inconsistent": (
        b"diff --git a/f b/f\nnew file mode 100644\ndeleted file mode 100644\n",
        "inconsistent header lines",
        True,
    ),
    "only-index-line": (
        b"diff --git a/f b/f\nindex 0000000..1111111 100644\n",
        "only garbage",
        True,
    ),
    "inconsistent-name": (
        SIMPLE.replace(b"--- a/f\n", b"deleted file mode 100644\n--- a/f\n"),
        "expected /dev/null",
        True,
    ),
    "paths-differ": (SIMPLE.replace(b"+++ b/f", b"+++ b/g"), "without a rename", GIT_PATHS_DIFFER),
    "bad-base85": (_binary_patch_text(b"literal 5", b'E""""""0000\n'), "bad base85", True),
    "base85-overflow": (_binary_patch_text(b"literal 5", b"E~~~~~~0000\n"), "bad base85", True),
    "bad-binary-length": (_binary_patch_text(b"literal 5", b"Z00000\n"), "corrupt binary", True),
    "wrong-inflated-size": (
        _binary_patch_text(b"literal 9", _encode85_line(zlib.compress(b"hello"))),
        "inflate",
        True,
    ),
    "unrecognized-binary": (_binary_patch_text(b"zipped 5", b""), "unrecognized binary", True),
    # Refused by us, applied by git: patches git diff never writes.
    "traditional-diff": (b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n", "diff --git", False),
    "marker-mid-side": (
        SIMPLE.replace(b" a\n", b" a\n\\ No newline at end of file\n"),
        "not the last of its side",
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_PATCHES))
def test_bad_patches_raise_a_clear_patch_error(repo: Repo, name: str) -> None:
    patch, message, git_refuses_too = BAD_PATCHES[name]
    repo.commit({"f": b"a\nb\n", "b.bin": b"\0x"})
    with pytest.raises(PatchError, match=message):
        parse_patch(patch)
    if git_refuses_too:
        assert not git_checks(repo, patch)


def test_well_formed_handmade_binary_literal_applies(repo: Repo) -> None:
    """The test helpers above build git's binary format correctly (so the bad cases are bad for
    the reason they claim)."""
    content = b"hello"
    sha = repo.git("hash-object", "--stdin", stdin=content).stdout.decode().strip()
    patch = (
        b"diff --git a/n.bin b/n.bin\nnew file mode 100644\n"
        b"index 0000000000000000000000000000000000000000.." + sha.encode() + b"\n"
        b"GIT binary patch\nliteral 5\n" + _encode85_line(zlib.compress(content)) + b"\n"
    )
    (diff,) = parse_patch(patch)
    assert apply_file(None, diff) == content
    assert git_checks(repo, patch)


def test_file_diff_requires_a_path() -> None:
    diff = FileDiff(None, "x", None, "100644", None, None, (), None)
    assert (diff.kind, diff.path) == ("add", "x")
