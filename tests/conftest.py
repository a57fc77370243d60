"""Shared test fixtures: temporary git repositories and the no-network switch."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, Plan, Task
from orchestrator.gitrepo import commit_env

#: Everything the suite reads lives in the repository (see tests/fixtures/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WEBHOOKS = FIXTURES / "github" / "webhooks"


@pytest.fixture(autouse=True)
def _forbid_model_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reaches a real model provider unless it opts in explicitly."""
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", False)
    yield


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with the bot identity; return stdout."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env=commit_env(),
        check=True,
    )
    return proc.stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """Create a git repository at ``path`` with ``files`` committed on ``main``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small committed git repository."""
    return make_repo(
        tmp_path / "repo",
        {
            "README.md": "# sample\n",
            "src/app.py": "def greet(name):\n    return 'hello ' + name\n",
            "src/util.py": "VALUE = 1\n",
        },
    )


def agents_for(tasks: list[Task]) -> dict[str, AgentSpec]:
    """The agent specs a hand-made plan must carry: one per agent or backup its tasks name."""
    names = {name for task in tasks for name in (task.agent, *task.backups)}
    return {name: AgentSpec(provider="replay", model=f"{name}-model") for name in sorted(names)}


def plan_of(**fields: Any) -> Plan:
    """A hand-made plan for unit tests: ``waves`` and ``agents`` filled in from its tasks.

    A plan is validated whole (``Plan`` refuses one whose tasks name agents it does not carry),
    so tests that only care about tasks still build a consistent plan.
    """
    tasks = [t if isinstance(t, Task) else Task.model_validate(t) for t in fields.get("tasks", [])]
    fields.setdefault("waves", max((task.wave for task in tasks), default=0))
    fields.setdefault("agents", agents_for(tasks))
    return Plan.model_validate(fields)
