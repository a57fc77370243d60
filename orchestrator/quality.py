"""The quality signal of past runs: what people did with the result.

For every run of a history that names a pull request or an issue, a scheduled job
(``orchestrator quality``) reads, with GET calls only,

* the pull request's state: ``merged`` (``merged_at`` is set), ``closed`` (closed unmerged) or
  ``open``;
* the reactions rollup of the run's tracking comment (found by its hidden marker among the
  comments of the run's issue; only comments written by the orchestrator's bot accounts count,
  as in :func:`orchestrator.github.tracking.find_tracking`, so a forged comment cannot vote),

and stores them as the run's :class:`~orchestrator.metrics.Quality`. A run whose pull request is
merged or closed is final and not read again. What cannot be read (the PR or the issue answers
404, the tracking comment is gone) keeps its previous value; a run of which nothing could be
read is left exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from orchestrator.fileio import read_text, write_atomic
from orchestrator.github.client import GitHubClient, GitHubError, models
from orchestrator.github.tracking import find_tracking
from orchestrator.metrics import Quality, RunMetrics, parse_history

__all__ = ["FINAL_STATES", "REACTION_FIELDS", "QualityChange", "gather_quality", "run_quality"]

PrState = Literal["open", "merged", "closed"]
#: A run whose PR reached one of these states is not read again.
FINAL_STATES: frozenset[str] = frozenset({"merged", "closed"})
#: GitHub's reaction contents → the attribute of githubkit's ``ReactionRollup``.
REACTION_FIELDS: dict[str, str] = {
    "+1": "plus_one",
    "-1": "minus_one",
    "laugh": "laugh",
    "confused": "confused",
    "heart": "heart",
    "hooray": "hooray",
    "eyes": "eyes",
    "rocket": "rocket",
}
_PULL_URL_RE = re.compile(r"/pulls?/(\d+)/?$")


@dataclass(frozen=True)
class QualityChange:
    """One run whose quality signal changed."""

    run_id: str
    before: Quality | None
    after: Quality

    def describe(self) -> str:
        """``RUN: open → merged, +1:2 heart:1``."""
        was = self.before.pr_state if self.before and self.before.pr_state else "unknown"
        now = self.after.pr_state or "unknown"
        state = now if was == now else f"{was} → {now}"
        reactions = " ".join(f"{k}:{v}" for k, v in sorted(self.after.reactions.items()))
        return f"{self.run_id}: {state}" + (f", {reactions}" if reactions else "")


def pr_number_of(run: RunMetrics) -> int | None:
    """The run's PR number (older history lines only have ``pr_url``)."""
    if run.pr_number is not None:
        return run.pr_number
    found = _PULL_URL_RE.search(run.pr_url or "")
    return int(found.group(1)) if found else None


def is_final(run: RunMetrics) -> bool:
    """The run's PR was merged or closed: its signal will not change any more."""
    return run.quality is not None and run.quality.pr_state in FINAL_STATES


def _missing(exc: GitHubError) -> bool:
    return exc.status in (404, 410)


def _pr_state(client: GitHubClient, number: int) -> PrState | None:
    """``merged``, ``closed`` or ``open``; ``None`` when the PR is not found."""
    try:
        pull = client.get_pull(number)
    except GitHubError as exc:
        if _missing(exc):
            return None
        raise
    if pull.merged_at is not None:
        return "merged"
    return "closed" if pull.state == "closed" else "open"


def _reactions(
    comments: list[models.IssueComment], run_id: str, bot_logins: Collection[str]
) -> dict[str, int] | None:
    """Non-zero reaction counts on the run's tracking comment; ``None`` when it is not there."""
    found = find_tracking(comments, bot_logins=bot_logins, run_id=run_id)
    if found is None:
        return None
    comment = next((c for c in comments if c.id == found.id), None)
    rollup = getattr(comment, "reactions", None)
    if not isinstance(rollup, models.ReactionRollup):
        return {}
    counts = {name: int(getattr(rollup, attr, 0) or 0) for name, attr in REACTION_FIELDS.items()}
    return {name: count for name, count in counts.items() if count > 0}


def run_quality(
    run: RunMetrics,
    client: GitHubClient,
    *,
    bot_logins: Collection[str],
    now: datetime,
    comments: Callable[[int], list[models.IssueComment] | None] | None = None,
) -> Quality | None:
    """The run's quality read from GitHub now, or ``None`` when nothing could be read.

    ``comments`` returns an issue's comments (``None`` when the issue is not found); by default
    they are listed through ``client``.
    """
    list_comments = comments or (lambda number: _list_comments(client, number))
    before = run.quality or Quality()
    pr_state: PrState | None = before.pr_state
    reactions = dict(before.reactions)
    read = False
    number = pr_number_of(run)
    if number is not None:
        state = _pr_state(client, number)
        if state is not None:
            pr_state, read = state, True
    if run.issue_number is not None:
        listed = list_comments(run.issue_number)
        counted = _reactions(listed, run.run_id, bot_logins) if listed is not None else None
        if counted is not None:
            reactions, read = counted, True
    if not read:
        return None
    return Quality(pr_state=pr_state, reactions=reactions, checked_at=now)


def _list_comments(client: GitHubClient, number: int) -> list[models.IssueComment] | None:
    try:
        return client.list_issue_comments(number)
    except GitHubError as exc:
        if _missing(exc):
            return None
        raise


def gather_quality(
    history: Path,
    client: GitHubClient,
    *,
    bot_logins: Collection[str],
    now: datetime,
    on_change: Callable[[QualityChange], None] | None = None,
) -> int:
    """Fill in the quality of every run of ``history`` that is not final yet.

    Reads GitHub with GET calls only (each issue's comments once per pass, however many runs
    it holds), rewrites the history atomically when any run was checked, and returns how many
    runs' signal changed (PR state or reactions; a re-check that only moves ``checked_at`` does
    not count). ``on_change`` is called with each change. A missing history is no work.

    Raises:
        InputError: the history cannot be parsed.
        GitHubError: GitHub failed in another way than "not found" (after retries).
    """
    if not history.exists():
        return 0
    runs = parse_history(read_text(history), str(history))
    cache: dict[int, list[models.IssueComment] | None] = {}

    def comments(number: int) -> list[models.IssueComment] | None:
        if number not in cache:
            cache[number] = _list_comments(client, number)
        return cache[number]

    changed = checked = 0
    updated: list[RunMetrics] = []
    for run in runs:
        quality = None
        if not is_final(run) and (pr_number_of(run) is not None or run.issue_number is not None):
            quality = run_quality(run, client, bot_logins=bot_logins, now=now, comments=comments)
        if quality is None:
            updated.append(run)
            continue
        checked += 1
        before = run.quality
        if before is None or (before.pr_state, before.reactions) != (
            quality.pr_state,
            quality.reactions,
        ):
            changed += 1
            if on_change is not None:
                on_change(QualityChange(run.run_id, before, quality))
        updated.append(run.model_copy(update={"quality": quality}))
    if checked:
        write_atomic(history, "".join(run.model_dump_json() + "\n" for run in updated))
    return changed
