"""Test doubles for the ``Model`` interface, shipped with the library for users' tests too.

``FunctionModel`` answers with a function of the conversation; ``ScriptedModel`` plays a list of
responses (or raises the exceptions in it). Both record every request they receive in
``requests`` so a test can assert on what the loop sent. ``BatchFunctionModel`` is a
``FunctionModel`` with a batch API whose batches end after a set number of polls (or never,
or fail), for tests of batch runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.contracts import AgentSpec
from orchestrator.providers.base import (
    BatchRequest,
    BatchStatus,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)

ModelFunction = Callable[[list[Message], list[ToolSpec]], ModelResponse | Awaitable[ModelResponse]]


def default_spec(**overrides: object) -> AgentSpec:
    """An ``AgentSpec`` for doubles: provider ``test``, model ``test-model``, no prices."""
    data: dict[str, object] = {"provider": "test", "model": "test-model"}
    data.update(overrides)
    return AgentSpec.model_validate(data)


@dataclass(frozen=True)
class RecordedRequest:
    """One request a double received."""

    messages: list[Message]
    tools: list[ToolSpec]
    settings: ModelSettings


class _Recording:
    def __init__(self, agent: str, spec: AgentSpec | None) -> None:
        self.agent = agent
        self.spec = spec if spec is not None else default_spec()
        self.requests: list[RecordedRequest] = []

    def _record(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> None:
        self.requests.append(RecordedRequest(list(messages), list(tools), settings))


class FunctionModel(_Recording):
    """A model whose turns come from ``fn(messages, tools)`` (sync or async).

    ``fn`` may raise ``ModelError`` to simulate a provider failure.
    """

    def __init__(
        self, fn: ModelFunction, *, agent: str = "test", spec: AgentSpec | None = None
    ) -> None:
        super().__init__(agent, spec)
        self.fn = fn

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        """Call ``fn`` and return (or await) its response."""
        self._record(messages, tools, settings)
        result = self.fn(messages, tools)
        if inspect.isawaitable(result):
            return await result
        return result


class ScriptedModel(_Recording):
    """A model that plays ``turns`` in order; an exception in the list is raised instead.

    Running past the end raises ``ModelError`` (not retryable).
    """

    def __init__(
        self,
        turns: Iterable[ModelResponse | Exception],
        *,
        agent: str = "test",
        spec: AgentSpec | None = None,
    ) -> None:
        super().__init__(agent, spec)
        self.turns = list(turns)
        self.position = 0

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        """Return (or raise) the next scripted turn."""
        self._record(messages, tools, settings)
        if self.position >= len(self.turns):
            raise ModelError("ScriptedModel has no more turns", retryable=False)
        turn = self.turns[self.position]
        self.position += 1
        if isinstance(turn, Exception):
            raise turn
        return turn


@dataclass
class SubmittedBatch:
    """A batch a ``BatchFunctionModel`` received: its requests and how often it was polled."""

    requests: list[BatchRequest]
    polls: int = 0
    cancelled: bool = False


@dataclass
class BatchBehaviour:
    """How the double's batches behave.

    Attributes:
        polls_to_end: Polls after which a batch has ended (``None``: never ends).
        fail: Every batch fails as a whole (``state == "failed"``).
        refuse: ``batch_submit`` raises this error (the provider refuses batches).
        errors: ``custom_id`` order index → error for that request inside the batch.
    """

    polls_to_end: int | None = 1
    fail: bool = False
    refuse: ModelError | None = None
    errors: dict[int, ModelError] = field(default_factory=dict)


class BatchFunctionModel(FunctionModel):
    """A ``FunctionModel`` that also implements the ``BatchModel`` methods.

    Batched requests are answered by the same ``fn`` when the batch ends; ``batches`` records
    every batch, ``requests`` only the interactive calls.
    """

    def __init__(
        self,
        fn: ModelFunction,
        *,
        agent: str = "test",
        spec: AgentSpec | None = None,
        behaviour: BatchBehaviour | None = None,
    ) -> None:
        super().__init__(fn, agent=agent, spec=spec)
        self.behaviour = behaviour or BatchBehaviour()
        self.batches: dict[str, SubmittedBatch] = {}

    async def batch_submit(self, requests: list[BatchRequest]) -> str:
        """Record the batch; its id is ``batch-N``."""
        if self.behaviour.refuse is not None:
            raise self.behaviour.refuse
        batch_id = f"batch-{len(self.batches) + 1}"
        self.batches[batch_id] = SubmittedBatch(list(requests))
        return batch_id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Ended after ``polls_to_end`` polls; failed when ``fail``."""
        batch = self.batches[batch_id]
        batch.polls += 1
        if self.behaviour.fail or batch.cancelled:
            return BatchStatus("failed", "cancelled" if batch.cancelled else "failed")
        ends = self.behaviour.polls_to_end
        return BatchStatus("ended" if ends is not None and batch.polls >= ends else "running")

    async def batch_results(self, batch_id: str) -> dict[str, ModelResponse | ModelError]:
        """Each request answered by ``fn`` (or the scripted error for its position)."""
        answers: dict[str, ModelResponse | ModelError] = {}
        for index, request in enumerate(self.batches[batch_id].requests):
            error = self.behaviour.errors.get(index)
            if error is not None:
                answers[request.custom_id] = error
                continue
            result = self.fn(request.messages, request.tools)
            answers[request.custom_id] = await result if inspect.isawaitable(result) else result
        return answers

    async def batch_cancel(self, batch_id: str) -> None:
        """Mark the batch cancelled."""
        self.batches[batch_id].cancelled = True
