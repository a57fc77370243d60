"""Markdown for people: the job summary, the plan graph, timings and the cost table.

Everything here is pure (models in, text out) so the tracking comment and the pull-request body
can reuse the same pieces. Task titles, errors, summaries and paths are model or user text:
they are escaped for Markdown/HTML in tables and for Mermaid in diagrams, so they can neither
break out of a diagram nor inject markup. Task ids match ``TASK_ID_PATTERN`` and agent names
come from configuration, but they are escaped too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from orchestrator.contracts import (
    Aggregate,
    AggregateTask,
    Attempt,
    Plan,
    Task,
    TaskResult,
    Totals,
)
from orchestrator.markdown import md_block, md_text, mermaid_text
from orchestrator.text import format_usd, plural

#: Mermaid ``classDef`` per display status (see ``display_status``).
STATUS_STYLES: dict[str, str] = {
    "succeeded": "fill:#d4f7d4,stroke:#2da44e,color:#0b3d17",
    "failed": "fill:#ffd7d5,stroke:#cf222e,color:#5c0a0f",
    "budget_exceeded": "fill:#ffe2c2,stroke:#d1680f,color:#5a2a00",
    "skipped": "fill:#eaeef2,stroke:#8c959f,color:#424a53",
    "conflict": "fill:#fff4b3,stroke:#bf8700,color:#4d3800",
    "resolved": "fill:#ddf4ff,stroke:#0969da,color:#0a3069",
}

STATUS_ICONS: dict[str, str] = {
    "succeeded": "✅",
    "partial": "⚠️",
    "failed": "❌",
    "budget_exceeded": "💸",
    "skipped": "⏭️",
    "conflict": "⚔️",
    "resolved": "🔀",
}


def node_id(task_id: str) -> str:
    """A Mermaid node id for a task id (never a keyword such as ``end``; injective)."""
    return "t_" + re.sub(r"[^a-z0-9]", "_", task_id.lower())


def format_cost(cost: float | None, *, simulated: bool = False) -> str:
    """``format_usd``, marked ``(simulated)`` when it prices replayed usage, not money spent."""
    text = format_usd(cost)
    return f"{text} (simulated)" if simulated and cost is not None else text


def format_duration(seconds: float) -> str:
    """``4.2s``, ``3m 05s`` or ``1h 02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def display_status(task: AggregateTask) -> str:
    """The status shown for a task: its own, ``conflict`` when its patch did not apply, or
    ``resolved`` when a ``resolve-*`` task merged it."""
    if not task.applied and task.conflict_files:
        return "resolved" if task.resolved_by else "conflict"
    return task.status


def resolved_by(aggregate: Aggregate) -> dict[str, str]:
    """Conflicting task id → the ``resolve-*`` task whose commit merged it."""
    return {task.id: task.resolved_by for task in aggregate.tasks if task.resolved_by}


def task_types(plan: Plan, aggregate: Aggregate) -> dict[str, str]:
    """Task id → type, for the plan's tasks and the ones the verify stage added."""
    types = {task.id: task.type for task in plan.tasks}
    types.update({task.id: task.type for task in aggregate.tasks if task.type})
    return types


def planned_agents(plan: Plan, aggregate: Aggregate) -> dict[str, str]:
    """Task id → the agent it was routed to first (a repair task: its type's chain)."""
    planned = {task.id: task.agent for task in plan.tasks}
    for task in aggregate.tasks:
        chain = plan.repair_chains.get(task.type or "") if task.repair_of else None
        if chain:
            planned[task.id] = chain[0]
    return planned


def statuses_of(aggregate: Aggregate) -> dict[str, str]:
    """Display status per task id, for ``mermaid_plan``."""
    return {task.id: display_status(task) for task in aggregate.tasks}


def mermaid_plan(plan: Plan, statuses: Mapping[str, str] | None = None) -> str:
    """The plan DAG as a fenced Mermaid ``flowchart``; nodes are styled by ``statuses``.

    Works before any result exists (no statuses: every node is unstyled).
    """
    statuses = statuses or {}
    lines = ["```mermaid", "flowchart TD"]
    for task in plan.tasks:
        kind = f"{mermaid_text(task.type, 40)} · {mermaid_text(task.agent, 40)}"
        label = f"{mermaid_text(task.id)}<br/>{mermaid_text(task.title)}<br/>{kind}"
        lines.append(f'  {node_id(task.id)}["{label}"]')
    known = {task.id for task in plan.tasks}
    for task in plan.tasks:
        for dep in task.depends_on:
            if dep in known:
                lines.append(f"  {node_id(dep)} --> {node_id(task.id)}")
    for status, style in STATUS_STYLES.items():
        members = [node_id(t.id) for t in plan.tasks if statuses.get(t.id) == status]
        if members:
            lines.append(f"  classDef {status} {style}")
            lines.append(f"  class {','.join(members)} {status}")
    lines.append("```")
    return "\n".join(lines)


def mermaid_gantt(aggregate: Aggregate, results: Mapping[str, TaskResult]) -> str:
    """Task timings as a fenced Mermaid ``gantt``; ``""`` when no task has timings."""
    rows = []
    for number, task in enumerate(aggregate.tasks, start=1):
        start, end = _timing(task, results.get(task.id))
        if start is None or end is None:
            continue
        tag = {"succeeded": "done", "failed": "crit", "conflict": "crit"}.get(
            display_status(task), "active"
        )
        # Millisecond timestamps (dateFormat x): most tasks last seconds, and whole-second
        # bars would make a parallel wave look like identical blocks.
        start_ms = int(start.timestamp() * 1000)
        end_ms = max(int(end.timestamp() * 1000), start_ms + 1)
        rows.append(
            # "N. id": a bare id such as ``title`` or ``section`` would be a gantt keyword.
            f"  {number}. {task.id} :{tag}, {node_id(task.id)}, {start_ms}, {end_ms}"
        )
    if not rows:
        return ""
    header = [
        "```mermaid",
        "gantt",
        "  title Task timings (UTC)",
        "  dateFormat x",
        "  axisFormat %H:%M:%S",
        "  section tasks",
    ]
    return "\n".join([*header, *rows, "```"])


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timing(
    task: AggregateTask, result: TaskResult | None
) -> tuple[datetime | None, datetime | None]:
    start = task.started_at or (result.started_at if result else None)
    end = task.finished_at or (result.finished_at if result else None)
    return _utc(start), _utc(end)


def attempts_cell(result: TaskResult | None, planned_agent: str) -> str:
    """Number of attempts, marking a fallback to a backup agent."""
    if result is None:
        return "0"
    count = len(result.attempts)
    if result.agent and result.agent != planned_agent:
        return f"{count} (fallback → {md_text(result.agent, 40)})"
    return str(count)


_GAVE_UP = re.compile(r" \(gave up after \d+ retr(?:y|ies)\)$")
ATTEMPT_ICONS: dict[str, str] = {"succeeded": "✔", "failed": "✘", "budget_exceeded": "💸"}


def attempt_text(attempt: Attempt) -> str:
    """One attempt: ``codex ✘ 429 rate limited (2 retries, waited 3.0s)``."""
    parts = [md_text(attempt.agent, 40), ATTEMPT_ICONS.get(attempt.status, attempt.status)]
    if attempt.status != "succeeded" and attempt.error:
        error = attempt.error
        if error.startswith(f"{attempt.agent}: "):
            error = error[len(attempt.agent) + 2 :]
        error = _GAVE_UP.sub("", error)  # the retry count follows in parentheses anyway
        parts.append(md_text(error, 60))
    details = []
    if attempt.retries:
        count = len(attempt.retries)
        details.append(f"{count} {'retry' if count == 1 else 'retries'}")
    if attempt.wait_s:
        details.append(f"waited {format_duration(attempt.wait_s)}")
    if attempt.cache_hits:
        details.append(f"{attempt.cache_hits} cached")
    text = " ".join(parts)
    return f"{text} ({', '.join(details)})" if details else text


def attempts_section(aggregate: Aggregate, results: Mapping[str, TaskResult]) -> str:
    """Tasks that fell back, retried or hit the cache, as agent chains; ``""`` when none."""
    lines = []
    for task in aggregate.tasks:
        result = results.get(task.id)
        if result is None or not result.attempts:
            continue
        eventful = len(result.attempts) > 1 or any(
            a.retries or a.wait_s or a.cache_hits for a in result.attempts
        )
        if eventful:
            chain = " → ".join(attempt_text(a) for a in result.attempts)
            lines.append(f"- `{task.id}`: {chain}")
    return "\n".join(["### Attempts", "", *lines]) if lines else ""


def merge_cell(task: AggregateTask) -> str:
    """How the task's patch landed: applied, conflict, or nothing to merge."""
    if task.applied:
        return f"applied `{task.commit[:10]}`" if task.commit else "applied"
    if task.conflict_files:
        conflict = f"conflict ({plural(len(task.conflict_files), 'file')})"
        return f"{conflict}, resolved by `{task.resolved_by}`" if task.resolved_by else conflict
    return "—"


def task_table(plan: Plan, aggregate: Aggregate, results: Mapping[str, TaskResult]) -> str:
    """One Markdown table row per task, in plan order."""
    types = task_types(plan, aggregate)
    planned = planned_agents(plan, aggregate)
    cost = "Cost (simulated)" if aggregate.totals.cost_simulated else "Cost"
    lines = [
        f"| Task | Type | Agent | Status | Merge | Tokens in/out | {cost} | Duration | Attempts |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for task in aggregate.tasks:
        status = display_status(task)
        icon = STATUS_ICONS.get(status, "")
        cells = [
            f"`{task.id}`",
            md_text(types.get(task.id, "?"), 40),
            md_text(task.agent or planned.get(task.id, "?"), 40),
            f"{icon} {status}".strip(),
            merge_cell(task),
            f"{task.input_tokens:,} / {task.output_tokens:,}",
            format_usd(task.cost_usd),
            format_duration(task.duration_s),
            attempts_cell(results.get(task.id), planned.get(task.id, "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def routing_section(plan: Plan) -> str:
    """Why each task went to its agent (primary, backup for a missing key, or learned)."""
    lines = [
        f"- `{task.id}` → **{md_text(task.agent, 40)}**: {md_text(task.routing_reason, 300)}"
        + (f" (backups: {', '.join(task.backups)})" if task.backups else "")
        for task in plan.tasks
        if task.routing_reason
    ]
    return "\n".join(["### Routing", "", *lines]) if lines else ""


def cost_breakdown_section(plan: Plan, aggregate: Aggregate) -> str:
    """Tokens and cost per agent and per task type (unknown stays unknown)."""
    types = task_types(plan, aggregate)
    groups: dict[str, dict[str, list[AggregateTask]]] = {"Agent": {}, "Task type": {}}
    for task in aggregate.tasks:
        groups["Agent"].setdefault(task.agent or "-", []).append(task)
        groups["Task type"].setdefault(types.get(task.id, "?"), []).append(task)
    out = ["### Cost"]
    for title, by_key in groups.items():
        out += ["", f"| {title} | Tasks | Tokens in/out | Cost |", "|---|---:|---:|---:|"]
        for key, tasks in sorted(by_key.items()):
            known = [t.cost_usd for t in tasks if t.cost_usd is not None]
            cost = sum(known) if len(known) == len(tasks) else None
            tokens_in = sum(t.input_tokens for t in tasks)
            tokens_out = sum(t.output_tokens for t in tasks)
            out.append(
                f"| {md_text(key, 40)} | {len(tasks)} | {tokens_in:,} / {tokens_out:,} "
                f"| {format_usd(cost)} |"
            )
    return "\n".join(out)


def totals_section(totals: Totals, results: Iterable[TaskResult] = ()) -> str:
    """Tokens, cost (``unknown`` stays unknown), wall time, summed task time and speedup."""
    cost = format_cost(totals.cost_usd, simulated=totals.cost_simulated)
    if totals.cost_usd is None:
        known = [r.cost_usd for r in results if r.cost_usd is not None]
        if known:
            counted = plural(len(known), "task")
            cost += f" (at least {format_usd(sum(known))} from {counted} with known cost)"
    return "\n".join(
        [
            "### Totals",
            "",
            f"- Tokens: {totals.input_tokens:,} in / {totals.output_tokens:,} out"
            f" ({totals.cached_input_tokens:,} cached)",
            f"- Cost: {cost}"
            + (" — replayed usage priced at the configured rates" if totals.cost_simulated else ""),
            f"- Wall time: {format_duration(totals.wall_s)}"
            + (f" (verify stage {format_duration(totals.verify_s)})" if totals.verify_s else ""),
            f"- Sum of task time: {format_duration(totals.task_s_sum)}",
            f"- Speedup (task time ÷ wall time): {totals.speedup:.2f}×",
        ]
    )


def conflicts_section(aggregate: Aggregate) -> str:
    """Each conflicting patch: its files and where the patch is kept; ``""`` when none."""
    if not aggregate.conflicts:
        return ""
    lines = ["### Conflicts", ""]
    resolvers = resolved_by(aggregate)
    for conflict in aggregate.conflicts:
        files = ", ".join(md_text(path, 120) for path in conflict.files) or "(unknown files)"
        resolver = resolvers.get(conflict.task_id)
        fate = f" — resolved by `{resolver}`; the original" if resolver else " —"
        lines.append(
            f"- `{conflict.task_id}`: {files}{fate} patch kept at {md_text(conflict.patch, 120)}"
        )
    return "\n".join(lines)


def failures_section(aggregate: Aggregate) -> str:
    """Failed, skipped or over-budget tasks with their errors; ``""`` when none."""
    troubled = [t for t in aggregate.tasks if t.status != "succeeded" or t.error]
    if not troubled:
        return ""
    lines = ["### Tasks that did not succeed", ""]
    for task in troubled:
        error = md_text(task.error, 300) if task.error else "no error recorded"
        lines.append(f"- `{task.id}` ({task.status}): {error}")
    return "\n".join(lines)


#: Review comments shown in full in the summary; the rest are counted.
REVIEW_COMMENTS_SHOWN = 50


def review_section(aggregate: Aggregate) -> str:
    """The inline review comments the agents left: where, by which task, and what they say."""
    comments = aggregate.review_comments
    if not comments:
        return "Review comments: 0"
    per_task: dict[str, int] = {}
    for comment in comments:
        key = comment.task_id or "?"
        per_task[key] = per_task.get(key, 0) + 1
    parts = ", ".join(f"`{task_id}`: {count}" for task_id, count in per_task.items())
    lines = [f"### Review comments: {len(comments)} ({parts})", ""]
    for comment in comments[:REVIEW_COMMENTS_SHOWN]:
        by = f" ({comment.task_id})" if comment.task_id else ""
        lines.append(
            f"- `{md_text(comment.path, 120)}` line {comment.line}{by}: "
            f"{md_text(comment.body, 400)}"
        )
    if len(comments) > REVIEW_COMMENTS_SHOWN:
        lines.append(f"- … {plural(len(comments) - REVIEW_COMMENTS_SHOWN, 'more comment')}")
    return "\n".join(lines)


def verify_section(aggregate: Aggregate) -> str:
    """The final verify of the merged branch, its earlier rounds and the repair tasks."""
    verify = aggregate.verify
    if verify is None:
        return ""
    icon = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}.get(verify.status, "")
    command = f"`{md_text(verify.command, 120)}`" if verify.command else "no command"
    lines = ["### Verify", "", f"{icon} **{verify.status}**: {command}"]
    facts = []
    if verify.exit_code is not None:
        facts.append(f"exit code {verify.exit_code}")
    if verify.duration_s:
        facts.append(format_duration(verify.duration_s))
    if verify.culprit:
        who = "the base commit" if verify.culprit == "base" else f"`{md_text(verify.culprit, 80)}`"
        facts.append(f"first red at {who}")
    if verify.reason:
        facts.append(md_text(verify.reason, 300))
    if facts:
        lines[-1] += " — " + ", ".join(facts)
    for number, earlier in enumerate(verify.rounds, start=1):
        who = f", first red at `{md_text(earlier.culprit, 80)}`" if earlier.culprit else ""
        lines.append(f"- round {number}: {earlier.status} (exit {earlier.exit_code}){who}")
    for task in aggregate.tasks:
        if task.repair_of:
            fate = "applied" if task.applied else task.status
            lines.append(f"- `{task.id}` repaired `{md_text(task.repair_of, 80)}`: {fate}")
    if verify.status == "failed" and verify.output_tail:
        lines += ["", "<details><summary>End of the output</summary>", ""]
        lines += [code_block(verify.output_tail), "", "</details>"]
    return "\n".join(lines)


def code_block(text: str) -> str:
    """``text`` in a fenced block that nothing inside can close (and no HTML survives)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{md_block(text, 4000)}\n{fence}"


def header(aggregate: Aggregate) -> str:
    """Title line with run id and status, then the one-line reason and the branch."""
    icon = STATUS_ICONS.get(aggregate.status, "")
    lines = [
        f"## {icon} Orchestrator run `{md_text(aggregate.run_id, 80)}`: {aggregate.status}",
        "",
        md_text(aggregate.reason, 600) if aggregate.reason else "",
    ]
    if aggregate.branch:
        head = f" at `{aggregate.head_sha[:10]}`" if aggregate.head_sha else ""
        lines += ["", f"Branch: `{md_text(aggregate.branch, 120)}`{head}"]
    return "\n".join(lines)


def render_summary(plan: Plan, aggregate: Aggregate, results: Mapping[str, TaskResult]) -> str:
    """The whole job summary (``summary.md``) as Markdown."""
    sections = [header(aggregate)]
    if plan.tasks:
        sections += [
            "### Plan",
            mermaid_plan(plan, statuses_of(aggregate)),
            mermaid_gantt(aggregate, results),
            "### Tasks",
            task_table(plan, aggregate, results),
            attempts_section(aggregate, results),
            routing_section(plan),
            cost_breakdown_section(plan, aggregate),
        ]
    sections += [
        totals_section(aggregate.totals, results.values()),
        verify_section(aggregate),
        conflicts_section(aggregate),
        failures_section(aggregate),
        review_section(aggregate),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def task_job_summary(task: Task, result: TaskResult) -> str:
    """What a task's own job shows in its summary: status, agents tried, time, tokens, cost,
    and the agent's summary (escaped: agent text)."""
    icon = STATUS_ICONS.get(result.status, "")
    lines = [
        f"### {icon} Task `{md_text(task.id, 80)}` — {result.status}",
        "",
        f"{md_text(task.title, 200)} ({md_text(task.type, 40)})",
        "",
        "| agents tried | time | tokens in / out | cost |",
        "|---|---|---|---|",
        f"| {' → '.join(attempt_text(a) for a in result.attempts) or '–'} "
        f"| {format_duration(result.duration_s or 0.0)} "
        f"| {result.usage.input_tokens:,} / {result.usage.output_tokens:,} "
        f"| {format_cost(result.cost_usd)} |",
    ]
    if result.error:
        lines += ["", f"**Error:** {md_text(result.error, 500)}"]
    if result.summary:
        lines += ["", md_block(result.summary, 3000)]
    if result.files_changed:
        files = ", ".join(f"`{md_text(path, 120)}`" for path in result.files_changed[:30])
        more = len(result.files_changed) - 30
        lines += ["", f"Files changed: {files}" + (f" and {more} more" if more > 0 else "")]
    return "\n".join(lines) + "\n"
