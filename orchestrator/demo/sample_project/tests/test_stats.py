from racing import load_runs, summarise_horses, win_rate


def test_summaries_cover_every_horse_once():
    summaries = summarise_horses(load_runs())
    assert len(summaries) == 7
    assert sum(s.runs for s in summaries) == 27
    assert sum(s.wins for s in summaries) == 6


def test_best_record_first():
    top = summarise_horses(load_runs())[0]
    assert top.horse == "Northern Gale"
    assert (top.runs, top.wins, top.places) == (4, 2, 4)
    assert top.strike_rate == 0.5


def test_win_rate():
    runs = load_runs()
    assert win_rate(runs, "Quiet Storm") == 0.25
    assert win_rate(runs, "Harvest Moonlight") == 0.0
    assert win_rate(runs, "Unknown Horse") == 0.0
