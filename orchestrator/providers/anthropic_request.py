"""The body of ``POST /v1/messages`` built from the neutral conversation (no SDK needed).

Mapping:

* ``system`` messages → one ``system`` text block (``json_output`` appends an instruction:
  the Messages API has no JSON mode).
* ``user`` → for agents with ``vision``, one ``image`` block per image (base64 source), then
  the ``text`` block: the vision guide puts images before the text about them. An image the
  API would refuse (type, size, count) becomes a text note after the text.
* ``assistant`` → the thinking blocks kept in ``provider_data`` (unchanged, signatures
  included), ``text``, then ``tool_use {id, name, input}`` blocks.
* ``tool`` results → ``tool_result`` blocks; consecutive ones share ONE user message (the API
  requires alternating roles, and parallel results in one turn).

Prompt-cache breakpoints (``cache_control: ephemeral``), at most three of the API's four
(the cache covers ``tools`` → ``system`` → ``messages`` in that order): the last tool; the
last block of the last message marked ``cache_prefix`` (the system block when no message is
marked), which every task of a run shares; and, when tools are offered (a loop that will come
back), a rolling one on the last block of the conversation, so the next turn reads everything
up to this turn from the cache. Identical inputs give identical bytes: keys are inserted in a
fixed order and nothing time-dependent is sent. See docs/providers/anthropic.md.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contracts import AgentSpec
from orchestrator.providers.base import Image, Message, ModelSettings, ToolSpec

__all__ = [
    "JSON_INSTRUCTION",
    "MAX_BREAKPOINTS",
    "MAX_IMAGES",
    "MAX_IMAGE_BASE64_BYTES",
    "THINKING_KEY",
    "build_request",
    "thinking_blocks",
]

#: Appended to the system prompt when the caller wants a JSON answer.
JSON_INSTRUCTION = (
    "Answer with a single JSON value only: no prose before or after it and no Markdown code fence."
)

#: The API refuses a request with more ``cache_control`` blocks than this.
MAX_BREAKPOINTS = 4
#: Image types the Messages API accepts.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
#: Largest base64 image the API accepts (5 MB of base64 text per image).
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
#: Images per request on 200K-context models (others take more; this is the safe floor).
MAX_IMAGES = 100
#: ``provider_data`` key holding an assistant turn's thinking blocks.
THINKING_KEY = "anthropic_thinking"
#: Blocks that may never carry ``cache_control`` (the API caches them with their turn).
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})

Block = dict[str, Any]


def build_request(
    spec: AgentSpec,
    messages: list[Message],
    tools: list[ToolSpec],
    settings: ModelSettings,
) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` (the JSON body of ``POST /v1/messages``).

    Batch requests use the same body as their ``params``, so a batched turn is exactly the
    interactive one.
    """
    system_text = "\n\n".join(m.text for m in messages if m.role == "system" and m.text.strip())
    if settings.json_output:
        system_text = f"{system_text}\n\n{JSON_INSTRUCTION}" if system_text else JSON_INSTRUCTION
    wire = _Wire(vision=spec.vision)
    for message in messages:
        wire.add(message)
    payload: dict[str, Any] = {
        "model": spec.model,
        "max_tokens": settings.max_tokens,
        "messages": wire.messages,
    }
    system: list[Block] = []
    if system_text:
        system = [{"type": "text", "text": system_text}]
        payload["system"] = system
    definitions: list[Block] = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
    ]
    if definitions:
        payload["tools"] = definitions
    marks = [
        definitions[-1] if definitions else None,
        _prefix_block(messages, wire, system),
        # Rolling: only a tool loop comes back with this conversation plus a turn; a one-shot
        # call (the planner's JSON answer) would pay the 1.25x write for nothing.
        _last_markable(wire.messages) if definitions else None,
    ]
    _mark(marks)
    return payload


def _mark(candidates: list[Block | None]) -> None:
    """Put ``cache_control`` on each distinct candidate block, at most ``MAX_BREAKPOINTS``."""
    chosen: list[Block] = []
    for block in candidates:
        if block is not None and not any(block is seen for seen in chosen):
            chosen.append(block)
    for block in chosen[-MAX_BREAKPOINTS:]:
        # A fresh dict per block: a shared one would alias across payloads that reuse blocks.
        block["cache_control"] = {"type": "ephemeral"}


def _prefix_block(messages: list[Message], wire: _Wire, system: list[Block]) -> Block | None:
    """The block ending the shared prefix: the last block of the last ``cache_prefix`` message.

    Without any marker the system block is the prefix (the stable part of every turn of a
    task). A marked message that produced no block (an empty assistant turn) hands the marker
    to the nearest earlier one.
    """
    marked = [i for i, m in enumerate(messages) if m.cache_prefix]
    if not marked:
        return system[0] if system else None
    for index in range(marked[-1], -1, -1):
        if messages[index].role == "system":
            return system[0] if system else None
        end = wire.ends.get(index)
        if end is not None:
            return end
    return system[0] if system else None


def _last_markable(wire_messages: list[dict[str, Any]]) -> Block | None:
    """The last block of the conversation that may carry ``cache_control`` (the rolling one)."""
    for message in reversed(wire_messages):
        for block in reversed(message["content"]):
            if block.get("type") not in _UNMARKABLE:
                return block  # type: ignore[no-any-return]
    return None


@dataclass
class _Wire:
    """Anthropic's alternating messages, built one neutral message at a time.

    ``ends`` maps a neutral message's index to its last block, where a ``cache_prefix``
    breakpoint goes; ``images`` counts the images sent so far (the API caps them).
    """

    vision: bool
    messages: list[dict[str, Any]] = field(default_factory=list)
    ends: dict[int, Block] = field(default_factory=dict)
    images: int = 0
    _count: int = 0

    def add(self, message: Message) -> None:
        index = self._count
        self._count += 1
        if message.role == "system":
            return
        if message.role == "user":
            blocks, role = self._user_blocks(message), "user"
        elif message.role == "assistant":
            blocks, role = _assistant_blocks(message), "assistant"
        else:
            blocks, role = [_tool_result(message)], "user"
        if not blocks:
            return
        if self.messages and self.messages[-1]["role"] == role:
            self.messages[-1]["content"].extend(blocks)
        else:
            self.messages.append({"role": role, "content": blocks})
        self.ends[index] = blocks[-1]

    def _user_blocks(self, message: Message) -> list[Block]:
        """Images first, then the text (the vision guide: Claude does best with images
        before the text about them), then a note for each image that could not be sent."""
        blocks: list[Block] = []
        notes: list[str] = []
        for image in message.images:
            problem = self._image_problem(image)
            if problem is None:
                self.images += 1
                blocks.append(_image_block(image))
            else:
                notes.append(image.omitted(problem))
        if message.text.strip() or not (blocks or notes):
            blocks.append(_text_block(message.text))
        if notes:
            blocks.append({"type": "text", "text": "\n".join(notes)})
        return blocks

    def _image_problem(self, image: Image) -> str | None:
        """Why this image cannot be sent (``""``: this agent has no vision), or ``None``."""
        if not self.vision:
            # The loop already turns images into notes for such agents; this is the safety net.
            return ""
        if image.media_type not in IMAGE_TYPES:
            return f"{image.media_type} is not an image type Anthropic accepts"
        size = _base64_length(len(image.data))
        if size > MAX_IMAGE_BASE64_BYTES:
            return f"{size} bytes of base64, over Anthropic's {MAX_IMAGE_BASE64_BYTES} limit"
        if self.images >= MAX_IMAGES:
            return f"more than {MAX_IMAGES} images in one request"
        return None


def _base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def _image_block(image: Image) -> Block:
    return {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": image.media_type,
            "data": base64.b64encode(image.data).decode("ascii"),
        },
    }


def _text_block(text: str) -> Block:
    return {"type": "text", "text": text if text.strip() else "(empty message)"}


def _tool_result(message: Message) -> Block:
    return {
        "type": "tool_result",
        "tool_use_id": message.tool_call_id or "",
        "content": message.text or "(no output)",
        "is_error": message.is_error,
    }


def _assistant_blocks(message: Message) -> list[Block]:
    """Thinking blocks where they came (before the tool calls), text, tool calls.

    Each kept thinking block remembers how many ``tool_use`` blocks preceded it in the
    response, so the turn goes back in the order the model produced it.
    """
    thinking = thinking_blocks(message.provider_data)
    blocks: list[Block] = [block for after, block in thinking if after == 0]
    if message.text.strip():  # the API rejects empty or whitespace-only text blocks
        blocks.append({"type": "text", "text": message.text})
    for number, call in enumerate(message.tool_calls, start=1):
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
        blocks.extend(block for after, block in thinking if after == number)
    last = len(message.tool_calls)
    blocks.extend(block for after, block in thinking if after > last)
    return blocks


def thinking_blocks(provider_data: Mapping[str, Any] | None) -> list[tuple[int, Block]]:
    """``(tool uses before it, block)`` of each thinking block kept in ``provider_data``.

    Entries that are not thinking blocks are skipped: provider_data is persisted (response
    cache, transcripts) and must never turn into a request the API refuses. Blocks are
    copied, so marking or sending them never alters the conversation's record.
    """
    if not provider_data:
        return []
    entries = provider_data.get(THINKING_KEY)
    if not isinstance(entries, list):
        return []
    kept: list[tuple[int, Block]] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        block = entry.get("block")
        after = entry.get("after_tool_uses", 0)
        if isinstance(block, Mapping) and block.get("type") in _UNMARKABLE:
            kept.append((after if isinstance(after, int) else 0, copy.deepcopy(dict(block))))
    return kept
