"""A scripted Anthropic Messages API on 127.0.0.1, for the real ``anthropic`` SDK.

It speaks ``POST /v1/messages`` as the API reference documents it: it checks the request the
way the API does (:mod:`tests.fakes.anthropic_fake_rules`: roles, ``tool_use``/``tool_result``
pairing, images, thinking blocks, ``tool_choice``, at most four ``cache_control``
breakpoints) and answers a violation with a 400 ``invalid_request_error``, so a provider bug
fails like it would in production. Each valid request plays the next scripted :class:`Step`.
Message Batches (create, poll, JSONL results, cancel) play the same steps when a batch ends
(:mod:`tests.fakes.anthropic_fake_batch`).

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
    with_thinking(tool_calls(...), "reasoning", redacted=True)  # thinking blocks first
    batch_outcome("expired")                           # a batch request that never ran

Use it as a context manager or a pytest fixture::

    with AnthropicFake([text("hi")], expected_key="sk-test") as fake:
        spec = fake.spec()          # AgentSpec: provider anthropic, base_url=fake.url
        ...
        fake.bodies[0]["system"]    # what the SDK sent

Usage: unless a step gives ``usage``, the prompt cache is simulated as documented
(:mod:`tests.fakes.anthropic_fake_cache`): the prefix up to a ``cache_control`` breakpoint is
written the first time (``cache_creation_input_tokens``) and read afterwards
(``cache_read_input_tokens``) when it reaches the model's minimum cacheable length;
``input_tokens`` is only the uncached rest. Output tokens are ``ceil(bytes / 4)``.

Thinking: a step ``with_thinking`` answers with signed ``thinking`` (and optionally
``redacted_thinking``) blocks first. The fake then expects them back, unchanged and first, in
that assistant turn when the tool results come, and refuses forced ``tool_choice`` while
thinking.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from orchestrator.contracts import AgentSpec
from tests.fakes.anthropic_fake_batch import FakeBatches
from tests.fakes.anthropic_fake_cache import CacheStats, PromptCache
from tests.fakes.anthropic_fake_rules import validate_request
from tests.fakes.anthropic_fake_steps import (
    Call,
    Step,
    batch_outcome,
    call,
    error,
    estimate_tokens,
    hang,
    non_json,
    raw_call,
    spend_limit,
    text,
    tool_calls,
    truncated,
    with_thinking,
    write_then_finish,
)
from tests.fakes.anthropic_fake_thinking import (
    check_thinking_returned,
    redacted_data,
    sign_thinking,
    tool_use_ids,
)
from tests.fakes.loopback import LoopbackServer, Reply, Request

__all__ = [
    "AnthropicFake",
    "Call",
    "Step",
    "batch_outcome",
    "call",
    "error",
    "estimate_tokens",
    "hang",
    "non_json",
    "raw_call",
    "spend_limit",
    "text",
    "tool_calls",
    "truncated",
    "validate_request",
    "with_thinking",
    "write_then_finish",
]

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


class AnthropicFake:
    """A scripted Messages API. See the module docstring for the step vocabulary.

    Args:
        steps: The answers, played in order; more can be added with :meth:`script`.
        expected_key: When set, requests without this key (``x-api-key`` or
            ``Authorization: Bearer``) get a 401 ``authentication_error``.
        model: The model id the fake reports (by default the one requested).
        validate: Check each request like the real API does (400 on a violation).
        batch_polls: Polls a Message Batch answers ``in_progress`` before it ends (``None``:
            it never ends).
        min_cache_tokens: Override the model's minimum cacheable prefix (``None``: the
            documented table; the fake's own ``claude-fake-*`` ids cache any prefix).
        clock: Monotonic seconds for the prompt cache's TTLs.

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
        batch_polls: int | None = 1,
        min_cache_tokens: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.steps: list[Step] = list(steps)
        self.expected_key = expected_key
        self.model = model
        self.validate = validate
        self.position = 0
        self.violations: list[str] = []
        self.cache = PromptCache(clock=clock, min_tokens=min_cache_tokens)
        self.batches = FakeBatches(lambda: self.url, self._batch_answer, batch_polls)
        # tool_use id → the thinking blocks of the response that made it (sent back verbatim)
        self._thinking: dict[str, list[dict[str, Any]]] = {}
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
    def batch_bodies(self) -> list[Any]:
        """The JSON bodies of the ``POST /v1/messages/batches`` requests."""
        return [r.json() for r in self.requests if r.path == "/v1/messages/batches"]

    @property
    def remaining(self) -> int:
        """Steps not played yet."""
        return len(self.steps) - self.position

    def cache_stats(self) -> CacheStats:
        """Totals of the simulated prompt cache (steps with their own ``usage`` excluded)."""
        return self.cache.stats()

    def script(self, *steps: Step | Iterable[Step]) -> AnthropicFake:
        """Append steps (or lists of steps); returns the fake for chaining."""
        for item in steps:
            self.steps.extend([item] if isinstance(item, Step) else list(item))
        return self

    def spec(self, key_env: str = "ANTHROPIC_API_KEY", **overrides: Any) -> AgentSpec:
        """An ``AgentSpec`` that talks to this fake (override model, prices, timeout_s …)."""
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
        messages = request.path == "/v1/messages"
        if not (messages or self.batches.handles(request.path)):
            return _error_reply(404, "not_found_error", f"Not found: {request.path}")
        if self.expected_key is not None and _key(request) != self.expected_key:
            return _error_reply(401, "authentication_error", "invalid x-api-key")
        try:
            body = request.json() if request.body else None
        except ValueError:
            return _error_reply(400, "invalid_request_error", "request body is not valid JSON")
        if not messages:
            status, payload = self.batches.handle(request.method, request.path, body)
            jsonl = isinstance(payload, str)
            headers = {"Content-Type": "application/binary"} if jsonl else {}
            return Reply(status=status, body=payload, headers=headers)
        if request.method != "POST":
            return _error_reply(405, "invalid_request_error", "use POST /v1/messages")
        step, payload = self._play(body)
        headers = dict(step.headers)
        if step.status != 200 and step.body is None:
            headers.setdefault("request-id", f"req_fake_{next(self._ids):04d}")
        return Reply(
            status=step.status,
            body=step.body if step.body is not None else payload,
            headers=headers,
            delay_s=step.delay_s,
            truncate_to=step.truncate_to,
        )

    def _play(self, body: Any) -> tuple[Step, dict[str, Any]]:
        """Validate one Messages request and play the next step: ``(step, JSON body)``.

        A request the API would refuse plays no step: the step is a 400 made up for it.
        """
        if self.validate:
            problem = validate_request(body, thinking=self._thinking_expected(body))
            problem = problem or check_thinking_returned(body, self._thinking)
            if problem is not None:
                with self._lock:
                    self.violations.append(problem)
                return Step(status=400), _error_body("invalid_request_error", problem)
        with self._lock:
            if self.position >= len(self.steps):
                problem = "fake script exhausted: no more steps"
                return Step(status=400), _error_body("invalid_request_error", problem)
            step = self.steps[self.position]
            self.position += 1
            message_id = f"msg_fake_{next(self._ids):04d}"
            if step.status != 200:
                kind = step.error_type or ERROR_TYPES.get(
                    step.status, "api_error" if step.status >= 500 else "invalid_request_error"
                )
                return step, _error_body(kind, step.message or f"fake {kind}", step.details)
            usage = self._usage(body, step)
            content = _content(step, message_id)
            thinking = [b for b in content if b["type"] in ("thinking", "redacted_thinking")]
            for block in content:
                if block["type"] == "tool_use" and thinking:
                    self._thinking[block["id"]] = thinking
        return step, {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model or body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": step.stop_reason or ("tool_use" if step.calls else "end_turn"),
            "stop_sequence": None,
            "usage": usage,
        }

    def _batch_answer(self, params: Any) -> dict[str, Any]:
        """The ``result`` of one batch request (a step played like ``POST /v1/messages``)."""
        step, payload = self._play(params)
        if step.batch_result is not None:
            return {"type": step.batch_result}
        if payload.get("type") == "error":
            return {"type": "errored", "error": payload}
        return {"type": "succeeded", "message": payload}

    def _thinking_expected(self, body: Any) -> bool:
        """Whether this conversation answers tool calls the fake made while thinking."""
        return any(use in self._thinking for use in tool_use_ids(body))

    def _usage(self, body: Any, step: Step) -> dict[str, Any]:
        """Documented usage fields; the simulated prompt cache unless the step gives usage."""
        usage: dict[str, Any] = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if step.usage is not None:
            usage.update(step.usage)
            return usage
        usage.update(self.cache.account(body))
        answer = [step.text or "", *[json.dumps([c.name, c.arguments]) for c in step.calls]]
        usage["output_tokens"] = estimate_tokens("".join(answer))
        return usage

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)


def _content(step: Step, message_id: str) -> list[dict[str, Any]]:
    """The content blocks of a scripted answer: thinking, text, tool calls."""
    content: list[dict[str, Any]] = []
    if step.thinking is not None:
        content.append(
            {
                "type": "thinking",
                "thinking": step.thinking,
                "signature": sign_thinking(step.thinking),
            }
        )
    if step.redacted_thinking:
        content.append({"type": "redacted_thinking", "data": redacted_data(message_id)})
    if step.text is not None:
        content.append({"type": "text", "text": step.text})
    for index, scripted in enumerate(step.calls):
        arguments = (
            scripted.arguments if isinstance(scripted.arguments, str) else dict(scripted.arguments)
        )
        content.append(
            {
                "type": "tool_use",
                "id": scripted.id or f"toolu_{message_id}_{index}",
                "name": scripted.name,
                "input": arguments,
            }
        )
    return content


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
