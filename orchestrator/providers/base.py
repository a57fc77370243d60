"""Provider-neutral messages, tool schemas and the ``Model`` interface every backend implements.

The agent loop speaks only these types; each provider module maps them to and from its own
wire format. A ``Model`` is one conversation partner for one purpose (the planner, or one
task), built from an ``AgentSpec`` by ``orchestrator.providers.build_model``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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


#: Image types every provider accepts (the loop drops others with a note).
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


@dataclass(frozen=True)
class Image:
    """An image attached to a user message (a screenshot from an issue).

    Providers send it inline, in their own format (base64 data URL, ``image`` block,
    ``inline_data``). The loop attaches images only for agents with ``vision: true``; the
    others get ``[image omitted: "NAME"]`` in the text instead (``omitted``).
    """

    media_type: str
    data: bytes
    name: str = "image"

    @property
    def digest(self) -> str:
        """SHA-256 of the bytes: what the response cache keys on instead of the bytes."""
        return hashlib.sha256(self.data).hexdigest()

    def omitted(self, why: str = "") -> str:
        """The note an agent reads in place of this image, ``why`` it was left out if said.

        The name is the issue's alt text (a person's words): it is quoted, one line, so it
        reads as a name and cannot end the note.
        """
        name = json.dumps(" ".join(self.name.split())[:100], ensure_ascii=False)
        return f"[image omitted: {name}{f' ({why})' if why else ''}]"


def image_notes(images: Sequence[Image]) -> str:
    """What an agent without vision reads in place of the request's images."""
    return "\n".join(image.omitted() for image in images)


@dataclass(frozen=True)
class Message:
    """One message of a conversation, in neutral form.

    Attributes:
        images: Images of a user message, after its text.
        cache_prefix: The conversation up to and including this message is the same for every
            task of the run (system prompt and shared context): providers that need explicit
            markers (Anthropic ``cache_control``) put a cache breakpoint here.
        provider_data: What a provider must get back verbatim with this assistant turn on the
            next call (reasoning items of the Responses API, DeepSeek's ``reasoning_content``,
            Gemini's thought signatures, Anthropic's thinking blocks). JSON-serialisable; other
            providers ignore it.
    """

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False
    images: tuple[Image, ...] = ()
    cache_prefix: bool = False
    provider_data: dict[str, Any] | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: name, description and JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ModelResponse:
    """One model turn: text and/or tool calls, with the tokens it used.

    Attributes:
        provider_data: Kept on the assistant ``Message`` of this turn and sent back on the next
            call (see ``Message.provider_data``).
        batched: Served through the provider's batch API (billed at its batch discount).
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None
    provider_data: dict[str, Any] | None = None
    batched: bool = False

    def as_batched(self) -> ModelResponse:
        """This answer as a batch API served it: marked, and counted once in its usage."""
        usage = self.usage.model_copy(update={"batched_requests": 1})
        return replace(self, usage=usage, batched=True)


@dataclass(frozen=True)
class ModelSettings:
    """Per-call settings the loop passes to a model.

    Attributes:
        cache_key: A routing hint for providers' prompt caches (OpenAI ``prompt_cache_key``):
            the same for every task of a run that shares a prefix.
    """

    max_tokens: int = 4096
    json_output: bool = False
    cache_key: str | None = None


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


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch: what ``Model.request`` would send, under an id of our own."""

    custom_id: str
    messages: list[Message]
    tools: list[ToolSpec]
    settings: ModelSettings


@dataclass(frozen=True)
class BatchStatus:
    """Where a submitted batch stands.

    ``state``: ``running`` (submitted, validating, in progress, finalizing), ``ended`` (results
    can be read; some requests may still have failed) or ``failed`` (the batch as a whole was
    refused, expired or cancelled: nothing to read). ``detail`` says what the provider said.
    """

    state: Literal["running", "ended", "failed"]
    detail: str = ""


class BatchModel(Model, Protocol):
    """A ``Model`` whose provider also has a batch API (OpenAI Batch, Anthropic Message
    Batches, Gemini batch mode): the same requests, answered later at a discount.

    ``providers/batch.py`` submits the turns of concurrent tasks as one batch, polls it and
    falls back to ``request`` when it is not done in time; the provider only speaks its wire
    format. Results are keyed by ``custom_id``; a request that failed inside an ended batch is
    a ``ModelError`` in the mapping (a missing id is treated the same way).
    """

    async def batch_submit(self, requests: list[BatchRequest]) -> str:
        """Submit the requests as one batch; return the provider's batch id."""
        ...

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Poll the batch once."""
        ...

    async def batch_results(self, batch_id: str) -> dict[str, ModelResponse | ModelError]:
        """The answers of an ended batch, by ``custom_id``."""
        ...

    async def batch_cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel the batch (best effort; errors are swallowed)."""
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
