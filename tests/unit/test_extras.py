"""Which extras each job installs (``orchestrator/extras.py``), and that the tables agree with
the provider registry and pyproject.toml."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator import extras
from orchestrator.config import Config, load_config
from orchestrator.contracts import AGENT_CLI_PROVIDERS, AgentSpec, Plan, Task
from orchestrator.errors import InputError
from orchestrator.providers import PROVIDERS
from tests.conftest import plan_of

ROOT = Path(__file__).resolve().parents[2]
ALL_KEYS = {
    "OPENAI_API_KEY": "k",
    "ANTHROPIC_API_KEY": "k",
    "GEMINI_API_KEY": "k",
    "DEEPSEEK_API_KEY": "k",
    "GITHUB_TOKEN": "k",
}


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(None, None)


def spec(provider: str) -> AgentSpec:
    return AgentSpec(provider=provider, model=f"{provider}-model")


def chain_plan(agent: str, backups: list[str], agents: dict[str, AgentSpec]) -> Plan:
    task = Task(id="t1", type="implementation", title="t", instructions="i", agent=agent,
                backups=backups, wave=1)  # fmt: skip
    return plan_of(run_id="r", status="planned", reason="r", created_at="2026-01-01T00:00:00Z",
                   tasks=[task], agents=agents)  # fmt: skip


def test_every_provider_of_the_registry_has_its_extra_and_no_other() -> None:
    # The models' registry plus the vendor CLIs (npm programs: no Python extra).
    assert set(extras.PROVIDER_EXTRAS) == set(PROVIDERS) | AGENT_CLI_PROVIDERS
    assert all(extras.PROVIDER_EXTRAS[p] is None for p in AGENT_CLI_PROVIDERS)
    assert {e for e in extras.PROVIDER_EXTRAS.values() if e} <= set(extras.EXTRA_MODULES)


def test_the_extras_are_those_of_pyproject_and_all_is_every_one() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    assert set(optional) == {*extras.EXTRA_MODULES, extras.ALL}
    (everything,) = optional[extras.ALL]
    assert everything == f"{extras.DISTRIBUTION}[{','.join(extras.EXTRA_MODULES)}]"
    # The core is what every command needs: no SDK, no GitHub client.
    assert sorted(dep.split(">")[0] for dep in project["dependencies"]) == ["pydantic", "pyyaml"]


def test_each_default_agent_needs_its_providers_sdk(config: Config) -> None:
    wanted = {"codex": ["openai"], "claude": ["anthropic"], "gemini": ["gemini"],
              "deepseek": ["openai"], "copilot": ["openai"]}  # fmt: skip
    assert {name: extras.agent_extras(config.agents, [name]) for name in wanted} == wanted
    assert extras.agent_extras(config.agents, list(wanted)) == ["openai", "anthropic", "gemini"]


def test_replay_agents_need_the_core_only(config: Config, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text('{"planner": [], "tasks": {}}')
    replayed = config.with_replay(script)
    assert extras.agent_extras(replayed.agents, list(replayed.agents)) == []
    assert extras.format_extras([]) == ""


def test_a_task_installs_its_backups_sdks_too() -> None:
    agents = {"claude": spec("anthropic"), "deepseek": spec("openai_compatible"),
              "local": spec("replay"), "tool": spec("mcp")}  # fmt: skip
    plan = chain_plan("claude", ["deepseek", "tool"], agents)
    assert extras.task_extras(plan, "t1") == ["openai", "anthropic", "mcp"]
    assert extras.format_extras(extras.task_extras(plan, "t1")) == "openai anthropic mcp"
    with pytest.raises(InputError, match="no task 'nope'"):
        extras.task_extras(plan, "nope")


def test_the_verify_job_installs_the_repair_chains_sdks() -> None:
    agents = {"local": spec("replay"), "gem": spec("gemini"), "claude": spec("anthropic")}
    plan = chain_plan("local", [], agents).model_copy(
        update={"repair_chains": {"debugging": ["gem"], "integration": ["gem", "claude"]}}
    )
    assert extras.repair_extras(plan) == ["anthropic", "gemini"]
    assert extras.plan_agent_names(plan) == ["local", "gem", "claude"]
    assert extras.run_extras(plan) == ["anthropic", "gemini"]


def test_an_unknown_provider_is_an_input_error_naming_the_agent() -> None:
    with pytest.raises(InputError, match=r"agents\.yml: agents\.x\.provider: unknown provider"):
        extras.agent_extras({"x": spec("carrier-pigeon")}, ["x"])


def test_extras_come_in_one_order_and_unknown_ones_are_refused() -> None:
    assert extras.ordered(["mcp", "github", "openai", "github"]) == ["openai", "github", "mcp"]
    with pytest.raises(ValueError, match="bogus"):
        extras.ordered(["openai", "bogus"])


# -- the plan job ---------------------------------------------------------------------------------


def test_a_plan_job_from_a_workflow_input_needs_no_sdk(config: Config) -> None:
    workflow = "parallel_feature_implementation"
    assert extras.plan_job_extras(config, publish=False, workflow=workflow, environ=ALL_KEYS) == []
    published = extras.plan_job_extras(config, publish=True, workflow=workflow, environ=ALL_KEYS)
    assert published == ["github"]
    assert extras.plan_job_extras(config, publish=False, items=["a"], environ=ALL_KEYS) == []


def test_free_text_needs_the_planner_agents_sdk_only_when_it_has_its_key(config: Config) -> None:
    planner = config.settings.planning.planner_agent
    assert planner == "claude"
    assert extras.plan_job_extras(config, publish=False, environ=ALL_KEYS) == ["anthropic"]
    # Without its key the planner is never asked: free text falls back to the default workflow.
    no_key = {k: v for k, v in ALL_KEYS.items() if k != "ANTHROPIC_API_KEY"}
    assert extras.plan_job_extras(config, publish=False, environ=no_key) == []


def test_an_events_plan_job_checks_permission_through_github(config: Config) -> None:
    event = extras.plan_job_extras(config, publish=False, event_name="issue_comment", environ={})
    assert event == ["github"]
    # Schedules and dispatches are not checked; neither is anything when the check is off.
    assert extras.plan_job_extras(config, publish=False, event_name="schedule", environ={}) == []
    trust = config.settings.trust.model_copy(update={"confirm_permission": "none"})
    unchecked = replace(config, settings=config.settings.model_copy(update={"trust": trust}))
    assert extras.plan_job_extras(unchecked, publish=False, event_name="issues", environ={}) == []
    both = extras.plan_job_extras(config, publish=True, event_name="issues", environ=ALL_KEYS)
    assert both == ["anthropic", "github"]


def test_no_planner_agent_means_no_sdk_for_free_text(config: Config) -> None:
    planning = config.settings.planning.model_copy(update={"planner_agent": None})
    settings = config.settings.model_copy(update={"planning": planning})
    without = replace(config, settings=settings)
    assert extras.plan_job_extras(without, publish=False, environ=ALL_KEYS) == []


def test_the_plan_job_asks_for_its_extras_on_the_command_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``steps.sh plan`` runs before planning: the planner's SDK only when it may run."""
    from orchestrator.extras import main

    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    assert main(["plan-job", "--event-name", "issues"]) == 0
    assert capsys.readouterr().out == "github\n"  # no planner key: free text uses a template
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert main(["plan-job", "--event-name", "issues"]) == 0
    assert capsys.readouterr().out == "anthropic github\n"
    assert main(["plan-job", "--workflow", "parallel_feature_implementation"]) == 0
    assert capsys.readouterr().out == "\n"
    assert main(["plan-job", "--config", "/nonexistent/config", "--event-name", "issues"]) == 2
