"""Model backends, one module per wire protocol, found through a small registry.

``build_model`` turns an agent's spec into a ``Model`` for one purpose: ``"planner"`` or a task
id (the replay provider plays a different script for each). Provider modules are imported only
when an agent of theirs is used, so a run that needs no model loads no SDK. Each SDK is an
extra of the package (``orchestrator/extras.py``): an agent whose SDK is not installed is an
input error naming the agent, its provider and the extra to install.

Real network providers obey ``ALLOW_MODEL_REQUESTS``; tests turn it off (see tests/conftest.py)
so that only the replay provider and loopback servers a test opts into can answer.

Every model ``build_model`` returns is the provider behind three layers, outermost first::

    cache (cache.py)  →  retry (retry.py)  →  rate limit (ratelimit.py)  →  provider

A cache hit makes no call at all; a miss is retried as a whole, and every try waits for the
endpoint's concurrency slot and rate-limit token. The replay provider is not cached (it is
local and plays a script in order) but is retried and rate-limited, so scripted faults go
through the real policy. What the layers did is in the returned model's ``.stats``.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from orchestrator.contracts import AgentSpec, BatchSettings
from orchestrator.errors import InputError
from orchestrator.extras import require_provider
from orchestrator.providers.base import (
    BatchModel,
    Message,
    Model,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)
from orchestrator.providers.batch import BatchingModel, Clock, supports_batch
from orchestrator.providers.cache import CachedModel, is_cacheable
from orchestrator.providers.ratelimit import RateLimitedModel, limiter_for
from orchestrator.providers.retry import RetryingModel, RetryPolicy, Sleep, default_sleep
from orchestrator.providers.stats import ModelStats

ModelFactory = Callable[[str, AgentSpec, str], Model]

#: provider name → "module:factory"; the factory takes (agent name, spec, purpose).
PROVIDERS: dict[str, str] = {
    "replay": "orchestrator.providers.replay:ReplayModel",
    "openai": "orchestrator.providers.openai:OpenAIModel",
    "openai_compatible": "orchestrator.providers.openai:OpenAICompatibleModel",
    "anthropic": "orchestrator.providers.anthropic:AnthropicModel",
    "gemini": "orchestrator.providers.gemini:GeminiModel",
    "mcp": "orchestrator.providers.mcp_agent:McpAgentModel",
}

#: Global switch: when False, providers that reach the network refuse to run.
ALLOW_MODEL_REQUESTS = os.environ.get("ORCHESTRATOR_ALLOW_MODEL_REQUESTS", "1") != "0"


def ensure_requests_allowed(agent: str) -> None:
    """Refuse, before any network I/O, when real model requests are switched off (tests).

    Raises:
        ModelError: (not retryable) ``ALLOW_MODEL_REQUESTS`` is False.
    """
    if not ALLOW_MODEL_REQUESTS:
        raise ModelError(
            f"agent {agent}: real model requests are disabled "
            "(set orchestrator.providers.ALLOW_MODEL_REQUESTS)",
            retryable=False,
        )


def provider_names() -> list[str]:
    """Names accepted in ``agents.yml`` as ``provider:``."""
    return sorted(PROVIDERS)


class ManagedModel:
    """What ``build_model`` returns: a provider behind its cache, retry and rate-limit layers.

    Attributes:
        provider: The bare provider model (e.g. a ``ReplayModel``).
        stats: Retries, waits, cache hits and provider calls of this model.
        cache: The cache layer, or ``None`` when caching is off for this model.
    """

    def __init__(
        self, outer: Model, provider: Model, stats: ModelStats, cache: CachedModel | None
    ) -> None:
        self.agent: str = provider.agent
        self.spec: AgentSpec = provider.spec
        self.provider = provider
        self.stats = stats
        self.cache = cache
        self._outer = outer

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the request through the layers."""
        return await self._outer.request(messages, tools, settings)

    def commit(self) -> None:
        """Keep the answers of this model in the cache (the attempt's work is kept)."""
        if self.cache is not None:
            self.cache.commit()

    def discard(self) -> None:
        """Do not cache the answers of this model (the attempt failed)."""
        if self.cache is not None:
            self.cache.discard()


def build_model(
    agent: str,
    spec: AgentSpec,
    purpose: str,
    *,
    cache_dir: Path | None = None,
    retry: RetryPolicy | None = None,
    sleep: Sleep | None = None,
    defer_cache_writes: bool = False,
    batch: BatchSettings | None = None,
    clock: Clock | None = None,
) -> ManagedModel:
    """Build the model client for ``agent`` to serve ``purpose`` (``"planner"`` or a task id).

    Args:
        agent: The agent's name in ``agents.yml``.
        spec: Its spec; ``max_concurrency``/``requests_per_minute`` tighten the limits of its
            endpoint (shared process-wide with every agent on the same provider and base_url).
        purpose: ``"planner"`` or a task id.
        cache_dir: Response cache folder; ``None`` disables the cache. Ignored for replay.
        retry: Retry policy; ``RetryPolicy()`` when omitted (``max_retries=0`` disables it).
        sleep: Awaitable sleep for retry and rate-limit waits (tests inject a recorder).
        defer_cache_writes: Write cache entries only on ``commit()`` (see ``CachedModel``).
        batch: The plan's batch settings when the run is a batch run: turns go through the
            provider's batch API (``batch.py``) when it has one and the agent has a
            ``batch_discount``; otherwise they are interactive.
        clock: Monotonic seconds for batch deadlines (tests inject one with ``sleep``).

    Raises:
        InputError: the provider is unknown or its configuration is unusable.
        MissingExtraError: the provider's SDK is not installed (``orchestrator.extras``).
    """
    target = PROVIDERS.get(spec.provider)
    if target is None:
        known = ", ".join(provider_names())
        raise InputError(
            "agents.yml",
            f"agents.{agent}.provider",
            f"unknown provider {spec.provider!r} ({known})",
        )
    require_provider(agent, spec)  # a lean install without this provider's extra: say which
    module_name, _, attr = target.partition(":")
    factory: ModelFactory = getattr(importlib.import_module(module_name), attr)
    provider = factory(agent, spec, purpose)
    stats = ModelStats()
    limited = RateLimitedModel(provider, limiter_for(spec), stats=stats, sleep=sleep)
    outer: Model = RetryingModel(limited, retry, stats=stats, sleep=sleep)
    if batch is not None and spec.batch_discount is not None and supports_batch(provider):
        outer = BatchingModel(
            outer,
            cast(BatchModel, provider),
            batch,
            stats=stats,
            sleep=sleep or default_sleep,
            clock=clock or time.monotonic,
        )
    cache: CachedModel | None = None
    if cache_dir is not None and is_cacheable(spec):
        cache = CachedModel(outer, cache_dir, stats=stats, deferred=defer_cache_writes)
        outer = cache
    return ManagedModel(outer, provider, stats, cache)
