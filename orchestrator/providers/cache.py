"""An exact-match, on-disk cache of model responses.

The key is the SHA-256 of the canonical JSON (sorted keys, no spaces) of the whole request:
provider, model, ``base_url``, every message (tool calls and tool results included), the tools
offered and the call settings, plus a format version. The API key is never part of it (nor is
the agent's name or its prices): two agents calling the same model with the same conversation
share answers, and nothing secret reaches the disk. The value is the ``ModelResponse`` as JSON,
one file per key (``<dir>/<key[:2]>/<key>.json``), written atomically.

Because a tool loop's later requests contain the earlier answers (tool-call ids included), a
re-run of the same task on the same commit replays its whole conversation from the cache; a
single different byte anywhere misses from that point on.

Decisions:

* **Usage on a hit is zero.** The tokens were not billed again, so a hit reports
  ``Usage()`` (cost 0, and it does not eat into ``max_tokens``/``max_usd``) and counts in
  ``ModelStats.cache_hits`` instead. The file keeps the original usage for reference.
* **Errors are never cached**: a failed call propagates and leaves no file.
* **Corrupt or unreadable files are misses**: the call is made and the file replaced.
* **Deferred writes** (``deferred=True``, as the task runner uses it): answers are kept in
  memory and written by ``commit()`` only when the attempt's work is kept (``succeeded`` or
  ``budget_exceeded``). A failed attempt calls ``discard()``, so re-running a task that failed
  asks the model again instead of replaying the answers that led to the failure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.contracts import AGENT_CLI_PROVIDERS, AgentSpec, Usage
from orchestrator.fileio import write_atomic
from orchestrator.providers.base import (
    Message,
    Model,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
)
from orchestrator.providers.stats import ModelStats

#: Bumped whenever the key's document or the file format changes.
CACHE_FORMAT = 2

#: Providers whose answers are not cached: replay is local and stateful (its position in the
#: script is the state), so caching it would change what it plays.
# replay is local and stateful; an mcp agent's answer depends on its server (command, tool,
# env), which the request document does not describe; a vendor CLI is not a model behind
# build_model at all (orchestrator/agent_clis/).
UNCACHED_PROVIDERS = frozenset({"replay", "mcp", *AGENT_CLI_PROVIDERS})


def is_cacheable(spec: AgentSpec) -> bool:
    """Whether ``build_model`` puts a cache in front of this agent's provider."""
    return spec.provider not in UNCACHED_PROVIDERS


def request_document(
    spec: AgentSpec,
    messages: list[Message],
    tools: list[ToolSpec],
    settings: ModelSettings,
) -> dict[str, Any]:
    """What the cache key is computed from: everything that shapes the answer, no secret."""
    return {
        "format": CACHE_FORMAT,
        "provider": spec.provider,
        "model": spec.model,
        "base_url": spec.base_url,
        "messages": [_message_document(message) for message in messages],
        "tools": [asdict(tool) for tool in tools],
        # ``cache_key`` only routes a request to the provider's prompt cache (it is the run
        # id): it does not shape the answer, and keeping it would miss on every re-run.
        "settings": {k: v for k, v in asdict(settings).items() if k != "cache_key"},
    }


def _message_document(message: Message) -> dict[str, Any]:
    """The message as JSON, images by their digest (the bytes would bloat every key)."""
    document = asdict(message)
    document["images"] = [
        {"media_type": image.media_type, "name": image.name, "sha256": image.digest}
        for image in message.images
    ]
    return document


def canonical_json(document: object) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: equal documents give equal strings."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def cache_key(
    spec: AgentSpec,
    messages: list[Message],
    tools: list[ToolSpec],
    settings: ModelSettings,
) -> str:
    """SHA-256 hex digest of the canonical request document."""
    text = canonical_json(request_document(spec, messages, tools, settings))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _StoredCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    arguments_error: str | None = None


class _StoredResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = ""
    tool_calls: list[_StoredCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    stop_reason: str | None = None
    provider_data: dict[str, Any] | None = None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int
    key: str
    provider: str
    model: str
    response: _StoredResponse


def _stored(response: ModelResponse) -> _StoredResponse:
    return _StoredResponse(
        text=response.text,
        tool_calls=[_StoredCall(**asdict(call)) for call in response.tool_calls],
        usage=response.usage,
        stop_reason=response.stop_reason,
        provider_data=response.provider_data,
    )


def _response(stored: _StoredResponse) -> ModelResponse:
    """The stored turn with usage zeroed: a hit bills nothing."""
    return ModelResponse(
        text=stored.text,
        tool_calls=tuple(ToolCall(**call.model_dump()) for call in stored.tool_calls),
        usage=Usage(),
        stop_reason=stored.stop_reason,
        provider_data=stored.provider_data,
    )


class CachedModel:
    """A ``Model`` that answers repeated requests from ``directory`` without a provider call.

    Args:
        inner: The model to call on a miss (the retrying, rate-limited provider).
        directory: Where entries live; created on first write.
        stats: ``cache_hits`` is incremented on every hit.
        deferred: Keep new entries in memory until ``commit()`` (``discard()`` drops them).
    """

    def __init__(
        self,
        inner: Model,
        directory: Path,
        *,
        stats: ModelStats | None = None,
        deferred: bool = False,
    ) -> None:
        self.inner = inner
        self.agent: str = inner.agent
        self.spec: AgentSpec = inner.spec
        self.directory = directory
        self.stats = stats if stats is not None else ModelStats()
        self.deferred = deferred
        self._pending: dict[str, _Entry] = {}

    def path_for(self, key: str) -> Path:
        """The file of one key."""
        return self.directory / key[:2] / f"{key}.json"

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Return the cached answer to this exact request, or ask the inner model and keep it."""
        key = cache_key(self.spec, messages, tools, settings)
        entry = self._pending.get(key) or self._load(key)
        if entry is not None:
            self.stats.cache_hits += 1
            return _response(entry.response)
        response = await self.inner.request(messages, tools, settings)
        entry = _Entry(
            format=CACHE_FORMAT,
            key=key,
            provider=self.spec.provider,
            model=self.spec.model,
            response=_stored(response),
        )
        if self.deferred:
            self._pending[key] = entry
        else:
            self._write(entry)
        return response

    def commit(self) -> int:
        """Write the entries held back by ``deferred``; return how many were written."""
        written = 0
        for entry in self._pending.values():
            if self._write(entry):
                written += 1
        self._pending.clear()
        return written

    def discard(self) -> None:
        """Forget the entries held back by ``deferred``."""
        self._pending.clear()

    def _load(self, key: str) -> _Entry | None:
        path = self.path_for(key)
        try:
            entry = _Entry.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError):
            return None  # missing, unreadable or corrupt: a miss (the file is replaced)
        if entry.format != CACHE_FORMAT or entry.key != key:
            return None
        return entry

    def _write(self, entry: _Entry) -> bool:
        try:
            write_atomic(self.path_for(entry.key), entry.model_dump_json() + "\n")
        except OSError:
            return False  # a cache that cannot be written must not fail the task
        return True
