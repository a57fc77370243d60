"""The Chat Completions wire format (``POST /chat/completions``): bodies out, answers in.

Used for ``provider: openai`` models that are not Responses-first and for every
``openai_compatible`` server (DeepSeek, GitHub Models, Ollama, vLLM …), which implement only
this API. DeepSeek's thinking mode returns ``reasoning_content`` with its tool calls and
rejects the next request unless that text comes back on the same assistant message; it is
kept in ``ModelResponse.provider_data`` and sent back from ``Message.provider_data``.
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
    count,
    data_url,
    load_body,
    raise_body_error,
    tool_result_text,
    usage_of,
)

#: ``provider_data`` key of DeepSeek's thinking text.
REASONING_CONTENT = "reasoning_content"


def chat_body(
    model: str,
    messages: list[Message],
    tools: list[ToolSpec],
    settings: ModelSettings,
    max_tokens_param: str = "max_completion_tokens",
    *,
    cache_key: bool = False,
) -> dict[str, Any]:
    """The JSON body (and ``chat.completions.create`` keyword arguments) of one call.

    Args:
        cache_key: Send ``settings.cache_key`` as ``prompt_cache_key`` (OpenAI itself only: a
            compatible server may reject parameters it does not know).
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [chat_message(message) for message in messages],
        max_tokens_param: settings.max_tokens,
    }
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in tools
        ]
    if settings.json_output:
        body["response_format"] = {"type": "json_object"}
    if cache_key and settings.cache_key:
        body["prompt_cache_key"] = settings.cache_key
    return body


def chat_message(message: Message) -> dict[str, Any]:
    """One neutral message as a Chat Completions message."""
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": tool_result_text(message),
        }
    if message.role == "assistant":
        return _assistant_message(message)
    if message.role == "user" and message.images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.text}]
        parts += [
            {"type": "image_url", "image_url": {"url": data_url(image)}} for image in message.images
        ]
        return {"role": "user", "content": parts}
    return {"role": message.role, "content": message.text}


def _assistant_message(message: Message) -> dict[str, Any]:
    """An assistant turn, with its tool calls and DeepSeek's ``reasoning_content`` if any."""
    out: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.tool_calls:
        out["content"] = message.text or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_json(call)},
            }
            for call in message.tool_calls
        ]
    reasoning = (message.provider_data or {}).get(REASONING_CONTENT)
    if isinstance(reasoning, str):
        out[REASONING_CONTENT] = reasoning
    return out


def parse_response(content: bytes, label: str = "OpenAI") -> ModelResponse:
    """A Chat Completions response body as a ``ModelResponse``.

    Raises:
        ModelError: retryable when the body is not JSON (cut short, an HTML error page);
            not retryable when it has no choices or an empty message.
    """
    return parse_chat(load_body(content, label), label)


def parse_chat(data: dict[str, Any], label: str = "OpenAI") -> ModelResponse:
    """A parsed Chat Completions body as a ``ModelResponse`` (see ``parse_response``)."""
    raise_body_error(data, label)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError(f"{label} returned a response without choices", retryable=False)
    choice = choices[0]
    message = as_dict(choice.get("message"))
    finish = choice.get("finish_reason")
    stop_reason = finish if isinstance(finish, str) else None
    text = _text(message.get("content"))
    refusal = message.get("refusal")
    if not text and isinstance(refusal, str):  # a refusal is the model's answer, in words
        text = refusal
    raw_calls = message.get("tool_calls")
    calls = tuple(
        _tool_call(raw, index)
        for index, raw in enumerate(raw_calls if isinstance(raw_calls, list) else [])
        if isinstance(raw, dict)
    )
    if not text and not calls:
        raise ModelError(
            f"{label} returned an empty message (finish_reason={stop_reason})", retryable=False
        )
    reasoning = message.get(REASONING_CONTENT)
    return ModelResponse(
        text=text,
        tool_calls=calls,
        usage=_usage(data.get("usage")),
        stop_reason=stop_reason,
        provider_data={REASONING_CONTENT: reasoning} if isinstance(reasoning, str) else None,
    )


def _text(content: object) -> str:
    """Message content: a string, or (some compatible servers) a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tool_call(raw: dict[str, Any], index: int) -> ToolCall:
    """One tool call; arguments that are not a JSON object become ``arguments_error``."""
    function = as_dict(raw.get("function"))
    name = function.get("name")
    identifier = raw.get("id")
    call_id = identifier if isinstance(identifier, str) and identifier else f"call_{index}"
    return parse_tool_call(
        call_id, name if isinstance(name, str) else "", function.get("arguments")
    )


def _usage(raw: object) -> Usage:
    """Token usage; ``prompt_tokens`` includes the cached ones. DeepSeek reports cache hits as
    ``prompt_cache_hit_tokens`` instead of ``prompt_tokens_details.cached_tokens``."""
    usage = as_dict(raw)
    details = as_dict(usage.get("prompt_tokens_details"))
    cached = count(details.get("cached_tokens")) or count(usage.get("prompt_cache_hit_tokens"))
    return usage_of(
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        details,
        cached_input_tokens=cached,
    )
