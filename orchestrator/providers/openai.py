"""OpenAI models: ``provider: openai`` (Responses or Chat Completions, plus the Batch API) and
``openai_compatible`` (Chat Completions on any server that copies it).

The wire formats live in ``openai_responses.py``, ``openai_chat.py`` and ``openai_batch.py``;
this module picks the API, makes the calls through the official SDK and turns failures into
``ModelError`` with a retryable verdict and the server's requested wait. The SDK never retries
by itself (``max_retries=0``): the caller's retry wrapper does. Bodies are read raw
(``with_raw_response``) and parsed as plain JSON, so a compatible server's extra or missing
fields never break a run.

Which API (``api_for``): ``spec.api`` when set; otherwise Responses for the model families that
need it (Codex models are Responses-only, GPT-5.5+/GPT-6 and the o-series take function tools
with reasoning only there) and Chat Completions for everything else and for every
``openai_compatible`` server (they implement only Chat Completions). See docs/providers/openai.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

import httpx2
import openai

import orchestrator.providers as providers
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
from orchestrator.providers.errors import classify_status, is_name_resolution_failure, scrub
from orchestrator.providers.openai_batch import batch_state, input_jsonl, parse_results
from orchestrator.providers.openai_chat import (
    chat_body,
    chat_message,
    parse_chat,
    parse_response,
)
from orchestrator.providers.openai_common import MAX_DETAIL_CHARS, load_body
from orchestrator.providers.openai_responses import parse_responses, responses_body

__all__ = [
    "MAX_DETAIL_CHARS",
    "PLACEHOLDER_KEY",
    "OpenAICompatibleModel",
    "OpenAIModel",
    "api_for",
    "chat_message",
    "parse_response",
    "request_body",
]

Api = Literal["responses", "chat"]
T = TypeVar("T")

#: Key sent to an ``openai_compatible`` server whose agent has no ``api_key`` (Ollama, vLLM).
PLACEHOLDER_KEY = "not-needed"
#: Older name of ``chat_body``.
request_body = chat_body

# Connections are not kept alive between calls: a model instance may be used from more than
# one event loop (each ``asyncio.run``), and a pooled connection from a closed loop breaks the
# next call. One TCP/TLS handshake per model call is negligible next to the call itself.
_LIMITS = httpx2.Limits(max_connections=64, max_keepalive_connections=0)

#: Model families sent to the Responses API when ``spec.api`` is unset (``o1-preview`` is one
#: of the few models the Responses API refuses).
_RESPONSES_FAMILIES = re.compile(
    r"^(?:gpt-5[^/]*-codex.*|codex-.*|o[134](?!-preview)(?:-.*)?|gpt-[0-9.]+-pro(?:-.*)?)$"
)
_GPT_VERSION = re.compile(r"^gpt-(\d+)(?:\.(\d+))?(?:-|$)")


def api_for(spec: AgentSpec) -> Api:
    """The wire API of an agent: ``spec.api``, else chosen by model family (module docstring)."""
    if spec.api is not None:
        return spec.api
    if spec.provider != "openai":
        return "chat"
    model = spec.model.lower()
    if _RESPONSES_FAMILIES.match(model):
        return "responses"
    version = _GPT_VERSION.match(model)
    if version is not None:
        major, minor = int(version.group(1)), int(version.group(2) or 0)
        if major >= 6 or (major == 5 and minor >= 5):
            return "responses"
    return "chat"


class _OpenAIWireModel:
    """What both OpenAI providers share: the SDK client, the calls and their errors.

    Args:
        agent: The agent's name in ``agents.yml`` (used in error messages).
        spec: Its spec: ``model``, ``api_key`` (an ``${ENV}`` reference, read at request time),
            optional ``base_url``, ``api``, ``timeout_s``.
        purpose: ``"planner"`` or a task id (unused: every call sends the whole conversation).
    """

    #: Name used in error messages.
    label = "OpenAI"
    #: OpenAI's current models (GPT-5, o-series) reject ``max_tokens`` and want
    #: ``max_completion_tokens``; most compatible servers only know ``max_tokens``.
    max_tokens_param = "max_completion_tokens"
    #: Where the key comes from when the spec names no ``api_key`` (``None``: no key needed).
    default_key_env: str | None = "OPENAI_API_KEY"
    #: Send ``prompt_cache_key`` on Chat Completions (a compatible server may reject it).
    sends_cache_key = True
    #: Headers added to every call (the compatible model removes OpenAI's account headers).
    extra_headers: ClassVar[Mapping[str, str | openai.Omit]] = {}

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self.api: Api = api_for(spec)
        self._client: openai.AsyncOpenAI | None = None
        if self._base_url_problem() is None:
            self._client = openai.AsyncOpenAI(
                api_key=PLACEHOLDER_KEY,  # the real key is read from the environment per call
                base_url=spec.base_url,
                timeout=spec.timeout_s,
                max_retries=0,
                http_client=openai.DefaultAsyncHttpxClient(limits=_LIMITS),
            )

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the conversation; return the model's next turn.

        Raises:
            ModelError: requests are disabled, the key or base URL is missing, or the call
                failed; ``retryable`` and ``retry_after`` say whether and when to try again.
        """
        client, key = self._ready()
        body = self.body(messages, tools, settings)
        if self.api == "responses":
            raw: Any = await self._guard(
                client.responses.with_raw_response.create(**body, extra_headers=self.extra_headers),
                key,
            )
        else:
            raw = await self._guard(
                client.chat.completions.with_raw_response.create(
                    **body, extra_headers=self.extra_headers
                ),
                key,
            )
        try:
            return self.parse(load_body(raw.http_response.content, self.label))
        except ModelError as exc:  # the body is quoted: make sure it cannot carry the key
            raise ModelError(
                scrub(str(exc), [key]), retryable=exc.retryable, retry_after=exc.retry_after
            ) from None

    def body(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> dict[str, Any]:
        """The JSON body of one call on this agent's API (also a batch line's ``body``)."""
        if self.api == "responses":
            return responses_body(self.spec.model, messages, tools, settings)
        return chat_body(
            self.spec.model,
            messages,
            tools,
            settings,
            self.max_tokens_param,
            cache_key=self.sends_cache_key,
        )

    def parse(self, data: dict[str, Any]) -> ModelResponse:
        """A parsed response body of this agent's API as a ``ModelResponse``."""
        if self.api == "responses":
            return parse_responses(data, self.label)
        return parse_chat(data, self.label)

    def _ready(self) -> tuple[openai.AsyncOpenAI, str]:
        """The client with this call's key, once requests are allowed and the config is usable."""
        providers.ensure_requests_allowed(self.agent)
        problem = self._base_url_problem()
        if problem is not None or self._client is None:
            raise ModelError(problem or f"{self.agent}: no client", retryable=False)
        key = self._api_key()
        return self._client.with_options(api_key=key), key

    async def _guard(self, call: Awaitable[T], key: str) -> T:
        """Await an SDK call; its failures become ``ModelError`` (never quoting the key)."""
        try:
            return await call
        except openai.APIStatusError as exc:
            raise self._status_error(exc, key) from None
        except openai.APITimeoutError:
            raise ModelError(
                f"{self.label} request timed out after {self.spec.timeout_s:g}s", retryable=True
            ) from None
        except openai.APIConnectionError as exc:
            reason = scrub(str(exc.__cause__ or exc), [key])
            if is_name_resolution_failure(exc):
                raise ModelError(
                    f"{self.label} host name does not resolve (check base_url): "
                    f"{reason[:MAX_DETAIL_CHARS]}",
                    retryable=False,
                ) from None
            raise ModelError(
                f"{self.label} connection failed: {reason[:MAX_DETAIL_CHARS]}", retryable=True
            ) from None
        except openai.OpenAIError as exc:
            reason = scrub(str(exc), [key])
            raise ModelError(
                f"{self.label} request failed: {reason[:MAX_DETAIL_CHARS]}", retryable=False
            ) from None

    def _api_key(self) -> str:
        env = self.spec.key_env or self.default_key_env
        if env is None:
            return PLACEHOLDER_KEY
        key = os.environ.get(env, "").strip()
        if not key:
            raise ModelError(f"{self.agent}: {env} is not set", retryable=False)
        return key

    def _base_url_problem(self) -> str | None:
        return None

    def _status_error(self, exc: openai.APIStatusError, key: str) -> ModelError:
        status = exc.status_code
        retryable, retry_after = classify_status(status, exc.response.headers, exc.body)
        error = exc.body if isinstance(exc.body, dict) else {}
        code = error.get("code") or error.get("type")
        detail = error.get("message") if isinstance(error.get("message"), str) else None
        if detail is None:
            detail = exc.body if isinstance(exc.body, str) else exc.message
        text = f"{self.label} HTTP {status}"
        if code:
            text += f" {code}"
        text += f": {' '.join(str(detail).split())[:MAX_DETAIL_CHARS]}"
        if retry_after is not None:
            text += f" (retry after {retry_after:g}s)"
        return ModelError(scrub(text, [key]), retryable=retryable, retry_after=retry_after)


class OpenAIModel(_OpenAIWireModel):
    """A ``BatchModel`` on OpenAI itself: Responses or Chat Completions, and the Batch API.

    The SDK sends ``OPENAI_ORG_ID``/``OPENAI_PROJECT_ID`` from the environment as the
    ``OpenAI-Organization``/``OpenAI-Project`` headers; that is wanted here (and only here).
    """

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        super().__init__(agent, spec, purpose)
        #: What went wrong on the side (a file that could not be deleted); the batch layer
        #: moves these into the task's warnings.
        self.batch_notes: list[str] = []
        #: Batch files already deleted (an input file goes at cancel, the rest after reading).
        self._deleted: set[str] = set()

    async def batch_submit(self, requests: list[BatchRequest]) -> str:
        """Upload the requests as a JSONL file and create a batch on this agent's endpoint."""
        client, key = self._ready()
        url: Literal["/v1/responses", "/v1/chat/completions"] = (
            "/v1/responses" if self.api == "responses" else "/v1/chat/completions"
        )
        lines = [(r.custom_id, self.body(r.messages, r.tools, r.settings)) for r in requests]
        upload = ("batch.jsonl", input_jsonl(lines, url), "application/jsonl")
        file = await self._guard(client.files.create(file=upload, purpose="batch"), key)
        try:
            batch = await self._guard(
                client.batches.create(input_file_id=file.id, endpoint=url, completion_window="24h"),
                key,
            )
        except ModelError:
            await self._delete_files([file.id])  # no batch will ever read it
            raise
        return batch.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Poll the batch once (``openai_batch.batch_state`` maps its status).

        A batch that failed without output (refused lines, expired unanswered) will never
        read its input again: the input file is deleted.
        """
        client, key = self._ready()
        batch = await self._guard(client.batches.retrieve(batch_id), key)
        errors = batch.errors.model_dump() if batch.errors is not None else None
        status = batch_state(batch.status, batch.output_file_id, errors)
        if status.state == "failed":
            await self._delete_files([batch.input_file_id, batch.error_file_id])
        return status

    async def batch_results(self, batch_id: str) -> dict[str, ModelResponse | ModelError]:
        """The answers of an ended batch from its output and error files, by ``custom_id``.

        Then the batch's files are deleted: they hold whole conversations and repository code,
        which ``store: false`` keeps out of the account on the interactive path.
        """
        client, key = self._ready()
        batch = await self._guard(client.batches.retrieve(batch_id), key)
        results: dict[str, ModelResponse | ModelError] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):  # answers win over errors
            if file_id:
                content = await self._guard(client.files.content(file_id), key)
                results.update(parse_results(content.text, self.parse, self.label))
        await self._delete_files([batch.input_file_id, batch.error_file_id, batch.output_file_id])
        return results

    async def batch_cancel(self, batch_id: str) -> None:
        """Ask OpenAI to cancel the batch and delete its input file; failures are ignored (the
        batch expires after 24 h anyway) or, for the file, noted in ``batch_notes``."""
        try:
            client, key = self._ready()
            batch = await self._guard(client.batches.cancel(batch_id), key)
        except ModelError:
            return
        await self._delete_files([batch.input_file_id])

    async def _delete_files(self, file_ids: list[str | None]) -> None:
        """Delete the batch files not deleted yet, best effort: a failure is noted."""
        for file_id in file_ids:
            if not file_id or file_id in self._deleted:
                continue
            self._deleted.add(file_id)  # tried once: a second try would fail the same way
            try:
                client, key = self._ready()
                await self._guard(client.files.delete(file_id), key)
            except ModelError as exc:
                self.batch_notes.append(
                    f"{self.agent}: could not delete batch file {file_id}: {exc}"
                )


class OpenAICompatibleModel(_OpenAIWireModel):
    """A ``Model`` on any OpenAI-compatible Chat Completions server (``base_url`` required).

    DeepSeek, GitHub Models (``https://models.github.ai/inference`` with ``GITHUB_TOKEN``),
    OpenRouter, Ollama and vLLM. An agent without ``api_key`` sends the placeholder key
    ``not-needed`` (local servers ignore it). The SDK would send ``OPENAI_ORG_ID`` and
    ``OPENAI_PROJECT_ID`` from the environment to any server (passing ``None`` makes it read
    them again), so every call removes those headers: they name an OpenAI account and are no
    business of a third party.
    """

    label = "OpenAI-compatible"
    max_tokens_param = "max_tokens"
    default_key_env = None
    sends_cache_key = False
    extra_headers: ClassVar[Mapping[str, str | openai.Omit]] = {
        "OpenAI-Organization": openai.omit,
        "OpenAI-Project": openai.omit,
    }

    def _base_url_problem(self) -> str | None:
        if self.spec.base_url:
            return None
        return (
            f"{self.agent}: agents.{self.agent}.base_url is required for provider openai_compatible"
        )
