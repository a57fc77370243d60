"""A run's money: what it has spent, and what each task of a wave may still spend.

``limits.run_max_usd`` must hold when the tasks of a wave run as separate matrix jobs, each of
which knows only its own spend and the results of earlier waves it downloaded. So a task does
not race the others for the remaining budget; it gets an *allowance*, fixed when its wave
starts and computed from inputs every job of the wave has alike:

    allowance = (run_max_usd − spend of waves < k) × weight(task) / Σ weight(tasks of waves ≥ k)

where a task's weight is the planner's cost estimate (``Task.estimated_usd``) when every
remaining task has one, else 1 (an equal share). The allowances of wave k sum to at most the
remaining budget, and each later wave keeps the share its tasks are estimated to need; what a
wave leaves unspent goes back to the waves after it, because wave k + 1 recomputes from the
actual spend. The local executor uses the same rule (the same plan spends the same way on a
laptop and in Actions).

When the spend of earlier waves has reached the budget, a task is not started: its result is
``budget_exceeded`` with the reason. A per-agent cap (``agents.<name>.max_usd_per_run``) is
shared the same way among the remaining tasks whose agent chain names that agent; an agent
whose cap is spent is skipped for the next one of the chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from orchestrator.contracts import Limits, Plan, Task, TaskResult


@dataclass
class Spend:
    """Money a run has spent so far, in all and per agent (unknown costs count as 0)."""

    usd: float = 0.0
    by_agent: dict[str, float] = field(default_factory=dict)

    def __call__(self) -> float:
        """The run's spend (the loop's ``spent_usd`` callable)."""
        return self.usd

    def add(self, result: TaskResult) -> None:
        """Count a finished task's attempts."""
        for attempt in result.attempts:
            cost = attempt.cost_usd or 0.0
            self.usd += cost
            self.by_agent[attempt.agent] = self.by_agent.get(attempt.agent, 0.0) + cost

    @classmethod
    def of(cls, results: Iterable[TaskResult]) -> Spend:
        """The spend of ``results`` (e.g. the earlier waves' downloaded results)."""
        spend = cls()
        for result in results:
            spend.add(result)
        return spend


@dataclass(frozen=True)
class TaskBudget:
    """What one task may spend, fixed when its wave starts.

    Attributes:
        run_usd: The task's share of the run budget, or ``None`` without ``run_max_usd``.
        agent_usd: Per agent of the task's chain with a cap, its share of what is left of it.
        spent_before: The run's spend before the wave (the loop adds its own on top).
        stop_reason: Set when the run's budget is spent: the task must not start.
        basis: How the shares were weighted, for the reason a limit is reported with.
    """

    run_usd: float | None = None
    agent_usd: dict[str, float] = field(default_factory=dict)
    spent_before: Spend = field(default_factory=Spend)
    stop_reason: str | None = None
    basis: str = ""

    def agent_stop_reason(self, agent: str) -> str | None:
        """Why ``agent`` may not be tried for this task (its per-run cap is spent), or None."""
        left = self.agent_usd.get(agent)
        if left is not None and left <= 0:
            spent = self.spent_before.by_agent.get(agent, 0.0)
            return f"{agent}: max_usd_per_run reached (${spent:.4f} spent by the run)"
        return None

    def limits_for(self, agent: str, limits: Limits, spent_by_task: float) -> Limit:
        """The loop limits of one attempt: ``max_usd`` lowered to what is left of the shares,
        and which share that is."""
        caps: list[tuple[float, str]] = []
        if limits.max_usd is not None:
            caps.append((limits.max_usd, ""))
        if self.run_usd is not None:
            share = f" — the task's share of run_max_usd ({self.basis})"
            caps.append((max(self.run_usd - spent_by_task, 0.0), share))
        if agent in self.agent_usd:
            share = f" — {agent}'s share of its max_usd_per_run ({self.basis})"
            caps.append((self.agent_usd[agent], share))
        if not caps:
            return Limit(limits)
        usd, why = min(caps, key=lambda cap: cap[0])
        return Limit(limits.model_copy(update={"max_usd": usd}), why, agent_cap=agent in why)


@dataclass(frozen=True)
class Limit:
    """One attempt's limits, and why its ``max_usd`` is what it is.

    Attributes:
        limits: What the loop enforces.
        why: Appended to a ``max_usd`` budget_exceeded reason ("" for the plan's own max_usd).
        agent_cap: The agent's share of its ``max_usd_per_run`` is the binding limit: an
            attempt it stops before any call hands over to the next agent of the chain.
    """

    limits: Limits
    why: str = ""
    agent_cap: bool = False


def task_budget(plan: Plan, task: Task, earlier: Iterable[TaskResult]) -> TaskBudget:
    """The budget of ``task`` given the results of the waves before its own.

    Args:
        plan: The plan (limits, agents, every task's estimate).
        task: A task of the plan, or a repair task (its wave is after the plan's last: it gets
            what the plan's tasks and earlier repairs left).
        earlier: Results of earlier tasks (others are ignored). A task of an earlier wave
            without a result (its job died or was cancelled) is assumed to have spent its
            whole allowance: its real spend is unknown, and assuming nothing would let the
            later waves spend it again.
    """
    return _shares(plan, task, _spend_before(plan, task.wave, earlier))


def _spend_before(plan: Plan, wave: int, results: Iterable[TaskResult]) -> Spend:
    """What the run spent before ``wave``: results, or the allowance of a task without one."""
    done = {result.task_id: result for result in results}
    spend = Spend()
    for earlier in range(1, min(wave, plan.waves + 1)):
        at_start = Spend(spend.usd, dict(spend.by_agent))
        for task in plan.wave(earlier):
            result = done.pop(task.id, None)
            if result is not None:
                spend.add(result)
                continue
            assumed = _shares(plan, task, at_start)
            spend.usd += assumed.run_usd or 0.0
            lost = assumed.agent_usd.get(task.agent, 0.0)
            spend.by_agent[task.agent] = spend.by_agent.get(task.agent, 0.0) + lost
    plan_ids = {task.id for task in plan.tasks}
    for result in done.values():  # repairs of the verify stage, after every wave
        if result.task_id not in plan_ids and wave > plan.waves:
            spend.add(result)
    return spend


def _shares(plan: Plan, task: Task, spend: Spend) -> TaskBudget:
    """``task``'s shares of what is left after ``spend``."""
    remaining = [t for t in plan.tasks if t.wave >= task.wave]
    if task not in remaining:
        remaining.append(task)
    weights, basis = _weights(remaining)
    limit = plan.limits.run_max_usd
    if limit is not None and spend.usd >= limit:
        return TaskBudget(
            spent_before=spend,
            basis=basis,
            stop_reason=(
                f"not started: the run has spent ${spend.usd:.4f} of its "
                f"run_max_usd ${limit:.4f} in earlier waves"
            ),
        )
    run_usd = None
    if limit is not None:
        run_usd = (limit - spend.usd) * weights[task.id] / sum(weights.values())
    agent_usd: dict[str, float] = {}
    for agent in dict.fromkeys([task.agent, *task.backups]):
        spec = plan.agents.get(agent)
        if spec is None or spec.max_usd_per_run is None:
            continue
        sharing = [t for t in remaining if agent in (t.agent, *t.backups)]
        left = spec.max_usd_per_run - spend.by_agent.get(agent, 0.0)
        agent_usd[agent] = max(left, 0.0) * weights[task.id] / sum(weights[t.id] for t in sharing)
    return TaskBudget(run_usd=run_usd, agent_usd=agent_usd, spent_before=spend, basis=basis)


def _weights(tasks: list[Task]) -> tuple[dict[str, float], str]:
    estimates = [t.estimated_usd for t in tasks]
    if all(e is not None and e > 0 for e in estimates):
        return {t.id: t.estimated_usd or 0.0 for t in tasks}, "shares by cost estimate"
    return {t.id: 1.0 for t in tasks}, "equal shares: not every task has a cost estimate"
