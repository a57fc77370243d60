"""Gemini batch mode: the wire mapping behind ``GeminiModel.batch_*``.

A batch is ``POST v1beta/models/{model}:batchGenerateContent`` with inline requests (each the
very request an interactive call would send), answered by a long-running operation named
``batches/{id}``; ``GET v1beta/batches/{id}`` reports ``metadata.state`` (``BATCH_STATE_*``,
which the SDK renames ``JOB_STATE_*``) and, once it succeeded,
``metadata.output.inlinedResponses.inlinedResponses[]`` — each ``{response | error, metadata}``.

Mapping answers back: every inline request carries ``metadata {"key": custom_id, "turn": N}``,
which the API echoes on its answer, so answers are matched by key whatever their order and by
any process that knows the batch name. ``turn`` is the number of assistant turns before the
request, which the response parser needs to give id-less calls the same ids an interactive
call would. Only when an answer comes back without metadata does its position count (answers
come in request order), and only in the process that submitted the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.providers.base import BatchRequest, ModelError

if TYPE_CHECKING:
    from google.genai import types

__all__ = [
    "API_VERSION",
    "BATCH_LIMIT_BYTES",
    "Submitted",
    "batch_state",
    "check_requests",
    "entries_from_job",
    "inline_request",
    "inlined_entries",
    "match_entries",
    "state_name",
    "status_detail",
]

#: Batch mode is documented (and served) on v1beta only; the SDK's default is v1.
API_VERSION = "v1beta"

#: Inline requests of one batch must stay under this in total (batch mode guide: "about
#: 20 MB"; a larger batch needs the File API). Checked before sending, so the caller can fall
#: back to interactive calls instead of paying for a refused upload.
BATCH_LIMIT_BYTES = 20 * 1024 * 1024

_KEY = "key"
_TURN = "turn"

_RUNNING = frozenset(
    {
        "JOB_STATE_UNSPECIFIED",
        "JOB_STATE_QUEUED",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_CANCELLING",
        "JOB_STATE_PAUSED",
        "JOB_STATE_UPDATING",
    }
)
_ENDED = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
_FAILED = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})


@dataclass(frozen=True)
class Submitted:
    """One request of a submitted batch, in submission order."""

    custom_id: str
    first_index: int


def check_requests(requests: Sequence[BatchRequest]) -> None:
    """Refuse a batch that cannot be mapped back: empty, or with a repeated ``custom_id``.

    Raises:
        ModelError: (not retryable) what is wrong.
    """
    if not requests:
        raise ModelError("a batch needs at least one request", retryable=False)
    seen: set[str] = set()
    for request in requests:
        if request.custom_id in seen:
            raise ModelError(
                f"custom_id {request.custom_id!r} appears twice in one batch", retryable=False
            )
        seen.add(request.custom_id)


def inline_request(
    contents: list[types.Content],
    config: types.GenerateContentConfig,
    submitted: Submitted,
) -> types.InlinedRequest:
    """One inline request: the interactive request's contents and config, plus our keys."""
    from google.genai import types

    metadata = {_KEY: submitted.custom_id, _TURN: str(submitted.first_index)}
    return types.InlinedRequest(contents=contents, config=config, metadata=metadata)


def inline_size(requests: Sequence[types.InlinedRequest]) -> int:
    """About how many bytes the requests weigh on the wire (their JSON)."""
    return sum(len(r.model_dump_json(exclude_none=True)) for r in requests)


def state_name(job: object, raw: object) -> str:
    """The batch's state as a ``JOB_STATE_*`` name: the REST ``metadata.state`` when the body
    was read, else the SDK's ``BatchJob.state``; ``JOB_STATE_UNSPECIFIED`` when neither says."""
    metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
    state = metadata.get("state") if isinstance(metadata, Mapping) else None
    if isinstance(state, str) and state:
        return state.replace("BATCH_STATE_", "JOB_STATE_", 1)
    sdk_state = getattr(job, "state", None)
    name = getattr(sdk_state, "name", None)
    return name if isinstance(name, str) else "JOB_STATE_UNSPECIFIED"


def batch_state(name: str) -> Literal["running", "ended", "failed"]:
    """``JOB_STATE_*`` → ``BatchStatus.state``.

    Pending, running (and the transitional states) → ``running``; succeeded → ``ended``;
    failed, cancelled, expired → ``failed``. An unknown state counts as running: the caller's
    deadline then decides, rather than a guess that the batch is lost.
    """
    if name in _ENDED:
        return "ended"
    if name in _FAILED:
        return "failed"
    return "running"


def status_detail(name: str, raw: object) -> str:
    """What the provider said: the state, the operation's error and the request counts."""
    detail = name
    error = raw.get("error") if isinstance(raw, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        detail += f": {error['message']}"
    metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
    stats = metadata.get("batchStats") if isinstance(metadata, Mapping) else None
    if isinstance(stats, Mapping):
        counts = ", ".join(
            f"{label} {stats[field]}"
            for field, label in (
                ("requestCount", "requests"),
                ("successfulRequestCount", "succeeded"),
                ("failedRequestCount", "failed"),
                ("pendingRequestCount", "pending"),
            )
            if field in stats
        )
        detail += f" ({counts})" if counts else ""
    return detail


def inlined_entries(raw: object) -> list[Mapping[str, Any]] | None:
    """The ``inlinedResponses`` of a batch body, or ``None`` when it has no output.

    Read from ``metadata.output`` (where the SDK reads it) or the operation's ``response``
    (the same list, as the REST examples show it).
    """
    if not isinstance(raw, Mapping):
        return None
    metadata = raw.get("metadata")
    for holder in (
        metadata.get("output") if isinstance(metadata, Mapping) else None,
        raw.get("response"),
    ):
        wrapper = holder.get("inlinedResponses") if isinstance(holder, Mapping) else None
        entries = wrapper.get("inlinedResponses") if isinstance(wrapper, Mapping) else None
        if isinstance(entries, list):
            return [entry for entry in entries if isinstance(entry, Mapping)]
    return None


def entries_from_job(job: object) -> list[Mapping[str, Any]] | None:
    """The SDK's ``dest.inlined_responses`` as wire JSON (when the body itself was not read)."""
    dest = getattr(job, "dest", None)
    responses = getattr(dest, "inlined_responses", None)
    if not isinstance(responses, list):
        return None
    return [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in responses]


def match_entries(
    entries: list[Mapping[str, Any]], submitted: Sequence[Submitted] | None
) -> list[tuple[Submitted, Mapping[str, Any]]]:
    """Each answer with the request it answers (see the module docstring).

    Answers that name no key and cannot be placed by position are left out: the caller
    treats a missing ``custom_id`` as a failed request.
    """
    by_id = {s.custom_id: s for s in submitted or ()}
    matched: list[tuple[Submitted, Mapping[str, Any]]] = []
    for position, entry in enumerate(entries):
        metadata = entry.get("metadata")
        key = metadata.get(_KEY) if isinstance(metadata, Mapping) else None
        if isinstance(key, str):
            turn = metadata.get(_TURN) if isinstance(metadata, Mapping) else None
            first = int(turn) if isinstance(turn, str) and turn.isdigit() else None
            known = by_id.get(key)
            if first is None:
                first = known.first_index if known is not None else 0
            matched.append((Submitted(key, first), entry))
        elif submitted is not None and position < len(submitted):
            matched.append((submitted[position], entry))
    return matched
