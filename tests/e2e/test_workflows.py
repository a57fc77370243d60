"""The shipped workflows and actions, linted, and run end to end with act on real payloads.

The end-to-end tests build a throwaway user repository (a small project, the caller workflows
from ``examples/workflows/``, a replay config), whose callers say
``uses: orchestrator-dev/orchestrator/.github/workflows/orchestrate.yml@v1``; act maps that
name to a snapshot of this checkout and the pinned third-party actions to the stand-ins in
``tests/e2e/act/`` (see ``act_harness.py``). GitHub is the loopback fake
(``tests/fakes/github_fake.py``) and ``origin`` a local bare repository.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import main as cli_main
from orchestrator.contracts import Plan
from orchestrator.fileio import read_model
from orchestrator.github.tracking import TrackingState, decode_state, render_tracking
from orchestrator.metrics import RunMetrics, parse_history
from tests.conftest import WEBHOOKS, git
from tests.e2e.act_harness import (
    BIN,
    ROOT,
    ActRun,
    UserRepo,
    cache_entries,
    connect,
    make_user_repo,
    pinned_actions,
    readable,
    run_act,
    seed_cache,
    snapshot_checkout,
)
from tests.e2e.conftest import FEATURE_TASKS, write_file_turns
from tests.fakes.github_fake import FakeGitHub, serve_github

WORKFLOWS = sorted([*(ROOT / ".github" / "workflows").glob("*.yml")])
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
ACTIONS = [ROOT / "action.yml", *sorted((ROOT / "actions").glob("*/action.yml"))]
STANDIN_ACTIONS = sorted((ROOT / "tests" / "e2e" / "act").rglob("action.yml"))


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


# -- lint -------------------------------------------------------------------------------------


def test_actionlint_reports_nothing() -> None:
    proc = tool("actionlint", *map(str, WORKFLOWS + EXAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES + ACTIONS, ids=lambda p: p.name)
def test_zizmor_reports_nothing(path: Path) -> None:
    proc = tool("zizmor", "--offline", "--config", str(ROOT / ".github" / "zizmor.yml"), str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


def test_workflows_match_the_github_workflow_schema() -> None:
    files = map(str, WORKFLOWS + EXAMPLES)
    proc = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actions_match_the_github_action_schema() -> None:
    files = map(str, ACTIONS + STANDIN_ACTIONS)
    proc = tool("check-jsonschema", "--builtin-schema", "vendor.github-actions", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_third_party_actions_are_pinned_by_full_sha() -> None:
    pinned = {repo for repo, _ in pinned_actions()}
    assert pinned == {
        "actions/checkout",
        "actions/setup-python",
        "astral-sh/setup-uv",
        "actions/upload-artifact",
        "actions/download-artifact",
        "actions/cache",
    }
    for path in WORKFLOWS + EXAMPLES + ACTIONS:
        for line in path.read_text().splitlines():
            if "uses:" in line and "orchestrator-dev/orchestrator" not in line:
                target = line.split("uses:", 1)[1].strip()
                pinned = "@" in target and len(target.split("@", 1)[1].split()[0]) == 40
                assert target.startswith("./") or pinned, f"{path.name}: {line.strip()}"


def test_no_expression_inside_run_scripts() -> None:
    import yaml

    for path in WORKFLOWS + EXAMPLES + ACTIONS:
        data = yaml.safe_load(path.read_text())
        steps = [
            step for job in (data.get("jobs") or {}).values() for step in job.get("steps", [])
        ] + list((data.get("runs") or {}).get("steps", []))
        for step in steps:
            assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}"


# -- end to end with act ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``orchestrator-dev/orchestrator@v1`` holds: this checkout's files."""
    return snapshot_checkout(tmp_path_factory.mktemp("checkout") / "orchestrator")


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[FakeGitHub, str, Path]]:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    with serve_github(FakeGitHub(git_dir=remote)) as (fake, server):
        yield fake, server.url, remote


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WEBHOOKS / name).read_text())
    return copy.deepcopy(data)


def act_env(url: str) -> dict[str, str]:
    return {"GITHUB_API_URL": url, "GITHUB_SERVER_URL": "https://github.example"}


def task_jobs(run: ActRun) -> list[str]:
    return sorted(job for job in run.jobs if "/wave " in job)


def summaries(run: ActRun) -> list[str]:
    return [m for m in run.messages() if "Summary - " in m]


def report(run: ActRun, label: str) -> None:
    print(
        f"\n[act] {label}: {len(run.jobs)} jobs ({len(task_jobs(run))} task jobs), "
        f"wall {run.wall_s:.1f}s, exit {run.returncode}"
    )


def labeled_run(
    user: UserRepo, tmp: Path, checkout: Path, url: str, body: str, label: str
) -> ActRun:
    """The issue labeled ``orchestrate`` with ``body``, through the example caller; it passed."""
    event = payload("issues.labeled.1.json")
    event["label"]["name"] = "orchestrate"
    event["issue"]["body"] = body
    run = run_act(user, tmp, checkout, "issues", event, env=act_env(url))
    report(run, f"{label} (issues.labeled)")
    assert run.returncode == 0, readable(run)[-6000:]
    return run


def dispatch_run(
    user: UserRepo, tmp: Path, checkout: Path, url: str, inputs: dict[str, str], label: str
) -> ActRun:
    """A manual dispatch with ``inputs``, through the example caller; it passed."""
    event = payload("workflow_dispatch.dispatch.1.json")
    event["inputs"] = inputs
    run = run_act(
        user, tmp, checkout, "workflow_dispatch", event, env=act_env(url),
        workflow="orchestrate-dispatch.yml",
    )  # fmt: skip
    report(run, f"{label} (workflow_dispatch)")
    assert run.returncode == 0, readable(run)[-6000:]
    return run


@pytest.mark.slow
def test_labeled_issue_runs_the_whole_graph(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    tasks = copy.deepcopy(FEATURE_TASKS)
    comment = {"path": "src/pace.py", "line": 1, "body": "Guard against t == 0."}
    tasks["pace-metrics"].insert(
        2, {"tool_calls": [{"name": "add_review_comment", "arguments": comment}]}
    )
    user = make_user_repo(tmp_path, tasks)
    connect(user, remote)
    body = "Please add:\n\n" + "".join(
        f"- [ ] {item}\n" for item in ("pace metrics", "weather normalization", "jockey ratings")
    )
    run = labeled_run(user, tmp_path, checkout, url, body, "3-task plan")
    assert len(task_jobs(run)) == 3 and all(run.jobs[j] == "success" for j in task_jobs(run))
    names = run.artifact_names()
    assert sum("-task-" in n for n in names) == 3
    assert any(n.endswith("-aggregate") for n in names)
    aggregate_dir = next(run.artifacts.glob("*-aggregate"))
    result = json.loads((aggregate_dir / "aggregate.json").read_text())
    assert result["status"] == "succeeded"
    assert sorted(t["id"] for t in result["tasks"] if t["applied"]) == sorted(FEATURE_TASKS)
    assert any("Orchestrator run" in s for s in summaries(run))
    pulls = [c for c in fake.write_calls if c.method == "POST" and c.path.endswith("/pulls")]
    reviews = [c for c in fake.write_calls if c.path.endswith("/reviews")]
    assert len(pulls) == 1 and len(fake.pulls) == 1
    assert len(reviews) == 1
    assert len(fake.tracking_comments()) == 1
    # The plan job answered the trigger (👀, tracking comment); aggregate updated it in place.
    assert any(c.path.endswith("/reactions") for c in fake.write_calls)
    comment_posts = [
        c for c in fake.write_calls if c.method == "POST" and c.path.endswith("/comments")
    ]
    assert len(comment_posts) == 1
    assert any(c.method == "PATCH" and "/issues/comments/" in c.path for c in fake.write_calls)
    # the aggregate job kept the run's metrics line in the Actions cache (a new immutable key)
    (key,) = cache_entries(tmp_path)
    assert key.startswith("orchestrator-history-")
    (line,) = parse_history((cache_entries(tmp_path)[key] / "0").read_text(), key)
    assert (line.issue_number, line.pr_number) == (1, next(iter(fake.pulls)))
    assert line.run_id == result["run_id"] and line.quality is None


@pytest.mark.slow
def test_required_approval_stops_a_label_run_after_planning(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    settings = {"triggers": {"require_approval": True}}
    user = make_user_repo(tmp_path, copy.deepcopy(FEATURE_TASKS), settings=settings)
    connect(user, remote)
    body = "Please add:\n\n- [ ] pace metrics\n"
    run = labeled_run(user, tmp_path, checkout, url, body, "required approval")
    assert task_jobs(run) == [] and not any(j.endswith("aggregate") for j in run.jobs)
    (tracking,) = fake.tracking_comments()
    assert (
        "plan awaiting `/approve`" in tracking["body"]
        and "- [ ] `pace-metrics`" in tracking["body"]
    )
    assert fake.pulls == {}


@pytest.mark.slow
def test_a_planning_failure_is_said_on_the_issue(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    settings = {"planning": {"max_tasks": 2}}
    user = make_user_repo(tmp_path, copy.deepcopy(FEATURE_TASKS), settings=settings)
    connect(user, remote)
    event = payload("issues.labeled.1.json")
    event["label"]["name"] = "orchestrate"
    items = ("pace metrics", "weather normalization", "jockey ratings")
    event["issue"]["body"] = "Please add:\n\n" + "".join(f"- [ ] {item}\n" for item in items)
    run = run_act(user, tmp_path, checkout, "issues", event, env=act_env(url))
    report(run, "plan over the task cap (issues.labeled)")
    assert run.returncode != 0  # the plan job fails (exit 2) and nothing else starts
    assert [j.rsplit("/", 1)[1].strip() for j in run.jobs] == ["plan"]
    (tracking,) = fake.tracking_comments()
    state = decode_state(tracking["body"])
    assert state is not None and state.status == "failed"
    assert state.note.startswith("planning failed: ") and "planning.max_tasks" in state.note
    assert "❌" in tracking["body"] and fake.pulls == {}


@pytest.mark.slow
def test_cancel_stops_later_waves_and_the_publication(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github

    def cancelled_meanwhile(comment: dict[str, Any]) -> None:
        # What a /cancel in another workflow run does to the tracking comment while wave 1 runs.
        state = decode_state(comment["body"])
        if state is not None:
            state.status, state.note = "cancelled", "cancelled by @Codertocat"
            comment["body"] = render_tracking(state)

    fake.on_bot_comment = cancelled_meanwhile
    ids = ["design", "implement-pace-metrics", "test-pace-metrics", "integrate"]
    tasks = {task: write_file_turns(f"src/{task}.py", "X = 1\n", "done") for task in ids}
    user = make_user_repo(tmp_path, tasks)
    connect(user, remote)
    body = "/orchestrate analysis_implementation_pipeline\n\n- [ ] pace metrics\n"
    run = labeled_run(user, tmp_path, checkout, url, body, "/cancel during wave 1")
    assert [job.split("/wave ")[1] for job in task_jobs(run)] == ["1 design"]
    assert not any(job.strip().endswith("verify") for job in run.jobs)
    assert fake.pulls == {} and not [c for c in fake.write_calls if "/reviews" in c.path]
    assert git(remote, "for-each-ref", "refs/heads/orchestrator") == ""
    (tracking,) = fake.tracking_comments()
    final = decode_state(tracking["body"])
    assert final is not None and final.status == "cancelled"
    assert "🛑 cancelled" in tracking["body"]


def dispatch_tasks(user: UserRepo, tmp: Path) -> list[str]:
    """Plan the 8-task pipeline once locally to learn its task ids, then script every one."""
    out = tmp / "probe"
    code = cli_main(
        [
            "plan",
            "--workflow",
            "analysis_implementation_pipeline",
            "--task",
            "pace metrics",
            "--task",
            "weather normalization",
            "--task",
            "jockey ratings",
            "--repo",
            str(user.path),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    plan = read_model(out / "plan.json", Plan)
    script = json.loads(user.script.read_text())
    for index, task in enumerate(plan.tasks):
        script["tasks"][task.id] = write_file_turns(
            f"src/t{index}.py", f"V = {index}\n", f"{task.id} done"
        )
    # Wave 1 (design) adds the test the verify job runs; wave 3 (integrate) edits a file that
    # only exists in its tree because wave 2 wrote it: the matrix job stacked it.
    script["tasks"]["design"] = write_file_turns(
        "tests/test_stack.py", "def test_stack():\n    assert True\n", "design done"
    )
    edit = {"path": "src/t1.py", "old": "V = 1", "new": "V = 100"}
    script["tasks"]["integrate"] = [
        {"tool_calls": [{"name": "edit_file", "arguments": edit}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "integrated"}}]},
    ]
    user.script.write_text(json.dumps(script))
    return [task.id for task in plan.tasks]


@pytest.mark.slow
def test_dispatch_eight_tasks_in_three_waves(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    verify = {"command": f"{sys.executable} -m pytest -q -p no:cacheprovider tests"}
    user = make_user_repo(tmp_path, {}, settings={"verify": verify})
    connect(user, remote)
    ids = dispatch_tasks(user, tmp_path)
    assert len(ids) == 8
    inputs = {
        "workflow": "analysis_implementation_pipeline",
        "tasks": "pace metrics; weather normalization; jockey ratings",
        "request": "",
    }
    run = dispatch_run(user, tmp_path, checkout, url, inputs, "8-task plan")
    assert len(task_jobs(run)) == 8
    assert {j.split("/wave ")[1][0] for j in task_jobs(run)} == {"1", "2", "3"}
    # a small job between waves (no issue to comment on here, so it writes nothing)
    progress = sorted(job for job in run.jobs if "progress-" in job)
    assert len(progress) == 2 and all(run.jobs[job] == "success" for job in progress), run.jobs
    aggregate_dir = next(run.artifacts.glob("*-aggregate"))
    result = json.loads((aggregate_dir / "aggregate.json").read_text())
    assert result["status"] == "succeeded", result
    assert len(fake.pulls) == 1
    # Stacked waves: the wave-3 task's tree held every earlier task's work, in plan order.
    integrate = json.loads(next(run.artifacts.glob("*-task-integrate")).joinpath(
        "tasks/integrate/result.json").read_text())  # fmt: skip
    assert integrate["stacked_on"] == ids[:-1] and integrate["status"] == "succeeded"
    branch = result["branch"]
    assert git(remote, "show", f"{branch}:src/t1.py") == "V = 100"
    # The read-only verify job ran the repository's test on the merged tree before aggregate.
    assert any(j.strip().endswith("verify") and r == "success" for j, r in run.jobs.items())
    assert (
        result["verify"]["status"] == "passed" and result["verify"]["command"] == verify["command"]
    )
    assert any(name.endswith("-verify") for name in run.artifact_names())
    # Artifact traffic: a task job reads the plan and the stacks earlier waves left, never
    # another task's artifact; each task's artifact is read once by the progress job of its
    # wave (the last wave has none), once by verify and once by aggregate.
    downloads = run.downloads()
    assert not [name for job, name in downloads if job.startswith("wave-") and "-task-" in name]
    readers: dict[str, list[str]] = {}
    for job, name in downloads:
        found = re.search(r"-w(\d)-task-(.+)$", name)
        if found:
            readers.setdefault(f"{found[1]} {found[2]}", []).append(job)
    wave_of = {task: 1 if task == "design" else 3 if task == "integrate" else 2 for task in ids}
    assert sorted(readers) == sorted(f"{wave_of[task]} {task}" for task in ids)
    for key, jobs in readers.items():
        wave = int(key[0])
        expected = ["aggregate", "verify"] + ([f"progress-{wave}"] if wave < 3 else [])
        assert sorted(jobs) == sorted(expected), (key, jobs)
    stacks = [name for job, name in downloads if job.startswith("wave-") and "-stack-" in name]
    assert len(stacks) == 6 * 1 + 1 * 2  # six wave-2 tasks read stack-1; integrate stack-1 and 2


@pytest.mark.slow
def test_a_six_wave_plan_runs_wave_by_wave(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    """Six waves: jobs wave-1 … wave-6 run in order, each stacked on all before; wave-7 and
    wave-8 are skipped."""
    _fake, url, remote = github
    steps = [f"s{k}" for k in range(1, 7)]
    tasks = {
        step: write_file_turns(f"src/{step}.py", f"S = {k}\n", f"{step} done")
        for k, step in enumerate(steps, start=1)
    }
    user = make_user_repo(tmp_path, tasks)
    workflows = user.path / "configs" / "orchestration" / "workflows.yml"
    data = yaml.safe_load(workflows.read_text())
    data["workflows"]["relay"] = {
        "description": "Six steps, each after the one before.",
        "stages": [
            {
                "id": step,
                "type": "code_generation",
                "title": f"Step {step}",
                "instructions": "Write the next step.",
                "depends_on": steps[:k][-1:],
            }
            for k, step in enumerate(steps)
        ],
    }
    workflows.write_text(yaml.safe_dump(data))
    git(user.path, "commit", "-qam", "relay workflow")
    connect(user, remote)
    inputs = {"workflow": "relay", "tasks": "", "request": ""}
    run = dispatch_run(user, tmp_path, checkout, url, inputs, "6-wave plan")
    assert sorted(job.split("/wave ")[1][0] for job in task_jobs(run)) == list("123456")
    progress = sorted(job for job in run.jobs if "progress-" in job)
    assert len(progress) == 5 and all(run.jobs[job] == "success" for job in progress), run.jobs
    last = json.loads(next(run.artifacts.glob("*-task-s6")).joinpath(
        "tasks/s6/result.json").read_text())  # fmt: skip
    assert last["status"] == "succeeded" and last["stacked_on"] == steps[:-1]
    aggregate = json.loads(next(run.artifacts.glob("*-aggregate")).joinpath(
        "aggregate.json").read_text())  # fmt: skip
    assert aggregate["status"] == "succeeded", aggregate
    assert [git(remote, "show", f"{aggregate['branch']}:src/{s}.py") for s in steps] == [
        f"S = {k}" for k in range(1, 7)
    ]


def weather_fails(
    tmp: Path, checkout: Path, url: str, remote: Path
) -> tuple[UserRepo, dict[str, Any], ActRun]:
    """``/orchestrate`` of two tasks where ``weather`` changes nothing (a failure on every
    agent) and ``pace-metrics`` succeeds; the run failed."""
    tasks = {
        "pace-metrics": FEATURE_TASKS["pace-metrics"],
        "weather": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "nothing"}}]}],
    }
    user = make_user_repo(tmp, tasks)
    connect(user, remote)
    event = payload("issue_comment.created.1.json")
    event["comment"]["body"] = "/orchestrate parallel_feature_implementation: pace metrics; weather"
    run = run_act(user, tmp, checkout, "issue_comment", event, env=act_env(url))
    report(run, "2-task plan with a failing task (issue_comment)")
    assert run.returncode != 0
    return user, event, run


@pytest.mark.slow
def test_failed_task_still_aggregates_and_fails_the_run(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    _fake, url, remote = github
    _user, _event, run = weather_fails(tmp_path, checkout, url, remote)
    jobs = run.jobs
    assert [jobs[j] for j in task_jobs(run) if "weather" in j] == ["failure"]
    assert [jobs[j] for j in task_jobs(run) if "pace-metrics" in j] == ["success"]
    assert any(j.strip().endswith("aggregate") and r == "failure" for j, r in jobs.items())
    errors = [m for m in run.messages() if "::error" in m or "task weather" in m]
    assert any("weather" in m for m in errors), errors
    aggregate_dir = next(run.artifacts.glob("*-aggregate"))
    result = json.loads((aggregate_dir / "aggregate.json").read_text())
    assert result["status"] == "partial"
    assert {t["id"]: t["status"] for t in result["tasks"]}["weather"] == "failed"


@pytest.mark.slow
def test_retry_runs_the_failed_task_again_and_reuses_the_rest_in_the_same_pr(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    user, event, first = weather_fails(tmp_path, checkout, url, remote)
    (tracking,) = fake.tracking_comments()
    state = decode_state(tracking["body"])
    assert state is not None and state.status == "partial"
    assert state.extra["landed"] == ["pace-metrics"]
    (pr_number,) = fake.pulls
    # What upload-artifact stored in that workflow run is what the API serves for it.
    fake.run_artifacts[state.extra["artifacts_run_id"]] = first.artifacts
    script = json.loads(user.script.read_text())
    script["tasks"]["weather"] = write_file_turns("src/weather.py", "W = 1\n", "weather done")
    user.script.write_text(json.dumps(script))
    retry = tmp_path / "retry"
    retry.mkdir()
    event["comment"]["body"] = "/retry"
    event["comment"]["id"] += 1
    second = run_act(user, retry, checkout, "issue_comment", event, env=act_env(url))
    report(second, "/retry")
    assert second.returncode == 0, readable(second)[-6000:]
    assert [job.split("/wave ")[1] for job in task_jobs(second)] == ["1 weather"]
    assert any(job.strip().endswith("reuse") and r == "success" for job, r in second.jobs.items())
    # pace-metrics came from the first workflow run, through the API, without the token.
    assert fake.blob_requests and all("authorization" not in r.headers for r in fake.blob_requests)
    aggregate = json.loads(next(second.artifacts.glob("*-aggregate")).joinpath(
        "aggregate.json").read_text())  # fmt: skip
    assert aggregate["status"] == "succeeded", aggregate
    assert {t["id"]: t["applied"] for t in aggregate["tasks"]} == {
        "pace-metrics": True,
        "weather": True,
    }
    assert list(fake.pulls) == [pr_number]  # the same pull request, updated
    assert git(remote, "show", f"{aggregate['branch']}:src/weather.py") == "W = 1"
    assert "src/pace.py" in git(remote, "ls-tree", "-r", "--name-only", aggregate["branch"])
    (tracking,) = fake.tracking_comments()
    final = decode_state(tracking["body"])
    assert final is not None and final.status == "succeeded"
    assert "reused from workflow run" in final.note and "pace-metrics" in final.note
    assert "♻️ reused" in tracking["body"]


@pytest.mark.slow
def test_untrusted_pr_comment_ends_before_any_job_and_a_read_member_after_plan(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    user = make_user_repo(tmp_path, FEATURE_TASKS)
    connect(user, remote)
    event = payload("issue_comment.created.1.json")
    event["issue"]["pull_request"] = {
        "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
        "html_url": "https://github.com/Codertocat/Hello-World/pull/1",
    }
    event["comment"]["body"] = "/orchestrate parallel_feature_implementation: pace metrics"
    event["comment"]["author_association"] = "CONTRIBUTOR"
    run = run_act(user, tmp_path, checkout, "issue_comment", event, env=act_env(url))
    report(run, "untrusted PR comment")
    assert run.returncode == 0, readable(run)[-6000:]
    # The caller's `if:` drops it: no job, so it never joins (or replaces) the run queue.
    assert not run.jobs and fake.calls == []
    # A MEMBER whose repository permission is only "read": the plan job asks the API and stops.
    event["comment"]["author_association"] = "MEMBER"
    fake.permissions["Codertocat"] = "read"
    (tmp_path / "member").mkdir()
    run = run_act(user, tmp_path / "member", checkout, "issue_comment", event, env=act_env(url))
    report(run, "read-only member's PR comment")
    assert run.returncode == 0, readable(run)[-6000:]
    assert [j.rsplit("/", 1)[1].strip() for j in run.jobs] == ["plan"]
    assert task_jobs(run) == []
    assert [c.path.rsplit("/", 1)[1] for c in fake.calls] == ["permission"]
    assert fake.write_calls == []


@pytest.mark.slow
def test_nightly_schedule_runs_the_configured_sprint(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    settings = {
        "schedules": {
            "0 3 * * *": {
                "workflow": "parallel_feature_implementation",
                "tasks": ["pace metrics", "jockey ratings"],
            }
        }
    }
    user = make_user_repo(tmp_path, FEATURE_TASKS, settings=settings)
    connect(user, remote)
    run = run_act(
        user,
        tmp_path,
        checkout,
        "schedule",
        {"schedule": "0 3 * * *"},
        env=act_env(url),
        workflow="orchestrate-nightly.yml",
    )
    report(run, "nightly schedule")
    assert run.returncode == 0, readable(run)[-6000:]
    assert len(task_jobs(run)) == 2
    assert len(fake.pulls) == 1


@pytest.mark.slow
def test_scheduled_quality_job_updates_the_cached_history(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    user = make_user_repo(tmp_path, {})
    connect(user, remote)
    merged = fake.add_pull("orchestrator/run-a")
    fake.merge_pull(merged)
    still_open = fake.add_pull("orchestrator/run-b")
    tracking = render_tracking(TrackingState("run-a", 1, "succeeded"))
    comment = fake.add_comment(1, tracking, login=fake.bot_login, bot=True)
    fake.react(comment, "+1", login="octocat")
    fake.add_comment(1, tracking, login="mallory")  # forged: does not count
    history = "".join(
        RunMetrics(
            run_id=run_id,
            finished_at=f"2026-01-0{day}T00:00:00Z",  # type: ignore[arg-type]
            status="succeeded",
            tasks=1,
            succeeded=1,
            sequential_s=2.0,
            parallel_s=1.0,
            speedup=2.0,
            attempts=1,
            retries=0,
            fallbacks=0,
            error_rate=0.0,
            fallback_rate=0.0,
            input_tokens=10,
            output_tokens=5,
            cost_usd=0.01,
            issue_number=issue,
            pr_number=pr,
        ).model_dump_json()
        + "\n"
        for day, run_id, issue, pr in ((1, "run-a", 1, merged), (2, "run-b", None, still_open))
    )
    path = "${RUNNER_TEMP}/orchestrator-history/history.jsonl"  # as the aggregate job saves it
    seed_cache(tmp_path, "orchestrator-history-100-1", path, history)
    run = run_act(
        user,
        tmp_path,
        checkout,
        "schedule",
        {"schedule": "17 5 * * *"},
        env=act_env(url),
        workflow="orchestrate-quality.yml",
    )
    report(run, "quality (schedule)")
    assert run.returncode == 0, readable(run)[-6000:]
    assert fake.calls and all(call.method == "GET" for call in fake.calls)
    entries = cache_entries(tmp_path)
    (saved,) = set(entries) - {"orchestrator-history-100-1"}
    runs = {r.run_id: r for r in parse_history((entries[saved] / "0").read_text(), saved)}
    quality_a, quality_b = runs["run-a"].quality, runs["run-b"].quality
    assert quality_a is not None and quality_a.pr_state == "merged"
    assert quality_a.reactions == {"+1": 1}
    assert quality_b is not None and quality_b.pr_state == "open" and quality_b.reactions == {}
    summary = "\n".join(summaries(run) + run.messages())
    assert "quality: 2 runs changed" in summary
