"""Anthropic SDK failures → ``ModelError`` with a retry verdict and no secret in the message.

Rules: timeouts, refused connections, 429/5xx/529 and bodies that are not a Messages API
response are retryable; 4xx, spend limits (even as a 429) and host names that do not resolve
are not. A 429 without ``retry-after`` waits for the exhausted ``anthropic-ratelimit-*``
bucket to reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from orchestrator.contracts import AgentSpec
from orchestrator.providers.base import ModelError
from orchestrator.providers.errors import classify_status, is_name_resolution_failure, scrub

__all__ = ["model_error"]

#: ``error.details.error_code`` values meaning the organisation's spend limit is reached.
_SPEND_LIMIT_CODES = frozenset(
    {
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
        "linked_organization_spend_limit_reached",
    }
)
_SPEND_LIMIT_PHRASES = ("spend limit", "credit balance is too low", "usage limit")


def model_error(exc: Exception, agent: str, spec: AgentSpec, key: str) -> ModelError:
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
