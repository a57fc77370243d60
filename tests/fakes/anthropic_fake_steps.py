"""The step vocabulary of the scripted model fakes (Anthropic and Gemini).

A :class:`Step` is one scripted answer: text, tool calls, an error, a delay, a cut-short or
foreign body; Anthropic steps may also carry thinking blocks or a batch outcome. See
:mod:`tests.fakes.anthropic_fake` for how they are played.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "Call",
    "Step",
    "batch_outcome",
    "call",
    "error",
    "estimate_tokens",
    "hang",
    "non_json",
    "raw_call",
    "spend_limit",
    "text",
    "tool_calls",
    "truncated",
    "with_thinking",
    "write_then_finish",
]


@dataclass(frozen=True)
class Call:
    """A scripted tool call; ``arguments`` as a string is sent raw (malformed on purpose)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Step:
    """One scripted answer of a fake model server (provider-neutral).

    A success (``status`` 200) carries ``text`` and/or ``calls``; an error carries ``status``
    and optionally ``error_type`` (Anthropic ``error.type`` or Gemini ``error.status``),
    ``message`` and ``details``. ``body`` replaces the whole JSON/raw body. ``delay_s`` delays
    the answer, ``truncate_to`` cuts the body short. ``usage`` (the provider's own field names)
    and ``stop_reason`` (Anthropic ``stop_reason`` / Gemini ``finishReason``) override the
    defaults. ``block_reason`` is Gemini's ``promptFeedback.blockReason``; ``thought_signature``
    is put on Gemini function-call parts. ``thinking`` (Anthropic) is the text of a signed
    ``thinking`` block sent first; ``redacted_thinking`` adds a ``redacted_thinking`` block.
    ``batch_result`` (``canceled``/``expired``) is what a Message Batch reports for the request
    instead of an answer.
    """

    text: str | None = None
    calls: tuple[Call, ...] = ()
    status: int = 200
    error_type: str | None = None
    message: str | None = None
    details: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    delay_s: float = 0.0
    truncate_to: int | None = None
    usage: Mapping[str, int] | None = None
    stop_reason: str | None = None
    block_reason: str | None = None
    thought_signature: str | None = None
    thinking: str | None = None
    redacted_thinking: bool = False
    batch_result: Literal["canceled", "expired"] | None = None


def call(name: str, *, id: str | None = None, **arguments: Any) -> Call:
    """A well-formed tool call."""
    return Call(name, dict(arguments), id)


def raw_call(name: str, raw_arguments: str, *, id: str | None = None) -> Call:
    """A tool call whose arguments are sent as this raw string (e.g. broken JSON)."""
    return Call(name, raw_arguments, id)


def text(value: str, **overrides: Any) -> Step:
    """A text answer."""
    return Step(text=value, **overrides)


def tool_calls(*calls: Call, text: str | None = None, **overrides: Any) -> Step:
    """An answer with these tool calls (and optional text before them)."""
    return Step(text=text, calls=tuple(calls), **overrides)


def error(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    details: Any = None,
    **overrides: Any,
) -> Step:
    """An error response with the provider's documented body for ``status``."""
    return Step(
        status=status,
        error_type=error_type,
        message=message,
        headers=dict(headers or {}),
        details=details,
        **overrides,
    )


def spend_limit() -> Step:
    """Anthropic's answer when the organisation's monthly spend limit is reached."""
    return error(
        429,
        "rate_limit_error",
        "You have reached your specified API usage limits. You will regain access on "
        "2026-12-01 at 00:00 UTC.",
        details={"error_code": "enforced_spend_limit_reached"},
        headers={"retry-after": "60"},
    )


def hang(delay_s: float, step: Step | None = None) -> Step:
    """``step`` (a text answer by default), sent only after ``delay_s`` seconds."""
    return replace(step or text("late answer"), delay_s=delay_s)


def truncated(step: Step | None = None, at: int = 25) -> Step:
    """``step`` (a text answer by default) with its body cut after ``at`` bytes."""
    return replace(step or text("this body will be cut short"), truncate_to=at)


def non_json(body: str = "<html><body>502 Bad Gateway</body></html>", status: int = 200) -> Step:
    """A body that is not JSON (a proxy's HTML page), served as ``application/json``."""
    return Step(status=status, body=body)


def with_thinking(step: Step, thinking: str, *, redacted: bool = False) -> Step:
    """``step`` answered after a signed ``thinking`` block (and a ``redacted_thinking`` one)."""
    return replace(step, thinking=thinking, redacted_thinking=redacted)


def batch_outcome(kind: Literal["canceled", "expired"]) -> Step:
    """A Message Batch request that ends ``canceled`` or ``expired`` instead of answering."""
    return Step(batch_result=kind)


def write_then_finish(
    path: str = "NOTES.md",
    content: str = "Written by the fake agent.\n",
    summary: str | None = None,
    *,
    usage: Mapping[str, int] | None = None,
) -> list[Step]:
    """A plausible agent: look around, write one file, then finish (three turns)."""
    return [
        tool_calls(
            call("list_files", path="."), text="Let me look at the repository.", usage=usage
        ),
        tool_calls(call("write_file", path=path, content=content), usage=usage),
        tool_calls(call("finish", summary=summary or f"wrote {path}"), usage=usage),
    ]


def estimate_tokens(payload: object) -> int:
    """``ceil(bytes / 4)`` of the JSON of ``payload``, at least 1."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return max(1, math.ceil(len(raw) / 4))
