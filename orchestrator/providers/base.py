"""Provider-neutral messages, tool schemas and the ``Model`` interface every backend implements.

The agent loop speaks only these types; each provider module maps them to and from its own
wire format. A ``Model`` is one conversation partner for one purpose (the planner, or one
task), built from an ``AgentSpec`` by ``orchestrator.providers.build_model``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orchestrator.contracts import AgentSpec, Usage

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for.

    ``arguments`` is the parsed JSON object; when the model sent something that is not a JSON
    object, ``arguments`` is empty and ``arguments_error`` says why, so the loop can hand the
    error back to the model instead of crashing.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    arguments_error: str | None = None


@dataclass(frozen=True)
class Message:
    """One message of a conversation, in neutral form."""

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: name, description and JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ModelResponse:
    """One model turn: text and/or tool calls, with the tokens it used."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None


@dataclass(frozen=True)
class ModelSettings:
    """Per-call settings the loop passes to a model."""

    max_tokens: int = 4096
    json_output: bool = False


class ModelError(Exception):
    """A model call failed.

    Args:
        message: What went wrong (never containing a secret).
        retryable: True for rate limits, overload, timeouts and 5xx; False for auth or bad requests.
        retry_after: Seconds the provider asked us to wait, when it said.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Model(Protocol):
    """A conversation partner. Implementations must be safe to call from asyncio."""

    agent: str
    spec: AgentSpec

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the conversation so far; return the model's next turn or raise ``ModelError``."""
        ...


def parse_tool_call(identifier: str, name: str, raw_arguments: object) -> ToolCall:
    """A tool call from a provider's answer; arguments that are not a JSON object never raise.

    Providers send arguments as a JSON string (OpenAI), an object (Anthropic, Gemini, some
    compatible servers) or nothing. Anything that is not an object becomes ``arguments_error``,
    which the loop hands back to the model as the tool's result.
    """
    arguments: object = raw_arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        arguments = {}
    elif isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            problem = f"invalid JSON at column {exc.colno}: {exc.msg}"
            return ToolCall(identifier, name, {}, arguments_error=problem)
    if not isinstance(arguments, dict):
        problem = f"expected a JSON object, got {type(arguments).__name__}"
        return ToolCall(identifier, name, {}, arguments_error=problem)
    return ToolCall(identifier, name, dict(arguments))


def api_key_from_env(agent: str, spec: AgentSpec, example_env: str) -> str:
    """The API key from the agent's ``${ENV}`` variable; errors name the variable, never a value.

    Raises:
        ModelError: (not retryable) no ``api_key`` reference is configured, or it is unset.
    """
    env = spec.key_env
    if env is None:
        raise ModelError(
            f"agent {agent}: no api_key configured (expected api_key: ${{{example_env}}})",
            retryable=False,
        )
    value = os.environ.get(env, "").strip()
    if not value:
        raise ModelError(
            f"agent {agent}: environment variable {env} (its API key) is not set",
            retryable=False,
        )
    return value
