"""What a task will cost before it runs: tokens per task type, priced with an agent's rates.

Tokens come from the run history when it holds at least ``planning.estimate.min_history``
tasks of the type (their mean input and output tokens, whatever agent ran them: the work a
type needs depends little on the agent), else from ``planning.estimate`` (per type, then the
default). An agent's price turns them into dollars; an unknown price is an unknown estimate,
never $0. Prompt-cache discounts are not assumed: the estimate errs on the high side.

The planner records each task's estimate in the plan (``Task.estimated_usd``), routing compares
agents with it (``prefer: cheapest``, ``max_usd``), the tracking comment and ``/plan`` show the
run's total, and matrix jobs share the run budget in proportion to it (``budget.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.config import Estimates
from orchestrator.contracts import AgentSpec, Plan, Usage
from orchestrator.markdown import md_text
from orchestrator.pricing import cost_usd
from orchestrator.stats import AgentTypeRecord
from orchestrator.text import format_usd, plural

Records = Mapping[tuple[str, str], AgentTypeRecord]


@dataclass(frozen=True)
class TokenEstimate:
    """Expected tokens of one task of a type, and where the numbers come from."""

    input_tokens: int
    output_tokens: int
    basis: str

    def usage(self) -> Usage:
        """As a ``Usage``, for pricing."""
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)


def tokens_for(task_type: str, estimates: Estimates, records: Records | None) -> TokenEstimate:
    """The tokens a task of ``task_type`` is expected to use."""
    inputs = outputs = counted = 0
    for (_agent, kind), record in (records or {}).items():
        if kind == task_type:
            inputs += record.input_tokens
            outputs += record.output_tokens
            counted += record.counted
    if counted >= estimates.min_history:
        return TokenEstimate(
            inputs // counted, outputs // counted, f"mean of {counted} {task_type} tasks"
        )
    guess = estimates.by_type.get(task_type)
    if guess is not None:
        return TokenEstimate(
            guess.input_tokens, guess.output_tokens, f"planning.estimate.by_type.{task_type}"
        )
    default = estimates.default
    return TokenEstimate(default.input_tokens, default.output_tokens, "planning.estimate.default")


def task_cost(spec: AgentSpec, tokens: TokenEstimate) -> float | None:
    """The estimated cost of one task on ``spec``; ``None`` when a price is unknown."""
    return cost_usd(spec, tokens.usage())


def total(costs: list[float | None]) -> float | None:
    """Sum of estimates; unknown when any is."""
    if any(cost is None for cost in costs):
        return None
    return sum(cost for cost in costs if cost is not None)


def describe(plan: Plan) -> str:
    """One Markdown line for the tracking comment and the ``/plan`` reply: the run's estimated
    cost, its basis (escaped: config text), and the run budget when one is set."""
    if not plan.tasks:
        return ""
    cost = plan.estimated_usd
    said = f"≈ {format_usd(cost)}" if cost is not None else "unknown (an agent has no price)"
    line = f"**Estimated cost:** {said} for {plural(len(plan.tasks), 'task')}"
    if plan.estimate_basis:
        line += f" (tokens from {md_text(plan.estimate_basis, 300)})"
    if plan.limits.run_max_usd is not None:
        line += f"; run budget {format_usd(plan.limits.run_max_usd)}"
    if plan.batch.enabled:
        line += "; batch mode: turns may be billed at the batch discount"
    return line + "."
