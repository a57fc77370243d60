"""The Responses wire format (``POST /v1/responses``): bodies out, answers in.

Stateless by design: every call sends ``store: false`` and replays the whole conversation as
input items, instead of chaining calls with ``previous_response_id``. A matrix job, a retry on
another runner or a fallback agent then needs no server-side state, and the calls work for
organisations with zero data retention. Reasoning models return ``reasoning`` items (with
``encrypted_content``, which ``include`` asks for); they are kept in
``ModelResponse.provider_data["openai_output"]`` and replayed verbatim before that turn's
``function_call`` items, which the API requires when a reasoning model called tools.
"""

from __future__ import annotations

from typing import Any

from orchestrator.contracts import Usage
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
    parse_tool_call,
)
from orchestrator.providers.openai_common import (
    arguments_json,
    as_dict,
    data_url,
    load_body,
    raise_body_error,
    tool_result_text,
    usage_of,
)

#: ``provider_data`` key: the output items to replay with the assistant turn.
OUTPUT_KEY = "openai_output"
#: What ``include`` asks for: reasoning that can be replayed without server-side state.
ENCRYPTED_REASONING = "reasoning.encrypted_content"


def responses_body(
    model: str,
    messages: list[Message],
    tools: list[ToolSpec],
    settings: ModelSettings,
) -> dict[str, Any]:
    """The JSON body (and ``responses.create`` keyword arguments) of one call.

    Leading system messages become ``instructions``; the system prompt is the same for every
    task of a run, so the cacheable prefix (instructions, tools, shared context) is too.
    """
    instructions, rest = _split_instructions(messages)
    body: dict[str, Any] = {
        "model": model,
        "input": input_items(rest),
        "store": False,
        "include": [ENCRYPTED_REASONING],
        "max_output_tokens": settings.max_tokens,
    }
    if instructions:
        body["instructions"] = instructions
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                # strict needs every property required and no extras: our schemas are not so.
                "strict": False,
            }
            for tool in tools
        ]
    if settings.json_output:
        body["text"] = {"format": {"type": "json_object"}}
    if settings.cache_key:
        body["prompt_cache_key"] = settings.cache_key
    return body


def _split_instructions(messages: list[Message]) -> tuple[str, list[Message]]:
    """The leading system messages' text, and the messages after them."""
    index = 0
    while index < len(messages) and messages[index].role == "system":
        index += 1
    return "\n\n".join(m.text for m in messages[:index]), messages[index:]


def input_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages as Responses input items (the full transcript: stateless replay)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id or "",
                    "output": tool_result_text(message),
                }
            )
        elif message.role == "assistant":
            items.extend(_assistant_items(message))
        else:
            items.append(_message_item(message))
    return items


def _message_item(message: Message) -> dict[str, Any]:
    """A user (or later system) message; images follow the text as ``input_image`` parts."""
    if not message.images:
        return {"type": "message", "role": message.role, "content": message.text}
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": message.text}]
    parts += [
        {"type": "input_image", "image_url": data_url(image), "detail": "auto"}
        for image in message.images
    ]
    return {"type": "message", "role": message.role, "content": parts}


def _assistant_items(message: Message) -> list[dict[str, Any]]:
    """An assistant turn: its reasoning items verbatim, its text, then its tool calls."""
    kept = (message.provider_data or {}).get(OUTPUT_KEY)
    items = (
        [dict(item) for item in kept if isinstance(item, dict)] if isinstance(kept, list) else []
    )
    if message.text:
        items.append({"type": "message", "role": "assistant", "content": message.text})
    items += [
        {
            "type": "function_call",
            "call_id": call.id,
            "name": call.name,
            "arguments": arguments_json(call),
        }
        for call in message.tool_calls
    ]
    return items


def parse_response_body(content: bytes, label: str = "OpenAI") -> ModelResponse:
    """A Responses body as a ``ModelResponse`` (see ``parse_responses``)."""
    return parse_responses(load_body(content, label), label)


def parse_responses(data: dict[str, Any], label: str = "OpenAI") -> ModelResponse:
    """A parsed response object as a ``ModelResponse``.

    Raises:
        ModelError: the response failed (``status: failed``; retryable for server errors and
            rate limits) or holds neither text nor tool calls (not retryable).
    """
    raise_body_error(data, label)
    output = data.get("output")
    items = [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []
    text = "".join(_message_text(item) for item in items if item.get("type") == "message")
    calls = tuple(
        _tool_call(item, index)
        for index, item in enumerate(i for i in items if i.get("type") == "function_call")
    )
    stop_reason = _stop_reason(data, calls)
    if not text and not calls:
        raise ModelError(
            f"{label} returned no text and no tool calls (status={data.get('status')}, "
            f"stop={stop_reason})",
            retryable=False,
        )
    reasoning = [item for item in items if item.get("type") == "reasoning"]
    return ModelResponse(
        text=text,
        tool_calls=calls,
        usage=_usage(data.get("usage")),
        stop_reason=stop_reason,
        provider_data={OUTPUT_KEY: reasoning} if reasoning else None,
    )


def _message_text(item: dict[str, Any]) -> str:
    """The text of an output message: its ``output_text`` parts, or a refusal in words."""
    content = item.get("content")
    parts = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
    text = "".join(str(p.get("text", "")) for p in parts if p.get("type") == "output_text")
    refusal = "".join(str(p.get("refusal", "")) for p in parts if p.get("type") == "refusal")
    return text or refusal


def _tool_call(item: dict[str, Any], index: int) -> ToolCall:
    """A ``function_call`` item; results are matched on ``call_id``, not on ``id``."""
    call_id = item.get("call_id")
    identifier = call_id if isinstance(call_id, str) and call_id else f"call_{index}"
    name = item.get("name")
    return parse_tool_call(identifier, name if isinstance(name, str) else "", item.get("arguments"))


def _stop_reason(data: dict[str, Any], calls: tuple[ToolCall, ...]) -> str:
    """Chat-style stop reasons (``stop``, ``tool_calls``, ``length``, ``content_filter``)."""
    if data.get("status") == "incomplete":
        reason = as_dict(data.get("incomplete_details")).get("reason")
        return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
    return "tool_calls" if calls else "stop"


def _usage(raw: object) -> Usage:
    """Token usage; ``input_tokens`` includes the cached ones (as ``prompt_tokens`` does)."""
    usage = as_dict(raw)
    return usage_of(
        usage.get("input_tokens"), usage.get("output_tokens"), usage.get("input_tokens_details")
    )
