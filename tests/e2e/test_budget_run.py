"""The run budget across matrix jobs: each task job runs alone, as in Actions, through the CLI.

Every job knows only the results of earlier waves it "downloaded" (the run folder), so
``run_max_usd`` must hold through allowances: shares of what the earlier waves left. Each
scripted turn costs $0.04 (20 000 input tokens at $2 per million).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.budget import task_budget
from orchestrator.cli import main
from orchestrator.contracts import Plan, TaskResult
from orchestrator.fileio import read_model
from orchestrator.providers.ratelimit import reset_limits
from tests.e2e.test_fallback import config_with

TURN_USD = 0.04
USAGE = {"input_tokens": 20_000, "output_tokens": 0}
TASKS = ("design", "implement-a", "test-a", "integrate")


def costly_turns(path: str) -> list[dict[str, Any]]:
    """Write a file, then finish: two turns of $0.04 each."""
    return [
        {
            "tool_calls": [{"name": "write_file", "arguments": {"path": path, "content": "x\n"}}],
            "usage": USAGE,
        },
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}], "usage": USAGE},
    ]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_limits()
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "off")


def budget_config(tmp_path: Path, **options: Any) -> Path:
    """codex and claude write a file of each task's own and finish, at $0.04 a turn."""
    config = config_with(tmp_path / "cfg", {}, **options)
    for agent in ("codex", "claude"):
        turns = {task: costly_turns(f"{task}.txt") for task in TASKS}
        (config / f"{agent}.json").write_text(json.dumps({"tasks": turns}))
    return config


def plan_pipeline(repo: Path, config: Path, out: Path) -> Plan:
    """design (claude) → implement-a, test-a (codex) → integrate (claude)."""
    args = ["plan", "--workflow", "analysis_implementation_pipeline", "--task", "a"]
    assert main([*args, "--repo", str(repo), "--config", str(config), "--out", str(out)]) == 0
    return read_model(out / "plan.json", Plan)


def matrix_job(repo: Path, config: Path, out: Path, task: str) -> TaskResult:
    """One task job: only the run folder (earlier waves' results) is shared."""
    main(["task", "--plan", str(out / "plan.json"), "--task", task, "--repo", str(repo),
          "--config", str(config)])  # fmt: skip
    return read_model(out / "tasks" / task / "result.json", TaskResult)


def run_waves(repo: Path, config: Path, out: Path) -> dict[str, TaskResult]:
    plan = plan_pipeline(repo, config, out)
    results: dict[str, TaskResult] = {}
    for wave in range(1, plan.waves + 1):
        for task in plan.wave(wave):
            results[task.id] = matrix_job(repo, config, out, task.id)
    return results


def test_matrix_jobs_hold_the_run_budget_and_later_waves_do_not_start(
    repo: Path, tmp_path: Path
) -> None:
    config = budget_config(tmp_path, limits="\nlimits:\n  run_max_usd: 0.1\n")
    results = run_waves(repo, config, tmp_path / "out")

    # Wave 1: a quarter of $0.10 (four tasks, equal estimates): stopped after one turn.
    design = results["design"]
    assert design.status == "budget_exceeded"
    assert design.cost_usd == pytest.approx(TURN_USD)
    assert "share of run_max_usd" in (design.error or "")
    # Wave 2: $0.06 left for three tasks; each gets $0.02 and stops after one turn.
    for task in ("implement-a", "test-a"):
        assert results[task].status == "budget_exceeded"
        assert results[task].cost_usd == pytest.approx(TURN_USD)
    # Wave 3: $0.12 spent by waves 1–2 reaches the $0.10 budget: the task is not started.
    integrate = results["integrate"]
    assert integrate.status == "budget_exceeded" and integrate.attempts == []
    assert integrate.error == (
        "not started: the run has spent $0.1200 of its run_max_usd $0.1000 in earlier waves"
    )
    assert integrate.cost_usd == 0


def test_without_a_budget_the_same_jobs_run_to_the_end(repo: Path, tmp_path: Path) -> None:
    config = budget_config(tmp_path)
    results = run_waves(repo, config, tmp_path / "out")
    assert {r.status for r in results.values()} == {"succeeded"}
    assert sum(r.cost_usd or 0 for r in results.values()) == pytest.approx(8 * TURN_USD)


def test_an_agent_whose_run_cap_is_spent_hands_over_to_its_backup(
    repo: Path, tmp_path: Path
) -> None:
    config = budget_config(tmp_path, extra={"claude": "max_usd_per_run: 0.13"})
    results = run_waves(repo, config, tmp_path / "out")

    # claude is in all four chains, so design gets a quarter of its $0.13: one turn (the
    # second, estimated from the first at $0.04, would pass the $0.0325 share).
    assert results["design"].status == "budget_exceeded"
    assert "claude's share of its max_usd_per_run" in (results["design"].error or "")
    # Wave 2 (codex first) leaves claude alone; in wave 3 its $0.09 left is integrate's whole
    # share (the only task left), so claude runs both turns there — and stays within its cap.
    assert [a.agent for a in results["implement-a"].attempts] == ["codex"]
    assert results["integrate"].status == "succeeded"
    assert [a.agent for a in results["integrate"].attempts] == ["claude"]
    spent_by_claude = sum(
        a.cost_usd or 0 for r in results.values() for a in r.attempts if a.agent == "claude"
    )
    assert spent_by_claude == pytest.approx(0.12)


def test_an_agent_cap_spent_in_earlier_waves_skips_the_agent(repo: Path, tmp_path: Path) -> None:
    config = budget_config(tmp_path, extra={"claude": "max_usd_per_run: 0.04"})
    results = run_waves(repo, config, tmp_path / "out")

    assert results["design"].cost_usd == pytest.approx(TURN_USD)  # claude's whole cap
    integrate = results["integrate"]
    assert [(a.agent, a.status, a.calls) for a in integrate.attempts] == [
        ("claude", "budget_exceeded", 0),
        ("codex", "succeeded", 2),
    ]
    assert integrate.status == "succeeded"
    assert integrate.attempts[0].error == (
        "claude: max_usd_per_run reached ($0.0400 spent by the run)"
    )


def test_a_share_too_small_for_one_call_hands_over_to_the_backup(
    repo: Path, tmp_path: Path
) -> None:
    # claude's $0.002 cap, shared by four tasks, cannot pay for design's first request (its
    # input alone is estimated above $0.0005): claude is not called, its backups are.
    config = budget_config(tmp_path, extra={"claude": "max_usd_per_run: 0.002"})
    results = run_waves(repo, config, tmp_path / "out")
    design = results["design"]
    first = design.attempts[0]
    assert (first.agent, first.status, first.calls) == ("claude", "budget_exceeded", 0)
    assert "claude's share of its max_usd_per_run" in (design.attempts[0].error or "")
    assert design.status == "succeeded" and design.agent == "codex"  # gemini is not scripted


def test_every_agent_of_the_chain_capped_is_budget_exceeded_not_failed(
    repo: Path, tmp_path: Path
) -> None:
    capped = {name: "max_usd_per_run: 0.0" for name in ("claude", "gemini", "codex")}
    results = run_waves(repo, budget_config(tmp_path, extra=capped), tmp_path / "out")
    design = results["design"]
    assert design.status == "budget_exceeded" and design.cost_usd == 0
    assert [a.status for a in design.attempts] == ["budget_exceeded"] * 3


def test_a_task_job_that_left_no_result_counts_as_its_whole_allowance(
    repo: Path, tmp_path: Path
) -> None:
    config = budget_config(tmp_path, limits="\nlimits:\n  run_max_usd: 0.4\n")
    out = tmp_path / "out"
    plan = plan_pipeline(repo, config, out)
    test_a = plan.task("test-a")
    # Wave 1's job died without a result: its $0.10 share (a quarter) is assumed spent, so
    # wave 2 shares $0.30 among three tasks, not $0.40.
    assert task_budget(plan, test_a, []).run_usd == pytest.approx(0.1)
    design = matrix_job(repo, config, out, "design")
    assert design.cost_usd == pytest.approx(2 * TURN_USD)
    assert task_budget(plan, test_a, [design]).run_usd == pytest.approx((0.4 - 0.08) / 3)
