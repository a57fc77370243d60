"""The agent's tools (names and arguments are a contract), served from a ``Workspace``.

``ToolBox.call`` never raises for anything the model did wrong: unknown tools, missing, extra or
mistyped arguments, malformed JSON, paths outside the sandbox and failed edits all come back as
a ``ToolOutcome`` with ``is_error=True`` and a message telling the model what to fix.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.agent.workspace import ToolError, Workspace
from orchestrator.contracts import ReviewComment
from orchestrator.errors import OrchestratorError
from orchestrator.providers.base import ToolCall, ToolSpec

if TYPE_CHECKING:
    from orchestrator.agent.shell import Shell

#: Caps on what one tool result may hold, so a single call cannot flood the context.
MAX_LIST_ENTRIES = 500
MAX_READ_LINES = 2000
MAX_OUTPUT_CHARS = 60_000
MAX_SEARCH_MATCHES = 200
MAX_LINE_CHARS = 400

RUN_COMMAND_DISABLED = "run_command is not enabled in this sandbox"


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call returns to the model."""

    text: str
    is_error: bool = False


@dataclass(frozen=True)
class _Param:
    kind: type
    description: str
    required: bool = True


_SCHEMA_TYPES: dict[type, str] = {str: "string", int: "integer"}


@dataclass(frozen=True)
class _Tool:
    name: str
    description: str
    params: dict[str, _Param]
    handler: Callable[..., str]

    def spec(self) -> ToolSpec:
        properties: dict[str, dict[str, Any]] = {
            name: {"type": _SCHEMA_TYPES[p.kind], "description": p.description}
            for name, p in self.params.items()
        }
        for name, p in self.params.items():
            if p.kind is int:
                properties[name]["minimum"] = 1
        required = [name for name, p in self.params.items() if p.required]
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters={
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        )


class ToolBox:
    """The contract tools over one workspace, for one task.

    Args:
        workspace: The sandbox the tools read and write.
        task_id: Stamped on review comments.
        commands: The ``run_command`` backend; the tool is offered only when it offers it
            (``run_command`` asked for in the settings, and the process sandbox works here).

    State after a run: ``finished`` holds the summary given to ``finish`` (``None`` until
    then) and ``review_comments`` the comments the agent asked for.
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        task_id: str,
        commands: Shell | None = None,
    ) -> None:
        self.workspace = workspace
        self.task_id = task_id
        self.commands = commands
        self.finished: str | None = None
        self.review_comments: list[ReviewComment] = []
        self._tools = {tool.name: tool for tool in self._build()}

    # ------------------------------------------------------------------ public API

    def specs(self) -> list[ToolSpec]:
        """The tools offered to the model, with JSON Schemas of their arguments."""
        return [tool.spec() for tool in self._tools.values()]

    @property
    def offers_commands(self) -> bool:
        """Whether ``run_command`` is among the tools."""
        return self.commands is not None and self.commands.offers

    async def acall(self, call: ToolCall) -> ToolOutcome:
        """Run one tool call without blocking the event loop: file tools in a worker thread
        (they may read git objects), ``run_command`` in the process sandbox."""
        if call.name == "run_command" and self.offers_commands and self.commands is not None:
            arguments, problem = _check_arguments(self._tools["run_command"], call.arguments)
            if call.arguments_error or problem:
                return self.call(call)  # the same error text as any tool's bad arguments
            text, is_error = await self.commands.run(self.workspace, arguments["command"])
            return ToolOutcome(text, is_error=is_error)
        return await asyncio.to_thread(self.call, call)

    def call(self, call: ToolCall) -> ToolOutcome:
        """Run one tool call; every problem comes back as an error outcome, never raised."""
        tool = self._tools.get(call.name)
        if tool is None:
            if call.name == "run_command":
                return ToolOutcome(RUN_COMMAND_DISABLED, is_error=True)
            known = ", ".join(self._tools)
            return ToolOutcome(f"unknown tool {call.name!r}; available: {known}", is_error=True)
        if call.arguments_error:
            return ToolOutcome(
                f"{call.name}: arguments are not a valid JSON object ({call.arguments_error});"
                " send the arguments as a JSON object",
                is_error=True,
            )
        arguments, problem = _check_arguments(tool, call.arguments)
        if problem:
            return ToolOutcome(f"{call.name}: {problem}", is_error=True)
        try:
            return ToolOutcome(tool.handler(**arguments))
        except ToolError as exc:
            return ToolOutcome(exc.message, is_error=True)
        except (OrchestratorError, OSError) as exc:
            # A git or disk failure is not the model's fault, but the conversation can go on.
            return ToolOutcome(f"{call.name}: internal error: {exc}", is_error=True)

    # ------------------------------------------------------------------ tools

    def _build(self) -> list[_Tool]:
        path_arg = "File path relative to the repository root (POSIX, e.g. 'src/app.py')."
        tools = [
            _Tool(
                "list_files",
                "List the files under a directory of the repository, recursively, one path "
                f"per line (at most {MAX_LIST_ENTRIES}).",
                {
                    "path": _Param(
                        str, "Directory relative to the repository root; '.' for all.", False
                    )
                },
                self._list_files,
            ),
            _Tool(
                "read_file",
                "Read a text file, with line numbers. Use start_line/end_line (1-based, "
                f"inclusive) to read part of a long file; at most {MAX_READ_LINES} lines per call.",
                {
                    "path": _Param(str, path_arg),
                    "start_line": _Param(int, "First line to show (1-based).", False),
                    "end_line": _Param(int, "Last line to show (inclusive).", False),
                },
                self._read_file,
            ),
            _Tool(
                "search",
                "Search text files with a Python regular expression; returns 'path:line: text' "
                f"for each matching line (at most {MAX_SEARCH_MATCHES}).",
                {
                    "pattern": _Param(str, "Python regular expression, matched per line."),
                    "path": _Param(
                        str,
                        "Directory or file to search in; the whole repository if omitted.",
                        False,
                    ),
                },
                self._search,
            ),
            _Tool(
                "write_file",
                "Create a file or replace its whole content.",
                {
                    "path": _Param(str, path_arg),
                    "content": _Param(str, "The complete new content of the file."),
                },
                self._write_file,
            ),
            _Tool(
                "edit_file",
                "Replace one exact occurrence of 'old' with 'new' in a file. 'old' must match "
                "the file's text exactly (whitespace included) and occur exactly once; add "
                "surrounding lines to make it unique.",
                {
                    "path": _Param(str, path_arg),
                    "old": _Param(str, "The exact text to replace (must occur exactly once)."),
                    "new": _Param(str, "The replacement text."),
                },
                self._edit_file,
            ),
            _Tool(
                "delete_file",
                "Delete a file.",
                {"path": _Param(str, path_arg)},
                self._delete_file,
            ),
            _Tool(
                "add_review_comment",
                "Leave an inline review comment on a line of a file (published on the pull "
                "request). The line refers to the file as it is now, in this workspace.",
                {
                    "path": _Param(str, path_arg),
                    "line": _Param(int, "1-based line number the comment is about."),
                    "body": _Param(str, "The comment, in Markdown."),
                },
                self._add_review_comment,
            ),
            _Tool(
                "finish",
                "Call this last, when the task is done (or cannot be done), with a short summary "
                "of what you changed or found. The task ends after this turn.",
                {"summary": _Param(str, "What was done, for the pull request and the report.")},
                self._finish,
            ),
        ]
        if self.offers_commands and self.commands is not None:
            tools.append(
                _Tool(
                    "run_command",
                    "Run a command in your tree, in a sandbox (no network, no secrets, only the "
                    "tree writable, time and output limits); returns its exit code and output. "
                    "Words are split like a shell's, without pipes or redirections (use "
                    f"sh -c '…' for those). Allowed: {self.commands.allowed()}.",
                    {"command": _Param(str, "The command line, e.g. 'python -m pytest -q'.")},
                    self._run_command,
                )
            )
        return tools

    def _list_files(self, path: str = ".") -> str:
        files = self.workspace.list_files(path)
        if not files:
            return "(no files)"
        shown = files[:MAX_LIST_ENTRIES]
        text = "\n".join(shown)
        if len(files) > len(shown):
            text += f"\n({len(files) - len(shown)} more)"
        return text

    def _read_file(
        self, path: str, start_line: int | None = None, end_line: int | None = None
    ) -> str:
        text = self.workspace.read_text(path)
        lines = text.splitlines()
        total = len(lines)
        if total == 0:
            return "(empty file)"
        start = 1 if start_line is None else start_line
        end = total if end_line is None else min(end_line, total)
        if start < 1:
            raise ToolError(f"start_line must be at least 1 (got {start})")
        if start > total:
            raise ToolError(f"start_line {start} is past the end of {path} ({total} lines)")
        if end < start:
            raise ToolError(f"end_line {end_line} is before start_line {start}")
        out: list[str] = []
        size = 0
        last = start - 1
        for number in range(start, end + 1):
            line = f"{number:6}\t{lines[number - 1]}"
            if number - start >= MAX_READ_LINES or (out and size + len(line) > MAX_OUTPUT_CHARS):
                break
            out.append(line)
            size += len(line) + 1
            last = number
        result = "\n".join(out)
        if last < end:
            result += (
                f"\n(output truncated at line {last} of {total}; "
                f"call read_file with start_line={last + 1} to read on)"
            )
        return result

    def _search(self, pattern: str, path: str = ".") -> str:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"invalid regular expression {pattern!r}: {exc}") from None
        matches: list[str] = []
        extra = 0
        size = 0
        for name, text in self.workspace.iter_text_files(path):
            for number, line in enumerate(text.splitlines(), start=1):
                if not regex.search(line):
                    continue
                if len(line) > MAX_LINE_CHARS:
                    line = line[:MAX_LINE_CHARS] + "…"
                entry = f"{name}:{number}: {line}"
                if len(matches) >= MAX_SEARCH_MATCHES or size + len(entry) > MAX_OUTPUT_CHARS:
                    extra += 1
                    continue
                matches.append(entry)
                size += len(entry) + 1
        if not matches:
            return f"no matches for {pattern!r}"
        result = "\n".join(matches)
        if extra:
            result += f"\n({extra} more matches not shown; narrow the pattern or the path)"
        return result

    def _write_file(self, path: str, content: str) -> str:
        created = self.workspace.write(path, content)
        verb = "created" if created else "wrote"
        lines = len(content.splitlines())
        return f"{verb} {path} ({len(content.encode('utf-8'))} bytes, {lines} lines)"

    def _edit_file(self, path: str, old: str, new: str) -> str:
        if not old:
            raise ToolError("old must not be empty; use write_file to create or replace a file")
        text = self.workspace.read_text(path)
        count = text.count(old)
        if count == 0:
            raise ToolError(
                f"old text not found in {path} (0 matches); read the file and copy the exact"
                " text, whitespace included"
            )
        if count > 1:
            raise ToolError(
                f"old text matches {count} times in {path}; include more surrounding lines so"
                " it matches exactly once"
            )
        self.workspace.write(path, text.replace(old, new, 1))
        line = text[: text.index(old)].count("\n") + 1
        return f"edited {path} at line {line}"

    def _delete_file(self, path: str) -> str:
        self.workspace.delete(path)
        return f"deleted {path}"

    def _add_review_comment(self, path: str, line: int, body: str) -> str:
        if not body.strip():
            raise ToolError("body must not be empty")
        if not self.workspace.exists(path):
            raise ToolError(f"{path}: no such file")
        total = len(self.workspace.read_text(path).splitlines())
        if not 1 <= line <= total:
            raise ToolError(f"line {line} is out of range for {path} (1..{total})")
        clean = "/".join(p for p in path.split("/") if p not in ("", "."))
        self.review_comments.append(
            ReviewComment(path=clean, line=line, body=body, task_id=self.task_id)
        )
        return f"review comment added on {clean}:{line}"

    def _finish(self, summary: str) -> str:
        self.finished = summary
        return "finished"

    def _run_command(self, command: str) -> str:
        """Only reached through the synchronous ``call``: commands run through ``acall``."""
        raise ToolError("run_command must be called through the agent loop (acall)")


def _check_arguments(tool: _Tool, arguments: object) -> tuple[dict[str, Any], str | None]:
    """The arguments to pass to ``tool``, or why they do not fit its parameters.

    Optional arguments sent as ``null`` are dropped; integral floats (``3.0``) count as integers.
    """
    if not isinstance(arguments, dict):
        return {}, "arguments must be a JSON object"
    extra = sorted(str(k) for k in set(arguments) - set(tool.params))
    if extra:
        allowed = ", ".join(tool.params) or "none"
        return {}, f"unexpected argument(s) {', '.join(extra)} (allowed: {allowed})"
    missing = [n for n, p in tool.params.items() if p.required and arguments.get(n) is None]
    if missing:
        return {}, f"missing required argument(s) {', '.join(missing)}"
    clean: dict[str, Any] = {}
    for name, value in arguments.items():
        kind = tool.params[name].kind
        if value is None:
            continue
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            expected = _SCHEMA_TYPES[kind]
            return {}, f"argument {name} must be {expected}, got {_json_type(value)}"
        clean[name] = value
    return clean, None


def _json_type(value: object) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
