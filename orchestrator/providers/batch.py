"""Model turns through a provider's batch API: the same answers, later, at a discount.

A multi-turn agent loop cannot be batched whole — each turn depends on the tool results of the
last — so the unit is a *turn*. ``BatchingModel`` hands each request to the ``Batcher`` of its
endpoint, which collects the turns that concurrent tasks ask for within ``window_s`` and submits
them as one batch (a local run's parallel tasks share it; a matrix job submits its own turn).
The batcher polls every ``poll_s`` until the batch has ended; then each waiting turn gets its
answer. A turn that is not answered within ``max_wait_s`` (the batch is cancelled), a batch the
provider refuses or fails, and a request that failed retryably inside the batch all go to the
interactive API instead, through the usual retry and rate-limit layers; once a task has waited
``max_total_s`` in all, its remaining turns are interactive. So a batch run finishes within the
job's time limit whatever the provider's queue does, and pays the discount where it could.

A batched answer is marked ``batched`` and counts one ``batched_requests`` in its usage; the
loop prices it with the agent's ``batch_discount``.

``sleep`` and ``clock`` are injectable: tests drive polling and deadlines without waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from orchestrator.contracts import AgentSpec, BatchSettings
from orchestrator.providers.base import (
    BatchModel,
    BatchRequest,
    Message,
    Model,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.ratelimit import endpoint_key
from orchestrator.providers.retry import Sleep
from orchestrator.providers.stats import ModelStats

Clock = Callable[[], float]

#: A turn's outcome from the batch: the answer, or ``None`` for "ask interactively".
_Outcome = ModelResponse | None


def supports_batch(model: object) -> bool:
    """Whether a provider model implements ``BatchModel`` (replay and MCP agents do not)."""
    return all(
        callable(getattr(model, name, None))
        for name in ("batch_submit", "batch_status", "batch_results", "batch_cancel")
    )


@dataclass
class _Waiting:
    request: BatchRequest
    future: asyncio.Future[_Outcome]


@dataclass
class Batcher:
    """The turns of one endpoint, model and key, collected into batches (one per window).

    Args:
        provider: Any model of the endpoint; its batch methods carry every waiting turn.
        options: Window, polling interval and per-turn deadline.
        sleep: Awaitable sleep (polling, the collection window).
        clock: Monotonic seconds (deadlines).
    """

    provider: BatchModel
    options: BatchSettings
    sleep: Sleep
    clock: Clock
    notes: list[str] = field(default_factory=list)
    _waiting: list[_Waiting] = field(default_factory=list)
    _collector: asyncio.Task[None] | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def ask(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> _Outcome:
        """This turn's answer from a batch, or ``None`` when it should go interactive.

        Raises:
            ModelError: the batch answered this request with a non-retryable error.
        """
        loop = asyncio.get_running_loop()
        request = BatchRequest(f"turn-{next(self._ids)}", list(messages), list(tools), settings)
        waiting = _Waiting(request, loop.create_future())
        self._waiting.append(waiting)
        if self._collector is None or self._collector.done():
            self._collector = loop.create_task(self._collect())
        return await waiting.future

    async def _collect(self) -> None:
        await self.sleep(self.options.window_s)
        batch, self._waiting = self._waiting, []
        try:
            outcomes = await self._run([w.request for w in batch])
        except ModelError as exc:  # the batch as a whole: every turn goes interactive
            self.notes.append(f"batch not used: {exc}")
            outcomes = {}
        except BaseException as exc:  # cancelled, or a bug: never leave a turn waiting forever
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            raise
        for waiting in batch:
            if waiting.future.done():
                continue
            outcome = outcomes.get(waiting.request.custom_id)
            if isinstance(outcome, ModelError):
                waiting.future.set_exception(outcome)
            else:
                waiting.future.set_result(outcome)

    async def _run(self, requests: list[BatchRequest]) -> dict[str, ModelResponse | ModelError]:
        """Submit, poll until ended or the deadline, read the results (retryable → interactive)."""
        batch_id = await self.provider.batch_submit(requests)
        deadline = self.clock() + self.options.max_wait_s
        while True:
            status = await self.provider.batch_status(batch_id)
            if status.state == "failed":
                self.notes.append(f"batch {batch_id} failed: {status.detail}".rstrip(": "))
                return {}
            if status.state == "ended":
                break
            if self.clock() >= deadline:
                await self.provider.batch_cancel(batch_id)
                self.notes.append(
                    f"batch {batch_id} not done after {self.options.max_wait_s:g}s: cancelled"
                )
                return {}
            await self.sleep(min(self.options.poll_s, max(0.0, deadline - self.clock())))
        results = await self.provider.batch_results(batch_id)
        return {
            custom_id: answer
            for custom_id, answer in results.items()
            if not (isinstance(answer, ModelError) and answer.retryable)
        }


#: Batchers by (endpoint, model, key variable, event loop): concurrent tasks share one.
_BATCHERS: dict[tuple[str, str, str, int], Batcher] = {}


def batcher_for(
    spec: AgentSpec, provider: BatchModel, options: BatchSettings, sleep: Sleep, clock: Clock
) -> Batcher:
    """The shared batcher of ``spec``'s endpoint in the running event loop."""
    loop = asyncio.get_running_loop()
    key = (endpoint_key(spec), spec.model, spec.key_env or "", id(loop))
    found = _BATCHERS.get(key)
    if found is None or found.options != options:
        for stale in [k for k in _BATCHERS if k[3] != id(loop)]:
            del _BATCHERS[stale]  # batchers of finished event loops
        found = _BATCHERS[key] = Batcher(provider, options, sleep, clock)
    return found


class BatchingModel:
    """A ``Model`` that asks its endpoint's batch first and ``inner`` (interactive) otherwise.

    Args:
        inner: The interactive path (retry → rate limit → provider).
        provider: The bare provider model (implements ``BatchModel``).
        options: The plan's batch settings.
        stats: ``batched_calls``, ``batch_fallbacks`` and ``batch_wait_s`` are counted here.
        sleep: Awaitable sleep for polling.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        inner: Model,
        provider: BatchModel,
        options: BatchSettings,
        *,
        stats: ModelStats,
        sleep: Sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.agent = provider.agent
        self.spec = provider.spec
        self._inner = inner
        self._provider = provider
        self._options = options
        self._stats = stats
        self._sleep = sleep
        self._clock = clock

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        """The turn through a batch when there is time left for waiting, else interactively."""
        if self._stats.batch_wait_s < self._options.max_total_s:
            batcher = batcher_for(
                self.spec, self._provider, self._options, self._sleep, self._clock
            )
            started, seen = self._clock(), len(batcher.notes)
            try:
                answer = await batcher.ask(messages, tools, settings)
            finally:
                self._stats.batch_wait_s += self._clock() - started
                new = [n for n in batcher.notes[seen:] if n not in self._stats.notes]
                self._stats.notes.extend(new)
            if answer is not None:
                self._stats.batched_calls += 1
                usage = answer.usage.model_copy(update={"batched_requests": 1})
                return replace(answer, batched=True, usage=usage)
            self._stats.batch_fallbacks += 1
        return await self._inner.request(messages, tools, settings)
