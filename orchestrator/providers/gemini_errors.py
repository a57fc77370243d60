"""Gemini failures → ``ModelError`` with a retry verdict and no secret in the message.

Besides the shared HTTP rules (``errors.classify_status``), two Gemini specifics:

* ``retryDelay`` of a ``google.rpc.RetryInfo`` detail is the wait of a retryable error when
  no ``Retry-After`` header said otherwise.
* A 429 whose ``google.rpc.QuotaFailure`` names a per-day quota (``quotaId`` containing
  ``PerDay``, e.g. ``GenerateRequestsPerDayPerProjectPerModel-FreeTier``) is NOT retryable:
  the quota resets at midnight Pacific time, the ``RetryInfo`` that comes with it ("38s") is
  misleading, and every retry would fail the same way. Failing at once lets the orchestrator
  fall back to the next agent. A per-minute quota and a 429 without ``QuotaFailure``
  (capacity, overload) stay retryable.

Errors inside a batch (``inlinedResponses[].error``) are ``google.rpc.Status`` objects whose
``code`` is a gRPC code, not an HTTP status; :func:`status_error` classifies those.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestrator.contracts import AgentSpec
from orchestrator.providers.base import ModelError
from orchestrator.providers.errors import classify_status, is_name_resolution_failure, scrub

__all__ = ["daily_quota_violation", "model_error", "retry_info_delay", "status_error"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")

#: gRPC codes worth retrying: UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
#: INTERNAL, UNAVAILABLE.
_RETRYABLE_RPC_CODES = frozenset({2, 4, 8, 10, 13, 14})

#: gRPC code → the status name the REST API puts in ``error.status``.
_RPC_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}


def model_error(exc: Exception, where: str, spec: AgentSpec, key: str) -> ModelError:
    """Any failure of an SDK call → ``ModelError``.

    Raises:
        Exception: ``exc`` itself when it is none of the failures a call can have (a bug).
    """
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
        return _api_error(exc, where, spec, key)
    elif isinstance(exc, ValueError):  # JSONDecodeError / ValidationError: not the documented body
        message, retryable = f"{where}: response body was not valid ({type(exc).__name__})", True
    else:
        raise exc
    return ModelError(scrub(message, [key]), retryable=retryable, retry_after=retry_after)


def _api_error(exc: Any, where: str, spec: AgentSpec, key: str) -> ModelError:
    """An HTTP error answer of the API (``google.genai.errors.APIError``)."""
    status = int(exc.code or 0)
    body = exc.details
    label = exc.status or "error"
    if status == 429:
        daily = daily_quota_violation(body)
        if daily is not None:
            message = f"{where}: HTTP 429 {label}: {_daily_message(spec.model, daily)}"
            return ModelError(scrub(message, [key]), retryable=False)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    retryable, retry_after = classify_status(status, headers or {}, body)
    if retryable and retry_after is None:
        retry_after = retry_info_delay(body)
    message = f"{where}: HTTP {status} {label}: {exc.message or ''}".rstrip(": ")
    return ModelError(scrub(message, [key]), retryable=retryable, retry_after=retry_after)


def status_error(error: Mapping[str, Any], where: str, spec: AgentSpec, key: str) -> ModelError:
    """A ``google.rpc.Status`` (one failed request of a batch) → ``ModelError``.

    Codes of 100 and more are taken as HTTP statuses (a proxy's answer), the rest as gRPC
    codes: RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL … are retryable (interactively, by the
    caller), except an exhausted daily quota.
    """
    code = error.get("code")
    code = code if isinstance(code, int) else 2
    text = error.get("message")
    text = text if isinstance(text, str) else ""
    if code >= 100:
        retryable, _ = classify_status(code, {}, {"error": error})
        label = f"HTTP {code}"
    else:
        retryable = code in _RETRYABLE_RPC_CODES
        label = _RPC_NAMES.get(code, f"code {code}")
    daily = daily_quota_violation({"error": error})
    if daily is not None:
        retryable, text = False, _daily_message(spec.model, daily)
    message = f"{where}: {label}: {text}".rstrip(": ")
    delay = retry_info_delay({"error": error}) if retryable else None
    return ModelError(scrub(message, [key]), retryable=retryable, retry_after=delay)


def daily_quota_violation(body: object) -> Mapping[str, Any] | None:
    """The ``QuotaFailure`` violation of an error body that names a per-day quota, if any."""
    for detail in _details(body):
        if not str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            continue
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else []:
            if isinstance(violation, Mapping) and "PerDay" in str(violation.get("quotaId", "")):
                return violation
    return None


def _daily_message(model: str, violation: Mapping[str, Any]) -> str:
    quota = violation.get("quotaId", "a per-day quota")
    limit = violation.get("quotaValue")
    limit_text = f", limit {limit}" if limit is not None else ""
    return (
        f"daily quota exhausted for model {model} ({quota}{limit_text}); it resets at "
        "midnight Pacific time, so this agent is not retried today"
    )


def retry_info_delay(body: object) -> float | None:
    """``retryDelay`` of a ``google.rpc.RetryInfo`` entry in ``error.details`` ("12s" → 12.0)."""
    for detail in _details(body):
        if not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str):
            match = _DURATION.match(delay)
            if match:
                return float(match.group(1))
        elif isinstance(delay, Mapping):  # {"seconds": 12, "nanos": 5e8}
            return _duration_object(delay)
    return None


def _duration_object(delay: Mapping[str, Any]) -> float | None:
    seconds = delay.get("seconds", 0)
    nanos = delay.get("nanos", 0)
    if isinstance(seconds, int | float | str) and isinstance(nanos, int | float):
        try:
            return float(seconds) + float(nanos) / 1e9
        except ValueError:
            return None
    return None


def _details(body: object) -> list[Mapping[str, Any]]:
    """The ``details`` objects of an error body (``{"error": {...}}`` or the inner object)."""
    if not isinstance(body, Mapping):
        return []
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return []
    return [detail for detail in details if isinstance(detail, Mapping)]
