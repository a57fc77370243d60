"""Model turns through a provider's batch API: the same answers, later, at a discount.

A multi-turn agent loop cannot be batched whole — each turn depends on the tool results of the
last — so the unit is a *turn*. ``BatchingModel`` hands each request to the ``Batcher`` of its
endpoint, which collects the turns that concurrent tasks ask for within ``window_s`` and submits
them as one batch (a local run's parallel tasks share it; a matrix job submits its own turn).
The batcher polls every ``poll_s`` until the batch has ended; then each waiting turn gets its
answer. Each turn has a deadline: ``max_wait_s``, or what is left of its task's
``max_total_s`` if that is less (once it is used up, turns are interactive at once). When the
first turn of a batch reaches its deadline the batch is cancelled and polled a few more times:
answers the provider finished before the cancel are used (they are billed anyway); the other
turns go to the interactive API, through the usual retry and rate-limit layers, as do the turns
of a batch the provider refuses or fails and requests that failed retryably inside a batch. A
failing status poll is retried briefly; any exit that does not read the results (a poll that
keeps failing, the deadline, a cancelled task) cancels the batch, so it is never paid twice.
So a batch run finishes within the job's time limit whatever the provider's queue does, and
pays the discount where it could.

A batched answer is marked ``batched`` and counts one ``batched_requests`` in its usage; the
loop prices it with the agent's ``batch_discount``.

``sleep`` and ``clock`` are injectable: tests drive polling and deadlines without waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.contracts import AgentSpec, BatchSettings
from orchestrator.providers.base import (
    BatchModel,
    BatchRequest,
    BatchStatus,
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


#: Pauses before retrying a poll that failed retryably (a 502, a timeout); once they are used
#: up the batch is given up (and cancelled) and its turns go interactive.
POLL_RETRY_PAUSES_S = (2.0, 5.0, 10.0)
#: After a cancel, polls for the batch to end with what it already answered (and billed)...
DRAIN_POLLS = 3
#: ...this far apart at most (so a turn overruns its deadline by seconds, not minutes).
DRAIN_PAUSE_S = 10.0


@dataclass
class _Waiting:
    request: BatchRequest
    future: asyncio.Future[_Outcome]
    wait_s: float
    deadline: float
    #: The turns collected with this one (the same list object), and the task running them.
    group: list[_Waiting]
    collector: asyncio.Task[None]


@dataclass
class Batcher:
    """The turns of one endpoint, model and key, collected into batches (one per window).

    Args:
        provider: Any model of the endpoint; its batch methods carry every waiting turn.
        options: Window and polling interval (deadlines come with each turn).
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
    #: Every batch task still running: the event loop keeps only weak references to tasks.
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def ask(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
        wait_s: float | None = None,
    ) -> _Outcome:
        """This turn's answer from a batch, or ``None`` when it should go interactive.

        Args:
            messages: The conversation so far.
            tools: The tools the model may call.
            settings: Per-call settings.
            wait_s: How long this turn may wait for the batch (its deadline); ``None``:
                ``options.max_wait_s``.

        Raises:
            ModelError: the batch answered this request with a non-retryable error.
        """
        loop = asyncio.get_running_loop()
        wait_s = self.options.max_wait_s if wait_s is None else wait_s
        if self._collector is None:
            self._collector = loop.create_task(self._collect())
            self._tasks.add(self._collector)
            self._collector.add_done_callback(self._tasks.discard)
        request = BatchRequest(f"turn-{next(self._ids)}", list(messages), list(tools), settings)
        waiting = _Waiting(
            request,
            loop.create_future(),
            wait_s,
            self.clock() + wait_s,
            self._waiting,
            self._collector,
        )
        self._waiting.append(waiting)
        try:
            return await waiting.future
        except asyncio.CancelledError:
            self._abandon(waiting)
            raise

    def _abandon(self, waiting: _Waiting) -> None:
        """A turn's caller was cancelled: a batch nobody waits for any more is cancelled too."""
        if not all(w.future.done() for w in waiting.group):
            return
        if self._collector is waiting.collector:  # still collecting: the next turn starts anew
            self._collector, self._waiting = None, []
        waiting.collector.cancel()

    async def _collect(self) -> None:
        await self.sleep(self.options.window_s)
        # Turns asked from now on go to the next batch, even while this one is polled.
        batch, self._waiting, self._collector = self._waiting, [], None
        batch = [w for w in batch if not w.future.done()]
        if not batch:
            return
        first = min(batch, key=lambda w: w.deadline)  # the batch waits no longer than any turn
        try:
            outcomes = await self._run([w.request for w in batch], first.deadline, first.wait_s)
        except ModelError as exc:  # the batch as a whole: every turn goes interactive
            self.notes.append(f"batch not used: {exc}")
            outcomes = {}
        except BaseException as exc:  # cancelled, or a bug: never leave a turn waiting forever
            self._take_provider_notes()
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            raise
        self._take_provider_notes()
        for waiting in batch:
            if waiting.future.done():
                continue
            outcome = outcomes.get(waiting.request.custom_id)
            if isinstance(outcome, ModelError):
                waiting.future.set_exception(outcome)
            else:
                waiting.future.set_result(outcome)

    async def _run(
        self, requests: list[BatchRequest], deadline: float, wait_s: float
    ) -> dict[str, ModelResponse | ModelError]:
        """Submit, poll until ended or the deadline, read the results (retryable → interactive).

        Once submitted, a batch whose results are not read is cancelled whatever ends the
        wait (a failing poll, the deadline, a cancelled task): otherwise it would keep running
        — and be billed — at the provider while its turns are paid for again interactively.
        """
        batch_id = await self.provider.batch_submit(requests)
        settled = False  # ended, failed or cancelled by us: nothing left to cancel
        try:
            state = await self._wait(batch_id, deadline)
            settled = True
            if state == "running":
                await self._cancel(batch_id)
                self.notes.append(f"batch {batch_id} not done after {wait_s:g}s: cancelled")
                state = await self._drain(batch_id)
            if state != "ended":
                return {}
            results = await self.provider.batch_results(batch_id)
        finally:
            if not settled:
                await self._cancel(batch_id)
                self.notes.append(f"batch {batch_id} cancelled: its wait was interrupted")
        return {
            custom_id: answer
            for custom_id, answer in results.items()
            if not (isinstance(answer, ModelError) and answer.retryable)
        }

    async def _wait(self, batch_id: str, deadline: float) -> str:
        """Poll until the batch has ended (``ended``), failed (``failed``) or the deadline
        passed (``running``)."""
        while True:
            status = await self._poll(batch_id)
            if status.state == "failed":
                self.notes.append(f"batch {batch_id} failed: {status.detail}".rstrip(": "))
                return "failed"
            if status.state == "ended" or self.clock() >= deadline:
                return status.state
            await self.sleep(min(self.options.poll_s, max(0.0, deadline - self.clock())))

    async def _poll(self, batch_id: str) -> BatchStatus:
        """One status poll; a retryable failure is retried after short pauses.

        Raises:
            ModelError: the poll failed for good (not retryable, or every retry failed too).
        """
        for pause in (*POLL_RETRY_PAUSES_S, None):
            try:
                return await self.provider.batch_status(batch_id)
            except ModelError as exc:
                if not exc.retryable or pause is None:
                    raise
            await self.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _drain(self, batch_id: str) -> str:
        """After a cancel, a few polls for the batch to end with the answers it already has."""
        pause = min(self.options.poll_s, DRAIN_PAUSE_S)
        for attempt in range(DRAIN_POLLS):
            if attempt:
                await self.sleep(pause)
            try:
                status = await self.provider.batch_status(batch_id)
            except ModelError:
                continue  # still cancelling, as far as we know
            if status.state != "running":
                return status.state
        return "running"

    async def _cancel(self, batch_id: str) -> None:
        """Cancel the batch, best effort: a failure is noted (the batch expires eventually)."""
        try:
            await self.provider.batch_cancel(batch_id)
        except Exception as exc:  # any failure: the provider expires the batch eventually
            self.notes.append(f"batch {batch_id} could not be cancelled: {exc}")

    def _take_provider_notes(self) -> None:
        """Move what the provider noted about its batches (say, a file it could not delete)."""
        notes = getattr(self.provider, "batch_notes", None)
        if isinstance(notes, list):
            self.notes.extend(str(note) for note in notes)
            notes.clear()


#: Batchers by (endpoint, model, key variable, event loop): concurrent tasks share one.
_BATCHERS: dict[tuple[str, str, str, int], Batcher] = {}


def batcher_for(
    spec: AgentSpec, provider: BatchModel, options: BatchSettings, sleep: Sleep, clock: Clock
) -> Batcher:
    """The shared batcher of ``spec``'s endpoint in the running event loop."""
    loop = asyncio.get_running_loop()
    # Agents share a batcher only when every field agrees: the batch is built by the first
    # one's provider object, so another ``api``, ``vision`` or ``max_tokens`` needs its own.
    key = (endpoint_key(spec), spec.model_dump_json(), spec.key_env or "", id(loop))
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
        # A turn waits no longer than its own limit nor than what is left of the task's.
        left_s = self._options.max_total_s - self._stats.batch_wait_s
        if left_s > 0:
            batcher = batcher_for(
                self.spec, self._provider, self._options, self._sleep, self._clock
            )
            started, seen = self._clock(), len(batcher.notes)
            try:
                answer = await batcher.ask(
                    messages, tools, settings, min(self._options.max_wait_s, left_s)
                )
            finally:
                self._stats.batch_wait_s += self._clock() - started
                new = [n for n in batcher.notes[seen:] if n not in self._stats.notes]
                self._stats.notes.extend(new)
            if answer is not None:
                self._stats.batched_calls += 1
                return answer.as_batched()
            self._stats.batch_fallbacks += 1
        return await self._inner.request(messages, tools, settings)
