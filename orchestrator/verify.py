"""Verify the merged branch: run the repository's own check on it, in the process sandbox.

The command is ``verify.command`` when set; otherwise it is detected from the repository, in
this order: a Makefile ``test`` target (``make test``), pytest configuration or any
``test_*.py``/``*_test.py`` file (``python -m pytest -q``, with the first Python on PATH that has
pytest), a ``package.json`` test script (``npm test``), ``go.mod`` (``go test ./...``),
``Cargo.toml`` (``cargo test``). The detection says which it chose, or that none was found.
A verify that cannot run (no sandbox here, the program is not installed) is ``skipped`` with the
reason — never a silent pass.

When verify fails on the merged branch, ``attribute`` finds the first task whose commit turned
it red (or says the base was already red): it runs the command on the base, then on task
commits, bisecting when there are many.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.agent.shell import limits_of
from orchestrator.contracts import Plan, VerifyRound
from orchestrator.gitrepo import Objects
from orchestrator.merge import temporary_worktree
from orchestrator.sandbox import Sandbox, SandboxUnavailable, split_command

#: Characters of the command's output kept in the record (the end, where failures are).
TAIL_CHARS = 4000
_MAKE_TEST = re.compile(r"^test\s*:", re.MULTILINE)
_NPM_DEFAULT = "no test specified"


@dataclass(frozen=True)
class Detected:
    """The verify command (or ``None``) and how it was chosen."""

    command: str | None
    why: str


class TreeFiles:
    """The files of one commit, read from git's objects (no checkout needed to detect)."""

    def __init__(self, repo: Path, commit: str) -> None:
        self._objects = Objects.of(repo)
        self._entries = self._objects.tree(commit).entries

    def has(self, path: str) -> bool:
        return path in self._entries

    def read(self, path: str) -> str:
        entry = self._entries.get(path)
        if entry is None:
            return ""
        return self._objects.blobs([entry.sha])[entry.sha].decode("utf-8", "replace")

    def any_test_file(self) -> bool:
        """Whether pytest's default discovery would find a test file (test_*.py, *_test.py)."""
        for path in self._entries:
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
                return True
        return False


def detect_command(files: TreeFiles) -> Detected:
    """The repository's own test command, found from its files."""
    if _MAKE_TEST.search(files.read("Makefile")):
        return Detected("make test", "the Makefile has a test target")
    if _has_pytest_config(files):
        python = python_with_pytest()
        if python is None:
            return Detected(None, "pytest tests found, but no Python with pytest on PATH")
        return Detected(f"{python} -m pytest -q", "pytest configuration or tests/ found")
    if files.has("package.json"):
        try:
            scripts = json.loads(files.read("package.json")).get("scripts", {})
        except (ValueError, AttributeError):
            scripts = {}
        test = scripts.get("test") if isinstance(scripts, dict) else None
        if isinstance(test, str) and _NPM_DEFAULT not in test:
            return Detected("npm test", "package.json has a test script")
    if files.has("go.mod"):
        return Detected("go test ./...", "go.mod found")
    if files.has("Cargo.toml"):
        return Detected("cargo test", "Cargo.toml found")
    return Detected(
        None,
        "no test command found (no Makefile test target, pytest tests, npm test script, "
        "go.mod or Cargo.toml); set verify.command",
    )


def _has_pytest_config(files: TreeFiles) -> bool:
    if files.has("pytest.ini") or files.has("conftest.py"):
        return True
    for name, marker in (
        ("pyproject.toml", "[tool.pytest"),
        ("setup.cfg", "[tool:pytest]"),
        ("tox.ini", "[pytest]"),
    ):
        if marker in files.read(name):
            return True
    return files.any_test_file()


def python_with_pytest() -> str | None:
    """The interpreter of ``python3``/``python`` on PATH if it imports pytest, else this one if
    it does (the orchestrator's own environment), else ``None``.

    The answer is the interpreter's real path (``sys.executable``), not the name: a name may be
    a shim (pyenv, asdf) that needs the environment the sandbox clears.
    """
    for name in ("python3", "python"):
        found = shutil.which(name)
        real = _pytest_interpreter(found) if found else None
        if real:
            return real
    return _pytest_interpreter(sys.executable)


def _pytest_interpreter(python: str) -> str | None:
    try:
        proc = subprocess.run(
            [python, "-c", "import sys, pytest; print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if proc.returncode == 0 and lines else None


def choose_command(plan: Plan, repo: Path, commit: str) -> Detected:
    """``verify.command`` when set, else the one detected in ``commit``'s files."""
    if plan.verify.command:
        return Detected(plan.verify.command, "verify.command in settings.yml")
    return detect_command(TreeFiles(repo, commit))


async def run_verify(plan: Plan, repo: Path, commit: str, command: str | None) -> VerifyRound:
    """Run ``command`` on a checkout of ``commit`` in the sandbox; the round's record."""
    if command is None:
        return VerifyRound(status="skipped", reason="no verify command", head_sha=commit)
    probed = Sandbox.probe()
    if isinstance(probed, SandboxUnavailable):
        return VerifyRound(
            command=command,
            status="skipped",
            reason=f"the process sandbox cannot run here: {probed.reason}",
            head_sha=commit,
        )
    try:
        argv = split_command(command)
    except ValueError as exc:
        return VerifyRound(command=command, status="skipped", reason=str(exc), head_sha=commit)
    if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
        return VerifyRound(
            command=command,
            status="skipped",
            reason=f"{argv[0]} is not installed on this machine",
            head_sha=commit,
        )
    limits = limits_of(plan.sandbox, timeout_s=plan.verify.timeout_s)
    with temporary_worktree(repo, commit) as tree:
        result = await probed.run(argv, cwd=tree, limits=limits)
    passed = result.exit_code == 0 and result.killed is None
    reason = f"stopped: {result.killed}" if result.killed else ""
    return VerifyRound(
        command=command,
        status="passed" if passed else "failed",
        exit_code=result.exit_code,
        duration_s=round(result.duration_s, 3),
        output_tail=result.output[-TAIL_CHARS:],
        reason=reason,
        head_sha=commit,
    )


async def attribute(
    plan: Plan, repo: Path, base: str, commits: Sequence[tuple[str, str]], command: str
) -> str | None:
    """The first task whose commit turned ``command`` red: its id, or ``"base"`` when the base
    is already red.

    ``commits`` are ``(task_id, sha)`` in order, the last one the merged head that just failed.
    The base is checked first; then the first red commit is found by bisection (assuming once
    red, red stays red), so ``n`` commits cost about ``log2(n)`` runs.
    """
    if (await run_verify(plan, repo, base, command)).status == "failed":
        return "base"
    if not commits:
        return None
    # The last commit is the merged head, which just failed: only the others need a run.
    low, high = 0, len(commits) - 2
    first_red: int | None = len(commits) - 1
    while low <= high:
        middle = (low + high) // 2
        round_ = await run_verify(plan, repo, commits[middle][1], command)
        if round_.status == "failed":
            first_red, high = middle, middle - 1
        else:
            low = middle + 1
    return commits[first_red][0] if first_red is not None else None
