"""Helpers shared by the two OpenAI wire APIs (Chat Completions and Responses) and the batch API.

Bodies are parsed here as plain JSON, not with the SDK's models, so that a compatible server's
extra or missing fields never break a run and a body that is not JSON is a clear, retryable
error.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from orchestrator.contracts import Usage
from orchestrator.providers.base import Image, Message, ModelError, ToolCall
from orchestrator.providers.errors import classify_status

#: How much of a provider's error text (or of an unreadable body) goes into a message.
MAX_DETAIL_CHARS = 300


def load_body(content: bytes, label: str) -> dict[str, Any]:
    """A response body as a JSON object.

    Raises:
        ModelError: retryable: the body is not JSON (cut short, a proxy's HTML page) or not an
            object.
    """
    try:
        data = json.loads(content)
    except ValueError:
        shown = content[:80].decode("utf-8", "replace")
        raise ModelError(
            f"{label} returned a response that is not JSON ({len(content)} bytes: {shown!r})",
            retryable=True,
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"{label} returned JSON that is not an object", retryable=True)
    return data


def raise_body_error(data: dict[str, Any], label: str) -> None:
    """Raise the ``error`` a 200 body carries (some compatible servers report errors so).

    Raises:
        ModelError: the body has a non-empty ``error``; retryable as its code says.
    """
    error = data.get("error")
    if not error:
        return
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) else _status_of_code(code)
    retryable, retry_after = classify_status(status, None, data)
    detail = error.get("message", error) if isinstance(error, dict) else error
    raise ModelError(
        f"{label} returned an error: {str(detail)[:MAX_DETAIL_CHARS]}",
        retryable=retryable,
        retry_after=retry_after,
    )


def _status_of_code(code: object) -> int:
    """The HTTP status an error code stands for (Responses ``status: failed`` has no status)."""
    if code in ("server_error", "internal_error"):
        return 500
    if code in ("rate_limit_exceeded",):
        return 429
    return 400


def count(value: object) -> int:
    """A token count; missing, negative or malformed counts are zero."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))


def usage_of(input_tokens: object, output_tokens: object, details: object, **extra: int) -> Usage:
    """Token usage from either API's counts (Chat's ``prompt_tokens`` / Responses'
    ``input_tokens``, which include the cached ones) and their details object.

    ``cached_tokens`` (read from the prompt cache) and ``cache_write_tokens`` (written to it)
    are read the same way for both, so a turn is priced alike whichever API served it.
    ``extra`` overrides a field (DeepSeek's cache hits come outside the details).
    """
    found = as_dict(details)
    fields = {
        "input_tokens": count(input_tokens),
        "output_tokens": count(output_tokens),
        "cached_input_tokens": count(found.get("cached_tokens")),
        "cache_write_input_tokens": count(found.get("cache_write_tokens")),
    }
    fields.update(extra)
    return Usage(**fields)


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (tolerant parsing)."""
    return value if isinstance(value, dict) else {}


def data_url(image: Image) -> str:
    """An image inline as ``data:<media type>;base64,...`` (both OpenAI APIs take it)."""
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def tool_result_text(message: Message) -> str:
    """A tool message's text; failures are marked so the model can tell them apart."""
    return f"ERROR: {message.text}" if message.is_error else message.text


def arguments_json(call: ToolCall) -> str:
    """A tool call's arguments as the JSON string both OpenAI APIs expect."""
    return json.dumps(call.arguments, ensure_ascii=False)
