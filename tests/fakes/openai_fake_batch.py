"""The Batch API half of the OpenAI fake: ``/v1/files`` and ``/v1/batches``.

Uploads are kept in memory until ``DELETE /v1/files/{id}`` removes them; a batch runs its lines
through the fake's own request handler (so each line consumes a scripted step and gets the same
validation as an interactive call) once it has been polled ``polls_to_complete`` times
(``None``: never, to test fallbacks).
Output and error files have the documented line shape
``{id, custom_id, response: {status_code, request_id, body}, error}``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.fakes.loopback import Reply, Request

#: ``(url, body) -> Reply``: the fake's handling of one request line.
Serve = Callable[[str, Any], Reply]

ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions")


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> Reply:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return Reply(status=status, body={"error": error})


def multipart_fields(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """A ``multipart/form-data`` body as ``name → (filename, bytes)``."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields


class BatchStore:
    """Files and batches of one fake.

    Args:
        serve: Answers one request line (the fake's handler, minus HTTP).
        polls_to_complete: Status polls after which a batch runs and completes; ``None``: never.
    """

    def __init__(self, serve: Serve, polls_to_complete: int | None = 1) -> None:
        self.serve = serve
        self.polls_to_complete = polls_to_complete
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    def handles(self, request: Request) -> bool:
        """Whether the request is for a files or batches endpoint."""
        return "/files" in request.path or "/batches" in request.path

    def handle(self, request: Request) -> Reply:
        """Answer a files or batches request."""
        path, method = request.path.rstrip("/"), request.method
        with self._lock:
            if method == "POST" and path.endswith("/files"):
                return self._upload(request)
            if method == "GET" and path.endswith("/content"):
                return self._content(path.split("/")[-2])
            if method == "DELETE" and "/files/" in path:
                return self._delete(path.split("/")[-1])
            if method == "POST" and path.endswith("/batches"):
                return self._create(request.json())
            if method == "POST" and path.endswith("/cancel"):
                return self._cancel(path.split("/")[-2])
            if method == "GET" and "/batches/" in path:
                return self._retrieve(path.split("/")[-1])
        return _error(404, f"Invalid URL ({method} {request.path})")

    # ------------------------------------------------------------------ files

    def _upload(self, request: Request) -> Reply:
        fields = multipart_fields(request)
        if fields.get("purpose", (None, b""))[1].decode() != "batch" or "file" not in fields:
            return _error(400, "Invalid purpose or missing file.", "purpose")
        file_id = f"file-fake{next(self._ids)}"
        filename, data = fields["file"]
        self.contents[file_id] = data
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename or "upload",
            "purpose": "batch",
            "status": "processed",
        }
        return Reply(body=self.files[file_id])

    def _content(self, file_id: str) -> Reply:
        if file_id not in self.contents:
            return _error(404, f"No such File object: {file_id}", "id")
        return Reply(body=self.contents[file_id], headers={"Content-Type": "application/jsonl"})

    def _delete(self, file_id: str) -> Reply:
        """``DELETE /v1/files/{file_id}``: the file and its content are gone."""
        if file_id not in self.files:
            return _error(404, f"No such File object: {file_id}", "id")
        del self.files[file_id]
        self.contents.pop(file_id, None)
        return Reply(body={"id": file_id, "object": "file", "deleted": True})

    def _store(self, lines: list[dict[str, Any]], name: str) -> str | None:
        if not lines:
            return None
        file_id = f"file-fake{next(self._ids)}"
        self.contents[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "purpose": "batch_output",
            "filename": name,
            "bytes": len(self.contents[file_id]),
        }
        return file_id

    # ---------------------------------------------------------------- batches

    def _create(self, body: Any) -> Reply:
        if not isinstance(body, dict) or body.get("input_file_id") not in self.contents:
            return _error(404, "No such File object.", "input_file_id")
        if body.get("endpoint") not in ENDPOINTS:
            return _error(400, f"Invalid endpoint: {body.get('endpoint')}", "endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "Invalid completion_window: only '24h'.", "completion_window")
        batch_id = f"batch_fake{next(self._ids)}"
        errors = self._line_errors(body["input_file_id"], body["endpoint"])
        now = int(time.time())
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": {"object": "list", "data": errors} if errors else None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "failed" if errors else "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "expires_at": now + 86400,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.polls[batch_id] = 0
        return Reply(body=self.batches[batch_id])

    def _line_errors(self, file_id: str, endpoint: str) -> list[dict[str, Any]]:
        """Validation as OpenAI does it: every line a POST to the batch's endpoint, ids unique."""
        errors: list[dict[str, Any]] = []
        ids: set[str] = set()
        for number, raw in enumerate(self.contents[file_id].decode().splitlines(), 1):
            line = json.loads(raw) if raw.strip() else {}
            if line.get("url") != endpoint or line.get("method") != "POST":
                message = "The URL provided for this request does not match the batch endpoint."
                errors.append({"code": "invalid_url", "message": message, "line": number})
            elif line.get("custom_id") in ids or not isinstance(line.get("custom_id"), str):
                message = "The custom_id for this request is a duplicate of another request."
                errors.append({"code": "duplicate_custom_id", "message": message, "line": number})
            ids.add(str(line.get("custom_id")))
        return errors

    def _retrieve(self, batch_id: str) -> Reply:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _error(404, f"No batch found with id '{batch_id}'.", "batch_id")
        self.polls[batch_id] += 1
        if batch["status"] == "cancelling":
            batch["status"] = "cancelled"
            batch["cancelled_at"] = int(time.time())
        elif batch["status"] in ("validating", "in_progress"):
            due = self.polls_to_complete
            if due is not None and self.polls[batch_id] >= due:
                self._run(batch)
            else:
                batch["status"] = "in_progress"
        return Reply(body=batch)

    def _cancel(self, batch_id: str) -> Reply:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _error(404, f"No batch found with id '{batch_id}'.", "batch_id")
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
        return Reply(body=batch)

    def _run(self, batch: dict[str, Any]) -> None:
        """Answer every line through the fake; split answers into output and error files."""
        output: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for raw in self.contents[batch["input_file_id"]].decode().splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            reply = self.serve(line["url"], line.get("body"))
            body = json.loads(reply.encoded() or b"null")
            result = {
                "id": f"batch_req_fake{next(self._ids)}",
                "custom_id": line["custom_id"],
                "response": {"status_code": reply.status, "request_id": "req_fake", "body": body},
                "error": None,
            }
            (output if reply.status == 200 else failed).append(result)
        batch["output_file_id"] = self._store(output, "batch_output.jsonl")
        batch["error_file_id"] = self._store(failed, "batch_errors.jsonl")
        batch["request_counts"] = {
            "total": len(output) + len(failed),
            "completed": len(output),
            "failed": len(failed),
        }
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())
