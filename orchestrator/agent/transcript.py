"""The task's transcript: every prompt, model turn, tool call and outcome, as JSON lines.

Events stay in memory until ``write`` puts them in ``transcript.jsonl`` atomically. Every
string is passed through the redactor when it is recorded, so secrets never reach the
artifact (nor the in-memory copy).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.fileio import write_atomic

Redactor = Callable[[str], str]


class Transcript:
    """An append-only list of events, written as one JSON object per line.

    Args:
        redactor: Applied to every string value recorded (secrets → ``***``).
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor
        self.events: list[dict[str, Any]] = []

    def record(self, kind: str, **data: Any) -> None:
        """Append an event ``{ts, kind, **data}`` (values made JSON-safe and redacted)."""
        event: dict[str, Any] = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds")}
        event["kind"] = kind
        for key, value in data.items():
            event[key] = self._clean(value)
        self.events.append(event)

    def lines(self) -> list[str]:
        """The events as JSON lines (without newlines)."""
        return [json.dumps(event, ensure_ascii=False) for event in self.events]

    def text(self) -> str:
        """The whole transcript as JSONL text."""
        return "".join(line + "\n" for line in self.lines())

    def write(self, path: Path) -> None:
        """Write the transcript to ``path`` atomically."""
        write_atomic(path, self.text())

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor(value) if self._redactor else value
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, BaseModel):
            return self._clean(value.model_dump(mode="json"))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._clean(dataclasses.asdict(value))
        if isinstance(value, Mapping):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        if isinstance(value, datetime):
            return value.isoformat()
        return self._clean(str(value))
