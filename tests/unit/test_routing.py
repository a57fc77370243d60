"""Cost-aware routing: ``prefer: cheapest`` and a per-type ``max_usd`` ceiling, with reasons."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.config import Config, load_config
from orchestrator.errors import InputError
from orchestrator.routing import route
from orchestrator.stats import AgentTypeRecord

ALL_KEYS = {
    "OPENAI_API_KEY": "k",
    "ANTHROPIC_API_KEY": "k",
    "GEMINI_API_KEY": "k",
    "DEEPSEEK_API_KEY": "k",
    "GITHUB_TOKEN": "k",
}


def with_rule(task_type: str, **changes: object) -> Config:
    config = load_config()
    routes = dict(config.routes)
    routes[task_type] = routes[task_type].model_copy(update=changes)
    return dataclasses.replace(config, routes=routes)


def test_cheapest_puts_the_lowest_estimate_first_and_says_why() -> None:
    # research: gemini → claude → deepseek; 40 000 in / 4 000 out by default.
    chosen = route("research", with_rule("research", prefer="cheapest"), ALL_KEYS)
    assert (chosen.agent, chosen.backups) == ("deepseek", ["gemini", "claude"])
    assert chosen.estimated_usd == pytest.approx(0.04 * 0.30 + 0.004 * 1.20)
    assert chosen.reason == (
        "deepseek: cheapest for research (estimated deepseek $0.0168, gemini $0.0450, "
        "claude $0.1200; tokens from planning.estimate.default)"
    )


def test_cheapest_only_among_agents_whose_key_is_present() -> None:
    keys = {k: v for k, v in ALL_KEYS.items() if k != "DEEPSEEK_API_KEY"}
    chosen = route("research", with_rule("research", prefer="cheapest"), keys)
    assert (chosen.agent, chosen.backups) == ("gemini", ["claude"])


def test_order_is_kept_without_prefer() -> None:
    chosen = route("research", load_config(), ALL_KEYS)
    assert chosen.agent == "gemini" and chosen.reason == "gemini: primary for research"


def test_history_replaces_the_default_token_guess() -> None:
    # Four research tasks averaged 10 000 in / 1 000 out, whoever ran them.
    record = AgentTypeRecord(
        runs=4, succeeded=4, input_tokens=40_000, output_tokens=4_000, counted=4
    )
    records = {("claude", "research"): record}
    chosen = route("research", with_rule("research", prefer="cheapest"), ALL_KEYS, records)
    assert "tokens from mean of 4 research tasks" in chosen.reason
    assert chosen.estimated_usd == pytest.approx(0.01 * 0.30 + 0.001 * 1.20)


def test_a_ceiling_drops_the_agents_estimated_over_it() -> None:
    config = with_rule("code_generation", max_usd=0.05)  # codex $0.12, claude $0.12, deepseek
    chosen = route("code_generation", config, ALL_KEYS)
    assert (chosen.agent, chosen.backups) == ("deepseek", [])
    assert chosen.reason == (
        "deepseek: first within max_usd for code_generation (over the $0.0500 ceiling: "
        "codex, claude)"
    )


def test_a_ceiling_nobody_meets_is_a_plan_time_error_naming_the_rule() -> None:
    with pytest.raises(InputError) as caught:
        route("code_generation", with_rule("code_generation", max_usd=0.001), ALL_KEYS)
    message = str(caught.value)
    assert "routing_rules.yml" in message and "routes.code_generation.max_usd" in message
    assert "no agent with a key is estimated within $0.0010 per task" in message
