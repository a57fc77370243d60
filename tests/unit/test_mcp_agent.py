"""``McpAgentModel`` against a real MCP stdio server (tests/fakes/mcp_task_server.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, Task
from orchestrator.errors import InputError
from orchestrator.prompts import task_prompt
from orchestrator.providers.base import Message, ModelError, ModelResponse, ModelSettings
from orchestrator.providers.mcp_agent import (
    CHANGES_NOTE,
    CONTEXT_MARKER,
    McpAgentModel,
    server_environment,
    task_arguments,
)
from orchestrator.redact import reset_default_redactor
from tests.conftest import plan_of

FAKE_SERVER = Path(__file__).resolve().parents[1] / "fakes" / "mcp_task_server.py"
PROVIDER = "orchestrator.providers.mcp_agent:McpAgentModel"


def mcp_spec(tool: str, **overrides: Any) -> AgentSpec:
    data: dict[str, Any] = {
        "provider": "mcp",
        "model": "fake-mcp",
        "command": [sys.executable, str(FAKE_SERVER)],
        "tool": tool,
        "timeout_s": 10.0,
    }
    data.update(overrides)
    return AgentSpec.model_validate(data)


def conversation(task_id: str = "alpha", title: str = "Add alpha") -> list[Message]:
    """The conversation the loop sends: the real task prompt (``task_prompt``) of one task."""
    task = Task(
        id=task_id,
        type="code_generation",
        title=title,
        instructions="Write alpha.\nKeep it small.",
        agent="a",
        wave=1,
    )
    plan = plan_of(
        run_id="r", status="planned", reason="", created_at=datetime.now(UTC), tasks=[task]
    )
    prompt = task_prompt(plan, task, Path("/nonexistent-run-folder"))
    return [Message(role="system", text="You are an agent."), Message(role="user", text=prompt)]


def ask(model: McpAgentModel, messages: list[Message]) -> ModelResponse:
    return asyncio.run(model.request(messages, [], ModelSettings()))


def failure(model: McpAgentModel, messages: list[Message] | None = None) -> ModelError:
    with pytest.raises(ModelError) as caught:
        ask(model, messages or conversation())
    return caught.value


def test_task_arguments_come_from_the_real_task_prompt(tmp_path: Path) -> None:
    tasks = [
        Task(id="design", type="design", title="Design", instructions="D", agent="a", wave=1),
        Task(
            id="build",
            type="code_generation",
            title="Build it: now",
            instructions="Line one.\nLine two.",
            agent="a",
            depends_on=["design"],
            wave=2,
        ),
    ]
    plan = plan_of(
        run_id="r", status="planned", reason="", created_at=datetime.now(UTC), tasks=tasks
    )
    prompt = task_prompt(plan, tasks[1], tmp_path)
    messages = [Message(role="system", text="s"), Message(role="user", text=prompt)]
    arguments = task_arguments("build", messages)
    assert arguments["task_id"] == "build"
    assert arguments["title"] == "Build it: now"
    assert arguments["instructions"] == f"Line one.\nLine two.\n\n{CHANGES_NOTE}"
    assert arguments["context"].startswith(CONTEXT_MARKER) and "## design" in arguments["context"]
    assert CHANGES_NOTE not in arguments["context"]
    # A prompt of another shape is passed whole as the instructions.
    odd = task_arguments("x", [Message(role="user", text="just do it")])
    assert odd == {"task_id": "x", "title": "", "instructions": "just do it", "context": ""}


def test_a_tool_answer_becomes_change_calls_then_finish() -> None:
    model = McpAgentModel("builder", mcp_spec("implement"), "alpha")
    first = ask(model, conversation())
    assert first.text == "implemented alpha (Add alpha)"
    assert first.usage.total == 0
    assert [call.name for call in first.tool_calls] == ["write_file", "add_review_comment"]
    write = first.tool_calls[0].arguments
    assert write["path"] == "generated/alpha.py"
    assert 'TASK_ID = "alpha"' in write["content"] and "INSTRUCTION_LINES = 4" in write["content"]
    assert first.tool_calls[1].arguments == {
        "path": "generated/alpha.py",
        "line": 3,
        "body": "generated for alpha",
    }
    # The loop sends the tool results back; all accepted → finish with the summary.
    messages = [
        *conversation(),
        Message(role="assistant", text=first.text, tool_calls=first.tool_calls),
        *(
            Message(role="tool", text="ok", tool_call_id=call.id, tool_name=call.name)
            for call in first.tool_calls
        ),
    ]
    second = ask(model, messages)
    assert [(c.name, c.arguments) for c in second.tool_calls] == [
        ("finish", {"summary": "implemented alpha (Add alpha)"})
    ]


def test_a_refused_change_fails_the_attempt() -> None:
    model = McpAgentModel("builder", mcp_spec("escape"), "alpha")
    first = ask(model, conversation())
    messages = [
        *conversation(),
        Message(role="assistant", text=first.text, tool_calls=first.tool_calls),
        Message(role="tool", text="created inside.txt", tool_name="write_file"),
        Message(
            role="tool",
            text="../outside.txt: path\nleaves the repository",
            tool_name="write_file",
            is_error=True,
        ),
    ]
    error = failure(model, messages)
    assert not error.retryable
    assert "sandbox refused 1 change from MCP tool escape" in str(error)
    assert "../outside.txt: path leaves the repository" in str(error)


def test_plain_text_is_the_summary_and_finishes_at_once() -> None:
    model = McpAgentModel("builder", mcp_spec("plain"), "alpha")
    answer = ask(model, conversation())
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("finish", {"summary": "nothing to change for alpha"})
    ]


def test_review_answer_deletes_and_comments() -> None:
    model = McpAgentModel("builder", mcp_spec("review"), "alpha")
    answer = ask(model, conversation())
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("delete_file", {"path": "src/util.py"}),
        ("add_review_comment", {"path": "README.md", "line": 1, "body": "Title looks fine."}),
    ]


def test_only_declared_arguments_are_sent() -> None:
    model = McpAgentModel("builder", mcp_spec("strict"), "alpha")
    answer = ask(model, conversation())
    assert answer.text == "strict alpha"


def test_a_tool_error_is_not_retryable() -> None:
    error = failure(McpAgentModel("builder", mcp_spec("fail"), "alpha"))
    assert not error.retryable
    assert "MCP tool fail reported an error" in str(error) and "quota exhausted" in str(error)


def test_a_hanging_tool_times_out_retryably() -> None:
    model = McpAgentModel("builder", mcp_spec("hang", timeout_s=1.0), "alpha")
    started = time.monotonic()
    error = failure(model)
    elapsed = time.monotonic() - started
    assert error.retryable
    assert "MCP tool hang" in str(error) and "did not answer within 1s" in str(error)
    assert elapsed < 15


def test_an_unknown_tool_is_named_with_the_known_ones() -> None:
    error = failure(McpAgentModel("builder", mcp_spec("nope"), "alpha"))
    assert not error.retryable
    assert "has no tool 'nope'" in str(error) and "implement" in str(error)


def test_a_server_that_cannot_start_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-server"
    error = failure(McpAgentModel("builder", mcp_spec("x", command=[str(missing)]), "alpha"))
    assert not error.retryable
    assert f"cannot start MCP server `{missing}`" in str(error)

    crash = [sys.executable, "-c", "import sys; print('bad config', file=sys.stderr); sys.exit(3)"]
    error = failure(McpAgentModel("builder", mcp_spec("x", command=crash), "alpha"))
    assert not error.retryable
    assert "failed to start" in str(error) and sys.executable in str(error)
    assert "(stderr: bad config)" in str(error)


def test_the_server_gets_a_filtered_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-" + "s" * 40
    agent_token = "agent-token-" + "t" * 20
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("SOURCE_OF_TOKEN", agent_token)
    spec = mcp_spec(
        "environment", env={"FAKE_AGENT_TOKEN": "${SOURCE_OF_TOKEN}", "FAKE_MODE": "m-${HOME}"}
    )
    answer = ask(McpAgentModel("builder", spec, "alpha"), conversation())
    seen = json.loads(answer.tool_calls[0].arguments["summary"])
    assert seen["FAKE_AGENT_TOKEN"] == agent_token
    assert seen["FAKE_MODE"].startswith("m-/")
    assert "OPENAI_API_KEY" not in seen["names"] and "SOURCE_OF_TOKEN" not in seen["names"]
    assert {"PATH", "FAKE_AGENT_TOKEN", "FAKE_MODE"} <= set(seen["names"])


def test_an_unset_env_reference_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    spec = mcp_spec("plain", env={"TOKEN": "${NOT_SET_ANYWHERE}"})
    error = failure(McpAgentModel("builder", spec, "alpha"))
    assert not error.retryable
    assert str(error) == "agents.builder.env.TOKEN: ${NOT_SET_ANYWHERE} is not set"


def test_server_environment_expands_references() -> None:
    env, expanded = server_environment(
        {"A": "${X}-${Y}", "B": "plain"}, {"X": "1", "Y": "2", "PATH": "/bin", "SECRET_KEY": "k"}
    )
    assert env == {"PATH": "/bin", "A": "1-2", "B": "plain"}
    assert expanded == ["1-2"]


def test_error_messages_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "ghp_" + "z" * 36
    monkeypatch.setenv("GITHUB_TOKEN", token)
    reset_default_redactor()
    try:
        crash = [
            sys.executable,
            "-c",
            f"import sys; print('{token}', file=sys.stderr); sys.exit(1)",
        ]
        error = failure(McpAgentModel("builder", mcp_spec("x", command=crash), "alpha"))
    finally:
        monkeypatch.delenv("GITHUB_TOKEN")
        reset_default_redactor()
    assert token not in str(error) and "[REDACTED]" in str(error)


def test_the_spec_must_name_command_and_tool() -> None:
    with pytest.raises(InputError, match=r"agents\.b\.command"):
        McpAgentModel("b", mcp_spec("t", command=None), "alpha")
    with pytest.raises(InputError, match=r"agents\.b\.tool"):
        McpAgentModel("b", mcp_spec(None), "alpha")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cannot plan"):
        McpAgentModel("b", mcp_spec("t"), "planner")


def test_build_model_makes_an_mcp_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(providers.PROVIDERS, "mcp", PROVIDER)
    managed = providers.build_model("builder", mcp_spec("plain"), "alpha")
    assert isinstance(managed.provider, McpAgentModel)
    answer = asyncio.run(managed.request(conversation(), [], ModelSettings()))
    assert answer.tool_calls[0].name == "finish"
