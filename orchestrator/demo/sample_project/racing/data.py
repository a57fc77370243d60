"""Race results: the bundled CSV and the ``Run`` dataclass each of its rows becomes."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: The results shipped with the package (six races, 2024 flat season).
RESULTS_CSV = Path(__file__).with_name("results.csv")

#: Official going descriptions, firmest first.
GOINGS = ("Firm", "Good to Firm", "Good", "Good to Soft", "Soft", "Heavy")

#: Length of one sectional, in metres.
SECTION_M = 400


@dataclass(frozen=True)
class Run:
    """One horse's run in one race."""

    race_id: str
    date: str
    course: str
    distance_m: int
    going: str
    horse: str
    jockey: str
    position: int
    time_s: float
    sectionals: tuple[float, ...]  # seconds per 400 m, start to finish

    @property
    def won(self) -> bool:
        return self.position == 1


def parse_row(row: dict[str, str]) -> Run:
    """Turn one CSV row into a ``Run``; raise ``ValueError`` on an inconsistent row."""
    race_id = row["race_id"]
    going = row["going"].strip()
    if going not in GOINGS:
        raise ValueError(f"{race_id}: unknown going {going!r}")
    distance_m = int(row["distance_m"])
    sectionals = tuple(float(part) for part in row["sectionals"].split(";"))
    if len(sectionals) * SECTION_M != distance_m:
        raise ValueError(f"{race_id}: {len(sectionals)} sectionals do not cover {distance_m} m")
    time_s = float(row["time_s"])
    if abs(sum(sectionals) - time_s) > 0.05:
        raise ValueError(f"{race_id}: sectionals add up to {sum(sectionals):.2f}, not {time_s}")
    return Run(
        race_id=race_id,
        date=row["date"],
        course=row["course"],
        distance_m=distance_m,
        going=going,
        horse=row["horse"],
        jockey=row["jockey"],
        position=int(row["position"]),
        time_s=time_s,
        sectionals=sectionals,
    )


def load_runs(path: Path | str = RESULTS_CSV) -> list[Run]:
    """Read every run from a results CSV (the bundled one by default)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return [parse_row(row) for row in csv.DictReader(handle)]


def races(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Group runs by race id, each race ordered by finishing position."""
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.race_id, []).append(run)
    return {race_id: sorted(field, key=lambda r: r.position) for race_id, field in grouped.items()}
