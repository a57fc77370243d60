"""The ``mcp`` provider: an agent that does a task by calling one tool of an MCP server.

An ``agents.yml`` entry such as::

    agents:
      builder:
        provider: mcp
        model: builder-v1            # a label for reports; MCP has no model ids
        command: [uvx, my-mcp-agent, --stdio]
        env: {MY_AGENT_TOKEN: "${MY_AGENT_TOKEN}"}
        tool: implement
        timeout_s: 300

makes ``McpAgentModel`` start ``command`` as a stdio MCP server, call ``tool`` with
``{task_id, title, instructions, context}`` and close the server again (one session per
task, never kept open between tasks). The tool answers with structured content::

    {"summary": "...",
     "files": [{"path": "src/a.py", "content": "..."}],
     "deletions": ["old.py"],
     "review_comments": [{"path": "src/a.py", "line": 3, "body": "..."}]}

or with plain text, which is taken as the summary alone. The answer becomes *model turns* of
the contract tools (``write_file``, ``delete_file``, ``add_review_comment``, then ``finish``),
so an MCP agent goes through the same agent loop, sandbox (path rules, protected paths, size
limits), budgets and result contract as a model: a path the sandbox refuses fails the attempt
(non-retryable, naming the refused paths) and the task runner falls back to the next agent.

Turns: the first request calls the MCP tool and answers with the change calls (text = the
summary); the second request checks the tool results the loop sent back and answers
``finish(summary)``. A tool that changes nothing answers ``finish`` at once. The state lives in
the conversation, not in this object, so a replayed (cached) first turn still finishes right.

Arguments: ``task_id`` is the model's purpose; ``title`` and ``instructions`` come from the
task prompt (the first user message, ``# Task <id>: <title>`` then the instructions);
``context`` is the prompt's dependency section (summaries and patches of the tasks this one
depends on), ``""`` when there is none. Arguments the tool's input schema does not declare are
left out, so a tool taking only ``task_id`` works too.

Environment: the server gets ``PATH``, ``HOME`` and ``LANG`` of this process (plus the few
harmless variables the MCP SDK always passes: ``LOGNAME``, ``SHELL``, ``TERM``, ``USER``) and
``spec.env``, whose values may hold ``${VAR}`` references expanded from this process's
environment. No other variable, so no provider key or ``GITHUB_TOKEN``, reaches the server
unless ``env`` names it. The server's stderr is kept (its tail is quoted, redacted, when the
server fails), never mixed into the orchestrator's output.

Time: ``spec.timeout_s`` bounds the tool call. A tool that does not answer in time is a
*retryable* ``ModelError`` (the retry layer tries again, then the chain falls back). Start-up
(spawn plus handshake) has its own bound, ``max(timeout_s, STARTUP_TIMEOUT_S)``; a server that
cannot be spawned, exits, speaks no MCP or does not start in time is a *non-retryable*
``ModelError`` naming the command. A tool result with ``isError`` is non-retryable too, with the
tool's text. Closing the server is bounded by the SDK (stdin closed, then SIGTERM, SIGKILL).

Usage and cost: MCP reports no tokens, so every turn's usage is zero. The cost of an MCP agent
is therefore ``$0`` only when its prices are configured as 0 (``input_per_mtok: 0``,
``output_per_mtok: 0``); without prices it is *unknown* (``None``), like any unpriced agent.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.contracts import AgentSpec, Usage
from orchestrator.errors import InputError
from orchestrator.prompts import CHANGES_NOTE, CONTEXT_MARKER, REPO_MAP_MARKER, REQUEST_MARKER
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
)
from orchestrator.redact import Redactor, default_redactor
from orchestrator.text import plural

#: Seconds a server may take to start and answer the MCP handshake (at least ``timeout_s``).
STARTUP_TIMEOUT_S = 30.0
#: Variables of this process passed to the server (besides the SDK's own harmless set).
INHERITED_ENV = ("PATH", "HOME", "LANG")
#: Characters of the server's stderr quoted in an error message.
STDERR_TAIL_CHARS = 600

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADING = re.compile(r"^# Task (?P<id>\S+) \((?P<type>[^)\n]*)\)$")
#: The fenced title block ``prompts.task_prompt`` writes after the heading.
_TITLE = re.compile(
    r"\A\s*Its title, from the plan \(data\):\n<untrusted-input source=\"title\">\n"
    r"(?P<title>.*?)\n</untrusted-input>\n*",
    re.DOTALL,
)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class McpFile(_Loose):
    """A file the MCP tool wants written (created or replaced)."""

    path: str
    content: str


class McpComment(_Loose):
    """An inline review comment the MCP tool asks for."""

    path: str
    line: int
    body: str


class McpTaskOutput(_Loose):
    """The structured result an MCP task tool returns (unknown keys are ignored)."""

    summary: str = ""
    files: list[McpFile] = Field(default_factory=list)
    deletions: list[str] = Field(default_factory=list)
    review_comments: list[McpComment] = Field(default_factory=list)


_OUTPUT_KEYS = frozenset(McpTaskOutput.model_fields)


def task_arguments(task_id: str, messages: list[Message]) -> dict[str, str]:
    """The tool arguments for a task, taken from the conversation the loop sends.

    The task prompt is the first user message not shared by the run (``cache_prefix``):
    ``# Task <id> (<type>)``, the fenced title, the instructions, then optionally the
    dependency section and the "must change files" note (which stays part of the instructions).
    The request comes from the shared context message before it.
    """
    prompt = next((m.text for m in messages if m.role == "user" and not m.cache_prefix), "")
    first, _, body = prompt.partition("\n")
    title = ""
    if _HEADING.match(first.strip()) is None:
        body = prompt
    else:
        fenced = _TITLE.match(body)
        if fenced is not None:
            title, body = fenced.group("title").strip(), body[fenced.end() :]
    instructions, context = body, ""
    shared = "\n\n".join(m.text for m in messages if m.role == "user" and m.cache_prefix)
    request = _request_of(shared)
    start = body.find(CONTEXT_MARKER)
    if start >= 0:
        instructions, context = body[:start], body[start:]
        note = context.rfind(CHANGES_NOTE)
        if note >= 0:
            context = context[:note]
            instructions = instructions.rstrip() + "\n\n" + CHANGES_NOTE
    return {
        "task_id": task_id,
        "title": title,
        "instructions": instructions.strip(),
        "context": "\n\n".join(part for part in (request, context.strip()) if part),
    }


def _request_of(shared: str) -> str:
    """The fenced request block of the run's shared context (``prompts.shared_context``)."""
    start = shared.find(REQUEST_MARKER)
    if start < 0:
        return ""
    end = shared.find(REPO_MAP_MARKER, start)
    return shared[start : end if end >= 0 else len(shared)].strip()


def server_environment(
    spec_env: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The server's environment and the values expanded from ``${VAR}`` references.

    Raises:
        ValueError: a ``${VAR}`` reference names a variable that is not set.
    """
    env = os.environ if environ is None else environ
    result = {name: env[name] for name in INHERITED_ENV if env.get(name)}
    expanded: list[str] = []
    for name, raw in spec_env.items():
        missing = [ref for ref in _ENV_REF.findall(raw) if ref not in env]
        if missing:
            raise ValueError(f"env.{name}: ${{{missing[0]}}} is not set")
        value = _ENV_REF.sub(lambda match: env[match.group(1)], raw)
        if value != raw:
            expanded.append(value)
        result[name] = value
    return result, expanded


class McpAgentModel:
    """A ``Model`` whose turns come from one call of an MCP server's tool.

    Args:
        agent: The agent's name in ``agents.yml``.
        spec: Its spec: ``command`` (argv of the stdio server), ``tool``, optional ``env`` and
            ``timeout_s``.
        purpose: The task id (an MCP agent cannot plan: ``"planner"`` is refused).

    Raises:
        InputError: ``command`` or ``tool`` is missing, or the agent is used as the planner.
    """

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        if not spec.command or not spec.command[0].strip():
            raise InputError(
                "agents.yml", f"agents.{agent}.command", "provider mcp needs the server's command"
            )
        if not spec.tool:
            raise InputError(
                "agents.yml", f"agents.{agent}.tool", "provider mcp needs the tool to call"
            )
        if purpose == "planner":
            raise InputError(
                "settings.yml", "planning.planner_agent", f"{agent} is an MCP agent; it cannot plan"
            )
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self.command: list[str] = list(spec.command)
        self.tool: str = spec.tool

    @property
    def command_line(self) -> str:
        """The server command as one shell-quoted line (for messages)."""
        return shlex.join(self.command)

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """First call: run the MCP tool and answer its changes; then: answer ``finish``."""
        previous = [m for m in messages if m.role == "assistant"]
        if previous:
            return self._finish_turn(messages, previous[-1])
        output = await self.call_tool(task_arguments(self.purpose, messages))
        calls = self._change_calls(output)
        if not calls:
            return self._finish(output.summary or self._default_summary())
        return ModelResponse(
            text=output.summary or self._default_summary(),
            tool_calls=tuple(calls),
            usage=Usage(),
            stop_reason="tool_use",
        )

    # ------------------------------------------------------------------ turns

    def _default_summary(self) -> str:
        return f"MCP tool {self.tool} finished task {self.purpose}"

    def _call_id(self, index: int) -> str:
        return f"mcp-{self.purpose}-{index}"

    def _change_calls(self, output: McpTaskOutput) -> list[ToolCall]:
        calls: list[ToolCall] = []
        for change in output.files:
            calls.append(
                ToolCall(
                    id=self._call_id(len(calls)),
                    name="write_file",
                    arguments={"path": change.path, "content": change.content},
                )
            )
        for path in output.deletions:
            calls.append(
                ToolCall(id=self._call_id(len(calls)), name="delete_file", arguments={"path": path})
            )
        for comment in output.review_comments:
            calls.append(
                ToolCall(
                    id=self._call_id(len(calls)),
                    name="add_review_comment",
                    arguments={"path": comment.path, "line": comment.line, "body": comment.body},
                )
            )
        return calls

    def _finish(self, summary: str) -> ModelResponse:
        call = ToolCall(
            id=self._call_id(0) + "-finish", name="finish", arguments={"summary": summary}
        )
        return ModelResponse(text="", tool_calls=(call,), usage=Usage(), stop_reason="tool_use")

    def _finish_turn(self, messages: list[Message], last: Message) -> ModelResponse:
        """Finish when every change was accepted; otherwise fail, naming the refusals."""
        position = max(i for i, m in enumerate(messages) if m is last)
        refused = [
            f"{m.tool_name}: {' '.join(m.text.split())}"
            for m in messages[position + 1 :]
            if m.role == "tool" and m.is_error
        ]
        if refused:
            raise ModelError(
                f"the sandbox refused {plural(len(refused), 'change')} from MCP tool {self.tool}: "
                + "; ".join(refused),
                retryable=False,
            )
        return self._finish(last.text.strip() or self._default_summary())

    # ------------------------------------------------------------------ the MCP session

    async def call_tool(self, arguments: dict[str, str]) -> McpTaskOutput:
        """Start the server, call the tool once, close the server; parse what it answered.

        Raises:
            ModelError: retryable when the tool call timed out; otherwise not retryable.
        """
        import anyio
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        try:
            env, expanded = server_environment(self.spec.env)
        except ValueError as exc:
            raise ModelError(f"agents.{self.agent}.{exc}", retryable=False) from None
        redactor = default_redactor().with_values(*expanded)
        params = StdioServerParameters(command=self.command[0], args=self.command[1:], env=env)
        startup_s = max(self.spec.timeout_s, STARTUP_TIMEOUT_S)
        phase = "start"
        result: Any = None
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as errlog:
            try:
                with anyio.move_on_after(startup_s) as scope:
                    async with AsyncExitStack() as stack:
                        client = await stack.enter_async_context(
                            Client(stdio_client(params, errlog=errlog), mode="legacy", cache=None)
                        )
                        listing = await client.list_tools()
                        phase = "list"
                        declared = next((t for t in listing.tools if t.name == self.tool), None)
                        if declared is None:
                            names = ", ".join(t.name for t in listing.tools) or "none"
                            raise ModelError(
                                redactor.redact(
                                    f"MCP server `{self.command_line}` has no tool "
                                    f"{self.tool!r} (tools: {names})"
                                ),
                                retryable=False,
                            )
                        phase = "call"
                        scope.deadline = anyio.current_time() + self.spec.timeout_s
                        result = await client.call_tool(
                            self.tool, _declared_arguments(arguments, declared.input_schema)
                        )
                        phase = "done"
            except BaseException as exc:
                leaf = _leaf(exc)
                if isinstance(leaf, ModelError):
                    raise leaf from None
                if not isinstance(leaf, Exception):
                    raise
                raise self._failure(phase, leaf, errlog, redactor) from None
            if phase != "done":
                if phase == "call":
                    raise ModelError(
                        f"MCP tool {self.tool} of `{redactor.redact(self.command_line)}` did not "
                        f"answer within {self.spec.timeout_s:g}s (timeout_s)",
                        retryable=True,
                    )
                raise ModelError(
                    redactor.redact(
                        f"MCP server `{self.command_line}` did not start within {startup_s:g}s"
                        + _stderr_tail(errlog)
                    ),
                    retryable=False,
                )
        return self._parse(result, redactor)

    def _failure(
        self, phase: str, exc: Exception, errlog: IO[str], redactor: Redactor
    ) -> ModelError:
        """A non-retryable error for a server that failed to start or broke mid-call."""
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, OSError):
            message = f"cannot start MCP server `{self.command_line}`: {detail}"
        elif phase in ("start", "list"):
            message = f"MCP server `{self.command_line}` failed to start: {detail}" + _stderr_tail(
                errlog
            )
        else:
            message = (
                f"MCP tool {self.tool} of `{self.command_line}` failed: {detail}"
                + _stderr_tail(errlog)
            )
        return ModelError(redactor.redact(message), retryable=False)

    def _parse(self, result: Any, redactor: Redactor) -> McpTaskOutput:
        """The tool's answer as a task output; ``isError`` and malformed answers raise."""
        text = "\n".join(
            str(getattr(block, "text", "")) for block in result.content if hasattr(block, "text")
        ).strip()
        if result.is_error:
            reason = " ".join(text.split()) or "no message"
            raise ModelError(
                redactor.redact(f"MCP tool {self.tool} reported an error: {reason}"),
                retryable=False,
            )
        data: object = result.structured_content
        if data is None and text.startswith("{"):
            data = _json_object(text)
        if isinstance(data, dict) and "result" in data and not _OUTPUT_KEYS & set(data):
            data = data["result"]  # a wrapped return value
        if isinstance(data, dict) and _OUTPUT_KEYS & set(data):
            try:
                return McpTaskOutput.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise ModelError(
                    f"MCP tool {self.tool} returned an unexpected result: {where}: {first['msg']}",
                    retryable=False,
                ) from None
        if isinstance(data, str) and data.strip():
            return McpTaskOutput(summary=data.strip())
        return McpTaskOutput(summary=text)


def _declared_arguments(arguments: dict[str, str], schema: Mapping[str, Any]) -> dict[str, str]:
    """Only the arguments the tool declares (all of them when its schema lists none)."""
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and properties:
        return {k: v for k, v in arguments.items() if k in properties}
    return arguments


def _json_object(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _stderr_tail(errlog: IO[str]) -> str:
    """``" (stderr: …)"`` with the end of what the server wrote to stderr, or ``""``."""
    try:
        errlog.flush()
        errlog.seek(0)
        text = errlog.read()
    except (OSError, ValueError):
        return ""
    tail = " ".join(text.split())[-STDERR_TAIL_CHARS:]
    return f" (stderr: {tail})" if tail else ""
