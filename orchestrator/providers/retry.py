"""Retrying a model call that failed for a passing reason (rate limit, overload, 5xx, timeout).

``RetryingModel`` wraps any ``Model``. A ``ModelError`` with ``retryable=False`` (bad key, bad
request) propagates at once; a retryable one is retried on the same agent after a wait, up to
``RetryPolicy.max_retries`` times per request. The wait is the provider's ``retry_after`` when
it gave one (it knows best), else exponential backoff with jitter, both capped at
``max_wait_s``. When the retries run out the last error propagates, marked with how many
retries were made; the agent loop turns it into a failed attempt and the task runner falls back
to the next agent of the chain.

Every retry is recorded in ``ModelStats.retries`` (error text and wait). ``sleep`` and ``rand``
are injectable so tests are deterministic and instant; by default the module-level
``default_sleep`` is used, which end-to-end tests may replace with ``monkeypatch``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.contracts import AgentSpec, Retry
from orchestrator.providers.base import (
    Message,
    Model,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.stats import ModelStats

Sleep = Callable[[float], Awaitable[None]]


async def default_sleep(seconds: float) -> None:
    """The real wait (``asyncio.sleep``); tests replace this module attribute."""
    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retryable failure.

    Args:
        max_retries: Retries per request after the first call (0 disables retrying).
        base_s: Backoff before the first retry; it doubles for each further retry.
        max_wait_s: Upper bound of any single wait, ``retry_after`` included.
        jitter: Fraction of the backoff that is randomised: the wait is drawn uniformly from
            ``[backoff * (1 - jitter), backoff]``. ``1.0`` is "full jitter", ``0`` none.
    """

    max_retries: int = 4
    base_s: float = 1.0
    max_wait_s: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_s < 0 or self.max_wait_s < 0:
            raise ValueError("max_retries, base_s and max_wait_s must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")

    def wait_s(self, retry: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first).

        ``retry_after`` (the provider's ``Retry-After``) wins over the backoff, capped at
        ``max_wait_s``; ``rand`` is a uniform number in ``[0, 1)``.
        """
        if retry_after is not None:
            return round(min(max(retry_after, 0.0), self.max_wait_s), 3)
        backoff = min(self.base_s * 2.0**retry, self.max_wait_s)
        return round(backoff * (1.0 - self.jitter * rand), 3)


class RetryingModel:
    """A ``Model`` that retries its inner model's retryable failures.

    Args:
        inner: The model to call (usually the rate-limited provider).
        policy: Retry counts and waits.
        stats: Receives each retry and the time waited (a fresh one when omitted).
        sleep: Awaitable sleep; ``default_sleep`` when omitted.
        rand: Source of uniform ``[0, 1)`` numbers for the jitter.
    """

    def __init__(
        self,
        inner: Model,
        policy: RetryPolicy | None = None,
        *,
        stats: ModelStats | None = None,
        sleep: Sleep | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.inner = inner
        self.agent: str = inner.agent
        self.spec: AgentSpec = inner.spec
        self.policy = policy or RetryPolicy()
        self.stats = stats if stats is not None else ModelStats()
        self._sleep = sleep
        self._rand = rand or random.random

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Call the inner model, retrying retryable ``ModelError``s as the policy allows."""
        retry = 0
        while True:
            try:
                return await self.inner.request(messages, tools, settings)
            except ModelError as exc:
                if not exc.retryable:
                    raise
                if retry >= self.policy.max_retries:
                    if retry == 0:
                        raise
                    raise ModelError(
                        f"{exc} (gave up after {retry} {'retry' if retry == 1 else 'retries'})",
                        retryable=True,
                        retry_after=exc.retry_after,
                    ) from exc
                wait = self.policy.wait_s(retry, exc.retry_after, self._rand())
                self.stats.retries.append(Retry(error=str(exc), wait_s=wait))
                self.stats.retry_wait_s += wait
                sleep = self._sleep or default_sleep
                await sleep(wait)
                retry += 1
