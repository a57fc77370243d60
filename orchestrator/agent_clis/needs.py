"""Which vendor CLIs a task job installs: those its agent chain may run, at their versions.

The task job reads this from the plan (``python -m orchestrator.github.artifacts task-names``
outputs ``agent-clis``), so a job whose chain runs no CLI installs none, and the npm cache key
is made of exactly the versions installed.
"""

from __future__ import annotations

from orchestrator.agent_clis.catalog import CLIS
from orchestrator.contracts import Plan


def task_clis(plan: Plan, task_id: str) -> list[str]:
    """``provider@version`` of each CLI the chain of ``task_id`` may run (chain order, once).

    The backups count: a failed attempt falls back to the next agent, which may be a CLI.

    Raises:
        KeyError: ``task_id`` is not in the plan.
    """
    task = plan.task(task_id)
    wanted: list[str] = []
    for name in (task.agent, *task.backups):
        spec = plan.agents[name]
        cli = CLIS.get(spec.provider)
        if cli is not None:
            wanted.append(f"{cli.provider}@{spec.version or cli.version}")
    return list(dict.fromkeys(wanted))


def cache_key(clis: list[str]) -> str:
    """A cache-key part naming ``clis`` (``claude-code-2.1.332_codex-cli-0.171.0``)."""
    return "_".join(cli.replace("@", "-") for cli in sorted(clis))
