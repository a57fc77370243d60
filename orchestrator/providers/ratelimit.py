"""Client-side rate limits per provider endpoint: concurrent requests and requests per minute.

Providers limit per account and endpoint (GitHub Models' free tier allows one or two requests
in flight and a handful per minute), not per agent, so the limits live in a process-wide
registry keyed by the endpoint: provider name plus ``base_url``. Every agent sharing an
endpoint shares one ``EndpointLimiter``; its limits are the *smallest* ``max_concurrency`` and
``requests_per_minute`` configured among those agents (limits only tighten, until
``reset_limits``). An agent with neither setting is not limited.

* Concurrency: a counting gate (an ``asyncio.Semaphore`` whose limit can shrink). It is not
  bound to an event loop, so one process may run several ``asyncio.run`` in turn; it assumes one
  loop at a time, like the local executor.
* Requests per minute: a token bucket holding one token (``burst``) refilled at
  ``requests_per_minute / 60`` per second. A request takes a token or *reserves* the next one
  and sleeps until it is due, so concurrent callers are spaced ``60 / rpm`` seconds apart in
  the order they asked, with no polling. With ``burst=1`` no 60-second window ever holds more
  than ``rpm + 1`` requests, whatever the window's alignment.

A request first takes a concurrency slot, then its token, so it starts exactly when its token
is due. The slot is held for at most the call's timeout (``spec.timeout_s`` plus a grace period
letting the provider SDK's own timeout speak first): a hung call becomes a retryable
``ModelError`` instead of holding the slot for ever.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from orchestrator.contracts import AgentSpec
from orchestrator.providers import retry as retry_module
from orchestrator.providers.base import (
    Message,
    Model,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.retry import Sleep
from orchestrator.providers.stats import ModelStats

#: Seconds added to ``spec.timeout_s`` before the backstop timeout fires.
TIMEOUT_GRACE_S = 5.0

Clock = Callable[[], float]


def endpoint_key(spec: AgentSpec) -> str:
    """The endpoint an agent calls: ``provider|base_url`` (``base_url`` may be empty)."""
    return f"{spec.provider}|{(spec.base_url or '').rstrip('/')}"


def _smaller(current: int | None, new: int | None) -> int | None:
    if current is None:
        return new
    if new is None:
        return current
    return min(current, new)


class ConcurrencyGate:
    """At most ``limit`` holders at once (``None``: unlimited); the limit may be lowered.

    Waiters are served first come, first served. Not bound to an event loop.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _free(self) -> bool:
        return self.limit is None or self.active < self.limit

    async def acquire(self) -> bool:
        """Take a slot, waiting for one when none is free; return whether it had to wait."""
        if self._free() and not self._waiters:
            self.active += 1
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            elif future in self._waiters:
                self._waiters.remove(future)
            raise
        return True

    def release(self) -> None:
        """Give a slot back and wake the next waiters that now fit."""
        self.active -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots to waiters, in order."""
        while self._waiters and self._free():
            future = self._waiters.popleft()
            if future.done():
                continue
            self.active += 1
            future.set_result(None)


class TokenBucket:
    """Requests per minute, as a token bucket that callers reserve from.

    Args:
        per_minute: Sustained rate.
        burst: Tokens the bucket holds when full (requests that may start back to back).
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(self, per_minute: int, *, burst: int = 1, clock: Clock = time.monotonic) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("per_minute and burst must be at least 1")
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token now; return the seconds to wait until it is due (0 when available)."""
        with self._lock:
            now = self._clock()
            rate = self.per_minute / 60.0
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else round(-self._tokens / rate, 6)


class EndpointLimiter:
    """The shared limits of one endpoint."""

    def __init__(self, key: str, *, clock: Clock = time.monotonic) -> None:
        self.key = key
        self.max_concurrency: int | None = None
        self.requests_per_minute: int | None = None
        self.gate = ConcurrencyGate()
        self.bucket: TokenBucket | None = None
        self._clock = clock

    def tighten(self, spec: AgentSpec) -> None:
        """Adopt ``spec``'s limits where they are smaller than the current ones."""
        concurrency = _smaller(self.max_concurrency, spec.max_concurrency)
        if concurrency != self.max_concurrency:
            self.max_concurrency = concurrency
            self.gate.limit = concurrency
        rpm = _smaller(self.requests_per_minute, spec.requests_per_minute)
        if rpm is not None and rpm != self.requests_per_minute:
            self.requests_per_minute = rpm
            if self.bucket is None:
                self.bucket = TokenBucket(rpm, clock=self._clock)
            else:
                self.bucket.per_minute = rpm

    async def acquire(self, sleep: Sleep) -> float:
        """Wait for a slot and a token; return the seconds spent waiting. Pair with ``release``."""
        started = self._clock()
        waited = 0.0
        if await self.gate.acquire():
            waited += max(0.0, self._clock() - started)
        try:
            if self.bucket is not None:
                due = self.bucket.reserve()
                if due > 0:
                    await sleep(due)
                    waited += due
        except BaseException:
            self.gate.release()
            raise
        return waited

    def release(self) -> None:
        """Free the slot taken by ``acquire``."""
        self.gate.release()


_REGISTRY: dict[str, EndpointLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def limiter_for(spec: AgentSpec) -> EndpointLimiter:
    """The process-wide limiter of ``spec``'s endpoint, tightened by ``spec``'s limits."""
    key = endpoint_key(spec)
    with _REGISTRY_LOCK:
        limiter = _REGISTRY.get(key)
        if limiter is None:
            limiter = _REGISTRY[key] = EndpointLimiter(key)
        limiter.tighten(spec)
    return limiter


def register_limits(specs: Iterable[AgentSpec]) -> None:
    """Register several agents at once (e.g. all of a plan's), so the smallest limit among
    the agents sharing an endpoint applies before the first of them is even built."""
    for spec in specs:
        limiter_for(spec)


def reset_limits() -> None:
    """Forget every endpoint's limits and state (for tests)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()


class RateLimitedModel:
    """A ``Model`` that calls its inner model within its endpoint's limits.

    Args:
        inner: The provider.
        limiter: The endpoint's limiter; ``limiter_for(inner.spec)`` when omitted.
        stats: Receives the time waited and counts the provider calls.
        sleep: Awaitable sleep for token waits; ``retry.default_sleep`` when omitted.
        timeout_s: Backstop per call; ``spec.timeout_s + TIMEOUT_GRACE_S`` when omitted.
    """

    def __init__(
        self,
        inner: Model,
        limiter: EndpointLimiter | None = None,
        *,
        stats: ModelStats | None = None,
        sleep: Sleep | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.inner = inner
        self.agent: str = inner.agent
        self.spec: AgentSpec = inner.spec
        self.limiter = limiter or limiter_for(inner.spec)
        self.stats = stats if stats is not None else ModelStats()
        self._sleep = sleep
        self.timeout_s = (
            timeout_s if timeout_s is not None else inner.spec.timeout_s + TIMEOUT_GRACE_S
        )

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Wait for the endpoint's slot and token, then call the provider (with a timeout)."""
        sleep = self._sleep or retry_module.default_sleep
        waited = await self.limiter.acquire(sleep)
        self.stats.throttle_wait_s += waited
        try:
            self.stats.provider_calls += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    return await self.inner.request(messages, tools, settings)
            except TimeoutError:
                raise ModelError(
                    f"no answer within {self.timeout_s:g}s (timeout)", retryable=True
                ) from None
        finally:
            self.limiter.release()
