"""The retry layer: which failures are retried, how long it waits, what it records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from orchestrator.contracts import AgentSpec, Usage
from orchestrator.providers import build_model
from orchestrator.providers.base import Message, ModelError, ModelResponse, ModelSettings
from orchestrator.providers.ratelimit import reset_limits
from orchestrator.providers.retry import RetryingModel, RetryPolicy
from orchestrator.providers.testing import ScriptedModel

MESSAGES = [Message(role="user", text="hi")]
SETTINGS = ModelSettings()
OK = ModelResponse(text="ok", usage=Usage(input_tokens=3, output_tokens=1))


@pytest.fixture(autouse=True)
def _fresh_limits() -> None:
    reset_limits()


class Sleeps:
    """An injected sleep that records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def ask(model: RetryingModel) -> ModelResponse:
    return asyncio.run(model.request(MESSAGES, [], SETTINGS))


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy(max_wait_s=60.0)
    assert policy.wait_s(0, 3.0, 0.9) == 3.0
    assert policy.wait_s(3, 0.0, 0.9) == 0.0
    assert policy.wait_s(0, 3600.0, 0.0) == 60.0


def test_backoff_is_exponential_with_proportional_jitter_and_capped() -> None:
    policy = RetryPolicy(base_s=1.0, max_wait_s=10.0, jitter=0.25)
    assert [policy.wait_s(n, None, 0.0) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.wait_s(2, None, 1.0) == 3.0  # at most 25 % shorter
    assert all(3.0 <= policy.wait_s(2, None, r / 10) <= 4.0 for r in range(10))
    full = RetryPolicy(base_s=1.0, jitter=1.0)
    assert full.wait_s(1, None, 0.5) == 1.0 and full.wait_s(1, None, 1.0) == 0.0


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(max_retries=-1)


def test_retryable_errors_are_retried_then_succeed() -> None:
    inner = ScriptedModel(
        [
            ModelError("429 Too Many Requests", retryable=True, retry_after=2.0),
            ModelError("529 overloaded", retryable=True),
            ModelError("500 internal error", retryable=True),
            OK,
        ]
    )
    sleeps = Sleeps()
    model = RetryingModel(
        inner, RetryPolicy(base_s=1.0, jitter=0.25), sleep=sleeps, rand=lambda: 0.0
    )
    assert ask(model) is OK
    assert len(inner.requests) == 4
    # Retry-After first, then backoff for retries 1 and 2 (1 s doubling; rand 0 → no jitter).
    assert sleeps.waits == [2.0, 2.0, 4.0]
    assert [(r.error, r.wait_s) for r in model.stats.retries] == [
        ("429 Too Many Requests", 2.0),
        ("529 overloaded", 2.0),
        ("500 internal error", 4.0),
    ]
    assert model.stats.retry_wait_s == 8.0 and model.stats.wait_s == 8.0
    assert model.agent == inner.agent and model.spec is inner.spec


def test_non_retryable_error_raises_at_once() -> None:
    inner = ScriptedModel([ModelError("401 invalid api key", retryable=False), OK])
    sleeps = Sleeps()
    model = RetryingModel(inner, sleep=sleeps)
    with pytest.raises(ModelError, match="401") as info:
        ask(model)
    assert not info.value.retryable
    assert len(inner.requests) == 1 and sleeps.waits == [] and model.stats.retries == []


def test_exhausted_retries_propagate_the_last_error() -> None:
    errors = [ModelError(f"503 unavailable #{n}", retryable=True, retry_after=1) for n in range(4)]
    inner = ScriptedModel([*errors, OK])
    sleeps = Sleeps()
    model = RetryingModel(inner, RetryPolicy(max_retries=3), sleep=sleeps)
    with pytest.raises(ModelError) as info:
        ask(model)
    assert str(info.value) == "503 unavailable #3 (gave up after 3 retries)"
    assert info.value.retryable and info.value.retry_after == 1
    assert isinstance(info.value.__cause__, ModelError)
    assert len(inner.requests) == 4 and sleeps.waits == [1.0, 1.0, 1.0]
    assert len(model.stats.retries) == 3


def test_zero_retries_raise_the_original_error() -> None:
    error = ModelError("429", retryable=True, retry_after=5)
    model = RetryingModel(ScriptedModel([error]), RetryPolicy(max_retries=0), sleep=Sleeps())
    with pytest.raises(ModelError) as info:
        ask(model)
    assert info.value is error


def test_retries_are_counted_per_request() -> None:
    flaky = ModelError("429", retryable=True, retry_after=0.5)
    inner = ScriptedModel([flaky, flaky, OK, flaky, flaky, OK])
    model = RetryingModel(inner, RetryPolicy(max_retries=2), sleep=Sleeps())
    assert ask(model) is OK and ask(model) is OK
    assert len(model.stats.retries) == 4


def test_build_model_retries_scripted_replay_faults(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "planner": [
                    {"error": {"message": "429 slow down", "retryable": True, "retry_after": 90}},
                    {"error": {"message": "overloaded", "retryable": True}},
                    {"text": "plan"},
                ]
            }
        )
    )
    spec = AgentSpec(provider="replay", model="m", script=str(script))
    sleeps = Sleeps()
    model = build_model("r", spec, "planner", sleep=sleeps, cache_dir=tmp_path / "cache")
    answer = asyncio.run(model.request(MESSAGES, [], SETTINGS))
    assert answer.text == "plan"
    assert sleeps.waits[0] == 60.0  # Retry-After 90 capped at max_wait_s
    assert 1.5 <= sleeps.waits[1] <= 2.0  # second retry: 2 s backoff, up to 25 % jitter
    assert model.stats.provider_calls == 3 and len(model.stats.retries) == 2
    assert model.cache is None and not (tmp_path / "cache").exists()  # replay is never cached


def test_default_sleep_is_replaceable(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.providers import retry

    sleeps = Sleeps()
    monkeypatch.setattr(retry, "default_sleep", sleeps)
    inner = ScriptedModel([ModelError("429", retryable=True, retry_after=7), OK])
    assert ask(RetryingModel(inner)) is OK
    assert sleeps.waits == [7.0]
