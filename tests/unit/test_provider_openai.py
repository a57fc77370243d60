"""The OpenAI / OpenAI-compatible provider, through the real SDK against a loopback fake."""

from __future__ import annotations

import asyncio
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.agent.loop import run_agent
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import AgentSpec, Limits, Usage
from orchestrator.pricing import cost_usd
from orchestrator.providers import build_model
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
)
from orchestrator.providers.openai import OpenAICompatibleModel, OpenAIModel
from tests.conftest import git
from tests.fakes.openai_fake import (
    FAKE_KEY_ENV,
    FakeUsage,
    OpenAIFake,
    Step,
    call,
    error,
    insufficient_quota,
    invalid_api_key,
    no_choices,
    non_json,
    overloaded,
    rate_limited,
    server_error,
    text,
    tool_calls,
    write_file_then_finish,
)

KEY = "sk-canary-0123456789abcdefCANARY"
HELLO = [Message(role="user", text="Say hello.")]
WRITE = ToolSpec(
    name="write_file",
    description="Write a file.",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
)


@pytest.fixture
def allow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to model requests (only the loopback fake answers) and set the fake's key."""
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(FAKE_KEY_ENV, KEY)


def openai_model(fake: OpenAIFake, **overrides: Any) -> OpenAIModel:
    return OpenAIModel("codex", fake.spec(**overrides), "t1")


def compatible_model(fake: OpenAIFake, **overrides: Any) -> OpenAICompatibleModel:
    return OpenAICompatibleModel("local", fake.spec("openai_compatible", **overrides), "t1")


def bare(model: object) -> object:
    """The provider model behind the registry's wrapper layers (if any)."""
    return getattr(model, "provider", model)


def ask(
    model: OpenAIModel,
    messages: list[Message] = HELLO,
    tools: list[ToolSpec] | None = None,
    settings: ModelSettings | None = None,
) -> ModelResponse:
    return asyncio.run(model.request(messages, tools or [], settings or ModelSettings()))


def fail(model: OpenAIModel, messages: list[Message] = HELLO) -> ModelError:
    with pytest.raises(ModelError) as info:
        ask(model, messages)
    return info.value


def serve(*steps: Step, **options: Any) -> OpenAIFake:
    return OpenAIFake(steps, **options)


# ------------------------------------------------------------------------------ answers


@pytest.mark.usefixtures("allow")
def test_a_host_name_that_does_not_resolve_fails_over_at_once() -> None:
    """Not retried: the run moves to the next agent instead of backing off four times."""
    with serve() as gone:
        spec = gone.spec(base_url="http://api.orchestrator-test.invalid/v1")
    model = build_model("codex", spec, "t1")
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        asyncio.run(model.request(HELLO, [], ModelSettings()))
    assert not info.value.retryable and "does not resolve" in str(info.value)
    assert model.stats.retries == [] and time.monotonic() - started < 5


@pytest.mark.usefixtures("allow")
def test_text_answer() -> None:
    with serve(text("Hello!")) as fake:
        response = ask(openai_model(fake))
    assert response.text == "Hello!"
    assert response.tool_calls == ()
    assert response.stop_reason == "stop"
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.usefixtures("allow")
def test_single_tool_call() -> None:
    step = tool_calls(call("write_file", {"path": "a.txt", "content": "x\n"}, id="call_1"))
    with serve(step) as fake:
        response = ask(openai_model(fake), tools=[WRITE])
    assert response.tool_calls == (
        ToolCall(id="call_1", name="write_file", arguments={"path": "a.txt", "content": "x\n"}),
    )
    assert response.text == ""
    assert response.stop_reason == "tool_calls"


@pytest.mark.usefixtures("allow")
def test_parallel_tool_calls_keep_order_ids_and_text() -> None:
    step = tool_calls(
        call("read_file", {"path": "a.txt"}, id="call_a"),
        call("read_file", {"path": "b.txt"}, id="call_b"),
        call("list_files", id="call_c"),
        content="Reading both.",
    )
    with serve(step) as fake:
        response = ask(openai_model(fake), tools=[WRITE])
    assert response.text == "Reading both."
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_a", "read_file", {"path": "a.txt"}),
        ("call_b", "read_file", {"path": "b.txt"}),
        ("call_c", "list_files", {}),
    ]


@pytest.mark.usefixtures("allow")
def test_malformed_arguments_and_unknown_tools_never_raise() -> None:
    step = tool_calls(
        call("write_file", '{"path": "a.txt", "content": ', id="broken"),
        call("write_file", "[1, 2]", id="array"),
        call("no_such_tool", {"x": 1}, id="unknown"),
        call("list_files", "", id="empty"),
    )
    with serve(step) as fake:
        broken, array, unknown, empty = ask(openai_model(fake)).tool_calls
    assert broken.arguments == {}
    assert broken.arguments_error is not None and "invalid JSON" in broken.arguments_error
    assert array.arguments == {}
    assert array.arguments_error == "expected a JSON object, got list"
    assert (unknown.name, unknown.arguments, unknown.arguments_error) == (
        "no_such_tool",
        {"x": 1},
        None,
    )
    assert (empty.arguments, empty.arguments_error) == ({}, None)


# ------------------------------------------------------------------------------ request shape


@pytest.mark.usefixtures("allow")
def test_request_shape_the_sdk_sent() -> None:
    conversation = [
        Message(role="system", text="You are careful."),
        Message(role="user", text="Fix it."),
        Message(
            role="assistant",
            text="Looking.",
            tool_calls=(
                ToolCall(id="c1", name="read_file", arguments={"path": "a.py"}),
                ToolCall(id="c2", name="read_file", arguments={"path": "ü.py"}),
            ),
        ),
        Message(role="tool", text="1\tx = 1", tool_call_id="c1", tool_name="read_file"),
        Message(
            role="tool",
            text="file not found",
            tool_call_id="c2",
            tool_name="read_file",
            is_error=True,
        ),
        Message(role="assistant", tool_calls=(ToolCall(id="c3", name="list_files", arguments={}),)),
        Message(role="tool", text="a.py", tool_call_id="c3", tool_name="list_files"),
    ]
    # reject_max_tokens: the fake answers 400 to `max_tokens`, as GPT-5/o-series do.
    with serve(text("ok"), reject_max_tokens=True) as fake:
        ask(openai_model(fake), conversation, [WRITE], ModelSettings(max_tokens=321))
    (body,) = fake.bodies()
    assert body["model"] == "gpt-test"
    assert body["max_completion_tokens"] == 321
    assert "max_tokens" not in body
    assert "response_format" not in body
    assert "stream" not in body or body["stream"] is False
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "write_file",
                "description": "Write a file.",
                "parameters": WRITE.parameters,
            },
        }
    ]
    assert body["messages"] == [
        {"role": "system", "content": "You are careful."},
        {"role": "user", "content": "Fix it."},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "ü.py"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "1\tx = 1"},
        {"role": "tool", "tool_call_id": "c2", "content": "ERROR: file not found"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c3",
                    "type": "function",
                    "function": {"name": "list_files", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "a.py"},
    ]


@pytest.mark.usefixtures("allow")
def test_json_output_and_no_tools() -> None:
    with serve(text('{"tasks": []}')) as fake:
        answer = ask(openai_model(fake), settings=ModelSettings(json_output=True))
    assert answer.text == '{"tasks": []}'
    (body,) = fake.bodies()
    assert body["response_format"] == {"type": "json_object"}
    assert "tools" not in body


@pytest.mark.usefixtures("allow")
def test_compatible_sends_max_tokens_under_its_base_url() -> None:
    with serve(text("hi")) as fake:
        model = compatible_model(fake, base_url=f"{fake.url}/inference")
        ask(model, settings=ModelSettings(max_tokens=77, json_output=True))
    (request,) = fake.requests
    assert request.path == "/inference/chat/completions"
    body = request.json()
    assert body["max_tokens"] == 77
    assert "max_completion_tokens" not in body
    assert body["response_format"] == {"type": "json_object"}
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.usefixtures("allow")
def test_compatible_without_key_sends_the_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAKE_KEY_ENV)
    with serve(text("local model here")) as fake:
        response = ask(compatible_model(fake, api_key=None))
    assert response.text == "local model here"
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"


@pytest.mark.usefixtures("allow")
def test_github_models_agent_reads_github_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_fake_token_for_models")
    with serve(text("from GitHub Models")) as fake:
        spec = AgentSpec(
            provider="openai_compatible",
            model="openai/gpt-4.1",
            base_url=f"{fake.url}/inference",
            api_key="${GITHUB_TOKEN}",
        )
        model = build_model("copilot", spec, "t1")
        assert isinstance(bare(model), OpenAICompatibleModel)
        response = asyncio.run(model.request(HELLO, [], ModelSettings()))
    assert response.text == "from GitHub Models"
    assert fake.requests[0].headers["authorization"] == "Bearer ghs_fake_token_for_models"
    assert fake.bodies()[0]["model"] == "openai/gpt-4.1"


def test_registry_builds_openai_models() -> None:
    spec = AgentSpec(provider="openai", model="gpt-5", api_key="${OPENAI_API_KEY}")
    assert type(bare(build_model("codex", spec, "planner"))) is OpenAIModel


# ------------------------------------------------------------------------------ usage


@pytest.mark.usefixtures("allow")
def test_usage_with_cached_tokens() -> None:
    usage = FakeUsage(prompt_tokens=1200, completion_tokens=80, cached_tokens=1024)
    with serve(text("hi", usage=usage)) as fake:
        response = ask(openai_model(fake))
    assert response.usage == Usage(input_tokens=1200, output_tokens=80, cached_input_tokens=1024)


@pytest.mark.usefixtures("allow")
def test_missing_usage_is_zero() -> None:
    with serve(text("hi", include_usage=False)) as fake:
        response = ask(openai_model(fake))
    assert response.usage == Usage()


@pytest.mark.usefixtures("allow")
def test_deepseek_extras_are_ignored_and_its_cache_hits_counted() -> None:
    # DeepSeek adds reasoning_content and reports cache hits as prompt_cache_hit_tokens.
    body = (
        b'{"id": "x", "object": "chat.completion", "created": 1, "model": "deepseek-reasoner",'
        b' "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",'
        b' "content": "42", "reasoning_content": "Let me think..."}}],'
        b' "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,'
        b' "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36}}'
    )
    with serve(Step(raw_body=body)) as fake:
        response = ask(compatible_model(fake, model="deepseek-reasoner"))
    assert response.text == "42"
    assert response.usage == Usage(input_tokens=100, output_tokens=20, cached_input_tokens=64)


@pytest.mark.usefixtures("allow")
def test_extra_message_fields_from_the_fake_are_ignored() -> None:
    step = text("ok", extra_message={"reasoning_content": "hmm", "audio": None})
    with serve(step) as fake:
        assert ask(compatible_model(fake)).text == "ok"


# ------------------------------------------------------------------------------ errors


@pytest.mark.usefixtures("allow")
@pytest.mark.parametrize(
    ("step", "retryable", "retry_after", "words"),
    [
        (rate_limited(2), True, 2.0, "HTTP 429 rate_limit_exceeded"),
        (rate_limited(headers={"retry-after-ms": "1500"}), True, 1.5, "retry after 1.5s"),
        (insufficient_quota(headers={"retry-after": "1"}), False, None, "insufficient_quota"),
        (server_error(), True, None, "HTTP 500"),
        (overloaded(headers={"retry-after": "5"}), True, 5.0, "HTTP 503"),
        (invalid_api_key(), False, None, "HTTP 401 invalid_api_key"),
        (error(400, "Invalid value for 'model'", param="model"), False, None, "HTTP 400"),
        (error(403, "Country not supported", code="unsupported_country"), False, None, "403"),
        (
            error(404, "The model `gpt-9` does not exist", code="model_not_found"),
            False,
            None,
            "404",
        ),
        (error(422, "Unprocessable"), False, None, "HTTP 422"),
    ],
)
def test_error_classes(step: Step, retryable: bool, retry_after: float | None, words: str) -> None:
    with serve(step) as fake:
        exc = fail(openai_model(fake))
    assert exc.retryable is retryable
    assert exc.retry_after == retry_after
    assert words in str(exc)
    assert len(fake.requests) == 1  # the SDK did not retry on its own


@pytest.mark.usefixtures("allow")
def test_hung_response_times_out_quickly_and_is_retryable() -> None:
    with serve(text("too late", delay_s=3.0)) as fake:
        started = time.monotonic()
        exc = fail(openai_model(fake, timeout_s=0.5))
        elapsed = time.monotonic() - started
    assert exc.retryable is True
    assert "timed out after 0.5s" in str(exc)
    assert elapsed < 2.5


@pytest.mark.usefixtures("allow")
def test_truncated_body_is_retryable() -> None:
    with serve(text("a long answer " * 20, truncate_to=40)) as fake:
        exc = fail(openai_model(fake))
    assert exc.retryable is True
    assert "connection failed" in str(exc)


@pytest.mark.usefixtures("allow")
@pytest.mark.parametrize("content_type", ["application/json", "text/html"])
def test_non_json_body_is_retryable(content_type: str) -> None:
    with serve(non_json(content_type=content_type)) as fake:
        exc = fail(openai_model(fake))
    assert exc.retryable is True
    assert "not JSON" in str(exc)
    assert "502 Bad Gateway" in str(exc)


@pytest.mark.usefixtures("allow")
def test_no_choices_and_empty_message_are_clear_errors() -> None:
    with serve(no_choices(), Step(finish_reason="length")) as fake:
        model = openai_model(fake)
        without = fail(model)
        empty = fail(model)
    assert (without.retryable, str(without)) == (
        False,
        "OpenAI returned a response without choices",
    )
    assert empty.retryable is False
    assert "empty message (finish_reason=length)" in str(empty)


@pytest.mark.usefixtures("allow")
def test_html_error_page_from_a_proxy() -> None:
    page = b"<html>\n<body>  502 Bad Gateway  </body></html>"
    with serve(Step(status=502, raw_body=page, content_type="text/html")) as fake:
        exc = fail(openai_model(fake))
    assert exc.retryable is True
    assert "HTTP 502" in str(exc) and "<body> 502 Bad Gateway </body>" in str(exc)


@pytest.mark.usefixtures("allow")
def test_refusal_comes_back_as_text() -> None:
    step = Step(finish_reason="stop", extra_message={"refusal": "I can't help with that."})
    with serve(step) as fake:
        response = ask(openai_model(fake))
    assert (response.text, response.tool_calls) == ("I can't help with that.", ())


@pytest.mark.usefixtures("allow")
def test_error_inside_a_200_response() -> None:
    body = b'{"error": {"message": "upstream overloaded", "code": 503}}'
    with serve(Step(raw_body=body)) as fake:
        exc = fail(compatible_model(fake))
    assert exc.retryable is True
    assert "upstream overloaded" in str(exc)


@pytest.mark.usefixtures("allow")
def test_script_exhausted_fails_fast() -> None:
    with serve(text("one")) as fake:
        model = openai_model(fake)
        ask(model)
        exc = fail(model)
    assert exc.retryable is False
    assert "fake_script_exhausted" in str(exc)


@pytest.mark.usefixtures("allow")
def test_fake_rejects_a_tool_result_without_its_call() -> None:
    orphan = [Message(role="user", text="hi"), Message(role="tool", text="x", tool_call_id="c9")]
    with serve(text("never")) as fake:
        exc = fail(openai_model(fake), orphan)
    assert exc.retryable is False
    assert "must be a response to a preceeding message with 'tool_calls'" in str(exc)
    assert fake.remaining == 1


# ------------------------------------------------------------------------------ keys and safety


@pytest.mark.usefixtures("allow")
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_key(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(FAKE_KEY_ENV)
    else:
        monkeypatch.setenv(FAKE_KEY_ENV, value)
    with serve(text("never")) as fake:
        exc = fail(openai_model(fake))
    assert str(exc) == f"codex: {FAKE_KEY_ENV} is not set"
    assert exc.retryable is False
    assert fake.requests == []


@pytest.mark.usefixtures("allow")
def test_openai_agent_without_api_key_uses_openai_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with serve(text("never")) as fake:
        exc = fail(openai_model(fake, api_key=None))
    assert str(exc) == "codex: OPENAI_API_KEY is not set"
    assert fake.requests == []


def test_disabled_requests_make_no_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_KEY_ENV, KEY)
    assert providers.ALLOW_MODEL_REQUESTS is False  # tests/conftest.py
    with serve(text("never")) as fake:
        exc = fail(openai_model(fake))
        compatible = fail(compatible_model(fake))
    assert str(exc) == (
        "agent codex: real model requests are disabled "
        "(set orchestrator.providers.ALLOW_MODEL_REQUESTS)"
    )
    assert exc.retryable is False and compatible.retryable is False
    assert fake.requests == []


@pytest.mark.usefixtures("allow")
def test_compatible_without_base_url_names_the_field() -> None:
    spec = AgentSpec(provider="openai_compatible", model="llama3", api_key="${FAKE_OPENAI_API_KEY}")
    exc = fail(OpenAICompatibleModel("local", spec, "t1"))
    assert str(exc) == "local: agents.local.base_url is required for provider openai_compatible"
    assert exc.retryable is False


@pytest.mark.usefixtures("allow")
def test_canary_key_never_in_error_text() -> None:
    steps = [
        invalid_api_key(),
        error(400, "Bad header Authorization: Bearer {api_key}"),
        rate_limited(1),
        text("x", truncate_to=5),
        non_json(f"<html>forbidden for {KEY}</html>"),
    ]
    with serve(*steps) as fake:
        model = openai_model(fake)
        errors = [fail(model) for _ in steps]
    assert KEY in fake.requests[0].headers["authorization"]
    for exc in errors:
        rendered = "".join(traceback.format_exception(exc)) + repr(exc.args)
        assert KEY not in rendered
        assert "Bearer sk-" not in rendered
    assert "Incorrect API key provided: ***" in str(errors[0])


@pytest.mark.usefixtures("allow")
def test_one_model_serves_several_event_loops() -> None:
    with serve(text("one")) as fake:
        fake.add(text("two"), text("three"))
        model = openai_model(fake)
        answers = [ask(model).text for _ in range(3)]
    assert answers == ["one", "two", "three"]


# ------------------------------------------------------------------------------ agent loop


def _toolbox(repo: Path) -> ToolBox:
    workspace = Workspace.open(repo, git(repo, "rev-parse", "HEAD"), Limits())
    return ToolBox(workspace, task_id="t1")


def _run(model: OpenAIModel, box: ToolBox) -> Any:
    return asyncio.run(
        run_agent(
            model,
            box,
            system="You are a careful engineer.",
            prompt="Add hello.txt.",
            limits=Limits(max_turns=10),
            transcript=Transcript(),
        )
    )


@pytest.mark.usefixtures("allow")
def test_agent_loop_writes_a_file_and_accounts_for_it(repo: Path) -> None:
    usage = FakeUsage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    steps = write_file_then_finish("hello.txt", "hello\n", "wrote hello.txt", usage=usage)
    box = _toolbox(repo)
    with serve(*steps) as fake:
        model = openai_model(
            fake, input_per_mtok=1.25, cached_input_per_mtok=0.125, output_per_mtok=10.0
        )
        outcome = _run(model, box)
    assert outcome.status == "succeeded"
    assert outcome.summary == "wrote hello.txt"
    assert (outcome.turns, outcome.calls, outcome.tool_calls) == (3, 3, 3)
    assert box.workspace.read_text("hello.txt") == "hello\n"
    assert box.workspace.changed_files() == ["hello.txt"]
    assert outcome.usage == Usage(input_tokens=3000, output_tokens=300, cached_input_tokens=1200)
    expected = (1800 * 1.25 + 1200 * 0.125 + 300 * 10.0) / 1_000_000
    assert outcome.cost_usd == pytest.approx(expected)
    assert outcome.cost_usd == pytest.approx(cost_usd(model.spec, outcome.usage))
    # Each request carried the previous tool results, tied to the ids the fake issued.
    bodies = fake.bodies()
    assert [m["role"] for m in bodies[0]["messages"]] == ["system", "user"]
    assert {t["function"]["name"] for t in bodies[0]["tools"]} >= {"write_file", "finish"}
    last = bodies[2]["messages"]
    calls = [m for m in last if m["role"] == "assistant"]
    results = [m for m in last if m["role"] == "tool"]
    assert (
        [r["tool_call_id"] for r in results]
        == [c["tool_calls"][0]["id"] for c in calls]
        == ["call_fake1_0", "call_fake2_0"]
    )
    assert "hello.txt" in results[1]["content"]
    assert fake.remaining == 0


@pytest.mark.usefixtures("allow")
def test_agent_loop_recovers_from_bad_calls(repo: Path) -> None:
    steps = [
        tool_calls(
            call("write_file", '{"path": "a.txt", "content": ', id="bad"),
            call("no_such_tool", {}, id="unknown"),
        ),
        *write_file_then_finish("a.txt", "a\n", "done")[1:],
    ]
    box = _toolbox(repo)
    with serve(*steps) as fake:
        outcome = _run(compatible_model(fake), box)
    assert outcome.status == "succeeded"
    assert box.workspace.read_text("a.txt") == "a\n"
    results = [m for m in fake.bodies()[1]["messages"] if m["role"] == "tool"]
    assert [r["tool_call_id"] for r in results] == ["bad", "unknown"]
    assert all(r["content"].startswith("ERROR: ") for r in results)
    assert "not a valid JSON object" in results[0]["content"]
    assert "unknown tool 'no_such_tool'" in results[1]["content"]


@pytest.mark.usefixtures("allow")
def test_agent_loop_reports_a_retryable_failure(repo: Path) -> None:
    with serve(rate_limited(7)) as fake:
        outcome = _run(openai_model(fake), _toolbox(repo))
    assert outcome.status == "failed"
    assert (outcome.retryable, outcome.retry_after) == (True, 7.0)
    assert outcome.error is not None and outcome.error.startswith("codex: OpenAI HTTP 429")
