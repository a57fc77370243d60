"""A small, real MCP stdio server for tests of ``provider: mcp`` agents.

Run it as ``python tests/fakes/mcp_task_server.py``; it speaks MCP over stdin/stdout through the
official SDK. Every tool takes the arguments an orchestrator MCP agent sends
(``task_id``, ``title``, ``instructions``, ``context``) and answers deterministically:

* ``implement``: one new file per task, ``generated/<task_id>.py``, plus a review comment;
* ``review``: review comments only (no file changes), and the deletion of ``src/util.py``;
* ``plain``: plain text only (the orchestrator takes it as the summary);
* ``hang``: never answers (to prove the agent's timeout);
* ``fail``: reports a tool error (``isError``);
* ``escape``: writes ``../outside.txt`` besides a legitimate file (the sandbox must refuse it);
* ``environment``: reports which environment variables the server process received;
* ``strict``: accepts only ``task_id`` (the agent must not send arguments it does not declare).
"""

from __future__ import annotations

import json
import os

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field


class FileChange(BaseModel):
    """A file to create or replace."""

    path: str
    content: str


class Comment(BaseModel):
    """An inline review comment."""

    path: str
    line: int
    body: str


class TaskOutput(BaseModel):
    """What an MCP task tool returns to the orchestrator."""

    summary: str
    files: list[FileChange] = Field(default_factory=list)
    deletions: list[str] = Field(default_factory=list)
    review_comments: list[Comment] = Field(default_factory=list)


server = MCPServer("fake-task-server", log_level="WARNING")


@server.tool()
def implement(task_id: str, title: str, instructions: str, context: str = "") -> TaskOutput:
    """Implement the task: writes generated/<task_id>.py."""
    content = (
        f'"""{title}"""\n\nTASK_ID = "{task_id}"\n'
        f"INSTRUCTION_LINES = {len(instructions.splitlines())}\n"
        f"HAS_CONTEXT = {bool(context.strip())}\n"
    )
    return TaskOutput(
        summary=f"implemented {task_id} ({title})",
        files=[FileChange(path=f"generated/{task_id}.py", content=content)],
        review_comments=[
            Comment(path=f"generated/{task_id}.py", line=3, body=f"generated for {task_id}")
        ],
    )


@server.tool()
def review(task_id: str, title: str, instructions: str, context: str = "") -> TaskOutput:
    """Review the task: comments on README.md and deletes src/util.py."""
    return TaskOutput(
        summary=f"reviewed {task_id}",
        deletions=["src/util.py"],
        review_comments=[Comment(path="README.md", line=1, body="Title looks fine.")],
    )


@server.tool()
def plain(task_id: str, title: str, instructions: str, context: str = "") -> str:
    """Answer with text only."""
    return f"nothing to change for {task_id}"


@server.tool()
async def hang(task_id: str, title: str, instructions: str, context: str = "") -> str:
    """Never answer."""
    await anyio.sleep(3600)
    return "unreachable"


@server.tool()
def fail(task_id: str, title: str, instructions: str, context: str = "") -> str:
    """Report a tool error."""
    raise ToolError(f"cannot do {task_id}: quota exhausted")


@server.tool()
def escape(task_id: str, title: str, instructions: str, context: str = "") -> TaskOutput:
    """Try to write outside the repository (and one legitimate file)."""
    return TaskOutput(
        summary="wrote outside",
        files=[
            FileChange(path="inside.txt", content="fine\n"),
            FileChange(path="../outside.txt", content="escaped\n"),
        ],
    )


@server.tool()
def environment(task_id: str, title: str, instructions: str, context: str = "") -> str:
    """Report the environment the server received, as JSON text."""
    return json.dumps(
        {
            "names": sorted(os.environ),
            "FAKE_AGENT_TOKEN": os.environ.get("FAKE_AGENT_TOKEN"),
            "FAKE_MODE": os.environ.get("FAKE_MODE"),
        }
    )


@server.tool()
def strict(task_id: str) -> TaskOutput:
    """Accept only task_id."""
    return TaskOutput(
        summary=f"strict {task_id}", files=[FileChange(path="strict.txt", content="ok\n")]
    )


if __name__ == "__main__":
    server.run()
