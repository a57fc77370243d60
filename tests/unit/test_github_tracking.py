"""Tracking comment state, forged markers, diff lines, trigger confirmation, token-safe push."""

from __future__ import annotations

import base64
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.contracts import Plan, Request, Task
from orchestrator.github.client import GitHubClient
from orchestrator.github.git_push import auth_env, push
from orchestrator.github.tracking import TrackingState, decode_state, find_tracking, render_tracking
from orchestrator.github.trust import confirm_trigger
from orchestrator.gitrepo import GitError
from orchestrator.patches import diff_lines
from tests.conftest import git, make_repo, plan_of
from tests.fakes.github_fake import serve_github
from tests.fakes.loopback import Reply, serve


def plan(title: str = "Implement x") -> Plan:
    task = Task(
        id="t-1", type="code_generation", title=title, instructions="do -->", agent="codex", wave=1
    )
    return plan_of(
        run_id="1-1", status="planned", reason="1 task", created_at=datetime.now(UTC), tasks=[task]
    )


def test_state_round_trips_and_task_text_cannot_break_out() -> None:
    body = render_tracking(TrackingState("1-1", 7, "awaiting_approval", plan=plan("x --> <b>")))
    assert body.count("-->") == 2  # the marker and the data line only
    state = decode_state(body)
    assert state is not None and state.plan is not None and state.plan.tasks[0].title == "x --> <b>"
    assert "/approve" in body and "- [ ] `t-1`" in body and "```mermaid" in body


def test_state_is_redacted_before_packing() -> None:
    body = render_tracking(
        TrackingState("1-1", 7, "running", plan=plan("leak SECRETVALUE")),
        redact=lambda text: text.replace("SECRETVALUE", "[REDACTED]"),
    )
    state = decode_state(body)
    assert state is not None and state.plan is not None
    assert state.plan.tasks[0].title == "leak [REDACTED]"


def comment(cid: int, login: str, body: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        id=cid, body=body, html_url=f"u{cid}", user=types.SimpleNamespace(login=login)
    )


def test_only_the_bots_comments_count() -> None:
    body = render_tracking(TrackingState("1-1", 7, "awaiting_approval", plan=plan()))
    comments = [comment(1, "github-actions[bot]", body), comment(2, "mallory", body)]
    found = find_tracking(comments, bot_logins=["github-actions[bot]"])
    assert found is not None and found.id == 1
    assert find_tracking(comments[1:], bot_logins=["github-actions[bot]"]) is None
    assert find_tracking(comments, bot_logins=["github-actions[bot]"], run_id="2-1") is None
    tampered = body.replace("run=1-1", "run=2-1")
    assert decode_state(tampered) is None


def test_diff_lines() -> None:
    patch = "@@ -1,3 +1,4 @@\n a\n+b\n c\n d\n@@ -10 +11 @@\n-x\n+y"
    assert diff_lines(patch) == {1, 2, 3, 4, 11}
    assert diff_lines(None) == set()


def test_confirm_trigger_uses_the_permission_api() -> None:
    request = Request(source="issue_comment", act=True, reason="ok", actor="bob", trusted=True)
    with serve_github() as (fake, server):
        client = GitHubClient("Codertocat/Hello-World", token="x" * 10, api_url=server.url)
        fake.permissions["bob"] = "read"
        refused = confirm_trigger(client, request)
        fake.permissions["bob"] = "maintain"
        kept = confirm_trigger(client, request)
        untouched = confirm_trigger(client, request.model_copy(update={"act": False}))
    assert not refused.act and "'read' permission" in refused.reason
    assert kept is request and not untouched.act
    assert [c.method for c in fake.calls] == ["GET", "GET"]


def test_push_sends_the_token_as_a_header_never_in_config(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a": "1\n"})
    seen = []

    def handler(request):  # type: ignore[no-untyped-def]
        seen.append(request)
        return Reply(status=404, body=b"nope")

    token = "ghs_" + "Q" * 36
    with serve(handler) as server:
        git(repo, "remote", "add", "origin", f"{server.url}/o/r.git")
        with pytest.raises(GitError) as caught:
            push(repo, git(repo, "rev-parse", "HEAD"), "b", token=token)
    expected = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert seen and seen[0].headers.get("authorization") == f"basic {expected}"
    assert token not in str(caught.value) and expected not in str(caught.value)
    assert token not in (repo / ".git" / "config").read_text()
    assert auth_env("/some/path.git", token) == {}


def test_push_to_a_path_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a": "1\n"})
    bare = tmp_path / "r.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    sha = git(repo, "rev-parse", "HEAD")
    push(repo, sha, "work", token="t" * 12)
    assert git(bare, "rev-parse", "work") == sha


def test_the_plan_awaiting_approval_shows_its_estimated_cost_and_budget() -> None:
    estimated = plan().model_copy(
        update={"estimated_usd": 0.36, "estimate_basis": "mean of 4 code_generation tasks"}
    )
    limited = estimated.model_copy(
        update={"limits": estimated.limits.model_copy(update={"run_max_usd": 2.0})}
    )
    body = render_tracking(TrackingState("1-1", 7, "awaiting_approval", plan=limited))
    assert (
        "**Estimated cost:** ≈ $0.3600 for 1 task (tokens from mean of 4 code\\_generation tasks)"
        "; run budget $2.00." in body
    )
    assert body.index("Estimated cost") < body.index("can start this plan with `/approve`")
    unpriced = render_tracking(TrackingState("1-1", 7, "awaiting_approval", plan=plan()))
    assert "**Estimated cost:** unknown (an agent has no price) for 1 task." in unpriced


def test_a_task_finished_between_waves_shows_its_agent_time_tokens_cost_and_log() -> None:
    from orchestrator.contracts import TaskResult, Usage

    now = datetime.now(UTC)
    done = TaskResult(
        task_id="t-1",
        run_id="1-1",
        status="succeeded",
        agent="claude",
        started_at=now,
        finished_at=now,
        duration_s=83.0,
        usage=Usage(input_tokens=12_000, output_tokens=900),
        cost_usd=0.0330,
    )
    state = TrackingState("1-1", 7, "running", plan=plan(), run_url="https://github.example/r/1")
    body = render_tracking(state, results={"t-1": done})
    assert (
        "· ✅ succeeded by claude in 1m 23s · 12,000/900 tokens · $0.0330 · "
        "[log](https://github.example/r/1)" in body
    )
    # The task job recorded its own page (job.check_run_id): the line links there instead.
    job = "https://github.example/o/r/actions/runs/1/job/77"
    linked = render_tracking(state, results={"t-1": done.model_copy(update={"log_url": job})})
    assert f"$0.0330 · [log]({job})" in linked


def test_a_log_url_must_be_a_job_page() -> None:
    from pydantic import ValidationError

    from orchestrator.contracts import TaskResult

    now = datetime.now(UTC).isoformat()
    fields = {"task_id": "t", "status": "failed", "agent": None}
    fields |= {"started_at": now, "finished_at": now}
    TaskResult.model_validate(fields | {"log_url": "https://x.example/o/r/actions/runs/1/job/2"})
    for bad in ("javascript:alert(1)", "https://x.example/o/r/actions/runs/1/job/2) [x](y"):
        with pytest.raises(ValidationError, match="log_url"):
            TaskResult.model_validate(fields | {"log_url": bad})


def test_job_url_is_built_from_the_runner_environment() -> None:
    from orchestrator.github.actions import job_url

    env = {"GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "5", "ORCHESTRATOR_CHECK_RUN_ID": "9"}
    assert job_url(env) == "https://github.com/o/r/actions/runs/5/job/9"
    ghes = env | {"GITHUB_SERVER_URL": "https://ghe.example/"}
    assert job_url(ghes) == "https://ghe.example/o/r/actions/runs/5/job/9"
    # act and GHES leave job.check_run_id empty: no link rather than a broken one
    assert job_url(env | {"ORCHESTRATOR_CHECK_RUN_ID": ""}) is None
    assert job_url({"ORCHESTRATOR_CHECK_RUN_ID": "9"}) is None
