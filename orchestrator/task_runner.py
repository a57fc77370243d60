"""Run one task of a plan: the same code for a matrix job and for the local executor.

The task works on its tree (``agent/workspace.py``): the plan's base plus the stack of earlier
waves' work, with the agent's changes in an overlay, checked out on disk only when a command
needs it. It tries its agent chain in order (the next agent takes over when one fails) and
leaves three files under ``OUT/tasks/<id>/``: ``changes.patch`` (relative to its stacked tree),
``transcript.jsonl`` and, written last so that its presence means "finished", ``result.json``.
Everything written is passed through redaction.

Each attempt's model comes from ``build_model`` with retries, the endpoint's rate limits and a
response cache (``ORCHESTRATOR_CACHE_DIR``, else ``<workspace>/.orchestrator/cache/``; ``off``
disables it). Its retries, waits and cache hits are recorded on the attempt; its answers are
kept in the cache only when the attempt's work is kept.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.agent.loop import LoopOutcome, run_agent
from orchestrator.agent.shell import Shell
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Stack, Workspace
from orchestrator.budget import Limit, TaskBudget
from orchestrator.contracts import (
    AGENT_CLI_PROVIDERS,
    Attempt,
    BatchPlan,
    Plan,
    Retry,
    Task,
    TaskResult,
    TaskStatus,
    Usage,
)
from orchestrator.errors import InputError
from orchestrator.extras import require_agents
from orchestrator.fileio import private_dir, write_atomic, write_model
from orchestrator.gitrepo import Objects
from orchestrator.pricing import add_costs
from orchestrator.prompts import (
    agent_cli_rules,
    request_images,
    shared_context,
    system_prompt,
    task_prompt,
)
from orchestrator.providers import ManagedModel, build_model
from orchestrator.providers.base import Image
from orchestrator.providers.cache import is_cacheable
from orchestrator.providers.ratelimit import register_limits
from orchestrator.providers.stats import ModelStats
from orchestrator.redact import Redactor, default_redactor
from orchestrator.runfolder import RunFolder

#: Environment variable naming the response cache folder.
CACHE_DIR_ENV = "ORCHESTRATOR_CACHE_DIR"
#: Values of ``ORCHESTRATOR_CACHE_DIR`` that turn the cache off.
CACHE_OFF = frozenset({"off", "0", "none", "false"})


def cache_dir_for(workspace_root: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Where model responses are cached: ``ORCHESTRATOR_CACHE_DIR`` (``off``/``0``/``none``
    disables the cache), else ``<workspace_root>/.orchestrator/cache/``.

    The default lives in the checkout, so ``.orchestrator/.gitignore`` (``*``) is created when
    missing: the repository stays clean and the agents' sandbox never sees the cache.
    """
    env = os.environ if environ is None else environ
    configured = env.get(CACHE_DIR_ENV, "").strip()
    if configured.lower() in CACHE_OFF:
        return None
    if configured:
        return Path(configured)
    return private_dir(workspace_root) / "cache"


@dataclass
class _TaskRun:
    """One task's run across its agent chain: what every attempt leaves for the result."""

    plan: Plan
    task: Task
    root: Path
    redact: Redactor
    stack: Stack
    transcript: Transcript
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    attempts: list[Attempt] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outcome: LoopOutcome | None = None
    workspace: Workspace | None = None
    toolbox: ToolBox | None = None
    status: TaskStatus = "failed"
    error: str | None = None
    repo_files: list[str] = field(default_factory=list)
    images: tuple[Image, ...] = ()
    batch_waited: float = 0.0

    async def attempt(
        self,
        agent: str,
        prompt: str,
        cache_dir: Path | None,
        budget: TaskBudget,
    ) -> bool:
        """One agent's try; True when its work is kept (the chain stops)."""
        spec = self.plan.agents[agent]
        began = datetime.now(UTC)
        self.transcript.record("attempt", agent=agent, provider=spec.provider, model=spec.model)
        capped = budget.agent_stop_reason(agent)
        if capped:  # the agent's per-run cap is spent: the next agent of the chain takes over
            return self._refuse(agent, capped, began)
        if self.workspace is not None:  # a fresh tree for each agent: no half-done work carries
            await asyncio.to_thread(self.workspace.close)
        self.workspace = await asyncio.to_thread(
            Workspace.open, self.root, self.plan.base_sha or "", self.plan.limits, stack=self.stack
        )
        runner = Shell.for_settings(self.plan.sandbox)
        self.toolbox = ToolBox(self.workspace, task_id=self.task.id, commands=runner)
        if runner.reason:
            self._warn(runner.reason)
        if spec.key_env and not os.environ.get(spec.key_env):
            self.outcome = None
            self.error = f"{agent}: {spec.key_env} is not set in this job's environment"
            self.attempts.append(self._record(agent, "failed", self.error, began))
            self.transcript.record("error", agent=agent, error=self.error)
            return False
        spent_by_task = sum(a.cost_usd or 0.0 for a in self.attempts)
        limit = budget.limits_for(agent, self.plan.limits, spent_by_task)
        spent_before = budget.spent_before.usd + spent_by_task
        if spec.provider in AGENT_CLI_PROVIDERS:
            return await self._cli_attempt(agent, prompt, limit, spent_before, began)
        batch = self._batch_left()
        model = build_model(
            agent, spec, self.task.id, cache_dir=cache_dir, defer_cache_writes=True, batch=batch
        )
        self.outcome = await run_agent(
            model,
            self.toolbox,
            system=system_prompt(self.plan, commands=self.toolbox.offers_commands),
            context=shared_context(self.plan, self.repo_files),
            prompt=prompt,
            images=self.images,
            cache_key=self.plan.run_id,
            limits=limit.limits,
            transcript=self.transcript,
            spent_usd=lambda: spent_before,
        )
        self.batch_waited += model.stats.batch_wait_s
        self.status, self.error = _judge(self.task, self.outcome, self.workspace)
        if self.status == "budget_exceeded" and self.error and self.error.startswith("max_usd"):
            self.error += limit.why
            if limit.agent_cap and self.outcome.calls == 0:
                # Nothing done, and only this agent's cap stood in the way: hand over.
                model.discard()
                return self._refuse(agent, self.error, began)
        for warning in [*self.outcome.warnings, *model.stats.notes]:
            self._warn(warning)
        self.attempts.append(self._record(agent, self.status, self.error, began, model))
        for retry in self.attempts[-1].retries:
            self.transcript.record("retry", agent=agent, error=retry.error, wait_s=retry.wait_s)
        if self.status in ("succeeded", "budget_exceeded"):
            model.commit()
            return True
        model.discard()
        self.transcript.record("fallback", agent=agent, error=self.error)
        return False

    async def _cli_attempt(
        self, agent: str, prompt: str, limit: Limit, spent_before: float, began: datetime
    ) -> bool:
        """One attempt on a vendor CLI (``agent_clis``); True when its work is kept."""
        from orchestrator.agent_clis.runner import CliAttempt

        assert self.workspace is not None
        context = shared_context(self.plan, self.repo_files)
        self.outcome = await CliAttempt(
            agent,
            self.plan.agents[agent],
            self.workspace,
            limit.limits,
            self.plan.sandbox,
            prompt=f"{context}\n\n{prompt}" if context else prompt,
            rules=agent_cli_rules(self.plan),
            transcript=self.transcript,
            spent_usd=lambda: spent_before,
        ).run()
        self.status, self.error = _judge(self.task, self.outcome, self.workspace)
        if self.status == "budget_exceeded" and self.error and self.error.startswith("max_usd"):
            self.error += limit.why
        for warning in self.outcome.warnings:
            self._warn(warning)
        self.attempts.append(self._record(agent, self.status, self.error, began, self.outcome))
        if self.status in ("succeeded", "budget_exceeded"):
            return True
        self.transcript.record("fallback", agent=agent, error=self.error)
        return False

    def _batch_left(self) -> BatchPlan | None:
        """The plan's batch settings with ``max_total_s`` less what earlier agents of the chain
        waited on batches: the limit is the task's, whichever agent asks (``None``: none left,
        or the run is interactive)."""
        batch = self.plan.batch
        left = batch.max_total_s - self.batch_waited
        if not batch.enabled or left <= 0:
            return None
        return batch.model_copy(update={"max_total_s": left})

    def _refuse(self, agent: str, reason: str, began: datetime) -> bool:
        """Record an agent its budget kept from working; the chain goes on (False). A task
        whose every agent was refused ends ``budget_exceeded``."""
        self.status, self.error, self.outcome = "budget_exceeded", reason, None
        self.attempts.append(self._record(agent, "budget_exceeded", reason, began))
        self.transcript.record("budget", agent=agent, reason=reason)
        return False

    def _warn(self, warning: str) -> None:
        if warning not in self.warnings:
            self.warnings.append(warning)

    def _record(
        self,
        agent: str,
        status: TaskStatus,
        error: str | None,
        began: datetime,
        ran: ManagedModel | LoopOutcome | None = None,
    ) -> Attempt:
        """The attempt's record; ``ran`` is the model it used (its outcome is ``self.outcome``)
        or a CLI attempt's outcome, ``None`` when no agent ran."""
        spec = self.plan.agents[agent]
        model = ran if isinstance(ran, ManagedModel) else None
        stats = model.stats if model is not None else ModelStats()
        clean = self.redact.redact
        outcome = self.outcome if ran is not None else None
        return Attempt(
            agent=agent,
            provider=spec.provider,
            model=spec.model,
            status=status,
            error=clean(error) if error else None,
            wait_s=stats.wait_s,
            retries=[Retry(error=clean(r.error), wait_s=r.wait_s) for r in stats.retries],
            cache_hits=stats.cache_hits,
            calls=outcome.calls if outcome else 0,
            turns=outcome.turns if outcome else 0,
            usage=outcome.usage if outcome else Usage(),
            cost_usd=outcome.cost_usd if outcome else 0.0,
            started_at=began,
            finished_at=datetime.now(UTC),
        )

    async def finish(self, folder: RunFolder) -> TaskResult:
        """Write the task's three files (result last) and return the result."""
        if self.status == "failed" and len(self.attempts) > 1:
            self.error = _chain_failure(self.attempts)
        finished = datetime.now(UTC)
        workspace = self.workspace
        keep = workspace is not None and self.status != "failed"
        patch = await asyncio.to_thread(workspace.diff_bytes) if keep and workspace else b""
        if workspace is not None:
            await asyncio.to_thread(workspace.close)
        cost: float | None = 0.0
        for attempt in self.attempts:
            cost = add_costs(cost, attempt.cost_usd)
        unpriced = sorted({a.agent for a in self.attempts if a.cost_usd is None})
        if unpriced:
            # Unknown is reported as unknown (null), never as $0.
            self._warn(f"cost unknown: no price configured for {', '.join(unpriced)}")
        result = self._result(patch, cost, finished)
        task_id = self.task.id
        clean = self.redact.redact(patch.decode("utf-8", "surrogateescape"))
        write_atomic(folder.patch(task_id), clean.encode("utf-8", "surrogateescape"))
        self.transcript.write(folder.transcript(task_id))
        write_model(folder.result(task_id), result)
        return result

    def _result(self, patch: bytes, cost: float | None, finished: datetime) -> TaskResult:
        redact = self.redact.redact
        outcome, toolbox = self.outcome, self.toolbox
        kept = self.status != "failed"
        comments = toolbox.review_comments if toolbox and kept else []
        return TaskResult(
            task_id=self.task.id,
            run_id=self.plan.run_id,
            base_sha=self.plan.base_sha,
            stacked_on=list(self.stack.applied),
            status=self.status,
            agent=self.attempts[-1].agent if self.attempts else None,
            attempts=self.attempts,
            summary=redact(outcome.summary if outcome and kept else ""),
            files_changed=self.workspace.changed_files() if self.workspace and patch else [],
            review_comments=[
                c.model_copy(update={"body": redact(c.body), "task_id": self.task.id})
                for c in comments
            ],
            usage=sum((a.usage for a in self.attempts), Usage()),
            cost_usd=cost,
            started_at=self.started,
            finished_at=finished,
            duration_s=round((finished - self.started).total_seconds(), 3),
            turns=sum(a.turns for a in self.attempts),
            error=redact(self.error) if self.error else None,
            warnings=[redact(w) for w in self.warnings],
            cost_simulated=any(a.provider == "replay" and a.calls for a in self.attempts),
        )


async def run_task(
    plan: Plan,
    task_id: str,
    *,
    workspace_root: Path,
    out_dir: Path,
    budget: TaskBudget | None = None,
    redactor: Redactor | None = None,
    stack: Stack | None = None,
    task: Task | None = None,
) -> TaskResult:
    """Run ``task_id`` of ``plan`` on the checkout at ``workspace_root``; write its files.

    Args:
        plan: The plan (agents, limits, sandbox settings, base commit).
        task_id: The task to run.
        workspace_root: The repository checkout holding the plan's base commit.
        out_dir: The run folder (``OUT/tasks/<id>/`` is written).
        budget: What the task may spend (``budget.task_budget``); default: the plan's limits
            with nothing spent before.
        redactor: Secret redaction of everything written (default: from the environment).
        stack: Earlier waves' work under the task (``stacking.stack_for_wave``).
        task: The task itself, for a repair task (``fix-*``, ``resolve-*``) the plan does not list.

    Raises:
        InputError: the task id is not in the plan, the plan was skipped, or has no base_sha.
        MissingExtraError: an agent of the task's chain lacks its provider SDK (an extra).
    """
    if task is None:
        try:
            task = plan.task(task_id)
        except KeyError:
            known = ", ".join(t.id for t in plan.tasks) or "none"
            raise InputError(
                "--task", "", f"no task {task_id!r} in the plan (tasks: {known})"
            ) from None
    if plan.status != "planned" or not plan.base_sha:
        raise InputError("--plan", "status", "the plan was skipped or has no base_sha")
    redact = redactor or default_redactor()
    stack = stack or Stack()
    run = _TaskRun(plan, task, workspace_root, redact, stack, Transcript(redactor=redact.redact))
    chain = [task.agent, *task.backups]
    require_agents(plan.agents, chain)  # every SDK the chain may fall back to, before any work
    # Agents sharing an endpoint share its limits; the smallest configured one applies.
    register_limits(plan.agents.values())
    cacheable = any(is_cacheable(plan.agents[agent]) for agent in chain)
    cache_dir = cache_dir_for(workspace_root) if cacheable else None
    prompt = task_prompt(plan, task, out_dir, stack)
    budget = budget or TaskBudget(run_usd=plan.limits.run_max_usd)
    if budget.stop_reason:
        run.status, run.error = "budget_exceeded", budget.stop_reason
        run.transcript.record("error", error=budget.stop_reason)
        return await run.finish(RunFolder(out_dir))
    run.images = request_images(plan, out_dir)
    run.repo_files = await asyncio.to_thread(_base_files, workspace_root, plan.base_sha)
    for agent in chain:
        if await run.attempt(agent, prompt, cache_dir, budget):
            break
    return await run.finish(RunFolder(out_dir))


def _judge(task: Task, outcome: LoopOutcome, workspace: Workspace) -> tuple[TaskStatus, str | None]:
    """Turn a loop outcome into a task status; a code task that changed nothing failed."""
    if outcome.status == "succeeded" and task.requires_changes and not workspace.changed_files():
        return "failed", f"{task.type} task finished without changing any file"
    return outcome.status, outcome.error


def _chain_failure(attempts: list[Attempt]) -> str:
    """Why a task failed when every agent of its chain failed: each agent's error, in order."""
    reasons = "; ".join(_without_agent_prefix(a.agent, a.error or "failed") for a in attempts)
    return f"all {len(attempts)} agents failed: {reasons}"


def _without_agent_prefix(agent: str, error: str) -> str:
    # Loop errors already read "agent: ..."; others get the prefix, so each part names its agent.
    return error if error.startswith(f"{agent}:") else f"{agent}: {error}"


def _base_files(root: Path, base: str) -> list[str]:
    """The paths of the base commit, for the shared repository map."""
    return sorted(Objects.of(root).tree(base).entries)
