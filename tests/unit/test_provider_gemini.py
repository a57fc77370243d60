"""The Gemini provider through the real ``google-genai`` SDK against a loopback Gemini API."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.agent.loop import run_agent
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import Limits, Usage
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
)
from orchestrator.providers.gemini import GENERATED_ID_PREFIX, GeminiModel, gemini_schema
from tests.conftest import git
from tests.fakes.gemini_fake import (
    GeminiFake,
    Step,
    blocked,
    call,
    error,
    finish_blocked,
    hang,
    malformed_function_call,
    non_json,
    rate_limited,
    raw_call,
    text,
    tool_calls,
    truncated,
    validate_request,
    write_then_finish,
)

ENV = "FAKE_GEMINI_KEY"
KEY = "AIzaSyCanary-4b8d0f2a6c1e3g5h7j9k"

TOOLS = [
    ToolSpec(
        "write_file",
        "Write a file.",
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Relative path."},
                "content": {"type": "string"},
                "line": {"type": "integer", "minimum": 1},
                "mode": {"type": ["string", "null"], "enum": ["w", "a"]},
            },
            "required": ["path", "content"],
            "additionalProperties": False,
        },
    ),
    ToolSpec("finish", "Finish the task.", {"type": "object", "properties": {}, "required": []}),
]
START = [Message("system", "You are careful."), Message("user", "Write hello.txt.")]


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)


@pytest.fixture
def fake(allowed: None) -> Iterator[GeminiFake]:
    with GeminiFake(expected_key=KEY) as server:
        yield server
    assert server.violations == [], "the provider sent a request the real API would reject"


def model_for(fake: GeminiFake, **overrides: Any) -> GeminiModel:
    return GeminiModel("gemini", fake.spec(key_env=ENV, **overrides), "t1")


def ask(
    model: GeminiModel,
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


def fail(model: GeminiModel, messages: list[Message] | None = None) -> ModelError:
    with pytest.raises(ModelError) as caught:
        ask(model, messages)
    assert KEY not in str(caught.value)
    return caught.value


def test_text_answer_and_what_the_sdk_sent(fake: GeminiFake) -> None:
    fake.script(
        text(
            "Hello there.",
            usage={
                "promptTokenCount": 120,
                "candidatesTokenCount": 7,
                "cachedContentTokenCount": 100,
                "thoughtsTokenCount": 30,
                "totalTokenCount": 157,
            },
        )
    )
    response = ask(model_for(fake))
    assert response.text == "Hello there."
    assert response.tool_calls == ()
    assert response.stop_reason == "STOP"
    # promptTokenCount includes the cached tokens; thinking tokens are billed as output.
    assert response.usage == Usage(input_tokens=120, output_tokens=37, cached_input_tokens=100)

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path.endswith("/models/gemini-fake-1:generateContent")
    assert request.headers["x-goog-api-key"] == KEY
    body = request.json()
    assert body["systemInstruction"]["parts"] == [{"text": "You are careful."}]
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Write hello.txt."}]}]
    assert body["generationConfig"]["maxOutputTokens"] == 321
    assert "responseMimeType" not in body["generationConfig"]
    [tool] = body["tools"]
    declarations = tool["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["write_file", "finish"]
    parameters = declarations[0]["parameters"]
    # Gemini's dialect: no additionalProperties/$schema, upper-case types, nullable.
    assert parameters == {
        "type": "OBJECT",
        "properties": {
            "path": {"type": "STRING", "description": "Relative path."},
            "content": {"type": "STRING"},
            "line": {"type": "INTEGER", "minimum": 1.0},
            "mode": {"type": "STRING", "nullable": True, "enum": ["w", "a"]},
        },
        "required": ["path", "content"],
    }


def test_schema_translation_drops_what_gemini_rejects() -> None:
    schema = {
        "$schema": "x",
        "$id": "y",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "additionalProperties": 1}},
            "kind": {"const": "fixed"},
            "level": {"enum": [1, 2]},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer", "examples": [1]}]},
        },
        "required": ["tags", "missing"],
        "examples": [{}],
    }
    assert gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "kind": {"enum": ["fixed"]},
            "level": {"enum": ["1", "2"], "type": "STRING"},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        },
        "required": ["tags"],
    }


def test_single_and_parallel_calls_with_generated_and_given_ids(fake: GeminiFake) -> None:
    fake.script(
        tool_calls(call("write_file", path="a.txt", content="A")),
        tool_calls(
            call("write_file", id="fc-b", path="b.txt", content="B"),
            call("write_file", id="fc-c", path="c.txt", content="C"),
            text="Writing two files.",
        ),
        text("done"),
    )
    model = model_for(fake)
    first = ask(model)
    generated = f"{GENERATED_ID_PREFIX}0-0"
    assert first.tool_calls == (
        ToolCall(generated, "write_file", {"path": "a.txt", "content": "A"}),
    )
    history = [
        *START,
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "wrote a.txt", tool_call_id=generated, tool_name="write_file"),
    ]
    second = ask(model, history)
    assert second.text == "Writing two files."
    assert [c.id for c in second.tool_calls] == ["fc-b", "fc-c"]
    history += [
        Message("assistant", second.text, tool_calls=second.tool_calls),
        Message("tool", "wrote b.txt", tool_call_id="fc-b", tool_name="write_file"),
        Message("tool", "disk full", tool_call_id="fc-c", tool_name="write_file", is_error=True),
        Message("user", "Please continue."),
    ]
    assert ask(model, history).text == "done"

    sent = fake.bodies[2]["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user", "model", "user"]
    # A generated id is never sent back to Gemini; Gemini's own ids are.
    assert sent[1]["parts"] == [
        {"functionCall": {"name": "write_file", "args": {"path": "a.txt", "content": "A"}}}
    ]
    assert sent[2]["parts"] == [
        {"functionResponse": {"name": "write_file", "response": {"output": "wrote a.txt"}}}
    ]
    assert sent[3]["parts"][0] == {"text": "Writing two files."}
    assert [p["functionCall"]["id"] for p in sent[3]["parts"][1:]] == ["fc-b", "fc-c"]
    # Parallel results in ONE user content, then the nudge text.
    assert sent[4]["parts"] == [
        {
            "functionResponse": {
                "id": "fc-b",
                "name": "write_file",
                "response": {"output": "wrote b.txt"},
            }
        },
        {
            "functionResponse": {
                "id": "fc-c",
                "name": "write_file",
                "response": {"error": "disk full"},
            }
        },
        {"text": "Please continue."},
    ]


def test_thought_signatures_go_back_with_their_calls(fake: GeminiFake) -> None:
    signature = base64.b64encode(b"opaque-signature-bytes").decode()
    fake.script(
        tool_calls(call("finish", summary="x"), thought_signature=signature),
        text("ok"),
    )
    model = model_for(fake)
    first = ask(model)
    history = [
        *START,
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "finished", tool_call_id=first.tool_calls[0].id, tool_name="finish"),
    ]
    ask(model, history)
    echoed = fake.bodies[1]["contents"][1]["parts"][0]
    assert echoed["thoughtSignature"] == signature
    assert echoed["functionCall"]["name"] == "finish"


def test_json_output_uses_the_json_mime_type(fake: GeminiFake) -> None:
    fake.script(text('{"tasks": []}'))
    response = ask(model_for(fake), tools=[], settings=ModelSettings(json_output=True))
    assert response.text == '{"tasks": []}'
    body = fake.bodies[0]
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert "tools" not in body


@pytest.mark.parametrize(
    ("step", "retryable", "retry_after", "fragment"),
    [
        (rate_limited("12s"), True, 12.0, "HTTP 429 RESOURCE_EXHAUSTED"),
        (rate_limited("12s", headers={"retry-after": "3"}), True, 3.0, "quota"),
        (rate_limited("1.5s"), True, 1.5, "RESOURCE_EXHAUSTED"),
        (error(429), True, None, "RESOURCE_EXHAUSTED"),
        (error(500), True, None, "HTTP 500 INTERNAL"),
        (error(503, message="The model is overloaded."), True, None, "UNAVAILABLE"),
        (error(400, message="Request contains an invalid argument."), False, None, "INVALID"),
        (error(401), False, None, "HTTP 401 UNAUTHENTICATED"),
        (error(403), False, None, "HTTP 403 PERMISSION_DENIED"),
    ],
)
def test_http_errors_are_classified(
    fake: GeminiFake, step: Step, retryable: bool, retry_after: float | None, fragment: str
) -> None:
    fake.script(step)
    exc = fail(model_for(fake))
    assert exc.retryable is retryable
    assert exc.retry_after == retry_after
    assert fragment in str(exc)
    assert "agent gemini" in str(exc)
    assert len(fake.requests) == 1  # the SDK never retries on its own


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        (blocked("SAFETY"), "prompt was blocked (SAFETY)"),
        (blocked("PROHIBITED_CONTENT"), "PROHIBITED_CONTENT"),
        (finish_blocked("SAFETY"), "finishReason SAFETY"),
        (finish_blocked("RECITATION"), "RECITATION"),
    ],
)
def test_blocked_answers_are_not_retryable(fake: GeminiFake, step: Step, fragment: str) -> None:
    fake.script(step)
    exc = fail(model_for(fake))
    assert not exc.retryable
    assert fragment in str(exc)


def test_hung_response_is_a_quick_retryable_timeout(fake: GeminiFake) -> None:
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
        truncated(tool_calls(call("finish", summary="x")), at=70),
        non_json(),
        Step(body="<html>proxy</html>", headers={"Content-Type": "text/html"}),
        Step(body={"unexpected": "document"}),
        Step(body=["not", "an", "object"]),
    ],
)
def test_broken_bodies_are_retryable(fake: GeminiFake, step: Step) -> None:
    fake.script(step)
    exc = fail(model_for(fake))
    assert exc.retryable


def test_connection_refused_is_retryable(allowed: None) -> None:
    with GeminiFake() as gone:
        spec = gone.spec(key_env=ENV)
    exc = fail(GeminiModel("gemini", spec, "t1"))
    assert exc.retryable
    assert "connection error" in str(exc)


def test_a_host_name_that_does_not_resolve_is_not_retried(allowed: None) -> None:
    with GeminiFake() as gone:
        spec = gone.spec(key_env=ENV, base_url="http://api.orchestrator-test.invalid")
    exc = fail(GeminiModel("gemini", spec, "t1"))
    assert not exc.retryable
    assert "host name does not resolve" in str(exc)


def test_malformed_arguments_and_unknown_tools_reach_the_loop(fake: GeminiFake) -> None:
    fake.script(
        tool_calls(
            raw_call("write_file", '{"path": "a.txt", "content": '),
            call("no_such_tool", x=1),
            call("finish", summary="s"),
        ),
        malformed_function_call(),
    )
    model = model_for(fake)
    bad, unknown, good = ask(model).tool_calls
    assert (bad.name, bad.arguments) == ("write_file", {})
    assert bad.arguments_error is not None
    assert "invalid JSON" in bad.arguments_error
    assert unknown == ToolCall(f"{GENERATED_ID_PREFIX}0-1", "no_such_tool", {"x": 1})
    assert good.arguments == {"summary": "s"}
    # Gemini's own MALFORMED_FUNCTION_CALL is an empty turn: the loop nudges the model on.
    empty = ask(model)
    assert (empty.text, empty.tool_calls, empty.stop_reason) == ("", (), "MALFORMED_FUNCTION_CALL")


def test_missing_key_fails_before_any_request(
    fake: GeminiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV)
    fake.script(text("never"))
    exc = fail(model_for(fake))
    assert not exc.retryable
    assert ENV in str(exc)
    assert fake.requests == []


def test_disallowed_model_requests_make_no_request(
    fake: GeminiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", False)
    fake.script(text("never"))
    exc = fail(model_for(fake))
    assert not exc.retryable
    assert "ALLOW_MODEL_REQUESTS" in str(exc)
    assert fake.requests == []


def test_the_key_never_appears_in_errors_even_when_echoed(fake: GeminiFake) -> None:
    fake.script(
        error(400, message=f"API key not valid: {KEY}"),
        error(503, message=f"backend saw key={KEY}"),
        Step(body=f"<html>{KEY}</html>", headers={"Content-Type": "text/html"}),
    )
    model = model_for(fake)
    for _ in range(3):
        fail(model)
    with GeminiFake(expected_key="AIza-some-other-key-0000") as wrong:
        exc = fail(GeminiModel("gemini", wrong.spec(key_env=ENV), "t1"))
    assert "API key not valid" in str(exc)
    assert not exc.retryable


def test_registry_builds_the_gemini_model(fake: GeminiFake) -> None:
    built = providers.build_model("gemini", fake.spec(key_env=ENV), "planner")
    model = getattr(built, "provider", built)  # build_model may wrap it (retry, cache layers)
    assert isinstance(model, GeminiModel)


def test_fake_rejects_what_the_real_api_rejects() -> None:
    good: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert validate_request(good) is None
    declaration = {"name": "f", "parameters": {"type": "OBJECT", "additionalProperties": False}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({**good, "tools": [{"functionDeclarations": [declaration]}]}, "additionalProperties"),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "go"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {"role": "user", "parts": [{"text": "no response"}]},
                ]
            },
            "number of function response parts",
        ),
    ]
    for body, fragment in cases:
        problem = validate_request(body)
        assert problem is not None and fragment in problem, (fragment, problem)


def test_run_agent_completes_a_task_against_the_fake(fake: GeminiFake, repo: Path) -> None:
    usage = {
        "promptTokenCount": 2000,
        "cachedContentTokenCount": 1500,
        "candidatesTokenCount": 40,
        "thoughtsTokenCount": 20,
        "totalTokenCount": 2060,
    }
    fake.script(
        write_then_finish("NOTES.md", "notes from gemini\n", "wrote the notes", usage=usage)
    )
    spec = fake.spec(
        key_env=ENV, input_per_mtok=1.25, cached_input_per_mtok=0.31, output_per_mtok=10.0
    )
    model = GeminiModel("gemini", spec, "t1")
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
    assert workspace.read_text("NOTES.md") == "notes from gemini\n"
    assert outcome.usage == Usage(input_tokens=6000, output_tokens=180, cached_input_tokens=4500)
    expected = 3 * (500 * 1.25 + 1500 * 0.31 + 60 * 10.0) / 1e6
    assert outcome.cost_usd == pytest.approx(expected)
    last = fake.bodies[-1]["contents"]
    assert [c["role"] for c in last] == ["user", "model", "user", "model", "user"]
    assert "functionResponse" in last[-1]["parts"][0]
    assert fake.remaining == 0
