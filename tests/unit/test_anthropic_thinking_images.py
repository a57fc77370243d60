"""Anthropic thinking blocks, ``tool_choice`` and image blocks, through the SDK and the fake."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec
from orchestrator.providers.anthropic import AnthropicModel, build_request
from orchestrator.providers.anthropic_request import THINKING_KEY
from orchestrator.providers.base import (
    Image,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from tests.fakes.anthropic_fake import (
    AnthropicFake,
    call,
    text,
    tool_calls,
    validate_request,
    with_thinking,
)

ENV = "FAKE_ANTHROPIC_THINKING_KEY"
KEY = "sk-ant-thinking-test-000000000000"
TOOLS = [
    ToolSpec(
        "write_file",
        "Write a file.",
        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    )
]
START = [Message("system", "Be careful.", cache_prefix=True), Message("user", "Write a.")]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
GIF = b"GIF89a" + b"\x01" * 16


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[AnthropicFake]:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)
    with AnthropicFake(expected_key=KEY) as server:
        yield server


def ask(model: AnthropicModel, messages: list[Message]) -> ModelResponse:
    return asyncio.run(model.request(messages, TOOLS, ModelSettings(max_tokens=200)))


def model_for(fake: AnthropicFake, **overrides: Any) -> AnthropicModel:
    return AnthropicModel("claude", fake.spec(key_env=ENV, **overrides), "t1")


def after(first: ModelResponse, provider_data: dict[str, Any] | None) -> list[Message]:
    """The conversation once the first turn's tool call has run."""
    return [
        *START,
        Message("assistant", first.text, tool_calls=first.tool_calls, provider_data=provider_data),
        Message("tool", "wrote a", tool_call_id="toolu_1", tool_name="write_file"),
    ]


def test_thinking_blocks_are_kept_and_sent_back_first_and_unchanged(fake: AnthropicFake) -> None:
    step = tool_calls(call("write_file", id="toolu_1", path="a"), text="Writing a.")
    fake.script(with_thinking(step, "The user wants a.", redacted=True), text("done"))
    chat = model_for(fake)
    first = ask(chat, START)
    assert first.provider_data is not None
    issued = [entry["block"] for entry in first.provider_data[THINKING_KEY]]
    assert [b["type"] for b in issued] == ["thinking", "redacted_thinking"]
    assert issued[0]["signature"] and issued[0]["thinking"] == "The user wants a."

    # provider_data survives JSON (the response cache and transcripts persist it).
    kept = json.loads(json.dumps(first.provider_data))
    assert ask(chat, after(first, kept)).text == "done"
    assert fake.violations == []
    assistant = fake.bodies[1]["messages"][1]["content"]
    assert assistant[:2] == issued
    assert [b["type"] for b in assistant[2:]] == ["text", "tool_use"]


def test_dropped_or_changed_thinking_blocks_are_refused(fake: AnthropicFake) -> None:
    step = with_thinking(tool_calls(call("write_file", id="toolu_1", path="a")), "Plan: write a.")
    fake.script(step, text("never"), text("never"))
    chat = model_for(fake)
    first = ask(chat, START)
    with pytest.raises(ModelError) as dropped:
        ask(chat, after(first, None))
    assert "thinking" in str(dropped.value) and not dropped.value.retryable

    assert first.provider_data is not None
    changed = json.loads(json.dumps(first.provider_data))
    changed[THINKING_KEY][0]["block"]["thinking"] = "Plan: write b."
    with pytest.raises(ModelError) as tampered:
        ask(chat, after(first, changed))
    assert "signature" in str(tampered.value)
    assert len(fake.violations) == 2
    fake.violations.clear()


def test_a_model_that_always_thinks_runs_a_tool_loop(fake: AnthropicFake) -> None:
    step = with_thinking(tool_calls(call("write_file", id="toolu_1", path="a")), "Go.")
    fake.script(step, text("done"))
    chat = model_for(fake, model="claude-opus-5-5")
    first = ask(chat, START)
    assert ask(chat, after(first, first.provider_data)).text == "done"
    assert fake.violations == []
    assert all("tool_choice" not in body for body in fake.bodies)


def test_forced_tool_choice_is_never_sent_and_is_refused_with_thinking(
    fake: AnthropicFake,
) -> None:
    body = build_request(fake.spec(), START, TOOLS, ModelSettings(json_output=True))
    assert "tool_choice" not in body
    client = anthropic.Anthropic(api_key=KEY, base_url=fake.url, max_retries=0)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    for choice in ({"type": "any"}, {"type": "tool", "name": "write_file"}):
        forced: dict[str, Any] = {**body, "thinking": thinking, "tool_choice": choice}
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(**forced)
        assert "tool_choice forces tool use" in str(caught.value)
    # Sonnet 5.5 and Opus 5.5 refuse forced tool use even without thinking.
    refused = {**body, "model": "claude-sonnet-5-5", "tool_choice": {"type": "any"}}
    assert "forced tool use" in str(validate_request(refused))
    fake.violations.clear()


def test_images_go_first_as_base64_blocks_for_vision_agents(fake: AnthropicFake) -> None:
    fake.script(text("I see a chart."))
    images = (Image("image/png", PNG, "chart.png"), Image("image/gif", GIF, "anim.gif"))
    messages = [START[0], Message("user", "What is in the screenshot?", images=images)]
    ask(model_for(fake, vision=True), messages)
    assert fake.violations == []
    content = fake.bodies[0]["messages"][0]["content"]
    assert content[0] == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(PNG).decode(),
        },
    }
    assert content[1]["source"]["media_type"] == "image/gif"
    assert content[2]["type"] == "text" and content[2]["text"] == "What is in the screenshot?"


def test_images_the_api_would_refuse_or_a_blind_agent_get_a_note() -> None:
    images = (Image("image/bmp", b"BM....", "old.bmp"), Image("image/png", PNG, "ok.png"))
    messages = [Message("user", "Look.", images=images)]
    seeing = AgentSpec(provider="anthropic", model="claude-sonnet-5", vision=True)
    content = build_request(seeing, messages, [], ModelSettings())["messages"][0]["content"]
    assert [b["type"] for b in content] == ["image", "text", "text"]
    assert '[image omitted: "old.bmp" (image/bmp is not' in content[2]["text"]
    blind = seeing.model_copy(update={"vision": False})
    content = build_request(blind, messages, [], ModelSettings())["messages"][0]["content"]
    assert [b["type"] for b in content] == ["text", "text"]
    assert content[1]["text"] == '[image omitted: "old.bmp"]\n[image omitted: "ok.png"]'


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({"type": "base64", "media_type": "image/bmp", "data": "Qk0="}, "media_type"),
        ({"type": "base64", "media_type": "image/png", "data": "not base64!"}, "not valid base64"),
        (
            {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(PNG).decode()},
            "does not match",
        ),
    ],
)
def test_the_fake_checks_image_blocks_like_the_api(source: dict[str, str], fragment: str) -> None:
    block = {"type": "image", "source": source}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [block]}]}
    assert fragment in str(validate_request(body))
