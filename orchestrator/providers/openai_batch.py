"""OpenAI Batch API pieces: the JSONL input file, batch states, and the JSONL results.

A batch is one uploaded JSONL file (``purpose: batch``), one line per request
``{custom_id, method: "POST", url, body}`` whose ``body`` is exactly what the interactive call
would send; every line of a file targets the same endpoint. Results come back as JSONL lines
``{custom_id, response: {status_code, body}, error}`` in an output file (and an error file),
in any order; each body is parsed by the same parser as an interactive answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.providers.base import BatchStatus, ModelError, ModelResponse
from orchestrator.providers.errors import classify_status
from orchestrator.providers.openai_common import MAX_DETAIL_CHARS, as_dict

#: Batch states while the provider is still working.
RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
#: Batch states that end a batch without all of its answers.
STOPPED = frozenset({"failed", "expired", "cancelled"})
#: Error codes of a request the batch never ran (the interactive API may still answer it).
NOT_RUN_CODES = frozenset({"batch_expired", "batch_cancelled"})

Parser = Callable[[dict[str, Any]], ModelResponse]


def input_jsonl(lines: list[tuple[str, dict[str, Any]]], url: str) -> bytes:
    """The batch input file: one ``POST url`` request per ``(custom_id, body)``."""
    rows = (
        json.dumps(
            {"custom_id": custom_id, "method": "POST", "url": url, "body": body},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for custom_id, body in lines
    )
    return ("\n".join(rows) + "\n").encode()


def batch_state(status: str, output_file_id: str | None, errors: object) -> BatchStatus:
    """Our state of a batch object.

    A batch that expired or was cancelled after answering some requests has an output file:
    it is ``ended`` (those answers are read; the rest go interactive), not ``failed``.
    """
    detail = f"status {status}"
    message = _first_error(errors)
    if message:
        detail += f": {message}"
    if status in RUNNING:
        return BatchStatus("running", detail)
    if status == "completed" or (status in STOPPED and output_file_id):
        return BatchStatus("ended", detail)
    return BatchStatus("failed", detail)


def _first_error(errors: object) -> str:
    """The first of a batch's ``errors.data[].message`` (why it failed validation)."""
    data = as_dict(errors).get("data")
    for entry in data if isinstance(data, list) else []:
        message = as_dict(entry).get("message")
        if isinstance(message, str):
            return message[:MAX_DETAIL_CHARS]
    return ""


def parse_results(text: str, parse: Parser, label: str) -> dict[str, ModelResponse | ModelError]:
    """The answers in an output or error file, by ``custom_id``; unreadable lines are skipped."""
    results: dict[str, ModelResponse | ModelError] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        custom_id = as_dict(line).get("custom_id")
        if isinstance(custom_id, str):
            results[custom_id] = _outcome(line, parse, label)
    return results


def _outcome(line: dict[str, Any], parse: Parser, label: str) -> ModelResponse | ModelError:
    """One result line as an answer or a ``ModelError`` (retryable for 429/5xx/not run)."""
    error = as_dict(line.get("error"))
    if error:
        code = error.get("code")
        return ModelError(
            f"{label} batch request failed: {code}: {str(error.get('message'))[:MAX_DETAIL_CHARS]}",
            retryable=code in NOT_RUN_CODES,
        )
    response = as_dict(line.get("response"))
    status = response.get("status_code")
    body = as_dict(response.get("body"))
    if status != 200:
        code = status if isinstance(status, int) else 500
        retryable, _ = classify_status(code, None, body)
        detail = as_dict(body.get("error")).get("message") or body
        return ModelError(
            f"{label} batch request HTTP {code}: {str(detail)[:MAX_DETAIL_CHARS]}",
            retryable=retryable,
        )
    try:
        answer = parse(body)
    except ModelError as exc:
        return exc
    return answer.as_batched()
