"""Batch mode of the fake Gemini API, as the REST reference and the SDK expect it.

* ``POST /v1beta/models/{model}:batchGenerateContent`` with ``{"batch": {"displayName",
  "inputConfig": {"requests": {"requests": [{"request", "metadata"}]}}}}`` answers a
  long-running operation ``{"name": "batches/ID", "metadata": {"@type":
  …GenerateContentBatch, "model", "displayName", "state": "BATCH_STATE_PENDING",
  "batchStats", …}}``.
* ``GET /v1beta/batches/ID`` answers the same operation; once the batch ended it has
  ``"done": true`` and, when it succeeded, ``metadata.output.inlinedResponses.inlinedResponses``
  (mirrored in ``response`` with its ``@type``), each ``{response | error, metadata}``.
* ``POST /v1beta/batches/ID:cancel`` answers ``{}`` and cancels a batch that has not ended.

Completion is controlled by a :class:`BatchPlan` (the fake's ``batch_plan``, taken by each
batch when it is created) or directly with ``GeminiFake.finish_batch``. The answers
themselves are computed at creation, one scripted step per inline request, in order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["succeeded", "failed", "expired", "cancelled"]

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_FINAL_STATES = {
    "succeeded": "BATCH_STATE_SUCCEEDED",
    "failed": "BATCH_STATE_FAILED",
    "expired": "BATCH_STATE_EXPIRED",
    "cancelled": "BATCH_STATE_CANCELLED",
}
_ENDED = frozenset(_FINAL_STATES.values())

#: HTTP status of a scripted error step → the gRPC code of a ``google.rpc.Status``.
RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 500: 13, 503: 14, 504: 4}

_ids = itertools.count(1)


@dataclass(frozen=True)
class BatchPlan:
    """How the next batches behave.

    Attributes:
        polls_until_done: The ``GET`` that ends the batch (1: the first poll already sees it
            ended); ``None``: it never ends on its own (cancel it, or ``finish_batch``).
        outcome: Its final state.
        reverse: Serve the answers in reverse order (proves they are matched by key).
        echo_metadata: Echo each request's ``metadata`` on its answer (the API does; off, the
            client must fall back to request order).
    """

    polls_until_done: int | None = 1
    outcome: Literal["succeeded", "failed", "expired"] = "succeeded"
    reverse: bool = False
    echo_metadata: bool = True


@dataclass
class FakeBatch:
    """One batch the fake holds: what was asked, what it will answer, where it stands."""

    name: str
    model: str
    display_name: str
    requests: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    plan: BatchPlan
    state: str = "BATCH_STATE_PENDING"
    polls: int = 0
    cancel_calls: int = 0
    created: str = "2026-12-03T12:00:00.000000Z"
    updated: str = "2026-12-03T12:00:00.000000Z"
    ended: str | None = None
    error: dict[str, Any] | None = field(default=None)

    @property
    def done(self) -> bool:
        return self.state in _ENDED

    def poll(self) -> None:
        """One ``GET``: pending → running, and the final state on the planned poll."""
        if self.done:
            return
        self.polls += 1
        until = self.plan.polls_until_done
        if until is not None and self.polls >= until:
            self.finish(self.plan.outcome)
        else:
            self.state = "BATCH_STATE_RUNNING"

    def finish(self, outcome: Outcome) -> None:
        """End the batch now with ``outcome``."""
        self.state = _FINAL_STATES[outcome]
        self.ended = self.updated = "2026-12-03T12:05:00.000000Z"
        if outcome == "failed":
            self.error = {"code": 13, "message": "The batch failed (fake)."}

    def resource(self) -> dict[str, Any]:
        """The operation JSON the API answers for this batch."""
        metadata: dict[str, Any] = {
            "@type": _TYPE + "GenerateContentBatch",
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "createTime": self.created,
            "updateTime": self.updated,
            "batchStats": self._stats(),
            "state": self.state,
            "name": self.name,
        }
        body: dict[str, Any] = {"name": self.name, "metadata": metadata}
        if self.ended:
            metadata["endTime"] = self.ended
        if self.done:
            body["done"] = True
        if self.state == "BATCH_STATE_SUCCEEDED":
            answers = list(reversed(self.answers)) if self.plan.reverse else list(self.answers)
            if not self.plan.echo_metadata:
                answers = [{k: v for k, v in a.items() if k != "metadata"} for a in answers]
            output = {"inlinedResponses": {"inlinedResponses": answers}}
            metadata["output"] = output
            body["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
        if self.error is not None:
            body["error"] = self.error
        return body

    def _stats(self) -> dict[str, str]:
        count = len(self.requests)
        if self.state != "BATCH_STATE_SUCCEEDED":
            return {"requestCount": str(count), "pendingRequestCount": str(count)}
        failed = sum(1 for answer in self.answers if "error" in answer)
        stats = {"requestCount": str(count), "successfulRequestCount": str(count - failed)}
        if failed:
            stats["failedRequestCount"] = str(failed)
        return stats


def new_batch_name() -> str:
    """``batches/<id>``: lower-case letters and digits, as the API makes them."""
    return f"batches/fakebatch{next(_ids):06d}"


def batch_problem(body: Any) -> str | None:
    """Why a ``batchGenerateContent`` body is malformed, or ``None``."""
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, dict):
        return "* BatchGenerateContentRequest.batch: required"
    if not isinstance(batch.get("displayName"), str) or not batch["displayName"]:
        return "* BatchGenerateContentRequest.batch.display_name: required"
    config = batch.get("inputConfig")
    requests = config.get("requests") if isinstance(config, dict) else None
    items = requests.get("requests") if isinstance(requests, dict) else None
    if not isinstance(items, list) or not items:
        return "* BatchGenerateContentRequest.batch.input_config: requests are required"
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            return f"* batch.input_config.requests.requests[{index}].request: required"
    return None


def error_answer(status: int, message: str, details: Any, metadata: Any) -> dict[str, Any]:
    """A failed inline request: a ``google.rpc.Status`` in place of the response."""
    error: dict[str, Any] = {"code": RPC_CODES.get(status, 2), "message": message}
    if details is not None:
        error["details"] = details
    answer: dict[str, Any] = {"error": error}
    if metadata is not None:
        answer["metadata"] = metadata
    return answer
