"""The OpenAI provider on the Responses API, through the real SDK against the loopback fake."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, Usage
from orchestrator.providers.base import (
    Image,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.openai import OpenAICompatibleModel, OpenAIModel, api_for
from tests.fakes.openai_fake import (
    FAKE_KEY_ENV,
    FakeUsage,
    OpenAIFake,
    Step,
    call,
    text,
    tool_calls,
)

SYSTEM = Message(role="system", text="You are a careful engineer.")
TASK = Message(role="user", text="Write a.txt, then finish.")
WRITE = ToolSpec(
    name="write_file",
    description="Write a file.",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


@pytest.fixture(autouse=True)
def allow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to model requests (only the loopback fake answers) and set the fake's key."""
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(FAKE_KEY_ENV, "sk-test")


def model_on(fake: OpenAIFake, model: str = "gpt-6.2-sol", **overrides: Any) -> OpenAIModel:
    return OpenAIModel("codex", fake.spec(model=model, **overrides), "t1")


def ask(
    model: OpenAIModel | OpenAICompatibleModel,
    messages: list[Message],
    tools: list[ToolSpec] | None = None,
    settings: ModelSettings | None = None,
) -> ModelResponse:
    return asyncio.run(model.request(messages, tools or [], settings or ModelSettings()))


def fail(model: OpenAIModel, messages: list[Message], tools: list[ToolSpec] | None = None) -> str:
    with pytest.raises(ModelError) as info:
        ask(model, messages, tools)
    assert info.value.retryable is False
    return str(info.value)


def after_call(first: ModelResponse, *, keep_reasoning: bool = True) -> list[Message]:
    """The conversation after the model's tool call and the tool's result."""
    turn = Message(
        role="assistant",
        text=first.text,
        tool_calls=first.tool_calls,
        provider_data=first.provider_data if keep_reasoning else None,
    )
    results = [
        Message(role="tool", text="wrote a.txt", tool_call_id=c.id, tool_name=c.name)
        for c in first.tool_calls
    ]
    return [SYSTEM, TASK, turn, *results]


# ------------------------------------------------------------------------ API choice


@pytest.mark.parametrize(
    ("provider", "model", "api", "expected"),
    [
        ("openai", "gpt-5-codex", None, "responses"),
        ("openai", "gpt-5.1-codex-max", None, "responses"),
        ("openai", "codex-mini-latest", None, "responses"),
        ("openai", "gpt-5.5", None, "responses"),
        ("openai", "gpt-5.6-terra", None, "responses"),
        ("openai", "gpt-6.2-sol", None, "responses"),
        ("openai", "gpt-6-luna", None, "responses"),
        ("openai", "o3", None, "responses"),
        ("openai", "o4-mini", None, "responses"),
        ("openai", "gpt-5-pro", None, "responses"),
        ("openai", "o1-preview", None, "chat"),
        ("openai", "gpt-5", None, "chat"),
        ("openai", "gpt-5.4-mini", None, "chat"),
        ("openai", "gpt-4.1", None, "chat"),
        ("openai", "gpt-4o", None, "chat"),
        ("openai", "gpt-test", None, "chat"),
        ("openai", "gpt-6.2-sol", "chat", "chat"),
        ("openai", "gpt-4.1", "responses", "responses"),
        ("openai_compatible", "gpt-6.2-sol", None, "chat"),
        ("openai_compatible", "deepseek-flash", None, "chat"),
        ("openai_compatible", "openai/gpt-5-codex", None, "chat"),
    ],
)
def test_api_is_chosen_by_spec_then_model_family(
    provider: str, model: str, api: str | None, expected: str
) -> None:
    spec = AgentSpec(provider=provider, model=model, api=api, base_url="http://127.0.0.1:9")
    assert api_for(spec) == expected


def test_default_models_reach_the_endpoint_the_fake_accepts_for_them() -> None:
    for name in ("gpt-5-codex", "gpt-6.2-sol", "gpt-4.1"):
        with OpenAIFake([tool_calls(call("write_file", {"path": "a", "content": "b"}))]) as fake:
            response = ask(model_on(fake, name), [SYSTEM, TASK], [WRITE])
        assert response.tool_calls[0].name == "write_file"


# ---------------------------------------------------------------- wire round trip


def test_tool_call_round_trip_replays_reasoning_statelessly() -> None:
    steps = [
        tool_calls(call("write_file", {"path": "a.txt", "content": "x"}), reasoning="plan: write"),
        text("done"),
    ]
    with OpenAIFake(steps) as fake:
        model = model_on(fake)
        first = ask(model, [SYSTEM, TASK], [WRITE])
        second = ask(model, after_call(first), [WRITE])
        bodies = fake.response_bodies()
    assert [c.arguments for c in first.tool_calls] == [{"path": "a.txt", "content": "x"}]
    assert first.stop_reason == "tool_calls" and second.text == "done"
    kept = (first.provider_data or {})["openai_output"]
    assert [item["type"] for item in kept] == ["reasoning"]
    assert kept[0]["encrypted_content"]  # asked for through include
    opening = bodies[0]
    assert opening["store"] is False
    assert opening["include"] == ["reasoning.encrypted_content"]
    assert opening["instructions"] == SYSTEM.text
    assert opening["max_output_tokens"] == 4096
    assert opening["tools"][0]["name"] == "write_file" and "function" not in opening["tools"][0]
    assert "previous_response_id" not in bodies[1]
    replay = bodies[1]["input"]
    assert [item["type"] for item in replay] == [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert replay[1] == kept[0]  # verbatim
    assert replay[2]["call_id"] == replay[3]["call_id"] == first.tool_calls[0].id
    assert json.loads(replay[2]["arguments"]) == {"path": "a.txt", "content": "x"}
    assert replay[3]["output"] == "wrote a.txt"


def test_dropping_the_reasoning_items_is_refused_as_by_the_real_api() -> None:
    steps = [tool_calls(call("write_file", {"path": "a", "content": "b"}), reasoning="r")]
    with OpenAIFake(steps) as fake:
        model = model_on(fake)
        first = ask(model, [SYSTEM, TASK], [WRITE])
        message = fail(model, after_call(first, keep_reasoning=False), [WRITE])
    assert "HTTP 400" in message and "required 'reasoning' item" in message


def test_a_tampered_reasoning_item_is_refused() -> None:
    steps = [tool_calls(call("write_file", {"path": "a", "content": "b"}), reasoning="r")]
    with OpenAIFake(steps) as fake:
        model = model_on(fake)
        first = ask(model, [SYSTEM, TASK], [WRITE])
        item = dict((first.provider_data or {})["openai_output"][0], encrypted_content="gAAAAx")
        changed = ModelResponse(
            tool_calls=first.tool_calls, provider_data={"openai_output": [item]}
        )
        message = fail(model, after_call(changed), [WRITE])
    assert "could not be verified" in message


def test_a_tool_result_without_its_call_is_refused() -> None:
    orphan = Message(role="tool", text="ok", tool_call_id="call_nowhere", tool_name="write_file")
    with OpenAIFake([text("never")]) as fake:
        message = fail(model_on(fake), [SYSTEM, TASK, orphan], [WRITE])
    assert "No tool call found for function call output with call_id call_nowhere" in message


def test_json_output_and_text_answer() -> None:
    with OpenAIFake([text('{"ok": true}')]) as fake:
        response = ask(
            model_on(fake), [TASK], settings=ModelSettings(max_tokens=77, json_output=True)
        )
        body = fake.response_bodies()[0]
    assert response.text == '{"ok": true}' and response.stop_reason == "stop"
    assert body["text"] == {"format": {"type": "json_object"}}
    assert body["max_output_tokens"] == 77
    assert "instructions" not in body


def test_usage_maps_cached_tokens_inside_input_tokens() -> None:
    usage = FakeUsage(prompt_tokens=1500, completion_tokens=80, cached_tokens=1152)
    with OpenAIFake([text("hi", usage=usage)]) as fake:
        response = ask(model_on(fake), [TASK])
    assert response.usage == Usage(input_tokens=1500, output_tokens=80, cached_input_tokens=1152)


def test_an_answer_cut_short_says_length() -> None:
    with OpenAIFake([text("partial", finish_reason="length")]) as fake:
        response = ask(model_on(fake), [TASK])
    assert (response.text, response.stop_reason) == ("partial", "length")


@pytest.mark.parametrize(("code", "retryable"), [("server_error", True), ("invalid_prompt", False)])
def test_a_failed_response_inside_a_200(code: str, retryable: bool) -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "status": "failed",
        "output": [],
        "error": {"code": code, "message": "it went wrong"},
    }
    step = Step(raw_body=json.dumps(body).encode())
    with OpenAIFake([step]) as fake, pytest.raises(ModelError) as info:
        ask(model_on(fake), [TASK])
    assert info.value.retryable is retryable and "it went wrong" in str(info.value)


# ---------------------------------------------------------------- endpoint mismatch


def test_fake_refuses_a_responses_only_model_on_chat_completions() -> None:
    with OpenAIFake([text("never")]) as fake:
        message = fail(model_on(fake, "gpt-5-codex", api="chat"), [TASK])
    assert "HTTP 404" in message and "only supported in v1/responses" in message


def test_fake_refuses_tools_with_reasoning_on_chat_for_gpt_6() -> None:
    with OpenAIFake([text("never")]) as fake:
        message = fail(model_on(fake, "gpt-6.2-sol", api="chat"), [TASK], [WRITE])
    assert "HTTP 400" in message and "Please use /v1/responses" in message


def test_fake_refuses_a_chat_only_model_on_responses() -> None:
    with OpenAIFake([text("never")], chat_only=("gpt-4.1",)) as fake:
        message = fail(model_on(fake, "gpt-4.1", api="responses"), [TASK])
    assert "model_not_found" in message and "not supported with the Responses API" in message


def test_a_compatible_server_has_no_responses_endpoint() -> None:
    with OpenAIFake([text("never")], compatible=True) as fake:
        spec = fake.spec("openai_compatible", model="deepseek-flash", api="responses")
        with pytest.raises(ModelError) as info:
            ask(OpenAICompatibleModel("deepseek", spec, "t1"), [TASK])
    assert "HTTP 404" in str(info.value)


# ------------------------------------------------------------------------- caching


def long_system() -> Message:
    rules = " ".join(f"Rule {n}: keep the diff small and explain why." for n in range(200))
    return Message(role="system", text=rules, cache_prefix=True)


def test_a_shared_prefix_is_cached_on_the_second_request_with_the_cache_key() -> None:
    system = long_system()
    settings = ModelSettings(cache_key="run-42")
    tasks = [Message(role="user", text=f"Task {n}: fix issue #{n}.") for n in (1, 2)]
    with OpenAIFake([text("a"), text("b")]) as fake:
        model = model_on(fake)
        first = ask(model, [system, tasks[0]], [WRITE], settings)
        second = ask(model, [system, tasks[1]], [WRITE], settings)
        bodies = fake.response_bodies()
    assert [b["prompt_cache_key"] for b in bodies] == ["run-42", "run-42"]
    assert bodies[0]["instructions"] == bodies[1]["instructions"]  # byte-identical prefix
    assert first.usage.cached_input_tokens == 0
    cached = second.usage.cached_input_tokens
    shared = len(system.text) // 4  # at least the instructions are a common prefix
    assert cached >= 1024 and cached % 128 == 0
    assert shared - 128 < cached < second.usage.input_tokens


def test_a_short_prompt_is_never_cached() -> None:
    with OpenAIFake([text("a"), text("b")]) as fake:
        model = model_on(fake)
        ask(model, [SYSTEM, TASK])
        again = ask(model, [SYSTEM, TASK])
    assert again.usage.cached_input_tokens == 0 and again.usage.input_tokens > 0


def test_chat_sends_the_cache_key_to_openai_but_not_to_compatible_servers() -> None:
    settings = ModelSettings(cache_key="run-42")
    with OpenAIFake([text("a"), text("b")]) as fake:
        ask(model_on(fake, "gpt-4.1"), [TASK], settings=settings)
        local = OpenAICompatibleModel("local", fake.spec("openai_compatible"), "t1")
        ask(local, [TASK], settings=settings)
        bodies = fake.bodies()
    assert bodies[0]["prompt_cache_key"] == "run-42"
    assert "prompt_cache_key" not in bodies[1]


# -------------------------------------------------------------------------- images


def screenshot(media_type: str = "image/png") -> Message:
    image = Image(media_type=media_type, data=PNG, name="shot.png")
    return Message(role="user", text="What is wrong here?", images=(image,))


def test_images_go_as_input_image_parts_on_responses() -> None:
    with OpenAIFake([text("a broken button")]) as fake:
        response = ask(model_on(fake, vision=True), [screenshot()])
        content = fake.response_bodies()[0]["input"][0]["content"]
    assert response.text == "a broken button"
    assert [part["type"] for part in content] == ["input_text", "input_image"]
    head, _, data = content[1]["image_url"].partition(",")
    assert head == "data:image/png;base64" and base64.b64decode(data) == PNG


def test_images_go_as_image_url_parts_on_chat() -> None:
    with OpenAIFake([text("a broken button")]) as fake:
        ask(model_on(fake, "gpt-4.1", vision=True), [screenshot("image/webp")])
        content = fake.bodies()[0]["messages"][0]["content"]
    assert [part["type"] for part in content] == ["text", "image_url"]
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/webp;base64,")
    assert base64.b64decode(url.partition(",")[2]) == PNG


@pytest.mark.parametrize("model", ["gpt-6.2-sol", "gpt-4.1"])
def test_fake_refuses_an_unsupported_image_type(model: str) -> None:
    with OpenAIFake([text("never")]) as fake:
        message = fail(model_on(fake, model), [screenshot("image/bmp")])
    assert "unsupported image" in message


def test_both_openai_apis_map_cache_reads_and_writes_alike() -> None:
    from orchestrator.providers.openai_chat import parse_chat
    from orchestrator.providers.openai_responses import parse_responses

    details = {"cached_tokens": 300, "cache_write_tokens": 200}
    chat = parse_chat(
        {
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 5,
                "prompt_tokens_details": details,
            },
        }
    )
    responses = parse_responses(
        {
            "status": "completed",
            "output": [
                {"type": "message", "content": [{"type": "output_text", "text": "hi"}]},
            ],
            "usage": {"input_tokens": 1000, "output_tokens": 5, "input_tokens_details": details},
        }
    )
    expected = Usage(
        input_tokens=1000, output_tokens=5, cached_input_tokens=300, cache_write_input_tokens=200
    )
    assert chat.usage == expected and responses.usage == expected
