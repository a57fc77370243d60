"""Small text helpers shared by every report: plurals and money."""

from __future__ import annotations

__all__ = ["format_usd", "plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 task``, ``3 tasks``; ``many`` for irregular plurals (``patch`` → ``patches``)."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {many or word + 's'}"


def format_usd(cost: float | None) -> str:
    """``$0.0123``; ``unknown`` for ``None`` (unknown is never shown as $0)."""
    if cost is None:
        return "unknown"
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"
