"""Progress display: a live board in a terminal, plain timestamped lines elsewhere (CI logs).

Progress goes to stderr so that stdout stays free for what a script may parse.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from orchestrator.contracts import Plan, Task, TaskResult

_MARK = {"succeeded": "✔", "failed": "✘", "budget_exceeded": "$", "skipped": "–"}


class Progress:
    """Reports task starts and ends; redraws a board when the stream is a terminal."""

    def __init__(self, plan: Plan, stream: TextIO | None = None, *, live: bool | None = None):
        self.plan = plan
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.start = time.monotonic()
        self.state: dict[str, str] = {task.id: "waiting" for task in plan.tasks}
        self._drawn = 0

    def started(self, task: Task) -> None:
        """A task took a slot and began."""
        self.state[task.id] = f"running ({task.agent})"
        self._emit(f"▶ {task.id} started on {task.agent}")

    def finished(self, task: Task, result: TaskResult) -> None:
        """A task ended (or was skipped)."""
        cost = "cost unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
        if result.cost_simulated and result.cost_usd is not None:
            cost += " (simulated)"
        mark = _MARK.get(result.status, "?")
        detail = f"{result.duration_s:.1f}s, {result.usage.total} tokens, {cost}"
        if result.error:
            detail += f" — {result.error}"
        self.state[task.id] = f"{mark} {result.status} ({result.agent or '-'}, {detail})"
        self._emit(f"{mark} {task.id} {result.status}: {detail}")

    def _emit(self, line: str) -> None:
        elapsed = time.monotonic() - self.start
        if not self.live:
            self.stream.write(f"[{elapsed:6.2f}s] {line}\n")
            self.stream.flush()
            return
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # back to the board's first line
        width = max(len(task_id) for task_id in self.state)
        rows = [f"  {task_id.ljust(width)}  {state}" for task_id, state in self.state.items()]
        rows.append(f"  {'elapsed'.ljust(width)}  {elapsed:.1f}s")
        self.stream.write("\n".join(rows) + "\n")
        self.stream.flush()
        self._drawn = len(rows)
