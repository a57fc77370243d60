from pathlib import Path

import pytest

from racing import load_runs, races
from racing.data import GOINGS, RESULTS_CSV, parse_row


def test_bundled_results_load():
    runs = load_runs()
    assert len(runs) == 27
    assert {run.race_id for run in runs} == {"R01", "R02", "R03", "R04", "R05", "R06"}
    assert {run.going for run in runs} <= set(GOINGS)


def test_run_fields_are_typed():
    first = load_runs()[0]
    assert first.horse == "Northern Gale"
    assert first.distance_m == 1200
    assert first.sectionals == (22.85, 23.80, 23.76)
    assert first.won


def test_races_are_ordered_by_position():
    by_race = races(load_runs())
    assert len(by_race) == 6
    for field in by_race.values():
        assert [run.position for run in field] == list(range(1, len(field) + 1))
        assert [run.time_s for run in field] == sorted(run.time_s for run in field)


def test_bad_rows_are_rejected():
    row = {
        "race_id": "X1", "date": "2024-01-01", "course": "Nowhere", "distance_m": "800",
        "going": "Good", "horse": "A", "jockey": "B", "position": "1",
        "time_s": "47.00", "sectionals": "23.50;23.50",
    }
    assert parse_row(row).time_s == 47.0
    with pytest.raises(ValueError, match="going"):
        parse_row({**row, "going": "Sticky"})
    with pytest.raises(ValueError, match="cover"):
        parse_row({**row, "distance_m": "1200"})
    with pytest.raises(ValueError, match="add up"):
        parse_row({**row, "time_s": "48.00"})


def test_load_from_another_file(tmp_path: Path):
    source = RESULTS_CSV.read_text(encoding="utf-8").splitlines()
    target = tmp_path / "two.csv"
    target.write_text("\n".join(source[:3]) + "\n", encoding="utf-8")
    assert [run.horse for run in load_runs(target)] == ["Northern Gale", "Copper Kettle"]
