"""`orchestrator run` with a Gemini primary on the loopback fake: an exhausted daily quota
moves the task to the backup agent at once; a per-minute quota is waited out and retried."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import orchestrator.agent  # noqa: F401  (first: `orchestrator.commands` alone hits an import cycle)
import orchestrator.providers as providers
import orchestrator.providers.retry as retry
from orchestrator.cli import main
from orchestrator.config import default_config_dir
from orchestrator.contracts import TaskResult
from orchestrator.fileio import read_model
from orchestrator.providers.ratelimit import reset_limits
from tests.fakes import anthropic_fake, gemini_fake
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake

PASSING = "def test_pace():\n    assert True\n"
PRICES: dict[str, Any] = {
    "input_per_mtok": 2.0,
    "cached_input_per_mtok": 0.5,
    "output_per_mtok": 8.0,
}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Loopback-only model requests; every retry wait recorded instead of slept."""
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv("GEMINI_API_KEY", "canary-gemini-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "canary-anthropic-0123456789")
    monkeypatch.delenv("ORCHESTRATOR_CACHE_DIR", raising=False)
    recorded: list[float] = []

    async def no_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(retry, "default_sleep", no_sleep)
    reset_limits()
    yield recorded
    reset_limits()


def write_config(folder: Path, gemini: GeminiFake, claude: AnthropicFake) -> Path:
    """The default config with gemini as the test-generation primary and claude its backup."""
    shutil.copytree(default_config_dir(), folder)
    agents = {
        "gemini": gemini.spec(timeout_s=5.0, **PRICES).model_dump(exclude_defaults=True),
        "claude": claude.spec(timeout_s=5.0, **PRICES).model_dump(exclude_defaults=True),
    }
    for name in ("codex", "deepseek", "copilot"):
        agents[name] = {"provider": "replay", "model": "unused", "script": "unused.yml"}
    (folder / "agents.yml").write_text(yaml.safe_dump({"agents": agents}))
    (folder / "unused.yml").write_text("tasks: {}\n")
    routes = yaml.safe_load((folder / "routing_rules.yml").read_text())
    routes["routes"]["test_generation"] = {
        "primary": "gemini",
        "backup": ["claude"],
        "changes": True,
    }
    (folder / "routing_rules.yml").write_text(yaml.safe_dump(routes))
    workflows = yaml.safe_load((folder / "workflows.yml").read_text())
    stage = {"id": "tests", "type": "test_generation", "title": "tests for pace"}
    workflows["workflows"]["only_tests"] = {"stages": [{**stage, "instructions": "Do it."}]}
    (folder / "workflows.yml").write_text(yaml.safe_dump(workflows))
    return folder


def run(repo: Path, config: Path, out: Path) -> TaskResult:
    args = ["run", "--workflow", "only_tests", "--repo", str(repo), "--config", str(config)]
    assert main([*args, "--out", str(out)]) == 0
    return read_model(out / "tasks" / "tests" / "result.json", TaskResult)


def test_daily_quota_falls_back_to_the_backup_at_once(
    repo: Path, tmp_path: Path, waits: list[float]
) -> None:
    with GeminiFake() as gemini, AnthropicFake() as claude:
        gemini.script(gemini_fake.daily_quota_exhausted(), gemini_fake.text("unused"))
        claude.script(anthropic_fake.write_then_finish("tests/test_pace.py", PASSING))
        result = run(repo, write_config(tmp_path / "cfg", gemini, claude), tmp_path / "out")
        assert len(gemini.requests) == 1 and gemini.remaining == 1
    assert result.status == "succeeded" and result.agent == "claude"
    first, second = result.attempts
    assert (first.agent, first.status, first.retries, first.wait_s) == ("gemini", "failed", [], 0.0)
    assert "daily quota exhausted" in (first.error or "")
    assert (second.agent, second.status) == ("claude", "succeeded")
    assert waits == []


def test_per_minute_quota_is_retried_after_its_delay(
    repo: Path, tmp_path: Path, waits: list[float]
) -> None:
    with GeminiFake() as gemini, AnthropicFake() as claude:
        gemini.script(
            gemini_fake.rate_limited("9s"),
            gemini_fake.write_then_finish("tests/test_pace.py", PASSING),
        )
        result = run(repo, write_config(tmp_path / "cfg", gemini, claude), tmp_path / "out")
        assert claude.requests == []
    assert result.status == "succeeded" and result.agent == "gemini"
    [attempt] = result.attempts
    assert [r.wait_s for r in attempt.retries] == [9.0]
    assert 9.0 in waits
