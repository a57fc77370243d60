"""Errors that map to the CLI's exit codes.

``InputError`` means "bad input or config" (exit 2); its message is one line naming the file and
field, so a user can fix it without reading a traceback. ``RunFailedError`` means the program
ran and the work failed (exit 1).
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base class of every error the orchestrator raises on purpose."""

    exit_code = 1


class InputError(OrchestratorError):
    """A file, argument or payload is malformed; exit code 2.

    Args:
        source: The file (or ``--flag``/``<payload>``) that was being read.
        field: Dotted path of the offending field, or ``""`` when the whole input is bad.
        reason: What is wrong, in one short sentence.
    """

    exit_code = 2

    def __init__(self, source: str, field: str, reason: str) -> None:
        self.source = str(source)
        self.field = field
        self.reason = " ".join(str(reason).split())
        location = f"{self.source}: {field}" if field else self.source
        super().__init__(f"{location}: {self.reason}")


class RunFailedError(OrchestratorError):
    """The orchestration ran but did not succeed; exit code 1."""

    exit_code = 1
