"""Gemini batch mode through the real SDK (``client.aio.batches``) against the loopback fake:
submit, poll, results by ``custom_id``, per-request errors, cancel, and the shared batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import BatchSettings
from orchestrator.providers.base import (
    BatchRequest,
    BatchStatus,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.batch import Batcher, supports_batch
from orchestrator.providers.gemini import GeminiModel
from tests.fakes.gemini_fake import (
    BatchPlan,
    GeminiFake,
    call,
    daily_quota_exhausted,
    error,
    text,
    tool_calls,
)

ENV = "FAKE_GEMINI_KEY"
KEY = "AIzaSyBatch-9a8b7c6d5e4f30211"
TOOLS = [ToolSpec("finish", "Finish.", {"type": "object", "properties": {}})]
SETTINGS = ModelSettings(max_tokens=128)
T = TypeVar("T")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiFake]:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)
    with GeminiFake(expected_key=KEY) as server:
        yield server
    assert server.violations == []


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def model_for(fake: GeminiFake) -> GeminiModel:
    return GeminiModel("gemini", fake.spec(key_env=ENV), "t1")


def requests(*prompts: str) -> list[BatchRequest]:
    return [
        BatchRequest(
            f"req-{index}",
            [Message("system", "Be brief."), Message("user", prompt)],
            TOOLS,
            SETTINGS,
        )
        for index, prompt in enumerate(prompts, 1)
    ]


def texts(results: dict[str, ModelResponse | ModelError]) -> dict[str, str]:
    """The text of each answer (every one must be a turn, not an error)."""
    answers = {key: value for key, value in results.items() if isinstance(value, ModelResponse)}
    assert answers.keys() == results.keys(), results
    return {key: answer.text for key, answer in answers.items()}


def test_round_trip_polls_until_done_and_maps_answers_by_key(fake: GeminiFake) -> None:
    fake.batch_plan = BatchPlan(polls_until_done=3, reverse=True)
    fake.script(text("one"), tool_calls(call("finish", summary="two")))
    model = model_for(fake)
    assert supports_batch(model)
    name = run(model.batch_submit(requests("first", "second")))
    assert name.startswith("batches/")
    states = [run(model.batch_status(name)).state for _ in range(3)]
    assert states == ["running", "running", "ended"]
    results = run(model.batch_results(name))
    assert set(results) == {"req-1", "req-2"}
    first, second = results["req-1"], results["req-2"]
    assert isinstance(first, ModelResponse) and isinstance(second, ModelResponse)
    assert first.text == "one" and [c.name for c in second.tool_calls] == ["finish"]
    for answer in (first, second):
        assert answer.batched and answer.usage.batched_requests == 1
        assert answer.usage.input_tokens > 0
    # What went over the wire: the documented create body, on v1beta.
    [create] = [r for r in fake.requests if r.path.endswith(":batchGenerateContent")]
    assert create.path == "/v1beta/models/gemini-fake-1:batchGenerateContent"
    batch = create.json()["batch"]
    assert batch["displayName"].startswith("orchestrator gemini t1")
    items = batch["inputConfig"]["requests"]["requests"]
    assert [item["metadata"]["key"] for item in items] == ["req-1", "req-2"]
    assert items[0]["request"]["contents"] == [{"role": "user", "parts": [{"text": "first"}]}]
    assert items[0]["request"]["systemInstruction"]["parts"] == [{"text": "Be brief."}]


def test_results_are_readable_from_another_process_and_without_echoed_keys(
    fake: GeminiFake,
) -> None:
    fake.script(text("a"), text("b"))
    name = run(model_for(fake).batch_submit(requests("x", "y")))
    fresh = model_for(fake)  # knows nothing of the submission: keys come from the metadata
    assert run(fresh.batch_status(name)).state == "ended"
    assert texts(run(fresh.batch_results(name))) == {"req-1": "a", "req-2": "b"}
    fake.batch_plan = BatchPlan(echo_metadata=False)
    fake.script(text("c"), text("d"))
    model = model_for(fake)
    name = run(model.batch_submit(requests("x", "y")))
    assert run(model.batch_status(name)).state == "ended"
    answers = run(model.batch_results(name))  # matched by position in the submitting process
    assert texts(answers) == {"req-1": "c", "req-2": "d"}


def test_a_failed_request_inside_the_batch_is_a_model_error(fake: GeminiFake) -> None:
    fake.script(
        text("fine"),
        error(400, message="Request contains an invalid argument."),
        daily_quota_exhausted(),
        error(503, message="The model is overloaded."),
    )
    model = model_for(fake)
    name = run(model.batch_submit(requests("a", "b", "c", "d")))
    status = run(model.batch_status(name))
    assert status.state == "ended" and "failed 3" in status.detail
    results = run(model.batch_results(name))
    assert isinstance(results["req-1"], ModelResponse)
    invalid, daily, overloaded = results["req-2"], results["req-3"], results["req-4"]
    assert isinstance(invalid, ModelError) and not invalid.retryable
    assert "INVALID_ARGUMENT" in str(invalid) and "batch request req-2" in str(invalid)
    assert isinstance(daily, ModelError) and not daily.retryable
    assert "daily quota exhausted" in str(daily)
    assert isinstance(overloaded, ModelError) and overloaded.retryable
    assert KEY not in "".join(str(r) for r in results.values())


@pytest.mark.parametrize(
    ("outcome", "state"), [("failed", "JOB_STATE_FAILED"), ("expired", "JOB_STATE_EXPIRED")]
)
def test_a_batch_that_failed_as_a_whole_has_no_results(
    fake: GeminiFake, outcome: Any, state: str
) -> None:
    fake.batch_plan = BatchPlan(outcome=outcome)
    fake.script(text("lost"))
    model = model_for(fake)
    name = run(model.batch_submit(requests("a")))
    status = run(model.batch_status(name))
    assert status.state == "failed" and state in status.detail
    with pytest.raises(ModelError) as caught:
        run(model.batch_results(name))
    assert not caught.value.retryable


def test_cancel_ends_a_batch_that_never_finishes(fake: GeminiFake) -> None:
    fake.batch_plan = BatchPlan(polls_until_done=None)
    fake.script(text("never read"))
    model = model_for(fake)
    name = run(model.batch_submit(requests("a")))
    assert [run(model.batch_status(name)).state for _ in range(3)] == ["running"] * 3
    with pytest.raises(ModelError) as caught:
        run(model.batch_results(name))
    assert caught.value.retryable  # still running: ask again later
    run(model.batch_cancel(name))
    assert fake.batches[name].cancel_calls == 1
    assert run(model.batch_status(name)) == BatchStatus(
        state="failed", detail="JOB_STATE_CANCELLED (requests 1, pending 1)"
    )
    run(model.batch_cancel(name))  # already ended: the 400 is swallowed
    run(model.batch_cancel("batches/unknown"))  # unknown: the 404 is swallowed
    assert [r.path for r in fake.requests if r.path.endswith(":cancel")] == [
        f"/v1beta/{name}:cancel",
        f"/v1beta/{name}:cancel",
        "/v1beta/batches/unknown:cancel",
    ]


def test_batches_that_cannot_be_mapped_back_are_refused_before_sending(fake: GeminiFake) -> None:
    model = model_for(fake)
    with pytest.raises(ModelError, match="at least one"):
        run(model.batch_submit([]))
    twice = requests("a") * 2
    with pytest.raises(ModelError, match="appears twice"):
        run(model.batch_submit(twice))
    assert fake.requests == []


def test_the_shared_batcher_answers_concurrent_turns_from_one_batch(fake: GeminiFake) -> None:
    fake.batch_plan = BatchPlan(polls_until_done=2)
    fake.script(text("left"), text("right"))
    polls: list[float] = []

    async def sleep(seconds: float) -> None:
        polls.append(seconds)

    async def both() -> list[ModelResponse | None]:
        options = BatchSettings(window_s=0.5, poll_s=10.0, max_wait_s=100.0)
        batcher = Batcher(model_for(fake), options, sleep, clock=lambda: 0.0)
        turns = [[Message("user", side)] for side in ("left", "right")]
        return list(await asyncio.gather(*(batcher.ask(t, TOOLS, SETTINGS) for t in turns)))

    left, right = run(both())
    assert left is not None and right is not None
    assert (left.text, right.text) == ("left", "right")
    assert len(fake.batches) == 1 and polls == [0.5, 10.0]
