"""What the layers around a provider did for one model: retries, waits, cache hits, calls.

One ``ModelStats`` is shared by the cache, retry and rate-limit layers that ``build_model``
stacks around a provider, and exposed as ``.stats`` on the model it returns. The task runner
builds one model per attempt, so these are per-attempt numbers (``Attempt.retries``,
``Attempt.wait_s``, ``Attempt.cache_hits``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.contracts import Retry


@dataclass
class ModelStats:
    """Counters filled in by the wrappers of one model.

    Attributes:
        retries: Each retried failure, in order: the error text and the wait before the retry.
        retry_wait_s: Seconds slept before retries (backoff or ``Retry-After``).
        throttle_wait_s: Seconds spent waiting for the endpoint's rate limit or a free
            concurrency slot.
        cache_hits: Requests answered from the response cache (no provider call, no tokens).
        provider_calls: Requests that reached the provider (failed ones included).
        batched_calls: Turns answered through the provider's batch API.
        batch_fallbacks: Turns that went interactive after trying a batch (late, failed).
        batch_wait_s: Seconds spent waiting for batches.
        notes: What the layers want the task's result to say (a batch that was not used).
    """

    retries: list[Retry] = field(default_factory=list)
    retry_wait_s: float = 0.0
    throttle_wait_s: float = 0.0
    cache_hits: int = 0
    provider_calls: int = 0
    batched_calls: int = 0
    batch_fallbacks: int = 0
    batch_wait_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def wait_s(self) -> float:
        """Total time spent waiting instead of calling: retries plus throttling."""
        return round(self.retry_wait_s + self.throttle_wait_s, 3)
