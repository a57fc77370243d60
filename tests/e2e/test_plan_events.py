"""`orchestrator plan --event` on GitHub's real webhook payloads: act or skip, and why."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from orchestrator.contracts import Plan
from orchestrator.fileio import read_model
from tests.conftest import WEBHOOKS


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, f"test-{name.lower()}-value")
    for name in ("GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WEBHOOKS / name).read_text())
    return copy.deepcopy(data)


def plan_for(tmp_path: Path, repo: Path, event: dict[str, Any], event_name: str) -> Plan:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    out = tmp_path / "out"
    code = main(
        [
            "plan",
            "--event",
            str(path),
            "--event-name",
            event_name,
            "--repo",
            str(repo),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return read_model(out / "plan.json", Plan)


def test_labeled_issue_with_a_task_list_plans_one_task_per_item(tmp_path: Path, repo: Path) -> None:
    event = payload("issues.labeled.1.json")
    event["label"]["name"] = "orchestrate"
    event["issue"]["body"] = (
        "Please add:\n\n- [ ] pace metrics\n- [x] done already\n- [ ] jockey ratings\n"
    )
    result = plan_for(tmp_path, repo, event, "issues")
    assert result.status == "planned"
    assert [t.id for t in result.tasks] == ["pace-metrics", "jockey-ratings"]
    assert result.request is not None and result.request.issue_number == event["issue"]["number"]


def test_other_label_is_skipped(tmp_path: Path, repo: Path) -> None:
    event = payload("issues.labeled.1.json")
    event["label"]["name"] = "bug"
    result = plan_for(tmp_path, repo, event, "issues")
    assert result.status == "skipped" and "orchestrate" in result.reason


@pytest.mark.parametrize("association", ["OWNER", "MEMBER", "COLLABORATOR"])
def test_trusted_slash_command_plans(tmp_path: Path, repo: Path, association: str) -> None:
    event = payload("issue_comment.created.1.json")
    event["comment"]["body"] = "/orchestrate parallel_feature_implementation: pace metrics; weather"
    event["comment"]["author_association"] = association
    event["sender"]["type"] = "User"
    result = plan_for(tmp_path, repo, event, "issue_comment")
    assert result.status == "planned"
    assert [t.id for t in result.tasks] == ["pace-metrics", "weather"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"author_association": "CONTRIBUTOR"}, "not trusted"),
        ({"author_association": "NONE"}, "not trusted"),
        ({"body": "<!-- /orchestrate parallel_feature_implementation: x -->\nthanks!"}, ""),
        ({"body": "Looks good.\n/orchestrate parallel_feature_implementation: x"}, ""),
    ],
)
def test_untrusted_or_hidden_commands_are_skipped(
    tmp_path: Path, repo: Path, change: dict[str, str], why: str
) -> None:
    event = payload("issue_comment.created.1.json")
    event["comment"]["author_association"] = "OWNER"
    event["comment"]["body"] = "/orchestrate parallel_feature_implementation: x"
    event["sender"]["type"] = "User"
    event["comment"].update(change)
    result = plan_for(tmp_path, repo, event, "issue_comment")
    assert result.status == "skipped"
    assert result.tasks == []
    assert why in result.reason


def test_bot_comment_is_skipped(tmp_path: Path, repo: Path) -> None:
    event = payload("issue_comment.created.1.json")
    event["comment"]["body"] = "/orchestrate parallel_feature_implementation: x"
    event["comment"]["author_association"] = "OWNER"
    event["sender"]["type"] = "Bot"
    event["sender"]["login"] = "orchestrator[bot]"
    result = plan_for(tmp_path, repo, event, "issue_comment")
    assert result.status == "skipped" and "bot" in result.reason.lower()


def test_unconfigured_schedule_is_skipped(tmp_path: Path, repo: Path) -> None:
    result = plan_for(tmp_path, repo, {"schedule": "0 3 * * *"}, "schedule")
    assert result.status == "skipped"


def test_workflow_dispatch_inputs(tmp_path: Path, repo: Path) -> None:
    event = payload("workflow_dispatch.dispatch.1.json")
    event["inputs"] = {"workflow": "research_documentation_sprint", "tasks": "api; cli"}
    result = plan_for(tmp_path, repo, event, "workflow_dispatch")
    assert [t.id for t in result.tasks] == ["api", "cli", "docs"]


def test_skip_needs_no_git_repository(tmp_path: Path) -> None:
    event = payload("issue_comment.created.1.json")
    event["comment"]["author_association"] = "NONE"
    result = plan_for(tmp_path, tmp_path / "not-a-repo", event, "issue_comment")
    assert result.status == "skipped"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"action": "created", "comment": {', "invalid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"action": "created"}', "sender: missing"),
    ],
)
def test_malformed_payloads_exit_2_naming_the_file(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    path = tmp_path / "event.json"
    path.write_text(content)
    code = main(
        [
            "plan",
            "--event",
            str(path),
            "--event-name",
            "issue_comment",
            "--repo",
            str(repo),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"orchestrator: error: {path}") and expected in line
    assert "\n" not in line
    assert not (tmp_path / "o" / "plan.json").exists()


def test_unknown_event_and_missing_event_name(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "event.json"
    path.write_text("{}")
    assert main(["plan", "--event", str(path), "--event-name", "push", "--repo", str(repo)]) == 2
    assert "event_name" in capsys.readouterr().err
    assert main(["plan", "--event", str(path), "--repo", str(repo)]) == 2
    assert "--event-name" in capsys.readouterr().err
