"""The one tracking comment per run: rendered, found again by a hidden marker, state in it.

The comment starts with ``<!-- orchestrator:tracking run=RUN_ID issue=N -->`` and ends with
``<!-- orchestrator:data … -->``, the run's state (status, the plan, who approved) as
zlib-compressed, base64-encoded JSON: base64 cannot contain ``-->``, so no task text can break
out of the HTML comment, and compression keeps a 30-task plan far below GitHub's 65,536-character
limit. ``/approve`` reads the plan back from there.

Only comments written by the orchestrator's own bot account count (``bot_logins``): anyone can
post a comment that *contains* the marker, and a forged plan must never be approved.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from orchestrator import estimate, report
from orchestrator.contracts import Aggregate, Plan, ReviewComment, TaskResult
from orchestrator.markdown import md_text
from orchestrator.text import format_usd

__all__ = [
    "DEFAULT_BOT_LOGINS",
    "MAX_COMMENT_CHARS",
    "TrackingState",
    "decode_state",
    "find_tracking",
    "render_tracking",
    "tracking_marker",
]

TrackingStatus = Literal[
    "planned",
    "awaiting_approval",
    "running",
    "succeeded",
    "partial",
    "failed",
    "cancelled",
    "skipped",
]
DEFAULT_BOT_LOGINS = ("github-actions[bot]",)
#: GitHub refuses longer comment bodies (65,536); keep a margin.
MAX_COMMENT_CHARS = 60_000
_MARKER_RE = re.compile(r"<!-- orchestrator:tracking run=([A-Za-z0-9._-]+) issue=(\d+) -->")
_DATA_RE = re.compile(r"<!-- orchestrator:data ([A-Za-z0-9+/=]+) -->")
_TITLES: dict[str, str] = {
    "planned": "🚀 planned, running",
    "running": "🏃 running",
    "awaiting_approval": "⏸️ plan awaiting `/approve` from a trusted user",
    "succeeded": "✅ succeeded",
    "partial": "⚠️ partial",
    "failed": "❌ failed",
    "cancelled": "🛑 cancelled",
    "skipped": "⏭️ nothing to do",
}


def tracking_marker(run_id: str, issue_number: int) -> str:
    """The hidden first line that identifies a run's tracking comment."""
    return f"<!-- orchestrator:tracking run={run_id} issue={issue_number} -->"


@dataclass
class TrackingState:
    """What the tracking comment remembers about its run."""

    run_id: str
    issue_number: int
    status: TrackingStatus
    plan: Plan | None = None
    note: str = ""
    pr: dict[str, Any] | None = None
    run_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self, redact: Callable[[str], str] | None = None) -> str:
        """The hidden data line; ``redact`` is applied to the JSON before it is packed."""
        data = {
            "run_id": self.run_id,
            "issue_number": self.issue_number,
            "status": self.status,
            "note": self.note,
            "pr": self.pr,
            "run_url": self.run_url,
            # A PR's diff stays in plan.json: it could fill the comment, and /approve reads
            # the PR again anyway (the approved run works on the PR as it is then).
            "plan": (
                self.plan.model_dump(mode="json", exclude={"request": {"pull_request": {"diff"}}})
                if self.plan
                else None
            ),
            "extra": self.extra,
        }
        text = json.dumps(data, separators=(",", ":"))
        if redact is not None:
            text = redact(text)
        packed = zlib.compress(text.encode(), 9)
        return f"<!-- orchestrator:data {base64.b64encode(packed).decode()} -->"


def decode_state(body: str) -> TrackingState | None:
    """The state of a tracking comment's body; ``None`` when absent, misplaced or unreadable.

    Only the shape the bot writes counts: the marker is the body's first line, the data its
    last line, and each appears once. Text quoted elsewhere (a reply that echoes a note, a
    conflict path) can never pose as state, even if it contains both.
    """
    lines = body.rstrip("\n").split("\n")
    marker = _MARKER_RE.fullmatch(lines[0])
    found = _DATA_RE.fullmatch(lines[-1])
    if marker is None or found is None or len(lines) < 2:
        return None
    if len(_MARKER_RE.findall(body)) != 1 or len(_DATA_RE.findall(body)) != 1:
        return None
    try:
        data = json.loads(zlib.decompress(base64.b64decode(found.group(1), validate=True)))
        plan = Plan.model_validate(data["plan"]) if data.get("plan") else None
        state = TrackingState(
            run_id=str(data["run_id"]),
            issue_number=int(data["issue_number"]),
            status=data["status"],
            plan=plan,
            note=str(data.get("note") or ""),
            pr=data.get("pr"),
            run_url=data.get("run_url"),
            extra=dict(data.get("extra") or {}),
        )
    except (ValueError, KeyError, TypeError, zlib.error, ValidationError):
        return None
    if state.run_id != marker.group(1) or state.issue_number != int(marker.group(2)):
        return None
    return state


@dataclass(frozen=True)
class FoundComment:
    """A tracking comment found on an issue."""

    id: int
    body: str
    url: str
    state: TrackingState


def find_tracking(
    comments: Sequence[Any],
    *,
    bot_logins: Collection[str],
    run_id: str | None = None,
    comment_id: int | None = None,
) -> FoundComment | None:
    """The tracking comment of ``run_id`` (or the newest of any run) among ``comments``.

    ``comments`` are githubkit ``IssueComment`` objects (``id``, ``body``, ``html_url``,
    ``user.login``); only those written by one of ``bot_logins`` are considered, and with
    ``comment_id`` (the id the run recorded when it created its comment) only that one.
    """
    found: FoundComment | None = None
    for candidate in tracking_comments(comments, bot_logins=bot_logins):
        if run_id is not None and candidate.state.run_id != run_id:
            continue
        if comment_id is not None and candidate.id != comment_id:
            continue
        found = candidate
    return found


def tracking_comments(
    comments: Sequence[Any], *, bot_logins: Collection[str]
) -> list[FoundComment]:
    """Every tracking comment among ``comments``, oldest first (the bot's own only)."""
    allowed = {login.lower() for login in bot_logins}
    found: list[FoundComment] = []
    for comment in comments:
        user = getattr(comment, "user", None)
        login = str(getattr(user, "login", "") or "").lower()
        body = getattr(comment, "body", None)
        if login not in allowed or not isinstance(body, str):
            continue
        state = decode_state(body)
        if state is not None:
            found.append(FoundComment(int(comment.id), body, str(comment.html_url), state))
    return found


def landed(plan: Plan, aggregate: Aggregate | None) -> list[str]:
    """The tasks whose work the run delivered, in plan order: succeeded and merged (or, for a
    task that need not change anything, succeeded). Ticked in the tracking comment; what a
    ``/retry`` does not run again."""
    rows = {row.id: row for row in aggregate.tasks} if aggregate else {}
    return [
        task.id
        for task in plan.tasks
        if (row := rows.get(task.id)) is not None
        and row.status == "succeeded"
        and (row.applied or not task.requires_changes)
    ]


def _task_lines(
    plan: Plan,
    aggregate: Aggregate | None,
    results: Mapping[str, TaskResult],
    run_url: str | None,
) -> list[str]:
    lines = []
    rows = {task.id: task for task in aggregate.tasks} if aggregate else {}
    done = set(landed(plan, aggregate))
    for task in plan.tasks:
        row = rows.get(task.id)
        box = "x" if task.id in done else " "
        title = md_text(task.title, 100)
        agent = md_text((row.agent if row and row.agent else task.agent), 40)
        line = f"- [{box}] `{task.id}` {title} — {md_text(task.type, 30)} · **{agent}**"
        result = results.get(task.id)
        log = (result.log_url if result is not None else None) or run_url
        if row is not None:
            status = report.display_status(row)
            icon = report.STATUS_ICONS.get(status, "")
            line += (
                f" · {icon} {status} · {row.input_tokens:,}/{row.output_tokens:,} tokens"
                f" · {format_usd(row.cost_usd)}"
            )
            if log:
                line += f" · [log]({log})"
        elif result is not None:  # between waves: the task finished, nothing is merged yet
            icon = report.STATUS_ICONS.get(result.status, "")
            ran = md_text(result.agent, 40) if result.agent else "no agent"
            line += (
                f" · {icon} {result.status} by {ran} in "
                f"{report.format_duration(result.duration_s or 0.0)} · "
                f"{result.usage.input_tokens:,}/{result.usage.output_tokens:,} tokens · "
                f"{format_usd(result.cost_usd)}"
            )
            if log:
                line += f" · [log]({log})"
        else:
            line += f" · wave {task.wave}"
        if plan.reuse is not None and task.id in plan.reuse.tasks:
            line += " · ♻️ reused"
        lines.append(line)
    return lines


def _comments_section(comments: Sequence[ReviewComment], title: str) -> str:
    if not comments:
        return ""
    lines = [f"### {title}", ""]
    for comment in comments:
        where = f"`{md_text(comment.path, 120)}` line {comment.line}"
        by = f" ({comment.task_id})" if comment.task_id else ""
        lines.append(f"- {where}{by}: {md_text(comment.body, 500)}")
    return "\n".join(lines)


def render_tracking(
    state: TrackingState,
    *,
    aggregate: Aggregate | None = None,
    results: Mapping[str, TaskResult] | None = None,
    unplaced_comments: Sequence[ReviewComment] = (),
    redact: Callable[[str], str] | None = None,
) -> str:
    """The whole tracking comment: marker, status, checklist, graph, totals, hidden state."""
    results = results or {}
    plan = state.plan
    parts = [
        tracking_marker(state.run_id, state.issue_number),
        f"## 🤖 Orchestrator run `{md_text(state.run_id, 80)}` — "
        f"{_TITLES.get(state.status, state.status)}",
    ]
    if state.note:
        parts.append(md_text(state.note, 600))
    if state.pr:
        parts.append(f"Pull request: #{state.pr.get('number')} ({state.pr.get('url')})")
    if state.run_url:
        parts.append(f"Workflow run and job logs: {state.run_url}")
    if plan is not None and plan.tasks:
        parts.append(estimate.describe(plan))
        parts.append("### Tasks")
        parts.append("\n".join(_task_lines(plan, aggregate, results, state.run_url)))
        statuses = report.statuses_of(aggregate) if aggregate else None
        parts.append(report.mermaid_plan(plan, statuses))
    if aggregate is not None:
        parts.append(report.verify_section(aggregate))
        parts.append(report.totals_section(aggregate.totals, results.values()))
        failures = report.failures_section(aggregate)
        if failures:
            parts.append(failures)
    unplaced = _comments_section(
        unplaced_comments, "Review comments (no pull request to hold them)"
    )
    if unplaced:
        parts.append(unplaced)
    if state.status == "awaiting_approval":
        parts.append(
            "A trusted user can start this plan with `/approve`, or drop it with `/cancel`."
        )
    parts.append(state.encode(redact))
    body = "\n\n".join(part for part in parts if part) + "\n"
    if len(body) > MAX_COMMENT_CHARS and plan is not None:
        # The graph is the most expendable part; the checklist and the state are not.
        graph = report.mermaid_plan(plan, report.statuses_of(aggregate) if aggregate else None)
        body = body.replace(graph, "_(plan graph omitted: too large for one comment)_")
    return body
