"""The Gemini-specific steps of the fake, and the API's error bodies.

Every step is a :class:`~tests.fakes.anthropic_fake.Step`; these build the ones whose body is
Gemini's own: blocked prompts and answers, ``MALFORMED_FUNCTION_CALL``, and the three kinds
of 429 the orchestrator must tell apart (per-minute quota, per-day quota, capacity).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.fakes.anthropic_fake import Step, error
from tests.fakes.loopback import Reply

__all__ = [
    "STATUSES",
    "blocked",
    "daily_quota_exhausted",
    "error_body",
    "error_reply",
    "finish_blocked",
    "malformed_function_call",
    "rate_limited",
    "resource_exhausted",
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

_QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."


def blocked(reason: str = "SAFETY") -> Step:
    """The prompt was blocked: no candidates, ``promptFeedback.blockReason``."""
    return Step(block_reason=reason)


def finish_blocked(reason: str = "SAFETY") -> Step:
    """A candidate withheld for ``reason`` (``finishReason``), without content."""
    return Step(stop_reason=reason)


def malformed_function_call() -> Step:
    """Gemini's own malformed call: ``finishReason: MALFORMED_FUNCTION_CALL``, no parts."""
    return Step(stop_reason="MALFORMED_FUNCTION_CALL")


def rate_limited(
    retry_delay: str = "12s",
    headers: Mapping[str, str] | None = None,
    *,
    quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel",
) -> Step:
    """429 ``RESOURCE_EXHAUSTED`` for a per-minute quota, with a ``RetryInfo`` detail."""
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        _QUOTA_MESSAGE,
        headers=headers,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_requests",
                        "quotaId": quota_id,
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ],
    )


def daily_quota_exhausted(
    model: str = "gemini-3.8-flash", limit: int = 20, retry_delay: str = "38s"
) -> Step:
    """The free tier's per-day 429, as Gemini sends it (research §6): a ``QuotaFailure`` whose
    ``quotaId`` names ``PerDay``, and a ``RetryInfo`` that is misleading for it."""
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        f"{_QUOTA_MESSAGE} For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: "
        f"{metric}, limit: {limit}, model: {model}\nPlease retry in 38.9s.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": str(limit),
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ],
    )


def resource_exhausted() -> Step:
    """A 429 without ``QuotaFailure``: capacity or overload, not a quota of ours."""
    return error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")


def error_body(code: int, status: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_reply(status: int, message: str, details: Any = None) -> Reply:
    name = STATUSES.get(status, "INVALID_ARGUMENT")
    return Reply(status=status, body=error_body(status, name, message, details))
