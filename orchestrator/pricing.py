"""Token usage → US dollars, from the per-million-token prices on an agent's spec.

A missing price makes the cost *unknown* (``None``), never zero: a run that cannot price its
tokens must say so in the summary rather than report a reassuring ``$0.00``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from orchestrator.contracts import AgentSpec, Usage

PER_TOKEN = 1_000_000


def cost_usd(spec: AgentSpec, usage: Usage, *, batched: bool = False) -> float | None:
    """What ``usage`` cost with ``spec``'s prices, or ``None`` when a needed price is missing.

    ``cached_input_tokens`` and ``cache_write_input_tokens`` are parts of ``input_tokens``:
    cache reads are billed at ``cached_input_per_mtok``, cache writes at
    ``cache_write_per_mtok``, each at the full input price when the spec does not give its own.
    Only the prices the usage actually needs are required: zero output tokens need no output
    price. ``batched``: the call went through a batch API, billed at ``batch_discount``.
    """
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_input_tokens, usage.input_tokens - cached)
    fresh = usage.input_tokens - cached - written
    parts = (
        (fresh, spec.input_per_mtok),
        (cached, _or(spec.cached_input_per_mtok, spec.input_per_mtok)),
        (written, _or(spec.cache_write_per_mtok, spec.input_per_mtok)),
        (usage.output_tokens, spec.output_per_mtok),
    )
    total = 0.0
    for tokens, price in parts:
        if tokens:
            if price is None:
                return None
            total += tokens * price
    if batched and spec.batch_discount is not None:
        total *= spec.batch_discount
    return total / PER_TOKEN


def _or(price: float | None, fallback: float | None) -> float | None:
    return price if price is not None else fallback


def add_costs(a: float | None, b: float | None) -> float | None:
    """Sum two costs; unknown (``None``) on either side makes the sum unknown."""
    if a is None or b is None:
        return None
    return a + b


def price_warnings(agents: Mapping[str, AgentSpec], max_age_days: int, today: date) -> list[str]:
    """A warning per agent without prices, or whose prices were never dated or were checked
    too long ago.

    Replay agents are skipped (their prices only label simulated costs), and so are MCP agents
    (the other server does the spending).
    """
    warnings = []
    for name, spec in agents.items():
        priced = any(
            price is not None
            for price in (spec.input_per_mtok, spec.output_per_mtok, spec.cached_input_per_mtok)
        )
        if spec.provider in ("replay", "mcp"):
            continue
        if not priced:
            warnings.append(
                f"agents.{name}: no prices ({spec.model}): its cost is unknown and budgets "
                "cannot count it"
            )
            continue
        source = f" against {spec.price_source}" if spec.price_source else ""
        if spec.price_checked is None:
            warnings.append(f"agents.{name}.price_checked: not set; date the prices{source}")
            continue
        age = (today - spec.price_checked).days
        if age > max_age_days:
            warnings.append(
                f"agents.{name}.price_checked: {spec.price_checked} is {age} days old "
                f"(prices.max_age_days {max_age_days}); check the prices{source}"
            )
    return warnings
