"""Message Batches for the Anthropic fake: create, retrieve, results (JSONL) and cancel.

As the batch-processing guide documents them:

* ``POST /v1/messages/batches`` ``{"requests": [{"custom_id", "params"}]}`` checks the
  envelope at once (``custom_id`` pattern, unique ids, at least one request) and answers a
  ``message_batch`` object, ``processing_status: in_progress``. The ``params`` are only checked
  when the request is processed: a bad one becomes an ``errored`` result, not a 400.
* ``GET /v1/messages/batches/{id}`` answers ``in_progress`` for ``polls_before_end`` polls
  (``None``: forever), then processes every request and answers ``ended`` with a
  ``results_url``.
* ``GET {results_url}`` streams one JSON line per request:
  ``{"custom_id", "result": {"type": "succeeded"|"errored"|"canceled"|"expired", ...}}``.
* ``POST /v1/messages/batches/{id}/cancel`` answers ``canceling``; the next poll ends the
  batch, every request not processed yet ``canceled``.

Each request is answered by the fake's ``answer`` function (the same scripted steps and
simulated prompt cache as ``POST /v1/messages``) when the batch ends, in request order.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["BatchAnswer", "FakeBatch", "FakeBatches"]

#: What the fake's answer function gives for one request's ``params``: the ``result`` object
#: of its results line (``{"type": "succeeded", "message": ...}`` and so on).
BatchAnswer = Callable[[Any], dict[str, Any]]

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PATH = re.compile(
    r"^/v1/messages/batches/(?P<id>msgbatch_[A-Za-z0-9]+)(?P<rest>/results|/cancel)?$"
)
_STAMP = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@dataclass
class FakeBatch:
    """One submitted batch and where it stands."""

    id: str
    requests: list[tuple[str, Any]]  # (custom_id, params)
    status: str = "in_progress"
    polls: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    cancel_requested: bool = False

    def counts(self) -> dict[str, int]:
        """``request_counts`` as the API reports it."""
        tally = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.status != "ended":
            tally["processing"] = len(self.requests)
            return tally
        for line in self.results:
            tally[line["result"]["type"]] += 1
        return tally


class FakeBatches:
    """The batches of one fake server.

    Args:
        base_url: Where results are served (``results_url``).
        answer: Answers one request's ``params`` (scripted steps, prompt cache).
        polls_before_end: Polls that answer ``in_progress`` before a batch ends; ``None``:
            it never ends (the orchestrator's deadline must cancel it).
    """

    def __init__(
        self, base_url: Callable[[], str], answer: BatchAnswer, polls_before_end: int | None
    ) -> None:
        self.base_url = base_url
        self.answer = answer
        self.polls_before_end = polls_before_end
        self.batches: dict[str, FakeBatch] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def handles(self, path: str) -> bool:
        """Whether ``path`` is a Message Batches endpoint."""
        return path == "/v1/messages/batches" or _PATH.match(path) is not None

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """``(status, JSON or JSONL body)`` of one Message Batches call."""
        if path == "/v1/messages/batches":
            if method != "POST":
                return 405, _error("invalid_request_error", f"{method} is not allowed here")
            return self._create(body)
        match = _PATH.match(path)
        assert match is not None
        batch = self.batches.get(match["id"])
        if batch is None:
            return 404, _error("not_found_error", f"batch {match['id']} not found")
        rest = match["rest"]
        with self._lock:
            if rest is None and method == "GET":
                self._poll(batch)
                return 200, self._object(batch)
            if rest == "/cancel" and method == "POST":
                if batch.status == "in_progress":
                    batch.status, batch.cancel_requested = "canceling", True
                return 200, self._object(batch)
            if rest == "/results" and method == "GET":
                if batch.status != "ended":
                    return 400, _error("invalid_request_error", "batch has not ended yet")
                return 200, "".join(json.dumps(line) + "\n" for line in batch.results)
        return 405, _error("invalid_request_error", f"{method} is not allowed here")

    def _create(self, body: Any) -> tuple[int, Any]:
        requests = body.get("requests") if isinstance(body, Mapping) else None
        if not isinstance(requests, list) or not requests:
            return 400, _error("invalid_request_error", "requests: at least one is required")
        seen: set[str] = set()
        kept: list[tuple[str, Any]] = []
        for index, request in enumerate(requests):
            custom_id = request.get("custom_id") if isinstance(request, Mapping) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                return 400, _error(
                    "invalid_request_error",
                    f"requests.{index}.custom_id: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,64}$'",
                )
            if custom_id in seen:
                return 400, _error(
                    "invalid_request_error", f"requests: custom_id {custom_id} is not unique"
                )
            seen.add(custom_id)
            kept.append((custom_id, request.get("params")))
        with self._lock:
            batch = FakeBatch(f"msgbatch_fake{next(self._ids):04d}", kept)
            self.batches[batch.id] = batch
        return 200, self._object(batch)

    def _poll(self, batch: FakeBatch) -> None:
        """One poll: a canceling batch ends; a running one ends after enough polls."""
        batch.polls += 1
        if batch.status == "canceling":
            batch.results = [
                {"custom_id": cid, "result": {"type": "canceled"}} for cid, _ in batch.requests
            ]
            batch.status = "ended"
        elif batch.status == "in_progress" and self._due(batch):
            batch.results = [
                {"custom_id": cid, "result": self.answer(params)} for cid, params in batch.requests
            ]
            batch.status = "ended"

    def _due(self, batch: FakeBatch) -> bool:
        return self.polls_before_end is not None and batch.polls > self.polls_before_end

    def _object(self, batch: FakeBatch) -> dict[str, Any]:
        """The ``message_batch`` object."""
        ended = batch.status == "ended"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": batch.counts(),
            "created_at": _STAMP.isoformat(),
            "expires_at": (_STAMP + timedelta(hours=24)).isoformat(),
            "ended_at": _STAMP.isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": _STAMP.isoformat() if batch.cancel_requested else None,
            "results_url": (
                f"{self.base_url()}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
