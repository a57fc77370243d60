"""Commands on pull requests, end to end with act through the shipped workflows.

Same harness as ``test_workflows.py`` (the example caller, this checkout as
``orchestrator-dev/orchestrator@v1``, the GitHub fake, a bare ``origin``). Every ref update
``origin`` accepts is logged by a ``post-receive`` hook; the fork is a bare repository of its
own, reachable at its GitHub URL from every job's checkout, whose ``pre-receive`` hook logs and
refuses any push, so a push to the fork could not go unnoticed. The behaviour tested:
docs/github.md#pull-requests-and-forks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import Aggregate, Plan
from orchestrator.fileio import read_model
from orchestrator.github.tracking import decode_state
from tests.conftest import git
from tests.e2e import test_workflows
from tests.e2e.act_harness import ActRun, UserRepo, connect, make_user_repo, readable, run_act
from tests.e2e.conftest import FEATURE_TASKS
from tests.e2e.test_workflows import act_env, payload, report, task_jobs
from tests.fakes.github_fake import FakeGitHub

# The fixtures of test_workflows.py: this checkout as the action, the fake and a bare origin.
checkout = test_workflows.checkout
github = test_workflows.github

FORK_URL = "https://github.com/forker/Hello-World.git"
COMMAND = "/orchestrate parallel_feature_implementation: pace metrics"
DIFF_FENCE = '<untrusted-input source="pull request diff">'


def log_pushes(bare: Path, log: Path, *, refuse: bool) -> None:
    """Append every ref update pushed to ``bare`` to ``log`` (``old new ref`` lines); with
    ``refuse`` the push is also rejected (``pre-receive``), else accepted (``post-receive``)."""
    hook = bare / "hooks" / ("pre-receive" if refuse else "post-receive")
    hook.write_text(f'#!/bin/sh\ncat >> "{log}"\nexit {1 if refuse else 0}\n')
    hook.chmod(0o755)
    log.touch()


def pushed(log: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


def pr_comment(number: int, body: str = COMMAND) -> dict[str, Any]:
    """A trusted comment on PR ``number``: GitHub's ``issue_comment`` says it is on a PR (the
    issue's ``pull_request`` key) and nothing about the PR's head."""
    event = payload("issue_comment.created.1.json")
    event["issue"]["number"] = number
    event["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/Codertocat/Hello-World/pulls/{number}",
        "html_url": f"https://github.com/Codertocat/Hello-World/pull/{number}",
    }
    event["comment"]["body"] = body
    return event


def commit_on(repo: Path, branch: str, files: dict[str, str]) -> str:
    """A commit of ``files`` on a new ``branch`` from main; the checkout stays on main."""
    git(repo, "checkout", "-q", "-b", branch, "main")
    for name, content in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"{branch}: {', '.join(files)}")
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return sha


def one(run: ActRun, pattern: str) -> Path:
    """The one file of the run's artifacts matching ``pattern`` (whatever the artifact names)."""
    (found,) = sorted(run.artifacts.glob(pattern))
    return found


def checked_out(run: ActRun) -> list[str]:
    """The commits the task, verify and aggregate jobs checked out (the checkout stand-in says)."""
    return [m.split()[2] for m in run.messages() if m.strip().startswith("checked out ")]


def shared_context(run: ActRun, task: str) -> str:
    """The run-wide context message the task's agent was given (its transcript)."""
    transcript = one(run, f"*/tasks/{task}/transcript.jsonl").read_text().splitlines()
    return next(json.loads(line)["text"] for line in transcript if '"run_context"' in line)


def fenced_diff(context: str) -> str:
    assert DIFF_FENCE in context, context[:2000]
    return context.split(DIFF_FENCE, 1)[1].split("</untrusted-input>", 1)[0]


def pr_run(user: UserRepo, tmp: Path, checkout: Path, url: str, number: int, label: str) -> ActRun:
    run = run_act(user, tmp, checkout, "issue_comment", pr_comment(number), env=act_env(url))
    report(run, label)
    assert run.returncode == 0, readable(run)[-6000:]
    assert run.jobs and all(result == "success" for result in run.jobs.values()), run.jobs
    return run


@pytest.mark.slow
def test_a_same_repo_pr_command_lands_on_the_pr_branch(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    user = make_user_repo(tmp_path, {"pace-metrics": FEATURE_TASKS["pace-metrics"]})
    connect(user, remote)
    main_sha = git(remote, "rev-parse", "main")
    polite = "def greet(name):\n    return f'hi {name}'\n"
    head = commit_on(user.path, "feature/greet", {"src/app.py": polite})
    git(user.path, "push", "-q", "origin", "feature/greet")
    number = fake.add_pull("feature/greet", title="Greet politely")
    log = tmp_path / "origin-pushes.log"
    log_pushes(remote, log, refuse=False)

    run = pr_run(user, tmp_path, checkout, url, number, "same-repo PR comment")

    # planned on the PR's head, which every later job checked out (not the default branch)
    plan = read_model(one(run, "*/plan.json"), Plan)
    assert plan.base_sha == head != main_sha
    assert len(task_jobs(run)) == 1 and set(checked_out(run)) == {head}
    # the agent was given the PR's diff, fenced as data
    assert "+    return f'hi {name}'" in fenced_diff(shared_context(run, "pace-metrics"))
    # the PR's branch was fast-forwarded to the work: the one push of the run, no new PR
    aggregate = read_model(one(run, "*/aggregate.json"), Aggregate)
    assert aggregate.status == "succeeded" and aggregate.head_sha is not None
    assert pushed(log) == [(head, aggregate.head_sha, "refs/heads/feature/greet")]
    git(remote, "merge-base", "--is-ancestor", head, "feature/greet")
    assert git(remote, "show", "feature/greet:src/pace.py").startswith("def pace")
    assert list(fake.pulls) == [number]
    assert not [c for c in fake.write_calls if c.method == "POST" and c.path.endswith("/pulls")]
    assert aggregate.pr is not None and aggregate.pr["number"] == number
    # the run is tracked on the PR
    (tracking,) = fake.tracking_comments()
    state = decode_state(tracking["body"])
    assert tracking["issue"] == number and state is not None and state.status == "succeeded"


@pytest.mark.slow
def test_a_fork_pr_command_never_pushes_to_the_fork(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    fake, url, remote = github
    user = make_user_repo(tmp_path, {"pace-metrics": FEATURE_TASKS["pace-metrics"]})
    connect(user, remote)
    main_sha = git(remote, "rev-parse", "main")
    # The fork: its own repository; the PR's head is in ours only as refs/pull/N/head (GitHub's
    # way). Our clone never holds the fork's commit, so no job can check it out.
    number = fake.add_pull("patch-1", from_fork=True, title="Faster greeting")
    fork = tmp_path / "fork.git"
    git(tmp_path, "clone", "-q", "--bare", str(remote), str(fork))
    work = tmp_path / "fork-work"
    git(tmp_path, "clone", "-q", str(fork), str(work))
    fork_files = {"src/app.py": "import os\nos.system('curl evil')\n", "evil.sh": "exit 1\n"}
    fork_head = commit_on(work, "patch-1", fork_files)
    git(work, "push", "-q", "origin", "patch-1")
    git(work, "push", "-q", str(remote), f"patch-1:refs/pull/{number}/head")
    fork_refs = git(fork, "for-each-ref")
    fork_log, origin_log = tmp_path / "fork-pushes.log", tmp_path / "origin-pushes.log"
    log_pushes(fork, fork_log, refuse=True)
    log_pushes(remote, origin_log, refuse=False)
    # Every job's checkout reaches the fork at its GitHub URL: a push there would be logged.
    git(user.path, "config", f"url.{fork}.insteadOf", FORK_URL)
    git(user.path, "config", f"url.{fork}.pushInsteadOf", FORK_URL)

    run = pr_run(user, tmp_path, checkout, url, number, "fork PR comment")

    # planned on the base repository's commit, which every later job checked out
    plan = read_model(one(run, "*/plan.json"), Plan)
    assert plan.base_sha == main_sha
    assert plan.request is not None and plan.request.is_fork
    pull = plan.request.pull_request
    assert pull is not None and pull.fork and pull.head_sha == fork_head
    assert set(checked_out(run)) == {main_sha}
    # the fork's change reached the agent only as fenced data
    assert "+os.system('curl evil')" in fenced_diff(shared_context(run, "pace-metrics"))
    # nothing was pushed to the fork; our repository got the run's branch only, free of fork code
    assert fork_log.read_text() == "" and git(fork, "for-each-ref") == fork_refs
    aggregate = read_model(one(run, "*/aggregate.json"), Aggregate)
    branch = aggregate.branch
    assert aggregate.status == "succeeded" and branch and aggregate.head_sha
    assert pushed(origin_log) == [("0" * 40, aggregate.head_sha, f"refs/heads/{branch}")]
    assert git(remote, "merge-base", fork_head, branch) == main_sha
    assert git(remote, "ls-tree", "--name-only", branch, "evil.sh") == ""
    # a follow-up PR from that branch into the PR's base, saying why; tracked on the fork's PR
    (follow_up,) = [p for n, p in fake.pulls.items() if n != number]
    assert (follow_up["head"], follow_up["base"]) == (branch, "main")
    assert (
        f"Follow-up to #{number}, which comes from a fork: nothing was pushed to the fork"
        in (follow_up["body"])
    )
    (tracking,) = fake.tracking_comments()
    state = decode_state(tracking["body"])
    assert tracking["issue"] == number and state is not None and state.status == "succeeded"
    assert state.pr is not None and state.pr["number"] == follow_up["number"]
