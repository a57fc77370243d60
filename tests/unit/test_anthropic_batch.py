"""Anthropic Message Batches through the SDK against the fake, alone and under the batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import BatchSettings
from orchestrator.pricing import cost_usd
from orchestrator.providers.anthropic import AnthropicModel, build_request
from orchestrator.providers.base import (
    BatchRequest,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.batch import BatchingModel
from orchestrator.providers.stats import ModelStats
from tests.fakes.anthropic_fake import AnthropicFake, batch_outcome, call, error, text, tool_calls

ENV = "FAKE_ANTHROPIC_BATCH_KEY"
KEY = "sk-ant-batch-test-00000000000000000"
TOOLS = [ToolSpec("finish", "Finish.", {"type": "object", "properties": {}})]
SETTINGS = ModelSettings(max_tokens=100)


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(ENV, KEY)


def model_for(fake: AnthropicFake) -> AnthropicModel:
    spec = fake.spec(key_env=ENV, input_per_mtok=2.0, output_per_mtok=10.0, batch_discount=0.5)
    return AnthropicModel("claude", spec, "t1")


def request(custom_id: str, task: str) -> BatchRequest:
    messages = [Message("system", "Be brief.", cache_prefix=True), Message("user", task)]
    return BatchRequest(custom_id, messages, TOOLS, SETTINGS)


def run_batch(
    model: AnthropicModel, requests: list[BatchRequest], polls: int = 5
) -> tuple[list[str], dict[str, ModelResponse | ModelError]]:
    """Submit, poll until ended (at most ``polls`` times), read the results."""

    async def main() -> tuple[list[str], dict[str, ModelResponse | ModelError]]:
        batch_id = await model.batch_submit(requests)
        states: list[str] = []
        for _ in range(polls):
            status = await model.batch_status(batch_id)
            states.append(status.state)
            if status.state != "running":
                break
        return states, await model.batch_results(batch_id)

    return asyncio.run(main())


@pytest.fixture
def fake(allowed: None) -> Iterator[AnthropicFake]:
    with AnthropicFake(expected_key=KEY, batch_polls=1) as server:
        yield server
    assert server.violations == []


def test_a_batch_round_trip_answers_by_our_ids_at_the_discount(fake: AnthropicFake) -> None:
    fake.script(text("first answer"), tool_calls(call("finish", id="toolu_9")))
    chat = model_for(fake)
    ours = ["t1:turn 1", "t2-turn-1"]  # the first is not a valid custom_id as it stands
    states, results = run_batch(chat, [request(ours[0], "one"), request(ours[1], "two")])
    assert states == ["running", "ended"]
    assert set(results) == set(ours)
    first, second = results[ours[0]], results[ours[1]]
    assert isinstance(first, ModelResponse) and isinstance(second, ModelResponse)
    assert first.text == "first answer" and second.tool_calls[0].id == "toolu_9"
    for answer in (first, second):
        assert answer.batched and answer.usage.batched_requests == 1
    spec = chat.spec
    full = cost_usd(spec, first.usage)
    assert full is not None and cost_usd(spec, first.usage, batched=True) == full * 0.5

    # What went on the wire: one POST with valid custom_ids and the interactive bodies.
    [body] = fake.batch_bodies
    sent = body["requests"]
    assert sent[1]["custom_id"] == "t2-turn-1"
    assert sent[0]["custom_id"].startswith("t1_turn_1-") and len(sent[0]["custom_id"]) <= 64
    assert sent[0]["params"] == build_request(
        spec, request(ours[0], "one").messages, TOOLS, SETTINGS
    )
    paths = [(r.method, r.path) for r in fake.requests]
    assert paths[0] == ("POST", "/v1/messages/batches")
    assert paths[-1][1].endswith("/results")


def test_errors_inside_a_batch_keep_their_retry_verdict(fake: AnthropicFake) -> None:
    fake.script(
        error(529),
        error(400, message="prompt is too long"),
        batch_outcome("expired"),
        text("fine"),
    )
    ids = ["overloaded", "refused", "expired", "fine"]
    _, results = run_batch(model_for(fake), [request(i, i) for i in ids])
    overloaded, refused, expired, fine = (results[i] for i in ids)
    assert isinstance(overloaded, ModelError) and overloaded.retryable
    assert "overloaded_error" in str(overloaded)
    assert isinstance(refused, ModelError) and not refused.retryable
    assert "prompt is too long" in str(refused)
    assert isinstance(expired, ModelError) and expired.retryable
    assert isinstance(fine, ModelResponse) and fine.text == "fine"
    assert all(KEY not in str(r) for r in results.values())


def test_a_cancelled_batch_ends_with_every_request_cancelled(allowed: None) -> None:
    with AnthropicFake(expected_key=KEY, batch_polls=None) as fake:
        chat = model_for(fake)

        async def main() -> tuple[list[str], dict[str, ModelResponse | ModelError]]:
            batch_id = await chat.batch_submit([request("a", "one"), request("b", "two")])
            states: list[str] = [(await chat.batch_status(batch_id)).state for _ in range(3)]
            await chat.batch_cancel(batch_id)
            states.append((await chat.batch_status(batch_id)).state)
            return states, await chat.batch_results(batch_id)

        states, results = asyncio.run(main())
    assert states == ["running", "running", "running", "ended"]
    assert all(isinstance(r, ModelError) and r.retryable for r in results.values())
    assert fake.remaining == 0 and fake.bodies == []  # nothing was answered


def test_an_unknown_batch_is_failed_and_cancelling_it_does_not_raise(fake: AnthropicFake) -> None:
    chat = model_for(fake)
    status = asyncio.run(chat.batch_status("msgbatch_fake9999"))
    assert status.state == "failed" and "not found" in status.detail
    asyncio.run(chat.batch_cancel("msgbatch_fake9999"))
    with pytest.raises(ModelError):
        asyncio.run(chat.batch_submit([]))


class FakeTime:
    """A clock that moves only when the batcher sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def batching(chat: AnthropicModel, time: FakeTime, options: BatchSettings) -> BatchingModel:
    return BatchingModel(
        chat, chat, options, stats=ModelStats(), sleep=time.sleep, clock=time.clock
    )


def test_concurrent_turns_of_two_tasks_share_one_anthropic_batch(fake: AnthropicFake) -> None:
    fake.script(text("re: one"), text("re: two"))
    chat, time = model_for(fake), FakeTime()
    options = BatchSettings(window_s=1.0, poll_s=30.0, max_wait_s=900.0, max_total_s=3600.0)

    async def main() -> list[ModelResponse]:
        tasks = [batching(chat, time, options) for _ in range(2)]
        turns = [
            m.request(request("x", t).messages, TOOLS, SETTINGS)
            for m, t in zip(tasks, ["one", "two"], strict=True)
        ]
        return list(await asyncio.gather(*turns))

    answers = asyncio.run(main())
    assert sorted(a.text for a in answers) == ["re: one", "re: two"]
    assert all(a.batched and a.usage.batched_requests == 1 for a in answers)
    assert len(fake.batch_bodies) == 1 and len(fake.batch_bodies[0]["requests"]) == 2
    assert fake.bodies == []  # nothing interactive


def test_a_batch_that_never_ends_is_cancelled_and_the_turn_goes_interactive(
    allowed: None,
) -> None:
    with AnthropicFake(expected_key=KEY, batch_polls=None) as fake:
        fake.script(text("interactive answer"))
        chat, time = model_for(fake), FakeTime()
        options = BatchSettings(window_s=0.0, poll_s=30.0, max_wait_s=60.0, max_total_s=3600.0)
        model = batching(chat, time, options)
        answer = asyncio.run(model.request(request("x", "one").messages, TOOLS, SETTINGS))
        cancels = [r for r in fake.requests if r.path.endswith("/cancel")]
    assert answer.text == "interactive answer" and not answer.batched
    assert len(cancels) == 1 and len(fake.bodies) == 1
