"""``orchestrator mcp`` through the real MCP client: plan, run locally, read status and results,
dispatch to (a loopback) GitHub; errors are one-line tool errors."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from orchestrator.contracts import Aggregate, Plan
from orchestrator.mcp_server import build_server
from orchestrator.redact import reset_default_redactor
from tests.conftest import FIXTURES, git
from tests.e2e.conftest import make_replay_config, write_file_turns
from tests.fakes.loopback import Reply, Request, serve

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = "parallel_feature_implementation"
TOOLS = {"plan", "run_local", "dispatch", "status", "results"}


def call(name: str, arguments: dict[str, Any]) -> CallToolResult:
    """Call one tool of a fresh in-process server through the SDK's client."""

    async def go() -> CallToolResult:
        async with Client(build_server()) as client:
            return await client.call_tool(name, arguments)

    return asyncio.run(go())


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def assert_tool_error(result: CallToolResult, *needles: str) -> str:
    assert result.is_error, text_of(result)
    message = text_of(result)
    assert "\n" not in message and "Traceback" not in message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture
def feature_config(tmp_path: Path) -> Path:
    tasks = {
        "alpha": write_file_turns("src/alpha.py", "ALPHA = 1\n", "alpha added"),
        "beta": write_file_turns("src/beta.py", "BETA = 2\n", "beta added"),
    }
    return make_replay_config(tmp_path / "config", tasks)


def test_an_mcp_client_plans_runs_and_reads_results(repo: Path, feature_config: Path) -> None:
    """The issue's check: an MCP client plans and runs a local orchestration through the
    server and reads its results."""
    common = {
        "workflow": WORKFLOW,
        "tasks": ["alpha", "beta"],
        "repo": str(repo),
        "config": str(feature_config),
    }

    async def session() -> dict[str, CallToolResult]:
        answers: dict[str, CallToolResult] = {}
        async with Client(build_server()) as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == TOOLS
            for tool in listed.tools:
                assert tool.output_schema is not None and tool.description
            answers["plan"] = await client.call_tool("plan", common)
            answers["run"] = await client.call_tool("run_local", {**common, "max_parallel": 2})
            run_id = answers["run"].structured_content["run_id"]  # type: ignore[index]
            answers["status"] = await client.call_tool(
                "status", {"run_id": run_id, "repo": str(repo)}
            )
            answers["results"] = await client.call_tool(
                "results", {"run_id": run_id, "repo": str(repo)}
            )
            planned_id = answers["plan"].structured_content["plan"]["run_id"]  # type: ignore[index]
            answers["planned"] = await client.call_tool(
                "status", {"run_id": planned_id, "repo": str(repo)}
            )
        return answers

    answers = asyncio.run(session())
    for name, answer in answers.items():
        assert not answer.is_error, (name, text_of(answer))

    planned = answers["plan"].structured_content
    assert planned is not None
    plan = Plan.model_validate(planned["plan"])
    assert plan.status == "planned" and [t.id for t in plan.tasks] == ["alpha", "beta"]
    assert plan.base_sha == git(repo, "rev-parse", "HEAD")
    assert planned["mermaid"].startswith("```mermaid\nflowchart TD")
    assert "alpha" in planned["mermaid"] and "```mermaid" in text_of(answers["plan"])
    assert Path(planned["plan_path"]).is_file()

    run = answers["run"].structured_content
    assert run is not None and run["plan_status"] == "planned"
    aggregate = Aggregate.model_validate(run["aggregate"])
    assert aggregate.status == "succeeded" and aggregate.branch
    assert git(repo, "show", f"{aggregate.branch}:src/beta.py") == "BETA = 2"
    assert Path(run["run_dir"]).is_dir() and Path(run["summary_path"]).is_file()
    assert "classDef succeeded" in run["mermaid"]

    status = answers["status"].structured_content
    assert status is not None
    assert status["source"] == "local" and status["state"] == "finished"
    assert status["run_status"] == "succeeded"
    assert {t["id"]: t["status"] for t in status["tasks"]} == {
        "alpha": "succeeded",
        "beta": "succeeded",
    }

    results = answers["results"].structured_content
    assert results is not None
    assert Aggregate.model_validate(results["aggregate"]) == aggregate
    assert results["summary"] == Path(run["summary_path"]).read_text(encoding="utf-8")
    assert "```mermaid" in text_of(answers["results"])

    # The plan-only run has its plan and nothing else: every task is pending.
    planned_status = answers["planned"].structured_content
    assert planned_status is not None and planned_status["state"] == "planned"
    assert {t["status"] for t in planned_status["tasks"]} == {"pending"}
    # The user's checkout is untouched.
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_status_and_results_accept_a_run_folder(
    repo: Path, feature_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    run = call(
        "run_local",
        {
            "tasks": ["alpha"],
            "workflow": WORKFLOW,
            "repo": str(repo),
            "config": str(feature_config),
            "out": str(out),
        },
    )
    assert not run.is_error, text_of(run)
    assert run.structured_content is not None
    folder = run.structured_content["run_dir"]
    assert Path(folder).parent == out
    status = call("status", {"run_id": folder})
    assert status.structured_content is not None
    assert status.structured_content["tasks"][0]["status"] == "succeeded"
    results = call("results", {"run_id": folder})
    assert results.structured_content is not None
    assert results.structured_content["aggregate"]["status"] == "succeeded"


def test_errors_are_one_line_tool_errors(repo: Path, feature_config: Path, tmp_path: Path) -> None:
    assert_tool_error(call("plan", {"repo": str(repo)}), "give a request")
    assert_tool_error(
        call("run_local", {"tasks": ["a"], "max_parallel": 0}),
        "invalid arguments for run_local: max_parallel: Input should be greater than",
    )
    assert_tool_error(call("status", {}), "invalid arguments for status: run_id: Field required")
    assert_tool_error(
        call(
            "plan",
            {"workflow": "nope", "tasks": ["a"], "repo": str(repo), "config": str(feature_config)},
        ),
        "unknown workflow 'nope'",
    )
    assert_tool_error(
        call("plan", {"tasks": ["a"], "repo": str(tmp_path / "missing")}), "is not a directory"
    )
    assert_tool_error(
        call("results", {"run_id": "20990101-000000-beef", "repo": str(repo)}), "no run"
    )
    assert_tool_error(call("status", {"run_id": "bad id!", "repo": str(repo)}), "neither a run id")
    assert_tool_error(call("status", {"run_id": str(tmp_path)}), "is not a run folder")
    # A run that was planned but not run has no results yet.
    planned = call(
        "plan",
        {
            "workflow": WORKFLOW,
            "tasks": ["alpha"],
            "repo": str(repo),
            "config": str(feature_config),
        },
    )
    assert planned.structured_content is not None
    run_id = planned.structured_content["plan"]["run_id"]
    assert_tool_error(call("results", {"run_id": run_id, "repo": str(repo)}), "has not finished")
    # A dirty checkout is refused before anything runs.
    (repo / "README.md").write_text("changed\n")
    assert_tool_error(
        call("run_local", {"tasks": ["alpha"], "repo": str(repo), "config": str(feature_config)}),
        "uncommitted changes",
    )


def test_secrets_are_redacted_from_answers(
    repo: Path, feature_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-" + "q" * 32
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    reset_default_redactor()
    try:
        base = {"workflow": WORKFLOW, "repo": str(repo), "config": str(feature_config)}
        answer = call("plan", {**base, "tasks": ["alpha"], "request": f"use key {secret}"})
        # A secret that ends up in a task id cannot be redacted without breaking the contract.
        refused = call("plan", {**base, "tasks": [f"use key {secret}"]})
    finally:
        monkeypatch.delenv("OPENAI_API_KEY")
        reset_default_redactor()
    assert not answer.is_error, text_of(answer)
    assert secret not in json.dumps(answer.structured_content) and secret not in text_of(answer)
    assert "use key [REDACTED]" in json.dumps(answer.structured_content)
    message = assert_tool_error(refused, "cannot be redacted", "plan.tasks.0.id")
    assert secret not in message


# ---------------------------------------------------------------------------- GitHub


def github_example(path: str, method: str, status: str = "200") -> Any:
    spec = json.loads((FIXTURES / "github" / "openapi-subset.json").read_text())
    content = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
    return content["examples"]["default"]["value"]


def test_dispatch_starts_the_workflow(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "ghs_" + "a" * 36

    def github(request: Request) -> Reply:
        return Reply(status=204)

    with serve(github) as server:
        monkeypatch.setenv("GITHUB_TOKEN", token)
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        answer = call(
            "dispatch",
            {
                "workflow": WORKFLOW,
                "tasks": ["pace metrics", "weather"],
                "request": "add features",
                "repository": "octo-org/octo-repo",
            },
        )
    assert not answer.is_error, text_of(answer)
    [sent] = server.requests
    assert sent.method == "POST"
    assert sent.path == "/repos/octo-org/octo-repo/actions/workflows/orchestrate.yml/dispatches"
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.json() == {
        "ref": "main",
        "inputs": {
            "workflow": WORKFLOW,
            "tasks": "pace metrics\nweather",
            "request": "add features",
        },
    }
    output = answer.structured_content
    assert output is not None and output["status_code"] == 204
    assert output["workflow_run_id"] is None
    assert token not in text_of(answer)


def test_dispatch_with_other_ref_and_file_and_run_details(monkeypatch: pytest.MonkeyPatch) -> None:
    details = github_example(
        "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", "post"
    )

    with serve(lambda request: Reply(status=200, body=details)) as server:
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_" + "b" * 36)
        monkeypatch.setenv("GITHUB_API_URL", server.url + "/")
        answer = call(
            "dispatch",
            {
                "workflow": WORKFLOW,
                "repository": "o/r",
                "ref": "release",
                "workflow_file": "my flow.yml",
            },
        )
    assert not answer.is_error, text_of(answer)
    [sent] = server.requests
    assert sent.path == "/repos/o/r/actions/workflows/my%20flow.yml/dispatches"
    assert sent.json() == {"ref": "release", "inputs": {"workflow": WORKFLOW}}
    assert answer.structured_content is not None
    assert answer.structured_content["workflow_run_id"] == details["workflow_run_id"]


def test_dispatch_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    arguments = {"workflow": WORKFLOW, "repository": "o/r"}
    assert_tool_error(call("dispatch", arguments), "GITHUB_TOKEN is not set")
    token = "ghs_" + "c" * 36
    monkeypatch.setenv("GITHUB_TOKEN", token)
    assert_tool_error(call("dispatch", {**arguments, "repository": "not-a-repo"}), "OWNER/NAME")

    def refuse(request: Request) -> Reply:
        return Reply(status=404, body={"message": f"Not Found (token {token})"})

    with serve(refuse) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        message = assert_tool_error(call("dispatch", arguments), "GitHub answered 404", "Not Found")
    assert token not in message


def test_status_of_a_github_run_lists_its_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    body = github_example("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", "get")
    with serve(lambda request: Reply(status=200, body=body)) as server:
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_" + "d" * 36)
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        answer = call("status", {"run_id": "29679449", "repository": "octo-org/octo-repo"})
        assert_tool_error(
            call("status", {"run_id": "abc", "repository": "octo-org/octo-repo"}), "is a number"
        )
    assert not answer.is_error, text_of(answer)
    [sent] = server.requests
    assert sent.method == "GET"
    assert sent.path == "/repos/octo-org/octo-repo/actions/runs/29679449/jobs"
    assert sent.query["per_page"] == ["100"]
    status = answer.structured_content
    assert status is not None and status["source"] == "github"
    expected = body["jobs"][0]
    assert status["jobs"] == [
        {
            "id": expected["id"],
            "name": expected["name"],
            "status": expected["status"],
            "conclusion": expected["conclusion"],
            "started_at": expected["started_at"],
            "completed_at": expected["completed_at"],
            "html_url": expected["html_url"],
        }
    ]
    assert status["state"] == "completed" and status["run_status"] == "success"


# ---------------------------------------------------------------------------- stdio


def test_the_server_speaks_mcp_over_stdio(repo: Path, feature_config: Path, tmp_path: Path) -> None:
    """``orchestrator mcp`` (the console script) is a working stdio server: a client started
    through the SDK's stdio transport lists and calls its tools. ``ORCHESTRATOR_REPO`` is the
    repository when a call gives none."""
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "orchestrator"),
        args=["mcp"],
        env={"PYTHONPATH": str(ROOT), "ORCHESTRATOR_REPO": str(repo)},
        cwd=str(tmp_path),
    )

    async def go() -> tuple[set[str], CallToolResult]:
        async with Client(params, mode="legacy") as client:
            listed = await client.list_tools()
            answer = await client.call_tool(
                "plan", {"workflow": WORKFLOW, "tasks": ["alpha"], "config": str(feature_config)}
            )
            return {tool.name for tool in listed.tools}, answer

    names, answer = asyncio.run(go())
    assert names == TOOLS
    assert not answer.is_error, text_of(answer)
    assert answer.structured_content is not None
    plan = Plan.model_validate(answer.structured_content["plan"])
    assert plan.tasks[0].id == "alpha" and plan.base_sha == git(repo, "rev-parse", "HEAD")
    assert Path(answer.structured_content["plan_path"]).is_relative_to(repo)
