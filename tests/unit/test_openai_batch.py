"""The OpenAI Batch API through the real SDK against the loopback fake: upload, create, poll,
results (with per-request errors) and cancel; and the same through ``build_model``'s batch
layer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, BatchSettings
from orchestrator.providers import build_model
from orchestrator.providers.base import (
    BatchRequest,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.batch import supports_batch
from orchestrator.providers.openai import OpenAICompatibleModel, OpenAIModel
from orchestrator.providers.openai_batch import batch_state
from tests.fakes.openai_fake import (
    FAKE_KEY_ENV,
    OpenAIFake,
    call,
    error,
    server_error,
    text,
    tool_calls,
)
from tests.fakes.openai_fake_batch import multipart_fields

SYSTEM = Message(role="system", text="You are a careful engineer.")
WRITE = ToolSpec(
    name="write_file",
    description="Write a file.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}},
)


@pytest.fixture(autouse=True)
def allow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to model requests (only the loopback fake answers) and set the fake's key."""
    monkeypatch.setattr(providers, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv(FAKE_KEY_ENV, "sk-test")


def requests(*names: str) -> list[BatchRequest]:
    return [
        BatchRequest(
            name,
            [SYSTEM, Message(role="user", text=f"task {name}")],
            [WRITE],
            ModelSettings(cache_key="run-1"),
        )
        for name in names
    ]


def uploaded(fake: OpenAIFake) -> list[dict[str, Any]]:
    """The JSONL lines of the (only) uploaded input file, as sent (it is deleted after use)."""
    upload = next(r for r in fake.requests if r.method == "POST" and r.path == "/v1/files")
    data = multipart_fields(upload)["file"][1]
    return [json.loads(line) for line in data.decode().splitlines()]


async def poll_until_ended(model: OpenAIModel, batch_id: str) -> list[str]:
    states = []
    for _ in range(5):
        states.append((await model.batch_status(batch_id)).state)
        if states[-1] != "running":
            break
    return states


@pytest.mark.parametrize(
    ("model_name", "url"), [("gpt-6.2-sol", "/v1/responses"), ("gpt-4.1", "/v1/chat/completions")]
)
def test_submit_poll_and_read_results_with_a_per_request_error(model_name: str, url: str) -> None:
    steps = [
        text("answer a"),
        tool_calls(call("write_file", {"path": "b.txt"})),
        server_error(),
        error(400, "Invalid 'input': bad request", param="input"),
    ]
    with OpenAIFake(steps, batch_polls=3) as fake:
        model = OpenAIModel("codex", fake.spec(model=model_name), "t1")
        batch = requests("a", "b", "c", "d")

        async def run() -> tuple[str, list[str], dict[str, ModelResponse | ModelError]]:
            batch_id = await model.batch_submit(batch)
            states = await poll_until_ended(model, batch_id)
            return batch_id, states, await model.batch_results(batch_id)

        batch_id, states, results = asyncio.run(run())
        lines = uploaded(fake)
        created = next(r.json() for r in fake.requests if r.path == "/v1/batches")
    assert states == ["running", "running", "ended"]
    assert created["endpoint"] == url and created["completion_window"] == "24h"
    assert batch_id.startswith("batch_")
    assert [(line["custom_id"], line["method"], line["url"]) for line in lines] == [
        (name, "POST", url) for name in "abcd"
    ]
    assert lines[0]["body"] == model.body(batch[0].messages, batch[0].tools, batch[0].settings)
    assert lines[0]["body"]["prompt_cache_key"] == "run-1"
    first, second = results["a"], results["b"]
    assert isinstance(first, ModelResponse) and first.text == "answer a"
    assert first.batched and first.usage.batched_requests == 1 and first.usage.input_tokens > 0
    assert isinstance(second, ModelResponse)
    assert second.tool_calls[0].arguments == {"path": "b.txt"}
    retry, refused = results["c"], results["d"]
    assert isinstance(retry, ModelError) and retry.retryable is True and "HTTP 500" in str(retry)
    assert isinstance(refused, ModelError) and refused.retryable is False
    assert "bad request" in str(refused)


def test_a_batch_that_never_finishes_is_cancelled() -> None:
    with OpenAIFake([text("never")], batch_polls=None) as fake:
        model = OpenAIModel("codex", fake.spec(model="gpt-6.2-sol"), "t1")

        async def run() -> list[str]:
            batch_id = await model.batch_submit(requests("a"))
            states = [(await model.batch_status(batch_id)).state for _ in range(3)]
            await model.batch_cancel(batch_id)
            status = await model.batch_status(batch_id)
            return [*states, status.state, status.detail]

        states = asyncio.run(run())
        cancels = [r for r in fake.requests if r.path.endswith("/cancel")]
    assert states == ["running", "running", "running", "failed", "status cancelled"]
    assert len(cancels) == 1
    assert fake.remaining == 1  # nothing was answered


def test_cancel_swallows_errors() -> None:
    with OpenAIFake() as fake:
        model = OpenAIModel("codex", fake.spec(model="gpt-6.2-sol"), "t1")
        asyncio.run(model.batch_cancel("batch_missing"))
    assert fake.requests[-1].path == "/v1/batches/batch_missing/cancel"


@pytest.mark.parametrize(
    ("status", "output", "state"),
    [
        ("validating", None, "running"),
        ("in_progress", None, "running"),
        ("finalizing", None, "running"),
        ("cancelling", None, "running"),
        ("completed", "file-1", "ended"),
        ("expired", "file-1", "ended"),
        ("cancelled", "file-1", "ended"),
        ("expired", None, "failed"),
        ("cancelled", None, "failed"),
        ("failed", None, "failed"),
    ],
)
def test_batch_states(status: str, output: str | None, state: str) -> None:
    errors = {"data": [{"code": "invalid_url", "message": "URL does not match"}]}
    found = batch_state(status, output, errors)
    assert found.state == state and found.detail == f"status {status}: URL does not match"


def test_only_openai_itself_offers_a_batch_api() -> None:
    spec = AgentSpec(provider="openai_compatible", model="deepseek-flash", base_url="http://x")
    assert supports_batch(OpenAIModel("codex", spec.model_copy(update={"provider": "openai"}), "t"))
    assert not supports_batch(OpenAICompatibleModel("deepseek", spec, "t"))


class Clock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def test_build_model_sends_turns_through_the_batch_and_prices_them_batched() -> None:
    with OpenAIFake([text("from the batch")], batch_polls=2) as fake:
        spec = fake.spec(model="gpt-6.2-sol", batch_discount=0.5)
        clock = Clock()
        options = BatchSettings(window_s=0.1, poll_s=5, max_wait_s=60)
        model = build_model("codex", spec, "t1", batch=options, sleep=clock.sleep, clock=clock)
        messages = [SYSTEM, Message(role="user", text="hi")]
        answer = asyncio.run(model.request(messages, [WRITE], ModelSettings()))
    assert answer.text == "from the batch"
    assert answer.batched and answer.usage.batched_requests == 1
    assert model.stats.batched_calls == 1
    assert not fake.response_bodies()  # no interactive call was made


def test_a_round_trip_deletes_the_input_output_and_error_files() -> None:
    with OpenAIFake([text("from the batch"), server_error()], batch_polls=2) as fake:
        spec = fake.spec(model="gpt-6.2-sol", batch_discount=0.5)
        model = OpenAIModel("codex", spec, "t1")

        async def run() -> dict[str, ModelResponse | ModelError]:
            batch_id = await model.batch_submit(requests("a", "b"))
            await poll_until_ended(model, batch_id)
            return await model.batch_results(batch_id)

        results = asyncio.run(run())
        deletes = [r.path for r in fake.requests if r.method == "DELETE"]
        left = dict(fake.batches.files)
    assert isinstance(results["a"], ModelResponse) and isinstance(results["b"], ModelError)
    assert len(deletes) == 3 and all(p.startswith("/v1/files/file-") for p in deletes)
    assert left == {}  # conversations and repository code do not stay in the account
    assert model.batch_notes == []


def test_a_cancelled_batch_through_build_model_leaves_no_input_file() -> None:
    with OpenAIFake([text("interactive")], batch_polls=None) as fake:
        spec = fake.spec(model="gpt-6.2-sol", batch_discount=0.5)
        clock = Clock()
        options = BatchSettings(window_s=0.1, poll_s=5, max_wait_s=20)
        model = build_model("codex", spec, "t1", batch=options, sleep=clock.sleep, clock=clock)
        messages = [SYSTEM, Message(role="user", text="hi")]
        answer = asyncio.run(model.request(messages, [WRITE], ModelSettings()))
        left = dict(fake.batches.files)
        statuses = [b["status"] for b in fake.batches.batches.values()]
    assert answer.text == "interactive" and not answer.batched
    assert statuses == ["cancelled"] and left == {}


def test_a_failed_delete_is_noted_not_raised() -> None:
    with OpenAIFake([text("answer a")], batch_polls=1) as fake:
        model = OpenAIModel("codex", fake.spec(model="gpt-6.2-sol"), "t1")

        async def run() -> dict[str, ModelResponse | ModelError]:
            batch_id = await model.batch_submit(requests("a"))
            await poll_until_ended(model, batch_id)
            input_id = fake.batches.batches[batch_id]["input_file_id"]
            del fake.batches.files[input_id]  # gone already: its delete answers 404
            return await model.batch_results(batch_id)

        results = asyncio.run(run())
    assert isinstance(results["a"], ModelResponse)
    assert len(model.batch_notes) == 1 and "could not delete" in model.batch_notes[0]


def test_the_fake_deletes_files_as_openai_documents() -> None:
    import openai

    with OpenAIFake() as fake:

        async def run() -> tuple[str, dict[str, Any], int]:
            async with openai.AsyncOpenAI(api_key="sk-test", base_url=fake.spec().base_url) as sdk:
                upload = ("x.jsonl", b"{}\n", "application/jsonl")
                created = await sdk.files.create(file=upload, purpose="batch")
                deleted = await sdk.files.delete(created.id)
                try:
                    await sdk.files.delete(created.id)
                except openai.NotFoundError as exc:
                    return created.id, deleted.model_dump(), exc.status_code
            return created.id, deleted.model_dump(), 200

        file_id, deleted, status = asyncio.run(run())
    assert deleted == {"id": file_id, "object": "file", "deleted": True}
    assert status == 404
