"""Run metrics, the history file, `stats` rendering, and routing that learns from history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.contracts import (
    Aggregate,
    AggregateTask,
    Attempt,
    Plan,
    Retry,
    Task,
    TaskResult,
    Totals,
    Usage,
)
from orchestrator.errors import InputError
from orchestrator.metrics import (
    RunMetrics,
    TaskMetric,
    parse_history,
    read_history,
    run_metrics,
    write_metrics,
)
from orchestrator.routing import route
from orchestrator.stats import agent_type_records, render_stats
from tests.conftest import plan_of

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KEYS = {"OPENAI_API_KEY": "x" * 10, "ANTHROPIC_API_KEY": "y" * 10}


def attempt(agent: str, status: str, retries: int = 0) -> Attempt:
    return Attempt(
        agent=agent,
        provider="replay",
        model=agent,
        status=status,  # type: ignore[arg-type]
        calls=2,
        turns=2,
        started_at=T0,
        finished_at=T0,
        retries=[Retry(error="429", wait_s=1.0)] * retries,
    )


def make_run() -> tuple[Plan, Aggregate, dict[str, TaskResult]]:
    tasks = [
        Task(id="a", type="code_generation", title="a", instructions="i", agent="codex", wave=1),
        Task(id="b", type="code_generation", title="b", instructions="i", agent="codex", wave=1),
        Task(id="c", type="documentation", title="c", instructions="i", agent="claude", wave=1),
    ]
    plan = plan_of(
        run_id="r1",
        status="planned",
        reason="",
        base_sha="0" * 40,
        created_at=T0,
        workflow="w",
        tasks=tasks,
    )
    results = {
        "a": TaskResult(
            task_id="a",
            status="succeeded",
            agent="codex",
            attempts=[attempt("codex", "succeeded", retries=1)],
            usage=Usage(input_tokens=100, output_tokens=10),
            cost_usd=0.5,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=4),
            duration_s=4.0,
        ),
        "b": TaskResult(
            task_id="b",
            status="succeeded",
            agent="claude",
            attempts=[attempt("codex", "failed"), attempt("claude", "succeeded")],
            usage=Usage(input_tokens=50, output_tokens=5),
            cost_usd=0.25,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=2),
            duration_s=2.0,
        ),
        "c": TaskResult(
            task_id="c",
            status="failed",
            agent="claude",
            attempts=[attempt("claude", "failed")],
            cost_usd=None,
            started_at=T0,
            finished_at=T0,
            duration_s=2.0,
        ),
    }
    aggregate = Aggregate(
        run_id="r1",
        status="partial",
        tasks=[AggregateTask(id=k, status=v.status) for k, v in results.items()],
        totals=Totals(
            input_tokens=150,
            output_tokens=15,
            cost_usd=None,
            wall_s=4.0,
            task_s_sum=8.0,
            speedup=2.0,
        ),
    )
    return plan, aggregate, results


def test_run_metrics_counts_what_happened() -> None:
    metrics = run_metrics(*make_run())
    assert (metrics.sequential_s, metrics.parallel_s, metrics.speedup) == (8.0, 4.0, 2.0)
    assert metrics.fallbacks == 1 and metrics.fallback_rate == pytest.approx(1 / 3, abs=1e-3)
    assert metrics.retries == 1 and metrics.attempts == 4
    # 2 failed attempts + 1 retried call over 8 model calls
    assert metrics.error_rate == pytest.approx(3 / 8)
    by_agent = {a.agent: a for a in metrics.agents}
    assert by_agent["codex"].busy_s == 4.0 and by_agent["codex"].utilization == 1.0
    assert by_agent["claude"].cost_usd is None  # one of its tasks had an unknown cost
    by_type = {t.task_type: t for t in metrics.task_types}
    assert by_type["code_generation"].cost_usd == 0.75 and by_type["code_generation"].tokens == 165
    assert metrics.cost_usd is None


def test_history_appends_replaces_and_reports_bad_lines(tmp_path: Path) -> None:
    metrics = run_metrics(*make_run())
    history = tmp_path / "history.jsonl"
    write_metrics(tmp_path / "out", metrics, history)
    write_metrics(tmp_path / "out", metrics, history)  # same run again: replaced, not doubled
    assert len(history.read_text().splitlines()) == 1
    assert len((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()) == 1
    history.write_text(history.read_text() + "{not json\n")
    with pytest.raises(InputError, match=r"history\.jsonl:2"):
        read_history([history])
    with pytest.raises(InputError, match="file not found"):
        read_history([tmp_path / "missing.jsonl"])


def synthetic(run_id: str, minutes: int, outcomes: list[tuple[str, str, str, float]]) -> RunMetrics:
    per_task = [
        TaskMetric(id=f"t{i}", type=t, agent=a, status=s, duration_s=1.0, cost_usd=c)
        for i, (a, t, s, c) in enumerate(outcomes)
    ]
    return RunMetrics(
        run_id=run_id,
        finished_at=T0 + timedelta(minutes=minutes),
        status="succeeded",
        tasks=len(per_task),
        succeeded=sum(p.status == "succeeded" for p in per_task),
        sequential_s=3.0,
        parallel_s=1.5,
        speedup=2.0,
        attempts=len(per_task),
        retries=0,
        fallbacks=0,
        error_rate=0.0,
        fallback_rate=0.0,
        input_tokens=10,
        output_tokens=1,
        cost_usd=sum(c for *_, c in outcomes),
        per_task=per_task,
    )


def test_stats_renders_tables_and_charts_for_three_runs(tmp_path: Path) -> None:
    runs = [
        synthetic(
            f"r{i}",
            i,
            [
                ("codex", "code_generation", "succeeded", 0.1),
                ("claude", "documentation", "failed" if i == 1 else "succeeded", 0.2),
            ],
        )
        for i in range(3)
    ]
    text = render_stats(runs)
    assert "3 runs" in text and "| codex | code_generation | 3 | 100% |" in text
    assert "| claude | documentation | 3 | 67% |" in text
    assert "xychart-beta" in text and 'pie title "Cost by agent (USD)"' in text
    history = tmp_path / "h.jsonl"
    history.write_text("".join(r.model_dump_json() + "\n" for r in reversed(runs)))
    assert [r.run_id for r in read_history([history])] == ["r0", "r1", "r2"]
    assert parse_history("\n", "x") == []


def learning_config(on: bool = True):  # type: ignore[no-untyped-def]
    config = load_config()
    planning = config.settings.planning.model_copy(update={"learn_routing": on})
    settings = config.settings.model_copy(update={"planning": planning})
    return type(config)(config.source, config.agents, config.routes, config.workflows, settings)


def history_where(
    codex_ok: int, claude_ok: int, n: int = 6, claude_cost: float = 0.1
) -> list[RunMetrics]:
    outcomes = [
        ("codex", "code_generation", "succeeded" if i < codex_ok else "failed", 0.1)
        for i in range(n)
    ]
    outcomes += [
        ("claude", "code_generation", "succeeded" if i < claude_ok else "failed", claude_cost)
        for i in range(n)
    ]
    return [synthetic("h", 0, outcomes)]


def test_learning_is_off_by_default_and_explains_itself() -> None:
    records = agent_type_records(history_where(codex_ok=2, claude_ok=6))
    assert route("code_generation", learning_config(on=False), KEYS, records).agent == "codex"
    chosen = route("code_generation", learning_config(), KEYS, records)
    assert chosen.agent == "claude" and chosen.backups == ["codex"]
    assert "learned" in chosen.reason and "6/6" in chosen.reason and "2/6" in chosen.reason


def test_learning_needs_samples_and_a_margin() -> None:
    few = agent_type_records(history_where(codex_ok=1, claude_ok=4, n=4))
    assert route("code_generation", learning_config(), KEYS, few).agent == "codex"
    close = agent_type_records(history_where(codex_ok=19, claude_ok=20, n=20))
    assert route("code_generation", learning_config(), KEYS, close).agent == "codex"
    cheaper = agent_type_records(history_where(codex_ok=6, claude_ok=6, claude_cost=0.05))
    chosen = route("code_generation", learning_config(), KEYS, cheaper)
    assert chosen.agent == "claude" and "mean cost" in chosen.reason
