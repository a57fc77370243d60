"""Working code, on a real third-party project: stacked waves, run_command, verify, repairs.

The project is toolz 1.0.0 (its sdist from PyPI, vendored in tests/fixtures/sdists/, with 180
tests of its own), committed into a temporary repository. Every agent is a replay agent, so
each scripted tool call goes through the real loop, tools, sandbox, merge engine and verify
stage; the repair tasks (``fix-<id>``, ``resolve-<id>``) are addressed by their ids in the
script like any task.
"""

from __future__ import annotations

import json
import socket
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.contracts import Aggregate, TaskResult, VerifyOutcome
from orchestrator.fileio import read_model
from tests.conftest import FIXTURES, git
from tests.e2e.conftest import make_replay_config

SDIST = FIXTURES / "sdists" / "toolz-1.0.0.tar.gz"
VERIFY = f"{sys.executable} -m pytest -q -p no:cacheprovider toolz/tests"
ITERTOOLZ = "toolz/itertoolz.py"
COUNT_LINE = "        d[item] += 1\n"


@pytest.fixture
def toolz(tmp_path: Path) -> Path:
    """toolz 1.0.0, committed as the base of a fresh repository."""
    with tarfile.open(SDIST) as archive:
        archive.extractall(tmp_path, filter="data")
    repo = tmp_path / "toolz-1.0.0"
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "toolz 1.0.0 from PyPI")
    return repo


def turns(*calls: dict[str, Any]) -> list[dict[str, Any]]:
    """One tool call per turn, then finish."""
    out = [{"tool_calls": [call]} for call in calls]
    return [*out, {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def configure(
    tmp_path: Path,
    tasks: dict[str, list[dict[str, Any]]],
    stages: list[dict[str, Any]],
    *,
    settings: dict[str, Any] | None = None,
) -> Path:
    """A replay config whose one workflow, ``work``, is ``stages``; run_command and verify on."""
    folder = make_replay_config(tmp_path / "cfg", tasks)
    workflows = yaml.safe_load((folder / "workflows.yml").read_text())
    workflows["workflows"]["work"] = {"stages": stages}
    (folder / "workflows.yml").write_text(yaml.safe_dump(workflows))
    merged = {
        "sandbox": {"run_command": True, "timeout_s": 60},
        "verify": {"command": VERIFY, "timeout_s": 120, "fix_rounds": 1},
    }
    for key, value in (settings or {}).items():
        merged[key] = {**merged.get(key, {}), **value}
    (folder / "settings.yml").write_text(yaml.safe_dump(merged))
    return folder


def stage(
    stage_id: str, *, after: list[str] | None = None, kind: str = "code_generation"
) -> dict[str, Any]:
    return {
        "id": stage_id,
        "type": kind,
        "title": f"Task {stage_id}",
        "instructions": f"Do {stage_id}.",
        "depends_on": after or [],
    }


def run(repo: Path, config: Path, out: Path) -> int:
    return main(
        [
            "run",
            "--workflow",
            "work",
            "--repo",
            str(repo),
            "--config",
            str(config),
            "--out",
            str(out),
        ]
    )


def transcript(out: Path, task_id: str) -> list[dict[str, Any]]:
    lines = (out / "tasks" / task_id / "transcript.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def tool_results(out: Path, task_id: str, name: str) -> list[str]:
    return [
        e["result"]
        for e in transcript(out, task_id)
        if e.get("kind") == "tool" and e["name"] == name
    ]


def test_wave_two_starts_from_wave_ones_files(toolz: Path, tmp_path: Path) -> None:
    tasks = {
        "extend": turns(
            call("write_file", path="toolz/extra.py", content="def double(x):\n    return 2 * x\n")
        ),
        "use-extra": turns(
            call("read_file", path="toolz/extra.py"),
            call("edit_file", path="toolz/extra.py", old="return 2 * x", new="return x + x"),
            call(
                "write_file",
                path="toolz/tests/test_extra.py",
                content=(
                    "from toolz.extra import double\n\n\n"
                    "def test_double():\n    assert double(4) == 8\n"
                ),
            ),
        ),
    }
    config = configure(tmp_path, tasks, [stage("extend"), stage("use-extra", after=["extend"])])
    out = tmp_path / "out"
    assert run(toolz, config, out) == 0
    later = read_model(out / "tasks/use-extra/result.json", TaskResult)
    assert later.stacked_on == ["extend"]
    # It read wave 1's file from its own tree, and its patch edits that file (not creates it).
    assert "return 2 * x" in tool_results(out, "use-extra", "read_file")[0]
    patch = (out / "tasks/use-extra/changes.patch").read_text()
    assert "--- a/toolz/extra.py" in patch and "new file mode" in patch  # the test file is new
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded", aggregate.reason
    log = git(toolz, "log", "--format=%s", f"main..{aggregate.branch}").splitlines()
    assert log == ["Task use-extra", "Task extend"]  # one commit per task, in plan order
    assert (
        git(toolz, "show", f"{aggregate.branch}:toolz/extra.py")
        == "def double(x):\n    return x + x"
    )
    assert aggregate.verify is not None and aggregate.verify.status == "passed"


def test_run_command_runs_in_the_sandbox(
    toolz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    monkeypatch.setenv("CANARY_API_KEY", "canary-sandbox-secret-4711")
    outside = tmp_path / "outside-the-tree.txt"
    probe = (
        "import os, socket\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    print('NET OPEN')\n"
        "except OSError as exc:\n    print('NET BLOCKED', exc)\n"
        "print('SECRET', os.environ.get('CANARY_API_KEY', 'absent'))\n"
        f"try:\n    open({str(outside)!r}, 'w').write('x')\n    print('WROTE OUTSIDE')\n"
        "except OSError as exc:\n    print('OUTSIDE BLOCKED', exc)\n"
        "open('made-by-command.txt', 'w').write('inside\\n')\n"
    )
    tasks = {
        "probe": turns(
            call("write_file", path="probe.py", content=probe),
            call("run_command", command="python3 probe.py"),
            call("run_command", command="sleep 30"),
        )
    }
    config = configure(tmp_path, tasks, [stage("probe")], settings={"sandbox": {"timeout_s": 2}})
    out = tmp_path / "out"
    try:
        run(toolz, config, out)
    finally:
        listener.close()
    probed, slept = tool_results(out, "probe", "run_command")
    assert "exit code 0" in probed and "NET BLOCKED" in probed and "NET OPEN" not in probed
    assert "SECRET absent" in probed and "canary-sandbox-secret" not in probed
    assert "OUTSIDE BLOCKED" in probed and not outside.exists()
    assert "timeout" in slept
    # The file the command made inside its tree is part of the task's work.
    assert (
        "made-by-command.txt"
        in read_model(out / "tasks/probe/result.json", TaskResult).files_changed
    )


def test_a_planted_failure_is_attributed_and_fixed(toolz: Path, tmp_path: Path) -> None:
    tasks = {
        "good": turns(call("write_file", path="toolz/good.py", content="GOOD = 1\n")),
        "breaker": turns(
            call("edit_file", path=ITERTOOLZ, old=COUNT_LINE, new="        d[item] += 2\n")
        ),
        "docs": turns(call("write_file", path="NOTES.md", content="notes\n")),
        "fix-breaker": turns(
            call("run_command", command=VERIFY),
            call("edit_file", path=ITERTOOLZ, old="        d[item] += 2\n", new=COUNT_LINE),
            call("run_command", command=VERIFY),
        ),
    }
    stages = [stage("good"), stage("breaker"), stage("docs")]
    out = tmp_path / "out"
    assert run(toolz, configure(tmp_path, tasks, stages), out) == 0
    verified = read_model(out / "verify.json", VerifyOutcome)
    assert [r.culprit for r in verified.verify.rounds] == ["breaker"]
    assert (
        verified.verify.rounds[0].status == "failed"
        and "frequencies" in verified.verify.rounds[0].output_tail
    )
    assert verified.verify.status == "passed"
    assert [(r.task_id, r.kind, r.of, r.kept) for r in verified.repairs] == [
        ("fix-breaker", "fix", "breaker", True)
    ]
    first, second = tool_results(out, "fix-breaker", "run_command")
    assert "exit code 1" in first and "exit code 0" in second
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded", aggregate.reason
    log = git(toolz, "log", "--format=%s", f"main..{aggregate.branch}").splitlines()
    assert log[0] == "Fix what broke the tests after breaker" and len(log) == 4
    assert next(t for t in aggregate.tasks if t.id == "fix-breaker").repair_of == "breaker"
    summary = (out / "summary.md").read_text()
    assert (
        "### Verify" in summary
        and "| `fix-breaker` | debugging | codex | ✅ succeeded | applied" in summary
    )
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert [(t["id"], t["type"]) for t in metrics["per_task"]][-1] == ("fix-breaker", "debugging")
    assert metrics["tasks"] == metrics["succeeded"] == 4
    assert "debugging" in {t["task_type"] for t in metrics["task_types"]}


def test_a_conflict_is_resolved_and_verified(toolz: Path, tmp_path: Path) -> None:
    def first_doc(text: str) -> dict[str, Any]:
        return call(
            "edit_file",
            path=ITERTOOLZ,
            old='    """ The first element in a sequence\n',
            new=f'    """ {text}\n',
        )

    tasks = {
        "left": turns(first_doc("The first element of a sequence (left)")),
        "right": turns(first_doc("The first item in a sequence (right)")),
        "resolve-right": turns(
            call("read_file", path=ITERTOOLZ, start_line=368, end_line=376),
            call(
                "edit_file",
                path=ITERTOOLZ,
                old='    """ The first element of a sequence (left)\n',
                new='    """ The first element of a sequence (left, right)\n',
            ),
        ),
    }
    out = tmp_path / "out"
    assert run(toolz, configure(tmp_path, tasks, [stage("left"), stage("right")]), out) == 0
    verified = read_model(out / "verify.json", VerifyOutcome)
    assert [(r.task_id, r.kept) for r in verified.repairs] == [("resolve-right", True)]
    prompt = next(
        e["text"]
        for e in transcript(out, "resolve-right")
        if e.get("kind") == "user" and not e.get("run_context")  # after the run's context
    )
    assert "<<<<<<< merged" in prompt and "(right)" in prompt and "(left)" in prompt
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded", aggregate.reason
    right = next(t for t in aggregate.tasks if t.id == "right")
    assert right.conflict_files == [ITERTOOLZ] and right.resolved_by == "resolve-right"
    text = git(toolz, "show", f"{aggregate.branch}:{ITERTOOLZ}")
    assert "The first element of a sequence (left, right)" in text


def test_a_failed_fixer_leaves_the_original_work_and_a_partial_run(
    toolz: Path, tmp_path: Path
) -> None:
    tasks = {
        "breaker": turns(
            call("edit_file", path=ITERTOOLZ, old=COUNT_LINE, new="        d[item] += 2\n")
        ),
        "fix-breaker": [{"error": {"message": "the fixer's provider is down", "retryable": False}}],
    }
    out = tmp_path / "out"
    assert run(toolz, configure(tmp_path, tasks, [stage("breaker")]), out) == 1
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "partial" and "verify failed" in aggregate.reason
    assert aggregate.verify is not None and aggregate.verify.culprit == "breaker"
    breaker, fix = aggregate.tasks  # the failed fix is listed, not merged
    assert breaker.applied and breaker.id == "breaker"
    assert fix.id == "fix-breaker" and fix.status == "failed" and fix.repair_of == "breaker"
    assert not fix.applied and fix.commit is None and fix.type == "debugging"
    assert "d[item] += 2" in git(toolz, "show", f"{aggregate.branch}:{ITERTOOLZ}")


def test_a_fix_that_does_not_turn_verify_green_is_accounted_not_merged(
    toolz: Path, tmp_path: Path
) -> None:
    """The fixer ran (and spent tokens) but verify stays red: its patch is dropped, its cost
    and its fate are still in the aggregate, the summary and the totals."""
    tasks = {
        "breaker": turns(
            call("edit_file", path=ITERTOOLZ, old=COUNT_LINE, new="        d[item] += 2\n")
        ),
        "fix-breaker": turns(call("write_file", path="toolz/unrelated.py", content="X = 1\n")),
    }
    out = tmp_path / "out"
    assert run(toolz, configure(tmp_path, tasks, [stage("breaker")]), out) == 1
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "partial"
    fix = next(t for t in aggregate.tasks if t.id == "fix-breaker")
    assert fix.status == "succeeded" and not fix.applied and fix.commit is None
    assert fix.error == "not kept: the final verify did not pass"
    spent = [
        read_model(out / "tasks" / i / "result.json", TaskResult)
        for i in ("breaker", "fix-breaker")
    ]
    assert aggregate.totals.input_tokens == sum(r.usage.input_tokens for r in spent) > 0
    assert git(toolz, "log", "--format=%s", f"main..{aggregate.branch}").splitlines() == [
        "Task breaker"
    ]
    summary = (out / "summary.md").read_text()
    assert "| `fix-breaker` | debugging |" in summary and "not kept" in summary


def test_a_base_that_is_already_red_is_named(toolz: Path, tmp_path: Path) -> None:
    (toolz / "toolz" / "tests" / "test_red.py").write_text("def test_red():\n    assert False\n")
    git(toolz, "add", "-A")
    git(toolz, "commit", "-q", "-m", "a red test")
    tasks = {"good": turns(call("write_file", path="toolz/good.py", content="GOOD = 1\n"))}
    out = tmp_path / "out"
    assert run(toolz, configure(tmp_path, tasks, [stage("good")]), out) == 1
    verified = read_model(out / "verify.json", VerifyOutcome)
    assert verified.verify.rounds[0].culprit == "base"
    assert [r.task_id for r in verified.repairs] == ["fix-base"]  # no script turns: it failed


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"verify": {"command": "no-such-program --check"}}, "no-such-program is not installed"),
        ({"verify": {"command": None}}, "no test command found"),
    ],
)
def test_a_verify_that_cannot_run_says_why(
    toolz: Path, tmp_path: Path, settings: dict[str, Any], words: str
) -> None:
    tasks = {"good": turns(call("write_file", path="toolz/good.py", content="GOOD = 1\n"))}
    config = configure(tmp_path, tasks, [stage("good")], settings=settings)
    # toolz's tests are under toolz/tests/: with no command set, detection finds pytest tests.
    if settings["verify"]["command"] is None:
        (toolz / "toolz" / "tests").rename(toolz / "toolz" / "checks")
        for test in (toolz / "toolz" / "checks").glob("test_*.py"):
            test.rename(test.with_name(test.name.replace("test_", "check_")))
        git(toolz, "add", "-A")
        git(toolz, "commit", "-q", "-m", "no pytest-style tests")
    out = tmp_path / "out"
    assert run(toolz, config, out) == 0
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.verify is not None and aggregate.verify.status == "skipped"
    assert words in aggregate.verify.reason and "verify skipped" in aggregate.reason


def test_without_a_sandbox_run_command_is_not_offered_and_verify_is_skipped(
    toolz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SANDBOX", "off")
    tasks = {
        "probe": turns(
            call("write_file", path="toolz/good.py", content="GOOD = 1\n"),
            call("run_command", command="python3 -c print(1)"),
        )
    }
    out = tmp_path / "out"
    assert run(toolz, configure(tmp_path, tasks, [stage("probe")]), out) == 0
    (reply,) = [e for e in transcript(out, "probe") if e.get("name") == "run_command"]
    assert reply["is_error"] and "not enabled" in reply["result"]
    result = read_model(out / "tasks/probe/result.json", TaskResult)
    assert any(w.startswith("run_command is not offered") for w in result.warnings)
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.verify is not None and aggregate.verify.status == "skipped"
    assert "sandbox cannot run here" in aggregate.verify.reason
