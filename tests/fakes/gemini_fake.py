"""A scripted Gemini API on 127.0.0.1, for the real ``google-genai`` SDK.

It speaks ``POST /{v1,v1beta}/models/{model}:generateContent`` as the API reference documents
it, and batch mode on ``v1beta`` (``models/{model}:batchGenerateContent``, ``batches/{id}``,
``batches/{id}:cancel``; see ``gemini_fake_batch``). It checks requests the way the API does
(``gemini_fake_rules``): roles, non-empty parts, function responses matching the previous
turn's calls, the schema dialect, ``inlineData`` types and base64, and the 20 MB request
limit; with ``require_thought_signatures`` it also hands out and enforces Gemini 3's thought
signatures. A violation gets the API's 400 ``INVALID_ARGUMENT`` and is kept in ``violations``.

It plays the :class:`~tests.fakes.anthropic_fake.Step` vocabulary (re-exported here), plus
:func:`blocked`, :func:`finish_blocked`, :func:`malformed_function_call`, :func:`rate_limited`
(per-minute 429), :func:`daily_quota_exhausted` (per-day 429) and :func:`resource_exhausted`
(429 without a quota detail)::

    with GeminiFake(write_then_finish("NOTES.md"), expected_key="AIza-test") as fake:
        spec = fake.spec()          # AgentSpec: provider gemini, base_url=fake.url
        ...
        fake.bodies[0]["tools"]     # what the SDK sent
        fake.cache.stats().share    # simulated implicit caching

Usage: unless a step gives ``usage`` (Gemini's field names), ``promptTokenCount`` is
``ceil(bytes / 4)`` of the request, ``candidatesTokenCount`` that of the answer, and
``cachedContentTokenCount`` what the simulated implicit cache (``fake.cache``) found.
Calls carry no ``id`` (as the Gemini API sends them) unless the scripted call has one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from orchestrator.contracts import AgentSpec
from tests.fakes.anthropic_fake import (
    Call,
    Step,
    call,
    error,
    estimate_tokens,
    hang,
    non_json,
    raw_call,
    text,
    tool_calls,
    truncated,
    write_then_finish,
)
from tests.fakes.gemini_fake_batch import (
    BatchPlan,
    FakeBatch,
    Outcome,
    batch_problem,
    error_answer,
    new_batch_name,
)
from tests.fakes.gemini_fake_rules import (
    MAX_REQUEST_BYTES,
    CacheStats,
    ImplicitCache,
    SignatureBook,
    validate_request,
)
from tests.fakes.gemini_fake_steps import (
    STATUSES,
    blocked,
    daily_quota_exhausted,
    error_body,
    error_reply,
    finish_blocked,
    malformed_function_call,
    rate_limited,
    resource_exhausted,
)
from tests.fakes.loopback import LoopbackServer, Reply, Request

__all__ = [
    "BatchPlan",
    "Call",
    "GeminiFake",
    "Step",
    "blocked",
    "call",
    "daily_quota_exhausted",
    "error",
    "finish_blocked",
    "hang",
    "malformed_function_call",
    "non_json",
    "rate_limited",
    "raw_call",
    "resource_exhausted",
    "text",
    "tool_calls",
    "truncated",
    "validate_request",
    "write_then_finish",
]


class GeminiFake:
    """A scripted Gemini API. See the module docstring.

    Args:
        steps: The answers, played in order (one per generateContent call or inline batch
            request); more can be added with :meth:`script`.
        expected_key: When set, a request without this key (``x-goog-api-key`` or ``?key=``)
            gets the API's 400 ``INVALID_ARGUMENT`` "API key not valid".
        validate: Check each request like the real API does (400 on a violation).
        require_thought_signatures: Behave like a Gemini 3 model: sign the first call of each
            answer (and the last text part of a text answer) and refuse a request whose
            current turn lacks a signature or carries one the fake never issued.
        cache_min_tokens: The implicit cache's minimum prefix (``fake.cache.min_tokens``).
        max_request_bytes: Bodies above this get the API's "payload size exceeds" 400.
        batch_plan: How batches created from now on complete (``fake.batch_plan``).

    When the script runs out the fake answers 400 ``INVALID_ARGUMENT`` ("script exhausted").
    """

    provider = "gemini"

    def __init__(
        self,
        steps: Iterable[Step] = (),
        *,
        expected_key: str | None = None,
        validate: bool = True,
        require_thought_signatures: bool = False,
        cache_min_tokens: int = 4096,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        batch_plan: BatchPlan | None = None,
    ) -> None:
        self.steps: list[Step] = list(steps)
        self.expected_key = expected_key
        self.validate = validate
        self.require_thought_signatures = require_thought_signatures
        self.max_request_bytes = max_request_bytes
        self.batch_plan = batch_plan or BatchPlan()
        self.position = 0
        self.violations: list[str] = []
        self.signatures = SignatureBook()
        self.cache = ImplicitCache(min_tokens=cache_min_tokens)
        self.batches: dict[str, FakeBatch] = {}
        self._lock = threading.RLock()
        self._server = LoopbackServer(self.handle)

    def __enter__(self) -> GeminiFake:
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
        """The JSON bodies of the generateContent requests."""
        return [r.json() for r in self.requests if r.path.endswith(":generateContent")]

    @property
    def batch_requests(self) -> list[dict[str, Any]]:
        """Every inline request of every batch created, in order (``{"request", "metadata"}``)."""
        with self._lock:
            return [item for batch in self.batches.values() for item in batch.requests]

    @property
    def remaining(self) -> int:
        """Steps not played yet."""
        return len(self.steps) - self.position

    def cache_stats(self) -> CacheStats:
        """Requests, hits, prompt and cached tokens of the simulated implicit cache."""
        return self.cache.stats()

    def finish_batch(self, name: str, outcome: Outcome = "succeeded") -> None:
        """End batch ``name`` now (``KeyError`` when the fake holds no such batch)."""
        with self._lock:
            self.batches[name].finish(outcome)

    def script(self, *steps: Step | Iterable[Step]) -> GeminiFake:
        """Append steps (or lists of steps); returns the fake for chaining."""
        for item in steps:
            self.steps.extend([item] if isinstance(item, Step) else list(item))
        return self

    def spec(self, key_env: str = "GEMINI_API_KEY", **overrides: Any) -> AgentSpec:
        """An ``AgentSpec`` that talks to this fake (override prices, timeout_s …)."""
        data: dict[str, Any] = {
            "provider": "gemini",
            "model": "gemini-fake-1",
            "api_key": f"${{{key_env}}}",
            "base_url": self.url,
            "max_tokens": 1024,
        }
        data.update(overrides)
        return AgentSpec.model_validate(data)

    # ------------------------------------------------------------------------- protocol

    def handle(self, request: Request) -> Reply:
        """Answer one HTTP request (called on the server thread)."""
        route = _route(request)
        if route is None:
            return error_reply(404, f"Method not found: {request.method} {request.path}")
        if self.expected_key is not None and _key(request) != self.expected_key:
            return error_reply(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )
        kind, target = route
        if kind == "get":
            return self._batch_get(target)
        if len(request.body) > self.max_request_bytes:
            limit = self.max_request_bytes
            return error_reply(400, f"Request payload size exceeds the limit: {limit} bytes.")
        if kind == "cancel":
            return self._batch_cancel(target)
        try:
            body = request.json()
        except ValueError:
            return error_reply(400, "Invalid JSON payload received.")
        if kind == "create":
            return self._batch_create(body, target)
        return self._generate(body, target)

    def _generate(self, body: Any, model: str) -> Reply:
        problem = self._problem(body)
        if problem is not None:
            return error_reply(400, problem)
        step = self._next_step()
        if step is None:
            return error_reply(400, "fake script exhausted: no more steps")
        status, payload = self._answer(step, body, model)
        return Reply(
            status=status,
            body=payload,
            headers=dict(step.headers),
            delay_s=step.delay_s,
            truncate_to=step.truncate_to,
        )

    def _problem(self, body: Any) -> str | None:
        """The first rule ``body`` breaks (recorded in ``violations``), or ``None``."""
        if not self.validate:
            return None
        problem = validate_request(body)
        if problem is None and self.require_thought_signatures:
            problem = self.signatures.problem(body)
        if problem is not None:
            with self._lock:
                self.violations.append(problem)
        return problem

    def _next_step(self) -> Step | None:
        with self._lock:
            if self.position >= len(self.steps):
                return None
            step = self.steps[self.position]
            self.position += 1
            return step

    def _answer(self, step: Step, body: Any, model: str) -> tuple[int, Any]:
        """The status and JSON body of ``step`` played against ``body``."""
        if step.body is not None:
            return step.status, step.body
        if step.status != 200:
            status = step.error_type or STATUSES.get(
                step.status, "INTERNAL" if step.status >= 500 else "INVALID_ARGUMENT"
            )
            message = step.message or f"fake {status}"
            return step.status, error_body(step.status, status, message, step.details)
        prompt = estimate_tokens(body)
        usage: dict[str, int] = {"promptTokenCount": prompt}
        cached = self.cache.lookup(model, body, prompt)
        if cached:
            usage["cachedContentTokenCount"] = cached
        if step.block_reason is not None:
            usage["totalTokenCount"] = prompt
            return 200, {
                "promptFeedback": {"blockReason": step.block_reason},
                "usageMetadata": usage,
            }
        parts = self._parts(step)
        output = estimate_tokens(parts) if parts else 0
        usage.update(candidatesTokenCount=output, totalTokenCount=prompt + output)
        if step.usage is not None:
            usage = dict(step.usage)
        candidate: dict[str, Any] = {"finishReason": step.stop_reason or "STOP", "index": 0}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        return 200, {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": f"fake-{self.position}",
        }

    def _parts(self, step: Step) -> list[dict[str, Any]]:
        """The answer's parts, signed like the model the fake plays."""
        parts: list[dict[str, Any]] = []
        if step.text is not None:
            parts.append({"text": step.text})
        if step.thought_signature:
            self.signatures.register(step.thought_signature)
        for index, scripted in enumerate(step.calls):
            function_call: dict[str, Any] = {"name": scripted.name}
            if isinstance(scripted.arguments, str):
                function_call["args"] = scripted.arguments  # malformed on purpose
            else:
                function_call["args"] = dict(scripted.arguments)
            if scripted.id:
                function_call["id"] = scripted.id
            part: dict[str, Any] = {"functionCall": function_call}
            if step.thought_signature:
                part["thoughtSignature"] = step.thought_signature
            elif self.require_thought_signatures and index == 0:
                part["thoughtSignature"] = self.signatures.issue()  # parallel calls: first only
            parts.append(part)
        if self.require_thought_signatures and parts and not step.calls:
            parts[-1]["thoughtSignature"] = self.signatures.issue()
        return parts

    # ---------------------------------------------------------------------- batch mode

    def _batch_create(self, body: Any, model: str) -> Reply:
        problem = batch_problem(body)
        items: list[dict[str, Any]] = []
        if problem is None:
            items = body["batch"]["inputConfig"]["requests"]["requests"]
            problem = self._items_problem(items)
        if problem is not None:
            return error_reply(400, problem)
        answers = [self._batch_answer(item, model) for item in items]
        batch = FakeBatch(
            name=new_batch_name(),
            model=model,
            display_name=body["batch"]["displayName"],
            requests=items,
            answers=answers,
            plan=self.batch_plan,
        )
        with self._lock:
            self.batches[batch.name] = batch
        return Reply(status=200, body=batch.resource())

    def _items_problem(self, items: list[dict[str, Any]]) -> str | None:
        """The first inline request that breaks a rule: the whole batch is refused."""
        for index, item in enumerate(items):
            problem = self._problem(item["request"])
            if problem is not None:
                return f"batch.input_config.requests.requests[{index}].request: {problem}"
        return None

    def _batch_answer(self, item: dict[str, Any], model: str) -> dict[str, Any]:
        metadata = item.get("metadata")
        step = self._next_step()
        if step is None:
            return error_answer(400, "fake script exhausted: no more steps", None, metadata)
        if step.status != 200 and step.body is None:
            message = step.message or f"fake {STATUSES.get(step.status, 'error')}"
            return error_answer(step.status, message, step.details, metadata)
        _, payload = self._answer(step, item["request"], model)
        answer: dict[str, Any] = {"response": payload}
        if metadata is not None:
            answer["metadata"] = metadata
        return answer

    def _batch_get(self, batch_id: str) -> Reply:
        with self._lock:
            batch = self.batches.get(f"batches/{batch_id}")
            if batch is None:
                return error_reply(404, "Requested entity was not found.")
            batch.poll()
            return Reply(status=200, body=batch.resource())

    def _batch_cancel(self, batch_id: str) -> Reply:
        with self._lock:
            batch = self.batches.get(f"batches/{batch_id}")
            if batch is None:
                return error_reply(404, "Requested entity was not found.")
            batch.cancel_calls += 1
            if batch.done:
                return Reply(
                    status=400,
                    body=error_body(
                        400, "FAILED_PRECONDITION", "The batch has already ended.", None
                    ),
                )
            batch.finish("cancelled")
            return Reply(status=200, body={})


def _route(request: Request) -> tuple[str, str] | None:
    """``(kind, model or batch id)`` of a request the API serves, or ``None`` (404).

    generateContent is served on v1 (the SDK's default) and v1beta; batch mode only on
    v1beta, where the reference documents it.
    """
    parts = request.path.strip("/").split("/")
    if len(parts) != 3 or parts[0] not in ("v1", "v1beta"):
        return None
    version, collection, leaf = parts
    if request.method == "POST" and collection == "models":
        if leaf.endswith(":generateContent"):
            return "generate", leaf.removesuffix(":generateContent")
        if version == "v1beta" and leaf.endswith(":batchGenerateContent"):
            return "create", leaf.removesuffix(":batchGenerateContent")
    if version == "v1beta" and collection == "batches":
        if request.method == "GET" and ":" not in leaf:
            return "get", leaf
        if request.method == "POST" and leaf.endswith(":cancel"):
            return "cancel", leaf.removesuffix(":cancel")
    return None


def _key(request: Request) -> str | None:
    return request.headers.get("x-goog-api-key") or next(iter(request.query.get("key", [])), None)
