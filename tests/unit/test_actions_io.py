"""``orchestrator.github.actions``: step outputs, the summary, workflow commands (golden text)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.contracts import Aggregate, AggregateTask, Plan, Task, Totals
from orchestrator.errors import InputError
from orchestrator.github import actions
from tests.conftest import plan_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def plan_with(waves: list[list[str]], **extra: object) -> Plan:
    tasks = [
        Task(
            id=tid,
            type="code_generation",
            title=f"Do {tid}",
            instructions="x",
            agent="codex",
            wave=n,
        )
        for n, ids in enumerate(waves, start=1)
        for tid in ids
    ]
    fields: dict[str, object] = {
        "run_id": "123-1",
        "status": "planned",
        "reason": "label 'orchestrate' added by @octocat",
        "created_at": NOW,
        "tasks": tasks,
        "waves": len(waves),
        "max_parallel": 3,
    }
    fields.update(extra)
    return plan_of(**fields)


def parse_output_file(text: str) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT the way the runner does (heredoc form)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i]:
        name, delimiter = lines[i].split("<<", 1)
        end = lines.index(delimiter, i + 1)
        values[name] = "\n".join(lines[i + 1 : end])
        i = end + 1
    return values


def test_plan_outputs_golden() -> None:
    outputs = actions.plan_outputs(plan_with([["a", "b"], ["c"]], base_sha="ab" * 20))
    assert outputs == {
        "run": "true",
        "run-id": "123-1",
        "base-sha": "ab" * 20,
        "waves": "2",
        "max-parallel": "3",
        "status": "planned",
        "reason": "label 'orchestrate' added by @octocat",
        "reuse-from": "",
        "verify-extras": "",
        "matrix-1": '{"include":[{"task":"a","agent":"codex","title":"Do a","extras":""},'
        '{"task":"b","agent":"codex","title":"Do b","extras":""}]}',
        "matrix-2": '{"include":[{"task":"c","agent":"codex","title":"Do c","extras":""}]}',
        **{f"matrix-{k}": "" for k in range(3, 9)},
    }


def test_each_matrix_job_installs_its_chain_s_sdks_and_verify_its_repairers() -> None:
    from orchestrator.contracts import AgentSpec

    plan = plan_with([["a"]])
    task = plan.tasks[0].model_copy(update={"backups": ["claude"]})
    agents = {
        "codex": AgentSpec(provider="openai", model="m"),
        "claude": AgentSpec(provider="anthropic", model="m"),
        "gem": AgentSpec(provider="gemini", model="m"),
    }
    plan = plan_with([["a"]], tasks=[task], agents=agents, repair_chains={"debugging": ["gem"]})
    outputs = actions.plan_outputs(plan)
    (entry,) = json.loads(outputs["matrix-1"])["include"]
    assert entry["extras"] == "openai anthropic"
    assert outputs["verify-extras"] == "gemini"


def test_a_retry_runs_only_the_tasks_it_does_not_reuse() -> None:
    from orchestrator.contracts import Reuse

    plan = plan_with([["a", "b"], ["c"], ["d"]], base_sha="f" * 40)
    retry = plan.model_copy(update={"reuse": Reuse(workflow_run_id=77, tasks=["a", "c", "d"])})
    outputs = actions.plan_outputs(retry)
    (only,) = json.loads(outputs["matrix-1"])["include"]
    assert only["task"] == "b"
    assert outputs["matrix-2"] == outputs["matrix-3"] == ""
    # progress jobs run up to the last wave that runs: here none (wave 1 only)
    assert (outputs["waves"], outputs["reuse-from"], outputs["base-sha"]) == ("1", "77", "f" * 40)
    later = plan.model_copy(update={"reuse": Reuse(workflow_run_id=77, tasks=["a", "b", "c"])})
    assert actions.plan_outputs(later)["waves"] == "3"


def test_skipped_or_awaiting_plans_do_not_run() -> None:
    skipped = plan_with([], status="skipped", reason="commenter is not trusted\n(NONE)")
    assert actions.plan_outputs(skipped)["run"] == "false"
    assert actions.plan_outputs(skipped)["reason"] == "commenter is not trusted (NONE)"
    waiting = plan_with([["a"]], awaiting_approval=True)
    outputs = actions.plan_outputs(waiting)
    assert outputs["run"] == "false" and outputs["matrix-1"] == "" and outputs["waves"] == "0"


NINE_WAVES = [[name] for name in "abcdefghi"]


def test_too_many_waves_is_an_input_error_that_says_what_to_change() -> None:
    with pytest.raises(InputError) as caught:
        actions.plan_outputs(plan_with(NINE_WAVES))
    assert str(caught.value).endswith(
        "the plan has 9 waves; the reusable workflow has jobs for 8 (wave-1 … wave-8): set "
        "planning.max_waves to 8 or less, or split the request into runs that build on each other"
    )
    eight = actions.plan_outputs(plan_with(NINE_WAVES[:8]))
    assert eight["waves"] == "8" and all(eight[f"matrix-{k}"] for k in range(1, 9))


def test_long_titles_are_shortened_and_run_ids_made_artifact_safe() -> None:
    plan = plan_with([["a"]], run_id="20260101-120000/x:y")
    plan.tasks[0].title = "word " * 40
    outputs = actions.plan_outputs(plan)
    entry = json.loads(outputs["matrix-1"])["include"][0]
    assert len(entry["title"]) == actions.TITLE_CHARS and entry["title"].endswith("…")
    assert outputs["run-id"] == "20260101-120000-x-y"


def test_outputs_use_heredocs_with_a_random_delimiter(tmp_path: Path) -> None:
    target = tmp_path / "output"
    evil = "line one\nrun=true\nghadelimiter_x"
    assert actions.set_outputs({"reason": evil, "run": "false"}, target)
    text = target.read_text()
    assert parse_output_file(text) == {"reason": evil, "run": "false"}
    delimiter = text.split("\n", 1)[0].split("<<", 1)[1]
    assert re.fullmatch(r"ghadelimiter_[0-9a-f]{32}", delimiter)
    with pytest.raises(ValueError, match="invalid output name"):
        actions.format_outputs({"bad name": "x"})


def test_without_the_runner_files_nothing_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert actions.set_outputs({"a": "b"}) is False
    assert actions.append_summary("# x") is False


def test_workflow_commands_are_escaped() -> None:
    out = io.StringIO()
    actions.error("50% done\nnext", title="a: b, c", stream=out)
    actions.warning("w", stream=out)
    actions.add_mask("s3cret\n\nother", stream=out)
    assert out.getvalue() == (
        "::error title=a%3A b%2C c::50%25 done%0Anext\n"
        "::warning::w\n"
        "::add-mask::s3cret\n"
        "::add-mask::other\n"
    )


def aggregate(status: str = "partial") -> Aggregate:
    return Aggregate(
        run_id="123-1",
        status=status,  # type: ignore[arg-type]
        branch="orchestrator/123-1",
        tasks=[
            AggregateTask(id="a", status="succeeded", applied=True),
            AggregateTask(id="b", status="failed", error="no patch"),
            AggregateTask(id="c", status="succeeded", applied=False, conflict_files=["x.py"]),
        ],
        totals=Totals(input_tokens=100, output_tokens=20, cost_usd=0.01234),
        pr={"number": 7, "url": "https://github.com/o/r/pull/7"},
    )


def test_aggregate_outputs_golden() -> None:
    assert actions.aggregate_outputs(aggregate()) == {
        "status": "partial",
        "pr-url": "https://github.com/o/r/pull/7",
        "tokens": "120",
        "cost-usd": "0.0123",
        "branch": "orchestrator/123-1",
        "failed-tasks": "b,c",
    }
    unknown = aggregate("succeeded")
    unknown.totals.cost_usd = None
    unknown.pr = None
    outputs = actions.aggregate_outputs(unknown)
    assert outputs["cost-usd"] == "unknown" and outputs["pr-url"] == ""


def test_write_aggregate_outputs_names_every_failed_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actions.write_aggregate_outputs(
        aggregate(),
        "## summary\n",
        output_path=tmp_path / "out",
        summary_path=tmp_path / "summary",
    )
    assert (tmp_path / "summary").read_text() == "## summary\n"
    assert parse_output_file((tmp_path / "out").read_text())["status"] == "partial"
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "::error title=orchestrator task::task b failed: no patch",
        "::error title=orchestrator task::task c did not apply (conflict in x.py)",
        "::error title=orchestrator aggregate::run 123-1 partial",
    ]


def test_command_line_plan_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plan.json"
    path.write_text(plan_with([["a"]]).model_dump_json())
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    assert actions.main(["plan-outputs", "--plan", str(path)]) == 0
    assert parse_output_file((tmp_path / "out").read_text())["run"] == "true"
    bad = tmp_path / "bad.json"
    bad.write_text(plan_with(NINE_WAVES).model_dump_json())
    assert actions.main(["plan-outputs", "--plan", str(bad)]) == 2


def test_command_line_aggregate_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "aggregate.json"
    path.write_text(aggregate("succeeded").model_dump_json())
    (tmp_path / "summary.md").write_text("# run\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    code = actions.main(
        ["aggregate-outputs", "--aggregate", str(path), "--summary", str(tmp_path / "summary.md")]
    )
    assert code == 0
    assert (tmp_path / "summary").read_text() == "# run\n"
