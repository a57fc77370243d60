"""Atomic writes and validated reads of the JSON files passed between stages.

Every stage boundary is a file, so a crash half-way must never leave a truncated file that the
next stage would trust. Writes go to a temporary file in the same folder and are renamed into
place; reads validate against the contract model and raise ``InputError`` naming file and field.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.errors import InputError

M = TypeVar("M", bound=BaseModel)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


PRIVATE_DIR = ".orchestrator"


def private_dir(repo: Path) -> Path:
    """``<repo>/.orchestrator/``, created with a ``.gitignore`` of ``*`` so git ignores it.

    Run folders, the response cache and the run history live there without dirtying the
    repository (and without the agents' sandbox, which shows tracked files only, seeing them).
    """
    root = repo / PRIVATE_DIR
    marker = root / ".gitignore"
    if not marker.exists():
        write_atomic(marker, "*\n")
    return root


def write_model(path: Path, model: BaseModel) -> None:
    """Serialise a contract model to pretty JSON, atomically."""
    write_atomic(path, model.model_dump_json(indent=2) + "\n")


def error_field(error: ValidationError) -> tuple[str, str]:
    """The dotted location and message of a validation error's first problem."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "value_error":
        # Model-level checks (``Plan._consistent``) say ``field: reason``; name that field.
        message = message.removeprefix("Value error, ")
        inner = _FIELD_REASON.match(message)
        if inner:
            nested = inner.group(1)
            field = f"{field}.{nested}" if field else nested
            message = inner.group(2)
    return field, message


_FIELD_REASON = re.compile(r"^([A-Za-z_][\w.\[\]-]*): (.+)$", re.DOTALL)


def read_text(path: Path) -> str:
    """A UTF-8 text file; a missing or unreadable file is an ``InputError`` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), "", f"cannot read: {exc}") from None


def load_json(path: Path) -> object:
    """Parse a JSON file, turning every failure into an ``InputError``."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), "", f"invalid JSON at line {exc.lineno}: {exc.msg}") from None


def read_model(path: Path, model: type[M]) -> M:
    """Read and validate a contract file; ``InputError`` names the file and the bad field."""
    data = load_json(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, message = error_field(exc)
        raise InputError(str(path), field, message) from None
