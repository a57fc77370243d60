"""Shared test fixtures: temporary git repositories and the no-network switch."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import orchestrator.providers as providers
from orchestrator.gitrepo import commit_env

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
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


def fixtures_dir() -> Path:
    """Where ../shared/fixtures lives (CI copies shared/ beside the clone)."""
    env = os.environ.get("ORCHESTRATOR_SHARED_FIXTURES")
    return Path(env) if env else FIXTURES
