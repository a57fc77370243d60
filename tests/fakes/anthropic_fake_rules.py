"""The Messages API's request rules, as the fake enforces them (400 ``invalid_request_error``).

Checked: required fields; ``system`` blocks; tool names and schemas; the ``thinking`` config;
``tool_choice`` (forced ``any``/``tool`` is refused with thinking on, and always by Sonnet 5.5
and Opus 5.5); alternating roles starting with ``user``; every ``tool_use`` answered by a
``tool_result`` in the next user message, tool results first; no empty text blocks; ``image``
blocks (:mod:`tests.fakes.anthropic_fake_images`); ``thinking`` blocks only in assistant turns,
with a valid signature, and, with thinking on, first in the assistant turn the final tool
results answer (:mod:`tests.fakes.anthropic_fake_thinking`); ``cache_control`` shape, at most
four breakpoints, ``1h`` entries before ``5m`` ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.fakes.anthropic_fake_images import MAX_IMAGES, check_image
from tests.fakes.anthropic_fake_thinking import (
    check_thinking_config,
    check_thinking_kept,
    redacted_ok,
    sign_thinking,
    thinking_on,
)

__all__ = [
    "FORCED_TOOL_CHOICE_REFUSED",
    "validate_request",
]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
#: Models that answer 400 to ``tool_choice`` ``any``/``tool`` (migration guide, 5.5).
FORCED_TOOL_CHOICE_REFUSED = re.compile(r"^claude-(sonnet|opus)-5-5(-|$)")


def validate_request(body: Any, *, thinking: bool = False) -> str | None:
    """The first way ``body`` breaks the Messages API's rules, or ``None``.

    Args:
        body: The JSON body of ``POST /v1/messages`` (or a batch request's ``params``).
        thinking: Treat thinking as on even when the body does not say so (the fake's model
            thinks: it issued thinking blocks in this conversation).
    """
    if not isinstance(body, Mapping):
        return "body: expected an object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required (an integer >= 1)"
    thinking = thinking or thinking_on(body)
    marks: list[Mapping[str, Any]] = []
    # Tools before system: breakpoints are collected in prefix order (for the TTL rule).
    problem = _check_tools(body.get("tools"), marks)
    if problem is None:
        problem = _check_system(body.get("system"), marks)
    if problem is None:
        problem = check_thinking_config(body.get("thinking"), max_tokens)
    if problem is None:
        problem = _check_tool_choice(str(body["model"]), body.get("tool_choice"), thinking)
    if problem is None:
        problem = _check_messages(body.get("messages"), _tool_names(body.get("tools")), marks)
    if problem is None and thinking:
        problem = check_thinking_kept(body["messages"])
    return problem or _check_breakpoints(marks)


def _check_system(system: Any, marks: list[Mapping[str, Any]]) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return "system: expected a string or a list of text blocks"
    for index, block in enumerate(system):
        if not isinstance(block, Mapping) or block.get("type") != "text":
            return f"system.{index}: expected a text block"
        if not str(block.get("text", "")).strip():
            return f"system.{index}: text content blocks must be non-empty"
        _collect(block, marks)
    return None


def _check_tools(tools: Any, marks: list[Mapping[str, Any]]) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: expected a list"
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            return f"tools.{index}: expected an object"
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            return f"tools.{index}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        if name in names:
            return f"tools: Tool names must be unique ({name})"
        names.add(name)
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            return f"tools.{index}.input_schema: input_schema must have type 'object'"
        _collect(tool, marks)
    return None


def _tool_names(tools: Any) -> set[str]:
    return {str(t.get("name")) for t in tools if isinstance(t, Mapping)} if tools else set()


def _check_tool_choice(model: str, choice: Any, thinking: bool) -> str | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind not in ("auto", "any", "tool", "none"):
        return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
    if kind in ("any", "tool") and thinking:
        return "Thinking may not be enabled when tool_choice forces tool use."
    if kind in ("any", "tool") and FORCED_TOOL_CHOICE_REFUSED.match(model):
        return (
            f"tool_choice: forced tool use (type {kind!r}) is not supported with {model}; "
            "use 'auto' or 'none'"
        )
    return None


def _check_messages(messages: Any, names: set[str], marks: list[Mapping[str, Any]]) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending: list[str] = []
    images = 0
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            return f"{where}.role: Input should be 'user' or 'assistant'"
        role = message["role"]
        if role != ("user" if index % 2 == 0 else "assistant"):
            return (
                f"{where}: roles must alternate between 'user' and 'assistant', starting with user"
            )
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list) or not content:
            return f"{where}: all messages must have non-empty content"
        turn = _Turn(role, names)
        for number, block in enumerate(content):
            problem = turn.check(f"{where}.content.{number}", block, marks)
            if problem:
                return problem
        images += turn.images
        if images > MAX_IMAGES:
            return f"{where}: too many images in the request ({images} > {MAX_IMAGES})"
        if role == "user":
            problem = _answers(where, pending, turn.results)
            if problem:
                return problem
            pending = []
        else:
            pending = turn.uses
    if messages[-1].get("role") != "user" and pending:
        return "messages: the final assistant message cannot end with tool_use"
    return None


def _answers(where: str, pending: list[str], results: list[str]) -> str | None:
    missing = [i for i in pending if i not in results]
    if missing:
        return (
            f"{where}: tool_use ids were found without tool_result blocks immediately "
            f"after: {', '.join(missing)}"
        )
    unknown = [i for i in results if i not in pending]
    if unknown:
        return (
            f"{where}: unexpected tool_use_id found in tool_result blocks: "
            f"{', '.join(unknown)}. Each tool_result block must have a corresponding "
            "tool_use block in the previous message."
        )
    return None


class _Turn:
    """The blocks of one message, checked in order."""

    def __init__(self, role: str, names: set[str]) -> None:
        self.role = role
        self.names = names
        self.results: list[str] = []
        self.uses: list[str] = []
        self.images = 0
        self.seen_other = False

    def check(self, spot: str, block: Any, marks: list[Mapping[str, Any]]) -> str | None:
        if not isinstance(block, Mapping):
            return f"{spot}: expected a content block"
        _collect(block, marks)
        kind = block.get("type")
        if kind == "text":
            self.seen_other = True
            if not isinstance(block.get("text"), str) or not block["text"].strip():
                return f"{spot}: text content blocks must contain non-whitespace text"
            return None
        if kind == "image":
            self.seen_other = True
            self.images += 1
            if self.role != "user":
                return f"{spot}: image blocks are only allowed in user messages"
            return check_image(spot, block)
        if kind in ("thinking", "redacted_thinking"):
            return self._thinking(spot, block)
        if kind == "tool_use":
            return self._tool_use(spot, block)
        if kind == "tool_result":
            return self._tool_result(spot, block)
        return f"{spot}.type: unsupported content block type {kind!r}"

    def _thinking(self, spot: str, block: Mapping[str, Any]) -> str | None:
        if self.role != "assistant":
            return f"{spot}: thinking blocks are only allowed in assistant messages"
        if "cache_control" in block:
            return f"{spot}: thinking blocks cannot be marked with cache_control"
        if block["type"] == "redacted_thinking":
            return (
                None
                if redacted_ok(block.get("data"))
                else f"{spot}: Invalid `data` in `redacted_thinking` block"
            )
        if sign_thinking(str(block.get("thinking"))) != block.get("signature"):
            return f"{spot}: Invalid `signature` in `thinking` block"
        return None

    def _tool_use(self, spot: str, block: Mapping[str, Any]) -> str | None:
        if self.role != "assistant":
            return f"{spot}: tool_use blocks are only allowed in assistant messages"
        if not isinstance(block.get("input"), Mapping):
            return f"{spot}.input: Input should be a valid dictionary"
        if not isinstance(block.get("id"), str) or not block["id"]:
            return f"{spot}.id: Field required"
        if self.names and block.get("name") not in self.names:
            return f"{spot}.name: tool_use names a tool that is not defined"
        self.uses.append(block["id"])
        return None

    def _tool_result(self, spot: str, block: Mapping[str, Any]) -> str | None:
        if self.role != "user":
            return f"{spot}: tool_result blocks are only allowed in user messages"
        if self.seen_other:
            return f"{spot}: tool_result blocks must come first in the user message"
        content = block.get("content")
        if not isinstance(content, str | list):
            return f"{spot}.content: expected a string or a list of blocks"
        for number, inner in enumerate(content if isinstance(content, list) else []):
            if isinstance(inner, Mapping) and inner.get("type") == "image":
                self.images += 1
                problem = check_image(f"{spot}.content.{number}", inner)
                if problem:
                    return problem
        if "is_error" in block and not isinstance(block["is_error"], bool):
            return f"{spot}.is_error: Input should be a valid boolean"
        self.results.append(str(block.get("tool_use_id")))
        return None


def _collect(block: Mapping[str, Any], marks: list[Mapping[str, Any]]) -> None:
    if "cache_control" in block:
        marks.append(block)


def _check_breakpoints(marks: list[Mapping[str, Any]]) -> str | None:
    if len(marks) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(marks)}."
    seen_5m = False
    for block in marks:
        control = block["cache_control"]
        if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
            return "cache_control.type: Input should be 'ephemeral'"
        ttl = control.get("ttl", "5m")
        if ttl not in ("5m", "1h"):
            return "cache_control.ttl: Input should be '5m' or '1h'"
        if ttl == "1h" and seen_5m:
            return "cache_control: a ttl='1h' cache_control block must come before any ttl='5m' one"
        seen_5m = seen_5m or ttl == "5m"
    return None
