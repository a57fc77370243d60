"""Model backends, one module per wire protocol, found through a small registry.

``build_model`` turns an agent's spec into a ``Model`` for one purpose: ``"planner"`` or a task
id (the replay provider plays a different script for each). Provider modules are imported only
when an agent of theirs is used, so a run that needs no model loads no SDK.

Real network providers obey ``ALLOW_MODEL_REQUESTS``; tests turn it off (see tests/conftest.py)
so that only the replay provider and loopback servers a test opts into can answer.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from orchestrator.contracts import AgentSpec
from orchestrator.errors import InputError
from orchestrator.providers.base import Model

ModelFactory = Callable[[str, AgentSpec, str], Model]

#: provider name → "module:factory"; the factory takes (agent name, spec, purpose).
PROVIDERS: dict[str, str] = {
    "replay": "orchestrator.providers.replay:ReplayModel",
    "openai": "orchestrator.providers.openai:OpenAIModel",
    "openai_compatible": "orchestrator.providers.openai:OpenAICompatibleModel",
    "anthropic": "orchestrator.providers.anthropic:AnthropicModel",
    "gemini": "orchestrator.providers.gemini:GeminiModel",
}

#: Global switch: when False, providers that reach the network refuse to run.
ALLOW_MODEL_REQUESTS = os.environ.get("ORCHESTRATOR_ALLOW_MODEL_REQUESTS", "1") != "0"


def provider_names() -> list[str]:
    """Names accepted in ``agents.yml`` as ``provider:``."""
    return sorted(PROVIDERS)


def build_model(agent: str, spec: AgentSpec, purpose: str) -> Model:
    """Build the model client for ``agent`` to serve ``purpose`` (``"planner"`` or a task id).

    Raises:
        InputError: the provider is unknown or its configuration is unusable.
    """
    target = PROVIDERS.get(spec.provider)
    if target is None:
        known = ", ".join(provider_names())
        raise InputError(
            "agents.yml",
            f"agents.{agent}.provider",
            f"unknown provider {spec.provider!r} ({known})",
        )
    module_name, _, attr = target.partition(":")
    factory: ModelFactory = getattr(importlib.import_module(module_name), attr)
    return factory(agent, spec, purpose)
