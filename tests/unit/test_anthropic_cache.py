"""Anthropic prompt caching: where breakpoints go, and how reads and writes are counted and priced.

Through the real ``anthropic`` SDK against the loopback fake, whose prompt cache follows the
prompt-caching guide (prefix order tools → system → messages, minimum cacheable length per
model, ``input_tokens`` only the uncached rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, Usage
from orchestrator.pricing import cost_usd
from orchestrator.providers.anthropic import AnthropicModel, build_request
from orchestrator.providers.anthropic_request import MAX_BREAKPOINTS
from orchestrator.providers.anthropic_response import usage_of
from orchestrator.providers.base import Message, ModelResponse, ModelSettings, ToolCall, ToolSpec
from tests.fakes.anthropic_fake import AnthropicFake, call, text, tool_calls, validate_request
from tests.fakes.anthropic_fake_cache import block_tokens

ENV = "FAKE_ANTHROPIC_CACHE_KEY"
KEY = "sk-ant-cache-test-0000000000000000"
SONNET = "claude-sonnet-5"  # minimum cacheable prefix: 1,024 tokens
HAIKU = "claude-haiku-4-5"  # minimum cacheable prefix: 4,096 tokens

TOOLS = [
    ToolSpec(
        "write_file",
        "Write a file.",
        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    ),
    ToolSpec("finish", "Finish the task.", {"type": "object", "properties": {}}),
]
#: A system prompt of about 1,500 tokens: over Sonnet's minimum, under Haiku 4.5's.
SYSTEM = "You are a careful engineer working in a git repository. " * 110
PRICES = {"input_per_mtok": 3.0, "cache_write_per_mtok": 3.75, "cached_input_per_mtok": 0.3}
SPEC = AgentSpec.model_validate(
    {"provider": "anthropic", "model": SONNET, "output_per_mtok": 15.0, **PRICES}
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[AnthropicFake]:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)
    with AnthropicFake(expected_key=KEY) as server:
        yield server
    assert server.violations == [], "the provider sent a request the real API would reject"


def model(fake: AnthropicFake, name: str = SONNET, task: str = "t1") -> AnthropicModel:
    return AnthropicModel("claude", fake.spec(key_env=ENV, model=name, **PRICES), task)


def ask(model: AnthropicModel, messages: list[Message]) -> ModelResponse:
    return asyncio.run(model.request(messages, TOOLS, ModelSettings(max_tokens=200)))


def conversation(task: str) -> list[Message]:
    return [Message("system", SYSTEM, cache_prefix=True), Message("user", f"Do task {task}.")]


def tokens(block: dict[str, Any]) -> int:
    """Tokens of one block as the fake counts them (its ``cache_control`` left out)."""
    return block_tokens({k: v for k, v in block.items() if k != "cache_control"})


def prefix_tokens(body: dict[str, Any]) -> int:
    """Tokens of tools + system (the shared prefix)."""
    return sum(tokens(b) for b in [*body["tools"], *body["system"]])


def breakpoints(body: dict[str, Any]) -> list[str]:
    """Where ``cache_control`` sits: ``tools.N``, ``system.N``, ``messages.N.M``."""
    spots = [f"tools.{i}" for i, t in enumerate(body.get("tools", [])) if "cache_control" in t]
    spots += [f"system.{i}" for i, b in enumerate(body.get("system", [])) if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        spots += [
            f"messages.{i}.{j}" for j, b in enumerate(message["content"]) if "cache_control" in b
        ]
    return spots


def test_two_tasks_share_the_cached_tools_and_system_prefix(fake: AnthropicFake) -> None:
    fake.script(text("a"), text("b"))
    first = ask(model(fake, task="t1"), conversation("one"))
    second = ask(model(fake, task="t2"), conversation("two"))
    body_one, body_two = fake.bodies
    shared = prefix_tokens(body_one)
    assert shared > 1024 and prefix_tokens(body_two) == shared

    # The first task writes everything up to its last breakpoint (its own user message).
    total_one = shared + tokens(body_one["messages"][0]["content"][0])
    assert first.usage.model_dump(exclude={"output_tokens"}) == {
        "input_tokens": total_one,
        "cached_input_tokens": 0,
        "cache_write_input_tokens": total_one,
        "batched_requests": 0,
    }
    # The second task, another conversation, reads tools + system and writes only its message.
    own = tokens(body_two["messages"][0]["content"][0])
    assert second.usage.model_dump(exclude={"output_tokens"}) == {
        "input_tokens": shared + own,
        "cached_input_tokens": shared,
        "cache_write_input_tokens": own,
        "batched_requests": 0,
    }
    # What the wire said, in the API's own terms: input_tokens is only the uncached rest.
    call_two = fake.cache.calls[1]
    assert (call_two.input_tokens, call_two.cache_read_input_tokens) == (0, shared)

    # Priced at three rates: reads at 0.1x, writes at 1.25x, the rest at 1x.
    spec = model(fake).spec
    usage_in = second.usage.model_copy(update={"output_tokens": 0})
    assert cost_usd(spec, usage_in) == pytest.approx((shared * 0.3 + own * 3.75) / 1e6)


def test_breakpoints_sit_on_the_last_tool_the_system_prompt_and_the_last_turn(
    fake: AnthropicFake,
) -> None:
    fake.script(tool_calls(call("write_file", id="toolu_1", path="a")), text("done"))
    chat = model(fake)
    first = ask(chat, conversation("one"))
    history = [
        *conversation("one"),
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "wrote a", tool_call_id="toolu_1", tool_name="write_file"),
    ]
    second = ask(chat, history)
    assert breakpoints(fake.bodies[0]) == ["tools.1", "system.0", "messages.0.0"]
    # The rolling breakpoint moved to the tool result; the turn before it is read back.
    assert breakpoints(fake.bodies[1]) == ["tools.1", "system.0", "messages.2.0"]
    assert second.usage.cached_input_tokens == first.usage.input_tokens
    assert second.usage.cache_write_input_tokens > 0
    assert second.usage.input_tokens == (
        second.usage.cached_input_tokens + second.usage.cache_write_input_tokens
    )


def test_a_shared_context_message_after_the_system_prompt_carries_the_prefix_breakpoint() -> None:
    messages = [
        Message("system", SYSTEM),
        Message("user", "Shared context of the run.", cache_prefix=True),
        Message("assistant", "Understood."),
        Message("user", "Now do task one."),
    ]
    body = build_request(SPEC, messages, TOOLS, ModelSettings())
    # Roles merge: the shared context is block 0 of message 0, the task's turn is message 2.
    assert breakpoints(body) == ["tools.1", "messages.0.0", "messages.2.0"]
    assert "cache_control" not in body["system"][0]


def test_never_more_than_four_breakpoints_are_sent() -> None:
    many = [Message("system", SYSTEM, cache_prefix=True)]
    for number in range(12):
        many.append(Message("user", f"context {number}", cache_prefix=True))
        many.append(
            Message(
                "assistant",
                "",
                tool_calls=(ToolCall(f"toolu_{number}", "write_file", {"path": "x"}),),
                cache_prefix=True,
            )
        )
        many.append(Message("tool", "ok", tool_call_id=f"toolu_{number}", cache_prefix=True))
    for tools in ([], TOOLS):
        body = build_request(SPEC, many, tools, ModelSettings())
        assert 1 <= len(breakpoints(body)) <= MAX_BREAKPOINTS
        assert validate_request(body) is None


def test_the_fake_refuses_a_fifth_breakpoint_like_the_api(fake: AnthropicFake) -> None:
    mark = {"type": "ephemeral"}
    body: dict[str, Any] = {
        "model": SONNET,
        "max_tokens": 10,
        "system": [{"type": "text", "text": f"part {i}", "cache_control": mark} for i in range(5)],
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert "A maximum of 4 blocks with cache_control" in str(validate_request(body))
    client = anthropic.Anthropic(api_key=KEY, base_url=fake.url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**body)
    assert caught.value.status_code == 400
    assert "A maximum of 4 blocks with cache_control" in str(caught.value)
    fake.violations.clear()  # refused on purpose


def test_a_prefix_under_the_models_minimum_is_not_cached_and_not_an_error(
    fake: AnthropicFake,
) -> None:
    fake.script(text("a"), text("b"))
    haiku = model(fake, HAIKU)
    for answer in (ask(haiku, conversation("one")), ask(haiku, conversation("one"))):
        assert answer.usage.cached_input_tokens == 0
        assert answer.usage.cache_write_input_tokens == 0
        assert answer.usage.input_tokens == fake.cache.calls[-1].input_tokens > 1024


def test_cache_entries_expire_after_five_minutes() -> None:
    now = [0.0]
    with AnthropicFake(clock=lambda: now[0]) as server:
        body = build_request(server.spec(model=SONNET), conversation("one"), TOOLS, ModelSettings())
        written = server.cache.account(body)
        assert written["cache_creation_input_tokens"] > 0
        now[0] = 200.0
        assert server.cache.account(body)["cache_read_input_tokens"] > 0  # and refreshed
        now[0] = 499.0
        assert server.cache.account(body)["cache_read_input_tokens"] > 0
        now[0] = 900.0
        again = server.cache.account(body)
    assert again["cache_read_input_tokens"] == 0
    assert again["cache_creation_input_tokens"] == written["cache_creation_input_tokens"]


def test_usage_maps_reads_and_writes_so_pricing_bills_each_at_its_rate() -> None:
    wire = anthropic.types.Usage(
        input_tokens=50,
        cache_creation_input_tokens=2048,
        cache_read_input_tokens=4000,
        output_tokens=300,
    )
    usage = usage_of(wire)
    assert usage == Usage(
        input_tokens=6098,
        output_tokens=300,
        cached_input_tokens=4000,
        cache_write_input_tokens=2048,
    )
    assert cost_usd(SPEC, usage) == pytest.approx(
        (50 * 3.0 + 2048 * 3.75 + 4000 * 0.3 + 300 * 15.0) / 1e6
    )


def test_a_one_shot_call_without_tools_gets_no_rolling_breakpoint() -> None:
    """The planner's JSON answer is not continued: writing its prompt would cost 1.25x."""
    body = build_request(SPEC, conversation("plan"), [], ModelSettings(json_output=True))
    assert breakpoints(body) == ["system.0"]
