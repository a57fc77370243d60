"""`orchestrator run` with agents on loopback servers speaking the four wire protocols.

Every agent is a real SDK client (openai, anthropic, google-genai) talking to a scripted server
that answers in the provider's documented format; the run plans, edits files through tool
calls, merges, and accounts tokens and cost from the configured prices.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import orchestrator.providers as providers
import orchestrator.providers.retry as retry
from orchestrator.cli import main
from orchestrator.config import default_config_dir
from orchestrator.contracts import Aggregate, Plan, TaskResult
from orchestrator.fileio import read_model
from orchestrator.providers.ratelimit import reset_limits
from tests.conftest import git
from tests.fakes import anthropic_fake, gemini_fake, openai_fake
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.openai_fake import FakeUsage, OpenAIFake

PRICES = {"input_per_mtok": 2.0, "cached_input_per_mtok": 0.5, "output_per_mtok": 8.0}
# One task per protocol: task type → (agent, file it writes).
TASKS = {
    "code_generation": ("codex", "src/pace.py"),
    "documentation": ("claude", "docs/pace.md"),
    "test_generation": ("gemini", "tests/test_pace.py"),
    "quick_scripts": ("deepseek", "scripts/pace.sh"),
}


@dataclass
class Fakes:
    codex: OpenAIFake
    claude: AnthropicFake
    gemini: GeminiFake
    deepseek: OpenAIFake

    def all(self) -> list[OpenAIFake | AnthropicFake | GeminiFake]:
        return [self.codex, self.claude, self.gemini, self.deepseek]

    def request_count(self) -> int:
        return sum(len(f.requests) for f in self.all())


@pytest.fixture(autouse=True)
def _network_of_loopback_fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    for name in ("FAKE_OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.setenv(name, f"canary-{name.lower()}-0123456789")
    monkeypatch.delenv("ORCHESTRATOR_CACHE_DIR", raising=False)
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retry, "default_sleep", no_sleep)
    reset_limits()
    yield waits
    reset_limits()


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with ExitStack() as stack:
        yield Fakes(
            codex=stack.enter_context(OpenAIFake()),
            claude=stack.enter_context(AnthropicFake()),
            gemini=stack.enter_context(GeminiFake()),
            deepseek=stack.enter_context(OpenAIFake()),
        )


def write_config(folder: Path, fakes: Fakes) -> Path:
    shutil.copytree(default_config_dir(), folder)
    agents = {
        "codex": fakes.codex.agent_config("openai", timeout_s=5.0, **PRICES),
        "claude": fakes.claude.spec(timeout_s=5.0, **PRICES).model_dump(exclude_defaults=True),
        "gemini": fakes.gemini.spec(timeout_s=5.0, **PRICES).model_dump(exclude_defaults=True),
        "deepseek": fakes.deepseek.agent_config(
            "openai_compatible", api_key="${DEEPSEEK_API_KEY}", timeout_s=5.0, **PRICES
        ),
        "copilot": {"provider": "replay", "model": "unused", "script": "unused.yml"},
    }
    (folder / "agents.yml").write_text(yaml.safe_dump({"agents": agents}))
    routes = yaml.safe_load((folder / "routing_rules.yml").read_text())
    for task_type, (agent, _) in TASKS.items():
        backups = ["claude"] if agent != "claude" else ["codex"]
        routes["routes"][task_type] = {"primary": agent, "backup": backups, "changes": True}
    (folder / "routing_rules.yml").write_text(yaml.safe_dump(routes))
    stages = [
        {"id": t.split("_")[0], "type": t, "title": f"{t} for pace", "instructions": "Do it."}
        for t in TASKS
    ]
    workflows = yaml.safe_load((folder / "workflows.yml").read_text())
    workflows["workflows"]["four_protocols"] = {"stages": stages}
    for stage in stages:  # one-task workflows, so a fallback test owns both fakes' scripts
        workflows["workflows"][f"only_{stage['id']}"] = {"stages": [stage]}
    (folder / "workflows.yml").write_text(yaml.safe_dump(workflows))
    return folder


def script_agents(fakes: Fakes) -> None:
    usage = FakeUsage(prompt_tokens=1000, completion_tokens=100, cached_tokens=200)
    fakes.codex.add(*openai_fake.write_file_then_finish("src/pace.py", "PACE = 1\n", usage=usage))
    fakes.deepseek.add(
        *openai_fake.write_file_then_finish("scripts/pace.sh", "echo pace\n", usage=usage)
    )
    fakes.claude.script(
        anthropic_fake.write_then_finish(
            "docs/pace.md",
            "# Pace\n",
            usage={"input_tokens": 800, "output_tokens": 100, "cache_read_input_tokens": 200},
        )
    )
    fakes.gemini.script(
        gemini_fake.write_then_finish(
            "tests/test_pace.py",
            "def test_pace():\n    assert True\n",
            usage={
                "promptTokenCount": 1000,
                "candidatesTokenCount": 100,
                "cachedContentTokenCount": 200,
                "totalTokenCount": 1100,
            },
        )
    )


def run(repo: Path, config: Path, out: Path, *extra: str) -> int:
    return main(["run", *extra, "--repo", str(repo), "--config", str(config), "--out", str(out)])


def expected_cost(input_tokens: int, cached: int, output: int) -> float:
    uncached = input_tokens - cached
    return (uncached * 2.0 + cached * 0.5 + output * 8.0) / 1_000_000


def test_every_protocol_edits_files_and_costs_match_prices(
    repo: Path, tmp_path: Path, fakes: Fakes
) -> None:
    script_agents(fakes)
    config = write_config(tmp_path / "cfg", fakes)
    out = tmp_path / "out"
    assert run(repo, config, out, "--workflow", "four_protocols") == 0
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded"
    branch = aggregate.branch or ""
    for _agent, path in TASKS.values():
        assert git(repo, "show", f"{branch}:{path}"), path
    by_agent = {t.agent: t for t in aggregate.tasks}
    assert set(by_agent) == {"codex", "claude", "gemini", "deepseek"}
    for task in aggregate.tasks:
        result = read_model(out / "tasks" / task.id / "result.json", TaskResult)
        u = result.usage
        # three model turns of 1000 in (200 cached) / 100 out each
        assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (3000, 600, 300), task.id
        assert task.cost_usd == pytest.approx(expected_cost(3000, 600, 300))
        assert (task.input_tokens, task.output_tokens) == (3000, 300)
    assert aggregate.totals.cost_usd == pytest.approx(4 * expected_cost(3000, 600, 300))
    for fake in fakes.all():
        assert fake.remaining == 0
    # The API keys were sent to the servers but written nowhere.
    written = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "canary-" not in written


def test_second_identical_run_makes_no_model_request(
    repo: Path, tmp_path: Path, fakes: Fakes
) -> None:
    script_agents(fakes)
    config = write_config(tmp_path / "cfg", fakes)
    assert run(repo, config, tmp_path / "first", "--workflow", "four_protocols") == 0
    calls = fakes.request_count()
    assert calls == 12
    plan = tmp_path / "first" / "plan.json"
    assert run(repo, config, tmp_path / "second", "--plan", str(plan)) == 0
    assert fakes.request_count() == calls  # everything came from .orchestrator/cache
    second = read_model(tmp_path / "second" / "aggregate.json", Aggregate)
    assert second.status == "succeeded"
    hits = [
        a.cache_hits
        for t in read_model(plan, Plan).tasks
        for a in read_model(
            tmp_path / "second" / "tasks" / t.id / "result.json", TaskResult
        ).attempts
    ]
    assert hits == [3, 3, 3, 3]


def test_rate_limited_primary_falls_back_to_its_backup(
    repo: Path, tmp_path: Path, fakes: Fakes, _network_of_loopback_fakes: list[float]
) -> None:
    waits = _network_of_loopback_fakes
    # codex answers 429 on every call (1 + 4 retries): the task moves to claude.
    fakes.codex.add(*[openai_fake.rate_limited(retry_after=3) for _ in range(5)])
    fakes.claude.script(anthropic_fake.write_then_finish("src/pace.py", "PACE = 2\n"))
    config = write_config(tmp_path / "cfg", fakes)
    out = tmp_path / "out"
    assert run(repo, config, out, "--workflow", "only_code") == 0
    result = read_model(out / "tasks" / "code" / "result.json", TaskResult)
    assert result.status == "succeeded" and result.agent == "claude"
    first, second = result.attempts
    assert (first.agent, first.status, len(first.retries)) == ("codex", "failed", 4)
    assert "429" in (first.error or "") or "rate" in (first.error or "").lower()
    assert all(r.wait_s == 3.0 for r in first.retries)  # Retry-After honoured
    assert waits.count(3.0) >= 4
    assert (second.agent, second.status) == ("claude", "succeeded")
    assert "claude" in (out / "summary.md").read_text()


def test_overloaded_anthropic_primary_falls_back(repo: Path, tmp_path: Path, fakes: Fakes) -> None:
    fakes.claude.script([anthropic_fake.error(529) for _ in range(5)])
    fakes.codex.add(*openai_fake.write_file_then_finish("docs/pace.md", "# Pace\n"))
    config = write_config(tmp_path / "cfg", fakes)
    out = tmp_path / "out"
    assert run(repo, config, out, "--workflow", "only_documentation") == 0
    result = read_model(out / "tasks" / "documentation" / "result.json", TaskResult)
    assert [a.agent for a in result.attempts] == ["claude", "codex"]
    assert result.status == "succeeded"
    assert "overloaded" in (result.attempts[0].error or "").lower() or "529" in (
        result.attempts[0].error or ""
    )
    # the attempt's error names its agent once ("claude (anthropic …): …")
    error = result.attempts[0].error or ""
    assert error.startswith("claude (anthropic ") and "agent claude" not in error, error


def test_every_agent_failing_fails_the_run_clearly(
    repo: Path, tmp_path: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.codex.add(openai_fake.invalid_api_key())
    fakes.claude.script(anthropic_fake.error(401))
    config = write_config(tmp_path / "cfg", fakes)
    out = tmp_path / "out"
    assert run(repo, config, out, "--workflow", "only_code") == 1
    result = read_model(out / "tasks" / "code" / "result.json", TaskResult)
    assert result.status == "failed"
    assert "all 2 agents failed" in (result.error or "")
    assert [len(a.retries) for a in result.attempts] == [0, 0]  # 401 is never retried
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "failed"
    assert "code" in aggregate.reason
    printed = capsys.readouterr()
    assert "canary-" not in printed.out + printed.err
