"""Task type → agent chain: the primary agent and its backups, skipping agents with no key.

Routing happens at plan time so that a missing secret is a clear error before any job starts,
not a failure in the middle of a matrix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.config import Config
from orchestrator.contracts import AgentSpec
from orchestrator.errors import InputError


@dataclass(frozen=True)
class Route:
    """The agents chosen for one task, and why."""

    agent: str
    backups: list[str]
    reason: str


def has_key(spec: AgentSpec, environ: Mapping[str, str]) -> bool:
    """True when the agent needs no key or its key variable is set and non-empty."""
    return spec.key_env is None or bool(environ.get(spec.key_env))


def route(task_type: str, config: Config, environ: Mapping[str, str] | None = None) -> Route:
    """Pick the agent chain for ``task_type``.

    Raises:
        InputError: the type is unknown, or no agent of its chain has its API key.
    """
    env = os.environ if environ is None else environ
    rule = config.routes.get(task_type)
    source = str(config.source / "routing_rules.yml")
    if rule is None:
        known = ", ".join(config.routes)
        raise InputError(source, "routes", f"unknown task type {task_type!r} (known: {known})")
    chain = rule.chain
    usable = [name for name in chain if has_key(config.agents[name], env)]
    if not usable:
        needs = ", ".join(f"{name} needs {config.agents[name].key_env}" for name in chain)
        raise InputError(source, f"routes.{task_type}", f"no agent has its API key ({needs})")
    skipped = [name for name in chain[: chain.index(usable[0])]]
    if skipped:
        missing = ", ".join(f"{n} ({config.agents[n].key_env} unset)" for n in skipped)
        reason = f"{usable[0]}: backup for {task_type}; no key for {missing}"
    else:
        reason = f"{usable[0]}: primary for {task_type}"
    return Route(agent=usable[0], backups=usable[1:], reason=reason)
