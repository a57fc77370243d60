"""Gemini wire features through the real SDK against the loopback fake: thought signatures,
inline images and implicit-cache accounting."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.agent.loop import run_agent
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import Limits
from orchestrator.pricing import cost_usd
from orchestrator.providers.base import (
    Image,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.gemini import GeminiModel
from orchestrator.providers.gemini_request import decode_bytes
from orchestrator.providers.gemini_response import usage_from_metadata
from tests.conftest import git
from tests.fakes.gemini_fake import GeminiFake, Step, text, validate_request, write_then_finish

ENV = "FAKE_GEMINI_KEY"
KEY = "AIzaSyWire-0a1b2c3d4e5f60718"
TOOLS = [
    ToolSpec(
        "write_file",
        "Write a file.",
        {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    ),
    ToolSpec("finish", "Finish.", {"type": "object", "properties": {}}),
]
START = [Message("system", "You are careful."), Message("user", "Write a.txt.")]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # bytes that need '+' and '/' in base64


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)


@pytest.fixture
def gemini3(allowed: None) -> Iterator[GeminiFake]:
    """A fake that signs its turns and enforces the signatures, like a Gemini 3 model."""
    with GeminiFake(expected_key=KEY, require_thought_signatures=True) as server:
        yield server


def model_for(fake: GeminiFake, **overrides: Any) -> GeminiModel:
    return GeminiModel("gemini", fake.spec(key_env=ENV, **overrides), "t1")


def ask(
    model: GeminiModel, messages: list[Message], tools: list[ToolSpec] = TOOLS
) -> ModelResponse:
    return asyncio.run(model.request(messages, tools, ModelSettings(max_tokens=256)))


def signed_turn(fake: GeminiFake) -> tuple[Step, list[dict[str, Any]]]:
    """A Gemini 3 answer: a signed text part, a signed call and an unsigned parallel call."""
    parts: list[dict[str, Any]] = [
        {"text": "I will write it.", "thoughtSignature": fake.signatures.issue()},
        {
            "functionCall": {"name": "write_file", "args": {"path": "a.txt", "content": "a"}},
            "thoughtSignature": fake.signatures.issue(),
        },
        {"functionCall": {"name": "finish", "args": {}}},
    ]
    body = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 20},
    }
    return Step(body=body), parts


def history_after(first: ModelResponse, *, keep_provider_data: bool = True) -> list[Message]:
    assistant = Message(
        "assistant",
        first.text,
        tool_calls=first.tool_calls,
        provider_data=first.provider_data if keep_provider_data else None,
    )
    results = [Message("tool", "ok", tool_call_id=c.id, tool_name=c.name) for c in first.tool_calls]
    return [*START, assistant, *results]


# ----------------------------------------------------------------------- thought signatures


def test_signed_parts_are_kept_and_sent_back_unchanged(gemini3: GeminiFake) -> None:
    step, parts = signed_turn(gemini3)
    gemini3.script(step, text("done"))
    model = model_for(gemini3)
    first = ask(model, START)
    assert first.text == "I will write it."
    assert [c.name for c in first.tool_calls] == ["write_file", "finish"]
    assert first.provider_data == {"gemini": {"model": "gemini-fake-1", "parts": parts}}
    # A new model instance: only provider_data (as the loop and the cache keep it) carries state.
    second = ask(model_for(gemini3), history_after(first))
    assert second.text == "done" and gemini3.violations == []
    sent = gemini3.bodies[1]["contents"][1]
    assert sent["role"] == "model"
    for mine, theirs in zip(sent["parts"], parts, strict=True):
        assert {k: v for k, v in mine.items() if k != "thoughtSignature"} == {
            k: v for k, v in theirs.items() if k != "thoughtSignature"
        }
        # The SDK re-encodes bytes fields with the URL-safe alphabet; the bytes are the same.
        assert decode_bytes(mine.get("thoughtSignature")) == decode_bytes(
            theirs.get("thoughtSignature")
        )


def test_a_missing_signature_is_refused_by_the_fake(gemini3: GeminiFake) -> None:
    step, _ = signed_turn(gemini3)
    gemini3.script(step, text("never"))
    first = ask(model_for(gemini3), START)
    with pytest.raises(ModelError) as caught:
        ask(model_for(gemini3), history_after(first, keep_provider_data=False))
    assert not caught.value.retryable
    assert "HTTP 400 INVALID_ARGUMENT" in str(caught.value)
    assert "thought_signature" in str(caught.value)
    assert len(gemini3.violations) == 1


def test_signatures_of_another_model_are_not_replayed(gemini3: GeminiFake) -> None:
    step, _ = signed_turn(gemini3)
    gemini3.script(step, text("done"))
    first = ask(model_for(gemini3), START)
    assert first.provider_data is not None
    other = {"gemini": {**first.provider_data["gemini"], "model": "gemini-other"}}
    assistant = Message("assistant", first.text, tool_calls=first.tool_calls, provider_data=other)
    results = [Message("tool", "ok", tool_call_id=c.id, tool_name=c.name) for c in first.tool_calls]
    gemini3.require_thought_signatures = False  # rebuilt turn: no signature to send
    ask(model_for(gemini3), [*START, assistant, *results])
    sent = gemini3.bodies[1]["contents"][1]["parts"]
    assert all("thoughtSignature" not in part for part in sent)


def test_the_agent_loop_carries_signatures_across_turns(gemini3: GeminiFake, repo: Path) -> None:
    gemini3.script(write_then_finish("NOTES.md", "signed\n", "wrote notes"))
    workspace = Workspace.open(repo, git(repo, "rev-parse", "HEAD"), Limits())
    outcome = asyncio.run(
        run_agent(
            model_for(gemini3),
            ToolBox(workspace, task_id="t1"),
            system="You are careful.",
            prompt="Write NOTES.md.",
            limits=Limits(max_turns=10),
            transcript=Transcript(),
        )
    )
    assert outcome.status == "succeeded", outcome.error
    assert workspace.read_text("NOTES.md") == "signed\n"
    assert gemini3.violations == [] and gemini3.remaining == 0
    model_turns = [c for c in gemini3.bodies[-1]["contents"] if c["role"] == "model"]
    assert all("thoughtSignature" in c["parts"][-1] for c in model_turns)


# ----------------------------------------------------------------------------- images


def test_images_go_as_inline_data_parts(allowed: None) -> None:
    with GeminiFake(expected_key=KEY) as fake:
        fake.script(text("a cat"), text("no image"))
        images = (Image("image/png", PNG, "shot.png"), Image("image/gif", b"GIF89a", "a.gif"))
        messages = [Message("system", "Look."), Message("user", "What is this?", images=images)]
        assert ask(model_for(fake, vision=True), messages, []).text == "a cat"
        ask(model_for(fake, vision=False), messages, [])
        assert fake.violations == []
    text_part, image_part = fake.bodies[0]["contents"][0]["parts"]
    assert text_part == {
        "text": 'What is this?\n[image omitted: "a.gif" (image/gif is not accepted)]'
    }
    [blob] = image_part.values()
    assert list(image_part) == ["inlineData"] and set(blob) == {"mime_type", "data"}
    # The SDK names a Blob's fields as the proto does; proto3 JSON accepts either spelling.
    assert blob["mime_type"] == "image/png" and decode_bytes(blob["data"]) == PNG
    [blind] = fake.bodies[1]["contents"][0]["parts"]
    assert blind["text"].endswith('[image omitted: "shot.png"]\n[image omitted: "a.gif"]')


def test_the_fake_checks_inline_data() -> None:
    def body(blob: dict[str, Any]) -> dict[str, Any]:
        return {"contents": [{"role": "user", "parts": [{"text": "x"}, {"inlineData": blob}]}]}

    good = base64.b64encode(PNG).decode()
    assert validate_request(body({"mimeType": "image/png", "data": good})) is None
    assert validate_request(body({"mime_type": "image/webp", "data": good})) is None
    gif = validate_request(body({"mimeType": "image/gif", "data": good}))
    assert gif is not None and "Unsupported MIME type" in gif
    broken = validate_request(body({"mimeType": "image/png", "data": "not base64!"}))
    assert broken is not None and "Base64 decoding failed" in broken


# ----------------------------------------------------------------------- implicit caching


def test_implicit_cache_hits_are_cached_input_tokens(allowed: None) -> None:
    system = "Project rules: " + "keep every change small and tested. " * 600  # ~5.4k tokens
    with GeminiFake(expected_key=KEY, cache_min_tokens=1024) as fake:
        fake.script(text("first"), text("second"))
        spec_prices = {"input_per_mtok": 0.75, "cached_input_per_mtok": 0.075}
        model = model_for(fake, output_per_mtok=3.75, **spec_prices)
        first = ask(model, [Message("system", system), Message("user", "Task one.")])
        second = ask(model, [Message("system", system), Message("user", "Task two, longer.")])
        lookups = fake.cache.lookups
    assert first.usage.cached_input_tokens == 0
    cached = lookups[1].cached_tokens
    assert cached >= 1024 and second.usage.cached_input_tokens == cached
    # promptTokenCount includes the cached tokens: input_tokens is the whole prompt.
    assert second.usage.input_tokens == lookups[1].prompt_tokens > cached
    first_body, second_body = fake.bodies
    assert first_body["systemInstruction"] == second_body["systemInstruction"]
    assert first_body["tools"] == second_body["tools"]
    fresh = second.usage.input_tokens - cached
    expected = (fresh * 0.75 + cached * 0.075 + second.usage.output_tokens * 3.75) / 1e6
    assert cost_usd(model.spec, second.usage) == pytest.approx(expected)


def test_a_prefix_under_the_minimum_is_not_cached(allowed: None) -> None:
    with GeminiFake(expected_key=KEY, cache_min_tokens=4096) as fake:
        fake.script(text("a"), text("b"))
        model = model_for(fake)
        ask(model, START)
        again = ask(model, START)
    assert again.usage.cached_input_tokens == 0 and again.usage.input_tokens > 0


def test_usage_metadata_maps_so_cost_is_right() -> None:
    usage = usage_from_metadata(
        {
            "promptTokenCount": 10_000,
            "cachedContentTokenCount": 8_000,
            "toolUsePromptTokenCount": 500,
            "candidatesTokenCount": 300,
            "thoughtsTokenCount": 200,
            "totalTokenCount": 11_000,
        }
    )
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (
        10_500,
        8_000,
        500,
    )
    assert usage_from_metadata({"cachedContentTokenCount": 50, "promptTokenCount": 20}) == (
        usage_from_metadata({"promptTokenCount": 20, "cachedContentTokenCount": 20})
    )
    assert usage_from_metadata(None).input_tokens == 0
