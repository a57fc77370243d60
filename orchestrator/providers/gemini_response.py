"""Gemini ``GenerateContentResponse`` (wire JSON) → ``ModelResponse``.

The same parser serves interactive calls and the inlined responses of a batch, so a batched
turn reads exactly like an interactive one. It works on the wire JSON rather than the SDK's
models: a call whose ``args`` is not an object (which the SDK's strict models reject) still
becomes a ``ToolCall`` with ``arguments_error`` the loop can hand back to the model.

Thought signatures: Gemini 3 models put an opaque ``thoughtSignature`` on parts of a
function-calling turn (the first ``functionCall`` of each step, sometimes a text part) and
reject the next request with 400 when the current turn's signatures are missing. When a turn
carries any, its parts are kept verbatim in ``ModelResponse.provider_data`` under ``"gemini"``
and replayed as they are by ``gemini_request`` (the conservative reading of Google's rule:
"return the model's response parts unchanged").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.contracts import Usage
from orchestrator.providers.base import ModelError, ModelResponse, ToolCall, parse_tool_call

__all__ = [
    "GENERATED_ID_PREFIX",
    "PROVIDER_KEY",
    "call_signatures",
    "candidate_parts",
    "parse_response",
    "provider_data_for",
    "usage_from_metadata",
]

#: Ids this module makes up for calls Gemini sent without one; never sent back to Gemini.
GENERATED_ID_PREFIX = "gemini-call-"

#: The key of Gemini's state in ``provider_data`` (other providers ignore it).
PROVIDER_KEY = "gemini"

#: Finish reasons meaning the answer was withheld; retrying the same prompt will not help.
_BLOCKED_FINISH = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "LANGUAGE",
    }
)


def parse_response(
    data: object, *, first_index: int = 0, model: str | None = None
) -> ModelResponse:
    """A ``GenerateContentResponse`` as wire JSON → ``ModelResponse``.

    Args:
        data: The parsed JSON body (or one ``inlinedResponses[].response`` of a batch).
        first_index: The number of assistant turns before this one: calls without an ``id``
            get ``gemini-call-<first_index>-<n>``, stable for a given history.
        model: The model that answered; when given and the answer carries thought signatures,
            its parts are kept in ``provider_data`` for replay.

    Raises:
        ModelError: not retryable when the prompt or the answer was blocked (the reason is
            named); retryable when the body is not a generateContent response.
    """
    if not isinstance(data, Mapping):
        raise ModelError("response is not a generateContent object", retryable=True)
    usage = usage_from_metadata(data.get("usageMetadata"))
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise _no_candidates(data)
    candidate = candidates[0] if isinstance(candidates[0], Mapping) else {}
    finish = candidate.get("finishReason")
    finish = str(finish) if finish is not None else None
    if finish in _BLOCKED_FINISH:
        raise ModelError(f"the answer was blocked (finishReason {finish})", retryable=False)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in candidate_parts(data):
        if part.get("thought") is True:
            continue  # thought summaries are not the answer
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            calls.append(_tool_call(call, f"{GENERATED_ID_PREFIX}{first_index}-{len(calls)}"))
    # finishReason MALFORMED_FUNCTION_CALL comes without parts: an empty turn, so the loop
    # nudges the model to try again (the name of the broken call is unknown).
    return ModelResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=usage,
        stop_reason=finish,
        provider_data=provider_data_for(data, model) if model else None,
    )


def _no_candidates(data: Mapping[str, Any]) -> ModelError:
    """Why a response without candidates failed: a blocked prompt, or not a response at all."""
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    if reason and isinstance(feedback, Mapping):
        detail = feedback.get("blockReasonMessage")
        suffix = f": {detail}" if detail else ""
        return ModelError(f"the prompt was blocked ({reason}){suffix}", retryable=False)
    if "candidates" not in data and "usageMetadata" not in data:
        return ModelError("response is not a generateContent object", retryable=True)
    return ModelError("the model returned no candidates", retryable=False)


def candidate_parts(data: object) -> list[Mapping[str, Any]]:
    """The parts of the first candidate's content (objects only), or ``[]``."""
    if not isinstance(data, Mapping):
        return []
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], Mapping):
        return []
    content = candidates[0].get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return []
    return [part for part in parts if isinstance(part, Mapping)]


def provider_data_for(data: object, model: str) -> dict[str, Any] | None:
    """``{"gemini": {"model", "parts"}}`` when the answer carries a thought signature, else None.

    The parts are the wire JSON exactly as received (JSON-serialisable, so the response cache
    can keep them). ``model`` is recorded because a signature is only valid for the model that
    made it: another model's turn is rebuilt from the neutral message instead.
    """
    parts = candidate_parts(data)
    if not any(isinstance(part.get("thoughtSignature"), str) for part in parts):
        return None
    return {PROVIDER_KEY: {"model": model, "parts": [dict(part) for part in parts]}}


def _tool_call(call: Mapping[str, Any], default_id: str) -> ToolCall:
    identifier = call.get("id")
    identifier = identifier if isinstance(identifier, str) and identifier else default_id
    name = call.get("name")
    return parse_tool_call(identifier, name if isinstance(name, str) else "", call.get("args"))


def call_signatures(data: object, response: ModelResponse) -> list[tuple[str, str]]:
    """``(call id, thoughtSignature)`` for each call of the response that carried one."""
    signed = [
        part.get("thoughtSignature")
        for part in candidate_parts(data)
        if part.get("thought") is not True and isinstance(part.get("functionCall"), Mapping)
    ]
    return [
        (call.id, signature)
        for call, signature in zip(response.tool_calls, signed, strict=False)
        if isinstance(signature, str) and signature
    ]


def usage_from_metadata(metadata: object) -> Usage:
    """``usageMetadata`` → ours.

    ``promptTokenCount`` already includes ``cachedContentTokenCount`` (implicit or explicit
    cache hits), so the cached count is a part of ``input_tokens``, as ``Usage`` wants it;
    thinking tokens (``thoughtsTokenCount``) are billed as output, so they count as output.
    """
    if not isinstance(metadata, Mapping):
        return Usage()

    def count(name: str) -> int:
        value = metadata.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    return Usage(
        input_tokens=prompt,
        output_tokens=count("candidatesTokenCount") + count("thoughtsTokenCount"),
        cached_input_tokens=min(count("cachedContentTokenCount"), prompt),
    )
