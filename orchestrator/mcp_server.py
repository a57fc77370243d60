"""``orchestrator mcp``: the orchestrator as a stdio MCP server, for Copilot and other clients.

Tools (each answers a short text for people and structured content validated by a model
here, whose nested ``plan``/``aggregate`` are the contract models of ``contracts.py``):

* ``plan``: a request (free text, or a workflow over tasks) → the ``Plan`` and its Mermaid
  graph; the plan is also saved as ``<repo>/.orchestrator/runs/<run-id>/plan.json``.
* ``run_local``: plan, run every task locally in parallel and merge the work into one branch
  (what ``orchestrator run`` does) → the ``Aggregate``, the run folder and ``summary.md``.
* ``dispatch``: start the orchestration workflow on GitHub through ``workflow_dispatch``
  (``GITHUB_TOKEN``, ``GITHUB_API_URL``).
* ``status``: a local run's tasks with their statuses, or a GitHub run's jobs.
* ``results``: a finished local run's ``Aggregate`` and ``summary.md``.

Every failure (bad input, unknown run, a git or GitHub error) comes back as an MCP tool error
(``isError``) with a one-line reason, never a traceback. Everything the server answers is
passed through secret redaction.

The server speaks MCP on stdout, so nothing here may print there; run progress is not shown
(the client waits for the tool's answer).
"""

from __future__ import annotations

import functools
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.contracts import Aggregate, Plan, Request, TaskResult, TaskStatus
from orchestrator.coordinator import Coordinator, cli_request
from orchestrator.errors import OrchestratorError
from orchestrator.extras import require
from orchestrator.fileio import read_model, write_model
from orchestrator.gitrepo import require_repo
from orchestrator.redact import Redactor, default_redactor
from orchestrator.report import mermaid_plan, statuses_of
from orchestrator.runfolder import RUNS_DIR, default_out_dir

try:
    import anyio.to_thread
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, InputRequiredResult, TextContent
except ModuleNotFoundError:  # a lean install without the mcp extra
    require("mcp", source="orchestrator mcp", what="the MCP server")
    raise

SERVER_NAME = "orchestrator"
DEFAULT_API_URL = "https://api.github.com"
#: Environment variable giving the default repository (``repo="."``), e.g. the editor's folder.
REPO_ENV = "ORCHESTRATOR_REPO"
DEFAULT_WORKFLOW_FILE = "orchestrate.yml"
#: Seconds a GitHub REST call may take.
GITHUB_TIMEOUT_S = 30.0
#: Pages of jobs read for one GitHub run (100 jobs a page).
MAX_JOB_PAGES = 10

INSTRUCTIONS = """Multi-agent orchestrator: plans a request into typed tasks, routes each to an \
agent, runs them in parallel and merges the work into one branch. Use `plan` to see the tasks \
and their graph, `run_local` to run them here (the repository must be a clean git checkout), \
`status`/`results` to read a run, and `dispatch` to start the same orchestration in GitHub \
Actions."""

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class McpToolError(Exception):
    """A tool's expected failure; its message is the one line the client sees."""


# ---------------------------------------------------------------------------- outputs


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanOutput(_Output):
    """What ``plan`` answers."""

    plan: Plan
    mermaid: str = Field(description="The plan's task graph, a fenced Mermaid flowchart.")
    plan_path: str = Field(description="Where plan.json was saved.")


class RunOutput(_Output):
    """What ``run_local`` answers."""

    run_id: str
    plan_status: Literal["planned", "skipped"]
    reason: str
    aggregate: Aggregate | None = Field(description="None when the plan was skipped.")
    run_dir: str
    summary_path: str | None = None
    mermaid: str


class DispatchOutput(_Output):
    """What ``dispatch`` answers."""

    repository: str
    workflow_file: str
    ref: str
    inputs: dict[str, str]
    status_code: int
    workflow_run_id: int | None = None
    run_url: str | None = None
    html_url: str | None = None


class TaskLine(_Output):
    """One task of a local run, with its status."""

    id: str
    title: str
    type: str
    agent: str
    wave: int
    depends_on: list[str]
    status: TaskStatus | Literal["pending"]
    error: str | None = None
    duration_s: float | None = None


class JobLine(_Output):
    """One job of a GitHub Actions run."""

    id: int
    name: str
    status: str
    conclusion: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    html_url: str | None = None


class StatusOutput(_Output):
    """What ``status`` answers: tasks for a local run, jobs for a GitHub run."""

    run_id: str
    source: Literal["local", "github"]
    state: str = Field(
        description="local: skipped | planned | running | finished; github: queued | "
        "in_progress | completed (from the jobs)."
    )
    run_status: str | None = Field(
        default=None,
        description="local: the aggregate's status once finished; github: the "
        "overall conclusion once every job completed.",
    )
    run_dir: str | None = None
    tasks: list[TaskLine] = Field(default_factory=list)
    jobs: list[JobLine] = Field(default_factory=list)


class ResultsOutput(_Output):
    """What ``results`` answers."""

    run_id: str
    aggregate: Aggregate
    summary: str = Field(description="summary.md of the run.")
    run_dir: str
    summary_path: str


# ---------------------------------------------------------------------------- arguments

RequestArg = Annotated[
    str | None, Field(description="What to do, in free text (planned by the LLM planner).")
]
WorkflowArg = Annotated[
    str | None,
    Field(description="A workflow of workflows.yml, e.g. parallel_feature_implementation."),
]
TasksArg = Annotated[
    list[str] | None, Field(description="Items the workflow fans out over (one task each).")
]
RepoArg = Annotated[
    str,
    Field(
        description="Path of the git repository to work on; '.' is ORCHESTRATOR_REPO when the "
        "server has it, else the server's working directory."
    ),
]
ConfigArg = Annotated[
    str | None,
    Field(description="Config folder (agents.yml, routing_rules.yml, workflows.yml)."),
]
RunIdArg = Annotated[
    str,
    Field(
        description="A local run id (folder under <repo>/.orchestrator/runs/), a run folder's "
        "path, or with `repository` a GitHub Actions run id."
    ),
]


# ---------------------------------------------------------------------------- tools


async def plan(
    request: RequestArg = None,
    workflow: WorkflowArg = None,
    tasks: TasksArg = None,
    repo: RepoArg = ".",
    config: ConfigArg = None,
) -> Annotated[CallToolResult, PlanOutput]:
    """Plan a request: the typed tasks in waves, their agents, and the Mermaid graph.

    Give free text (`request`), or a `workflow` with `tasks`, or `tasks` alone (the default
    workflow). Nothing runs; the plan is saved under <repo>/.orchestrator/runs/<run-id>/.
    """
    return await _answer(_plan, request, workflow, tasks, repo, config)


async def run_local(
    request: RequestArg = None,
    workflow: WorkflowArg = None,
    tasks: TasksArg = None,
    repo: RepoArg = ".",
    config: ConfigArg = None,
    max_parallel: Annotated[int | None, Field(ge=1, le=256, description="Tasks at once.")] = None,
    out: Annotated[
        str | None,
        Field(description="Folder for run folders (default <repo>/.orchestrator/runs)."),
    ] = None,
) -> Annotated[CallToolResult, RunOutput]:
    """Plan and run an orchestration locally; merge the work into one branch of `repo`.

    Same inputs as `plan`. The repository must be a clean git checkout; your checkout is not
    modified (the work lands on a new branch). Answers the run's aggregate and summary path.
    """
    return await _answer(_run_local, request, workflow, tasks, repo, config, max_parallel, out)


async def dispatch(
    workflow: Annotated[str, Field(description="The workflow of workflows.yml to run.")],
    repository: Annotated[str, Field(description="The GitHub repository, OWNER/NAME.")],
    tasks: TasksArg = None,
    request: RequestArg = None,
    ref: Annotated[str, Field(description="Branch or tag to run the workflow on.")] = "main",
    workflow_file: Annotated[
        str, Field(description="The workflow file (or id) that has the workflow_dispatch trigger.")
    ] = DEFAULT_WORKFLOW_FILE,
) -> Annotated[CallToolResult, DispatchOutput]:
    """Start the orchestration in GitHub Actions (workflow_dispatch) with GITHUB_TOKEN.

    The workflow receives the inputs `workflow`, `tasks` (one per line) and `request`.
    """
    return await _answer(_dispatch, workflow, repository, tasks, request, ref, workflow_file)


async def status(
    run_id: RunIdArg,
    repo: RepoArg = ".",
    repository: Annotated[
        str | None,
        Field(description="OWNER/NAME: read the jobs of GitHub Actions run `run_id` instead."),
    ] = None,
) -> Annotated[CallToolResult, StatusOutput]:
    """A run's progress: each task's status (pending until it finishes), or a GitHub run's jobs."""
    return await _answer(_status, run_id, repo, repository)


async def results(
    run_id: RunIdArg,
    repo: RepoArg = ".",
) -> Annotated[CallToolResult, ResultsOutput]:
    """A finished local run's aggregate (tasks, branch, conflicts, totals) and summary.md."""
    return await _answer(_results, run_id, repo)


TOOLS: tuple[Callable[..., Awaitable[Any]], ...] = (plan, run_local, dispatch, status, results)


class _Server(MCPServer):
    """``MCPServer`` whose argument-validation errors are one line, like every other error."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Any = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, ValidationError):
                cause = cause.__cause__
            if cause is None:
                raise
            first = cause.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "arguments"
            raise ToolError(f"invalid arguments for {name}: {where}: {first['msg']}") from None


def build_server() -> MCPServer:
    """The MCP server with the five tools (not started)."""
    server = _Server(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")
    for tool in TOOLS:
        server.add_tool(tool, name=tool.__name__, structured_output=True)
    return server


def serve_stdio() -> None:
    """Serve MCP on stdin/stdout until the client closes the connection."""
    build_server().run("stdio")


# ---------------------------------------------------------------------------- plumbing


async def _answer(
    implementation: Callable[..., Awaitable[tuple[str, _Output]]], *args: Any
) -> CallToolResult:
    """Run a tool; answer its text and structured output, redacted, or a one-line error."""
    redactor = default_redactor()
    try:
        text, output = await implementation(*args)
    except McpToolError as exc:
        raise ToolError(_one_line(redactor, str(exc))) from None
    except OrchestratorError as exc:
        raise ToolError(_one_line(redactor, str(exc))) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ToolError(_one_line(redactor, f"invalid data: {where}: {first['msg']}")) from None
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise ToolError(_one_line(redactor, f"internal error: {detail}")) from None
    structured = redactor.redact_obj(output.model_dump(mode="json"))
    try:
        type(output).model_validate(structured)
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise ToolError(
            f"the answer holds a secret where it cannot be redacted ({where}); "
            "remove the secret from the request"
        ) from None
    return CallToolResult(
        content=[TextContent(type="text", text=redactor.redact(text))],
        structured_content=structured,
    )


def repo_path(repo: str) -> Path:
    """The repository a tool works on: ``repo``; ``"."`` means ``ORCHESTRATOR_REPO`` if set."""
    if repo.strip() in ("", ".") and os.environ.get(REPO_ENV, "").strip():
        return Path(os.environ[REPO_ENV].strip()).expanduser()
    return Path(repo).expanduser()


def _one_line(redactor: Redactor, text: str) -> str:
    return redactor.redact(" ".join(text.split()))[:1000]


def _request_for(request: str | None, workflow: str | None, tasks: list[str] | None) -> Request:
    items = [item for item in tasks or [] if item.strip()]
    if not ((request or "").strip() or workflow or items):
        raise McpToolError("give a request, or a workflow with tasks, or tasks")
    made = cli_request(request or "", workflow=workflow or None, items=items, source="api")
    return made.model_copy(update={"reason": "requested by an MCP client"})


def _coordinator(repo: str, config: str | None, **kwargs: Any) -> Coordinator:
    return Coordinator(repo_path(repo), config=Path(config) if config else None, **kwargs)


def _plan_text(plan: Plan) -> list[str]:
    lines = [f"{plan.status}: {plan.reason} (run {plan.run_id})"]
    for task in plan.tasks:
        deps = f" after {', '.join(task.depends_on)}" if task.depends_on else ""
        lines.append(f"  wave {task.wave}  {task.id} [{task.type}] → {task.agent}{deps}")
    return lines


async def _plan(
    request: str | None,
    workflow: str | None,
    tasks: list[str] | None,
    repo: str,
    config: str | None,
) -> tuple[str, PlanOutput]:
    made = _request_for(request, workflow, tasks)
    coordinator = _coordinator(repo, config)
    planned = await coordinator.plan(made)
    top = require_repo(repo_path(repo), clean=False)
    path = default_out_dir(top, planned.run_id) / "plan.json"
    write_model(path, planned)
    graph = mermaid_plan(planned)
    text = "\n".join([*_plan_text(planned), f"plan: {path}", "", graph])
    return text, PlanOutput(plan=planned, mermaid=graph, plan_path=str(path))


async def _run_local(
    request: str | None,
    workflow: str | None,
    tasks: list[str] | None,
    repo: str,
    config: str | None,
    max_parallel: int | None,
    out: str | None,
) -> tuple[str, RunOutput]:
    made = _request_for(request, workflow, tasks)
    coordinator = _coordinator(
        repo, config, out=Path(out) if out else None, max_parallel=max_parallel
    )
    outcome = await coordinator.run(made)
    planned = outcome.plan
    aggregate = outcome.aggregate
    summary = outcome.out_dir / "summary.md"
    lines = _plan_text(planned)
    if aggregate is not None:
        lines.append(
            f"run {aggregate.run_id}: {aggregate.status}"
            + (f" — {aggregate.reason}" if aggregate.reason else "")
        )
        if aggregate.branch:
            lines.append(f"branch: {aggregate.branch}")
    lines.append(f"run folder: {outcome.out_dir}")
    if summary.exists():
        lines.append(f"summary: {summary}")
    graph = mermaid_plan(planned, statuses_of(aggregate) if aggregate else None)
    return "\n".join(lines), RunOutput(
        run_id=planned.run_id,
        plan_status=planned.status,
        reason=planned.reason,
        aggregate=aggregate,
        run_dir=str(outcome.out_dir),
        summary_path=str(summary) if summary.exists() else None,
        mermaid=graph,
    )


def _run_dir(run_id: str, repo: str) -> Path:
    """The folder of a local run: a path to it, or ``<repo>/.orchestrator/runs/<run_id>``."""
    given = Path(run_id).expanduser()
    if ("/" in run_id or os.sep in run_id) and given.is_dir():
        if not (given / "plan.json").is_file():
            raise McpToolError(f"{given} is not a run folder (no plan.json)")
        return given
    if not _RUN_ID.match(run_id):
        raise McpToolError(f"{run_id!r} is neither a run id nor a run folder")
    top = require_repo(repo_path(repo), clean=False)
    runs = top / RUNS_DIR
    folder = runs / run_id
    if not (folder / "plan.json").is_file():
        known = (
            sorted(p.name for p in runs.iterdir() if (p / "plan.json").is_file())
            if (runs.is_dir())
            else []
        )
        hint = f"latest: {', '.join(known[-5:])}" if known else "no runs yet"
        raise McpToolError(f"no run {run_id!r} under {runs} ({hint})")
    return folder


async def _status(run_id: str, repo: str, repository: str | None) -> tuple[str, StatusOutput]:
    if repository:
        return await _github_status(run_id, repository)
    folder = _run_dir(run_id, repo)
    planned = read_model(folder / "plan.json", Plan)
    lines: list[TaskLine] = []
    finished = 0
    for task in planned.tasks:
        result_path = folder / "tasks" / task.id / "result.json"
        result = read_model(result_path, TaskResult) if result_path.is_file() else None
        finished += result is not None
        lines.append(
            TaskLine(
                id=task.id,
                title=task.title,
                type=task.type,
                agent=(result.agent or task.agent) if result else task.agent,
                wave=task.wave,
                depends_on=task.depends_on,
                status=result.status if result else "pending",
                error=result.error if result else None,
                duration_s=result.duration_s if result else None,
            )
        )
    aggregate_path = folder / "aggregate.json"
    aggregate = read_model(aggregate_path, Aggregate) if aggregate_path.is_file() else None
    if planned.status == "skipped":
        state = "skipped"
    elif aggregate is not None:
        state = "finished"
    else:
        state = "running" if finished else "planned"
    text = [f"run {planned.run_id}: {state}" + (f" ({aggregate.status})" if aggregate else "")]
    text += [f"  {line.id}: {line.status} ({line.agent})" for line in lines]
    return "\n".join(text), StatusOutput(
        run_id=planned.run_id,
        source="local",
        state=state,
        run_status=aggregate.status if aggregate else None,
        run_dir=str(folder),
        tasks=lines,
    )


async def _results(run_id: str, repo: str) -> tuple[str, ResultsOutput]:
    folder = _run_dir(run_id, repo)
    aggregate_path = folder / "aggregate.json"
    if not aggregate_path.is_file():
        planned = read_model(folder / "plan.json", Plan)
        why = "it was skipped" if planned.status == "skipped" else "it has not finished"
        raise McpToolError(f"run {planned.run_id} has no results: {why} (no aggregate.json)")
    aggregate = read_model(aggregate_path, Aggregate)
    summary_path = folder / "summary.md"
    summary = summary_path.read_text(encoding="utf-8") if summary_path.is_file() else ""
    return summary or f"run {aggregate.run_id}: {aggregate.status}", ResultsOutput(
        run_id=aggregate.run_id,
        aggregate=aggregate,
        summary=summary,
        run_dir=str(folder),
        summary_path=str(summary_path),
    )


# ---------------------------------------------------------------------------- GitHub


def _github_target(repository: str) -> tuple[str, str, Redactor]:
    """API root, token and a redactor that hides it; ``McpToolError`` when unusable."""
    if not _REPOSITORY.match(repository):
        raise McpToolError(f"repository must be OWNER/NAME, got {repository!r}")
    token = (os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN") or "").strip()
    if not token:
        raise McpToolError(
            "GITHUB_TOKEN is not set in the MCP server's environment "
            "(add it to the server's env in your MCP client configuration)"
        )
    api = (os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
    if urllib.parse.urlsplit(api).scheme not in ("http", "https"):
        raise McpToolError(f"GITHUB_API_URL must be an http(s) URL, got {api!r}")
    return api, token, default_redactor().with_values(token)


def _github_call(
    method: str,
    url: str,
    token: str,
    redactor: Redactor,
    body: Mapping[str, Any] | None = None,
) -> tuple[int, Any]:
    """One REST call; the status and the parsed JSON body (``None`` when empty)."""
    data = json.dumps(redactor.redact_obj(dict(body))).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked in _github_target
        url,
        data=data,
        method=method,
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "gh-orchestrator",
            **({"Content-Type": "application/json"} if data is not None else {}),
        },
    )
    path = urllib.parse.urlsplit(url).path
    try:
        with urllib.request.urlopen(request, timeout=GITHUB_TIMEOUT_S) as response:  # noqa: S310
            raw = response.read()
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        message = _github_message(exc.read())
        raise McpToolError(
            redactor.redact(f"GitHub answered {exc.code} to {method} {path}: {message}")
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise McpToolError(
            redactor.redact(f"cannot reach GitHub ({method} {path}): {reason}")
        ) from None
    if not raw.strip():
        return code, None
    try:
        return code, json.loads(raw)
    except json.JSONDecodeError:
        raise McpToolError(f"GitHub's answer to {method} {path} is not JSON") from None


def _github_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")[:200] or "no message"
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return "no message"


async def _dispatch(
    workflow: str,
    repository: str,
    tasks: list[str] | None,
    request: str | None,
    ref: str,
    workflow_file: str,
) -> tuple[str, DispatchOutput]:
    if not workflow.strip():
        raise McpToolError("workflow must not be empty")
    if not ref.strip() or not workflow_file.strip():
        raise McpToolError("ref and workflow_file must not be empty")
    api, token, redactor = _github_target(repository)
    inputs = {"workflow": workflow.strip()}
    items = [item.strip() for item in tasks or [] if item.strip()]
    if any("\n" in item for item in items):
        raise McpToolError("a task must be one line (tasks are sent one per line)")
    if items:
        inputs["tasks"] = "\n".join(items)
    if request and request.strip():
        inputs["request"] = request.strip()
    workflow_id = urllib.parse.quote(workflow_file.strip(), safe="")
    url = f"{api}/repos/{repository}/actions/workflows/{workflow_id}/dispatches"
    body = {"ref": ref.strip(), "inputs": inputs}
    code, answer = await anyio.to_thread.run_sync(
        functools.partial(_github_call, "POST", url, token, redactor, body)
    )
    details = answer if isinstance(answer, dict) else {}
    output = DispatchOutput(
        repository=repository,
        workflow_file=workflow_file.strip(),
        ref=ref.strip(),
        inputs=inputs,
        status_code=code,
        workflow_run_id=details.get("workflow_run_id"),
        run_url=details.get("run_url"),
        html_url=details.get("html_url"),
    )
    text = (
        f"dispatched {workflow_file} on {repository}@{ref} (workflow {workflow}, "
        f"{len(items)} tasks)"
        + (f": run {output.workflow_run_id}" if output.workflow_run_id else "")
        + "; follow it with `status` and the run id shown in the Actions tab"
    )
    return text, output


async def _github_status(run_id: str, repository: str) -> tuple[str, StatusOutput]:
    if not run_id.isdigit():
        raise McpToolError(f"a GitHub Actions run id is a number, got {run_id!r}")
    api, token, redactor = _github_target(repository)
    jobs: list[JobLine] = []
    for page in range(1, MAX_JOB_PAGES + 1):
        url = f"{api}/repos/{repository}/actions/runs/{run_id}/jobs?per_page=100&page={page}"
        _, answer = await anyio.to_thread.run_sync(
            functools.partial(_github_call, "GET", url, token, redactor)
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("jobs"), list):
            raise McpToolError("GitHub's list of jobs has no `jobs` array")
        batch = [JobLine.model_validate(_job_fields(job)) for job in answer["jobs"]]
        jobs += batch
        total = answer.get("total_count")
        if not batch or not isinstance(total, int) or len(jobs) >= total:
            break
    state, conclusion = _run_state(jobs)
    text = [
        f"GitHub run {run_id} on {repository}: {state}" + (f" ({conclusion})" if conclusion else "")
    ]
    text += [
        f"  {job.name}: {job.status}" + (f" / {job.conclusion}" if job.conclusion else "")
        for job in jobs
    ]
    return "\n".join(text), StatusOutput(
        run_id=run_id, source="github", state=state, run_status=conclusion, jobs=jobs
    )


def _job_fields(job: object) -> dict[str, Any]:
    if not isinstance(job, dict):
        raise McpToolError("GitHub's list of jobs holds something that is not a job")
    return {name: job.get(name) for name in JobLine.model_fields if name in job}


def _run_state(jobs: list[JobLine]) -> tuple[str, str | None]:
    """The run's state and, once every job completed, its overall conclusion."""
    if not jobs:
        return "queued", None
    if all(job.status == "completed" for job in jobs):
        conclusions = {job.conclusion or "neutral" for job in jobs}
        for worst in ("failure", "timed_out", "cancelled", "action_required"):
            if worst in conclusions:
                return "completed", worst
        return "completed", "success"
    if any(job.status in ("in_progress", "completed") for job in jobs):
        return "in_progress", None
    return "queued", None


if __name__ == "__main__":
    serve_stdio()
