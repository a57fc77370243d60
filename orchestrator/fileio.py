# ruff: noqa: PTH103, PTH105, PTH108, PTH118, PTH119, PTH120, PTH123
"""Atomic writes and validated reads of the JSON files passed between stages.

Every stage boundary is a file, so a crash half-way must never leave a truncated file that the
next stage would trust. Writes go to a temporary file in the same folder and are renamed into
place; reads validate against the contract model and raise ``InputError`` naming file and field.
"""

from __future__ import annotations

import json
import os
import re

from orchestrator.errors import InputError

# pydantic, pathlib and tempfile are not imported here: the skip path of ``orchestrator plan``
# reads the event and writes plan.json through this module with the standard library's cheapest
# parts (docs/architecture.md, "Start-up time matters").
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import TypeVar

    from pydantic import BaseModel, ValidationError

    M = TypeVar("M", bound=BaseModel)

#: Tries at a free temporary name before giving up (as ``tempfile.mkstemp`` does).
_TEMP_TRIES = 100


def _temp_file(folder: str, name: str) -> tuple[int, str]:
    """A new ``.<name>.<random>.tmp`` in ``folder``, opened for writing, mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TEMP_TRIES):
        tmp = os.path.join(folder, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name} in {folder}")


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _temp_file(folder, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is one more import on the skip path
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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


def read_text(path: str | os.PathLike[str]) -> str:
    """A UTF-8 text file; a missing or unreadable file is an ``InputError`` naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), "", f"cannot read: {exc}") from None


def load_json(path: str | os.PathLike[str]) -> object:
    """Parse a JSON file, turning every failure into an ``InputError``."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), "", f"invalid JSON at line {exc.lineno}: {exc.msg}") from None


def read_model(path: Path, model: type[M]) -> M:
    """Read and validate a contract file; ``InputError`` names the file and the bad field."""
    from pydantic import ValidationError

    data = load_json(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, message = error_field(exc)
        raise InputError(str(path), field, message) from None
