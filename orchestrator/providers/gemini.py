"""Google Gemini API (``models/{model}:generateContent``) with function calling.

Mapping from the neutral conversation:

* ``system`` messages → ``system_instruction``.
* ``user`` → ``Content(role="user")`` with a text part.
* ``assistant`` → ``Content(role="model")`` with text and ``function_call`` parts; the
  ``thoughtSignature`` Gemini attached to a call is sent back with it (Gemini 3 rejects a
  function-calling history without its signatures).
* ``tool`` results → ``function_response {id?, name, response: {"output"|"error": text}}``
  parts, consecutive ones in ONE ``user`` content, as the SDK documentation does it.
* ``ToolSpec.parameters`` → ``parameters`` in Gemini's OpenAPI-subset schema dialect: keys it
  does not know (``additionalProperties``, ``$schema``, ``$ref``, ``const`` …) are dropped or
  translated, since the API answers 400 to an unknown key.
* ``json_output`` → ``response_mime_type="application/json"``.

Automatic function calling is disabled: the agent loop runs the tools. The SDK's own retries
stay off (the default without ``retry_options``); the caller retries on
``ModelError.retryable``. The response body is read as JSON by this module (captured by an
``httpx2`` response hook) so that a malformed call the SDK's strict models would reject still
becomes a ``ToolCall`` with ``arguments_error`` instead of a failed turn.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, Usage
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
    api_key_from_env,
    parse_tool_call,
)
from orchestrator.providers.errors import classify_status, is_name_resolution_failure, scrub

if TYPE_CHECKING:
    from google.genai import Client, types

__all__ = ["GENERATED_ID_PREFIX", "GeminiModel", "gemini_schema", "parse_response"]

#: Ids this module makes up for calls Gemini sent without one; never sent back to Gemini.
GENERATED_ID_PREFIX = "gemini-call-"

_GRACE_S = 5.0

#: Finish reasons meaning the answer was withheld; retrying the same prompt will not help.
_BLOCKED_FINISH = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "LANGUAGE",
    }
)

#: Schema keys Gemini's ``parameters`` dialect accepts (an OpenAPI 3.0 subset).
_SCHEMA_KEYS = frozenset(
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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")

#: The raw body of the response being received, per request (set by ``request``).
_RAW_BODY: contextvars.ContextVar[dict[str, bytes] | None] = contextvars.ContextVar(
    "gemini_raw_body", default=None
)


class GeminiModel:
    """A ``Model`` speaking the Gemini API through ``google-genai``.

    Args:
        agent: The agent's name in ``agents.yml`` (used in error messages).
        spec: Its spec: ``model``, ``api_key`` (``${ENV}``), optional ``base_url``, ``timeout_s``.
        purpose: ``"planner"`` or a task id (unused: every purpose talks to the same API).
    """

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self._client: Client | None = None
        self._client_key: str | None = None
        #: call id → thoughtSignature (base64) Gemini attached to it, to send back.
        self._signatures: dict[str, str] = {}

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the conversation; return the next turn or raise ``ModelError``."""
        providers.ensure_requests_allowed(self.agent)
        key = api_key_from_env(self.agent, self.spec, "GEMINI_API_KEY")
        contents = self._contents(messages)
        config = _config(messages, tools, settings)
        client = self._client_for(key)
        holder: dict[str, bytes] = {}
        token = _RAW_BODY.set(holder)
        where = f"agent {self.agent} (gemini {self.spec.model})"
        typed: object = None
        try:
            typed = await asyncio.wait_for(
                client.aio.models.generate_content(
                    model=self.spec.model, contents=contents, config=config
                ),
                timeout=self.spec.timeout_s + _GRACE_S,
            )
        except Exception as exc:
            if not (_is_validation_error(exc) and "body" in holder):
                raise _model_error(exc, where, self.spec, key) from None
            # The SDK's models rejected the body (e.g. call arguments that are not an
            # object); the raw JSON below still says everything we need.
        finally:
            _RAW_BODY.reset(token)
        try:
            data = _body_json(holder, typed)
            response = parse_response(data, first_index=_turns(messages))
        except ModelError as exc:
            raise ModelError(
                scrub(f"{where}: {exc}", [key]), retryable=exc.retryable, retry_after=None
            ) from None
        for call, signature in _call_signatures(data, response):
            self._signatures[call] = signature
        return response

    def _client_for(self, key: str) -> Client:
        if self._client is None or self._client_key != key:
            import httpx2
            from google import genai
            from google.genai import types

            self._client = genai.Client(
                api_key=key,
                http_options=types.HttpOptions(
                    base_url=self.spec.base_url,
                    timeout=max(1, int(self.spec.timeout_s * 1000)),  # milliseconds
                    async_client_args={
                        "event_hooks": {"response": [_capture_body]},
                        # No idle keep-alive sockets: they would outlive the event loop that
                        # opened them (each ``asyncio.run`` has its own) and leak or break.
                        "limits": httpx2.Limits(max_connections=100, max_keepalive_connections=0),
                    },
                ),
            )
            self._client_key = key
        return self._client

    def _contents(self, messages: list[Message]) -> list[types.Content]:
        from google.genai import types

        out: list[types.Content] = []
        names: dict[str, str] = {}

        def add(role: str, parts: list[types.Part]) -> None:
            if not parts:
                return
            if out and out[-1].role == role and out[-1].parts is not None:
                out[-1].parts.extend(parts)
            else:
                out.append(types.Content(role=role, parts=parts))

        for message in messages:
            if message.role == "system":
                continue
            if message.role == "user":
                add("user", [types.Part(text=message.text or "(empty message)")])
            elif message.role == "assistant":
                parts: list[types.Part] = []
                if message.text.strip():
                    parts.append(types.Part(text=message.text))
                for call in message.tool_calls:
                    names[call.id] = call.name
                    signature = self._signatures.get(call.id)
                    parts.append(
                        types.Part(
                            function_call=types.FunctionCall(
                                id=_wire_id(call.id), name=call.name, args=call.arguments
                            ),
                            thought_signature=_decode_signature(signature),
                        )
                    )
                add("model", parts)
            else:
                call_id = message.tool_call_id or ""
                name = message.tool_name or names.get(call_id, "")
                outcome = "error" if message.is_error else "output"
                add(
                    "user",
                    [
                        types.Part(
                            function_response=types.FunctionResponse(
                                id=_wire_id(call_id),
                                name=name,
                                response={outcome: message.text},
                            )
                        )
                    ],
                )
        return out


async def _capture_body(response: Any) -> None:
    """httpx2 response hook: keep the body of the current request's response."""
    holder = _RAW_BODY.get()
    if holder is None:
        return
    await response.aread()
    holder["body"] = response.content


def _config(
    messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
) -> types.GenerateContentConfig:
    from google.genai import types

    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text.strip())
    declarations = [
        types.FunctionDeclaration(
            name=tool.name,
            description=tool.description,
            parameters=types.Schema.model_validate(gemini_schema(tool.parameters)),
        )
        for tool in tools
    ]
    return types.GenerateContentConfig(
        system_instruction=system or None,
        max_output_tokens=settings.max_tokens,
        tools=[types.Tool(function_declarations=declarations)] if declarations else None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        response_mime_type="application/json" if settings.json_output else None,
    )


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema rewritten into Gemini's ``parameters`` dialect.

    Unknown keys are dropped (``additionalProperties``, ``$schema``, ``$id``, ``$ref``,
    ``$defs``, ``examples``, ``oneOf``/``allOf`` …); ``type: [T, "null"]`` becomes
    ``type: T, nullable: true``; ``const`` becomes a one-value ``enum``; enum values become
    strings; ``required`` keeps only properties that exist.
    """
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete = [t for t in kind if t != "null"]
        if len(concrete) < len(kind):
            out["nullable"] = True
        kind = concrete[0] if concrete else None
    if isinstance(kind, str):
        out["type"] = kind.upper()
    if "const" in schema and "enum" not in schema:
        out["enum"] = [_enum_value(schema["const"])]
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS or key in out:
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {
                name: gemini_schema(sub) for name, sub in value.items() if isinstance(sub, Mapping)
            }
        elif key == "items" and isinstance(value, Mapping):
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(sub) for sub in value if isinstance(sub, Mapping)]
        elif key == "enum" and isinstance(value, list):
            out[key] = [_enum_value(v) for v in value]
            out.setdefault("type", "STRING")
        elif key == "required" and isinstance(value, list):
            known = schema.get("properties")
            out[key] = [n for n in value if not isinstance(known, Mapping) or n in known]
        elif key != "type":
            out[key] = value
    return out


def _enum_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _wire_id(call_id: str) -> str | None:
    """The id to send Gemini: its own ids go back, ids we generated do not."""
    return None if not call_id or call_id.startswith(GENERATED_ID_PREFIX) else call_id


def _decode_signature(signature: str | None) -> bytes | None:
    if not signature:
        return None
    try:
        return base64.b64decode(signature)
    except (binascii.Error, ValueError):
        return None


def _turns(messages: list[Message]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


def _is_validation_error(exc: BaseException) -> bool:
    import pydantic

    return isinstance(exc, pydantic.ValidationError)


def _body_json(holder: Mapping[str, bytes], typed: object) -> object:
    """The response as wire JSON: the captured body, else the SDK's object dumped by alias."""
    body = holder.get("body")
    if body is not None:
        try:
            return json.loads(body)
        except ValueError:
            raise ModelError("response body was not JSON", retryable=True) from None
    dump = getattr(typed, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    raise ModelError("no response body", retryable=True)


# --------------------------------------------------------------------------- response


def parse_response(data: object, *, first_index: int = 0) -> ModelResponse:
    """A ``GenerateContentResponse`` as wire JSON → ``ModelResponse``.

    Calls without an ``id`` get ``gemini-call-<turn>-<index>`` (stable for a given history).

    Raises:
        ModelError: not retryable when the prompt or the answer was blocked (the reason is
            named); retryable when the body is not a generateContent response.
    """
    if not isinstance(data, Mapping):
        raise ModelError("response is not a generateContent object", retryable=True)
    usage = _usage(data.get("usageMetadata"))
    candidates = data.get("candidates")
    feedback = data.get("promptFeedback")
    if not isinstance(candidates, list) or not candidates:
        reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
        if reason:
            detail = feedback.get("blockReasonMessage") if isinstance(feedback, Mapping) else None
            suffix = f": {detail}" if detail else ""
            raise ModelError(f"the prompt was blocked ({reason}){suffix}", retryable=False)
        if "candidates" not in data and "usageMetadata" not in data:
            raise ModelError("response is not a generateContent object", retryable=True)
        raise ModelError("the model returned no candidates", retryable=False)
    candidate = candidates[0] if isinstance(candidates[0], Mapping) else {}
    finish = candidate.get("finishReason")
    finish = str(finish) if finish is not None else None
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    parts = parts if isinstance(parts, list) else []
    if finish in _BLOCKED_FINISH:
        raise ModelError(f"the answer was blocked (finishReason {finish})", retryable=False)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in parts:
        if not isinstance(part, Mapping) or part.get("thought") is True:
            continue  # thought summaries are not the answer
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            calls.append(_tool_call(call, f"{GENERATED_ID_PREFIX}{first_index}-{len(calls)}"))
    # finishReason MALFORMED_FUNCTION_CALL comes without parts: an empty turn, so the loop
    # nudges the model to try again (the name of the broken call is unknown).
    return ModelResponse(
        text="".join(texts), tool_calls=tuple(calls), usage=usage, stop_reason=finish
    )


def _tool_call(call: Mapping[str, Any], default_id: str) -> ToolCall:
    identifier = call.get("id")
    identifier = identifier if isinstance(identifier, str) and identifier else default_id
    name = call.get("name")
    return parse_tool_call(identifier, name if isinstance(name, str) else "", call.get("args"))


def _call_signatures(data: object, response: ModelResponse) -> list[tuple[str, str]]:
    """``(call id, thoughtSignature)`` for each call of the response that carried one."""
    if not isinstance(data, Mapping):
        return []
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], Mapping):
        return []
    content = candidates[0].get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return []
    signed = [
        p.get("thoughtSignature")
        for p in parts
        if isinstance(p, Mapping) and isinstance(p.get("functionCall"), Mapping)
    ]
    return [
        (call.id, signature)
        for call, signature in zip(response.tool_calls, signed, strict=False)
        if isinstance(signature, str) and signature
    ]


def _usage(metadata: object) -> Usage:
    """``usageMetadata`` → ours.

    ``promptTokenCount`` already includes ``cachedContentTokenCount``; thinking tokens
    (``thoughtsTokenCount``) are billed as output, so they count as output here.
    """
    if not isinstance(metadata, Mapping):
        return Usage()

    def count(name: str) -> int:
        value = metadata.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    return Usage(
        input_tokens=prompt,
        output_tokens=count("candidatesTokenCount") + count("thoughtsTokenCount"),
        cached_input_tokens=min(count("cachedContentTokenCount"), prompt),
    )


# --------------------------------------------------------------------------- errors


def _model_error(exc: Exception, where: str, spec: AgentSpec, key: str) -> ModelError:
    """Any failure of the SDK call → ``ModelError`` with a retry verdict and no secret in it."""
    import httpx2
    from google.genai import errors

    retryable = False
    retry_after: float | None = None
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        message, retryable = f"{where}: no answer within {spec.timeout_s:g}s", True
    elif isinstance(exc, httpx2.TransportError):
        retryable = not is_name_resolution_failure(exc)
        what = "connection error" if retryable else "host name does not resolve"
        message = f"{where}: {what} ({type(exc).__name__}: {exc})"
    elif isinstance(exc, errors.APIError):
        status = int(exc.code or 0)
        headers = getattr(getattr(exc, "response", None), "headers", None)
        body = exc.details
        retryable, retry_after = classify_status(status, headers or {}, body)
        if retryable and retry_after is None:
            retry_after = _retry_info_delay(body)
        label = exc.status or "error"
        message = f"{where}: HTTP {status} {label}: {exc.message or ''}".rstrip(": ")
    elif isinstance(exc, ValueError):  # JSONDecodeError / ValidationError: not the documented body
        message, retryable = f"{where}: response body was not valid ({type(exc).__name__})", True
    else:
        raise exc
    return ModelError(scrub(message, [key]), retryable=retryable, retry_after=retry_after)


def _retry_info_delay(body: object) -> float | None:
    """``retryDelay`` of a ``google.rpc.RetryInfo`` entry in ``error.details`` ("12s" → 12.0)."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if not isinstance(detail, Mapping):
            continue
        if not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str):
            match = _DURATION.match(delay)
            if match:
                return float(match.group(1))
        elif isinstance(delay, Mapping):  # {"seconds": 12, "nanos": 5e8}
            seconds = delay.get("seconds", 0)
            nanos = delay.get("nanos", 0)
            if isinstance(seconds, int | float | str) and isinstance(nanos, int | float):
                try:
                    return float(seconds) + float(nanos) / 1e9
                except ValueError:
                    return None
    return None
