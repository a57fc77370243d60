"""Test doubles for the ``Model`` interface, shipped with the library for users' tests too.

``FunctionModel`` answers with a function of the conversation; ``ScriptedModel`` plays a list of
responses (or raises the exceptions in it). Both record every request they receive in
``requests`` so a test can assert on what the loop sent.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from orchestrator.contracts import AgentSpec
from orchestrator.providers.base import Message, ModelError, ModelResponse, ModelSettings, ToolSpec

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
