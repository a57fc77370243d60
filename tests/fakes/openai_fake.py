"""A scripted model server speaking OpenAI's API, for tests through the real SDK.

It answers ``POST …/chat/completions`` (``/v1/chat/completions`` for OpenAI, or under any
``base_url`` prefix for compatible servers) and ``POST /v1/responses`` with the documented
response and error shapes, one scripted step per request, and the Batch API (``/v1/files``,
``/v1/batches``: see ``openai_fake_batch.py``). It records every request (headers included)
so a test can assert what the SDK sent::

    with OpenAIFake([tool_calls(call("write_file", {"path": "a.txt", "content": "x"})),
                     text("done")]) as fake:
        spec = fake.spec()                       # provider openai, base_url → the fake
        monkeypatch.setenv(FAKE_KEY_ENV, "sk-test")
        ...
        assert fake.bodies()[0]["model"] == "gpt-test"

Steps: :func:`text`, :func:`tool_calls` (with :func:`call`; raw-string arguments make a
malformed call, any name an unknown tool), :func:`error` and the presets
:func:`rate_limited`, :func:`invalid_api_key`, :func:`insufficient_quota`,
:func:`server_error`, :func:`overloaded`; :func:`non_json`, :func:`no_choices`; any step takes
``delay_s`` (a hung server) and ``truncate_to`` (a body cut short). Past the end of the script the
fake answers 400 ``fake_script_exhausted`` (not retryable), so a runaway loop fails fast.

With ``validate=True`` (the default) the fake rejects, as the real API does with a 400, a
conversation whose ``tool`` messages do not answer the preceding assistant ``tool_calls``,
a request without ``model``/``messages``, and (``reject_max_tokens=True``, like GPT-5 and the
o-series) the legacy ``max_tokens`` parameter; images that are not a base64 data URL of a
PNG, JPEG, GIF or WEBP; and (DeepSeek thinking mode) an assistant tool-call message without
the ``reasoning_content`` the fake sent with it (script it with
``extra_message={"reasoning_content": ...}``).

Endpoints follow the model, as on the real API (errors as observed there): a model matching
``responses_only`` on Chat Completions gets 404 "only supported in v1/responses"; one matching
``tools_need_responses`` (GPT-5.5+, GPT-6) gets 400 when it is sent function tools with a
reasoning effort other than ``none``; one matching ``chat_only`` on ``/v1/responses`` gets 400
``model_not_found``; and a ``compatible=True`` fake serves Chat Completions only (404 for the
rest). On ``/v1/responses`` a step with ``reasoning=`` returns a reasoning item (with
``encrypted_content`` when ``include`` asks for it) and the fake then insists, as the real API
does, that it comes back before that turn's ``function_call`` items; every
``function_call_output`` needs its ``function_call`` earlier in the input. Usage there comes
from a prefix prompt cache (``openai_fake_responses.PrefixCache``) unless scripted.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contracts import AgentSpec
from tests.fakes.loopback import LoopbackServer, Reply, Request
from tests.fakes.openai_fake_batch import BatchStore
from tests.fakes.openai_fake_responses import (
    Issued,
    PrefixCache,
    Problem,
    image_problem,
    response_object,
    responses_problem,
    serialized_prompt,
)

#: Models only served by ``/v1/responses`` (the SDK's ``ResponsesModel`` list, and Codex).
RESPONSES_ONLY = ("gpt-5-codex", "gpt-5.*-codex*", "codex-*", "*-pro", "*-pro-*")
#: Models whose function tools need ``/v1/responses`` (Chat rejects tools with reasoning).
TOOLS_NEED_RESPONSES = ("gpt-5.5*", "gpt-5.6*", "gpt-6*", "gpt-7*")
#: Models ``/v1/responses`` refuses.
CHAT_ONLY = ("*-audio-preview*", "*-search-preview*", "o1-preview*")

#: Environment variable the specs from :meth:`OpenAIFake.spec` read their key from.
FAKE_KEY_ENV = "FAKE_OPENAI_API_KEY"


@dataclass(frozen=True)
class FakeCall:
    """A tool call the fake will return; ``arguments`` as a dict or a raw (maybe broken) string."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class FakeUsage:
    """Token counts to report (``prompt_tokens`` includes ``cached_tokens``)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


@dataclass(frozen=True)
class Step:
    """One scripted answer. Build with :func:`text`, :func:`tool_calls`, :func:`error` …"""

    content: str | None = None
    calls: tuple[FakeCall, ...] = ()
    finish_reason: str | None = None
    usage: FakeUsage | None = None
    include_usage: bool = True
    include_choices: bool = True
    extra_message: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None
    content_type: str = "application/json"
    delay_s: float = 0.0
    truncate_to: int | None = None
    reasoning: str | None = None  # /v1/responses: a reasoning item with this summary


def call(
    name: str, arguments: dict[str, Any] | str | None = None, id: str | None = None
) -> FakeCall:
    """A tool call; a ``str`` is sent verbatim as the JSON-encoded arguments."""
    return FakeCall(name=name, arguments={} if arguments is None else arguments, id=id)


def text(
    content: str,
    *,
    finish_reason: str = "stop",
    usage: FakeUsage | None = None,
    **options: Any,
) -> Step:
    """A plain text answer (``finish_reason`` ``stop``, or ``length`` when cut off)."""
    return Step(content=content, finish_reason=finish_reason, usage=usage, **options)


def tool_calls(
    *calls: FakeCall,
    content: str | None = None,
    usage: FakeUsage | None = None,
    **options: Any,
) -> Step:
    """An answer with one or more (parallel) tool calls, optionally with text."""
    return Step(content=content, calls=calls, finish_reason="tool_calls", usage=usage, **options)


def error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> Step:
    """An API error ``{"error": {message, type, param, code}}``; ``{api_key}`` in ``message``
    is replaced by the bearer token the client sent (the worst case: a server echoing it)."""
    body = {"message": message, "type": type, "param": param, "code": code}
    return Step(status=status, error=body, headers=dict(headers or {}), **options)


def rate_limited(retry_after: float | str = 2, **options: Any) -> Step:
    """429 ``rate_limit_exceeded`` with ``retry-after`` and ``x-ratelimit-*`` headers."""
    seconds = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    headers = {
        "retry-after": seconds,
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": f"{seconds}s",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": f"{seconds}s",
    }
    headers.update(options.pop("headers", {}))
    return error(
        429,
        "Rate limit reached for gpt-test in organization org-fake on tokens per min (TPM): "
        "Limit 30000, Used 30000, Requested 1200. Please try again in 2s.",
        type="tokens",
        code="rate_limit_exceeded",
        headers=headers,
        **options,
    )


def invalid_api_key(**options: Any) -> Step:
    """401 ``invalid_api_key``; the message echoes the key the client sent, unmasked."""
    return error(
        401,
        "Incorrect API key provided: {api_key}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
        **options,
    )


def insufficient_quota(**options: Any) -> Step:
    """429 ``insufficient_quota``: billing, not a rate limit (waiting will not help)."""
    return error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type="insufficient_quota",
        code="insufficient_quota",
        **options,
    )


def server_error(**options: Any) -> Step:
    """500 ``server_error``."""
    return error(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
        **options,
    )


def overloaded(**options: Any) -> Step:
    """503: the engine is overloaded."""
    return error(
        503,
        "The engine is currently overloaded, please try again later.",
        type="server_error",
        **options,
    )


def non_json(body: str = "<html><body>502 Bad Gateway</body></html>", **options: Any) -> Step:
    """A 200 whose body is not JSON (a proxy's error page), labelled as JSON."""
    return Step(raw_body=body.encode(), **options)


def no_choices(**options: Any) -> Step:
    """A well-formed completion with an empty ``choices`` list."""
    return Step(include_choices=False, **options)


def write_file_then_finish(
    path: str = "hello.txt",
    content: str = "hello\n",
    summary: str = "wrote hello.txt",
    *,
    usage: FakeUsage | None = None,
) -> list[Step]:
    """A plausible agent: look around, write one file, then call ``finish``."""
    return [
        tool_calls(call("list_files", {"path": "."}), usage=usage),
        tool_calls(
            call("write_file", {"path": path, "content": content}),
            content="Writing the file now.",
            usage=usage,
        ),
        tool_calls(call("finish", {"summary": summary}), usage=usage),
    ]


class OpenAIFake:
    """The scripted server; a context manager that starts a loopback server.

    Args:
        steps: Answers, one per chat-completions request, in order.
        model_name: The ``model`` echoed in responses (default: the model the request named).
        validate: Reject malformed conversations with a 400, as the real API does.
        reject_max_tokens: Reject the ``max_tokens`` parameter (GPT-5/o-series behaviour).
        api_key: When set, any other bearer token gets 401 ``invalid_api_key``.
        responses_only: Model patterns (``fnmatch``) Chat Completions refuses.
        tools_need_responses: Model patterns Chat Completions refuses function tools for.
        chat_only: Model patterns ``/v1/responses`` refuses.
        compatible: Serve Chat Completions only, as a compatible server (DeepSeek, Ollama) does.
        batch_polls: Status polls after which a batch completes (``None``: never).
    """

    def __init__(
        self,
        steps: Iterable[Step] = (),
        *,
        model_name: str | None = None,
        validate: bool = True,
        reject_max_tokens: bool = False,
        api_key: str | None = None,
        responses_only: Iterable[str] = RESPONSES_ONLY,
        tools_need_responses: Iterable[str] = TOOLS_NEED_RESPONSES,
        chat_only: Iterable[str] = CHAT_ONLY,
        compatible: bool = False,
        batch_polls: int | None = 1,
    ) -> None:
        self.steps = list(steps)
        self.responses_only = tuple(responses_only)
        self.tools_need_responses = tuple(tools_need_responses)
        self.chat_only = tuple(chat_only)
        self.compatible = compatible
        self.issued = Issued()
        self.cache = PrefixCache()
        self.batches = BatchStore(self._serve_line, batch_polls)
        self.model_name = model_name
        self.validate = validate
        self.reject_max_tokens = reject_max_tokens
        self.api_key = api_key
        self.position = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.server = LoopbackServer(self.handle)

    def __enter__(self) -> OpenAIFake:
        # serve_forever's default 0.5 s poll makes every shutdown take 0.5 s; poll faster
        # (a no-op should loopback.py's internals change).
        inner = getattr(self.server, "_server", None)
        if inner is not None and hasattr(self.server, "_thread"):
            self.server._thread = threading.Thread(
                target=inner.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    # ----------------------------------------------------------------- for tests

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return self.server.url

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give an SDK or an agent: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.server.url}/v1"

    @property
    def requests(self) -> list[Request]:
        """Every request received, in order."""
        return list(self.server.requests)

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completions requests, in order."""
        return [r.json() for r in self.server.requests if r.path.endswith("/chat/completions")]

    def response_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the ``/v1/responses`` requests, in order."""
        return [r.json() for r in self.server.requests if r.path.endswith("/responses")]

    def add(self, *steps: Step) -> OpenAIFake:
        """Append steps (e.g. to a fake a fixture already started); returns the fake."""
        with self._lock:
            self.steps.extend(steps)
        return self

    @property
    def remaining(self) -> int:
        """Steps not yet served."""
        return len(self.steps) - self.position

    def spec(self, provider: str = "openai", **overrides: Any) -> AgentSpec:
        """An ``AgentSpec`` pointing at this fake (key from ``$FAKE_OPENAI_API_KEY``)."""
        data: dict[str, Any] = {
            "provider": provider,
            "model": "gpt-test",
            "api_key": "${" + FAKE_KEY_ENV + "}",
            "base_url": self.base_url,
            "max_tokens": 1024,
            "timeout_s": 10.0,
        }
        data.update(overrides)
        return AgentSpec.model_validate({k: v for k, v in data.items() if v is not None})

    def agent_config(self, provider: str = "openai", **overrides: Any) -> dict[str, Any]:
        """The same as :meth:`spec`, as a mapping for an ``agents.yml`` written by a test."""
        return self.spec(provider, **overrides).model_dump(exclude_defaults=True)

    # ----------------------------------------------------------------- serving

    def handle(self, request: Request) -> Reply:
        """Answer one HTTP request (called on the server's threads)."""
        kind = self._kind(request)
        if kind is None:
            return _error_reply(404, f"Invalid URL ({request.method} {request.path})")
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if self.api_key is not None and token != self.api_key:
            return self._reply(invalid_api_key(), {}, token)
        if kind == "batch":
            return self.batches.handle(request)
        try:
            body = request.json()
        except ValueError:
            return _error_reply(400, "We could not parse the JSON body of your request.")
        return self.serve(kind, body, token)

    def _kind(self, request: Request) -> str | None:
        """Which API a request is for; ``None`` when this fake does not serve it."""
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            return "chat"
        if self.compatible:
            return None
        if request.method == "POST" and request.path.endswith("/responses"):
            return "responses"
        return "batch" if self.batches.handles(request) else None

    def _serve_line(self, url: str, body: Any) -> Reply:
        """A batch line, answered like the same request made interactively."""
        return self.serve("responses" if url.endswith("/responses") else "chat", body, "")

    def serve(self, kind: str, body: Any, token: str) -> Reply:
        """Validate a parsed request of ``kind`` (chat, responses) and answer the next step."""
        problem = self._check(kind, body) if self.validate else None
        if problem is not None:
            return _error_reply(
                problem.status, problem.message, param=problem.param, code=problem.code
            )
        with self._lock:
            if self.position >= len(self.steps):
                return _error_reply(
                    400,
                    f"openai fake: script exhausted after {len(self.steps)} steps",
                    code="fake_script_exhausted",
                )
            step = self.steps[self.position]
            self.position += 1
            number = next(self._ids)
        return self._reply(step, body, token, number, kind)

    def _check(self, kind: str, body: Any) -> Problem | None:
        """Why the real API would refuse the request (endpoint for the model, then shape)."""
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        if kind == "responses":
            if _matches(model, self.chat_only):
                return Problem(
                    f"The requested model '{model}' is not supported with the Responses API.",
                    "model",
                    "model_not_found",
                )
            return responses_problem(body, self.issued)
        if _matches(model, self.responses_only):
            return Problem(
                "This model is only supported in v1/responses and not in v1/chat/completions.",
                "model",
                status=404,
            )
        if _tools_with_reasoning(body) and _matches(model, self.tools_need_responses):
            return Problem(
                f"Function tools with reasoning_effort are not supported for {model} in "
                "/v1/chat/completions. Please use /v1/responses instead, or set "
                "reasoning_effort to 'none'.",
                "reasoning_effort",
            )
        found = self._problem(body)
        return None if found is None else Problem(found[0], found[1])

    def _reply(
        self, step: Step, body: Any, token: str, number: int = 0, kind: str = "chat"
    ) -> Reply:
        headers = {"x-request-id": f"req_fake{number}", "openai-processing-ms": "12"}
        if step.content_type != "application/json":
            headers["Content-Type"] = step.content_type
        headers.update(step.headers)
        payload: bytes | dict[str, Any]
        if step.error is not None:
            error = dict(step.error)
            error["message"] = str(error["message"]).replace("{api_key}", token)
            payload = {"error": error}
        elif step.raw_body is not None:
            payload = step.raw_body
        elif kind == "responses":
            cached = self.cache.lookup(str(body.get("model")), serialized_prompt(body))
            payload = response_object(step, body, number, cached, self.issued)
        else:
            payload = self._completion(step, body, number)
        return Reply(
            status=step.status,
            body=payload,
            headers=headers,
            delay_s=step.delay_s,
            truncate_to=step.truncate_to,
        )

    def _completion(self, step: Step, body: dict[str, Any], number: int) -> dict[str, Any]:
        model = self.model_name or str(body.get("model", "gpt-test"))
        response: dict[str, Any] = {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
            "choices": [],
        }
        if step.include_choices:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": step.content,
                "refusal": None,
                "annotations": [],
            }
            if step.calls:
                message["tool_calls"] = [
                    {
                        "id": c.id or f"call_fake{number}_{index}",
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": c.arguments
                            if isinstance(c.arguments, str)
                            else json.dumps(c.arguments),
                        },
                    }
                    for index, c in enumerate(step.calls)
                ]
            message.update(step.extra_message)
            thinking = step.extra_message.get("reasoning_content")
            if isinstance(thinking, str):  # DeepSeek wants it back with these calls
                for tool_call in message.get("tool_calls", []):
                    self.issued.reasoning_content[tool_call["id"]] = thinking
            response["choices"] = [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": step.finish_reason,
                }
            ]
        if step.include_usage:
            usage = step.usage or _estimate(body, step)
            response["usage"] = {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            }
        return response

    def _problem(self, body: Any) -> tuple[str, str | None] | None:
        """Why the real API would answer 400, as ``(message, param)``, or ``None``."""
        if not isinstance(body, dict):
            return "The request body must be a JSON object.", None
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter", "model"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "[] is too short - 'messages'", "messages"
        if self.reject_max_tokens and "max_tokens" in body:
            return (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
            )
        pending: list[str] = []
        for index, message in enumerate(messages):
            where = f"messages.[{index}]"
            if not isinstance(message, dict) or message.get("role") not in (
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
            ):
                return f"Invalid value for 'role' at {where}", f"{where}.role"
            role = message["role"]
            if role == "tool":
                if message.get("tool_call_id") not in pending:
                    return (
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                        f"{where}.role",
                    )
                pending.remove(message["tool_call_id"])
                if not isinstance(message.get("content"), str):
                    return f"Invalid type for '{where}.content'", f"{where}.content"
                continue
            if pending:
                return (
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    f"responding to each 'tool_call_id'. The following tool_call_ids did not "
                    f"have response messages: {', '.join(pending)}",
                    f"{where}.role",
                )
            if role == "assistant" and message.get("tool_calls"):
                if self._reasoning_content_missing(message):
                    return (
                        "The `reasoning_content` in the thinking mode must be passed back to "
                        "the API.",
                        f"{where}.reasoning_content",
                    )
                for tool_call in message["tool_calls"]:
                    function = tool_call.get("function") or {}
                    if tool_call.get("type") != "function" or not isinstance(
                        function.get("arguments"), str
                    ):
                        return f"Invalid 'tool_calls' at {where}", f"{where}.tool_calls"
                    pending.append(tool_call.get("id"))
            elif role == "user" and isinstance(message.get("content"), list):
                found = _parts_problem(message["content"], f"{where}.content")
                if found is not None:
                    return found
            elif not isinstance(message.get("content"), str):
                return f"Invalid type for '{where}.content'", f"{where}.content"
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id': {', '.join(pending)}",
                "messages",
            )
        for tool in body.get("tools") or []:
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or tool.get("type") != "function":
                return "Invalid value for 'tools'", "tools"
            if not isinstance(function.get("name"), str):
                return "Missing required parameter: 'tools[].function.name'", "tools"
        return None

    def _reasoning_content_missing(self, message: dict[str, Any]) -> bool:
        """A tool-call turn the fake sent ``reasoning_content`` with, coming back without it."""
        for tool_call in message.get("tool_calls") or []:
            sent = self.issued.reasoning_content.get(tool_call.get("id"))
            if sent is not None and message.get("reasoning_content") != sent:
                return True
        return False


def _matches(model: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns)


def _tools_with_reasoning(body: Any) -> bool:
    """Function tools with a reasoning effort (the default is not ``none``)."""
    if not isinstance(body, dict) or not body.get("tools"):
        return False
    return body.get("reasoning_effort", "medium") != "none"


def _parts_problem(parts: list[Any], where: str) -> tuple[str, str | None] | None:
    """Chat content parts: ``text`` and ``image_url`` (a data URL of a supported type)."""
    for index, part in enumerate(parts):
        spot = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and isinstance(part.get("image_url"), dict):
            found = image_problem(part["image_url"].get("url"), f"{spot}.image_url.url")
            if found is None:
                continue
            return found.message, found.param
        return f"Invalid content part at '{spot}'", spot
    return None


def _error_reply(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> Reply:
    return Reply(
        status=status,
        body={
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        },
    )


def _estimate(body: dict[str, Any], step: Step) -> FakeUsage:
    """Plausible token counts: a quarter of the characters in and out."""
    sent = len(json.dumps(body.get("messages", [])))
    out = len(step.content or "") + sum(
        len(c.name) + len(c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments))
        for c in step.calls
    )
    return FakeUsage(
        prompt_tokens=math.ceil(sent / 4), completion_tokens=max(1, math.ceil(out / 4))
    )
