"""OpenAI-compatible servers: DeepSeek's reasoning_content round trip, and no OpenAI account
headers (OPENAI_ORG_ID / OPENAI_PROJECT_ID) sent anywhere but to OpenAI."""

from __future__ import annotations

import asyncio

import pytest

import orchestrator.providers as providers
from orchestrator.providers import build_model
from orchestrator.providers.base import Message, ModelError, ModelResponse, ModelSettings, ToolSpec
from orchestrator.providers.openai import OpenAICompatibleModel, OpenAIModel
from tests.fakes.openai_fake import FAKE_KEY_ENV, OpenAIFake, Step, call, text, tool_calls

TASK = Message(role="user", text="List the files, then finish.")
LIST = ToolSpec(
    name="list_files",
    description="List files.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}},
)
THOUGHT = "The user wants a listing; call list_files on '.' first."


@pytest.fixture(autouse=True)
def allow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to model requests (only the loopback fake answers) and set the fake's key."""
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(FAKE_KEY_ENV, "sk-test")


def deepseek(fake: OpenAIFake) -> OpenAICompatibleModel:
    spec = fake.spec("openai_compatible", model="deepseek-flash")
    return OpenAICompatibleModel("deepseek", spec, "t1")


def ask(model: OpenAIModel | OpenAICompatibleModel, messages: list[Message]) -> ModelResponse:
    return asyncio.run(model.request(messages, [LIST], ModelSettings()))


def thinking_steps() -> list[Step]:
    listing = call("list_files", {"path": "."})
    return [tool_calls(listing, extra_message={"reasoning_content": THOUGHT}), text("done")]


def continued(first: ModelResponse, *, keep: bool) -> list[Message]:
    turn = Message(
        role="assistant",
        tool_calls=first.tool_calls,
        provider_data=first.provider_data if keep else None,
    )
    result = Message(role="tool", text="a.txt", tool_call_id=first.tool_calls[0].id)
    return [TASK, turn, result]


def test_deepseek_reasoning_content_is_kept_and_sent_back() -> None:
    with OpenAIFake(thinking_steps(), compatible=True) as fake:
        model = deepseek(fake)
        first = ask(model, [TASK])
        second = ask(model, continued(first, keep=True))
        sent = fake.bodies()[1]["messages"][1]
    assert first.provider_data == {"reasoning_content": THOUGHT}
    assert second.text == "done"
    assert sent["reasoning_content"] == THOUGHT
    assert sent["tool_calls"][0]["id"] == first.tool_calls[0].id


def test_deepseek_refuses_a_tool_turn_without_its_reasoning_content() -> None:
    with OpenAIFake(thinking_steps(), compatible=True) as fake:
        model = deepseek(fake)
        first = ask(model, [TASK])
        with pytest.raises(ModelError) as info:
            ask(model, continued(first, keep=False))
    assert info.value.retryable is False
    assert "reasoning_content" in str(info.value) and "HTTP 400" in str(info.value)


def test_account_headers_go_to_openai_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-canary")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_canary")
    with (
        OpenAIFake([text("hi")]) as openai_fake,
        OpenAIFake([text("hi")], compatible=True) as other,
    ):
        for agent, spec in (
            ("codex", openai_fake.spec(model="gpt-6.2-sol")),
            ("deepseek", other.spec("openai_compatible", model="deepseek-flash")),
        ):
            asyncio.run(build_model(agent, spec, "t1").request([TASK], [], ModelSettings()))
        to_openai = openai_fake.requests[0].headers
        to_other = other.requests[0].headers
    assert to_openai["openai-organization"] == "org-canary"
    assert to_openai["openai-project"] == "proj_canary"
    assert "openai-organization" not in to_other and "openai-project" not in to_other
    assert not any("canary" in value for value in to_other.values())
