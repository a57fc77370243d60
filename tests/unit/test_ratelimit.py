"""Per-endpoint rate limits: concurrency slots, requests per minute, the shared registry."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from orchestrator.contracts import AgentSpec
from orchestrator.providers.base import Message, ModelError, ModelResponse, ModelSettings
from orchestrator.providers.ratelimit import (
    ConcurrencyGate,
    EndpointLimiter,
    RateLimitedModel,
    TokenBucket,
    endpoint_key,
    limiter_for,
    register_limits,
    reset_limits,
)
from orchestrator.providers.stats import ModelStats
from orchestrator.providers.testing import FunctionModel

MESSAGES = [Message(role="user", text="hi")]
SETTINGS = ModelSettings()


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    reset_limits()
    yield
    reset_limits()


def spec(**extra: object) -> AgentSpec:
    return AgentSpec.model_validate({"provider": "openai_compatible", "model": "m", **extra})


class Clock:
    """A fake monotonic clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class InFlight:
    """A fake provider that counts how many of its requests are in flight at once."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.calls = 0

    async def answer(self, messages: list[Message], tools: object) -> ModelResponse:
        self.current += 1
        self.calls += 1
        self.peak = max(self.peak, self.current)
        for _ in range(5):  # stay in flight across several scheduler rounds
            await asyncio.sleep(0)
        self.current -= 1
        return ModelResponse(text="ok")


async def no_sleep(seconds: float) -> None:
    return None


def test_endpoint_key_is_provider_and_base_url() -> None:
    assert endpoint_key(spec()) == "openai_compatible|"
    a = spec(base_url="https://models.github.ai/inference/")
    b = spec(base_url="https://models.github.ai/inference", model="other")
    assert endpoint_key(a) == endpoint_key(b) != endpoint_key(spec(base_url="https://x"))


def test_registry_shares_one_limiter_with_the_smallest_limits() -> None:
    url = "https://models.github.ai/inference"
    first = limiter_for(spec(base_url=url, max_concurrency=3, requests_per_minute=15))
    assert limiter_for(spec(base_url=url, max_concurrency=2)) is first
    register_limits([spec(base_url=url, requests_per_minute=10), spec(base_url=url)])
    assert (first.max_concurrency, first.requests_per_minute) == (2, 10)
    assert first.gate.limit == 2 and first.bucket is not None and first.bucket.per_minute == 10
    assert limiter_for(spec(base_url="https://other")) is not first
    reset_limits()
    assert limiter_for(spec(base_url=url)) is not first


def test_unlimited_endpoint_never_waits() -> None:
    limiter = limiter_for(spec())
    assert limiter.gate.limit is None and limiter.bucket is None
    probe = InFlight()

    async def main() -> None:
        models = [RateLimitedModel(FunctionModel(probe.answer, spec=spec())) for _ in range(6)]
        await asyncio.gather(*(m.request(MESSAGES, [], SETTINGS) for m in models))

    asyncio.run(main())
    assert probe.peak == 6


def test_concurrency_is_limited_across_agents_sharing_an_endpoint() -> None:
    probe = InFlight()
    other = InFlight()
    url = "https://models.github.ai/inference"
    fast = spec(base_url=url, max_concurrency=3)
    slow = spec(base_url=url, max_concurrency=2)
    elsewhere = spec(base_url="https://api.deepseek.com", max_concurrency=4)
    stats = ModelStats()

    async def main() -> None:
        models = [
            RateLimitedModel(FunctionModel(probe.answer, spec=s), stats=stats, sleep=no_sleep)
            for s in [fast, slow] * 5
        ]
        apart = [RateLimitedModel(FunctionModel(other.answer, spec=elsewhere)) for _ in range(8)]
        await asyncio.gather(*(m.request(MESSAGES, [], SETTINGS) for m in models + apart))

    asyncio.run(main())
    assert probe.calls == 10 and probe.peak == 2  # the smaller limit, fully used, never exceeded
    assert other.calls == 8 and other.peak == 4  # another endpoint has its own slots
    assert stats.provider_calls == 10
    limiter = limiter_for(slow)
    assert limiter.gate.active == 0  # every slot given back


def test_gate_survives_cancelled_waiters_and_lowered_limits() -> None:
    gate = ConcurrencyGate(1)

    async def main() -> None:
        assert await gate.acquire() is False
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.release()
        assert gate.active == 0
        # two holders, then the limit drops to 1: a new caller waits until both are gone
        gate.limit = 2
        await gate.acquire()
        await gate.acquire()
        gate.limit = 1
        third = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.release()
        await asyncio.sleep(0)
        assert not third.done() and gate.active == 1
        gate.release()
        assert await third is True and gate.active == 1
        gate.release()

    asyncio.run(main())
    assert gate.active == 0


def test_token_bucket_spaces_requests_evenly() -> None:
    clock = Clock()
    bucket = TokenBucket(10, clock=clock)  # one request every 6 s
    assert [bucket.reserve() for _ in range(4)] == [0.0, 6.0, 12.0, 18.0]
    clock.now += 18.0
    assert bucket.reserve() == 6.0  # the queue has drained up to now; the next slot is +6 s
    clock.now += 600.0
    assert bucket.reserve() == 0.0 and bucket.reserve() == 6.0  # idle time refills one token only


def test_requests_per_minute_limits_a_burst_of_concurrent_calls() -> None:
    clock = Clock()
    limiter = EndpointLimiter("openai_compatible|", clock=clock)
    limiter.tighten(spec(requests_per_minute=30))  # one every 2 s
    starts: list[float] = []

    async def record(messages: list[Message], tools: object) -> ModelResponse:
        starts.append(clock.now)
        return ModelResponse(text="ok")

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    stats = ModelStats()
    models = [
        RateLimitedModel(FunctionModel(record, spec=spec()), limiter, stats=stats, sleep=sleep)
        for _ in range(5)
    ]

    async def main() -> None:
        await asyncio.gather(*(m.request(MESSAGES, [], SETTINGS) for m in models))

    asyncio.run(main())
    assert sorted(waits) == [2.0, 4.0, 6.0, 8.0]  # the first goes at once
    assert stats.throttle_wait_s == 20.0 and stats.provider_calls == 5


def test_requests_per_minute_paces_sequential_calls() -> None:
    clock = Clock()
    limiter = EndpointLimiter("k", clock=clock)
    limiter.tighten(spec(requests_per_minute=20))  # one every 3 s
    starts: list[float] = []

    async def record(messages: list[Message], tools: object) -> ModelResponse:
        starts.append(clock.now)
        return ModelResponse(text="ok")

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    model = RateLimitedModel(FunctionModel(record, spec=spec()), limiter, sleep=sleep)

    async def main() -> None:
        for _ in range(25):
            await model.request(MESSAGES, [], SETTINGS)

    asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap == pytest.approx(3.0) for gap in gaps)
    # no 60-second window ever holds more than rpm + 1 starts
    assert max(sum(1 for s in starts if t <= s < t + 60) for t in starts) <= 21


def test_a_hung_call_times_out_as_retryable_and_frees_its_slot() -> None:
    limited = spec(max_concurrency=1)

    async def hang(messages: list[Message], tools: object) -> ModelResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    model = RateLimitedModel(FunctionModel(hang, spec=limited), timeout_s=0.01)
    assert model.timeout_s == 0.01
    assert RateLimitedModel(FunctionModel(hang, spec=spec(timeout_s=30))).timeout_s == 35.0
    with pytest.raises(ModelError, match="timeout") as info:
        asyncio.run(model.request(MESSAGES, [], SETTINGS))
    assert info.value.retryable
    assert limiter_for(limited).gate.active == 0


def test_provider_errors_pass_through_and_free_the_slot() -> None:
    limited = spec(max_concurrency=1)

    def fail(messages: list[Message], tools: object) -> ModelResponse:
        raise ModelError("401", retryable=False)

    model = RateLimitedModel(FunctionModel(fail, spec=limited))
    with pytest.raises(ModelError, match="401"):
        asyncio.run(model.request(MESSAGES, [], SETTINGS))
    assert limiter_for(limited).gate.active == 0 and model.stats.provider_calls == 1
