"""A command on a pull request, through the real CLI steps, against the GitHub fake.

Same repository: the plan is pinned to the PR's head, agents get its diff as data, and the
work lands on the PR's branch (fast-forward), or in a follow-up PR into that branch when it
moved meanwhile. Fork: the plan is pinned to the PR's base, nothing is pushed to the fork, the
work is a follow-up PR into the base branch (docs/github.md#pull-requests-and-forks). The same
paths run under act, through the shipped workflows, in ``test_workflows_pr.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.cli import main
from orchestrator.contracts import Aggregate, Plan
from orchestrator.fileio import read_model
from orchestrator.github.tracking import decode_state
from tests.conftest import WEBHOOKS, git
from tests.e2e.conftest import make_replay_config, write_file_turns
from tests.e2e.github_world import World, aggregate_step, plan_step

TASKS = {"pace-metrics": write_file_turns("src/pace.py", "def pace(t):\n    return 1 / t\n", "ok")}
COMMAND = "/orchestrate parallel_feature_implementation: pace metrics"


def pr_comment(tmp: Path, number: int, body: str = COMMAND) -> Path:
    """A trusted ``issue_comment`` on PR ``number``: the issue carries a ``pull_request`` key
    and nothing about the PR's head (so the plan step must ask the API)."""
    payload: dict[str, Any] = json.loads((WEBHOOKS / "issue_comment.created.1.json").read_text())
    payload["issue"]["number"] = number
    payload["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/Codertocat/Hello-World/pulls/{number}",
        "html_url": f"https://github.com/Codertocat/Hello-World/pull/{number}",
    }
    payload["comment"]["body"] = body
    path = tmp / f"event-pr-{number}-{abs(hash(body)) % 10**6}.json"
    path.write_text(json.dumps(payload))
    return path


def commit_on(repo: Path, branch: str, path: str, content: str, start: str = "main") -> str:
    """A commit writing ``path`` on ``branch`` (made from ``start``); HEAD stays on main."""
    git(repo, "checkout", "-q", "-B", branch, start)
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"{branch}: {path}")
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return sha


def plan_and_run(w: World, number: int, name: str) -> tuple[Path, Plan]:
    """The plan step on PR ``number``'s comment, then the tasks; the run folder and plan."""
    config = make_replay_config(w.tmp / f"config-{name}", TASKS)
    out = w.tmp / f"out-{name}"
    assert plan_step(w, pr_comment(w.tmp, number), "issue_comment", config, out) == 0
    plan = read_model(out / "plan.json", Plan)
    assert plan.status == "planned", plan.reason
    code = main(["run", "--plan", str(out / "plan.json"), "--repo", str(w.repo), "--out", str(out)])
    assert code == 0
    return out, plan


def same_repo_pr(w: World) -> tuple[int, str]:
    """PR ``feature`` of this repository, one commit on main; its number and head."""
    head = commit_on(w.repo, "feature", "src/app.py", "X = 2  # the PR's change\n")
    git(w.repo, "push", "-q", "origin", "feature")
    return w.fake.add_pull("feature", title="Tune X"), head


def test_a_same_repository_pr_is_planned_on_its_head_and_fast_forwarded(world: World) -> None:
    fake, remote = world.fake, world.remote
    main_sha = git(remote, "rev-parse", "main")
    number, head = same_repo_pr(world)
    out, plan = plan_and_run(world, number, "same")
    assert plan.base_sha == head != main_sha
    pull = plan.request.pull_request if plan.request else None
    assert pull is not None and not pull.fork and pull.head_ref == "feature"
    assert "--- src/app.py: modified" in pull.diff and "+X = 2  # the PR's change" in pull.diff
    # the agent's shared context held the diff, fenced as data
    transcript = (out / "tasks" / "pace-metrics" / "transcript.jsonl").read_text()
    context = next(
        json.loads(line)["text"] for line in transcript.splitlines() if '"run_context"' in line
    )
    fenced = context.split('<untrusted-input source="pull request diff">', 1)[1]
    assert "+X = 2  # the PR's change" in fenced.split("</untrusted-input>", 1)[0]
    assert aggregate_step(world, out) == 0
    aggregate = read_model(out / "aggregate.json", Aggregate)
    # the PR's branch moved forward to the work: its old head is an ancestor, nothing new opened
    assert git(remote, "rev-parse", "feature") == aggregate.head_sha
    git(remote, "merge-base", "--is-ancestor", head, "feature")
    assert git(remote, "show", "feature:src/pace.py").startswith("def pace")
    assert list(fake.pulls) == [number]
    assert not [c for c in fake.write_calls if c.method == "POST" and c.path.endswith("/pulls")]
    assert git(remote, "for-each-ref", "refs/heads/orchestrator") == ""
    assert aggregate.pr is not None and aggregate.pr["number"] == number
    (tracking,) = fake.tracking_comments()
    state = decode_state(tracking["body"])
    assert tracking["issue"] == number and state is not None and state.status == "succeeded"


def test_a_pr_branch_that_moved_gets_a_follow_up_pr_into_it(world: World) -> None:
    fake, remote = world.fake, world.remote
    number, head = same_repo_pr(world)
    out, plan = plan_and_run(world, number, "moved")
    assert plan.base_sha == head
    # someone pushes to the PR's branch while the run works
    moved = commit_on(world.repo, "feature", "NOTES.md", "later\n", start="feature")
    git(world.repo, "push", "-q", "origin", "feature")
    assert aggregate_step(world, out) == 0
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert git(remote, "rev-parse", "feature") == moved  # never rewritten
    (follow_up,) = [p for n, p in fake.pulls.items() if n != number]
    assert follow_up["head"] == aggregate.branch and follow_up["base"] == "feature"
    assert git(remote, "rev-parse", aggregate.branch or "") == aggregate.head_sha
    git(remote, "merge-base", "--is-ancestor", head, aggregate.branch or "")
    assert f"could not be added to #{number}'s branch `feature` (it moved" in follow_up["body"]
    assert "Closes #" not in follow_up["body"]
    assert aggregate.pr is not None and aggregate.pr["number"] == follow_up["number"]


def test_a_fork_pr_gets_a_follow_up_pr_and_no_push_to_the_fork(world: World) -> None:
    fake, remote = world.fake, world.remote
    main_sha = git(remote, "rev-parse", "main")
    number = fake.add_pull("patch-1", from_fork=True, title="Faster X")
    fork_head = commit_on(world.repo, "fork-work", "src/app.py", "X = 3  # from the fork\n")
    # GitHub keeps a fork PR's head in the base repository as refs/pull/N/head, nowhere else
    git(world.repo, "push", "-q", "origin", f"fork-work:refs/pull/{number}/head")
    git(world.repo, "branch", "-q", "-D", "fork-work")
    before = git(remote, "for-each-ref", "--format=%(refname) %(objectname)")
    out, plan = plan_and_run(world, number, "fork")
    assert plan.base_sha == main_sha and plan.request is not None and plan.request.is_fork
    pull = plan.request.pull_request
    assert pull is not None and pull.fork and pull.head_repo == "forker/Hello-World"
    assert pull.head_sha == fork_head and "+X = 3  # from the fork" in pull.diff
    assert aggregate_step(world, out) == 0
    aggregate = read_model(out / "aggregate.json", Aggregate)
    branch = aggregate.branch or ""
    # the one ref written is the run's branch in the base repository, without fork commits
    after = git(remote, "for-each-ref", "--format=%(refname) %(objectname)")
    assert set(after.splitlines()) - set(before.splitlines()) == {
        f"refs/heads/{branch} {aggregate.head_sha}"
    }
    ancestor = git(remote, "merge-base", fork_head, branch)
    assert ancestor == main_sha != fork_head
    assert git(remote, "show", f"{branch}:src/app.py") == "X = 1"  # the fork's change is not in
    (follow_up,) = [p for n, p in fake.pulls.items() if n != number]
    assert follow_up["head"] == branch and follow_up["base"] == "main"
    assert (
        f"Follow-up to #{number}, which comes from a fork: nothing was pushed"
        in (follow_up["body"])
    )
    (tracking,) = fake.tracking_comments()
    assert tracking["issue"] == number
