"""The vendor CLI drivers: how each CLI is launched, and how its stream is read.

The streams here are the real CLIs' output at their pinned versions, captured against our
loopback fake (tests/fixtures/agent_clis/, see its README), plus the event shapes their
documentation gives for what the fake does not provoke.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from orchestrator.agent_clis.claude import ClaudeCode
from orchestrator.agent_clis.codex import CodexCli
from orchestrator.agent_clis.driver import CliRequest, Tally
from orchestrator.agent_clis.gemini import GeminiCli
from orchestrator.contracts import AGENT_CLI_TIMEOUT_S, AgentSpec, Limits, Usage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agent_clis"


def request(tmp_path: Path, provider: str, **spec: object) -> CliRequest:
    agent_spec = AgentSpec.model_validate({"provider": provider, "model": "m-1", **spec})
    return CliRequest(
        agent="worker",
        spec=agent_spec,
        tree=tmp_path / "tree",
        home=tmp_path / "home",
        limits=Limits(max_turns=7, max_usd=0.5),
        commands=False,
        rules="RULES",
    )


def read(tally: Tally, path: Path) -> Tally:
    for line in path.read_text(encoding="utf-8").splitlines():
        tally.feed_line(line)
    return tally


# --------------------------------------------------------------------------- contract


def test_a_cli_agents_timeout_defaults_to_its_whole_run_and_stays_when_given() -> None:
    cli = AgentSpec(provider="claude-code", model="m")
    given = AgentSpec(provider="claude-code", model="m", timeout_s=60)
    model = AgentSpec(provider="anthropic", model="m")
    assert (cli.timeout_s, given.timeout_s, model.timeout_s) == (AGENT_CLI_TIMEOUT_S, 60, 120)
    # A plan carries the value it was given: a round trip keeps it.
    assert AgentSpec.model_validate(cli.model_dump()).timeout_s == AGENT_CLI_TIMEOUT_S


def test_a_version_with_shell_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        AgentSpec(provider="codex-cli", model="m", version="1.0; rm -rf /")


# --------------------------------------------------------------------------- launches


def test_claude_code_gets_our_limits_no_web_tools_and_its_key_as_a_secret(tmp_path: Path) -> None:
    launch = ClaudeCode().launch(
        request(tmp_path, "claude-code", base_url="http://127.0.0.1:9", args=["--effort", "low"]),
        "sk-ant-key",
    )
    args = launch.args
    assert args[args.index("--max-turns") + 1] == "7"
    assert float(args[args.index("--max-budget-usd") + 1]) == 0.5
    assert args[args.index("--permission-mode") + 1] == "acceptEdits"
    assert args[args.index("--disallowedTools") + 1 : args.index("--disallowedTools") + 3] == [
        "WebFetch",
        "WebSearch",
    ]
    assert "--allowedTools" not in args  # no shell unless run_command is on
    assert args[-2:] == ["--effort", "low"]
    assert "sk-ant-key" not in " ".join(args) + json.dumps(launch.env)
    assert launch.secrets == {"ANTHROPIC_API_KEY": "sk-ant-key"}
    assert launch.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert launch.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert launch.api_url == "http://127.0.0.1:9"


def test_claude_code_may_run_commands_only_when_run_command_is_on(tmp_path: Path) -> None:
    base = request(tmp_path, "claude-code")
    on = CliRequest(**{**base.__dict__, "commands": True})
    assert "--allowedTools" in ClaudeCode().launch(on, None).args
    assert ClaudeCode().launch(base, None).secrets == {}
    assert ClaudeCode().launch(base, None).api_url == "https://api.anthropic.com"


def test_codex_gets_our_endpoint_as_its_own_provider_and_no_plugins(tmp_path: Path) -> None:
    launch = CodexCli().launch(
        request(tmp_path, "codex-cli", base_url="http://127.0.0.1:9/v1"), "sk-key"
    )
    config_path = tmp_path / "home" / "codex" / "config.toml"
    config = tomllib.loads(launch.files[config_path])
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == "http://127.0.0.1:9/v1"
    assert provider["wire_api"] == "responses"
    assert provider["env_key"] == "OPENAI_API_KEY"
    assert config["features"]["plugins"] is False
    assert config["analytics"]["enabled"] is False
    assert config["web_search"] == "disabled"
    assert launch.secrets == {"OPENAI_API_KEY": "sk-key"}
    assert launch.env["CODEX_HOME"] == str(tmp_path / "home" / "codex")
    assert launch.args[0] == "exec" and launch.args[-1] == "-"
    assert "sk-key" not in "".join(launch.files.values())
    assert launch.files[tmp_path / "home" / "codex" / "AGENTS.md"] == "RULES\n"


def test_gemini_gets_settings_with_our_turn_limit_and_no_web_tools(tmp_path: Path) -> None:
    launch = GeminiCli().launch(
        request(tmp_path, "gemini-cli", base_url="http://127.0.0.1:9"), "g-key"
    )
    settings_path = tmp_path / "home" / "gemini" / ".gemini" / "settings.json"
    settings = json.loads(launch.files[settings_path])
    assert settings["model"]["maxSessionTurns"] == 7
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings["privacy"]["usageStatisticsEnabled"] is False
    assert set(settings["tools"]["exclude"]) == {"web_fetch", "google_web_search"}
    assert launch.args[launch.args.index("--approval-mode") + 1] == "auto_edit"
    assert launch.env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:9"
    assert launch.secrets == {"GEMINI_API_KEY": "g-key"}


# --------------------------------------------------------------------------- streams


def test_claude_stream_counts_each_response_once_and_reads_the_result() -> None:
    tally = ClaudeCode().tally()
    usage = {"input_tokens": 100, "cache_read_input_tokens": 20, "output_tokens": 5}
    message = {"id": "msg_1", "usage": usage, "content": [{"type": "tool_use"}]}
    tally.feed({"type": "assistant", "message": message})
    tally.feed({"type": "assistant", "message": message})  # a second block of the same response
    assert tally.turns == 1
    assert tally.usage == Usage(input_tokens=120, output_tokens=5, cached_input_tokens=20)
    tally.feed(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 3,
            "result": "Done.",
            "total_cost_usd": 0.0021,
            "usage": {"input_tokens": 360, "output_tokens": 61},
        }
    )
    assert (tally.turns, tally.summary, tally.reported_cost) == (3, "Done.", 0.0021)
    assert tally.usage == Usage(input_tokens=360, output_tokens=61)
    assert tally.finished and tally.error is None


def test_claude_api_error_is_read_from_is_error_not_the_subtype() -> None:
    tally = ClaudeCode().tally()
    tally.feed(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "result": "API Error: 400 fake error",
            "terminal_reason": "api_error",
        }
    )
    assert tally.error == "API Error: 400 fake error"
    assert tally.budget is None


def test_claude_stopping_on_its_own_turn_limit_is_a_budget_not_a_failure() -> None:
    tally = ClaudeCode().tally()
    tally.feed(
        {
            "type": "result",
            "subtype": "error_max_turns",
            "is_error": True,
            "errors": ["Reached maximum number of turns (1)"],
        }
    )
    assert tally.budget == "max_turns budget reached: Reached maximum number of turns (1)"


def test_codex_stream_sums_turn_usage_and_takes_the_last_message() -> None:
    tally = CodexCli().tally()
    for event in (
        {"type": "thread.started", "thread_id": "t"},
        {"type": "item.completed", "item": {"type": "file_change", "changes": []}},
        {"type": "item.completed", "item": {"type": "reasoning", "text": "hm"}},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "Done."}},
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 300, "cached_input_tokens": 50, "output_tokens": 60},
        },
    ):
        tally.feed(event)
    assert (tally.turns, tally.summary, tally.finished) == (2, "Done.", True)
    assert tally.usage == Usage(input_tokens=300, output_tokens=60, cached_input_tokens=50)
    assert tally.reported_cost is None


def test_codex_failed_turn_is_an_error_and_reconnects_are_notices() -> None:
    tally = CodexCli().tally()
    tally.feed({"type": "error", "message": "Reconnecting... waiting for network"})
    assert tally.error is None and tally.notice == "Reconnecting... waiting for network"
    tally.feed({"type": "turn.failed", "error": {"message": "unexpected status 401"}})
    assert tally.error == "unexpected status 401" and not tally.finished


def test_gemini_stream_counts_responses_and_joins_the_text_deltas() -> None:
    tally = GeminiCli().tally()
    for event in (
        {"type": "init", "model": "m"},
        {"type": "message", "role": "user", "content": "task"},
        {"type": "tool_use", "tool_name": "write_file", "tool_id": "a"},
        {"type": "tool_result", "tool_id": "a", "status": "success"},
        {"type": "tool_use", "tool_name": "replace", "tool_id": "b"},
        {"type": "tool_result", "tool_id": "b", "status": "error", "error": {"message": "no"}},
        {"type": "message", "role": "assistant", "content": "Do", "delta": True},
        {"type": "message", "role": "assistant", "content": "ne.", "delta": True},
        {
            "type": "result",
            "status": "success",
            "stats": {"input_tokens": 900, "output_tokens": 18, "cached": 100},
        },
    ):
        tally.feed(event)
    assert (tally.turns, tally.summary, tally.tool_errors) == (3, "Done.", ["no"])
    assert tally.usage == Usage(input_tokens=900, output_tokens=18, cached_input_tokens=100)
    assert tally.finished and tally.error is None


def test_gemini_error_result_is_an_error() -> None:
    tally = GeminiCli().tally()
    tally.feed({"type": "result", "status": "error", "error": {"message": "[API Error: 400]"}})
    assert tally.error == "[API Error: 400]"


def test_lines_that_are_not_json_objects_are_skipped() -> None:
    tally = CodexCli().tally()
    assert tally.feed_line("Reading additional input from stdin...") is None
    assert tally.feed_line("[1, 2]") is None
    assert tally.events == 0


# --------------------------------------------------------------------------- captured streams

DRIVERS = {"claude-code": ClaudeCode(), "codex-cli": CodexCli(), "gemini-cli": GeminiCli()}


@pytest.mark.parametrize("provider", sorted(DRIVERS))
def test_a_captured_run_reads_as_three_turns_with_the_fakes_tokens(provider: str) -> None:
    tally = read(DRIVERS[provider].tally(), FIXTURES / f"{provider}.jsonl")
    assert tally.finished and tally.error is None and tally.budget is None
    assert tally.turns == 3
    assert tally.summary == "Done: hello.txt created and edited."
    # The fake's three replies: 111 uncached + 5 cached in, 22 out, each.
    assert (tally.usage.input_tokens, tally.usage.output_tokens) == (348, 66)
    assert tally.usage.cached_input_tokens == 15
    assert tally.tool_errors == []


@pytest.mark.parametrize("provider", sorted(DRIVERS))
def test_a_captured_401_reads_as_an_error(provider: str) -> None:
    tally = read(DRIVERS[provider].tally(), FIXTURES / f"{provider}-error.jsonl")
    assert tally.error is not None and "401" in tally.error
    assert tally.budget is None


def test_claude_code_reports_its_own_cost_the_others_none() -> None:
    claude = read(ClaudeCode().tally(), FIXTURES / "claude-code.jsonl")
    assert claude.reported_cost == pytest.approx(0.0019935)
    for provider in ("codex-cli", "gemini-cli"):
        assert read(DRIVERS[provider].tally(), FIXTURES / f"{provider}.jsonl").reported_cost is None
