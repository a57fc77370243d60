"""Task type → agent chain: the primary agent and its backups, skipping agents with no key.

Routing happens at plan time so that a missing secret is a clear error before any job starts,
not a failure in the middle of a matrix. With ``planning.learn_routing`` on, the run history
may move a better-performing backup to the front (see ``learned_choice`` and docs/routing.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.config import Config
from orchestrator.contracts import AgentSpec
from orchestrator.errors import InputError
from orchestrator.estimate import TokenEstimate, task_cost, tokens_for
from orchestrator.stats import AgentTypeRecord
from orchestrator.text import format_usd

Records = Mapping[tuple[str, str], AgentTypeRecord]


@dataclass(frozen=True)
class Route:
    """The agents chosen for one task, why, and what a task of the type is expected to cost
    on the chosen agent (``None`` when its price is unknown)."""

    agent: str
    backups: list[str]
    reason: str
    estimated_usd: float | None = None


def has_key(spec: AgentSpec, environ: Mapping[str, str]) -> bool:
    """True when the agent needs no key or its key variable is set and non-empty."""
    return spec.key_env is None or bool(environ.get(spec.key_env))


def route(
    task_type: str,
    config: Config,
    environ: Mapping[str, str] | None = None,
    records: Records | None = None,
) -> Route:
    """Pick the agent chain for ``task_type``.

    Raises:
        InputError: the type is unknown, or no agent of its chain has its API key.
    """
    env = os.environ if environ is None else environ
    rule = config.routes.get(task_type)
    source = str(config.file("routing_rules.yml"))
    if rule is None:
        known = ", ".join(config.routes)
        raise InputError(source, "routes", f"unknown task type {task_type!r} (known: {known})")
    chain = rule.chain
    usable = [name for name in chain if has_key(config.agents[name], env)]
    if not usable:
        needs = ", ".join(f"{name} needs {config.agents[name].key_env}" for name in chain)
        raise InputError(source, f"routes.{task_type}", f"no agent has its API key ({needs})")
    skipped = chain[: chain.index(usable[0])]
    if skipped:
        missing = ", ".join(f"{n} ({config.agents[n].key_env} unset)" for n in skipped)
        reason = f"{usable[0]}: backup for {task_type}; no key for {missing}"
    else:
        reason = f"{usable[0]}: primary for {task_type}"
    planning = config.settings.planning
    tokens = tokens_for(task_type, planning.estimate, records)
    costs = {name: task_cost(config.agents[name], tokens) for name in usable}
    if rule.max_usd is not None:
        usable, reason = _within_ceiling(task_type, rule.max_usd, usable, costs, source, tokens)
    if rule.prefer == "cheapest":
        usable, reason = _cheapest_first(task_type, usable, costs, tokens)
    elif planning.learn_routing and records:
        learned = learned_choice(
            task_type, usable, records, planning.learn_min_samples, planning.learn_margin
        )
        if learned is not None:
            agent, why = learned
            usable = [agent, *[name for name in usable if name != agent]]
            reason = f"{agent}: learned for {task_type} — {why}"
    return Route(agent=usable[0], backups=usable[1:], reason=reason, estimated_usd=costs[usable[0]])


def _within_ceiling(
    task_type: str,
    ceiling: float,
    usable: list[str],
    costs: Mapping[str, float | None],
    source: str,
    tokens: TokenEstimate,
) -> tuple[list[str], str]:
    """The agents estimated at or under ``ceiling`` (an unknown price is not under it)."""
    kept = [name for name in usable if (cost := costs[name]) is not None and cost <= ceiling]
    estimates = ", ".join(f"{name} {format_usd(costs[name])}" for name in usable)
    if not kept:
        raise InputError(
            source,
            f"routes.{task_type}.max_usd",
            f"no agent with a key is estimated within {format_usd(ceiling)} per task "
            f"({estimates}; tokens from {tokens.basis})",
        )
    dropped = [name for name in usable if name not in kept]
    note = f" (over the {format_usd(ceiling)} ceiling: {', '.join(dropped)})" if dropped else ""
    return kept, f"{kept[0]}: first within max_usd for {task_type}{note}"


def _cheapest_first(
    task_type: str, usable: list[str], costs: Mapping[str, float | None], tokens: TokenEstimate
) -> tuple[list[str], str]:
    """The chain by estimated cost (unknown prices last, ties in the configured order)."""
    ranked = sorted(
        usable, key=lambda name: (costs[name] is None, costs[name] or 0.0, usable.index(name))
    )
    estimates = ", ".join(f"{name} {format_usd(costs[name])}" for name in ranked)
    return ranked, (
        f"{ranked[0]}: cheapest for {task_type} (estimated {estimates}; tokens from {tokens.basis})"
    )


def learned_choice(
    task_type: str,
    usable: list[str],
    records: Records,
    min_samples: int,
    margin: float,
) -> tuple[str, str] | None:
    """The agent the history prefers over the configured first choice, with the reason.

    The rule, conservative on purpose: only agents with at least ``min_samples`` finished tasks
    of this type are compared, and the configured first choice must itself have that many (so
    an unmeasured primary is never replaced on a backup's word). A challenger wins when its
    success rate is higher by at least ``margin``, or when the rates are within ``margin`` and
    its mean cost is at most 80% of the first choice's.
    """
    first = usable[0]
    base = records.get((first, task_type))
    if base is None or base.runs < min_samples:
        return None
    best: tuple[str, str] | None = None
    for agent in usable[1:]:
        rec = records.get((agent, task_type))
        if rec is None or rec.runs < min_samples:
            continue
        stats = (
            f"{agent} {rec.succeeded}/{rec.runs} succeeded vs {first} {base.succeeded}/{base.runs}"
        )
        if rec.success_rate >= base.success_rate + margin:
            return agent, f"{stats} (min {min_samples} samples)"
        cheaper = (
            rec.mean_cost is not None
            and base.mean_cost is not None
            and rec.mean_cost <= 0.8 * base.mean_cost
        )
        if best is None and abs(rec.success_rate - base.success_rate) < margin and cheaper:
            best = (
                agent,
                f"{stats}, mean cost ${rec.mean_cost:.4f} vs ${base.mean_cost:.4f} "
                f"(min {min_samples} samples)",
            )
    return best
