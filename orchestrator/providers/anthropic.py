"""Anthropic Messages API (``POST /v1/messages``) and Message Batches, through the SDK.

What goes on the wire is built in :mod:`~orchestrator.providers.anthropic_request` (roles,
images, thinking blocks, prompt-cache breakpoints) and read back in
:mod:`~orchestrator.providers.anthropic_response`; batches use the same body per request
(:mod:`~orchestrator.providers.anthropic_batch`). Failures become ``ModelError`` in
:mod:`~orchestrator.providers.anthropic_errors`. User documentation: docs/providers/anthropic.md.

The SDK is imported lazily and never retries (``max_retries=0``): retries belong to the caller,
which sees ``ModelError.retryable``/``retry_after``. The key is read from the agent's ``${ENV}``
variable at request time and never appears in an error message. No forced ``tool_choice`` is
ever sent: Sonnet 5.5 and Opus 5.5 refuse it with a 400, and the loop does not need it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec
from orchestrator.providers.anthropic_batch import (
    batch_params,
    batch_status_of,
    result_of,
    wire_custom_ids,
)
from orchestrator.providers.anthropic_errors import model_error
from orchestrator.providers.anthropic_request import JSON_INSTRUCTION, build_request
from orchestrator.providers.anthropic_response import parse_response
from orchestrator.providers.base import (
    BatchRequest,
    BatchStatus,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
    api_key_from_env,
)
from orchestrator.providers.errors import scrub

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = ["JSON_INSTRUCTION", "AnthropicModel", "build_request", "parse_response"]

#: Extra seconds the whole call may take beyond ``timeout_s`` (the SDK's timeout bounds each
#: read; this bounds a server that trickles bytes forever).
_GRACE_S = 5.0

_T = TypeVar("_T")


class AnthropicModel:
    """A ``BatchModel`` speaking the Anthropic Messages and Message Batches APIs.

    Args:
        agent: The agent's name in ``agents.yml`` (used in error messages).
        spec: Its spec: ``model``, ``api_key`` (``${ENV}``), optional ``base_url``,
            ``timeout_s``, ``vision``.
        purpose: ``"planner"`` or a task id (unused: every purpose talks to the same API).
    """

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self._client: AsyncAnthropic | None = None
        self._client_key: str | None = None
        # batch id → {custom_id sent → ours}, for results whose ids had to be rewritten
        self._batch_ids: dict[str, dict[str, str]] = {}

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the conversation; return the next turn or raise ``ModelError``."""
        key = self._key()
        payload = build_request(self.spec, messages, tools, settings)
        client = self._client_for(key)
        raw = await self._call(client.messages.create(**payload), key)
        try:
            return parse_response(raw)
        except ModelError as exc:
            raise self._scrubbed(exc, key) from None

    # -- Message Batches ------------------------------------------------------------------

    async def batch_submit(self, requests: list[BatchRequest]) -> str:
        """Submit the requests as one Message Batch; return its id (``msgbatch_…``).

        Raises:
            ModelError: nothing to submit or duplicate ids (not retryable), or the API refused
                the batch (classified like any call).
        """
        if not requests:
            raise ModelError(f"agent {self.agent}: an empty batch was submitted", retryable=False)
        ids = wire_custom_ids([r.custom_id for r in requests])
        key = self._key()
        body = batch_params(self.spec, requests, ids)
        client = self._client_for(key)
        batch = await self._call(client.messages.batches.create(requests=body), key)
        batch_id = str(batch.id)
        self._batch_ids[batch_id] = {wire: ours for ours, wire in ids.items()}
        return batch_id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Poll the batch once; an id the API does not know is a ``failed`` batch."""
        import anthropic

        key = self._key()
        client = self._client_for(key)
        try:
            batch = await asyncio.wait_for(
                client.messages.batches.retrieve(batch_id), timeout=self.spec.timeout_s + _GRACE_S
            )
        except anthropic.NotFoundError:
            return BatchStatus("failed", f"batch {batch_id} not found")
        except Exception as exc:
            raise model_error(exc, self.agent, self.spec, key) from None
        return batch_status_of(batch)

    async def batch_results(self, batch_id: str) -> dict[str, ModelResponse | ModelError]:
        """The answers of an ended batch by our ``custom_id`` (results come in any order)."""
        key = self._key()
        client = self._client_for(key)
        back = self._batch_ids.get(batch_id, {})

        async def collect() -> dict[str, ModelResponse | ModelError]:
            lines = await client.messages.batches.results(batch_id)
            answers: dict[str, ModelResponse | ModelError] = {}
            async for line in lines:
                wire = str(getattr(line, "custom_id", ""))
                answer = result_of(getattr(line, "result", None))
                if isinstance(answer, ModelError):
                    answer = self._scrubbed(answer, key)
                answers[back.get(wire, wire)] = answer
            return answers

        return await self._call(collect(), key)

    async def batch_cancel(self, batch_id: str) -> None:
        """Ask the API to cancel the batch; every failure is swallowed (best effort)."""
        try:
            key = self._key()
            client = self._client_for(key)
            await self._call(client.messages.batches.cancel(batch_id), key)
        except Exception:  # noqa: S110 - the contract: cancelling is best effort
            pass  # an uncancelled batch ends on its own within 24 h; nothing else to do

    # -- plumbing ---------------------------------------------------------------------------

    def _key(self) -> str:
        """Refuse when requests are switched off; else the API key (never logged)."""
        providers.ensure_requests_allowed(self.agent)
        return api_key_from_env(self.agent, self.spec, "ANTHROPIC_API_KEY")

    async def _call(self, call: Awaitable[_T], key: str) -> _T:
        """Await one SDK call within the agent's timeout; failures become ``ModelError``."""
        try:
            return await asyncio.wait_for(call, timeout=self.spec.timeout_s + _GRACE_S)
        except ModelError:
            raise
        except Exception as exc:
            raise model_error(exc, self.agent, self.spec, key) from None

    def _scrubbed(self, exc: ModelError, key: str) -> ModelError:
        return ModelError(
            scrub(f"agent {self.agent}: {exc}", [key]),
            retryable=exc.retryable,
            retry_after=exc.retry_after,
        )

    def _client_for(self, key: str) -> AsyncAnthropic:
        """The SDK client of this instance (rebuilt only if the key changed)."""
        if self._client is None or self._client_key != key:
            import anthropic
            import httpx2

            self._client = anthropic.AsyncAnthropic(
                api_key=key,
                base_url=self.spec.base_url,  # None: the SDK default (or ANTHROPIC_BASE_URL)
                timeout=self.spec.timeout_s,
                max_retries=0,
                # No idle keep-alive connections: a pooled socket would outlive the event loop
                # that opened it (each ``asyncio.run`` has its own), then break the next call on
                # another loop or leak. One connect per model turn is noise next to the turn.
                http_client=anthropic.DefaultAsyncHttpxClient(
                    limits=httpx2.Limits(max_connections=100, max_keepalive_connections=0)
                ),
            )
            self._client_key = key
        return self._client
