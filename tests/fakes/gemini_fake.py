"""A scripted Gemini API on 127.0.0.1, for the real ``google-genai`` SDK.

It speaks ``POST /{v1,v1beta}/models/{model}:generateContent`` as the API reference documents
it and checks requests the way the API does: roles ``user``/``model`` with non-empty parts,
function responses matching the previous turn's function calls one for one, and function
declarations whose ``parameters`` use only the OpenAPI-subset keys Gemini knows (an unknown
key such as ``additionalProperties`` gets the API's 400 ``INVALID_ARGUMENT`` "Unknown name").

It plays the same :class:`~tests.fakes.anthropic_fake.Step` vocabulary as the Anthropic fake
(re-exported here), plus :func:`blocked` (``promptFeedback.blockReason``),
:func:`finish_blocked` (``finishReason: SAFETY``), :func:`malformed_function_call` and
:func:`rate_limited` (429 with a ``RetryInfo`` detail)::

    with GeminiFake(write_then_finish("NOTES.md"), expected_key="AIza-test") as fake:
        spec = fake.spec()          # AgentSpec: provider gemini, base_url=fake.url
        ...
        fake.bodies[0]["tools"]     # what the SDK sent

Usage: unless a step gives ``usage`` (Gemini's field names), ``promptTokenCount`` is
``ceil(bytes / 4)`` of the request and ``candidatesTokenCount`` that of the answer.
Calls carry no ``id`` (as the Gemini API sends them) unless the scripted call has one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
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
from tests.fakes.loopback import LoopbackServer, Reply, Request

__all__ = [
    "Call",
    "GeminiFake",
    "Step",
    "blocked",
    "call",
    "error",
    "finish_blocked",
    "hang",
    "malformed_function_call",
    "non_json",
    "rate_limited",
    "raw_call",
    "text",
    "tool_calls",
    "truncated",
    "write_then_finish",
]

STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: Keys Gemini's ``parameters`` schema accepts.
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})


def blocked(reason: str = "SAFETY") -> Step:
    """The prompt was blocked: no candidates, ``promptFeedback.blockReason``."""
    return Step(block_reason=reason)


def finish_blocked(reason: str = "SAFETY") -> Step:
    """A candidate withheld for ``reason`` (``finishReason``), without content."""
    return Step(stop_reason=reason)


def malformed_function_call() -> Step:
    """Gemini's own malformed call: ``finishReason: MALFORMED_FUNCTION_CALL``, no parts."""
    return Step(stop_reason="MALFORMED_FUNCTION_CALL")


def rate_limited(retry_delay: str = "12s", headers: Mapping[str, str] | None = None) -> Step:
    """429 ``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` detail."""
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        headers=headers,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ],
    )


class GeminiFake:
    """A scripted Gemini generateContent endpoint. See the module docstring.

    Args:
        steps: The answers, played in order; more can be added with :meth:`script`.
        expected_key: When set, a request without this key (``x-goog-api-key`` or ``?key=``)
            gets the API's 400 ``INVALID_ARGUMENT`` "API key not valid".
        validate: Check each request like the real API does (400 on a violation).

    When the script runs out the fake answers 400 ``INVALID_ARGUMENT`` ("script exhausted").
    """

    provider = "gemini"

    def __init__(
        self,
        steps: Iterable[Step] = (),
        *,
        expected_key: str | None = None,
        validate: bool = True,
    ) -> None:
        self.steps: list[Step] = list(steps)
        self.expected_key = expected_key
        self.validate = validate
        self.position = 0
        self.violations: list[str] = []
        self._lock = threading.Lock()
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
    def remaining(self) -> int:
        """Steps not played yet."""
        return len(self.steps) - self.position

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

    def handle(self, request: Request) -> Reply:
        """Answer one HTTP request (called on the server thread)."""
        parts = request.path.strip("/").split("/")
        if (
            request.method != "POST"
            or len(parts) != 3
            or parts[0] not in ("v1", "v1beta")
            or parts[1] != "models"
            or not parts[2].endswith(":generateContent")
        ):
            return _error_reply(404, f"Method not found: {request.method} {request.path}")
        if self.expected_key is not None:
            key = request.headers.get("x-goog-api-key") or next(
                iter(request.query.get("key", [])), None
            )
            if key != self.expected_key:
                return _error_reply(
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
        try:
            body = request.json()
        except ValueError:
            return _error_reply(400, "Invalid JSON payload received.")
        if self.validate:
            problem = validate_request(body)
            if problem is not None:
                with self._lock:
                    self.violations.append(problem)
                return _error_reply(400, problem)
        with self._lock:
            if self.position >= len(self.steps):
                return _error_reply(400, "fake script exhausted: no more steps")
            step = self.steps[self.position]
            self.position += 1
        return self._reply(step, body, parts[2].removesuffix(":generateContent"))

    def _reply(self, step: Step, body: Any, model: str) -> Reply:
        headers = dict(step.headers)
        if step.body is not None:
            payload: Any = step.body
        elif step.status != 200:
            status = step.error_type or STATUSES.get(
                step.status, "INTERNAL" if step.status >= 500 else "INVALID_ARGUMENT"
            )
            payload = _error_body(
                step.status, status, step.message or f"fake {status}", step.details
            )
        else:
            prompt = estimate_tokens(body)
            usage: dict[str, int] = {"promptTokenCount": prompt}
            if step.block_reason is not None:
                payload = {"promptFeedback": {"blockReason": step.block_reason}}
                usage["totalTokenCount"] = prompt
                payload["usageMetadata"] = usage
                return Reply(status=200, body=payload, headers=headers, delay_s=step.delay_s)
            response_parts: list[dict[str, Any]] = []
            if step.text is not None:
                response_parts.append({"text": step.text})
            for scripted in step.calls:
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
                response_parts.append(part)
            output = estimate_tokens(response_parts) if response_parts else 0
            usage.update(candidatesTokenCount=output, totalTokenCount=prompt + output)
            if step.usage is not None:
                usage = dict(step.usage)
            candidate: dict[str, Any] = {
                "finishReason": step.stop_reason or "STOP",
                "index": 0,
            }
            if response_parts:
                candidate["content"] = {"role": "model", "parts": response_parts}
            payload = {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": f"fake-{self.position}",
            }
        return Reply(
            status=step.status,
            body=payload,
            headers=headers,
            delay_s=step.delay_s,
            truncate_to=step.truncate_to,
        )


def _error_body(code: int, status: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _error_reply(status: int, message: str, details: Any = None) -> Reply:
    name = STATUSES.get(status, "INVALID_ARGUMENT")
    return Reply(status=status, body=_error_body(status, name, message, details))


def _schema_problem(schema: Any, where: str) -> str | None:
    if not isinstance(schema, Mapping):
        return f"{where}: expected an object"
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            return (
                f'Invalid JSON payload received. Unknown name "{key}" at '
                f"'{where}': Cannot find field."
            )
        if key == "type" and (not isinstance(value, str) or value.upper() not in SCHEMA_TYPES):
            return f"{where}.type: invalid value {value!r}"
        if key == "properties":
            if not isinstance(value, Mapping):
                return f"{where}.properties: expected an object"
            for name, sub in value.items():
                problem = _schema_problem(sub, f"{where}.properties[{name}].value")
                if problem:
                    return problem
        if key == "items":
            problem = _schema_problem(value, f"{where}.items")
            if problem:
                return problem
        if key == "enum" and not all(isinstance(v, str) for v in value):
            return f"{where}.enum: enum values must be strings"
    return None


def validate_request(body: Any) -> str | None:
    """The first way ``body`` breaks the generateContent rules, or ``None``."""
    if not isinstance(body, Mapping):
        return "Invalid JSON payload received: expected an object"
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    system = body.get("systemInstruction")
    if system is not None:
        parts = system.get("parts") if isinstance(system, Mapping) else None
        if not isinstance(parts, list) or not parts:
            return "* GenerateContentRequest.system_instruction.parts: must not be empty"
    declared: set[str] = set()
    for t_index, tool in enumerate(body.get("tools") or []):
        for f_index, function in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t_index}].function_declarations[{f_index}]"
            name = function.get("name")
            if not isinstance(name, str) or not name:
                return f"* GenerateContentRequest.{where}.name: Name cannot be empty."
            declared.add(name)
            if "parameters" in function:
                problem = _schema_problem(function["parameters"], f"{where}.parameters")
                if problem:
                    return problem
    pending: list[str] = []
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, Mapping):
            return f"* GenerateContentRequest.{where}: expected an object"
        role = content.get("role", "user")
        if role not in ("user", "model"):
            return f"* GenerateContentRequest.{where}.role: Please use a valid role: user, model."
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
        calls: list[str] = []
        responses: list[str] = []
        for p_index, part in enumerate(parts):
            spot = f"{where}.parts[{p_index}]"
            if not isinstance(part, Mapping):
                return f"* GenerateContentRequest.{spot}: expected an object"
            if "text" in part and not isinstance(part["text"], str):
                return f"* GenerateContentRequest.{spot}.text: expected a string"
            if "functionCall" in part:
                if role != "model":
                    return f"* GenerateContentRequest.{spot}: functionCall is only for role model"
                fc = part["functionCall"]
                if not isinstance(fc.get("args", {}), Mapping):
                    return f"* GenerateContentRequest.{spot}.function_call.args: expected an object"
                calls.append(str(fc.get("name")))
            if "functionResponse" in part:
                if role != "user":
                    return (
                        f"* GenerateContentRequest.{spot}: functionResponse is only for role user"
                    )
                fr = part["functionResponse"]
                if not isinstance(fr.get("response"), Mapping):
                    return f"* GenerateContentRequest.{spot}.function_response.response: required"
                responses.append(str(fr.get("name")))
            if not ({"text", "functionCall", "functionResponse", "inlineData"} & set(part)):
                return (
                    f"* GenerateContentRequest.{spot}.data: required oneof field 'data' must "
                    "have one initialized field"
                )
        if (pending or responses) and sorted(responses) != sorted(pending):
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        pending = calls
    return None
