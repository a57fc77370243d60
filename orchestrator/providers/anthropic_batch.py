"""Message Batches wire format: request ids, batch states and result lines (no SDK calls).

``AnthropicModel`` makes the calls (``client.messages.batches.create/retrieve/results/
cancel``); this module decides what goes in and what comes out:

* each request's ``params`` is the body ``request`` would send (``build_request``);
* our ``custom_id`` is kept when it fits the API's ``^[a-zA-Z0-9_-]{1,64}$``, otherwise
  replaced by a readable, deterministic one, with a translation back;
* ``processing_status`` ``in_progress``/``canceling`` → ``running``, ``ended`` → ``ended``;
* a ``succeeded`` line → the interactive response parser (``batched=True``); ``errored``,
  ``canceled`` and ``expired`` lines → ``ModelError``, retryable (so the batcher asks
  interactively) unless the request itself was refused (``invalid_request_error`` and other
  non-transient types).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from orchestrator.contracts import AgentSpec
from orchestrator.providers.anthropic_request import build_request
from orchestrator.providers.anthropic_response import parse_response
from orchestrator.providers.base import BatchRequest, BatchStatus, ModelError, ModelResponse

__all__ = [
    "CUSTOM_ID_PATTERN",
    "batch_params",
    "batch_status_of",
    "result_of",
    "wire_custom_ids",
]

#: What the API accepts as a request's ``custom_id``.
CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_RUNNING = frozenset({"in_progress", "canceling"})
#: Error types of an errored batch request that are worth an interactive try.
_TRANSIENT = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


def wire_custom_ids(ids: list[str]) -> dict[str, str]:
    """Our id → the ``custom_id`` sent, for each id (all distinct, all valid for the API).

    An id that already fits is sent as it is, so results read naturally in the console.
    Others become their safe characters (at most 47) plus ``-`` and 16 hex digits of their
    SHA-256: deterministic, so a resubmission of the same requests gets the same ids.

    Raises:
        ModelError: (not retryable) the same id appears twice: results could not be told apart.
    """
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ModelError(f"duplicate batch request ids: {', '.join(duplicates)}", retryable=False)
    chosen: dict[str, str] = {i: i for i in ids if CUSTOM_ID_PATTERN.match(i)}
    used = set(chosen.values())
    for ours in ids:
        if ours in chosen:
            continue
        salt = 0
        while True:  # a clash needs a 64-bit hash collision; the salt makes it terminate anyway
            digest = hashlib.sha256(f"{ours}\0{salt}".encode()).hexdigest()[:16]
            readable = _UNSAFE.sub("_", ours)[:47]
            candidate = f"{readable}-{digest}" if readable else digest
            if candidate not in used:
                break
            salt += 1
        chosen[ours] = candidate
        used.add(candidate)
    return {ours: chosen[ours] for ours in ids}


def batch_params(spec: AgentSpec, requests: list[BatchRequest], ids: dict[str, str]) -> list[Any]:
    """The ``requests`` of ``POST /v1/messages/batches``: our requests under their wire ids."""
    return [
        {
            "custom_id": ids[request.custom_id],
            "params": build_request(spec, request.messages, request.tools, request.settings),
        }
        for request in requests
    ]


def batch_status_of(batch: object) -> BatchStatus:
    """A ``MessageBatch`` → ``BatchStatus`` (the counts go in ``detail``)."""
    status = str(getattr(batch, "processing_status", "") or "unknown")
    counts = getattr(batch, "request_counts", None)
    tallies = [
        f"{getattr(counts, name, 0) or 0} {name}"
        for name in ("processing", "succeeded", "errored", "canceled", "expired")
    ]
    detail = f"{status}: {', '.join(tallies)}"
    if status == "ended":
        return BatchStatus("ended", detail)
    # in_progress and canceling, and any status newer than this code: keep polling; the
    # batch layer's deadline bounds the wait.
    return BatchStatus("running", detail if status in _RUNNING else f"{detail} (unknown status)")


def result_of(result: object) -> ModelResponse | ModelError:
    """One ``result`` of a results line → a response, or the error to report for it."""
    kind = getattr(result, "type", None)
    if kind == "succeeded":
        try:
            response = parse_response(getattr(result, "message", None))
        except ModelError as exc:
            return exc
        return response.as_batched()
    if kind == "errored":
        error_type, message = _error_fields(getattr(result, "error", None))
        return ModelError(
            f"batch request errored: {error_type}: {message}",
            # Overload, an internal error or a rate limit may well pass interactively; a
            # refused request (invalid, too large, not permitted) is refused again.
            retryable=error_type in _TRANSIENT,
        )
    if kind in ("canceled", "expired"):
        return ModelError(f"batch request {kind} before it ran", retryable=True)
    return ModelError(f"batch result of unknown type {kind!r}", retryable=True)


def _error_fields(response: object) -> tuple[str, str]:
    """``(type, message)`` of an ``ErrorResponse`` (``{"type": "error", "error": {...}}``)."""
    inner = getattr(response, "error", None)
    error_type = getattr(inner, "type", None) or "api_error"
    message = getattr(inner, "message", None) or "no message"
    return str(error_type), str(message)
