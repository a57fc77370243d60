"""The ``/v1/responses`` half of the OpenAI fake: validation, response objects, prompt cache.

Kept apart from ``openai_fake.py`` (Chat Completions) so each file stays readable; the fake
calls :func:`responses_problem` and :func:`response_object`. Error texts are the real API's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.openai_fake import Step

#: OpenAI's documented prompt caching: prompts of at least 1024 tokens, hits in 128-token steps.
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK_TOKENS = 128
#: The fake's token estimate (the Chat Completions half counts the same way).
CHARS_PER_TOKEN = 4
#: What ``include`` must ask for to get reasoning that can be replayed with ``store: false``.
ENCRYPTED_REASONING = "reasoning.encrypted_content"

_DATA_URL = re.compile(r"^data:(?P<type>[^;,]+);base64,(?P<data>[A-Za-z0-9+/=]*)$")
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_ROLES = ("user", "system", "developer", "assistant")


@dataclass(frozen=True)
class Problem:
    """Why the real API would refuse a request: status and the ``error`` object's fields."""

    message: str
    param: str | None = None
    code: str | None = None
    status: int = 400


@dataclass
class Issued:
    """What the fake handed out that a later request must send back verbatim."""

    #: function-call ``call_id`` → (reasoning item id, its encrypted content)
    reasoning: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: reasoning item id → encrypted content
    encrypted: dict[str, str | None] = field(default_factory=dict)
    #: Chat (DeepSeek): tool-call id → the ``reasoning_content`` sent with it
    reasoning_content: dict[str, str] = field(default_factory=dict)


class PrefixCache:
    """A prompt cache that behaves like OpenAI's: the longest prefix of an earlier request
    (instructions, tools, input, serialized in that order) counts as cached, rounded down to
    128-token blocks, and only from 1024 tokens on."""

    def __init__(self) -> None:
        self._seen: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def lookup(self, scope: str, prompt: str) -> int:
        """Cached tokens of ``prompt`` (then remembered) among earlier prompts of ``scope``."""
        with self._lock:
            earlier = self._seen.setdefault(scope, [])
            longest = max((_common(prompt, p) for p in earlier), default=0)
            earlier.append(prompt)
        tokens = longest // CHARS_PER_TOKEN // CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS
        return tokens if tokens >= CACHE_MIN_TOKENS else 0


def _common(first: str, second: str) -> int:
    """Length of the longest common prefix (of characters, not path components)."""
    return len(os.path.commonprefix([first, second]))  # noqa: RUF071


def serialized_prompt(body: dict[str, Any]) -> str:
    """The part of a request a prompt cache keys on, in the order the model reads it."""
    return "".join(
        json.dumps(body.get(key), sort_keys=True) for key in ("instructions", "tools", "input")
    )


def image_problem(url: object, where: str) -> Problem | None:
    """An inline image must be a base64 data URL of a PNG, JPEG, GIF or WEBP."""
    if not isinstance(url, str):
        return Problem(f"Invalid type for '{where}': expected a string.", where)
    if url.startswith(("https://", "http://")):
        return None
    match = _DATA_URL.match(url)
    if match is None:
        return Problem(
            f"Invalid '{where}'. Expected a base64-encoded data URL with an image MIME type "
            "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got an invalid value.",
            where,
            "invalid_value",
        )
    if match["type"] not in _IMAGE_TYPES:
        return Problem(
            "You uploaded an unsupported image. Please make sure your image has of one the "
            "following formats: ['png', 'jpeg', 'gif', 'webp'].",
            where,
            "invalid_image_format",
        )
    try:
        base64.b64decode(match["data"], validate=True)
    except binascii.Error:
        return Problem("Invalid base64 image data.", where, "invalid_image")
    return None


def responses_problem(body: Any, issued: Issued) -> Problem | None:
    """Why ``POST /v1/responses`` would answer 400, or ``None`` (endpoint checks excluded)."""
    if not isinstance(body, dict):
        return Problem("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return Problem(
            "Missing required parameter: 'model'.", "model", "missing_required_parameter"
        )
    if "max_tokens" in body or "messages" in body:
        name = "max_tokens" if "max_tokens" in body else "messages"
        return Problem(f"Unsupported parameter: '{name}'.", name, "unknown_parameter")
    problem = _tools_problem(body.get("tools"))
    if problem is not None:
        return problem
    items = body.get("input")
    if isinstance(items, str):
        return None
    if not isinstance(items, list):
        return Problem("Invalid type for 'input': expected a string or an array.", "input")
    return _input_problem(items, issued)


def _tools_problem(tools: object) -> Problem | None:
    """Function tools are flat here (``name`` at the top, not under ``function``)."""
    for index, tool in enumerate(tools if isinstance(tools, list) else []):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            return Problem(f"Invalid value for '{where}.type'.", f"{where}.type")
        if not isinstance(tool.get("name"), str):
            return Problem(
                f"Missing required parameter: '{where}.name'.",
                f"{where}.name",
                "missing_required_parameter",
            )
    return None


def _input_problem(items: list[Any], issued: Issued) -> Problem | None:
    """Walk the input items in order, as the API does, checking what each needs before it."""
    seen_reasoning: set[str] = set()
    seen_calls: set[str] = set()
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            return Problem(f"Invalid type for '{where}': expected an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            problem = _message_problem(item, where)
        elif kind == "reasoning":
            problem = _reasoning_problem(item, where, issued, seen_reasoning)
        elif kind == "function_call":
            problem = _call_problem(item, where, issued, seen_reasoning, seen_calls)
        elif kind == "function_call_output":
            problem = _output_problem(item, where, seen_calls)
        else:
            problem = Problem(f"Invalid value: '{kind}'.", f"{where}.type", "invalid_value")
        if problem is not None:
            return problem
    return None


def _message_problem(item: dict[str, Any], where: str) -> Problem | None:
    if item.get("role") not in _ROLES:
        return Problem(f"Invalid value for '{where}.role'.", f"{where}.role", "invalid_value")
    content = item.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return Problem(f"Invalid type for '{where}.content'.", f"{where}.content")
    for number, part in enumerate(content):
        spot = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            continue
        if kind == "input_image" and isinstance(part, dict):
            problem = image_problem(part.get("image_url"), f"{spot}.image_url")
            if problem is not None:
                return problem
            continue
        return Problem(f"Invalid content part at '{spot}'.", spot, "invalid_value")
    return None


def _reasoning_problem(
    item: dict[str, Any], where: str, issued: Issued, seen: set[str]
) -> Problem | None:
    identifier = str(item.get("id", ""))
    sent = item.get("encrypted_content")
    if not sent:  # with store: false the server kept nothing to look the item up by
        return Problem(
            f"Item with id '{identifier}' not found. Items are not persisted when `store` is "
            "set to false. Try again with `store` set to true, or remove this item from your "
            "input.",
            "input",
        )
    if identifier in issued.encrypted and issued.encrypted[identifier] != sent:
        return Problem(
            f"The encrypted content for item {identifier} could not be verified.",
            f"{where}.encrypted_content",
            "invalid_encrypted_content",
        )
    seen.add(identifier)
    return None


def _call_problem(
    item: dict[str, Any], where: str, issued: Issued, reasoning: set[str], calls: set[str]
) -> Problem | None:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not isinstance(item.get("arguments"), str):
        return Problem(f"Invalid function_call at '{where}'.", where)
    needed = issued.reasoning.get(call_id)
    if needed is not None and needed[0] not in reasoning:
        return Problem(
            f"Item '{item.get('id') or call_id}' of type 'function_call' was provided without "
            f"its required 'reasoning' item: '{needed[0]}'.",
            "input",
        )
    calls.add(call_id)
    return None


def _output_problem(item: dict[str, Any], where: str, calls: set[str]) -> Problem | None:
    call_id = item.get("call_id")
    if call_id not in calls:
        return Problem(
            f"No tool call found for function call output with call_id {call_id}.", "input"
        )
    if not isinstance(item.get("output"), str | list):
        return Problem(f"Invalid type for '{where}.output'.", f"{where}.output")
    return None


def response_object(
    step: Step, body: dict[str, Any], number: int, cached: int, issued: Issued
) -> dict[str, Any]:
    """The response object for one scripted step (``usage`` estimated unless scripted)."""
    output = _output_items(step, body, number, issued)
    response: dict[str, Any] = {
        "id": f"resp_fake{number}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if step.finish_reason == "length" else "completed",
        "error": None,
        "incomplete_details": (
            {"reason": "max_output_tokens"} if step.finish_reason == "length" else None
        ),
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": str(body.get("model")),
        "output": output if step.include_choices else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "user": None,
        "metadata": {},
    }
    if step.include_usage:
        response["usage"] = _usage(step, body, output, cached)
    return response


def _output_items(
    step: Step, body: dict[str, Any], number: int, issued: Issued
) -> list[dict[str, Any]]:
    """Reasoning (if scripted), then the message, then the function calls."""
    items: list[dict[str, Any]] = []
    reasoning_id: str | None = None
    encrypted: str | None = None
    if step.reasoning is not None:
        reasoning_id = f"rs_fake{number}"
        if ENCRYPTED_REASONING in (body.get("include") or []):
            digest = hashlib.sha256(f"{number}:{step.reasoning}".encode()).hexdigest()
            encrypted = f"gAAAA{digest}"
        issued.encrypted[reasoning_id] = encrypted
        summary = [{"type": "summary_text", "text": step.reasoning}]
        items.append(
            {
                "type": "reasoning",
                "id": reasoning_id,
                "summary": summary,
                "encrypted_content": encrypted,
            }
        )
    if step.content is not None:
        items.append(
            {
                "type": "message",
                "id": f"msg_fake{number}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": step.content, "annotations": []}],
            }
        )
    for index, call in enumerate(step.calls):
        call_id = call.id or f"call_fake{number}_{index}"
        arguments = (
            call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        )
        items.append(
            {
                "type": "function_call",
                "id": f"fc_fake{number}_{index}",
                "call_id": call_id,
                "name": call.name,
                "arguments": arguments,
                "status": "completed",
            }
        )
        if reasoning_id is not None:
            issued.reasoning[call_id] = (reasoning_id, encrypted)
    return items


def _usage(
    step: Step, body: dict[str, Any], output: list[dict[str, Any]], cached: int
) -> dict[str, Any]:
    """Scripted counts, or an estimate: a quarter of the characters in and out."""
    if step.usage is not None:
        used_in, used_out = step.usage.prompt_tokens, step.usage.completion_tokens
        cached = step.usage.cached_tokens
    else:
        used_in = math.ceil(len(serialized_prompt(body)) / CHARS_PER_TOKEN)
        used_out = max(1, math.ceil(len(json.dumps(output)) / CHARS_PER_TOKEN))
    reasoning = math.ceil(len(step.reasoning) / CHARS_PER_TOKEN) if step.reasoning else 0
    return {
        "input_tokens": used_in,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": used_out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": used_in + used_out,
    }
