"""Google Gemini API (``models/{model}:generateContent``) with function calling and batch mode.

The wire mapping lives beside this module: ``gemini_request`` (conversation → contents,
images, thought-signature replay, schema dialect), ``gemini_response`` (answer → turn, usage,
``provider_data``), ``gemini_errors`` (retry verdicts, the daily quota) and ``gemini_batch``
(batch mode). This module holds the client and the calls.

Automatic function calling is disabled: the agent loop runs the tools. The SDK's own retries
stay off (the default without ``retry_options``); the caller retries on
``ModelError.retryable``. Response bodies are read as JSON by this package (captured by an
``httpx2`` response hook) so that a body the SDK's strict models would reject (a call whose
arguments are not an object, a batch error with structured details) is still understood.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec
from orchestrator.providers import gemini_batch as batch
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
from orchestrator.providers.gemini_errors import model_error, status_error
from orchestrator.providers.gemini_request import build_config, build_contents, gemini_schema
from orchestrator.providers.gemini_response import (
    GENERATED_ID_PREFIX,
    call_signatures,
    parse_response,
)

if TYPE_CHECKING:
    from google.genai import Client, types

__all__ = ["GENERATED_ID_PREFIX", "GeminiModel", "gemini_schema", "parse_response"]

_GRACE_S = 5.0

T = TypeVar("T")

#: The raw body of the response being received, per call (set by ``_call``).
_RAW_BODY: contextvars.ContextVar[dict[str, bytes] | None] = contextvars.ContextVar(
    "gemini_raw_body", default=None
)


class GeminiModel:
    """A ``BatchModel`` speaking the Gemini API through ``google-genai``.

    Args:
        agent: The agent's name in ``agents.yml`` (used in error messages).
        spec: Its spec: ``model``, ``api_key`` (``${ENV}``), optional ``base_url``,
            ``timeout_s``, ``vision``.
        purpose: ``"planner"`` or a task id (named in batch display names).
    """

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self._client: Client | None = None
        self._client_key: str | None = None
        #: call id → thoughtSignature, for turns handed back without ``provider_data``.
        self._signatures: dict[str, str] = {}
        #: batch name → its requests in submission order (for answers without metadata).
        self._batches: dict[str, list[batch.Submitted]] = {}

    @property
    def _where(self) -> str:
        return f"agent {self.agent} (gemini {self.spec.model})"

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the conversation; return the next turn or raise ``ModelError``."""
        key = self._key()
        contents = self._contents(messages)
        config = build_config(messages, tools, settings)
        typed, holder = await self._call(
            key,
            lambda client: client.aio.models.generate_content(
                model=self.spec.model, contents=contents, config=config
            ),
        )
        try:
            data = _body_json(holder, typed)
        except ModelError as exc:
            raise self._wrap(exc, key) from None
        return self._parse(data, _turns(messages), key)

    # ----------------------------------------------------------------------- batch mode

    async def batch_submit(self, requests: list[BatchRequest]) -> str:
        """Submit the requests as one inline batch; return its name (``batches/…``).

        Raises:
            ModelError: not retryable for an empty batch, a repeated ``custom_id`` or a batch
                over the inline limit (``BATCH_LIMIT_BYTES``); otherwise as ``request``.
        """
        from google.genai import types

        batch.check_requests(requests)
        key = self._key()
        submitted = [batch.Submitted(r.custom_id, _turns(r.messages)) for r in requests]
        inlined = [
            batch.inline_request(
                self._contents(r.messages), build_config(r.messages, r.tools, r.settings), s
            )
            for r, s in zip(requests, submitted, strict=True)
        ]
        size = batch.inline_size(inlined)
        if size > batch.BATCH_LIMIT_BYTES:
            message = f"{self._where}: the batch is {size} bytes, over the inline limit"
            raise ModelError(message, retryable=False)
        config = types.CreateBatchJobConfig(
            display_name=f"orchestrator {self.agent} {self.purpose} ({len(inlined)} requests)",
            http_options=types.HttpOptions(api_version=batch.API_VERSION),
        )
        job, holder = await self._call(
            key,
            lambda client: client.aio.batches.create(
                model=self.spec.model, src=inlined, config=config
            ),
        )
        name = getattr(job, "name", None) or _raw_field(holder, "name")
        if not isinstance(name, str) or not name:
            raise self._wrap(
                ModelError("the batch was created without a name", retryable=True), key
            )
        self._batches[name] = submitted
        return name

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Poll the batch once: ``running``, ``ended`` (results readable) or ``failed``."""
        job, raw = await self._get_batch(batch_id)
        name = batch.state_name(job, raw)
        return BatchStatus(state=batch.batch_state(name), detail=batch.status_detail(name, raw))

    async def batch_results(self, batch_id: str) -> dict[str, ModelResponse | ModelError]:
        """The answers of an ended batch by ``custom_id``, each parsed like an interactive turn.

        Raises:
            ModelError: the batch has not ended (retryable while it runs, not once it failed)
                or its body holds no inline responses.
        """
        key = self._key()
        job, raw = await self._get_batch(batch_id)
        name = batch.state_name(job, raw)
        state = batch.batch_state(name)
        if state != "ended":
            detail = batch.status_detail(name, raw)
            message = f"{self._where}: batch {batch_id} has no results ({detail})"
            raise ModelError(scrub(message, [key]), retryable=state == "running")
        entries = batch.inlined_entries(raw)
        if entries is None:
            entries = batch.entries_from_job(job)
        if entries is None:
            raise self._wrap(ModelError("the ended batch has no inline responses"), key)
        results: dict[str, ModelResponse | ModelError] = {}
        for submitted, entry in batch.match_entries(entries, self._batches.get(batch_id)):
            results[submitted.custom_id] = self._batch_answer(submitted, entry, key)
        return results

    async def batch_cancel(self, batch_id: str) -> None:
        """Ask Gemini to cancel the batch; every failure is swallowed (best effort)."""
        from google.genai import types

        config = types.CancelBatchJobConfig(
            http_options=types.HttpOptions(api_version=batch.API_VERSION)
        )
        try:
            key = self._key()
            await self._call(
                key, lambda client: client.aio.batches.cancel(name=batch_id, config=config)
            )
        except (ModelError, ValueError):
            return  # an ended batch, a gone one, no key: nothing left to cancel

    async def _get_batch(self, batch_id: str) -> tuple[object, object]:
        """The SDK's ``BatchJob`` (``None`` when its models refused the body) and the raw body."""
        from google.genai import types

        key = self._key()
        config = types.GetBatchJobConfig(
            http_options=types.HttpOptions(api_version=batch.API_VERSION)
        )
        job, holder = await self._call(
            key, lambda client: client.aio.batches.get(name=batch_id, config=config)
        )
        body = holder.get("body")
        try:
            raw: object = json.loads(body) if body is not None else None
        except ValueError:
            raise self._wrap(
                ModelError("response body was not JSON", retryable=True), key
            ) from None
        return job, raw

    def _batch_answer(
        self, submitted: batch.Submitted, entry: Mapping[str, Any], key: str
    ) -> ModelResponse | ModelError:
        """One inline answer: a turn (marked batched) or the request's own error."""
        where = f"{self._where} batch request {submitted.custom_id}"
        error = entry.get("error")
        if isinstance(error, Mapping):
            return status_error(error, where, self.spec, key)
        try:
            response = self._parse(entry.get("response"), submitted.first_index, key)
        except ModelError as exc:
            return exc
        return response.as_batched()

    # ----------------------------------------------------------------------- plumbing

    def _key(self) -> str:
        providers.ensure_requests_allowed(self.agent)
        return api_key_from_env(self.agent, self.spec, "GEMINI_API_KEY")

    def _contents(self, messages: list[Message]) -> list[types.Content]:
        return build_contents(
            messages, model=self.spec.model, vision=self.spec.vision, signatures=self._signatures
        )

    def _parse(self, data: object, first_index: int, key: str) -> ModelResponse:
        """Parse an answer and remember its signatures (for turns handed back without them)."""
        try:
            response = parse_response(data, first_index=first_index, model=self.spec.model)
        except ModelError as exc:
            raise self._wrap(exc, key) from None
        for call, signature in call_signatures(data, response):
            self._signatures[call] = signature
        return response

    def _wrap(self, exc: ModelError, key: str) -> ModelError:
        """``exc`` with the agent named and the key scrubbed."""
        message = scrub(f"{self._where}: {exc}", [key])
        return ModelError(message, retryable=exc.retryable, retry_after=exc.retry_after)

    async def _call(
        self, key: str, make: Callable[[Client], Awaitable[T]]
    ) -> tuple[T | None, dict[str, bytes]]:
        """Run one SDK call with the timeout; return its result and the raw response body.

        The result is ``None`` when the SDK's models rejected a body that did arrive: the
        caller reads the raw JSON instead. Every other failure becomes a ``ModelError``.
        """
        client = self._client_for(key)
        holder: dict[str, bytes] = {}
        token = _RAW_BODY.set(holder)
        try:
            result = await asyncio.wait_for(make(client), timeout=self.spec.timeout_s + _GRACE_S)
        except Exception as exc:
            if not (_is_validation_error(exc) and "body" in holder):
                raise model_error(exc, self._where, self.spec, key) from None
            return None, holder
        finally:
            _RAW_BODY.reset(token)
        return result, holder

    def _client_for(self, key: str) -> Client:
        if self._client is None or self._client_key != key:
            import httpx2
            from google import genai
            from google.genai import types

            self._client = genai.Client(
                api_key=key,
                http_options=types.HttpOptions(
                    base_url=self.spec.base_url,
                    timeout=max(1, int(self.spec.timeout_s * 1000)),  # milliseconds
                    async_client_args={
                        "event_hooks": {"response": [_capture_body]},
                        # No idle keep-alive sockets: they would outlive the event loop that
                        # opened them (each ``asyncio.run`` has its own) and leak or break.
                        "limits": httpx2.Limits(max_connections=100, max_keepalive_connections=0),
                    },
                ),
            )
            self._client_key = key
        return self._client


async def _capture_body(response: Any) -> None:
    """httpx2 response hook: keep the body of the current call's response."""
    holder = _RAW_BODY.get()
    if holder is None:
        return
    await response.aread()
    holder["body"] = response.content


def _turns(messages: list[Message]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


def _is_validation_error(exc: BaseException) -> bool:
    import pydantic

    return isinstance(exc, pydantic.ValidationError)


def _raw_field(holder: Mapping[str, bytes], field: str) -> object:
    try:
        data = json.loads(holder.get("body") or b"null")
    except ValueError:
        return None
    return data.get(field) if isinstance(data, dict) else None


def _body_json(holder: Mapping[str, bytes], typed: object) -> object:
    """The response as wire JSON: the captured body, else the SDK's object dumped by alias."""
    body = holder.get("body")
    if body is not None:
        try:
            return json.loads(body)
        except ValueError:
            raise ModelError("response body was not JSON", retryable=True) from None
    dump = getattr(typed, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    raise ModelError("no response body", retryable=True)
