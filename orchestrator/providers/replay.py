"""The replay provider (contract): plays scripted model turns from a YAML or JSON file.

It exists for the offline demo, benchmarks and tests, and it goes through exactly the same agent
loop, tools, budgets and accounting as a network provider; only the answers are canned.

Script shape::

    planner:                 # turns for the planner
      - text: '{"tasks": [...]}'
    tasks:
      design:                # turns for task "design"
        - tool_calls:
            - {name: write_file, arguments: {path: DESIGN.md, content: "..."}}
          latency_s: 0.5
          usage: {input_tokens: 1200, output_tokens: 300}
        - tool_calls: [{name: finish, arguments: {summary: done}}]
      "*":                   # any task id not listed above
        - error: {message: overloaded, retryable: true, retry_after: 2}

``{task_id}`` in a turn's text or in a string argument becomes the id of the task being played,
so one ``"*"`` script can give every task its own file.

A turn has ``text`` and/or ``tool_calls`` (or ``error``, a scripted provider failure), and
optionally ``latency_s`` and ``usage``. Without ``usage`` tokens are estimated as
``ceil(chars / 4)`` of the conversation sent (input) and of the turn (output), so accounting is
never zero. ``arguments`` may be a mapping or a raw string; a string that is not a JSON object
reaches the loop as a malformed call (``ToolCall.arguments_error``).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.contracts import AgentSpec, Usage
from orchestrator.errors import InputError
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
    parse_tool_call,
)

CHARS_PER_TOKEN = 4
ANY_TASK = "*"
#: In a turn's text and string tool arguments, replaced by the task id (``"planner"``).
TASK_ID_PLACEHOLDER = "{task_id}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptToolCall(_Strict):
    """One scripted tool call."""

    name: str = Field(min_length=1)
    arguments: Any = Field(default_factory=dict)
    id: str | None = None

    @field_validator("arguments")
    @classmethod
    def _mapping_or_string(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict | str):
            raise ValueError("arguments must be a mapping or a string")
        return value


class ScriptUsage(_Strict):
    """Token counts to report for a turn instead of the estimate."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)


class ScriptError(_Strict):
    """A scripted provider failure: the turn raises ``ModelError``."""

    message: str
    retryable: bool = False
    retry_after: float | None = Field(default=None, ge=0)


class ScriptTurn(_Strict):
    """One model turn."""

    text: str | None = None
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)
    latency_s: float = Field(default=0.0, ge=0)
    usage: ScriptUsage | None = None
    error: ScriptError | None = None
    stop_reason: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ScriptTurn:
        if self.text is None and not self.tool_calls and self.error is None:
            raise ValueError("a turn needs text, tool_calls or error")
        return self


class Script(_Strict):
    """A whole replay script."""

    description: str = ""
    planner: list[ScriptTurn] = Field(default_factory=list)
    tasks: dict[str, list[ScriptTurn]] = Field(default_factory=dict)

    def turns_for(self, purpose: str) -> list[ScriptTurn] | None:
        """The turns for ``purpose`` ("planner" or a task id, falling back to ``"*"``)."""
        if purpose == "planner":
            return self.planner
        if purpose in self.tasks:
            return self.tasks[purpose]
        return self.tasks.get(ANY_TASK)


_CACHE: dict[tuple[str, int, int], Script] = {}
_CACHE_LOCK = threading.Lock()


def load_script(path: Path) -> Script:
    """Parse and validate a replay script (cached per path and modification time).

    Raises:
        InputError: the file is missing, unparsable or does not fit the script shape; the
            field is named like ``tasks.design[2].tool_calls[0].name``.
    """
    try:
        resolved = path.resolve()
        stat = resolved.stat()
    except OSError:
        raise InputError(str(path), "", "replay script not found") from None
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), "", f"cannot read replay script: {exc}") from None
    data: object
    if resolved.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                str(path), "", f"invalid JSON at line {exc.lineno}: {exc.msg}"
            ) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise InputError(str(path), "", f"invalid YAML{where}") from None
    if data is None:
        data = {}
    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(str(path), _field_path(first["loc"]), first["msg"]) from None
    with _CACHE_LOCK:
        _CACHE[key] = script
    return script


def _field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a field path, e.g. ``tasks.design[2].tool_calls[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class ReplayModel:
    """A ``Model`` that plays the script's turns for one purpose, from the start.

    Args:
        agent: The agent's name in ``agents.yml`` (used in error messages).
        spec: Its spec; ``spec.script`` is the script path (relative paths are resolved from
            the current directory).
        purpose: ``"planner"`` or a task id.
    """

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        if not spec.script:
            raise InputError(
                "agents.yml", f"agents.{agent}.script", "the replay provider needs a script path"
            )
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self.script_path = Path(spec.script)
        if not self.script_path.exists():
            raise InputError(
                "agents.yml", f"agents.{agent}.script", f"replay script {spec.script} not found"
            )
        script = load_script(self.script_path)
        self._turns = script.turns_for(purpose)
        self._position = 0

    @property
    def remaining(self) -> int:
        """Turns left to play."""
        return len(self._turns or []) - self._position

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Play the next turn (after its ``latency_s``); raise ``ModelError`` when scripted or
        when the script has no more turns."""
        who = "the planner" if self.purpose == "planner" else f"task {self.purpose}"
        if self._turns is None:
            raise ModelError(
                f"replay script {self.script_path} has no turns for {who}", retryable=False
            )
        if self._position >= len(self._turns):
            raise ModelError(
                f"replay script {self.script_path} has no more turns for {who}", retryable=False
            )
        number = self._position
        turn = self._turns[number]
        self._position += 1
        if turn.latency_s:
            await asyncio.sleep(turn.latency_s)
        if turn.error is not None:
            raise ModelError(
                turn.error.message,
                retryable=turn.error.retryable,
                retry_after=turn.error.retry_after,
            )
        calls = tuple(
            _tool_call(call, f"replay-{self.purpose}-{number}-{index}", self.purpose)
            for index, call in enumerate(turn.tool_calls)
        )
        text = _fill(turn.text or "", self.purpose)
        if turn.usage is not None:
            usage = Usage(**turn.usage.model_dump())
        else:
            usage = Usage(
                input_tokens=_tokens(sum(_message_chars(m) for m in messages)),
                output_tokens=max(1, _tokens(len(text) + sum(_call_chars(c) for c in calls))),
            )
        return ModelResponse(
            text=text,
            tool_calls=calls,
            usage=usage,
            stop_reason=turn.stop_reason or ("tool_use" if calls else "end_turn"),
        )


def _tool_call(call: ScriptToolCall, default_id: str, purpose: str) -> ToolCall:
    # A raw string that is not a JSON object is how a script plays a malformed call.
    arguments = call.arguments
    if isinstance(arguments, dict):
        arguments = {key: _fill_value(value, purpose) for key, value in arguments.items()}
    return parse_tool_call(call.id or default_id, call.name, arguments)


def _fill(text: str, purpose: str) -> str:
    """``{task_id}`` → the task id this model serves (one "*" script can serve every task)."""
    return text.replace(TASK_ID_PLACEHOLDER, purpose)


def _fill_value(value: Any, purpose: str) -> Any:
    if isinstance(value, str):
        return _fill(value, purpose)
    if isinstance(value, list):
        return [_fill_value(item, purpose) for item in value]
    if isinstance(value, dict):
        return {key: _fill_value(item, purpose) for key, item in value.items()}
    return value


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def _call_chars(call: ToolCall) -> int:
    return len(call.name) + len(json.dumps(call.arguments, ensure_ascii=False))


def _message_chars(message: Message) -> int:
    return len(message.text) + sum(_call_chars(call) for call in message.tool_calls)
