"""The files passed between stages, as versioned pydantic models.

Every arrow in the data flow (event → plan → task results → aggregate) crosses a job boundary
in GitHub Actions, so every message is one of these models, exported as JSON Schema under
``schemas/`` and validated when read. Field names listed in DESIGN.md are a contract: add
fields freely, never rename or remove one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.agent_clis.catalog import CLIS
from orchestrator.ids import TASK_ID_PATTERN

SCHEMA_VERSION: Literal["1"] = "1"

TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN)]

TaskStatus = Literal["succeeded", "failed", "budget_exceeded", "skipped"]
RunStatus = Literal["succeeded", "partial", "failed"]
Command = Literal["orchestrate", "plan", "approve", "retry", "cancel", "status"]


class Contract(BaseModel):
    """Base of every stage file: strict about unknown keys so typos surface as errors."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


#: How a run calls its models: interactively, or through the providers' batch APIs.
RunMode = Literal["interactive", "batch"]


class ImageRef(Contract):
    """An image of the request (a screenshot in the issue), stored in the run folder.

    The plan job downloads it once (from GitHub's own hosts only, size-capped) into
    ``images/<sha256>.<ext>`` beside ``plan.json``; every task job reads it from there.
    """

    name: str = Field(description="The image's alt text or file name, for people and prompts.")
    media_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    path: str = Field(
        pattern=r"^images/[0-9a-f]{64}\.(png|jpg|gif|webp)$",
        description="Relative to the run folder.",
    )
    size: int = Field(ge=1)
    source_url: str = Field(description="Where it was linked from (not fetched again).")


class PullRequestContext(Contract):
    """The pull request a command was given on, as the plan job read it from the API.

    It decides where the run works and lands: on a PR from this repository the plan is pinned
    to ``head_sha`` and the work is pushed onto ``head_ref``; on a PR from a fork it is pinned
    to ``base_sha`` (a commit of this repository: fork code is never checked out) and the work
    becomes a follow-up PR into ``base_ref``. ``diff`` is the PR's change as GitHub lists it,
    untrusted text given to agents as data.
    """

    number: int = Field(ge=1)
    head_ref: str
    head_sha: str = Field(pattern=r"^[0-9a-f]{40}$")
    head_repo: str | None = Field(
        default=None, description="OWNER/REPO of the head; None when the fork was deleted."
    )
    base_ref: str
    base_sha: str = Field(pattern=r"^[0-9a-f]{40}$")
    fork: bool = Field(description="The head is in another repository than the base.")
    diff: str = Field(
        default="", description="The PR's changed files and hunks (data), cut at a size cap."
    )

    @property
    def work_base(self) -> str:
        """The commit a run on this PR starts from: its head, or its base for a fork."""
        return self.base_sha if self.fork else self.head_sha


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
    pull_request: PullRequestContext | None = Field(
        default=None,
        description="The PR a command was given on, read by the plan job (docs/github.md).",
    )
    images: list[ImageRef] = Field(
        default_factory=list, description="Screenshots of the request, fetched by the plan job."
    )
    mode: RunMode | None = Field(
        default=None, description="batch or interactive, when the trigger says (a schedule)."
    )


#: The providers that are vendors' coding-agent CLIs (``orchestrator/agent_clis/catalog.py``).
AGENT_CLI_PROVIDERS = frozenset(CLIS)
#: A vendor CLI's default ``timeout_s``: the wall-clock limit of its whole run.
AGENT_CLI_TIMEOUT_S = 1200.0


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
    cache_write_per_mtok: float | None = Field(
        default=None, ge=0, description="Prompt-cache writes; unset: billed as input."
    )
    batch_discount: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of the price a batch-API call costs (0.5 = half); unset: the agent "
        "is never batched.",
    )
    price_source: str | None = Field(default=None, description="Where the prices come from.")
    price_checked: date | None = Field(
        default=None, description="When the prices were last checked against price_source."
    )
    api: Literal["responses", "chat"] | None = Field(
        default=None,
        description="provider openai: the wire API; unset: chosen by model family "
        "(docs/providers/openai.md).",
    )
    vision: bool = Field(default=False, description="The model accepts images.")
    max_usd_per_run: float | None = Field(
        default=None, ge=0, description="This agent's spend cap per run (then the next agent)."
    )
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds one model request may take; for an agent CLI, its whole run "
        "(default 1200).",
    )
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
    version: str | None = Field(
        default=None,
        pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]*$",
        description="providers claude-code, codex-cli, gemini-cli: the CLI's npm version; unset: "
        "the pinned one (docs/providers/agent-clis.md).",
    )
    args: list[str] = Field(
        default_factory=list,
        description="providers claude-code, codex-cli, gemini-cli: extra command-line arguments.",
    )

    @model_validator(mode="after")
    def _agent_cli_wall_clock(self) -> AgentSpec:
        # A vendor CLI's timeout_s bounds its whole run, not one model request: 120 s is the
        # default of a request, far too short for an agent that plans, edits and tests.
        if self.provider in AGENT_CLI_PROVIDERS and "timeout_s" not in self.model_fields_set:
            self.timeout_s = AGENT_CLI_TIMEOUT_S
        return self

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


class SandboxSettings(Contract):
    """``settings.yml`` → ``sandbox``: the process sandbox of ``run_command`` and verify."""

    run_command: bool = Field(
        default=False, description="Offer agents run_command (only where the sandbox works)."
    )
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    memory_mb: int = Field(default=4096, ge=64)
    max_processes: int = Field(default=256, ge=8)
    output_bytes: int = Field(default=64_000, ge=1000, description="Head and tail kept.")
    disk_mb: int = Field(default=1024, ge=1, description="Bytes a command may write in all.")
    commands: list[str] | None = Field(
        default=None,
        description="Program names run_command may start (first word); null allows any.",
    )


class VerifySettings(Contract):
    """``settings.yml`` → ``verify``: the check the merged branch must pass."""

    command: str | None = Field(
        default=None, description="e.g. 'python -m pytest -q'; null detects one."
    )
    timeout_s: float = Field(default=600.0, gt=0, le=7200)
    fix_rounds: int = Field(default=1, ge=0, le=5, description="0 disables fix-up tasks.")


class BatchSettings(Contract):
    """``settings.yml`` → ``batch``: non-urgent runs through the providers' batch APIs.

    A multi-turn agent loop cannot be batched whole: each model turn is a batch request
    (the turns of concurrent tasks on one endpoint share a batch), polled until it ends;
    a turn not answered in ``max_wait_s`` goes to the interactive API, as does every turn
    once a task has waited ``max_total_s`` in all (docs/batch.md).
    """

    schedules: bool = Field(
        default=True, description="Scheduled runs are batch runs unless they say otherwise."
    )
    window_s: float = Field(default=2.0, ge=0, le=60, description="Turns collected per batch.")
    poll_s: float = Field(default=30.0, gt=0, le=600)
    # At most 20 minutes of batch waiting per task (each turn at most 10) leaves 10 minutes of
    # the reusable workflow's default 30-minute task job for the turns that go interactive.
    max_wait_s: float = Field(default=600.0, gt=0, description="Per turn, then interactive.")
    max_total_s: float = Field(
        default=1200.0,
        gt=0,
        description="Per task, then interactive.",
    )


class BatchPlan(BatchSettings):
    """``plan.json`` → ``batch``: whether this run batches, and why."""

    enabled: bool = False
    reason: str = ""


class MergeSettings(Contract):
    """``settings.yml`` → ``merge``."""

    resolve_conflicts: bool = Field(
        default=True, description="A resolve-<id> task tries each conflict (kept if verified)."
    )


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
    estimated_usd: float | None = Field(
        default=None, description="Expected cost on its agent (estimate.py); null: unknown."
    )


class Reuse(Contract):
    """What a ``/retry`` plan takes over from the run it retries, instead of running it again."""

    workflow_run_id: int = Field(
        ge=1, description="The GitHub Actions run that holds the reused tasks' artifacts."
    )
    tasks: list[TaskId] = Field(
        default_factory=list,
        description="Task ids whose results (and patches) are reused, not run again.",
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
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    merge: MergeSettings = Field(default_factory=MergeSettings)
    batch: BatchPlan = Field(default_factory=BatchPlan)
    estimated_usd: float | None = Field(
        default=None, description="The tasks' estimates summed; null when any is unknown."
    )
    estimate_basis: str = Field(default="", description="Where the token estimates come from.")
    repair_chains: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Agent chain per repair task type (debugging: fix-*, integration: "
        "resolve-*), routed at plan time so later jobs need no config.",
    )
    tracking_comment_id: int | None = Field(
        default=None,
        description="The id of the run's tracking comment, recorded by the plan job that made it: "
        "later jobs read the run's state from that comment only.",
    )
    reuse: Reuse | None = Field(
        default=None,
        description="Set by /retry: the tasks that are not run again, and the workflow run "
        "whose artifacts hold their results.",
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

    def to_run(self, number: int) -> list[Task]:
        """Tasks of one wave that run in this workflow run (a ``/retry`` reuses the others)."""
        reused = set(self.reuse.tasks) if self.reuse else set()
        return [task for task in self.wave(number) if task.id not in reused]


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
    for task_type, chain in plan.repair_chains.items():
        for name in chain:
            if name not in plan.agents:
                return f"repair_chains.{task_type}: agent {name!r} is not in the plan's agents"
    if plan.tasks and plan.waves != max(waves.values()):
        return f"waves: is {plan.waves}, but the deepest task is in wave {max(waves.values())}"
    if plan.tasks and sorted(set(waves.values())) != list(range(1, plan.waves + 1)):
        return "waves: every wave from 1 to waves must hold a task"
    if plan.reuse is not None:
        for task_id in plan.reuse.tasks:
            if task_id not in waves:
                return f"reuse.tasks: {task_id!r} is not a task of the plan"
    return None


class Usage(Contract):
    """Token counts. ``input_tokens`` is every input token of the call;
    ``cached_input_tokens`` (read from a prompt cache) and ``cache_write_input_tokens``
    (written to it, priced at its own rate on Anthropic and OpenAI's newer models) are parts of
    it. ``batched_requests`` counts calls served by a batch API (billed at its discount)."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_write_input_tokens: int = Field(default=0, ge=0)
    batched_requests: int = Field(default=0, ge=0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_input_tokens=self.cache_write_input_tokens + other.cache_write_input_tokens,
            batched_requests=self.batched_requests + other.batched_requests,
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
    stacked_on: list[str] = Field(
        default_factory=list,
        description="Task ids whose patches were applied under this task's tree, in order: "
        "its patch is relative to base_sha plus these.",
    )
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
    log_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s()<>\[\]]+/actions/runs/\d+/job/\d+$",
        description="The page of the job that ran the task (GitHub Actions), when known.",
    )
    cost_simulated: bool = Field(
        default=False,
        description="The usage was replayed (provider replay): the cost is what it would have "
        "cost at the configured prices, not money spent.",
    )


VerifyStatus = Literal["passed", "failed", "skipped"]


class VerifyRound(Contract):
    """One run of the verify command on the merged tree."""

    command: str | None = None
    status: VerifyStatus
    exit_code: int | None = None
    duration_s: float = 0.0
    output_tail: str = ""
    reason: str = Field(default="", description="Why it was skipped, or what it stopped on.")
    culprit: str | None = Field(
        default=None,
        description="The first task whose commit turned the command red, or 'base' when the "
        "base commit was already red (a failed round only).",
    )
    head_sha: str | None = None


class VerifyRecord(VerifyRound):
    """The final verify (``aggregate.json`` → ``verify``); earlier rounds in ``rounds``."""

    rounds: list[VerifyRound] = Field(default_factory=list)


#: The task type of each kind of task the verify stage adds (``fix-<id>``, ``resolve-<id>``).
REPAIR_TASK_TYPES: dict[str, str] = {"fix": "debugging", "resolve": "integration"}


class Repair(Contract):
    """A task the verify stage added: ``fix-<id>`` (debugging) or ``resolve-<id>`` (integration)."""

    task_id: TaskId
    kind: Literal["fix", "resolve"]
    of: str = Field(description="The task (or 'base') it fixes, or the conflicting task.")
    kept: bool = False
    reason: str = ""

    @property
    def task_type(self) -> str:
        """``debugging`` for a fix, ``integration`` for a resolution."""
        return REPAIR_TASK_TYPES[self.kind]

    @property
    def title(self) -> str:
        """The task's title and commit subject."""
        return repair_title(self.kind, self.of)


def repair_title(kind: str, of: str) -> str:
    """The title (and commit subject) of a repair task of ``kind`` for the task ``of``."""
    if kind == "resolve":
        return f"Resolve the conflict of {of}"
    return f"Fix what broke the tests after {of}"


class VerifyOutcome(Contract):
    """What the verify stage leaves in the run folder: ``verify.json``.

    ``repairs`` lists the added tasks in the order their patches land after the plan's tasks;
    the aggregate step applies the kept ones, and nothing else, deterministically.
    """

    schema_version: Literal["1"] = SCHEMA_VERSION
    run_id: str
    base_sha: str | None = None
    verify: VerifyRecord
    repairs: list[Repair] = Field(default_factory=list)
    stage_s: float = Field(
        default=0.0, description="Wall time of the whole stage: merges, repairs, verify runs."
    )


class AggregateTask(Contract):
    """One task's line in ``aggregate.json``."""

    id: str
    status: TaskStatus
    type: str | None = Field(default=None, description="The task's type (routing_rules.yml).")
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
    repair_of: str | None = Field(
        default=None, description="For a fix-*/resolve-* task: the task (or 'base') it repairs."
    )
    resolved_by: str | None = Field(
        default=None, description="For a conflicting task: the resolve-* task that merged it."
    )


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
    verify_s: float = Field(
        default=0.0, description="Part of wall_s spent in the verify stage (verify.json)."
    )
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
    verify: VerifyRecord | None = Field(
        default=None, description="The final verify of the merged branch, when one ran."
    )


#: Every exported contract, by schema file name (``schemas/<name>.schema.json``).
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "request": Request,
    "plan": Plan,
    "result": TaskResult,
    "aggregate": Aggregate,
    "verify": VerifyOutcome,
}
