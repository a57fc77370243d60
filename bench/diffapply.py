"""Benchmark (not a test): apply N task patches in memory vs. ``git apply`` once per patch.

    .venv/bin/python bench/diffapply.py [--patches 100] [--files-per-patch 1 5] [--lines 200]
                                        [--hunks 5] [--repeat 5]

A temporary repository holds ``patches * files-per-patch`` files of ``lines`` lines; each patch
(made by ``git diff --cached --binary --full-index --no-renames``, as the sandbox makes
``changes.patch``) changes its own files with ``hunks`` separate edits each. Both sides apply
every patch in order onto one evolving tree, as the aggregate step does:

- in memory: ``parse_patch`` + ``apply_file`` for every file (the base contents already in
  memory: reading blobs and writing the commits is the fast-import side's work);
- git: ``git apply --index --whitespace=nowarn`` once per patch in a worktree (what the
  in-memory applier replaces), and the aggregate's current ``git apply --3way --index``.

The final trees are compared byte for byte; the figures are the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.diffapply import apply_file, parse_patch  # noqa: E402

ENV = {
    **{
        k: v
        for k, v in os.environ.items()
        if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")
    },
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, env=ENV, check=True
    )
    return proc.stdout


def source_file(rng: random.Random, index: int, lines: int) -> bytes:
    out = [f"# module {index}\n"]
    for n in range(1, lines):
        indent = "    " * rng.randrange(3)
        out.append(f"{indent}value_{index}_{n} = compute({n}, {rng.randrange(1000)})\n")
    return "".join(out).encode()


def edit(rng: random.Random, data: bytes, hunks: int) -> bytes:
    """``hunks`` edits far enough apart to stay separate hunks (replace, insert or delete)."""
    lines = data.splitlines(keepends=True)
    step = len(lines) // hunks
    for h in reversed(range(hunks)):
        at = h * step + rng.randrange(2, max(3, step - 8))
        op = h % 3
        if op == 0:
            lines[at] = lines[at].replace(b"compute", b"compute_fast")
        elif op == 1:
            lines[at:at] = [b"    # added by the task\n", b"    extra = True\n"]
        else:
            del lines[at]
    return b"".join(lines)


def make_patches(
    repo: Path, patches: int, per_patch: int, lines: int, hunks: int
) -> tuple[dict[str, bytes], list[bytes], str]:
    rng = random.Random(1234)
    base = {f"pkg/mod_{i:04d}.py": source_file(rng, i, lines) for i in range(patches * per_patch)}
    for name, data in base.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base_rev = git(repo, "rev-parse", "HEAD").decode().strip()
    names = sorted(base)
    for name in names:
        (repo / name).write_bytes(edit(rng, base[name], hunks))
    git(repo, "add", "-A")
    out = []
    for p in range(patches):
        mine = names[p * per_patch : (p + 1) * per_patch]
        out.append(
            git(repo, "diff", "--cached", "--binary", "--full-index", "--no-renames", "--", *mine)
        )
    git(repo, "reset", "-q", "--hard", base_rev)
    return base, out, base_rev


def apply_in_memory(base: dict[str, bytes], patches: list[bytes]) -> dict[str, bytes]:
    tree = dict(base)
    for patch in patches:
        for diff in parse_patch(patch):
            old = tree.get(diff.old_path) if diff.old_path is not None else None
            new = apply_file(old, diff)
            if new is None:
                tree.pop(diff.path, None)
            else:
                tree[diff.path] = new
    return tree


def apply_with_git(repo: Path, base_rev: str, files: list[Path], *flags: str) -> float:
    git(repo, "reset", "-q", "--hard", base_rev)
    start = time.perf_counter()
    for patch_file in files:
        git(repo, "apply", *flags, "--index", "--whitespace=nowarn", str(patch_file))
    return time.perf_counter() - start


def scenario(args: argparse.Namespace, per_patch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-diffapply-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "core.autocrlf", "false")
        base, patches, base_rev = make_patches(
            repo, args.patches, per_patch, args.lines, args.hunks
        )
        files = []
        for i, patch in enumerate(patches):
            files.append(Path(tmp) / f"{i:04d}.patch")
            files[-1].write_bytes(patch)
        hunk_count = sum(len(d.hunks) for p in patches for d in parse_patch(p))
        size = sum(map(len, patches))

        ours_times = []
        tree: dict[str, bytes] = {}
        for _ in range(args.repeat):
            start = time.perf_counter()
            tree = apply_in_memory(base, patches)
            ours_times.append(time.perf_counter() - start)
        parse_times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            for patch in patches:
                parse_patch(patch)
            parse_times.append(time.perf_counter() - start)

        git_times = [apply_with_git(repo, base_rev, files) for _ in range(args.git_repeat)]
        final = {name: (repo / name).read_bytes() for name in base}
        if final != tree:
            raise SystemExit("MISMATCH: the in-memory tree differs from git apply's")
        threeway = [apply_with_git(repo, base_rev, files, "--3way") for _ in range(args.git_repeat)]

    ours, parse, plain, three = min(ours_times), min(parse_times), min(git_times), min(threeway)
    n = args.patches
    print(
        f"\n{n} patches x {per_patch} file(s) of {args.lines} lines, {args.hunks} hunks per file "
        f"({hunk_count} hunks, {size / 1024:.0f} KiB of patches); identical final trees"
    )
    print(f"  {'':34s} {'total':>10s} {'per patch':>10s} {'vs in-memory':>13s}")
    rows = (
        ("in memory: parse + apply", ours, statistics.median(ours_times)),
        ("  of which parse_patch", parse, statistics.median(parse_times)),
        ("git apply --index (per patch)", plain, statistics.median(git_times)),
        ("git apply --3way --index (today)", three, statistics.median(threeway)),
    )
    for label, best, median in rows:
        ratio = best / ours
        print(
            f"  {label:34s} {best * 1000:8.1f}ms {best / n * 1000:8.3f}ms {ratio:11.1f}x"
            f"   (median {median * 1000:.1f}ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=100)
    parser.add_argument("--files-per-patch", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--hunks", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="runs of the in-memory side")
    parser.add_argument("--git-repeat", type=int, default=2, help="runs of each git side")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {git(ROOT, 'version').decode().strip()}")
    for per_patch in args.files_per_patch:
        scenario(args, per_patch)


if __name__ == "__main__":
    main()
