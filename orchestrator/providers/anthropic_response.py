"""An Anthropic ``Message`` (as the SDK decoded it) → ``ModelResponse``.

Shared by interactive calls and by the ``succeeded`` lines of Message Batch results, so a
batched turn reads exactly like an interactive one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.contracts import Usage
from orchestrator.providers.anthropic_request import THINKING_KEY
from orchestrator.providers.base import ModelError, ModelResponse, ToolCall, parse_tool_call

__all__ = ["parse_response", "usage_of"]

_THINKING = frozenset({"thinking", "redacted_thinking"})


def parse_response(raw: object) -> ModelResponse:
    """An SDK ``Message`` (or whatever the SDK made of the body) → ``ModelResponse``.

    Thinking blocks are kept whole in ``provider_data`` (``THINKING_KEY``) with the number of
    ``tool_use`` blocks before each: the API wants them back unchanged, in place, with the
    tool results of that turn.

    Raises:
        ModelError: retryable when the body is not a Messages API response (a proxy's HTML
            page, a truncated or foreign JSON document).
    """
    content = getattr(raw, "content", None)
    if isinstance(raw, str | bytes) or getattr(raw, "type", None) != "message":
        raise ModelError("the API answered with something that is not a message", retryable=True)
    if not isinstance(content, list):
        raise ModelError("the API answered with a message without content", retryable=True)
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(str(getattr(block, "text", "") or ""))
        elif kind == "tool_use":
            calls.append(_tool_call(block, index))
        elif kind in _THINKING:
            thinking.append({"after_tool_uses": len(calls), "block": _as_dict(block)})
        # server tool blocks carry nothing the loop uses
    stop = getattr(raw, "stop_reason", None)
    return ModelResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=usage_of(getattr(raw, "usage", None)),
        stop_reason=str(stop) if stop is not None else None,
        provider_data={THINKING_KEY: thinking} if thinking else None,
    )


def _tool_call(block: object, index: int) -> ToolCall:
    identifier = str(getattr(block, "id", None) or f"toolu_missing_{index}")
    name = str(getattr(block, "name", None) or "")
    return parse_tool_call(identifier, name, getattr(block, "input", None))


def _as_dict(block: object) -> dict[str, Any]:
    """The block as the API sent it: every field it set, nothing the SDK made up."""
    to_dict = getattr(block, "to_dict", None)
    if callable(to_dict):
        data = to_dict(mode="json")
        if isinstance(data, Mapping):
            return dict(data)
    if isinstance(block, Mapping):
        return dict(block)
    return {"type": str(getattr(block, "type", ""))}


def usage_of(usage: object) -> Usage:
    """Anthropic usage → ours.

    Anthropic's ``input_tokens`` counts only the uncached tokens after the last cache
    breakpoint; ours is every input token of the call, so it is the sum of the three.
    ``cached_input_tokens`` is what was read from the cache, ``cache_write_input_tokens`` what
    was written to it (billed at its own rate, 1.25× input for the 5-minute cache).
    ``usage`` is the SDK's object or the JSON object itself (Claude Code's stream).
    """

    def count(name: str) -> int:
        value = usage.get(name) if isinstance(usage, Mapping) else getattr(usage, name, None)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    fresh = count("input_tokens")
    written = count("cache_creation_input_tokens")
    read = count("cache_read_input_tokens")
    return Usage(
        input_tokens=fresh + written + read,
        output_tokens=count("output_tokens"),
        cached_input_tokens=read,
        cache_write_input_tokens=written,
    )
