"""Token usage → US dollars, from the per-million-token prices on an agent's spec.

A missing price makes the cost *unknown* (``None``), never zero: a run that cannot price its
tokens must say so in the summary rather than report a reassuring ``$0.00``.
"""

from __future__ import annotations

from orchestrator.contracts import AgentSpec, Usage

PER_TOKEN = 1_000_000


def cost_usd(spec: AgentSpec, usage: Usage) -> float | None:
    """What ``usage`` cost with ``spec``'s prices, or ``None`` when a needed price is missing.

    ``cached_input_tokens`` are part of ``input_tokens``; they are billed at
    ``cached_input_per_mtok`` when the spec gives it, else at the full input price. Only the
    prices the usage actually needs are required: zero output tokens need no output price.
    """
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    fresh = usage.input_tokens - cached
    total = 0.0
    if fresh:
        if spec.input_per_mtok is None:
            return None
        total += fresh * spec.input_per_mtok
    if cached:
        price = (
            spec.cached_input_per_mtok
            if spec.cached_input_per_mtok is not None
            else spec.input_per_mtok
        )
        if price is None:
            return None
        total += cached * price
    if usage.output_tokens:
        if spec.output_per_mtok is None:
            return None
        total += usage.output_tokens * spec.output_per_mtok
    return total / PER_TOKEN


def add_costs(a: float | None, b: float | None) -> float | None:
    """Sum two costs; unknown (``None``) on either side makes the sum unknown."""
    if a is None or b is None:
        return None
    return a + b
