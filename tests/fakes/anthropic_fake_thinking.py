"""Extended thinking as the fake enforces it.

* Signatures and redacted data are made by :func:`sign_thinking` / :func:`redacted_data`, so
  the fake can tell a block it issued from one the client changed.
* Thinking is on when the request asks for it (``thinking.type`` ``enabled``/``adaptive``),
  for models that always think (Opus 5.5), or when the fake issued thinking in the
  conversation.
* With thinking on, the assistant turn answered by the final tool results must start with its
  thinking blocks (the API's own wording in the error); the fake also checks that the blocks it
  issued come back exactly, first in their turn (:func:`check_thinking_returned`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ALWAYS_THINKING",
    "check_thinking_config",
    "check_thinking_kept",
    "check_thinking_returned",
    "redacted_data",
    "redacted_ok",
    "sign_thinking",
    "thinking_on",
    "tool_use_ids",
]

#: Models whose thinking is always on, whatever the request says (Opus 5.5 model page).
ALWAYS_THINKING = re.compile(r"^claude-opus-5-5(-|$)")
_SECRET = b"anthropic-fake-thinking\0"


def sign_thinking(thinking: str) -> str:
    """The signature the fake puts on a thinking block (and accepts back)."""
    return base64.b64encode(hashlib.sha256(_SECRET + thinking.encode()).digest()).decode()


def redacted_data(label: str) -> str:
    """Opaque ``redacted_thinking.data``: a label plus a checksum only the fake can verify."""
    payload = label.encode()
    return base64.b64encode(payload + b"." + hashlib.sha256(_SECRET + payload).digest()).decode()


def redacted_ok(data: object) -> bool:
    """Whether ``data`` is redacted thinking the fake issued, unchanged."""
    try:
        raw = base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        return False
    payload, check = raw[:-33], raw[-32:]  # label, ".", 32 bytes of SHA-256
    return len(raw) > 33 and check == hashlib.sha256(_SECRET + payload).digest()


def thinking_on(body: Mapping[str, Any]) -> bool:
    """Whether extended thinking is on for this request (asked for, or always on)."""
    config = body.get("thinking")
    asked = isinstance(config, Mapping) and config.get("type") in ("enabled", "adaptive")
    return asked or bool(ALWAYS_THINKING.match(str(body.get("model", ""))))


def check_thinking_config(config: Any, max_tokens: int) -> str | None:
    if config is None:
        return None
    kind = config.get("type") if isinstance(config, Mapping) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        return "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'"
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= max_tokens:
            return "max_tokens must be greater than thinking.budget_tokens"
    return None


def check_thinking_kept(messages: list[Any]) -> str | None:
    """With thinking on, the assistant turn before the final tool results starts thinking."""
    last = messages[-1]
    content = last.get("content") if isinstance(last, Mapping) else None
    answers_tools = isinstance(content, list) and any(
        isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content
    )
    if not answers_tools or len(messages) < 2:
        return None
    previous = messages[-2].get("content")
    first = previous[0] if isinstance(previous, list) and previous else None
    kind = first.get("type") if isinstance(first, Mapping) else "text"
    if kind in ("thinking", "redacted_thinking"):
        return None
    return (
        f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
        f"`redacted_thinking`, but found `{kind}`. When `thinking` is enabled, a final "
        "`assistant` message must start with a thinking block (preceeding the lastmost set of "
        "`tool_use` and `tool_result` blocks)."
    )


def check_thinking_returned(body: Any, issued: Mapping[str, list[dict[str, Any]]]) -> str | None:
    """The last assistant turn the fake answered with thinking must carry it back unchanged.

    Args:
        body: The request.
        issued: ``tool_use`` id → the thinking blocks of the response that made it.
    """
    found = body.get("messages") if isinstance(body, Mapping) else None
    messages: list[Any] = found if isinstance(found, list) else []
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
        uses = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
        expected = next((issued[u] for u in uses if u in issued), None)
        if expected is None:
            return None
        sent = [b for b in blocks if b.get("type") in ("thinking", "redacted_thinking")]
        if sent != expected or blocks[: len(expected)] != expected:
            return (
                f"messages.{index}.content: the thinking blocks of this assistant turn must be "
                "passed back unmodified, first in the message, when using tools with thinking"
            )
        return None
    return None


def tool_use_ids(body: Any) -> list[str]:
    """Every ``tool_use`` id in the request's messages."""
    messages = body.get("messages") if isinstance(body, Mapping) else None
    ids: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, Mapping) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, Mapping) and block.get("type") == "tool_use":
                ids.append(str(block.get("id")))
    return ids
