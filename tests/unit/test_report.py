"""Markdown rendering: Mermaid graph and Gantt, task table, totals, escaping of untrusted text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orchestrator.contracts import (
    Aggregate,
    AggregateTask,
    Attempt,
    Conflict,
    Plan,
    ReviewComment,
    Task,
    TaskResult,
    Totals,
)
from orchestrator.markdown import md_text, mermaid_text
from orchestrator.report import (
    attempts_cell,
    format_duration,
    format_usd,
    mermaid_gantt,
    mermaid_plan,
    node_id,
    render_summary,
    totals_section,
)
from tests.conftest import plan_of

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
EVIL = 'x"]; click t_a call alert() %% <img src=x onerror=alert(1)> `md` [y](z) |'


def task(
    task_id: str, depends: list[str] | None = None, title: str = "Title", wave: int = 0
) -> Task:
    return Task(
        id=task_id,
        type="implement",
        title=title,
        instructions="",
        agent="codex",
        depends_on=depends or [],
        wave=wave or (2 if depends else 1),
    )


def plan(*tasks: Task) -> Plan:
    return plan_of(
        run_id="run-9",
        status="planned",
        reason="r",
        base_sha="abc",
        created_at=T0,
        tasks=list(tasks),
    )


def result(
    task_id: str, *, agent: str = "codex", attempts: int = 1, cost: float | None = 0.1
) -> TaskResult:
    tries = [
        Attempt(
            agent=f"agent{n}",
            provider="replay",
            model="m",
            status="succeeded",
            started_at=T0,
            finished_at=T0,
        )
        for n in range(attempts)
    ]
    return TaskResult(
        task_id=task_id,
        status="succeeded",
        agent=agent,
        attempts=tries,
        cost_usd=cost,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=5),
        duration_s=5,
    )


def labels(diagram: str) -> list[str]:
    return re.findall(r'^\s+t_\w+\["(.*)"\]$', diagram, flags=re.M)


def test_mermaid_plan_nodes_edges_and_classes() -> None:
    p = plan(
        task("a"), task("b", ["a"]), task("c", ["a"]), task("d", ["b", "c"], wave=3), task("end")
    )
    statuses = {
        "a": "succeeded",
        "b": "failed",
        "c": "budget_exceeded",
        "d": "skipped",
        "end": "conflict",
    }

    diagram = mermaid_plan(p, statuses)

    assert diagram.startswith("```mermaid\nflowchart TD\n") and diagram.endswith("```")
    assert "t_a --> t_b" in diagram and "t_b --> t_d" in diagram and "t_c --> t_d" in diagram
    assert 't_end["end<br/>Title<br/>implement · codex"]' in diagram
    for status in ("succeeded", "failed", "budget_exceeded", "skipped", "conflict"):
        assert f"classDef {status} " in diagram
    assert "class t_a succeeded" in diagram and "class t_end conflict" in diagram
    assert "fill:#d4f7d4" in diagram  # green for succeeded


def test_mermaid_plan_before_any_result_has_no_classes() -> None:
    diagram = mermaid_plan(plan(task("a"), task("b", ["a"])), {})
    assert "classDef" not in diagram and "t_a --> t_b" in diagram
    assert mermaid_plan(plan(task("a"))) == mermaid_plan(plan(task("a")), {})


def test_mermaid_labels_cannot_break_out_or_inject_html() -> None:
    diagram = mermaid_plan(plan(task("a", title=EVIL)), {"a": "succeeded"})
    (label,) = labels(diagram)
    plain = re.sub(r"#\d+;", "", label.replace("<br/>", ""))
    for bad in '"[];<>()`%|':
        assert bad not in plain
    assert "#34;" in label and "#60;img" in label
    # The label opens once and closes once: nothing escaped the quotes.
    assert diagram.count('"]') == 1


def test_mermaid_text_and_node_ids() -> None:
    assert mermaid_text('a "b"') == "a #34;b#34;"
    assert mermaid_text("line\nbreak\x00") == "line break"
    assert mermaid_text("x" * 100).endswith("#8230;")
    assert node_id("end") == "t_end" and node_id("a-b") == "t_a_b"


def test_gantt_uses_timings_and_skips_tasks_without() -> None:
    agg = Aggregate(
        run_id="r",
        status="partial",
        tasks=[
            AggregateTask(
                id="title",
                status="succeeded",
                started_at=T0,
                finished_at=T0 + timedelta(seconds=65),
            ),
            AggregateTask(id="lost", status="failed"),
        ],
    )
    gantt = mermaid_gantt(agg, {})
    assert "dateFormat x" in gantt
    assert "1. title :done, t_title, 1714564800000, 1714564865000" in gantt
    assert "lost" not in gantt
    assert mermaid_gantt(Aggregate(run_id="r", status="failed"), {}) == ""


def test_gantt_falls_back_to_result_times() -> None:
    agg = Aggregate(
        run_id="r", status="succeeded", tasks=[AggregateTask(id="a", status="succeeded")]
    )
    assert "1. a :done, t_a, 1714564800000, 1714564805000" in mermaid_gantt(agg, {"a": result("a")})


def test_formatting_helpers() -> None:
    assert format_usd(None) == "unknown"
    assert format_usd(0) == "$0.0000"
    assert format_usd(12.5) == "$12.50"
    assert format_duration(4.2) == "4.2s"
    assert format_duration(185) == "3m 05s"
    assert format_duration(3720) == "1h 02m"
    assert md_text("a|b <b>x</b>\n*y*") == "a\\|b &lt;b&gt;x&lt;/b&gt; \\*y\\*"


def test_attempts_cell_marks_fallback() -> None:
    assert attempts_cell(None, "codex") == "0"
    assert attempts_cell(result("a"), "codex") == "1"
    assert (
        attempts_cell(result("a", agent="claude", attempts=2), "codex") == "2 (fallback → claude)"
    )


def test_totals_unknown_cost_is_never_zero() -> None:
    totals = Totals(
        input_tokens=1200, output_tokens=30, cost_usd=None, wall_s=10, task_s_sum=25, speedup=2.5
    )
    text = totals_section(totals, [result("a", cost=0.25), result("b", cost=None)])
    assert "Cost: unknown (at least $0.2500 from 1 task with known cost)" in text
    assert "1,200 in / 30 out" in text and "2.50×" in text
    assert "Cost: $0.0000" in totals_section(Totals(cost_usd=0.0))


def full_summary() -> str:
    p = plan(task("a"), task("b", ["a"], title=EVIL), task("c", ["a"]))
    agg = Aggregate(
        run_id="run-9",
        status="partial",
        reason="conflict (b): src/x.py; 1 task failed (c: artifact missing)",
        branch="orchestrator/run-9",
        base_sha="abc",
        head_sha="0123456789abcdef",
        tasks=[
            AggregateTask(
                id="a",
                status="succeeded",
                agent="codex",
                applied=True,
                commit="0123456789abcdef",
                cost_usd=0.1,
                duration_s=5,
                input_tokens=10,
                output_tokens=2,
            ),
            AggregateTask(
                id="b",
                status="succeeded",
                agent="claude",
                conflict_files=["src/x.py"],
                cost_usd=0.2,
                duration_s=7,
            ),
            AggregateTask(
                id="c",
                status="failed",
                agent="codex",
                cost_usd=None,
                error="artifact missing: tasks/c/result.json <script>",
            ),
        ],
        conflicts=[Conflict(task_id="b", files=["src/x.py"], patch="conflicts/b.patch")],
        review_comments=[ReviewComment(path="a.py", line=1, body="b", task_id="a")] * 2,
        totals=Totals(cost_usd=None, wall_s=7, task_s_sum=12, speedup=1.71),
    )
    results = {"a": result("a"), "b": result("b", agent="claude", attempts=2)}
    return render_summary(p, agg, results)


def test_render_summary_sections() -> None:
    text = full_summary()
    assert text.startswith("## ⚠️ Orchestrator run `run-9`: partial\n")
    assert "conflict \\(b\\): src/x.py" in text
    assert "Branch: `orchestrator/run-9` at `0123456789`" in text
    assert "```mermaid\nflowchart TD" in text and "```mermaid\ngantt" in text
    assert "class t_b conflict" in text and "class t_c failed" in text
    assert "| `a` | implement | codex | ✅ succeeded | applied `0123456789` | 10 / 2 |" in text
    assert "⚔️ conflict | conflict (1 file)" in text
    assert "2 (fallback → claude)" in text
    assert "- Cost: unknown" in text
    assert "- `b`: src/x.py — patch kept at conflicts/b.patch" in text
    assert "- `c` (failed): artifact missing: tasks/c/result.json &lt;script&gt;" in text
    assert "Review comments: 2 (`a`: 2)" in text
    # the comments themselves are shown, escaped, not just counted
    assert "- `a.py` line 1 (a): b" in text
    assert "<script>" not in text and "<img" not in text


def test_render_summary_for_skipped_plan() -> None:
    p = plan_of(run_id="r", status="skipped", reason="bot", created_at=T0)
    agg = Aggregate(run_id="r", status="succeeded", reason="plan skipped: bot")
    text = render_summary(p, agg, {})
    assert "plan skipped: bot" in text and "mermaid" not in text
    assert "Review comments: 0" in text


def test_summary_says_why_each_agent_was_chosen_and_what_each_cost() -> None:
    from orchestrator.contracts import Task
    from orchestrator.report import cost_breakdown_section, routing_section

    tasks = [
        Task(
            id="a",
            type="code_generation",
            title="a",
            instructions="i",
            agent="claude",
            backups=["deepseek"],
            wave=1,
            routing_reason="claude: backup for code_generation; no key for codex",
        ),
        Task(
            id="b",
            type="documentation",
            title="b",
            instructions="i",
            agent="claude",
            wave=1,
            routing_reason="claude: primary for documentation",
        ),
    ]
    plan = plan_of(run_id="r", status="planned", reason="", created_at=T0, tasks=tasks)
    agg = Aggregate(
        run_id="r",
        status="succeeded",
        tasks=[
            AggregateTask(
                id="a",
                status="succeeded",
                agent="claude",
                cost_usd=0.5,
                input_tokens=10,
                output_tokens=1,
            ),
            AggregateTask(id="b", status="succeeded", agent="claude", cost_usd=None),
        ],
    )
    routing = routing_section(plan)
    assert "`a` → **claude**: claude: backup for code\\_generation" in routing
    assert "(backups: deepseek)" in routing
    costs = cost_breakdown_section(plan, agg)
    assert "| claude | 2 | 10 / 1 | unknown |" in costs  # one unknown price → unknown
    assert "| code\\_generation | 1 | 10 / 1 | $0.5000 |" in costs
