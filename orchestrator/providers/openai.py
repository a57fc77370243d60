"""OpenAI Chat Completions with function tools: ``provider: openai`` and ``openai_compatible``.

One wire protocol serves OpenAI itself and every server that copies it (DeepSeek, GitHub
Models, OpenRouter, Ollama, vLLM …). Neutral messages go out as chat messages, the answer comes
back as text, parallel tool calls and token usage. Failures become ``ModelError`` with a
retryable verdict and the server's requested wait; the SDK never retries by itself
(``max_retries=0``), the caller's retry wrapper does.

The response body is parsed here, not by the SDK's models, so that a compatible server's extra
fields (DeepSeek's ``reasoning_content``) or missing ones never break a run, and a body that is
not JSON is a clear, retryable error.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx2
import openai

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, Usage
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
    parse_tool_call,
)
from orchestrator.providers.errors import classify_status, is_name_resolution_failure, scrub

#: Key sent to an ``openai_compatible`` server whose agent has no ``api_key`` (Ollama, vLLM).
PLACEHOLDER_KEY = "not-needed"
#: How much of a provider's error text (or of an unreadable body) goes into a message.
MAX_DETAIL_CHARS = 300

# Connections are not kept alive between calls: a model instance may be used from more than
# one event loop (each ``asyncio.run``), and a pooled connection from a closed loop breaks the
# next call. One TCP/TLS handshake per model call is negligible next to the call itself.
_LIMITS = httpx2.Limits(max_connections=64, max_keepalive_connections=0)


class OpenAIModel:
    """A ``Model`` on OpenAI's Chat Completions API.

    Args:
        agent: The agent's name in ``agents.yml`` (used in error messages).
        spec: Its spec: ``model``, ``api_key`` (an ``${ENV}`` reference, read at request time),
            optional ``base_url``, ``timeout_s``.
        purpose: ``"planner"`` or a task id (unused: every call sends the whole conversation).
    """

    #: Name used in error messages.
    label = "OpenAI"
    #: OpenAI's current models (GPT-5, o-series) reject ``max_tokens`` and want
    #: ``max_completion_tokens``; most compatible servers only know ``max_tokens``.
    max_tokens_param = "max_completion_tokens"
    #: Where the key comes from when the spec names no ``api_key`` (``None``: no key needed).
    default_key_env: str | None = "OPENAI_API_KEY"

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent = agent
        self.spec = spec
        self.purpose = purpose
        self._client: openai.AsyncOpenAI | None = None
        if self._base_url_problem() is None:
            self._client = openai.AsyncOpenAI(
                api_key=PLACEHOLDER_KEY,  # the real key is read from the environment per call
                base_url=spec.base_url,
                timeout=spec.timeout_s,
                max_retries=0,
                http_client=openai.DefaultAsyncHttpxClient(limits=_LIMITS),
            )

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> ModelResponse:
        """Send the conversation; return the model's next turn.

        Raises:
            ModelError: requests are disabled, the key or base URL is missing, or the call
                failed; ``retryable`` and ``retry_after`` say whether and when to try again.
        """
        providers.ensure_requests_allowed(self.agent)
        problem = self._base_url_problem()
        if problem is not None or self._client is None:
            raise ModelError(problem or f"{self.agent}: no client", retryable=False)
        key = self._api_key()
        client = self._client.with_options(api_key=key)
        body = request_body(self.spec.model, messages, tools, settings, self.max_tokens_param)
        try:
            raw = await client.chat.completions.with_raw_response.create(**body)
            content = raw.http_response.content
        except openai.APIStatusError as exc:
            raise self._status_error(exc, key) from None
        except openai.APITimeoutError:
            raise ModelError(
                f"{self.label} request timed out after {self.spec.timeout_s:g}s", retryable=True
            ) from None
        except openai.APIConnectionError as exc:
            reason = scrub(str(exc.__cause__ or exc), [key])
            if is_name_resolution_failure(exc):
                raise ModelError(
                    f"{self.label} host name does not resolve (check base_url): "
                    f"{reason[:MAX_DETAIL_CHARS]}",
                    retryable=False,
                ) from None
            raise ModelError(
                f"{self.label} connection failed: {reason[:MAX_DETAIL_CHARS]}", retryable=True
            ) from None
        except openai.OpenAIError as exc:
            reason = scrub(str(exc), [key])
            raise ModelError(
                f"{self.label} request failed: {reason[:MAX_DETAIL_CHARS]}", retryable=False
            ) from None
        try:
            return parse_response(content, self.label)
        except ModelError as exc:  # the body is quoted: make sure it cannot carry the key
            raise ModelError(
                scrub(str(exc), [key]), retryable=exc.retryable, retry_after=exc.retry_after
            ) from None

    def _api_key(self) -> str:
        env = self.spec.key_env or self.default_key_env
        if env is None:
            return PLACEHOLDER_KEY
        key = os.environ.get(env, "").strip()
        if not key:
            raise ModelError(f"{self.agent}: {env} is not set", retryable=False)
        return key

    def _base_url_problem(self) -> str | None:
        return None

    def _status_error(self, exc: openai.APIStatusError, key: str) -> ModelError:
        status = exc.status_code
        retryable, retry_after = classify_status(status, exc.response.headers, exc.body)
        error = exc.body if isinstance(exc.body, dict) else {}
        code = error.get("code") or error.get("type")
        detail = error.get("message") if isinstance(error.get("message"), str) else None
        if detail is None:
            detail = exc.body if isinstance(exc.body, str) else exc.message
        text = f"{self.label} HTTP {status}"
        if code:
            text += f" {code}"
        text += f": {' '.join(str(detail).split())[:MAX_DETAIL_CHARS]}"
        if retry_after is not None:
            text += f" (retry after {retry_after:g}s)"
        return ModelError(scrub(text, [key]), retryable=retryable, retry_after=retry_after)


class OpenAICompatibleModel(OpenAIModel):
    """A ``Model`` on any OpenAI-compatible Chat Completions server (``base_url`` required).

    DeepSeek, GitHub Models (``https://models.github.ai/inference`` with ``GITHUB_TOKEN``),
    OpenRouter, Ollama and vLLM. An agent without ``api_key`` sends the placeholder key
    ``not-needed`` (local servers ignore it).
    """

    label = "OpenAI-compatible"
    max_tokens_param = "max_tokens"
    default_key_env = None

    def _base_url_problem(self) -> str | None:
        if self.spec.base_url:
            return None
        return (
            f"{self.agent}: agents.{self.agent}.base_url is required for provider openai_compatible"
        )


def request_body(
    model: str,
    messages: list[Message],
    tools: list[ToolSpec],
    settings: ModelSettings,
    max_tokens_param: str = "max_completion_tokens",
) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for one call."""
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
    return body


def chat_message(message: Message) -> dict[str, Any]:
    """One neutral message as a Chat Completions message."""
    if message.role == "tool":
        text = f"ERROR: {message.text}" if message.is_error else message.text
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": text}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.text or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.text}


def parse_response(content: bytes, label: str = "OpenAI") -> ModelResponse:
    """A Chat Completions response body as a ``ModelResponse``.

    Raises:
        ModelError: retryable when the body is not JSON (cut short, an HTML error page);
            not retryable when it has no choices or an empty message.
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
    error = data.get("error")
    if error:  # some compatible servers report errors with status 200
        status = error.get("code") if isinstance(error, dict) else None
        status = status if isinstance(status, int) else 400
        retryable, retry_after = classify_status(status, None, data)
        detail = error.get("message", error) if isinstance(error, dict) else error
        raise ModelError(
            f"{label} returned an error: {str(detail)[:MAX_DETAIL_CHARS]}",
            retryable=retryable,
            retry_after=retry_after,
        )
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError(f"{label} returned a response without choices", retryable=False)
    choice = choices[0]
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
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
    return ModelResponse(
        text=text, tool_calls=calls, usage=_usage(data.get("usage")), stop_reason=stop_reason
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
    function = raw.get("function")
    function = function if isinstance(function, dict) else {}
    name = function.get("name")
    identifier = raw.get("id")
    call_id = identifier if isinstance(identifier, str) and identifier else f"call_{index}"
    return parse_tool_call(
        call_id, name if isinstance(name, str) else "", function.get("arguments")
    )


def _usage(raw: object) -> Usage:
    """Token usage; missing or malformed counts are zero. DeepSeek reports cache hits as
    ``prompt_cache_hit_tokens`` instead of ``prompt_tokens_details.cached_tokens``."""
    usage = raw if isinstance(raw, dict) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = _count(details.get("cached_tokens")) or _count(usage.get("prompt_cache_hit_tokens"))
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_input_tokens=cached,
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))
