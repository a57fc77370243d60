"""The copy-on-write sandbox: visibility, path rules, caps, and patches that apply."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.agent.workspace import ToolError, Workspace
from orchestrator.contracts import Limits
from orchestrator.errors import InputError
from tests.conftest import git, make_repo


def open_ws(root: Path, **limits: object) -> Workspace:
    return Workspace.open(root, git(root, "rev-parse", "HEAD"), Limits.model_validate(limits))


def snapshot(root: Path) -> dict[str, object]:
    """Everything a task must leave alone: status, HEAD, refs, index, files and mtimes."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            stat = path.stat()
            files[str(path.relative_to(root))] = (path.read_bytes(), stat.st_mtime_ns)
    index = root / ".git" / "index"
    status = subprocess.run(
        ["git", "-C", str(root), "--no-optional-locks", "status", "--porcelain", "--ignored"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        "status": status,
        "head": git(root, "rev-parse", "HEAD"),
        "refs": git(root, "show-ref"),
        "index": (index.read_bytes(), index.stat().st_mtime_ns),
        "objects": git(root, "count-objects", "-v"),
        "files": files,
    }


def apply_patch(base_repo: Path, base_sha: str, patch: str, dest: Path) -> Path:
    """Clone ``base_repo`` at ``base_sha`` into ``dest`` and ``git apply --3way`` the patch."""
    subprocess.run(["git", "clone", "-q", str(base_repo), str(dest)], check=True)
    git(dest, "checkout", "-q", base_sha)
    (dest / "changes.patch").write_text(patch, encoding="utf-8")
    proc = subprocess.run(
        ["git", "-C", str(dest), "apply", "--3way", "--index", "changes.patch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (dest / "changes.patch").unlink()
    return dest


# ---------------------------------------------------------------- visibility and reads


def test_sees_tracked_files_only(repo: Path) -> None:
    (repo / ".gitignore").write_text(".env\n.venv/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "x.py").write_text("x\n")
    (repo / "untracked.txt").write_text("u\n")
    ws = open_ws(repo)
    assert ws.list_files() == [".gitignore", "README.md", "src/app.py", "src/util.py"]
    assert ws.read_from_disk  # untracked files do not make the checkout "dirty"
    for hidden in (".env", ".venv/x.py", "untracked.txt"):
        assert not ws.exists(hidden)
        with pytest.raises(ToolError, match="no such file"):
            ws.read_text(hidden)
    assert ws.list_files("src") == ["src/app.py", "src/util.py"]
    assert ws.list_files("src/app.py") == ["src/app.py"]
    with pytest.raises(ToolError, match="no such file or directory"):
        ws.list_files("nope")


def test_reads_base_from_git_when_checkout_moved_on(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("# changed later\n")
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "later")
    ws = Workspace.open(repo, base, Limits())
    assert not ws.read_from_disk
    assert ws.read_text("README.md") == "# sample\n"
    assert not ws.exists("later.txt")
    assert dict(ws.iter_text_files())["README.md"] == "# sample\n"


def test_dirty_checkout_reads_from_git(repo: Path) -> None:
    (repo / "README.md").write_text("# uncommitted edit\n")
    ws = open_ws(repo)
    assert not ws.read_from_disk
    assert ws.read_text("README.md") == "# sample\n"


def test_bad_base_sha(repo: Path) -> None:
    with pytest.raises(InputError, match="base_sha"):
        Workspace.open(repo, "0" * 40, Limits())
    with pytest.raises(InputError, match="not a git repository"):
        Workspace.open(repo.parent, "HEAD", Limits())


def test_binary_and_size_limits(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"big.txt": "x" * 2000, "small.txt": "ok\n"})
    (root / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    git(root, "add", "blob.bin")
    git(root, "commit", "-q", "-m", "bin")
    ws = open_ws(root, max_file_bytes=1000)
    with pytest.raises(ToolError, match="2000 bytes, over the 1000 bytes"):
        ws.read_text("big.txt")
    with pytest.raises(ToolError, match="binary file"):
        ws.read_text("blob.bin")
    assert ws.read_bytes("blob.bin").startswith(b"\x00")
    with pytest.raises(ToolError, match="over the 1000 bytes limit"):
        ws.write("new.txt", "y" * 1001)
    ws.write("new.txt", "y" * 1000)
    assert dict(ws.iter_text_files()) == {"new.txt": "y" * 1000, "small.txt": "ok\n"}


# ---------------------------------------------------------------- path rules


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../x", "escapes the repository"),
        ("a/../../x", "escapes the repository"),
        ("/etc/passwd", "absolute paths are not allowed"),
        ("C:\\Windows", "absolute paths are not allowed"),
        ("src/\0x", "NUL"),
        (".git/config", ".git/ is never touched"),
        ("src/../.git/HEAD", ".git/ is never touched"),
        ("sub/.git/config", ".git"),
        (".", "repository root"),
    ],
)
def test_path_rules(repo: Path, path: str, message: str) -> None:
    ws = open_ws(repo)
    for action in (ws.read_text, ws.delete, lambda p: ws.write(p, "x")):
        with pytest.raises(ToolError, match=message):
            action(path)
    assert ws.changed_files() == []


def test_dot_dot_inside_repository_is_fine(repo: Path) -> None:
    ws = open_ws(repo)
    assert ws.read_text("src/../README.md") == "# sample\n"
    ws.write("./src//./new.py", "x = 1\n")
    assert ws.changed_files() == ["src/new.py"]


def test_symlinks(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"docs/guide.md": "guide\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    os.symlink("/etc", root / "etc")
    os.symlink("../outside", root / "out")
    os.symlink("docs", root / "docs-link")
    os.symlink("docs/guide.md", root / "guide-link.md")
    os.symlink(".git", root / "gitlink")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "links")
    ws = open_ws(root)
    for path in ("etc/passwd", "out/secret.txt", "etc", "out"):
        with pytest.raises(ToolError, match="outside the repository"):
            ws.read_text(path)
        with pytest.raises(ToolError, match="outside the repository"):
            ws.write(path, "x")
    with pytest.raises(ToolError, match=r"\.git/ is never touched"):
        ws.read_text("gitlink/config")
    # Links that stay inside the tree are followed.
    assert ws.read_text("docs-link/guide.md") == "guide\n"
    assert ws.read_text("guide-link.md") == "guide\n"
    ws.write("guide-link.md", "new guide\n")
    assert ws.changed_files() == ["docs/guide.md"]
    # Deleting a link removes the link itself.
    ws.delete("out")
    assert ws.changed_files() == ["docs/guide.md", "out"]
    assert (outside / "secret.txt").read_text() == "secret\n"


def test_workflow_edits_need_permission(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {".github/workflows/ci.yml": "on: push\n"})
    ws = open_ws(root)
    assert ws.read_text(".github/workflows/ci.yml") == "on: push\n"
    with pytest.raises(ToolError, match="allow_workflow_edits"):
        ws.write(".github/workflows/x.yml", "on: push\n")
    with pytest.raises(ToolError, match="allow_workflow_edits"):
        ws.delete(".github/workflows/ci.yml")
    allowed = open_ws(root, allow_workflow_edits=True)
    allowed.write(".github/workflows/x.yml", "on: push\n")
    allowed.delete(".github/workflows/ci.yml")
    assert allowed.changed_files() == [".github/workflows/ci.yml", ".github/workflows/x.yml"]


def test_file_and_directory_conflicts(repo: Path) -> None:
    ws = open_ws(repo)
    with pytest.raises(ToolError, match="is a directory"):
        ws.write("src", "x")
    with pytest.raises(ToolError, match="is a file, not a directory"):
        ws.write("README.md/inner.txt", "x")
    with pytest.raises(ToolError, match="is a directory"):
        ws.read_text("src")
    with pytest.raises(ToolError, match="is a directory"):
        ws.delete("src")
    with pytest.raises(ToolError, match="no such file"):
        ws.delete("missing.txt")


# ---------------------------------------------------------------- overlay and diff


def test_overlay_tracks_real_differences_only(repo: Path) -> None:
    ws = open_ws(repo)
    assert ws.write("new.txt", "n\n") is True
    assert ws.write("README.md", "# other\n") is False
    assert ws.changed_files() == ["README.md", "new.txt"]
    ws.write("README.md", "# sample\n")  # back to the original
    ws.delete("new.txt")  # never existed in base
    assert ws.changed_files() == []
    assert ws.diff() == ""
    ws.delete("src/util.py")
    assert not ws.exists("src/util.py")
    assert ws.list_files("src") == ["src/app.py"]
    with pytest.raises(ToolError, match="deleted"):
        ws.read_text("src/util.py")
    ws.write("src/util.py", "VALUE = 1\n")
    assert ws.changed_files() == []


def test_diff_applies_with_3way(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "r",
        {
            "README.md": "# sample\n",
            "src/app.py": "a = 1\nb = 2\n",
            "gone.txt": "bye\n",
            "no-newline.txt": "last line",
            "dir with space/é.txt": "unicode\n",
        },
    )
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    git(root, "add", "run.sh")
    git(root, "commit", "-q", "-m", "script")
    base = git(root, "rev-parse", "HEAD")
    before = snapshot(root)

    ws = Workspace.open(root, base, Limits())
    ws.write("created/ñew file.md", "fresh\n")
    ws.write("src/app.py", "a = 1\nb = 3\n")
    ws.delete("gone.txt")
    ws.write("no-newline.txt", "last line, still no newline")
    ws.write("dir with space/é.txt", "unicode changed\n")
    ws.write("run.sh", "#!/bin/sh\necho bye\n")
    ws.write("README.md", "# sample\n")  # identical: no diff
    patch = ws.diff()

    assert patch.startswith("diff --git a/")
    assert "README.md" not in patch
    assert "new file mode 100644" in patch
    assert "deleted file mode 100644" in patch
    assert "old mode" not in patch  # the executable bit is preserved
    assert "\\ No newline at end of file" in patch
    assert ws.diff_bytes() == patch.encode("utf-8")
    assert snapshot(root) == before  # root untouched: status, HEAD, refs, index, files, objects

    dest = apply_patch(root, base, patch, tmp_path / "applied")
    assert (dest / "created/ñew file.md").read_text() == "fresh\n"
    assert (dest / "src/app.py").read_text() == "a = 1\nb = 3\n"
    assert not (dest / "gone.txt").exists()
    assert (dest / "no-newline.txt").read_text() == "last line, still no newline"
    assert (dest / "dir with space/é.txt").read_text() == "unicode changed\n"
    assert os.access(dest / "run.sh", os.X_OK)
    changed = git(dest, "diff", "--cached", "--name-only", "-z").split("\0")
    assert sorted(p for p in changed if p) == ws.changed_files()


def test_diff_of_binary_and_typechange(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"data/a.txt": "a\n"})
    (root / "img.bin").write_bytes(bytes(range(256)))
    os.symlink("data/a.txt", root / "link")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bin")
    base = git(root, "rev-parse", "HEAD")
    ws = Workspace.open(root, base, Limits())
    ws.delete("img.bin")
    ws.delete("link")
    ws.write("link", "now a regular file\n")
    patch = ws.diff()
    assert "GIT binary patch" in patch
    dest = apply_patch(root, base, patch, tmp_path / "applied")
    assert not (dest / "img.bin").exists()
    assert not (dest / "link").is_symlink()
    assert (dest / "link").read_text() == "now a regular file\n"


def test_non_utf8_text_goes_out_as_binary(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"keep.txt": "k\n"})
    (root / "latin 1.txt").write_bytes("café\n".encode("latin-1"))
    (root / "old é.txt").write_bytes("naïve\n".encode("latin-1"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "latin-1")
    base = git(root, "rev-parse", "HEAD")
    ws = Workspace.open(root, base, Limits())
    with pytest.raises(ToolError, match="binary file"):
        ws.read_text("latin 1.txt")
    ws.write("latin 1.txt", "café\n")
    ws.delete("old é.txt")
    patch = ws.diff()
    patch.encode("utf-8")  # no surrogates: safe to write as UTF-8 text
    assert patch.count("GIT binary patch") == 2
    dest = apply_patch(root, base, patch, tmp_path / "applied")
    assert (dest / "latin 1.txt").read_text(encoding="utf-8") == "café\n"
    assert not (dest / "old é.txt").exists()


def test_diff_applies_on_a_moved_on_branch(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"f.txt": "".join(f"line {i}\n" for i in range(20))})
    base = git(root, "rev-parse", "HEAD")
    ws = Workspace.open(root, base, Limits())
    ws.write("f.txt", ws.read_text("f.txt").replace("line 18\n", "line eighteen\n"))
    patch = ws.diff()
    # Someone else changed the top of the file meanwhile: the 3-way apply still succeeds.
    (root / "f.txt").write_text((root / "f.txt").read_text().replace("line 1\n", "line one\n"))
    git(root, "commit", "-q", "-am", "other")
    (root / "changes.patch").write_text(patch)
    git(root, "apply", "--3way", "--index", "changes.patch")
    text = (root / "f.txt").read_text()
    assert "line one\n" in text
    assert "line eighteen\n" in text
