"""``orchestrator.github.artifacts``: names, the stack a wave leaves, the YAML spelling them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from orchestrator.contracts import AgentSpec
from orchestrator.errors import InputError
from orchestrator.github import artifacts
from orchestrator.runfolder import RunFolder
from tests.unit.test_actions_io import parse_output_file, plan_with
from tests.unit.test_aggregate import write_result

ROOT = Path(__file__).resolve().parents[2]


def test_names() -> None:
    assert artifacts.task_name("123-1", 2, "api") == "orchestrator-123-1-w2-task-api"
    assert artifacts.stack_name("123-1", 3) == "orchestrator-123-1-stack-3"
    assert artifacts.artifact_name("123-1", "plan") == "orchestrator-123-1-plan"


def test_stage_stack_keeps_result_and_patch_of_the_wave_only(tmp_path: Path) -> None:
    plan = plan_with([["a", "b"], ["c"]], base_sha="0" * 40)
    run = tmp_path / "run"
    write_result(run, plan, "a", b"diff a\n")
    write_result(run, plan, "c", b"diff c\n")  # wave 2: not in wave 1's stack
    (run / "tasks" / "a" / "transcript.jsonl").write_text("{}\n")
    # b's job died: no result, so it is left out (as stacking leaves it out)
    staged = artifacts.stage_stack(plan, run, 1, tmp_path / "stack")
    assert staged == ["a"]
    files = sorted(
        p.relative_to(tmp_path / "stack").as_posix()
        for p in (tmp_path / "stack").rglob("*")
        if p.is_file()
    )
    assert files == ["tasks/a/changes.patch", "tasks/a/result.json"]
    assert RunFolder(tmp_path / "stack").patch("a").read_bytes() == b"diff a\n"


def test_stage_stack_refuses_a_result_of_another_run_and_a_wave_out_of_range(
    tmp_path: Path,
) -> None:
    plan = plan_with([["a"], ["b"]], base_sha="0" * 40)
    other = plan_with([["a"], ["b"]], base_sha="0" * 40, run_id="999-1")
    write_result(tmp_path / "run", other, "a")
    with pytest.raises(InputError, match="run_id"):
        artifacts.stage_stack(plan, tmp_path / "run", 1, tmp_path / "stack")
    with pytest.raises(InputError, match="--wave"):
        artifacts.stage_stack(plan, tmp_path / "run", 3, tmp_path / "stack")


def test_stacks_complete_needs_a_result_from_every_earlier_wave(tmp_path: Path) -> None:
    plan = plan_with([["a", "b"], ["c"], ["d"]], base_sha="0" * 40)
    run = tmp_path / "run"
    assert artifacts.stacks_complete(plan, run, "a")  # wave 1 stacks on nothing
    write_result(run, plan, "b")
    assert artifacts.stacks_complete(plan, run, "c")
    assert not artifacts.stacks_complete(plan, run, "d")  # wave 2's stack is missing
    write_result(run, plan, "c")
    assert artifacts.stacks_complete(plan, run, "d")


def test_command_line_writes_the_outputs_the_actions_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_with([["a"], ["b"]], base_sha="0" * 40)
    run = tmp_path / "run"
    run.mkdir()
    (run / "plan.json").write_text(plan.model_dump_json())
    write_result(run, plan, "a")
    outputs = tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    plan_file = str(run / "plan.json")
    assert artifacts.main(["task-names", "--plan", plan_file, "--task", "b"]) == 0
    complete = ["stacks-complete", "--plan", plan_file, "--results", str(run), "--task", "b"]
    assert artifacts.main(complete) == 0
    stage = ["stage-stack", "--plan", plan_file, "--results", str(run), "--wave", "1"]
    assert artifacts.main([*stage, "--out", str(tmp_path / "stack")]) == 0
    values = parse_output_file(outputs.read_text())
    assert values == {
        "wave": "2",
        "artifact": "orchestrator-123-1-w2-task-b",
        "complete": "true",
        "name": "orchestrator-123-1-stack-1",
        "tasks": "1",
        # the chain runs no vendor CLI: the job installs none
        "agent-clis": "",
        "agent-clis-key": "",
    }
    assert artifacts.main(["task-names", "--plan", plan_file, "--task", "zzz"]) == 2
    assert "'zzz' is not a task of the plan" in capsys.readouterr().err


def test_task_names_name_the_vendor_clis_of_the_whole_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_with([["a"]], base_sha="0" * 40)
    agents = {
        "codex": AgentSpec(provider="codex-cli", model="gpt-5.5", version="0.170.0"),
        "claude": AgentSpec(provider="claude-code", model="m"),
        "loop": AgentSpec(provider="replay", model="m"),
    }
    task = plan.tasks[0].model_copy(update={"backups": ["loop", "claude"]})
    plan = plan.model_copy(update={"agents": agents, "tasks": [task]})
    (tmp_path / "plan.json").write_text(plan.model_dump_json())
    outputs = tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert artifacts.main(["task-names", "--plan", str(tmp_path / "plan.json"), "--task", "a"]) == 0
    values = parse_output_file(outputs.read_text())
    # In chain order, each at its version (the agent's, else the pinned one); the key sorted.
    assert values["agent-clis"] == "codex-cli@0.170.0 claude-code@2.1.332"
    assert values["agent-clis-key"] == "claude-code-2.1.332_codex-cli-0.170.0"


# -- the YAML spells the names as the module does ---------------------------------------------

RUN = "${{ inputs.run-id }}"


def action_artifacts(name: str) -> list[tuple[str, str]]:
    """(``name`` or ``pattern``, value) of each artifact step of ``actions/<name>/action.yml``."""
    data = yaml.safe_load((ROOT / "actions" / name / "action.yml").read_text())
    found = []
    for step in data["runs"]["steps"]:
        uses = str(step.get("uses", ""))
        if "-artifact@" in uses:
            key = "name" if "name" in step["with"] else "pattern"
            found.append((key, str(step["with"][key])))
    return found


def brace_expand(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [x for part in match.group(1).split(",") for x in brace_expand(head + part + tail)]


def matches(pattern: str, name: str) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(name, glob) for glob in brace_expand(pattern))


def test_each_job_downloads_only_what_it_reads() -> None:
    """Run id R, a three-wave plan: which artifacts each action's patterns select."""
    from orchestrator.github.reuse import REUSED_PART

    tasks = [artifacts.task_name("R", k, t) for k, t in ((1, "a"), (2, "b"), (3, "c"))]
    reused = artifacts.artifact_name("R", REUSED_PART)  # a /retry's results of an earlier run
    names = [
        artifacts.artifact_name("R", "plan"),
        *tasks,
        artifacts.stack_name("R", 1),
        artifacts.stack_name("R", 2),
        reused,
        artifacts.artifact_name("R", "verify"),
        artifacts.artifact_name("R", "aggregate"),
    ]

    def selected(action: str, wave: str = "") -> dict[str, list[str]]:
        chosen: dict[str, list[str]] = {}
        for key, value in action_artifacts(action):
            value = value.replace(RUN, "R").replace("${{ inputs.wave }}", wave)
            if key == "pattern":
                chosen[value] = [n for n in names if matches(value, n)]
        return chosen

    stacks = ["orchestrator-R-stack-1", "orchestrator-R-stack-2"]
    assert selected("task") == {
        "orchestrator-R-{reused,stack-*}": [*stacks, reused],
        # only when an earlier wave left no stack (the actions used without progress jobs)
        "orchestrator-R-{reused,w*-task-*}": [*tasks, reused],
    }
    assert ("name", f"orchestrator-{RUN}-plan") in action_artifacts("task")
    # (progress-2 runs before stack-2 exists: it downloads stack-1 only)
    (progress,) = selected("progress", "2").values()
    assert progress == ["orchestrator-R-plan", tasks[1], *stacks, reused]
    (verify,) = selected("verify").values()
    assert verify == ["orchestrator-R-plan", *tasks, reused]
    (aggregate,) = selected("aggregate").values()
    assert aggregate == [*verify, "orchestrator-R-verify"]
    assert action_artifacts("reuse") == [
        ("name", f"orchestrator-{RUN}-plan"),  # download
        ("name", "${{ steps.reuse.outputs.name }}"),  # upload: orchestrator-<run>-reused
    ]
