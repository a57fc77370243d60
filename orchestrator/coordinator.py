"""The Python API and the one-process pipeline behind ``orchestrator run`` and ``demo``.

    results = await Coordinator().execute_workflow(
        workflow="parallel_feature_implementation",
        tasks=["pace_features", "weather_features", "jockey_features"],
    )

plans, runs every task locally in parallel and merges the work into one branch, exactly as the
plan → matrix → aggregate jobs do in GitHub Actions, with the same files under ``out``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.aggregate import aggregate_run, repair_inputs
from orchestrator.config import Config, load_config
from orchestrator.contracts import Aggregate, Plan, Request, TaskResult
from orchestrator.errors import InputError
from orchestrator.executor import execute_plan
from orchestrator.extras import plan_agent_names, require_agents
from orchestrator.fileio import write_model
from orchestrator.gitrepo import head_sha, require_repo
from orchestrator.metrics import run_metrics, write_metrics
from orchestrator.planner import plan_request
from orchestrator.progress import Progress
from orchestrator.repair import verify_stage
from orchestrator.runfolder import claim, default_out_dir
from orchestrator.stats import history_path, learned_records


def cli_request(
    text: str = "",
    *,
    workflow: str | None = None,
    items: list[str] | None = None,
    source: str = "cli",
) -> Request:
    """A request made by a person at a terminal or from code: trusted, always acted on.

    Raises:
        InputError: an item is empty (it would plan a task about nothing).
    """
    flag = "--task" if source == "cli" else "tasks"
    for index, item in enumerate(items or []):
        if not item.strip():
            raise InputError(flag, "" if source == "cli" else str(index), "an item is empty")
    return Request(
        source=source,
        act=True,
        reason=f"requested from the {'command line' if source == 'cli' else 'Python API'}",
        trusted=True,
        workflow=workflow,
        items=[item.strip() for item in items or []],
        text=text.strip(),
    )


@dataclass(frozen=True)
class RunOutcome:
    """Everything a local run produced."""

    plan: Plan
    results: dict[str, TaskResult]
    aggregate: Aggregate | None
    out_dir: Path


async def run_plan(
    plan: Plan,
    *,
    repo: Path,
    out_dir: Path,
    max_parallel: int | None = None,
    progress: Progress | None = None,
    history: Path | None = None,
) -> RunOutcome:
    """Execute a planned plan locally and aggregate it into a branch of ``repo``.

    Writes ``metrics.jsonl`` beside the aggregate and appends it to ``history`` when given.

    Raises:
        MissingExtraError: an agent of the plan (a task's chain or a repair chain) lacks its
            provider SDK; checked before anything is written or run.
    """
    if plan.status == "planned":
        require_agents(plan.agents, plan_agent_names(plan))
    folder = claim(out_dir, plan.run_id)
    write_model(folder.plan, plan)
    if plan.status != "planned":
        return RunOutcome(plan, {}, None, out_dir)
    started = time.monotonic()
    results = await execute_plan(
        plan, repo=repo, out_dir=out_dir, max_parallel=max_parallel, progress=progress
    )
    # Merge, resolve conflicts, verify, fix: what the Actions verify job does.
    verified = await verify_stage(plan, out_dir, repo)
    wall = time.monotonic() - started
    aggregate = aggregate_run(plan, out_dir, repo, out_dir, wall_s=wall)
    for repair in repair_inputs(plan, verified, out_dir):
        if repair.result is not None:
            results[repair.task.id] = repair.result
    write_metrics(out_dir, run_metrics(plan, aggregate, results), history)
    return RunOutcome(plan, results, aggregate, out_dir)


class Coordinator:
    """Plan, execute and merge from Python.

    Args:
        repo: The git repository to work on (clean, with at least one commit).
        config: A config folder (layered over the defaults unless it is a complete set), a
            loaded ``Config``, or None for the repo's ``configs/orchestration`` or the defaults.
        replay: A replay script every agent plays instead of calling its provider: offline,
            no keys, costs simulated (``orchestrator run --replay``).
        out: Where run folders go; default ``<repo>/.orchestrator/runs/<run-id>/``.
        max_parallel: Tasks at once (default: the plan's ``max_parallel``).
        progress: Show progress on stderr.
    """

    def __init__(
        self,
        repo: str | Path = ".",
        *,
        config: str | Path | Config | None = None,
        replay: str | Path | None = None,
        out: str | Path | None = None,
        max_parallel: int | None = None,
        progress: bool = False,
    ) -> None:
        self.repo = Path(repo)
        self._config = config
        self.replay = Path(replay) if replay is not None else None
        self.out = Path(out) if out is not None else None
        self.max_parallel = max_parallel
        self.progress = progress
        self.last_run: RunOutcome | None = None

    @property
    def config(self) -> Config:
        """The config set in use (loaded on first use)."""
        if not isinstance(self._config, Config):
            folder = Path(self._config) if self._config is not None else None
            loaded = load_config(folder, self.repo)
            self._config = loaded.with_replay(self.replay) if self.replay else loaded
        return self._config

    async def plan(self, request: Request) -> Plan:
        """Plan a request against the repository's current ``HEAD``."""
        top = require_repo(self.repo)
        return await plan_request(
            request,
            self.config,
            base_sha=head_sha(top),
            max_parallel=self.max_parallel,
            records=learned_records(self.config, top),
        )

    async def run(self, request: Request) -> RunOutcome:
        """Plan, execute and aggregate one request."""
        plan = await self.plan(request)
        top = require_repo(self.repo)
        out_dir = self.out / plan.run_id if self.out else default_out_dir(top, plan.run_id)
        progress = Progress(plan) if self.progress else None
        self.last_run = await run_plan(
            plan,
            repo=top,
            out_dir=out_dir,
            max_parallel=self.max_parallel,
            progress=progress,
            history=history_path(self.config, top),
        )
        return self.last_run

    async def execute_workflow(
        self, workflow: str, tasks: list[str], request: str = ""
    ) -> Aggregate:
        """Run ``workflow`` over ``tasks`` (items); return the merged outcome.

        The per-task results are in ``self.last_run.results``; files under ``last_run.out_dir``.
        """
        outcome = await self.run(cli_request(request, workflow=workflow, items=tasks, source="api"))
        if outcome.aggregate is None:  # pragma: no cover - a workflow request always plans
            raise RuntimeError(outcome.plan.reason)
        return outcome.aggregate
