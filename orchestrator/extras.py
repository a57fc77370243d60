"""Which optional dependencies (extras) a job needs, and a clear error when one is missing.

The package's core (pydantic, PyYAML) runs every command that talks to no model and no API.
Each provider SDK, the GitHub client and the MCP server are extras of ``gh-orchestrator``, so a
job installs only what it uses (``actions/steps.sh install`` reads them from ``ORCH_EXTRAS``):

=============  =============================================================================
job            extras
=============  =============================================================================
plan           ``github`` when it publishes or checks the trigger's permission; the planner
               agent's SDK only when the LLM planner may run (:func:`plan_job_extras`)
task           the SDKs of the task's agent and its backups (:func:`task_extras`)
verify         the SDKs of the plan's repair chains (:func:`repair_extras`)
progress       ``github``
aggregate      ``github`` when it publishes
=============  =============================================================================

Every function here takes only what the caller has (a config, a plan, the job's inputs) and
returns extra names in one fixed order, ready for :func:`format_extras`. Nothing here imports a
provider SDK: the checks (:func:`require_provider`, :func:`require`) ask the import system
whether a module could be found, which is cheap.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from orchestrator.contracts import AgentSpec, Plan
from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.config import Config

#: The distribution name users install (``pip install 'gh-orchestrator[openai]'``).
DISTRIBUTION = "gh-orchestrator"

#: Each extra of pyproject.toml (but ``all``) → modules that must be importable for it, in the
#: order extras are reported.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "openai": ("openai", "httpx2"),
    "anthropic": ("anthropic", "httpx2"),
    "gemini": ("google.genai", "httpx2"),
    "github": ("githubkit", "githubkit_schemas", "httpx"),
    "mcp": ("mcp",),
}

#: Every extra at once.
ALL = "all"

#: Provider name (``agents.yml`` → ``provider:``) → the extra holding its SDK; ``None``: core.
PROVIDER_EXTRAS: dict[str, str | None] = {
    "replay": None,
    "openai": "openai",
    "openai_compatible": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "mcp": "mcp",
    # Vendor CLIs are npm packages, not Python extras (orchestrator/agent_clis/install.py).
    "claude-code": None,
    "codex-cli": None,
    "gemini-cli": None,
}


class MissingExtraError(InputError):
    """An extra a command needs is not installed (exit 2).

    Attributes:
        extra: The extra to install, e.g. ``"anthropic"``.
    """

    def __init__(self, extra: str, source: str, field: str, what: str) -> None:
        self.extra = extra
        super().__init__(source, field, f"{what} needs the {extra!r} extra: {install_hint(extra)}")


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def ordered(extras: Iterable[str]) -> list[str]:
    """``extras`` without repeats, in the fixed order of :data:`EXTRA_MODULES`."""
    wanted = set(extras)
    unknown = wanted - set(EXTRA_MODULES)
    if unknown:
        raise ValueError(f"unknown extras: {', '.join(sorted(unknown))}")
    return [extra for extra in EXTRA_MODULES if extra in wanted]


def format_extras(extras: Iterable[str]) -> str:
    """``extras`` as ``ORCH_EXTRAS`` takes them: space-separated, ``""`` for the core only."""
    return " ".join(ordered(extras))


def provider_extra(agent: str, spec: AgentSpec) -> str | None:
    """The extra ``agent``'s provider needs, or ``None`` (replay needs only the core).

    Raises:
        InputError: the provider is unknown.
    """
    if spec.provider not in PROVIDER_EXTRAS:
        known = ", ".join(sorted(PROVIDER_EXTRAS))
        reason = f"unknown provider {spec.provider!r} ({known})"
        raise InputError("agents.yml", f"agents.{agent}.provider", reason)
    return PROVIDER_EXTRAS[spec.provider]


def agent_extras(agents: Mapping[str, AgentSpec], names: Iterable[str]) -> list[str]:
    """The extras the agents ``names`` need, looked up in ``agents`` (a config's or a plan's).

    Raises:
        InputError: a name is not in ``agents``, or its provider is unknown.
    """
    needed: list[str] = []
    for name in names:
        spec = agents.get(name)
        if spec is None:
            raise InputError("agents.yml", "agents", f"unknown agent {name!r}")
        extra = provider_extra(name, spec)
        if extra is not None:
            needed.append(extra)
    return ordered(needed)


def task_extras(plan: Plan, task_id: str) -> list[str]:
    """What the task job of ``task_id`` installs: the SDKs of its agent and every backup.

    The backups count because a failed attempt falls back to the next agent of the chain, which
    may be another provider.

    Raises:
        InputError: no task ``task_id`` in the plan.
    """
    try:
        task = plan.task(task_id)
    except KeyError:
        raise InputError("plan.json", "tasks", f"no task {task_id!r} in the plan") from None
    return agent_extras(plan.agents, [task.agent, *task.backups])


def repair_extras(plan: Plan) -> list[str]:
    """What the verify job installs: the SDKs of every repair chain (``resolve-*``, ``fix-*``)."""
    return agent_extras(plan.agents, _repair_agent_names(plan))


def plan_agent_names(plan: Plan) -> list[str]:
    """Every agent a whole run of ``plan`` may call: its tasks' chains, then its repair chains."""
    names = [name for task in plan.tasks for name in (task.agent, *task.backups)]
    return list(dict.fromkeys([*names, *_repair_agent_names(plan)]))


def run_extras(plan: Plan) -> list[str]:
    """Every SDK a whole local run of ``plan`` (``orchestrator run``) may use."""
    return agent_extras(plan.agents, plan_agent_names(plan))


def _repair_agent_names(plan: Plan) -> list[str]:
    return [name for chain in plan.repair_chains.values() for name in chain]


def plan_job_extras(
    config: Config,
    *,
    publish: bool,
    event_name: str | None = None,
    workflow: str | None = None,
    items: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """What the plan job installs, decided before it reads the event.

    Args:
        config: The config set the plan job will load.
        publish: The job runs ``orchestrator plan --publish``.
        event_name: The GitHub event the plan reads (``GITHUB_EVENT_NAME``); ``None`` when the
            request comes from the workflow, tasks or request inputs instead.
        workflow: The workflow input, if any (a template plans it: no LLM planner).
        items: The task items, if any (they fan out over a template: no LLM planner).
        environ: Where the planner agent's key is looked for; default ``os.environ``. Without
            its key the planner is never asked (free text falls back to the default workflow).

    Returns:
        ``github`` when the job publishes or, in Actions, checks an event's actor permission;
        the planner agent's SDK when the LLM planner may run. A free-text event may need the
        planner, so it counts; whether it does is known only after the event is read.
    """
    from orchestrator.events import PERMISSION_EXEMPT_SOURCES
    from orchestrator.planner import llm_planner_agent

    needed: list[str] = []
    level = config.settings.trust.confirm_permission
    checks_permission = (
        event_name is not None and event_name not in PERMISSION_EXEMPT_SOURCES and level != "none"
    )
    if publish or checks_permission:
        needed.append("github")
    planner = llm_planner_agent(config, workflow=workflow, items=items, environ=environ)
    if planner is not None:
        needed += agent_extras(config.agents, [planner])
    return ordered(needed)


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (``[]``: it is installed)."""
    return [module for module in EXTRA_MODULES[extra] if not _findable(module)]


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or refuses
        return False


def require(extra: str, *, source: str, field: str = "", what: str) -> None:
    """Refuse when ``extra`` is not installed: before importing it, or where importing it failed.

    Where an import of the extra's modules raised ``ModuleNotFoundError``, call this in the
    ``except`` block and re-raise: when the extra is installed, the error is another one.

    Raises:
        MissingExtraError: one of its modules cannot be found (exit 2).
    """
    if missing_modules(extra):
        raise MissingExtraError(extra, source, field, what)


def require_provider(agent: str, spec: AgentSpec) -> None:
    """Refuse when ``agent``'s provider SDK is not installed.

    A provider this table does not know (one registered in ``providers.PROVIDERS`` at run time)
    needs no extra here; ``build_model`` refuses a name that is in neither.

    Raises:
        MissingExtraError: e.g. ``agents.yml: agents.claude.provider: provider anthropic needs
            the 'anthropic' extra: pip install 'gh-orchestrator[anthropic]'``.
    """
    extra = PROVIDER_EXTRAS.get(spec.provider)
    if extra is not None:
        require(
            extra,
            source="agents.yml",
            field=f"agents.{agent}.provider",
            what=f"provider {spec.provider}",
        )


def require_agents(agents: Mapping[str, AgentSpec], names: Iterable[str]) -> None:
    """Refuse when any of the agents ``names`` lacks its provider SDK (the first one is named).

    A task's whole chain is checked before its first attempt: a backup that could not run
    would otherwise surface only on the day the primary fails.
    """
    for name in dict.fromkeys(names):
        require_provider(name, agents[name])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m orchestrator.extras plan-job``: the plan job's extras, for ``steps.sh``.

    Prints them space-separated (what ``ORCH_EXTRAS`` takes); the arguments are the plan job's
    inputs (``ORCH_CONFIG``, ``GITHUB_EVENT_NAME``, ``ORCH_WORKFLOW``, ``ORCH_TASKS``).
    """
    import argparse
    import sys
    from pathlib import Path

    from orchestrator.config import load_config

    parser = argparse.ArgumentParser(prog="python -m orchestrator.extras")
    sub = parser.add_subparsers(dest="command", required=True)
    job = sub.add_parser("plan-job", help="the extras the plan job needs")
    job.add_argument("--repo", type=Path, default=Path())
    job.add_argument("--config", type=Path)
    job.add_argument("--publish", action="store_true")
    job.add_argument("--event-name")
    job.add_argument("--workflow")
    job.add_argument("--item", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.repo if args.repo.is_dir() else None)
        extras = plan_job_extras(
            config,
            publish=args.publish,
            event_name=args.event_name or None,
            workflow=args.workflow or None,
            items=args.item,
        )
    except InputError as exc:
        sys.stderr.write(f"orchestrator: error: {exc}\n")
        return exc.exit_code
    sys.stdout.write(format_extras(extras) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
