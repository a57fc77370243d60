"""Horse-racing analytics: load race results and summarise each horse's form."""

from racing.data import Run, load_runs, races
from racing.stats import HorseSummary, summarise_horses, win_rate

__all__ = ["HorseSummary", "Run", "load_runs", "races", "summarise_horses", "win_rate"]
