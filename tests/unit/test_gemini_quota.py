"""Gemini 429s through the real SDK and the retry layer: a per-day quota fails at once, a
per-minute quota is retried after its ``RetryInfo.retryDelay``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec
from orchestrator.providers.base import Message, ModelError, ModelResponse, ModelSettings
from orchestrator.providers.gemini import GeminiModel
from orchestrator.providers.gemini_errors import (
    daily_quota_violation,
    retry_info_delay,
    status_error,
)
from orchestrator.providers.retry import RetryingModel, RetryPolicy
from tests.fakes.gemini_fake import (
    GeminiFake,
    daily_quota_exhausted,
    error,
    rate_limited,
    resource_exhausted,
    text,
)

ENV = "FAKE_GEMINI_KEY"
KEY = "AIzaSyQuota-0f1e2d3c4b5a69788"
START = [Message("system", "Be brief."), Message("user", "Say hi.")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiFake]:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)
    with GeminiFake(expected_key=KEY) as server:
        yield server
    assert server.violations == []


def retrying(fake: GeminiFake, waits: list[float]) -> RetryingModel:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    model = GeminiModel("gemini", fake.spec(key_env=ENV), "t1")
    return RetryingModel(model, RetryPolicy(max_retries=4), sleep=sleep, rand=lambda: 0.0)


def ask(model: RetryingModel) -> ModelResponse:
    return asyncio.run(model.request(START, [], ModelSettings(max_tokens=64)))


def test_a_daily_quota_429_is_not_retried(fake: GeminiFake) -> None:
    fake.script(daily_quota_exhausted(model="gemini-3.8-flash", limit=20), text("never"))
    waits: list[float] = []
    with pytest.raises(ModelError) as caught:
        ask(retrying(fake, waits))
    exc = caught.value
    assert not exc.retryable and exc.retry_after is None
    assert "daily quota exhausted" in str(exc)
    assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in str(exc)
    assert "limit 20" in str(exc) and "agent gemini" in str(exc)
    assert KEY not in str(exc)
    assert waits == [] and len(fake.requests) == 1 and fake.remaining == 1


def test_a_daily_quota_without_retry_info_is_not_retried(fake: GeminiFake) -> None:
    step = daily_quota_exhausted()
    details = [d for d in step.details if not d["@type"].endswith("RetryInfo")]
    fake.script(error(429, "RESOURCE_EXHAUSTED", step.message, details=details))
    waits: list[float] = []
    with pytest.raises(ModelError) as caught:
        ask(retrying(fake, waits))
    assert not caught.value.retryable and "daily quota exhausted" in str(caught.value)
    assert waits == []


def test_a_per_minute_429_is_retried_after_its_retry_delay(fake: GeminiFake) -> None:
    fake.script(rate_limited("12s"), rate_limited("1.5s"), text("hi"))
    waits: list[float] = []
    model = retrying(fake, waits)
    response = ask(model)
    assert response.text == "hi"
    assert waits == [12.0, 1.5]  # RetryInfo.retryDelay, not the backoff
    assert [r.wait_s for r in model.stats.retries] == [12.0, 1.5]
    assert "RESOURCE_EXHAUSTED" in model.stats.retries[0].error
    assert len(fake.requests) == 3


def test_a_per_minute_token_quota_and_a_capacity_429_stay_retryable(fake: GeminiFake) -> None:
    fake.script(
        rate_limited("7s", quota_id="GenerateContentInputTokensPerModelPerMinute-FreeTier"),
        resource_exhausted(),
        text("ok"),
    )
    waits: list[float] = []
    assert ask(retrying(fake, waits)).text == "ok"
    assert waits[0] == 7.0
    assert 0 < waits[1] <= 2.0  # no RetryInfo: the policy's backoff


def test_error_detail_parsing() -> None:
    body = {
        "error": {
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"},
            ]
        }
    }
    assert daily_quota_violation(body) is None
    assert retry_info_delay(body) == 2.5
    nested = {
        "error": {
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": {"seconds": 3, "nanos": 500_000_000},
                }
            ]
        }
    }
    assert retry_info_delay(nested) == 3.5
    assert retry_info_delay({"error": {"details": "nope"}}) is None
    assert daily_quota_violation("not a body") is None


def test_a_batch_request_failing_on_the_daily_quota_is_not_retryable() -> None:
    spec = AgentSpec.model_validate({"provider": "gemini", "model": "gemini-3.8-flash"})
    daily = daily_quota_exhausted()
    exc = status_error(
        {"code": 8, "message": "quota", "details": daily.details}, "batch r1", spec, KEY
    )
    assert not exc.retryable and "daily quota exhausted" in str(exc)
    minute = rate_limited("4s")
    exc = status_error(
        {"code": 8, "message": "slow down", "details": minute.details}, "r", spec, KEY
    )
    assert exc.retryable and exc.retry_after == 4.0 and "RESOURCE_EXHAUSTED" in str(exc)
    exc = status_error({"code": 3, "message": "bad"}, "r", spec, KEY)
    assert not exc.retryable and "INVALID_ARGUMENT" in str(exc)
