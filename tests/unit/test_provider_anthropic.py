"""The Anthropic provider through the real ``anthropic`` SDK against a loopback Messages API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.agent.loop import run_agent
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import Limits, Usage
from orchestrator.pricing import cost_usd
from orchestrator.providers.anthropic import JSON_INSTRUCTION, AnthropicModel
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
)
from tests.conftest import git
from tests.fakes.anthropic_fake import (
    AnthropicFake,
    Step,
    call,
    error,
    hang,
    non_json,
    raw_call,
    spend_limit,
    text,
    tool_calls,
    truncated,
    validate_request,
    write_then_finish,
)

ENV = "FAKE_ANTHROPIC_KEY"
KEY = "sk-ant-canary-7f3c9e1d5b2a4c6e8f0a"

TOOLS = [
    ToolSpec(
        "write_file",
        "Write a file.",
        {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(
        "finish",
        "Finish the task.",
        {"type": "object", "properties": {"summary": {"type": "string"}}, "required": []},
    ),
]
START = [Message("system", "You are careful."), Message("user", "Write hello.txt.")]


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)


@pytest.fixture
def fake(allowed: None) -> Iterator[AnthropicFake]:
    with AnthropicFake(expected_key=KEY) as server:
        yield server
    assert server.violations == [], "the provider sent a request the real API would reject"


def model_for(fake: AnthropicFake, **overrides: Any) -> AnthropicModel:
    return AnthropicModel("claude", fake.spec(key_env=ENV, **overrides), "t1")


def ask(
    model: AnthropicModel,
    messages: list[Message] | None = None,
    tools: list[ToolSpec] | None = None,
    settings: ModelSettings | None = None,
) -> ModelResponse:
    return asyncio.run(
        model.request(
            messages if messages is not None else START,
            TOOLS if tools is None else tools,
            settings or ModelSettings(max_tokens=321),
        )
    )


def fail(model: AnthropicModel, messages: list[Message] | None = None) -> ModelError:
    with pytest.raises(ModelError) as caught:
        ask(model, messages)
    assert KEY not in str(caught.value)
    return caught.value


def test_text_answer_and_what_the_sdk_sent(fake: AnthropicFake) -> None:
    fake.script(text("Hello there.", usage={"input_tokens": 12, "output_tokens": 3}))
    response = ask(model_for(fake))
    assert response.text == "Hello there."
    assert response.tool_calls == ()
    assert response.stop_reason == "end_turn"
    assert response.usage == Usage(input_tokens=12, output_tokens=3)

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers.get("authorization") == f"Bearer {KEY}" or (
        request.headers.get("x-api-key") == KEY
    )
    assert "anthropic-version" in request.headers
    body = request.json()
    assert body["model"] == "claude-fake-1"
    assert body["max_tokens"] == 321
    assert body["system"] == [
        {"type": "text", "text": "You are careful.", "cache_control": {"type": "ephemeral"}}
    ]
    # The rolling cache breakpoint: the next turn reads this conversation from the cache.
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "Write hello.txt.",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        }
    ]
    # Tools in order, the JSON Schema untouched, one cache breakpoint on the LAST tool only.
    assert [t["name"] for t in body["tools"]] == ["write_file", "finish"]
    assert body["tools"][0] == {
        "name": "write_file",
        "description": "Write a file.",
        "input_schema": TOOLS[0].parameters,
    }
    assert body["tools"][1]["cache_control"] == {"type": "ephemeral"}
    assert "stream" not in body


def test_single_and_parallel_tool_calls_and_the_merged_tool_results(fake: AnthropicFake) -> None:
    fake.script(
        tool_calls(call("write_file", id="toolu_a", path="a.txt", content="A")),
        tool_calls(
            call("write_file", id="toolu_b", path="b.txt", content="B"),
            call("write_file", id="toolu_c", path="c.txt", content="C"),
            text="Writing two files.",
        ),
        text("done"),
    )
    model = model_for(fake)
    first = ask(model)
    assert first.tool_calls == (
        ToolCall("toolu_a", "write_file", {"path": "a.txt", "content": "A"}),
    )
    assert first.stop_reason == "tool_use"
    history = [
        *START,
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "wrote a.txt", tool_call_id="toolu_a", tool_name="write_file"),
    ]
    second = ask(model, history)
    assert second.text == "Writing two files."
    assert [c.id for c in second.tool_calls] == ["toolu_b", "toolu_c"]
    history += [
        Message("assistant", second.text, tool_calls=second.tool_calls),
        Message("tool", "wrote b.txt", tool_call_id="toolu_b", tool_name="write_file"),
        Message(
            "tool",
            "error: disk full",
            tool_call_id="toolu_c",
            tool_name="write_file",
            is_error=True,
        ),
        Message("user", "Please continue."),  # the loop's nudge lands in the same user turn
    ]
    assert ask(model, history).text == "done"

    sent = fake.bodies[2]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[1]["content"] == [
        {
            "type": "tool_use",
            "id": "toolu_a",
            "name": "write_file",
            "input": {"path": "a.txt", "content": "A"},
        }
    ]
    assert sent[3]["content"][0] == {"type": "text", "text": "Writing two files."}
    assert [b["id"] for b in sent[3]["content"][1:]] == ["toolu_b", "toolu_c"]
    # Both results in ONE user message, tool results first, then the nudge text.
    assert sent[4]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_b",
            "content": "wrote b.txt",
            "is_error": False,
        },
        {
            "type": "tool_result",
            "tool_use_id": "toolu_c",
            "content": "error: disk full",
            "is_error": True,
        },
        {"type": "text", "text": "Please continue.", "cache_control": {"type": "ephemeral"}},
    ]


def test_json_output_instructs_through_the_system_prompt(fake: AnthropicFake) -> None:
    fake.script(text('{"tasks": []}'))
    ask(model_for(fake), tools=[], settings=ModelSettings(max_tokens=50, json_output=True))
    body = fake.bodies[0]
    assert body["system"][0]["text"] == f"You are careful.\n\n{JSON_INSTRUCTION}"
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "tools" not in body


def test_usage_counts_cache_writes_and_reads_as_input(fake: AnthropicFake) -> None:
    fake.script(
        text(
            "one",
            usage={
                "input_tokens": 100,
                "output_tokens": 50,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 2000,
            },
        ),
        text("two"),  # simulated usage: the cached prefix was written by the first call
        text("three"),
    )
    model = model_for(fake)
    assert ask(model).usage == Usage(
        input_tokens=3100,
        output_tokens=50,
        cached_input_tokens=2000,
        cache_write_input_tokens=1000,
    )
    second = ask(model).usage
    third = ask(model).usage
    assert second.cached_input_tokens == 0  # the fake's cache write
    assert third.cached_input_tokens > 0  # ... read back by the next call
    assert third.input_tokens == second.input_tokens
    spec = fake.spec(
        input_per_mtok=3.0,
        cached_input_per_mtok=0.3,
        cache_write_per_mtok=3.75,
        output_per_mtok=15.0,
    )
    usage = Usage(
        input_tokens=3100, output_tokens=50, cached_input_tokens=2000, cache_write_input_tokens=1000
    )
    assert cost_usd(spec, usage) == pytest.approx(
        (100 * 3.0 + 1000 * 3.75 + 2000 * 0.3 + 50 * 15.0) / 1e6
    )


@pytest.mark.parametrize(
    ("step", "retryable", "retry_after", "fragment"),
    [
        (error(429, headers={"retry-after": "7"}), True, 7.0, "HTTP 429 rate_limit_error"),
        (error(529, message="Overloaded"), True, None, "HTTP 529 overloaded_error: Overloaded"),
        (error(500), True, None, "HTTP 500 api_error"),
        (error(503, "api_error"), True, None, "HTTP 503"),
        (error(400, message="messages: bad"), False, None, "HTTP 400 invalid_request_error"),
        (error(401, message="invalid x-api-key"), False, None, "HTTP 401 authentication_error"),
        (error(403), False, None, "HTTP 403 permission_error"),
        (error(404, message="model: claude-nope"), False, None, "not_found_error"),
        (spend_limit(), False, None, "enforced_spend_limit_reached"),
        (
            error(400, message="Your credit balance is too low to access the Anthropic API."),
            False,
            None,
            "credit balance",
        ),
        (
            error(403, message="This organization has reached its spend limit."),
            False,
            None,
            "spend limit",
        ),
        (error(429, headers={"x-should-retry": "false"}), False, None, "HTTP 429"),
    ],
)
def test_http_errors_are_classified(
    fake: AnthropicFake, step: Step, retryable: bool, retry_after: float | None, fragment: str
) -> None:
    fake.script(step)
    exc = fail(model_for(fake))
    assert exc.retryable is retryable
    assert exc.retry_after == retry_after
    assert fragment in str(exc)
    assert "agent claude" in str(exc)
    assert len(fake.requests) == 1  # the SDK never retries on its own


def test_rate_limit_without_retry_after_uses_the_ratelimit_reset_headers(
    fake: AnthropicFake,
) -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    fake.script(
        error(
            429,
            headers={
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": reset,
                "anthropic-ratelimit-requests-remaining": "10",
                "anthropic-ratelimit-requests-reset": later,
            },
        )
    )
    exc = fail(model_for(fake))
    assert exc.retryable
    assert exc.retry_after is not None
    assert 20 < exc.retry_after <= 30


def test_hung_response_is_a_quick_retryable_timeout(fake: AnthropicFake) -> None:
    fake.script(hang(3.0))
    started = time.monotonic()
    exc = fail(model_for(fake, timeout_s=0.5))
    assert time.monotonic() - started < 2.5
    assert exc.retryable
    assert "no answer within 0.5s" in str(exc)


@pytest.mark.parametrize(
    "step",
    [
        truncated(),
        truncated(tool_calls(call("finish", summary="x")), at=60),
        non_json(),
        Step(body="<html>proxy error</html>", headers={"Content-Type": "text/html"}),
        Step(body={"unexpected": "document"}),
    ],
)
def test_broken_bodies_are_retryable(fake: AnthropicFake, step: Step) -> None:
    fake.script(step)
    exc = fail(model_for(fake))
    assert exc.retryable


def test_connection_refused_is_retryable(allowed: None) -> None:
    with AnthropicFake() as gone:
        spec = gone.spec(key_env=ENV)
    exc = fail(AnthropicModel("claude", spec, "t1"))
    assert exc.retryable
    assert "connection error" in str(exc)


def test_a_host_name_that_does_not_resolve_is_not_retried(allowed: None) -> None:
    # .invalid never resolves (RFC 6761): waiting will not fix it, the next agent should take over.
    with AnthropicFake() as gone:
        spec = gone.spec(key_env=ENV, base_url="http://api.orchestrator-test.invalid")
    exc = fail(AnthropicModel("claude", spec, "t1"))
    assert not exc.retryable
    assert "host name does not resolve" in str(exc)


def test_malformed_arguments_and_unknown_tools_reach_the_loop(fake: AnthropicFake) -> None:
    fake.script(
        tool_calls(
            raw_call("write_file", '{"path": "a.txt", "content": ', id="toolu_bad"),
            raw_call("write_file", "[1, 2]", id="toolu_list"),
            call("no_such_tool", id="toolu_unknown", x=1),
        )
    )
    response = ask(model_for(fake))
    bad, listed, unknown = response.tool_calls
    assert (bad.id, bad.arguments) == ("toolu_bad", {})
    assert bad.arguments_error is not None
    assert "invalid JSON" in bad.arguments_error
    assert listed.arguments == {}
    assert listed.arguments_error == "expected a JSON object, got list"
    assert unknown == ToolCall("toolu_unknown", "no_such_tool", {"x": 1})


def test_missing_key_fails_before_any_request(
    fake: AnthropicFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV)
    fake.script(text("never"))
    exc = fail(model_for(fake))
    assert not exc.retryable
    assert ENV in str(exc)
    assert fake.requests == []


def test_no_api_key_reference_is_a_clear_error(fake: AnthropicFake) -> None:
    exc = fail(AnthropicModel("claude", fake.spec(api_key=None), "t1"))
    assert not exc.retryable
    assert "api_key" in str(exc)


def test_disallowed_model_requests_make_no_request(
    fake: AnthropicFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", False)
    fake.script(text("never"))
    exc = fail(model_for(fake))
    assert not exc.retryable
    assert "ALLOW_MODEL_REQUESTS" in str(exc)
    assert fake.requests == []


def test_the_key_never_appears_in_errors_even_when_echoed(fake: AnthropicFake) -> None:
    fake.script(
        error(401, message=f"invalid x-api-key: {KEY}"),
        error(500, message=f"upstream said {KEY}"),
        Step(body=f"<html>bad key {KEY}</html>", headers={"Content-Type": "text/html"}),
    )
    model = model_for(fake)
    for _ in range(3):
        exc = fail(model)
        assert "***" in str(exc) or KEY[:12] not in str(exc)
    wrong = AnthropicFake(expected_key="sk-ant-other-key-000000000")
    with wrong:
        exc = fail(AnthropicModel("claude", wrong.spec(key_env=ENV), "t1"))
    assert "HTTP 401 authentication_error" in str(exc)
    assert not exc.retryable


def test_registry_builds_the_anthropic_model(fake: AnthropicFake) -> None:
    built = providers.build_model("claude", fake.spec(key_env=ENV), "planner")
    model = getattr(built, "provider", built)  # build_model may wrap it (retry, cache layers)
    assert isinstance(model, AnthropicModel)
    assert (model.agent, model.purpose) == ("claude", "planner")


def test_fake_rejects_what_the_real_api_rejects() -> None:
    good: dict[str, Any] = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert validate_request(good) is None
    tool_use = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "max_tokens": None}, "max_tokens"),
        ({**good, "messages": [{"role": "assistant", "content": "x"}]}, "alternate"),
        (
            {**good, "messages": [{"role": "user", "content": [{"type": "text", "text": " "}]}]},
            "non-whitespace",
        ),
        (
            {
                **good,
                "messages": [
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "content": [tool_use]},
                    {"role": "user", "content": "no result"},
                ],
            },
            "without tool_result",
        ),
        (
            {
                **good,
                "messages": [
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "content": [tool_use]},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "first"},
                            {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                        ],
                    },
                ],
            },
            "must come first",
        ),
        ({**good, "tools": [{"name": "bad name", "input_schema": {"type": "object"}}]}, "pattern"),
    ]
    for body, fragment in cases:
        problem = validate_request(body)
        assert problem is not None and fragment in problem, (fragment, problem)


def test_run_agent_completes_a_task_against_the_fake(fake: AnthropicFake, repo: Path) -> None:
    usage = {
        "input_tokens": 400,
        "output_tokens": 60,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1500,
    }
    fake.script(
        write_then_finish("NOTES.md", "notes from claude\n", "wrote the notes", usage=usage)
    )
    spec = fake.spec(
        key_env=ENV, input_per_mtok=3.0, cached_input_per_mtok=0.3, output_per_mtok=15.0
    )
    model = AnthropicModel("claude", spec, "t1")
    workspace = Workspace.open(repo, git(repo, "rev-parse", "HEAD"), Limits())
    toolbox = ToolBox(workspace, task_id="t1")
    outcome = asyncio.run(
        run_agent(
            model,
            toolbox,
            system="You are a careful engineer.",
            prompt="Write NOTES.md.",
            limits=Limits(max_turns=10),
            transcript=Transcript(),
        )
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary == "wrote the notes"
    assert (outcome.turns, outcome.tool_calls) == (3, 3)
    assert workspace.read_text("NOTES.md") == "notes from claude\n"
    assert outcome.usage == Usage(
        input_tokens=3 * 1900, output_tokens=180, cached_input_tokens=4500
    )
    expected = 3 * (400 * 3.0 + 1500 * 0.3 + 60 * 15.0) / 1e6
    assert outcome.cost_usd == pytest.approx(expected)
    # The last request carried the whole conversation in valid alternating form.
    last = fake.bodies[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "user"]
    assert last[-1]["content"][0]["type"] == "tool_result"
    assert fake.remaining == 0
