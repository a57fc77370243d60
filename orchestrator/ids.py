"""Run and task identifiers: how they are made and the patterns they match.

Kept apart from ``contracts.py`` (pydantic) and ``planner.py`` so that the skip path of
``orchestrator plan`` (``trigger_gate.py``) can make a run id and check a command's ids with the
standard library alone.
"""

from __future__ import annotations

import os
import time

__all__ = ["RUN_ID_PATTERN", "TASK_ID_PATTERN", "new_run_id"]

#: A task id: lowercase letters, digits and dashes, at most 63 characters.
TASK_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: A run id as :func:`new_run_id` makes it (``<GITHUB_RUN_ID>-<attempt>`` or a timestamp and
#: suffix), as a command such as ``/status RUN_ID`` may name it.
RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def new_run_id(environ: Mapping[str, str] | None = None) -> str:
    """``<GITHUB_RUN_ID>-<attempt>`` in Actions, else a timestamp plus a random suffix."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_RUN_ID"):
        return f"{env['GITHUB_RUN_ID']}-{env.get('GITHUB_RUN_ATTEMPT', '1')}"
    # os.urandom is what secrets.token_hex reads; the secrets module costs start-up time.
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()
