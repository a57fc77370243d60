"""The batch layer: concurrent turns share a batch, late or failed batches go interactive."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.contracts import BatchSettings, Usage
from orchestrator.pricing import cost_usd
from orchestrator.providers.base import (
    BatchStatus,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.batch import BatchingModel
from orchestrator.providers.stats import ModelStats
from orchestrator.providers.testing import BatchBehaviour, BatchFunctionModel, default_spec

SPEC = default_spec(input_per_mtok=2.0, output_per_mtok=10.0, batch_discount=0.5, model="batchable")


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def answer(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
    """Echo the first user message, with usage."""
    text = next(m.text for m in messages if m.role == "user")
    return ModelResponse(text=f"re: {text}", usage=Usage(input_tokens=1000, output_tokens=100))


def models(
    provider: BatchFunctionModel, time: FakeTime, options: BatchSettings, count: int
) -> list[tuple[BatchingModel, ModelStats]]:
    out = []
    for _ in range(count):
        stats = ModelStats()
        model = BatchingModel(
            provider, provider, options, stats=stats, sleep=time.sleep, clock=time.clock
        )
        out.append((model, stats))
    return out


async def ask(model: BatchingModel, text: str) -> ModelResponse:
    return await model.request([Message(role="user", text=text)], [], ModelSettings())


OPTIONS = BatchSettings(window_s=2.0, poll_s=30.0, max_wait_s=900.0, max_total_s=3600.0)


def test_concurrent_turns_share_one_batch_and_are_priced_at_the_discount() -> None:
    time = FakeTime()
    provider = BatchFunctionModel(answer, spec=SPEC, behaviour=BatchBehaviour(polls_to_end=3))
    pairs = models(provider, time, OPTIONS, 3)

    async def main() -> list[ModelResponse]:
        return await asyncio.gather(*(ask(m, f"task {i}") for i, (m, _) in enumerate(pairs)))

    answers = asyncio.run(main())
    assert [a.text for a in answers] == ["re: task 0", "re: task 1", "re: task 2"]
    assert len(provider.batches) == 1 and len(provider.batches["batch-1"].requests) == 3
    assert provider.requests == []  # nothing went interactive
    assert all(a.batched and a.usage.batched_requests == 1 for a in answers)
    assert time.sleeps == [2.0, 30.0, 30.0]  # the window, then polls until the third
    interactive = cost_usd(SPEC, answers[0].usage)
    batched = cost_usd(SPEC, answers[0].usage, batched=True)
    assert interactive == pytest.approx(0.003) and batched == pytest.approx(0.0015)
    assert all(stats.batched_calls == 1 and stats.batch_fallbacks == 0 for _, stats in pairs)


def test_a_batch_not_done_in_time_is_cancelled_and_the_turn_goes_interactive() -> None:
    time = FakeTime()
    provider = BatchFunctionModel(answer, spec=SPEC, behaviour=BatchBehaviour(polls_to_end=None))
    options = OPTIONS.model_copy(update={"max_wait_s": 100.0})
    ((model, stats),) = models(provider, time, options, 1)
    reply = asyncio.run(ask(model, "late"))
    assert reply.text == "re: late" and not reply.batched
    assert provider.batches["batch-1"].cancelled
    assert len(provider.requests) == 1  # the interactive call
    # The deadline counts from the turn's ask, the collection window included.
    assert stats.batch_fallbacks == 1 and stats.batch_wait_s == pytest.approx(100.0)
    assert any("not done after 100s" in note for note in stats.notes)


def test_a_failed_or_refused_batch_goes_interactive() -> None:
    for behaviour in (
        BatchBehaviour(fail=True),
        BatchBehaviour(refuse=ModelError("batches are not enabled for this key")),
    ):
        time = FakeTime()
        provider = BatchFunctionModel(answer, spec=SPEC, behaviour=behaviour)
        ((model, stats),) = models(provider, time, OPTIONS, 1)
        reply = asyncio.run(ask(model, "x"))
        assert not reply.batched and len(provider.requests) == 1
        assert stats.batch_fallbacks == 1 and stats.notes


def test_errors_inside_a_batch_retryable_go_interactive_others_are_raised() -> None:
    time = FakeTime()
    errors = {
        0: ModelError("overloaded", retryable=True),
        1: ModelError("invalid request: bad tool schema", retryable=False),
    }
    provider = BatchFunctionModel(answer, spec=SPEC, behaviour=BatchBehaviour(errors=errors))
    pairs = models(provider, time, OPTIONS, 3)

    async def main() -> list[ModelResponse | BaseException]:
        calls = (ask(m, f"t{i}") for i, (m, _) in enumerate(pairs))
        return await asyncio.gather(*calls, return_exceptions=True)

    first, second, third = asyncio.run(main())
    assert isinstance(first, ModelResponse) and not first.batched  # retried interactively
    assert isinstance(second, ModelError) and "bad tool schema" in str(second)
    assert isinstance(third, ModelResponse) and third.batched
    assert [r.messages[0].text for r in provider.requests] == ["t0"]


def test_after_max_total_s_of_waiting_a_task_stops_batching() -> None:
    time = FakeTime()
    provider = BatchFunctionModel(answer, spec=SPEC, behaviour=BatchBehaviour(polls_to_end=2))
    options = OPTIONS.model_copy(update={"max_total_s": 30.0})
    ((model, stats),) = models(provider, time, options, 1)

    async def main() -> list[ModelResponse]:
        return [await ask(model, "one"), await ask(model, "two")]

    one, two = asyncio.run(main())
    assert one.batched and not two.batched  # 32 s waited for the first: over the budget
    assert len(provider.batches) == 1 and len(provider.requests) == 1
    assert stats.batched_calls == 1 and stats.batch_fallbacks == 0


class FlakyPolls(BatchFunctionModel):
    """Its first ``failures`` polls answer HTTP 502 (``None``: every poll does)."""

    def __init__(self, failures: int | None, behaviour: BatchBehaviour) -> None:
        super().__init__(answer, spec=SPEC, behaviour=behaviour)
        self.failures = failures
        self.failed_polls = 0

    async def batch_status(self, batch_id: str) -> BatchStatus:
        if self.failures is None or self.failed_polls < self.failures:
            self.failed_polls += 1
            raise ModelError("HTTP 502: bad gateway", retryable=True)
        return await super().batch_status(batch_id)


class PartialOnCancel(BatchFunctionModel):
    """Never ends on its own; once cancelled it has ended, with only the first request run."""

    def __init__(self) -> None:
        super().__init__(answer, spec=SPEC, behaviour=BatchBehaviour(polls_to_end=None))

    async def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self.batches[batch_id]
        batch.polls += 1
        return BatchStatus("ended" if batch.cancelled else "running")

    async def batch_results(self, batch_id: str) -> dict[str, ModelResponse | ModelError]:
        results = await super().batch_results(batch_id)
        for request in self.batches[batch_id].requests[1:]:
            results[request.custom_id] = ModelError("canceled before it ran", retryable=True)
        return results


def test_a_failed_poll_is_retried_and_the_batch_still_answers() -> None:
    time = FakeTime()
    provider = FlakyPolls(1, BatchBehaviour(polls_to_end=1))
    ((model, stats),) = models(provider, time, OPTIONS, 1)
    reply = asyncio.run(ask(model, "flaky"))
    assert reply.batched and provider.requests == []
    assert provider.failed_polls == 1 and not provider.batches["batch-1"].cancelled
    assert stats.batched_calls == 1


def test_polls_that_keep_failing_cancel_the_batch_before_going_interactive() -> None:
    time = FakeTime()
    provider = FlakyPolls(None, BatchBehaviour(polls_to_end=1))
    ((model, stats),) = models(provider, time, OPTIONS, 1)
    reply = asyncio.run(ask(model, "down"))
    assert not reply.batched and len(provider.requests) == 1
    assert provider.batches["batch-1"].cancelled  # not left running (and billed) at the provider
    assert 1 < provider.failed_polls <= 5
    assert any("502" in note for note in stats.notes)


def test_a_cancelled_batch_task_cancels_the_batch() -> None:
    time = FakeTime()
    provider = BatchFunctionModel(answer, spec=SPEC, behaviour=BatchBehaviour(polls_to_end=None))
    ((model, _),) = models(provider, time, OPTIONS, 1)

    async def main() -> None:
        turn = asyncio.ensure_future(ask(model, "abandoned"))
        while not provider.batches or provider.batches["batch-1"].polls < 2:
            await asyncio.sleep(0)
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert provider.batches["batch-1"].cancelled


def test_answers_the_batch_finished_before_the_deadline_are_used() -> None:
    time = FakeTime()
    provider = PartialOnCancel()
    options = OPTIONS.model_copy(update={"max_wait_s": 100.0})
    pairs = models(provider, time, options, 2)

    async def main() -> list[ModelResponse]:
        return await asyncio.gather(*(ask(m, f"t{i}") for i, (m, _) in enumerate(pairs)))

    first, second = asyncio.run(main())
    assert provider.batches["batch-1"].cancelled
    assert first.batched and first.usage.batched_requests == 1  # paid for: used
    assert not second.batched and [r.messages[0].text for r in provider.requests] == ["t1"]
    assert pairs[0][1].batched_calls == 1 and pairs[1][1].batch_fallbacks == 1


def test_a_turn_never_waits_past_what_is_left_of_max_total_s() -> None:
    time = FakeTime()
    provider = BatchFunctionModel(answer, spec=SPEC, behaviour=BatchBehaviour(polls_to_end=None))
    options = OPTIONS.model_copy(update={"max_wait_s": 600.0, "max_total_s": 100.0})
    ((model, stats),) = models(provider, time, options, 1)
    reply = asyncio.run(ask(model, "late"))
    assert not reply.batched and provider.batches["batch-1"].cancelled
    assert stats.batch_wait_s <= 100.0 + 1e-9


def test_a_turn_asked_while_a_batch_is_in_flight_gets_its_own_batch() -> None:
    time = FakeTime()
    provider = BatchFunctionModel(answer, spec=SPEC, behaviour=BatchBehaviour(polls_to_end=3))
    (first, _), (second, _) = models(provider, time, OPTIONS, 2)

    async def main() -> list[ModelResponse]:
        early = asyncio.ensure_future(ask(first, "early"))
        while not provider.batches:
            await asyncio.sleep(0)
        late = await asyncio.wait_for(ask(second, "late"), timeout=5)
        return [await early, late]

    early, late = asyncio.run(main())
    assert early.batched and late.batched and len(provider.batches) == 2


class NotingProvider(BatchFunctionModel):
    """Notes a side failure (as ``OpenAIModel`` does for a file it could not delete)."""

    def __init__(self) -> None:
        super().__init__(answer, spec=SPEC)
        self.batch_notes: list[str] = []

    async def batch_results(self, batch_id: str) -> dict[str, ModelResponse | ModelError]:
        self.batch_notes.append(f"could not delete the files of {batch_id}")
        return await super().batch_results(batch_id)


def test_what_the_provider_notes_reaches_the_task() -> None:
    time = FakeTime()
    provider = NotingProvider()
    ((model, stats),) = models(provider, time, OPTIONS, 1)
    assert asyncio.run(ask(model, "x")).batched
    assert stats.notes == ["could not delete the files of batch-1"] and provider.batch_notes == []


def test_default_deadlines_fit_a_30_minute_task_job() -> None:
    from orchestrator.config import load_config

    defaults = BatchSettings()
    assert (defaults.max_wait_s, defaults.max_total_s) == (600.0, 1200.0)
    configured = load_config().settings.batch
    assert (configured.max_wait_s, configured.max_total_s) == (600.0, 1200.0)


@pytest.mark.parametrize(
    ("source", "mode", "workflow_mode", "enabled", "reason"),
    [
        ("schedule", None, None, True, "a scheduled run (settings batch.schedules)"),
        ("schedule", "interactive", None, False, "schedule asked for interactive"),
        ("issues", None, None, False, ""),
        ("issues", None, "batch", True, "workflow parallel_feature_implementation is batch"),
        ("workflow_dispatch", "batch", "interactive", True, "workflow_dispatch asked for batch"),
    ],
)
def test_which_runs_are_batch_runs_and_why(
    source: str, mode: str | None, workflow_mode: str | None, enabled: bool, reason: str
) -> None:
    import dataclasses

    from orchestrator.config import load_config
    from orchestrator.contracts import Request
    from orchestrator.planner import batch_plan

    config = load_config()
    name = "parallel_feature_implementation"
    workflows = dict(config.workflows)
    workflows[name] = workflows[name].model_copy(update={"mode": workflow_mode})
    config = dataclasses.replace(config, workflows=workflows)
    request = Request(source=source, act=True, reason="ok", mode=mode)  # type: ignore[arg-type]
    planned = batch_plan(request, config, name)
    assert (planned.enabled, planned.reason) == (enabled, reason)
    assert planned.max_wait_s == config.settings.batch.max_wait_s


def test_agents_share_a_batcher_only_with_the_same_spec() -> None:
    from orchestrator.providers.batch import batcher_for

    time = FakeTime()
    seeing = SPEC.model_copy(update={"vision": True})

    async def batchers() -> list[object]:
        models = [
            BatchFunctionModel(lambda m, t: ModelResponse(), spec=s) for s in (SPEC, SPEC, seeing)
        ]
        return [batcher_for(m.spec, m, BatchSettings(), time.sleep, time.clock) for m in models]

    plain, same, other = asyncio.run(batchers())
    assert plain is same and plain is not other
