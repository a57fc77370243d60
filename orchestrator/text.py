"""Small text helpers shared by every report: plurals and one-line reasons."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 task``, ``3 tasks``; ``many`` for irregular plurals (``patch`` → ``patches``)."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {many or word + 's'}"
