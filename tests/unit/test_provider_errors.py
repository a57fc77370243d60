"""HTTP-error classification shared by the network providers."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx2
import pytest

from orchestrator.providers.errors import classify_status, retry_after_seconds, scrub

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"Retry-After": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"RETRY-AFTER-MS": "250"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 01 Jan 2025 11:59:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "Wed, 01 Jan 2025 12:01:00 -0000"}, 60.0),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "later, please"}, None),
        ({"retry-after": ""}, None),
        ({"x-ratelimit-reset-requests": "2s"}, None),
        ({}, None),
        (None, None),
        ([("Retry-After", "4")], 4.0),
        (httpx2.Headers({"Retry-After": "7"}), 7.0),
    ],
)
def test_retry_after_seconds(headers: object, expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == expected  # type: ignore[arg-type]


def test_retry_after_http_date_uses_the_clock_by_default() -> None:
    wait = retry_after_seconds({"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert wait is not None and wait > 365 * 24 * 3600


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (413, False),
        (422, False),
        (425, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (529, True),  # Anthropic "overloaded"
    ],
)
def test_classify_status(status: int, retryable: bool) -> None:
    assert classify_status(status, {}, None) == (retryable, None)


def test_retry_after_only_for_retryable_errors() -> None:
    headers = {"retry-after": "3"}
    assert classify_status(429, headers, {"error": {"code": "rate_limit_exceeded"}}) == (True, 3.0)
    assert classify_status(503, headers, "overloaded") == (True, 3.0)
    assert classify_status(400, headers, None) == (False, None)


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}},
        {"message": "quota", "type": "insufficient_quota", "param": None, "code": None},
        {"code": "insufficient_quota"},
        '{"error": {"code": "insufficient_quota"}}',
        b'{"error": {"code": "insufficient_quota"}}',
        "<html>insufficient_quota</html>",
        {"error": {"code": "billing_hard_limit_reached"}},
    ],
)
def test_insufficient_quota_is_not_retryable(body: object) -> None:
    assert classify_status(429, {"retry-after": "1"}, body) == (False, None)


@pytest.mark.parametrize(
    "body", [None, 42, [1], {"error": "text"}, {"error": {"code": 7}}, b"\xff"]
)
def test_odd_bodies_fall_back_to_the_status(body: object) -> None:
    assert classify_status(429, None, body) == (True, None)
    assert classify_status(400, None, body) == (False, None)


def test_x_should_retry_header_wins_over_the_status() -> None:
    assert classify_status(400, {"x-should-retry": "true"}, None) == (True, None)
    assert classify_status(503, {"X-Should-Retry": "false"}, None) == (False, None)
    assert classify_status(503, {"x-should-retry": "maybe"}, None) == (True, None)
    # Billing is never retryable, whatever the header says.
    quota = {"error": {"code": "insufficient_quota"}}
    assert classify_status(429, {"x-should-retry": "true"}, quota) == (False, None)


def test_scrub() -> None:
    text = "key sk-abcdef123 and sk-abcdef123456 in Bearer sk-abcdef123456"
    assert scrub(text, ["sk-abcdef123", "sk-abcdef123456"]) == "key *** and *** in Bearer ***"
    assert scrub("a b c", [None, "", "b"]) == "a b c"  # too short to be a secret
