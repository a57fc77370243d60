"""Run metrics: one ``metrics.jsonl`` line per run, and a history file that accumulates them.

A line answers what the run bought and cost: completion time sequential (sum of task times)
against parallel (wall time), how busy each agent was, cost per task type, how often calls
failed or fell back to a backup agent, and — filled in later by a scheduled job — whether
people liked the result (PR merged or closed, reactions on the tracking comment).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from orchestrator.contracts import SCHEMA_VERSION, Aggregate, Contract, Plan, TaskResult
from orchestrator.errors import InputError
from orchestrator.fileio import read_text, write_atomic
from orchestrator.pricing import add_costs

METRICS_FILE = "metrics.jsonl"


class AgentUse(Contract):
    """How one agent was used in a run."""

    agent: str
    tasks: int = 0
    succeeded: int = 0
    busy_s: float = 0.0
    utilization: float = Field(default=0.0, description="busy time ÷ run wall time")
    cost_usd: float | None = 0.0


class TypeCost(Contract):
    """Cost and tokens of one task type in a run."""

    task_type: str
    tasks: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0


class TaskMetric(Contract):
    """One task's outcome: the unit routing learns from."""

    id: str
    type: str
    agent: str | None
    status: str
    duration_s: float
    cost_usd: float | None
    fell_back: bool = False
    input_tokens: int = 0
    output_tokens: int = 0


class Quality(Contract):
    """What people did with the result, gathered after the run."""

    pr_state: Literal["open", "merged", "closed"] | None = None
    reactions: dict[str, int] = Field(default_factory=dict)
    checked_at: datetime | None = None


class RunMetrics(Contract):
    """One line of ``metrics.jsonl``."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    run_id: str
    finished_at: datetime
    workflow: str | None = None
    status: str
    tasks: int
    succeeded: int
    sequential_s: float = Field(description="sum of task times: the run without parallelism")
    parallel_s: float = Field(description="wall time of the run")
    speedup: float
    attempts: int
    retries: int
    fallbacks: int = Field(description="tasks finished by an agent other than the first tried")
    error_rate: float = Field(description="failed attempts and retried calls ÷ model calls")
    fallback_rate: float
    input_tokens: int
    output_tokens: int
    cache_hits: int = 0
    cost_usd: float | None
    cost_simulated: bool = Field(
        default=False, description="the cost prices replayed usage (provider replay)"
    )
    agents: list[AgentUse] = Field(default_factory=list)
    task_types: list[TypeCost] = Field(default_factory=list)
    per_task: list[TaskMetric] = Field(default_factory=list)
    pr_url: str | None = None
    issue_number: int | None = Field(
        default=None, description="the issue or PR the run answered (holds its tracking comment)"
    )
    pr_number: int | None = Field(default=None, description="the pull request the run opened")
    quality: Quality | None = None


def run_metrics(plan: Plan, aggregate: Aggregate, results: Mapping[str, TaskResult]) -> RunMetrics:
    """Compute the metrics line of a finished run."""
    wall = aggregate.totals.wall_s
    agents: dict[str, AgentUse] = {}
    types: dict[str, TypeCost] = {}
    per_task: list[TaskMetric] = []
    attempts = retries = failed_attempts = calls = fallbacks = cache_hits = 0
    # The plan's tasks, then the repair tasks the verify stage ran (fix-*, resolve-*).
    kinds = [(task.id, task.type) for task in plan.tasks]
    kinds += [(line.id, line.type or "?") for line in aggregate.tasks if line.repair_of]
    for task_id, task_type in kinds:
        result = results.get(task_id)
        if result is None:
            per_task.append(
                TaskMetric(
                    id=task_id,
                    type=task_type,
                    agent=None,
                    status="failed",
                    duration_s=0.0,
                    cost_usd=None,
                )
            )
            continue
        fell_back = len({a.agent for a in result.attempts}) > 1
        fallbacks += fell_back and result.status == "succeeded"
        attempts += len(result.attempts)
        for attempt in result.attempts:
            retries += len(attempt.retries)
            cache_hits += attempt.cache_hits
            calls += max(attempt.calls, 1)
            failed_attempts += attempt.status == "failed"
        per_task.append(
            TaskMetric(
                id=task_id,
                type=task_type,
                agent=result.agent,
                status=result.status,
                duration_s=result.duration_s,
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                cost_usd=result.cost_usd,
                fell_back=fell_back,
            )
        )
        if result.agent:
            use = agents.setdefault(result.agent, AgentUse(agent=result.agent))
            use.tasks += 1
            use.succeeded += result.status == "succeeded"
            use.busy_s += result.duration_s
            use.cost_usd = add_costs(use.cost_usd, result.cost_usd)
        cost = types.setdefault(task_type, TypeCost(task_type=task_type))
        cost.tasks += 1
        cost.tokens += result.usage.total
        cost.cost_usd = add_costs(cost.cost_usd, result.cost_usd)
    for use in agents.values():
        use.busy_s = round(use.busy_s, 3)
        use.utilization = round(use.busy_s / wall, 3) if wall else 0.0
    ran = [m for m in per_task if m.status != "skipped"]
    return RunMetrics(
        run_id=aggregate.run_id,
        finished_at=datetime.now(UTC),
        workflow=plan.workflow,
        status=aggregate.status,
        tasks=len(per_task),  # the plan's tasks and the repair tasks
        succeeded=sum(m.status == "succeeded" for m in per_task),
        sequential_s=aggregate.totals.task_s_sum,
        parallel_s=wall,
        speedup=aggregate.totals.speedup,
        attempts=attempts,
        retries=retries,
        fallbacks=fallbacks,
        error_rate=round((failed_attempts + retries) / calls, 4) if calls else 0.0,
        fallback_rate=round(fallbacks / len(ran), 4) if ran else 0.0,
        input_tokens=aggregate.totals.input_tokens,
        output_tokens=aggregate.totals.output_tokens,
        cache_hits=cache_hits,
        cost_usd=aggregate.totals.cost_usd,
        cost_simulated=aggregate.totals.cost_simulated,
        agents=sorted(agents.values(), key=lambda a: a.agent),
        task_types=sorted(types.values(), key=lambda t: t.task_type),
        per_task=per_task,
        pr_url=str(aggregate.pr.get("url")) if aggregate.pr and aggregate.pr.get("url") else None,
        issue_number=plan.request.issue_number if plan.request else None,
        pr_number=_pr_number(aggregate.pr),
    )


def _pr_number(pr: Mapping[str, object] | None) -> int | None:
    number = pr.get("number") if pr else None
    if isinstance(number, bool):
        return None
    if isinstance(number, int):
        return number
    return int(number) if isinstance(number, str) and number.isdigit() else None


def write_metrics(out_dir: Path, metrics: RunMetrics, history: Path | None = None) -> None:
    """Write ``OUT/metrics.jsonl`` (one line) and append the line to ``history`` if given."""
    line = metrics.model_dump_json() + "\n"
    write_atomic(out_dir / METRICS_FILE, line)
    if history is not None:
        existing = history.read_text(encoding="utf-8") if history.exists() else ""
        runs = [m for m in parse_history(existing, str(history)) if m.run_id != metrics.run_id]
        text = "".join(m.model_dump_json() + "\n" for m in runs) + line
        write_atomic(history, text)


def parse_history(text: str, source: str) -> list[RunMetrics]:
    """Parse a history (JSON lines); a bad line is an ``InputError`` naming its line number."""
    runs: list[RunMetrics] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            runs.append(RunMetrics.model_validate(json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{number}", "", f"invalid JSON: {exc.msg}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{source}:{number}", field, first["msg"]) from None
    return runs


def read_history(paths: Iterable[Path]) -> list[RunMetrics]:
    """Runs from history or metrics files, oldest first, one per run id (the latest wins)."""
    by_id: dict[str, RunMetrics] = {}
    for path in paths:
        for run in parse_history(read_text(path), str(path)):
            by_id[run.run_id] = run
    return sorted(by_id.values(), key=lambda run: run.finished_at)
