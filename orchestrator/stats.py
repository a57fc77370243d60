"""``orchestrator stats``: a run history rendered as Markdown tables and Mermaid charts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import Config
from orchestrator.fileio import PRIVATE_DIR, private_dir
from orchestrator.metrics import RunMetrics, read_history


@dataclass
class AgentTypeRecord:
    """What the history says about one agent on one task type."""

    runs: int = 0
    succeeded: int = 0
    seconds: float = 0.0
    cost: float = 0.0
    priced: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    counted: int = 0  # tasks whose tokens were recorded (metrics lines since tokens were added)

    @property
    def success_rate(self) -> float:
        """Share of tasks that succeeded."""
        return self.succeeded / self.runs if self.runs else 0.0

    @property
    def mean_s(self) -> float:
        """Mean task duration."""
        return self.seconds / self.runs if self.runs else 0.0

    @property
    def mean_cost(self) -> float | None:
        """Mean cost of the tasks with a known cost, None when none had one."""
        return self.cost / self.priced if self.priced else None


def agent_type_records(history: Sequence[RunMetrics]) -> dict[tuple[str, str], AgentTypeRecord]:
    """(agent, task type) → record, over every task of every run."""
    records: dict[tuple[str, str], AgentTypeRecord] = defaultdict(AgentTypeRecord)
    for run in history:
        for task in run.per_task:
            if task.agent is None or task.status == "skipped":
                continue
            record = records[(task.agent, task.type)]
            record.runs += 1
            record.succeeded += task.status == "succeeded"
            record.seconds += task.duration_s
            if task.cost_usd is not None:
                record.cost += task.cost_usd
                record.priced += 1
            if task.input_tokens or task.output_tokens:
                record.input_tokens += task.input_tokens
                record.output_tokens += task.output_tokens
                record.counted += 1
    return dict(records)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def render_stats(history: Sequence[RunMetrics]) -> str:
    """Markdown: runs, agents, task types, and charts of speedup and cost."""
    if not history:
        return "No runs in the history yet.\n"
    lines = [f"## Orchestrator history: {len(history)} runs", "", "### Runs", ""]
    lines += [
        "| run | finished (UTC) | workflow | status | tasks | sequential | parallel | speedup "
        "| fallbacks | error rate | cost | quality |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in history:
        quality = ""
        if run.quality:
            reactions = " ".join(f"{k}:{v}" for k, v in sorted(run.quality.reactions.items()))
            quality = f"{run.quality.pr_state or ''} {reactions}".strip()
        lines.append(
            f"| `{run.run_id}` | {run.finished_at:%Y-%m-%d %H:%M} | {run.workflow or '-'} "
            f"| {run.status} | {run.succeeded}/{run.tasks} | {run.sequential_s:.1f}s "
            f"| {run.parallel_s:.1f}s | {run.speedup:.2f}× | {run.fallbacks} "
            f"| {run.error_rate:.0%} | {_usd(run.cost_usd)}"
            f"{' (simulated)' if run.cost_simulated and run.cost_usd is not None else ''} "
            f"| {quality} |"
        )
    lines += ["", "### Agents by task type", ""]
    lines += [
        "| agent | task type | tasks | success rate | mean time | mean cost |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (agent, task_type), rec in sorted(agent_type_records(history).items()):
        lines.append(
            f"| {agent} | {task_type} | {rec.runs} | {rec.success_rate:.0%} "
            f"| {rec.mean_s:.1f}s | {_usd(rec.mean_cost)} |"
        )
    cost_by_type: dict[str, float] = defaultdict(float)
    cost_by_agent: dict[str, float] = defaultdict(float)
    for run in history:
        for entry in run.task_types:
            cost_by_type[entry.task_type] += entry.cost_usd or 0.0
        for task in run.per_task:
            if task.agent is not None:
                cost_by_agent[task.agent] += task.cost_usd or 0.0
    lines += ["", "### Cost per task type", "", "| task type | cost (known) |", "|---|---:|"]
    lines += [f"| {name} | ${cost:.4f} |" for name, cost in sorted(cost_by_type.items())]
    lines += ["", "### Charts", "", "```mermaid", "xychart-beta", '  title "Speedup per run"']
    labels = ", ".join(f'"{i + 1}"' for i in range(len(history)))
    lines += [f"  x-axis [{labels}]", '  y-axis "task time ÷ wall time"']
    lines += [f"  bar [{', '.join(f'{run.speedup:.2f}' for run in history)}]", "```", ""]
    if any(cost_by_agent.values()):
        lines += ["```mermaid", 'pie title "Cost by agent (USD)"']
        lines += [f'  "{agent}" : {cost:.4f}' for agent, cost in sorted(cost_by_agent.items())]
        lines += ["```", ""]
    return "\n".join(lines) + "\n"


def history_path(config: Config, repo: Path) -> Path:
    """The run history file of a repository (``planning.history``, relative to the repo)."""
    path = Path(config.settings.planning.history)
    if path.is_absolute():
        return path
    if path.parts[:1] == (PRIVATE_DIR,):
        private_dir(repo)  # keep the repository clean
    return repo / path


def learned_records(config: Config, repo: Path) -> dict[tuple[str, str], AgentTypeRecord] | None:
    """History records for routing, or None when learning is off or there is no history."""
    if not config.settings.planning.learn_routing:
        return None
    path = history_path(config, repo)
    if not path.exists():
        return None
    return agent_type_records(read_history([path]))
