"""Form summaries: wins, places and strike rates per horse."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from racing.data import Run


@dataclass(frozen=True)
class HorseSummary:
    """A horse's record over a set of runs."""

    horse: str
    runs: int
    wins: int
    places: int  # finished in the first three

    @property
    def strike_rate(self) -> float:
        """Wins per run, 0.0 for a horse that has not run."""
        return self.wins / self.runs if self.runs else 0.0


def win_rate(runs: Iterable[Run], horse: str) -> float:
    """Share of ``horse``'s runs that it won (0.0 when it never ran)."""
    own = [run for run in runs if run.horse == horse]
    return sum(run.won for run in own) / len(own) if own else 0.0


def summarise_horses(runs: Iterable[Run]) -> list[HorseSummary]:
    """One summary per horse, best record first (wins, then places, then name)."""
    tally: dict[str, list[int]] = {}
    for run in runs:
        counts = tally.setdefault(run.horse, [0, 0, 0])
        counts[0] += 1
        counts[1] += run.won
        counts[2] += run.position <= 3
    summaries = [HorseSummary(horse, *counts) for horse, counts in tally.items()]
    return sorted(summaries, key=lambda s: (-s.wins, -s.places, s.horse))
