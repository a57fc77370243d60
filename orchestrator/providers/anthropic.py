"""Anthropic Messages API (``POST /v1/messages``) with ``tool_use``/``tool_result`` blocks.

Mapping from the neutral conversation:

* ``system`` messages → one ``system`` text block marked ``cache_control: ephemeral``; the last
  tool definition carries a cache breakpoint too. Tools and system prompt are the stable prefix
  every turn (and every parallel task of a plan) shares, so later calls read it from the cache.
* ``assistant`` → ``text`` + ``tool_use {id, name, input}`` blocks.
* ``tool`` results → ``tool_result {tool_use_id, content, is_error}`` blocks, consecutive ones in
  ONE user message (the API requires alternating roles, and parallel results in one turn).
* ``json_output`` → an instruction appended to the system prompt (no native JSON mode).

The SDK is imported lazily and never retries (``max_retries=0``): retries belong to the caller,
which sees ``ModelError.retryable``/``retry_after``. The key is read from the agent's ``${ENV}``
variable at request time and never appears in an error message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
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
    from anthropic import AsyncAnthropic

__all__ = ["JSON_INSTRUCTION", "AnthropicModel", "build_request", "parse_response"]

#: Appended to the system prompt when the caller wants a JSON answer.
JSON_INSTRUCTION = (
    "Answer with a single JSON value only: no prose before or after it and no Markdown code fence."
)

#: Extra seconds the whole call may take beyond ``timeout_s`` (the SDK's timeout bounds each
#: read; this bounds a server that trickles bytes forever).
_GRACE_S = 5.0

#: ``error.details.error_code`` values meaning the organisation's spend limit is reached.
_SPEND_LIMIT_CODES = frozenset(
    {
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
        "linked_organization_spend_limit_reached",
    }
)
_SPEND_LIMIT_PHRASES = ("spend limit", "credit balance is too low", "usage limit")

_EPHEMERAL = {"type": "ephemeral"}


class AnthropicModel:
    """A ``Model`` speaking the Anthropic Messages API.

    Args:
        agent: The agent's name in ``agents.yml`` (used in error messages).
        spec: Its spec: ``model``, ``api_key`` (``${ENV}``), optional ``base_url``, ``timeout_s``.
        purpose: ``"planner"`` or a task id (unused: every purpose talks to the same API).
    """

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self._client: AsyncAnthropic | None = None
        self._client_key: str | None = None

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the conversation; return the next turn or raise ``ModelError``."""
        providers.ensure_requests_allowed(self.agent)
        key = api_key_from_env(self.agent, self.spec, "ANTHROPIC_API_KEY")
        payload = build_request(self.spec, messages, tools, settings)
        client = self._client_for(key)
        try:
            raw = await asyncio.wait_for(
                client.messages.create(**payload), timeout=self.spec.timeout_s + _GRACE_S
            )
        except Exception as exc:
            raise _model_error(exc, self.agent, self.spec, key) from None
        try:
            return parse_response(raw)
        except ModelError as exc:
            raise ModelError(
                scrub(f"agent {self.agent}: {exc}", [key]),
                retryable=exc.retryable,
                retry_after=exc.retry_after,
            ) from None

    def _client_for(self, key: str) -> AsyncAnthropic:
        """The SDK client of this instance (rebuilt only if the key changed)."""
        if self._client is None or self._client_key != key:
            import anthropic
            import httpx2

            self._client = anthropic.AsyncAnthropic(
                api_key=key,
                base_url=self.spec.base_url,  # None: the SDK default (or ANTHROPIC_BASE_URL)
                timeout=self.spec.timeout_s,
                max_retries=0,
                # No idle keep-alive connections: a pooled socket would outlive the event loop
                # that opened it (each ``asyncio.run`` has its own), then break the next call on
                # another loop or leak. One connect per model turn is noise next to the turn.
                http_client=anthropic.DefaultAsyncHttpxClient(
                    limits=httpx2.Limits(max_connections=100, max_keepalive_connections=0)
                ),
            )
            self._client_key = key
        return self._client


# --------------------------------------------------------------------------- request


def build_request(
    spec: AgentSpec,
    messages: list[Message],
    tools: list[ToolSpec],
    settings: ModelSettings,
) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` (the JSON body of ``POST /v1/messages``)."""
    system_text = "\n\n".join(m.text for m in messages if m.role == "system" and m.text.strip())
    if settings.json_output:
        system_text = f"{system_text}\n\n{JSON_INSTRUCTION}" if system_text else JSON_INSTRUCTION
    payload: dict[str, Any] = {
        "model": spec.model,
        "max_tokens": settings.max_tokens,
        "messages": _messages(messages),
    }
    if system_text:
        payload["system"] = [{"type": "text", "text": system_text, "cache_control": _EPHEMERAL}]
    if tools:
        definitions: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools
        ]
        definitions[-1]["cache_control"] = _EPHEMERAL
        payload["tools"] = definitions
    return payload


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages → Anthropic's alternating user/assistant messages."""
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        if message.role == "system":
            continue
        if message.role == "user":
            add("user", [_text_block(message.text)])
        elif message.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if message.text.strip():  # the API rejects empty or whitespace-only text blocks
                blocks.append({"type": "text", "text": message.text})
            blocks.extend(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                for call in message.tool_calls
            )
            add("assistant", blocks)
        else:  # tool result
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.tool_call_id or "",
                        "content": message.text or "(no output)",
                        "is_error": message.is_error,
                    }
                ],
            )
    return out


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text if text.strip() else "(empty message)"}


# --------------------------------------------------------------------------- response


def parse_response(raw: object) -> ModelResponse:
    """An SDK ``Message`` (or whatever the SDK made of the body) → ``ModelResponse``.

    Raises:
        ModelError: retryable when the body is not a Messages API response (a proxy's HTML
            page, a truncated or foreign JSON document).
    """
    content = getattr(raw, "content", None)
    if isinstance(raw, str | bytes) or getattr(raw, "type", None) != "message":
        raise ModelError("the API answered with something that is not a message", retryable=True)
    if not isinstance(content, list):
        raise ModelError("the API answered with a message without content", retryable=True)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(content):
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(str(getattr(block, "text", "") or ""))
        elif kind == "tool_use":
            calls.append(_tool_call(block, index))
        # thinking / redacted_thinking / server tool blocks carry nothing the loop uses
    usage = getattr(raw, "usage", None)
    stop = getattr(raw, "stop_reason", None)
    return ModelResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=_usage(usage),
        stop_reason=str(stop) if stop is not None else None,
    )


def _tool_call(block: object, index: int) -> ToolCall:
    identifier = str(getattr(block, "id", None) or f"toolu_missing_{index}")
    name = str(getattr(block, "name", None) or "")
    return parse_tool_call(identifier, name, getattr(block, "input", None))


def _usage(usage: object) -> Usage:
    """Anthropic usage → ours.

    Anthropic's ``input_tokens`` excludes the prompt-cache tokens, so our input is the sum of
    the three; ``cached_input_tokens`` is what was read from the cache. Cache *writes* are
    billed at 1.25× the input price but we price them as ordinary input: an honest, slightly
    low approximation that needs no extra price field.
    """

    def count(name: str) -> int:
        value = getattr(usage, name, None)
        return value if isinstance(value, int) and value > 0 else 0

    fresh = count("input_tokens")
    written = count("cache_creation_input_tokens")
    read = count("cache_read_input_tokens")
    return Usage(
        input_tokens=fresh + written + read,
        output_tokens=count("output_tokens"),
        cached_input_tokens=read,
    )


# --------------------------------------------------------------------------- errors


def _model_error(exc: Exception, agent: str, spec: AgentSpec, key: str) -> ModelError:
    """Any failure of the SDK call → ``ModelError`` with a retry verdict and no secret in it."""
    import anthropic

    where = f"agent {agent} (anthropic {spec.model})"
    retryable = False
    retry_after: float | None = None
    if isinstance(exc, TimeoutError | anthropic.APITimeoutError):
        message, retryable = f"{where}: no answer within {spec.timeout_s:g}s", True
    elif isinstance(exc, anthropic.APIConnectionError):
        # Refused connections and bodies cut short both land here; both are transient. A host
        # name that does not resolve is not: fall back at once.
        if is_name_resolution_failure(exc):
            message, retryable = f"{where}: host name does not resolve ({_cause(exc)})", False
        else:
            message, retryable = f"{where}: connection error ({_cause(exc)})", True
    elif isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        body = exc.body
        error_type, text, code = _error_fields(body)
        headers = exc.response.headers
        retryable, retry_after = classify_status(status, headers, body)
        if _spend_limit(code, error_type, text):
            # A spend or credit limit is not a rate limit, even when it arrives as a 429: it
            # lifts only when a human raises the limit or the billing period ends. Retrying
            # would burn the retry budget and delay falling back to another agent.
            retryable, retry_after = False, None
        elif retryable and retry_after is None and status == 429:
            retry_after = _ratelimit_reset(headers)
        label = error_type or "error"
        detail = f" [{code}]" if code else ""
        message = f"{where}: HTTP {status} {label}{detail}: {text or exc.message}"
    elif isinstance(exc, anthropic.APIResponseValidationError):
        message, retryable = f"{where}: response did not fit the Messages API", True
    elif isinstance(exc, ValueError):  # json.JSONDecodeError: a 200 whose body is not JSON
        message, retryable = f"{where}: response body was not JSON ({_cause(exc)})", True
    elif isinstance(exc, anthropic.AnthropicError):
        message = f"{where}: {type(exc).__name__}: {exc}"
    else:
        raise exc
    return ModelError(scrub(message, [key]), retryable=retryable, retry_after=retry_after)


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner is not None else type(exc).__name__


def _error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """``(error.type, error.message, error.details.error_code)`` of an error body."""
    if not isinstance(body, Mapping):
        return None, (str(body)[:500] if body else None), None
    error = body.get("error", body)
    if not isinstance(error, Mapping):
        return None, None, None
    kind = error.get("type")
    text = error.get("message")
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, Mapping) else None
    return (
        kind if isinstance(kind, str) else None,
        text if isinstance(text, str) else None,
        code if isinstance(code, str) else None,
    )


def _spend_limit(code: str | None, error_type: str | None, text: str | None) -> bool:
    if code in _SPEND_LIMIT_CODES or error_type == "billing_error":
        return True
    lowered = (text or "").lower()
    return any(phrase in lowered for phrase in _SPEND_LIMIT_PHRASES)


def _ratelimit_reset(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds until the exhausted ``anthropic-ratelimit-*`` bucket resets, when one says.

    Used only when a 429 carries no ``retry-after``. Each bucket sends ``…-remaining`` and an
    RFC 3339 ``…-reset``; the longest wait among buckets with nothing remaining wins.
    """
    current = now or datetime.now(UTC)
    waits: list[float] = []
    for bucket in ("requests", "tokens", "input-tokens", "output-tokens"):
        remaining = headers.get(f"anthropic-ratelimit-{bucket}-remaining")
        reset = headers.get(f"anthropic-ratelimit-{bucket}-reset")
        if remaining is None or reset is None or remaining.strip() != "0":
            continue
        try:
            when = datetime.fromisoformat(reset.strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        waits.append(max(0.0, (when - current).total_seconds()))
    return max(waits) if waits else None
