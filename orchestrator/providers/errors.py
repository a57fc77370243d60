"""HTTP-error classification shared by the network providers (OpenAI, Anthropic, Gemini).

Each provider catches its SDK's exceptions and turns them into ``ModelError``; these helpers
decide, from the status, headers and body alone, whether the call is worth retrying and after
how long. The retry itself is done by the caller's wrapper, never by an SDK.

Stable API (other provider modules import it): ``classify_status``, ``retry_after_seconds``,
``scrub`` and ``RETRYABLE_STATUSES``.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "NON_RETRYABLE_CODES",
    "RETRYABLE_STATUSES",
    "classify_status",
    "is_name_resolution_failure",
    "retry_after_seconds",
    "scrub",
]

#: Statuses worth retrying besides every 5xx: timeout, conflict, too early, rate limit.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})

#: Error codes that are never retryable whatever the status says (e.g. an exhausted billing
#: quota comes as a 429 but waiting will not fix it).
NON_RETRYABLE_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})

Headers = Mapping[str, str] | Iterable[tuple[str, str]] | None


def classify_status(status: int, headers: Headers, body: object) -> tuple[bool, float | None]:
    """Whether an HTTP error response is retryable, and the wait the server asked for.

    Rules, in order: an error code from :data:`NON_RETRYABLE_CODES` in the body (OpenAI's
    ``insufficient_quota``) → not retryable; an explicit ``x-should-retry: true|false`` header
    (sent by OpenAI and Anthropic) wins; otherwise 408, 409, 425, 429 and every 5xx are
    retryable and the rest (400, 401, 403, 404, 422 …) are not.

    Args:
        status: The HTTP status code.
        headers: Response headers (any mapping or ``(name, value)`` pairs; case-insensitive).
        body: The parsed JSON body (``{"error": {...}}`` or the inner error object), or the raw
            ``str``/``bytes`` body, or ``None``.

    Returns:
        ``(retryable, retry_after)``; ``retry_after`` is only given for retryable errors.
    """
    if _error_code(body) in NON_RETRYABLE_CODES:
        return False, None
    should_retry = _lower(headers).get("x-should-retry", "").strip().lower()
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    else:
        retryable = status in RETRYABLE_STATUSES or status >= 500
    return retryable, (retry_after_seconds(headers) if retryable else None)


def retry_after_seconds(headers: Headers, *, now: datetime | None = None) -> float | None:
    """The wait a response asked for, in seconds, or ``None`` when it did not say.

    Reads ``retry-after-ms`` (milliseconds, OpenAI and Anthropic) first, then ``retry-after``
    as delta-seconds (fractions allowed) or as an HTTP-date (RFC 9110). Dates in the past give
    ``0.0``; negative, non-finite or unparsable values are ignored.

    Args:
        headers: Response headers (any mapping or ``(name, value)`` pairs; case-insensitive).
        now: The current time, for tests; defaults to the clock.
    """
    lowered = _lower(headers)
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


#: What resolvers say when a host name does not resolve (glibc, musl, macOS, Windows).
_DNS_MESSAGES = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname provided",
    "no address associated with hostname",
    "getaddrinfo failed",
    "name does not resolve",
)


def is_name_resolution_failure(exc: BaseException) -> bool:
    """Whether a connection error was a host name that did not resolve.

    It is not worth retrying within a run: a misspelt ``base_url`` or a runner without DNS does
    not heal in seconds, and four backed-off retries per agent only delay the fallback to the
    next agent (seen: ~40 s per task). The SDKs wrap the resolver's ``socket.gaierror`` in
    their own connection errors, so the whole cause chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return True
        text = str(current).lower()
        if any(message in text for message in _DNS_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-trivial secret (4+ characters) replaced by ``***``.

    Providers pass the API key they used, so an error that echoes it (a 401 body, an SDK
    message quoting a header) can be raised safely.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _lower(headers: Headers) -> dict[str, str]:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(key).lower(): str(value) for key, value in items}


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _error_code(body: object) -> str | None:
    """The ``code`` (or ``type``) of an error body, however it was handed over."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text)
        except ValueError:
            return next((code for code in NON_RETRYABLE_CODES if code in text), None)
    if not isinstance(body, dict):
        return None
    error: Any = body.get("error", body)
    if not isinstance(error, dict):
        return None
    for key in ("code", "type"):
        value = error.get(key)
        if isinstance(value, str) and value in NON_RETRYABLE_CODES:
            return value
    code = error.get("code")
    return code if isinstance(code, str) else None
