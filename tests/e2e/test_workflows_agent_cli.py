"""A task job that runs a vendor CLI, end to end with act through the shipped workflows.

Same harness as ``test_workflows.py``. The repository's ``codex`` agent (code_generation's
primary) is Claude Code here, pointed at a loopback fake provider; the task job finds the
pinned CLI already installed (``ORCHESTRATOR_AGENT_CLIS``, the folder ``make agent-clis``
fills), runs it in the sandbox on the task's tree, and the aggregate job pushes its work.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.contracts import TaskResult
from tests.conftest import git
from tests.e2e import test_workflows
from tests.e2e.act_harness import connect, make_user_repo, readable, run_act
from tests.e2e.conftest import FEATURE_TASKS
from tests.e2e.test_workflows import act_env, payload, report, task_jobs
from tests.fakes.agent_cli_fake import AgentCliFake, Create, Replace
from tests.fakes.github_fake import FakeGitHub

# The fixtures of test_workflows.py: this checkout as the action, the fake and a bare origin.
checkout = test_workflows.checkout
github = test_workflows.github

INSTALLS = Path(__file__).resolve().parents[2] / ".cache" / "agent-clis"
KEY = "sk-ant-act-test-key-0123456789"


@pytest.mark.slow
def test_a_task_job_runs_claude_code_and_its_work_is_published(
    tmp_path: Path, checkout: Path, github: tuple[FakeGitHub, str, Path]
) -> None:
    _fake, url, remote = github
    user = make_user_repo(tmp_path, {"pace-metrics": FEATURE_TASKS["pace-metrics"]})
    agents_file = user.path / "configs" / "orchestration" / "agents.yml"
    edits = [
        Create("src/pace.py", "def pace(t):\n    return 0\n"),
        Replace("src/pace.py", "    return 0", "    return 1000 / t"),
    ]
    with AgentCliFake(edits, final_text="pace added by Claude Code") as provider:
        agents = yaml.safe_load(agents_file.read_text())
        agents["agents"]["codex"] = {
            "provider": "claude-code",
            "model": "claude-code-model",
            "api_key": "${ANTHROPIC_API_KEY}",
            "base_url": provider.base_url("claude-code"),
            "timeout_s": 120,
            "input_per_mtok": 2.0,
            "output_per_mtok": 10.0,
        }
        agents_file.write_text(yaml.safe_dump(agents))
        git(user.path, "commit", "-qam", "codex is Claude Code")
        connect(user, remote)
        event = payload("issue_comment.created.1.json")
        event["comment"]["body"] = "/orchestrate parallel_feature_implementation: pace metrics"
        env = {**act_env(url), "ORCHESTRATOR_AGENT_CLIS": str(INSTALLS)}
        secrets = {"GITHUB_TOKEN": "ghs_test_token_not_real", "ANTHROPIC_API_KEY": KEY}
        run = run_act(user, tmp_path, checkout, "issue_comment", event, env=env, secrets=secrets)
        report(run, "a task on Claude Code (issue_comment)")
        assert run.returncode == 0, readable(run)[-6000:]
        assert provider.model_calls == 3 and provider.saw(KEY)

    assert [run.jobs[j] for j in task_jobs(run)] == ["success"]
    (task_dir,) = run.artifacts.glob("*-w1-task-pace-metrics")
    result = TaskResult.model_validate_json(
        (task_dir / "tasks/pace-metrics/result.json").read_text()
    )
    (attempt,) = result.attempts
    assert (attempt.agent, attempt.provider, result.status) == ("codex", "claude-code", "succeeded")
    assert result.summary == "pace added by Claude Code" and result.turns == 3
    assert result.files_changed == ["src/pace.py"]
    # The key reached the provider and nothing the job left behind.
    for path in task_dir.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    log = readable(run)
    assert KEY not in log
    # The job found the pinned CLI where ORCHESTRATOR_AGENT_CLIS points: no npm, no cache save.
    assert "claude-code 2.1.332: already installed" in log
    assert "Run Main Keep the vendor agent CLIs" not in log
    aggregate = json.loads(
        next(run.artifacts.glob("*-aggregate")).joinpath("aggregate.json").read_text()
    )
    assert aggregate["status"] == "succeeded"
    pushed = git(remote, "show", f"{aggregate['branch']}:src/pace.py")
    assert pushed == "def pace(t):\n    return 1000 / t"
