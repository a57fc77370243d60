"""A stateful GitHub fake on loopback, a bare ``origin``, and the CLI steps that publish to them.

Shared by the end-to-end tests of the GitHub side: ``world`` starts ``tests/fakes/github_fake.py``
with the environment an Actions job has (``GITHUB_TOKEN``, ``GITHUB_API_URL``, …) and a local
bare repository as ``origin``; the helpers write real webhook payloads and run the real CLI.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from orchestrator.redact import reset_default_redactor
from tests.conftest import WEBHOOKS, git, make_repo
from tests.fakes.github_fake import FakeGitHub, serve_github

CANARY = "canary-5ecret-7f3a9c1e2d"
TOKEN = "tok-canary-github-0a1b2c3d4e"
RUN_ID = "4242"


@dataclass
class World:
    fake: FakeGitHub
    url: str
    repo: Path
    remote: Path
    tmp: Path
    sleeps: list[float]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    repo = make_repo(tmp_path / "repo", {"README.md": "# sample\n", "src/app.py": "X = 1\n"})
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    with serve_github(FakeGitHub(git_dir=remote)) as (fake, server):
        env = {
            "GITHUB_TOKEN": TOKEN,
            "MY_SERVICE_API_KEY": CANARY,
            "GITHUB_REPOSITORY": "Codertocat/Hello-World",
            "GITHUB_API_URL": server.url,
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_RUN_ID": RUN_ID,
            "GITHUB_RUN_ATTEMPT": "1",
        }
        for key in ("GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_APP_ID", "GH_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_default_redactor()
        yield World(fake, server.url, repo, remote, tmp_path, sleeps)
    reset_default_redactor()


def labeled_event(tmp: Path, items: list[str], extra: str = "") -> Path:
    payload = json.loads((WEBHOOKS / "issues.labeled.1.json").read_text())
    payload["label"]["name"] = "orchestrate"
    lines = ["Please implement these:", *(f"- [ ] {item}" for item in items)]
    payload["issue"]["body"] = "\n".join(lines) + extra
    path = tmp / "event-labeled.json"
    path.write_text(json.dumps(payload))
    return path


def comment_event(tmp: Path, body: str, **changes: Any) -> Path:
    payload = json.loads((WEBHOOKS / "issue_comment.created.1.json").read_text())
    payload = copy.deepcopy(payload)
    payload["comment"]["body"] = body
    payload["comment"]["author_association"] = changes.get("association", "OWNER")
    if changes.get("bot"):
        payload["sender"]["login"] = "helper[bot]"
        payload["sender"]["type"] = "Bot"
    path = tmp / f"event-comment-{abs(hash(body)) % 10**8}.json"
    path.write_text(json.dumps(payload))
    return path


def plan_step(w: World, event: Path, name: str, config: Path, out: Path) -> int:
    return main(
        [
            "plan",
            "--event",
            str(event),
            "--event-name",
            name,
            "--repo",
            str(w.repo),
            "--config",
            str(config),
            "--out",
            str(out),
            "--publish",
        ]
    )


def aggregate_step(w: World, out: Path) -> int:
    return main(
        ["aggregate", "--plan", str(out / "plan.json"), "--workspace", str(w.repo), "--publish"]
    )
