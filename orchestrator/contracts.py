"""The files passed between stages, as versioned pydantic models.

Every arrow in the data flow (event → plan → task results → aggregate) crosses a job boundary
in GitHub Actions, so every message is one of these models, exported as JSON Schema under
``schemas/`` and validated when read. Field names listed in DESIGN.md are a contract: add
fields freely, never rename or remove one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Literal["1"] = "1"

TASK_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN)]

TaskStatus = Literal["succeeded", "failed", "budget_exceeded", "skipped"]
RunStatus = Literal["succeeded", "partial", "failed"]
Command = Literal["orchestrate", "plan", "approve", "retry", "cancel", "status"]


class Contract(BaseModel):
    """Base of every stage file: strict about unknown keys so typos surface as errors."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Request(Contract):
    """What a GitHub event (or a CLI/API call) asks for, and whether we may act on it.

    ``text`` and ``title`` are untrusted user text, already stripped of hidden HTML and
    invisible characters; they are data for prompts, never instructions to this program.
    """

    schema_version: Literal["1"] = SCHEMA_VERSION
    source: str = Field(description="Event name ('issues', 'issue_comment', …) or 'cli'/'api'.")
    action: str | None = None
    act: bool = Field(description="True when the orchestrator should plan and run.")
    reason: str = Field(description="Why it acts or not, one line.")
    repository: str | None = None
    actor: str | None = None
    author_association: str | None = None
    sender_type: str | None = None
    trusted: bool = False
    command: Command | None = None
    command_args: str = ""
    workflow: str | None = None
    items: list[str] = Field(default_factory=list)
    title: str = ""
    text: str = ""
    issue_number: int | None = None
    is_pull_request: bool = False
    is_fork: bool = False
    url: str | None = None


class AgentSpec(Contract):
    """One agent as the plan carries it: enough for a matrix job to build the model client.

    ``api_key`` keeps the ``${ENV_VAR}`` reference, never the secret: the secret is read from
    the environment of the job that makes the call.
    """

    provider: str
    model: str
    api_key: str | None = Field(default=None, pattern=r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
    base_url: str | None = None
    max_tokens: int = Field(default=4096, ge=1)
    script: str | None = None
    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    description: str = ""
    command: list[str] | None = Field(
        default=None, description="provider mcp: the stdio MCP server to start (argv)."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="provider mcp: extra environment for the server; values may be ${VAR}.",
    )
    tool: str | None = Field(default=None, description="provider mcp: the tool that does a task.")

    @property
    def key_env(self) -> str | None:
        """Name of the environment variable holding the API key, if the agent needs one."""
        return self.api_key[2:-1] if self.api_key else None


class Limits(Contract):
    """Per-task and per-run limits the task loop enforces."""

    max_turns: int = Field(default=30, ge=1, le=500)
    max_tokens: int | None = Field(default=None, ge=1)
    max_usd: float | None = Field(default=None, ge=0)
    run_max_usd: float | None = Field(default=None, ge=0)
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    allow_workflow_edits: bool = False


class Task(Contract):
    """One node of the plan's DAG, routed to an agent chain."""

    id: TaskId
    type: str
    title: str
    instructions: str
    agent: str
    backups: list[str] = Field(default_factory=list)
    depends_on: list[TaskId] = Field(default_factory=list)
    wave: int = Field(ge=1)
    stage: str | None = None
    routing_reason: str = ""
    requires_changes: bool = Field(
        default=True, description="The task fails when it leaves no patch (code-writing types)."
    )


class Plan(Contract):
    """The planner's output: tasks in waves, pinned to ``base_sha``, self-contained for jobs."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    run_id: str
    status: Literal["planned", "skipped"]
    reason: str
    base_sha: str | None = None
    created_at: datetime
    workflow: str | None = None
    request: Request | None = None
    tasks: list[Task] = Field(default_factory=list)
    waves: int = 0
    max_parallel: int = Field(default=4, ge=1, le=256)
    awaiting_approval: bool = Field(
        default=False, description="Made by /plan: tasks run only after a trusted /approve."
    )
    agents: dict[str, AgentSpec] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    tracking_comment_id: int | None = Field(
        default=None,
        description="The id of the run's tracking comment, recorded by the plan job that made it: "
        "later jobs read the run's state from that comment only.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        """Every plan read from a file is checked whole: a hand-edited or forged plan must not
        hang the executor (a dependency cycle) or fail half-way (an agent it does not carry).

        Errors read ``field: reason`` so ``fileio.read_model`` can name the field.
        """
        problem = plan_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    def task(self, task_id: str) -> Task:
        """The task with this id; ``KeyError`` when absent."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def wave(self, number: int) -> list[Task]:
        """Tasks of one wave, in plan order."""
        return [task for task in self.tasks if task.wave == number]


def plan_problem(plan: Plan) -> str | None:
    """The first inconsistency of ``plan`` as ``field: reason``, or ``None``.

    Rules: task ids are unique; each dependency names a task of an earlier wave (which also
    rules out cycles, since waves strictly increase along every edge); waves run from 1 to
    ``waves``; every agent and backup is one the plan carries in ``agents``.
    """
    waves: dict[str, int] = {}
    for index, task in enumerate(plan.tasks):
        where = f"tasks[{index}]"
        if task.id in waves:
            return f"{where}.id: duplicate task id {task.id!r}"
        waves[task.id] = task.wave
        for dep in task.depends_on:
            if dep not in waves:
                later = any(t.id == dep for t in plan.tasks)
                why = "comes later in the plan (or forms a cycle)" if later else "is not a task"
                return f"{where}.depends_on: {dep!r} {why}"
            if waves[dep] >= task.wave:
                return (
                    f"{where}.wave: {task.id!r} is in wave {task.wave} but depends on {dep!r} "
                    f"in wave {waves[dep]}; a dependency must be in an earlier wave"
                )
        if task.wave > plan.waves:
            return f"{where}.wave: {task.wave} is beyond the plan's {plan.waves} waves"
        for role, name in [("agent", task.agent), *(("backups", b) for b in task.backups)]:
            if name not in plan.agents:
                return f"{where}.{role}: agent {name!r} is not in the plan's agents"
    if plan.tasks and plan.waves != max(waves.values()):
        return f"waves: is {plan.waves}, but the deepest task is in wave {max(waves.values())}"
    if plan.tasks and sorted(set(waves.values())) != list(range(1, plan.waves + 1)):
        return "waves: every wave from 1 to waves must hold a task"
    return None


class Usage(Contract):
    """Token counts; ``cached_input_tokens`` is the part of input served from a prompt cache."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
        )

    @property
    def total(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


class Retry(Contract):
    """A failed model call that was retried on the same agent after a wait."""

    error: str
    wait_s: float = Field(ge=0)


class Attempt(Contract):
    """One agent's try at a task: which agent, how it ended, what it cost."""

    agent: str
    provider: str
    model: str
    status: TaskStatus
    error: str | None = None
    calls: int = 0
    turns: int = 0
    wait_s: float = 0.0
    retries: list[Retry] = Field(default_factory=list)
    cache_hits: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = 0.0
    started_at: datetime
    finished_at: datetime


class ReviewComment(Contract):
    """An inline review comment an agent asked for (published later, by the aggregate job)."""

    path: str
    line: int = Field(ge=1)
    body: str
    task_id: str | None = None


class TaskResult(Contract):
    """What one task left behind: ``tasks/<id>/result.json``."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    task_id: TaskId
    run_id: str | None = Field(
        default=None, description="The run this result belongs to (aggregate refuses others)."
    )
    base_sha: str | None = Field(default=None, description="The plan's base commit.")
    status: TaskStatus
    agent: str | None
    attempts: list[Attempt] = Field(default_factory=list)
    summary: str = ""
    files_changed: list[str] = Field(default_factory=list)
    review_comments: list[ReviewComment] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = 0.0
    started_at: datetime
    finished_at: datetime
    duration_s: float = 0.0
    turns: int = 0
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    cost_simulated: bool = Field(
        default=False,
        description="The usage was replayed (provider replay): the cost is what it would have "
        "cost at the configured prices, not money spent.",
    )


class AggregateTask(Contract):
    """One task's line in ``aggregate.json``."""

    id: str
    status: TaskStatus
    agent: str | None = None
    applied: bool = False
    conflict_files: list[str] = Field(default_factory=list)
    cost_usd: float | None = 0.0
    duration_s: float = 0.0
    commit: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Conflict(Contract):
    """A patch that did not apply; the patch itself is kept at ``patch``."""

    task_id: str
    files: list[str]
    patch: str


class Totals(Contract):
    """Run totals; ``speedup`` is ``task_s_sum / wall_s`` (what parallelism bought)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float | None = 0.0
    wall_s: float = 0.0
    task_s_sum: float = 0.0
    speedup: float = 0.0
    cost_simulated: bool = Field(
        default=False, description="Some of the cost comes from replayed (simulated) usage."
    )


class Aggregate(Contract):
    """The merged outcome of a run: ``aggregate.json``."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    run_id: str
    status: RunStatus
    reason: str = ""
    branch: str | None = None
    base_sha: str | None = None
    head_sha: str | None = None
    tasks: list[AggregateTask] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    review_comments: list[ReviewComment] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)
    pr: dict[str, Any] | None = None


#: Every exported contract, by schema file name (``schemas/<name>.schema.json``).
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "request": Request,
    "plan": Plan,
    "result": TaskResult,
    "aggregate": Aggregate,
}
