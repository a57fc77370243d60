"""A scripted Anthropic Messages API on 127.0.0.1, for the real ``anthropic`` SDK.

It speaks ``POST /v1/messages`` as the API reference documents it: it checks the request the
way the API does (alternating roles starting with ``user``, every ``tool_use`` answered by a
``tool_result`` in the next user message with tool results first, no empty text blocks, at
most four ``cache_control`` breakpoints, tool names and schemas) and answers a violation with
a 400 ``invalid_request_error``, so a provider bug fails like it would in production. Each
valid request plays the next scripted :class:`Step`.

The step vocabulary (also used by ``tests.fakes.gemini_fake``)::

    text("All done.")                                  # a text answer
    tool_calls(call("write_file", path="a", content="x"), call("finish", summary="ok"))
    tool_calls(raw_call("write_file", '{"path": "a",'))  # malformed arguments
    tool_calls(call("no_such_tool"))                   # unknown tool: just a name
    error(429, headers={"retry-after": "7"})           # a documented error body for the status
    spend_limit()                                      # Anthropic's spend-limit 429
    hang(2.0)                                          # answer (a text) only after 2 s
    truncated()                                        # a 200 whose body is cut short
    non_json()                                         # a 200 HTML page from a proxy
    write_then_finish("NOTES.md", "hello\\n")          # a plausible agent: list, write, finish

Use it as a context manager or a pytest fixture::

    with AnthropicFake([text("hi")], expected_key="sk-test") as fake:
        spec = fake.spec()          # AgentSpec: provider anthropic, base_url=fake.url
        ...
        fake.bodies[0]["system"]    # what the SDK sent

Usage: unless a step gives ``usage``, tokens are ``ceil(bytes / 4)`` of the request and of the
answer, and the prompt cache is simulated: the part of the request up to the last
``cache_control`` breakpoint is a cache write the first time and a cache read afterwards.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.contracts import AgentSpec
from tests.fakes.loopback import LoopbackServer, Reply, Request

__all__ = [
    "AnthropicFake",
    "Call",
    "Step",
    "call",
    "error",
    "hang",
    "non_json",
    "raw_call",
    "spend_limit",
    "text",
    "tool_calls",
    "truncated",
    "write_then_finish",
]

# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Call:
    """A scripted tool call; ``arguments`` as a string is sent raw (malformed on purpose)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Step:
    """One scripted answer of a fake model server (provider-neutral).

    A success (``status`` 200) carries ``text`` and/or ``calls``; an error carries ``status``
    and optionally ``error_type`` (Anthropic ``error.type`` or Gemini ``error.status``),
    ``message`` and ``details``. ``body`` replaces the whole JSON/raw body. ``delay_s`` delays
    the answer, ``truncate_to`` cuts the body short. ``usage`` (the provider's own field names)
    and ``stop_reason`` (Anthropic ``stop_reason`` / Gemini ``finishReason``) override the
    defaults. ``block_reason`` is Gemini's ``promptFeedback.blockReason``; ``thought_signature``
    is put on Gemini function-call parts.
    """

    text: str | None = None
    calls: tuple[Call, ...] = ()
    status: int = 200
    error_type: str | None = None
    message: str | None = None
    details: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    delay_s: float = 0.0
    truncate_to: int | None = None
    usage: Mapping[str, int] | None = None
    stop_reason: str | None = None
    block_reason: str | None = None
    thought_signature: str | None = None


def call(name: str, *, id: str | None = None, **arguments: Any) -> Call:
    """A well-formed tool call."""
    return Call(name, dict(arguments), id)


def raw_call(name: str, raw_arguments: str, *, id: str | None = None) -> Call:
    """A tool call whose arguments are sent as this raw string (e.g. broken JSON)."""
    return Call(name, raw_arguments, id)


def text(value: str, **overrides: Any) -> Step:
    """A text answer."""
    return Step(text=value, **overrides)


def tool_calls(*calls: Call, text: str | None = None, **overrides: Any) -> Step:
    """An answer with these tool calls (and optional text before them)."""
    return Step(text=text, calls=tuple(calls), **overrides)


def error(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    details: Any = None,
    **overrides: Any,
) -> Step:
    """An error response with the provider's documented body for ``status``."""
    return Step(
        status=status,
        error_type=error_type,
        message=message,
        headers=dict(headers or {}),
        details=details,
        **overrides,
    )


def spend_limit() -> Step:
    """Anthropic's answer when the organisation's monthly spend limit is reached."""
    return error(
        429,
        "rate_limit_error",
        "You have reached your specified API usage limits. You will regain access on "
        "2026-12-01 at 00:00 UTC.",
        details={"error_code": "enforced_spend_limit_reached"},
        headers={"retry-after": "60"},
    )


def hang(delay_s: float, step: Step | None = None) -> Step:
    """``step`` (a text answer by default), sent only after ``delay_s`` seconds."""
    return replace(step or text("late answer"), delay_s=delay_s)


def truncated(step: Step | None = None, at: int = 25) -> Step:
    """``step`` (a text answer by default) with its body cut after ``at`` bytes."""
    return replace(step or text("this body will be cut short"), truncate_to=at)


def non_json(body: str = "<html><body>502 Bad Gateway</body></html>", status: int = 200) -> Step:
    """A body that is not JSON (a proxy's HTML page), served as ``application/json``."""
    return Step(status=status, body=body)


def write_then_finish(
    path: str = "NOTES.md",
    content: str = "Written by the fake agent.\n",
    summary: str | None = None,
    *,
    usage: Mapping[str, int] | None = None,
) -> list[Step]:
    """A plausible agent: look around, write one file, then finish (three turns)."""
    return [
        tool_calls(
            call("list_files", path="."), text="Let me look at the repository.", usage=usage
        ),
        tool_calls(call("write_file", path=path, content=content), usage=usage),
        tool_calls(call("finish", summary=summary or f"wrote {path}"), usage=usage),
    ]


def estimate_tokens(payload: object) -> int:
    """``ceil(bytes / 4)`` of the JSON of ``payload``, at least 1."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return max(1, math.ceil(len(raw) / 4))


# ----------------------------------------------------------------------------- server

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


class AnthropicFake:
    """A scripted Messages API. See the module docstring for the step vocabulary.

    Args:
        steps: The answers, played in order; more can be added with :meth:`script`.
        expected_key: When set, requests without this key (``x-api-key`` or
            ``Authorization: Bearer``) get a 401 ``authentication_error``.
        model: The model id the fake reports (by default the one requested).
        validate: Check each request like the real API does (400 on a violation).

    When the script runs out, the fake answers 400 ``invalid_request_error`` ("script
    exhausted") so a runaway loop fails fast.
    """

    provider = "anthropic"

    def __init__(
        self,
        steps: Iterable[Step] = (),
        *,
        expected_key: str | None = None,
        model: str | None = None,
        validate: bool = True,
    ) -> None:
        self.steps: list[Step] = list(steps)
        self.expected_key = expected_key
        self.model = model
        self.validate = validate
        self.position = 0
        self.violations: list[str] = []
        self._cached_prefixes: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = LoopbackServer(self.handle)

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> AnthropicFake:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def url(self) -> str:
        """Base URL for the SDK (``http://127.0.0.1:PORT``)."""
        return self._server.url

    @property
    def requests(self) -> list[Request]:
        """Every HTTP request received, in order."""
        return self._server.requests

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the ``POST /v1/messages`` requests."""
        return [r.json() for r in self.requests if r.path == "/v1/messages"]

    @property
    def remaining(self) -> int:
        """Steps not played yet."""
        return len(self.steps) - self.position

    def script(self, *steps: Step | Iterable[Step]) -> AnthropicFake:
        """Append steps (or lists of steps); returns the fake for chaining."""
        for item in steps:
            self.steps.extend([item] if isinstance(item, Step) else list(item))
        return self

    def spec(self, key_env: str = "ANTHROPIC_API_KEY", **overrides: Any) -> AgentSpec:
        """An ``AgentSpec`` that talks to this fake (override prices, timeout_s …)."""
        data: dict[str, Any] = {
            "provider": "anthropic",
            "model": "claude-fake-1",
            "api_key": f"${{{key_env}}}",
            "base_url": self.url,
            "max_tokens": 1024,
        }
        data.update(overrides)
        return AgentSpec.model_validate(data)

    # -- protocol ------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        """Answer one HTTP request (called on the server thread)."""
        if request.method != "POST" or request.path != "/v1/messages":
            return _error_reply(404, "not_found_error", f"Not found: {request.path}")
        if self.expected_key is not None and _key(request) != self.expected_key:
            return _error_reply(401, "authentication_error", "invalid x-api-key")
        try:
            body = request.json()
        except ValueError:
            return _error_reply(400, "invalid_request_error", "request body is not valid JSON")
        if self.validate:
            problem = validate_request(body)
            if problem is not None:
                with self._lock:
                    self.violations.append(problem)
                return _error_reply(400, "invalid_request_error", problem)
        with self._lock:
            if self.position >= len(self.steps):
                return _error_reply(
                    400, "invalid_request_error", "fake script exhausted: no more steps"
                )
            step = self.steps[self.position]
            self.position += 1
            usage = self._usage(body, step)
            message_id = f"msg_fake_{next(self._ids):04d}"
        return self._reply(step, body, usage, message_id)

    def _reply(self, step: Step, body: Any, usage: dict[str, int], message_id: str) -> Reply:
        headers = dict(step.headers)
        if step.body is not None:
            payload: Any = step.body
        elif step.status != 200:
            kind = step.error_type or ERROR_TYPES.get(
                step.status, "api_error" if step.status >= 500 else "invalid_request_error"
            )
            payload = _error_body(kind, step.message or f"fake {kind}", step.details)
            headers.setdefault("request-id", f"req_fake_{message_id}")
        else:
            content: list[dict[str, Any]] = []
            if step.text is not None:
                content.append({"type": "text", "text": step.text})
            for index, scripted in enumerate(step.calls):
                arguments = (
                    scripted.arguments
                    if isinstance(scripted.arguments, str)
                    else dict(scripted.arguments)
                )
                content.append(
                    {
                        "type": "tool_use",
                        "id": scripted.id or f"toolu_{message_id}_{index}",
                        "name": scripted.name,
                        "input": arguments,
                    }
                )
            payload = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": self.model or body.get("model", "claude-fake"),
                "content": content,
                "stop_reason": step.stop_reason or ("tool_use" if step.calls else "end_turn"),
                "stop_sequence": None,
                "usage": usage,
            }
        return Reply(
            status=step.status,
            body=payload,
            headers=headers,
            delay_s=step.delay_s,
            truncate_to=step.truncate_to,
        )

    def _usage(self, body: Any, step: Step) -> dict[str, int]:
        """Documented usage fields; a simulated prompt cache unless the step gives usage."""
        usage = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if step.usage is not None:
            usage.update(step.usage)
            return usage
        total = estimate_tokens(body)
        prefix = _cached_prefix(body)
        cached = min(estimate_tokens(prefix), total) if prefix else 0
        if prefix and prefix in self._cached_prefixes:
            usage["cache_read_input_tokens"] = cached
        elif prefix:
            self._cached_prefixes.add(prefix)
            usage["cache_creation_input_tokens"] = cached
        usage["input_tokens"] = total - cached
        answer = [step.text or "", *[json.dumps([c.name, c.arguments]) for c in step.calls]]
        usage["output_tokens"] = estimate_tokens("".join(answer))
        return usage

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)


def _key(request: Request) -> str | None:
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    auth = request.headers.get("authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None


def _error_body(kind: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        error["details"] = details
    return {"type": "error", "error": error}


def _error_reply(status: int, kind: str, message: str) -> Reply:
    return Reply(status=status, body=_error_body(kind, message))


def _cached_prefix(body: Mapping[str, Any]) -> str:
    """The JSON of tools + system up to the last ``cache_control`` breakpoint ("" if none)."""
    pieces: list[Any] = []
    prefix: list[Any] = []
    for tool in body.get("tools") or []:
        pieces.append(tool)
        if isinstance(tool, Mapping) and "cache_control" in tool:
            prefix = list(pieces)
    system = body.get("system")
    for block in system if isinstance(system, list) else []:
        pieces.append(block)
        if isinstance(block, Mapping) and "cache_control" in block:
            prefix = list(pieces)
    return json.dumps(prefix) if prefix else ""


def validate_request(body: Any) -> str | None:
    """The first way ``body`` breaks the Messages API's rules, or ``None``."""
    if not isinstance(body, Mapping):
        return "body: expected an object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required (an integer >= 1)"
    breakpoints = 0
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list):
            return "system: expected a string or a list of text blocks"
        for index, block in enumerate(system):
            if not isinstance(block, Mapping) or block.get("type") != "text":
                return f"system.{index}: expected a text block"
            if not str(block.get("text", "")).strip():
                return f"system.{index}: text content blocks must be non-empty"
            breakpoints += "cache_control" in block
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: expected a list"
        for index, tool in enumerate(tools):
            if not isinstance(tool, Mapping):
                return f"tools.{index}: expected an object"
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return f"tools.{index}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            if name in names:
                return f"tools: Tool names must be unique ({name})"
            names.add(name)
            schema = tool.get("input_schema")
            if not isinstance(schema, Mapping) or schema.get("type") != "object":
                return f"tools.{index}.input_schema: input_schema must have type 'object'"
            breakpoints += "cache_control" in tool
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            return f"{where}.role: Input should be 'user' or 'assistant'"
        role = message["role"]
        expected_role = "user" if index % 2 == 0 else "assistant"
        if role != expected_role:
            return (
                f"{where}: roles must alternate between 'user' and 'assistant', starting with user"
            )
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list) or not content:
            return f"{where}: all messages must have non-empty content"
        results: list[str] = []
        seen_other = False
        uses: list[str] = []
        for number, block in enumerate(content):
            spot = f"{where}.content.{number}"
            if not isinstance(block, Mapping):
                return f"{spot}: expected a content block"
            breakpoints += "cache_control" in block
            kind = block.get("type")
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"].strip():
                    return f"{spot}: text content blocks must contain non-whitespace text"
                seen_other = True
            elif kind == "tool_use":
                if role != "assistant":
                    return f"{spot}: tool_use blocks are only allowed in assistant messages"
                if not isinstance(block.get("input"), Mapping):
                    return f"{spot}.input: Input should be a valid dictionary"
                if not isinstance(block.get("id"), str) or not block["id"]:
                    return f"{spot}.id: Field required"
                if names and block.get("name") not in names:
                    return f"{spot}.name: tool_use names a tool that is not defined"
                uses.append(block["id"])
            elif kind == "tool_result":
                if role != "user":
                    return f"{spot}: tool_result blocks are only allowed in user messages"
                if seen_other:
                    return f"{spot}: tool_result blocks must come first in the user message"
                result_content = block.get("content")
                if not isinstance(result_content, str | list):
                    return f"{spot}.content: expected a string or a list of blocks"
                if "is_error" in block and not isinstance(block["is_error"], bool):
                    return f"{spot}.is_error: Input should be a valid boolean"
                results.append(str(block.get("tool_use_id")))
            else:
                return f"{spot}.type: unsupported content block type {kind!r}"
        if role == "user":
            missing = [i for i in pending if i not in results]
            if missing:
                return (
                    f"{where}: tool_use ids were found without tool_result blocks immediately "
                    f"after: {', '.join(missing)}"
                )
            unknown = [i for i in results if i not in pending]
            if unknown:
                return (
                    f"{where}: unexpected tool_use_id found in tool_result blocks: "
                    f"{', '.join(unknown)}. Each tool_result block must have a corresponding "
                    "tool_use block in the previous message."
                )
            pending = []
        else:
            pending = uses
    if messages[-1].get("role") != "user" and pending:
        return "messages: the final assistant message cannot end with tool_use"
    if breakpoints > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
    return None
