"""One function per CLI command; ``cli.py`` only parses arguments and maps errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import Config, load_agents_file, load_config
from orchestrator.contracts import SCHEMA_MODELS, Aggregate, Plan, Request, VerifyOutcome
from orchestrator.errors import InputError, RunFailedError
from orchestrator.fileio import load_json, read_model, write_model
from orchestrator.gitrepo import commit_env, git_text, head_sha, require_repo, run_git
from orchestrator.ids import new_run_id
from orchestrator.planner import plan_request, skipped_plan
from orchestrator.runfolder import (
    RunFolder,
    claim,
    default_out_dir,
    require_file_target,
    require_folder,
    require_same_run,
)
from orchestrator.text import format_usd, plural

if TYPE_CHECKING:
    from orchestrator.coordinator import RunOutcome

# The executor, aggregator, agent loop and provider SDKs are imported inside the commands that
# use them: a plan job that decides to skip must start and answer fast.


def dispatch(args: argparse.Namespace) -> int:
    """Run the command named in ``args``; return its exit code."""
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "plan": cmd_plan,
        "task": cmd_task,
        "aggregate": cmd_aggregate,
        "run": cmd_run,
        "demo": cmd_demo,
        "validate": cmd_validate,
        "progress": cmd_progress,
        "stats": cmd_stats,
        "quality": cmd_quality,
        "mcp": cmd_mcp,
        "init": cmd_init,
        "verify": cmd_verify,
        "sandbox": cmd_sandbox,
    }
    return handlers[args.command](args)


def say(line: str) -> None:
    """A line of the command's report, on stdout."""
    sys.stdout.write(line + "\n")


def load_run_config(args: argparse.Namespace, repo: Path | None) -> Config:
    """The config set for a command: ``--config`` layered over the defaults, then ``--replay``."""
    config = load_config(getattr(args, "config", None), repo)
    replay = getattr(args, "replay", None)
    if replay is not None:
        if not replay.is_file():
            raise InputError("--replay", "", f"{replay}: file not found")
        config = config.with_replay(replay)
    return config


def ensure_base(repo: Path, plan: Plan) -> None:
    """Make the plan's base commit available in ``repo`` (fetched with ``GITHUB_TOKEN`` when
    the checkout lacks it: a ``/retry`` keeps its older base).

    Raises:
        InputError: the commit is neither there nor fetchable.
    """
    if plan.base_sha is None:
        return
    from orchestrator.github.git_push import fetch_commit
    from orchestrator.gitrepo import GitError

    try:
        fetch_commit(repo, plan.base_sha, token=os.environ.get("GITHUB_TOKEN"))
    except GitError as exc:
        raise InputError(
            "plan.json",
            "base_sha",
            f"commit {plan.base_sha} is not in {repo} and could not be fetched ({exc})",
        ) from None


def read_plan(path: Path, config: Config | None = None) -> Plan:
    """A plan file, validated whole (``Plan`` checks its DAG); its task types against ``config``."""
    plan = read_model(path, Plan)
    if config is not None:
        config.check_plan(plan, str(path))
    return plan


# -- plan -------------------------------------------------------------------------------------


def read_request(args: argparse.Namespace, config: Config) -> Request:
    """The request from ``--event`` (or GITHUB_EVENT_PATH), or ``--workflow/--task/--request``."""
    from orchestrator.events import read_event

    if args.workflow or args.request or args.task:
        from orchestrator.coordinator import cli_request

        return cli_request(args.request or "", workflow=args.workflow, items=args.task)
    event = args.event or _env_path("GITHUB_EVENT_PATH")
    if event is None:
        raise InputError(
            "arguments", "", "give --event FILE, --workflow NAME --task TEXT…, or --request TEXT"
        )
    name = args.event_name or os.environ.get("GITHUB_EVENT_NAME")
    if not name:
        raise InputError("--event-name", "", "required with --event (or set GITHUB_EVENT_NAME)")
    return read_event(event, name, config.event_settings(), workflows=list(config.workflows))


def plan_at_head(
    request: Request,
    config: Config,
    repo: Path,
    max_parallel: int | None,
    base_sha: str | None = None,
) -> Plan:
    """Plan ``request`` pinned to ``base_sha`` (default: the repository's HEAD), learning from
    its history if enabled."""
    from orchestrator.stats import learned_records

    return asyncio.run(
        plan_request(
            request,
            config,
            base_sha=base_sha or head_sha(repo),
            max_parallel=max_parallel,
            records=learned_records(config, repo),
        )
    )


def cmd_plan(args: argparse.Namespace) -> int:
    """``orchestrator plan``: decide whether to act and write plan.json (``--dry-run``: print)."""
    repo = args.repo if args.repo.is_dir() else None
    if args.out is not None:
        require_folder(args.out, "--out")
    config = load_run_config(args, repo)
    request = read_request(args, config)
    if args.dry_run and args.publish:
        raise InputError("arguments", "", "--dry-run and --publish exclude each other")
    publisher = None
    if args.publish and request.act:
        # Only an acting request reaches GitHub: an untrusted trigger makes no call at all.
        from orchestrator.github.publish import publisher_from_env

        publisher = publisher_from_env()
    request = confirm_permission(args, config, request, publisher)
    request = with_pull_request(args, request, publisher)
    # A command on a pull request works on the PR (its head; a fork's base), not on the
    # default branch this job checked out (docs/github.md#pull-requests-and-forks).
    base = request.pull_request.work_base if request.pull_request is not None else None
    top: Path | None = None
    if not request.act:
        plan = skipped_plan(new_run_id(), request.reason, request)
    else:
        # A dry run only reads HEAD: uncommitted changes (a fresh `orchestrator init`) are fine.
        top = require_repo(args.repo, clean=not args.dry_run)
        try:
            plan = plan_at_head(request, config, top, args.max_parallel, base)
        except (InputError, RunFailedError) as exc:
            if publisher is not None:  # the trigger was trusted: tell it why, then fail
                url = publisher.publish_planning_failure(
                    request, new_run_id(), str(exc), _event_payload(args)
                )
                if url:
                    say(f"github: planning failure reported — {url}")
            raise
    if args.dry_run:
        say_plan(plan)
        say("dry run: nothing written")
        return 0
    if args.out is not None:
        out = args.out
    elif top is not None:
        out = default_out_dir(top, plan.run_id)
    else:
        out = Path(".orchestrator") / "runs" / plan.run_id
    folder = claim(out, plan.run_id)
    event = _event_payload(args) if publisher is not None else None
    if publisher is not None and plan.request is not None:
        plan = _with_request_images(plan, plan.request, publisher, event, folder)
    write_model(folder.plan, plan)
    if publisher is not None:
        repo_top = require_repo(args.repo, clean=False)

        def revalidate(stored: Plan, base_sha: str | None) -> Plan:
            # /approve: the stored work, re-planned on this job's checkout and config; /retry
            # keeps the stored base (the results it reuses were made on it).
            from orchestrator.planner import replan_approved

            if request.pull_request is not None and stored.request is not None:
                # The approved work runs on the PR as it is now: its head (or base) and diff.
                fresh = stored.request.model_copy(
                    update={"pull_request": request.pull_request, "is_fork": request.is_fork}
                )
                stored = stored.model_copy(update={"request": fresh})
            return replan_approved(
                stored,
                config,
                base_sha=base_sha or base or head_sha(repo_top),
                max_parallel=args.max_parallel,
            )

        answer = publisher.publish_plan(plan, event, revalidate=revalidate)
        if answer.plan is not plan:
            plan = answer.plan
            write_model(folder.plan, plan)
        for action in answer.actions:
            say(f"github: {action}")
        if answer.tracking_url:
            say(f"tracking comment: {answer.tracking_url}")
    say_plan(plan)
    say(f"plan: {folder.plan}")
    return 0


def _with_request_images(
    plan: Plan, request: Request, publisher: Any, event: dict[str, object] | None, folder: RunFolder
) -> Plan:
    """The plan with the triggering issue's/comment's screenshots in ``request.images``.

    Only a plan that runs tasks (``orchestrate``/``plan``) fetches them; an image that cannot be
    had is reported here and left out, never failing the plan.
    """
    from orchestrator.github.images import fetch_request_images

    if plan.status != "planned" or request.command not in ("orchestrate", "plan"):
        return plan
    fetched = fetch_request_images(
        publisher.client, request, event, folder, server_url=publisher.context.server_url
    )
    for note in fetched.notes():
        say(note)
    if not fetched.images:
        return plan
    with_images = request.model_copy(update={"images": fetched.images})
    return plan.model_copy(update={"request": with_images})


def with_pull_request(args: argparse.Namespace, request: Request, publisher: Any) -> Request:
    """``request`` with the pull request it was given on (``pull_request``, ``is_fork``), read
    from the API wherever the permission is checked too (``--publish`` or in Actions); as is
    for any other request, and for commands that plan nothing."""
    wants = request.command in (None, "orchestrate", "plan", "approve")
    on_pr = request.act and request.is_pull_request and request.issue_number is not None
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if not (wants and on_pr and (args.publish or in_actions)) or request.issue_number is None:
        return request
    from orchestrator.github.client import GitHubClient
    from orchestrator.github.pulls import pull_request_context

    client = publisher.client if publisher is not None else GitHubClient.from_env()
    pull = pull_request_context(client, request.issue_number)
    where = f"fork {pull.head_repo or '(deleted)'}" if pull.fork else "this repository"
    say(f"pull request #{pull.number}: head {pull.head_sha[:12]} from {where}")
    return request.model_copy(update={"pull_request": pull, "is_fork": pull.fork})


def confirm_permission(
    args: argparse.Namespace, config: Config, request: Request, publisher: Any
) -> Request:
    """The request, refused unless the actor has the configured repository permission.

    Checked in GitHub Actions (``GITHUB_ACTIONS=true``) and whenever ``--publish`` is given,
    for every acting trigger but local, scheduled and dispatched runs (dispatching already needs
    write access). The level is ``--confirm-permission`` or ``trust.confirm_permission``.
    """
    from orchestrator.events import PERMISSION_EXEMPT_SOURCES

    level = args.confirm_permission or config.settings.trust.confirm_permission
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    event_source = request.source not in PERMISSION_EXEMPT_SOURCES
    if not request.act or level == "none" or not event_source or not (args.publish or in_actions):
        return request
    from orchestrator.github.client import GitHubClient
    from orchestrator.github.trust import confirm_trigger

    client = publisher.client if publisher is not None else GitHubClient.from_env()
    return confirm_trigger(client, request, minimum=level)


def say_plan(plan: Plan) -> None:
    """The plan's decision and its tasks, one line each (ids are what replay scripts use)."""
    say(f"{plan.status}: {plan.reason}")
    for task in plan.tasks:
        deps = f" after {', '.join(task.depends_on)}" if task.depends_on else ""
        cost = f"  ≈ {format_usd(task.estimated_usd)}" if task.estimated_usd is not None else ""
        say(f"  wave {task.wave}  {task.id} [{task.type}] → {task.agent}{deps}{cost}")
    if plan.tasks:
        cost = format_usd(plan.estimated_usd) if plan.estimated_usd is not None else "unknown"
        budget = plan.limits.run_max_usd
        say(
            f"  estimated cost ≈ {cost} (tokens from {plan.estimate_basis or 'defaults'})"
            + (f"; run budget {format_usd(budget)}" if budget is not None else "")
        )
    if any(spec.provider == "replay" for spec in plan.agents.values()):
        say("  (replayed agents: costs will be simulated)")


# -- task -------------------------------------------------------------------------------------


def cmd_task(args: argparse.Namespace) -> int:
    """``orchestrator task``: run one task of a plan, as a matrix job does."""
    from orchestrator.budget import task_budget
    from orchestrator.executor import skip_task
    from orchestrator.stacking import stack_for_wave
    from orchestrator.task_runner import run_task

    workspace = require_repo(args.repo, source="--repo", clean=False)
    plan = read_plan(args.plan, load_config(getattr(args, "config", None), workspace))
    ensure_base(workspace, plan)
    out = args.out or args.plan.parent
    folder = require_same_run(out, plan.run_id)
    try:
        task = plan.task(args.task)
    except KeyError:
        known = ", ".join(t.id for t in plan.tasks) or "none"
        raise InputError("--task", "", f"no task {args.task!r} in the plan ({known})") from None
    blocked = []
    for dep in task.depends_on:
        result = folder.read_result(plan, plan.task(dep))
        if result is None or result.status not in ("succeeded", "budget_exceeded"):
            blocked.append(dep)
    if blocked:
        result = skip_task(plan, task, out, blocked)
    else:
        # The tree every task of this wave starts from: earlier waves' downloaded results.
        stack = stack_for_wave(plan, task.wave, out, workspace)
        # Its share of what the earlier waves' downloaded results left of the run budget.
        earlier = [
            done
            for other in plan.tasks
            if other.wave < task.wave and (done := folder.read_result(plan, other)) is not None
        ]
        budget = task_budget(plan, task, earlier)
        result = asyncio.run(
            run_task(
                plan, task.id, workspace_root=workspace, out_dir=out, stack=stack, budget=budget
            )
        )
    from orchestrator.github.actions import append_summary, job_url
    from orchestrator.report import task_job_summary

    link = job_url()
    if link is not None:  # the tracking comment links each task's line to its own job
        result = result.model_copy(update={"log_url": link})
        write_model(folder.result(task.id), result)
    say(f"{task.id}: {result.status}" + (f" — {result.error}" if result.error else ""))
    say(f"result: {folder.result(task.id)}")

    append_summary(task_job_summary(task, result))  # the job's own page, in Actions
    return 0 if result.status == "succeeded" else 1


# -- aggregate --------------------------------------------------------------------------------


def cmd_aggregate(args: argparse.Namespace) -> int:
    """``orchestrator aggregate``: merge the task results into one branch."""
    from orchestrator.aggregate import aggregate_run, load_results
    from orchestrator.metrics import run_metrics, write_metrics

    repo = require_repo(args.repo, source="--repo", clean=False)
    plan = read_plan(args.plan, load_config(getattr(args, "config", None), repo))
    ensure_base(repo, plan)
    results = require_folder(args.results or args.plan.parent, "--results")
    if not results.is_dir():
        raise InputError("--results", "", f"{results}: folder not found")
    out = require_folder(args.out or results, "--out")
    if args.history is not None:
        require_file_target(args.history, "--history")
    aggregate = aggregate_run(plan, results, repo, out)
    acts = plan.status == "planned" and (plan.request is None or plan.request.act)
    cancelled = False
    if acts:
        finished = load_results(plan, results)  # read once: for the publisher and the metrics
        if args.publish:
            from orchestrator.github.publish import publisher_from_env

            publisher = publisher_from_env(link_keyword=args.link_keyword, remote=args.remote)
            aggregate = publisher.publish_aggregate(
                plan, aggregate, finished, repo=repo, out_dir=out
            )
            cancelled = publisher.cancelled
            if cancelled:
                say("aggregate: the run was cancelled (/cancel): nothing published but its status")
            if aggregate.pr:
                say(f"pull request: #{aggregate.pr['number']} {aggregate.pr['url']}")
        write_metrics(out, run_metrics(plan, aggregate, finished), args.history)
    report_aggregate(aggregate, out, repo)
    # A run a person cancelled did what they asked: that is not a failure of the workflow.
    return 0 if aggregate.status == "succeeded" or cancelled else 1


def report_aggregate(aggregate: Aggregate, out: Path, repo: Path) -> None:
    """Print where the work is and what it cost."""
    from orchestrator.report import format_cost, resolved_by

    say(
        f"run {aggregate.run_id}: {aggregate.status}"
        + (f" — {aggregate.reason}" if aggregate.reason else "")
    )
    if aggregate.branch:
        commits = sum(1 for task in aggregate.tasks if task.commit)
        say(f"branch: {aggregate.branch} ({plural(commits, 'commit')}) in {repo}")
    resolvers = resolved_by(aggregate)
    for conflict in aggregate.conflicts:
        resolver = resolvers.get(conflict.task_id)
        fate = f", resolved by {resolver}" if resolver else ""
        files = ", ".join(conflict.files)
        say(f"conflict: {conflict.task_id} on {files}{fate}; its patch is kept at")
        say(f"  {out / conflict.patch}")
    totals = aggregate.totals
    cost = format_cost(totals.cost_usd, simulated=totals.cost_simulated)
    stage = f" (verify stage {totals.verify_s:.2f}s)" if totals.verify_s else ""
    say(
        f"tokens: {totals.input_tokens} in / {totals.output_tokens} out, cost {cost}, "
        f"wall {totals.wall_s:.2f}s{stage}, task time {totals.task_s_sum:.2f}s, "
        f"speedup {totals.speedup:.2f}x"
    )
    verify = aggregate.verify
    if verify is not None:
        culprit = f", first red at {verify.culprit}" if verify.culprit else ""
        why = f" — {verify.reason}" if verify.reason else ""
        say(f"verify: {verify.status} ({verify.command or 'no command'}{culprit}){why}")
    say(f"summary: {RunFolder(out).summary}")


# -- verify ---------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    """``orchestrator verify``: the verify stage over a run folder (the Actions verify job)."""
    from orchestrator.repair import verify_stage

    repo = require_repo(args.repo, source="--repo", clean=False)
    plan = read_plan(args.plan, load_config(getattr(args, "config", None), repo))
    results = require_folder(args.results or args.plan.parent, "--results")
    if plan.status != "planned":
        say("verify: nothing to verify (the plan does not act)")
        return 0
    ensure_base(repo, plan)
    folder = RunFolder(results)
    outcome = asyncio.run(verify_stage(plan, results, repo))
    report_verify(outcome)
    say(f"verify: {folder.verify}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    """``orchestrator sandbox``: can run_command and verify run on this machine, and why not."""
    from orchestrator.sandbox import Sandbox, SandboxUnavailable

    probed = Sandbox.probe()
    if isinstance(probed, SandboxUnavailable):
        say(f"sandbox: unavailable — {probed.reason}")
        say("run_command is not offered to agents and verify is skipped, each saying why")
        return 1
    say("sandbox: available (bubblewrap: no network, no secrets, only the task's tree writable)")
    return 0


def report_verify(outcome: VerifyOutcome) -> None:
    """The verify stage's outcome, a line each."""
    verify = outcome.verify
    detail = verify.reason or (f"exit {verify.exit_code}" if verify.exit_code is not None else "")
    culprit = f", first red at {verify.culprit}" if verify.culprit else ""
    say(f"verify {verify.status}: {verify.command or '-'} ({detail}{culprit})")
    for repair in outcome.repairs:
        fate = "kept" if repair.kept else f"not kept: {repair.reason}"
        say(f"  {repair.task_id} ({repair.kind} of {repair.of}): {fate}")


# -- progress ---------------------------------------------------------------------------------


def cmd_progress(args: argparse.Namespace) -> int:
    """``orchestrator progress``: update the tracking comment with the tasks finished so far."""
    from orchestrator.aggregate import load_results
    from orchestrator.github.actions import set_outputs
    from orchestrator.github.publish import publisher_from_env

    plan = read_model(args.plan, Plan)
    results = args.results or args.plan.parent
    if plan.status != "planned" or plan.request is None or not plan.request.act:
        say("progress: nothing to update (the plan does not act)")
        return 0
    finished = load_results(plan, results)
    progress = publisher_from_env().publish_progress(plan, finished)
    url = progress.url
    say(
        f"progress: {len(finished)} of {len(plan.tasks)} tasks finished"
        + (f" — {url}" if url else "")
    )
    if progress.cancelled:
        say("progress: the run was cancelled (/cancel): no later wave starts")
    # The workflow's next wave job reads this (a job output): cancelled runs stop here.
    set_outputs({"cancelled": "true" if progress.cancelled else "false"})
    return 0


# -- run --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``orchestrator run``: plan, execute and aggregate in one process."""
    top = require_repo(args.repo)
    if args.out is not None:
        require_folder(args.out, "--out")
    config = load_run_config(args, top)
    if args.plan:
        if args.request or args.workflow or args.task:
            raise InputError("arguments", "", "--plan cannot be combined with a request")
        plan = read_plan(args.plan, config)
        if args.replay is not None:
            plan = plan.model_copy(update={"agents": _replayed(plan, config)})
        if (
            plan.base_sha
            and run_git(
                top, "cat-file", "-e", f"{plan.base_sha}^{{commit}}", check=False
            ).returncode
        ):
            raise InputError(str(args.plan), "base_sha", f"commit {plan.base_sha} is not in {top}")
    else:
        from orchestrator.coordinator import cli_request

        if not (args.request or args.workflow or args.task):
            raise InputError(
                "arguments", "", "give a REQUEST, --workflow NAME --task TEXT…, or --plan FILE"
            )
        request = cli_request(args.request, workflow=args.workflow, items=args.task)
        plan = plan_at_head(request, config, top, args.max_parallel)
    outcome = execute(plan, top, args.out, args.max_parallel, config=config)
    return 0 if outcome.aggregate is None or outcome.aggregate.status == "succeeded" else 1


def _replayed(plan: Plan, config: Config) -> dict[str, Any]:
    """The plan's agents replaced by the replay agents of ``config`` (``run --plan --replay``)."""
    return {name: config.agents.get(name, spec) for name, spec in plan.agents.items()}


def execute(
    plan: Plan, repo: Path, out: Path | None, max_parallel: int | None, *, config: Config
) -> RunOutcome:
    """Run a plan locally with a progress display, record its metrics, print the outcome."""
    from orchestrator.coordinator import run_plan
    from orchestrator.progress import Progress
    from orchestrator.stats import history_path

    out_dir = out or default_out_dir(repo, plan.run_id)
    say_plan(plan)
    outcome = asyncio.run(
        run_plan(
            plan,
            repo=repo,
            out_dir=out_dir,
            max_parallel=max_parallel,
            progress=Progress(plan),
            history=history_path(config, repo),
        )
    )
    if outcome.aggregate is not None:
        report_aggregate(outcome.aggregate, out_dir, repo)
    return outcome


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """``orchestrator demo``: the bundled sample project, orchestrated offline by replay agents."""
    from orchestrator import demo
    from orchestrator.coordinator import cli_request

    require_folder(args.out, "--out")
    run_id = new_run_id({})
    root = args.out / run_id
    repo = root / "repo"
    shutil.copytree(
        demo.SAMPLE_PROJECT, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache")
    )
    env = commit_env()
    run_git(repo, "init", "-q", "-b", "main", env=env)
    run_git(repo, "add", "-A", env=env)
    run_git(repo, "commit", "-q", "-m", "Sample project: racing analytics", env=env)
    config = demo_config()
    request = cli_request(demo.REQUEST, workflow=demo.WORKFLOW, items=list(demo.ITEMS))
    plan = asyncio.run(plan_request(request, config, base_sha=head_sha(repo), run_id=run_id))
    outcome = execute(plan, repo, root / "out", None, config=config)
    aggregate = outcome.aggregate
    if aggregate is None or aggregate.branch is None:
        return 1
    say("")
    say(git_text(repo, "log", "--oneline", f"main..{aggregate.branch}"))
    say("")
    say(f"Look at the merged work:  git -C {repo} log -p main..{aggregate.branch}")
    say(f"Read the run summary:     {root / 'out' / 'summary.md'}")
    for line in demo_story(aggregate):
        say(line)
    say("Costs are simulated: the agents' turns are replayed and priced at the configured rates.")
    # The demo succeeds when the pipeline ran end to end and reported what it found.
    return 0 if aggregate.status in ("succeeded", "partial") else 1


def demo_story(aggregate: Aggregate) -> list[str]:
    """What the demo's run shows, in words, from its aggregate."""
    lines = []
    for task in aggregate.tasks:
        if task.resolved_by:
            lines.append(f"The deliberate conflict of {task.id}: merged by {task.resolved_by}.")
    verify = aggregate.verify
    for earlier in verify.rounds if verify else []:
        lines.append(f"Verify failed ({earlier.command}); first red commit: {earlier.culprit}.")
    for task in aggregate.tasks:
        if task.repair_of and task.id.startswith("fix-"):
            lines.append(f"{task.id} fixed it.")
    if verify is not None:
        why = f" — {verify.reason}" if verify.reason else ""
        lines.append(f"Final verify: {verify.status} ({verify.command or 'no command'}){why}")
    for conflict in aggregate.conflicts:
        if not any(t.id == conflict.task_id and t.resolved_by for t in aggregate.tasks):
            lines.append(f"The conflict of {conflict.task_id} is kept as a patch (above).")
    return lines


def demo_config() -> Config:
    """The default config with the demo's replay agents, and run_command on (the resolver and
    the fixer run the sample's tests in the sandbox)."""
    from dataclasses import replace

    from orchestrator import demo
    from orchestrator.contracts import SandboxSettings

    config = load_config(None, None).with_agents(load_agents_file(demo.AGENTS_FILE))
    settings = config.settings.model_copy(update={"sandbox": SandboxSettings(run_command=True)})
    return replace(config, settings=settings)


# -- stats and mcp ----------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace) -> int:
    """``orchestrator stats``: the run history as Markdown tables and Mermaid charts."""
    from orchestrator.fileio import write_atomic
    from orchestrator.metrics import read_history
    from orchestrator.stats import history_path, render_stats

    files = list(args.files)
    if args.out is not None:
        require_file_target(args.out, "--out")
    if not files:
        config = load_config(args.config, args.repo if args.repo.is_dir() else None)
        files = [history_path(config, args.repo)]
    text = render_stats(read_history(files))
    if args.out:
        write_atomic(args.out, text)
        say(f"stats: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    """``orchestrator quality``: read each run's PR state and reactions into the history."""
    from datetime import UTC, datetime

    from orchestrator.github.publish import publisher_from_env
    from orchestrator.quality import gather_quality
    from orchestrator.stats import history_path

    history = args.history
    if history is None:
        config = load_config(args.config, args.repo if args.repo.is_dir() else None)
        history = history_path(config, args.repo)
    if not history.exists():
        say(f"quality: no history at {history} yet — nothing to check")
        return 0
    publisher = publisher_from_env()
    changed = gather_quality(
        history,
        publisher.client,
        bot_logins=publisher.context.bot_logins,
        now=datetime.now(UTC),
        on_change=lambda change: say(f"quality: {change.describe()}"),
    )
    reads = sum(1 for call in publisher.client.calls if call.method == "GET")
    say(f"quality: {changed} runs changed ({reads} GitHub reads) in {history}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """``orchestrator mcp``: serve the orchestrator's tools over MCP on stdin/stdout."""
    from orchestrator.mcp_server import serve_stdio

    serve_stdio()
    return 0


# -- validate ---------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    """``orchestrator validate``: check a config set and any contract files or replay scripts.

    Each file's kind is decided by its content, not its name.
    """
    config = load_config(args.config, args.repo if args.repo.is_dir() else None)
    say(
        f"config {config.describe()}: {len(config.agents)} agents, "
        f"{len(config.routes)} task types, {len(config.workflows)} workflows — ok"
    )
    from orchestrator.pricing import price_warnings

    max_age = config.settings.prices.max_age_days
    for warning in price_warnings(config.agents, max_age, datetime.now(UTC).date()):
        say(f"warning: {warning}")
    for path in args.files:
        kind = validate_file(path, config)
        say(f"{path}: valid {kind}")
    return 0


def validate_file(path: Path, config: Config) -> str:
    """Validate one file by what it holds; return its kind.

    Raises:
        InputError: missing, unreadable, of no known kind, or invalid (naming the field).
    """
    if not path.is_file():
        raise InputError(str(path), "", "file not found" if not path.exists() else "not a file")
    if path.suffix.lower() in (".yml", ".yaml"):
        from orchestrator.providers.replay import load_script

        load_script(path)
        return "replay script"
    data = load_json(path)
    kind = contract_kind(data)
    if kind is None:
        raise InputError(
            str(path),
            "",
            "not a plan, result or aggregate file (no run_id+tasks, task_id or totals field)",
        )
    if kind == "plan":
        read_plan(path, config)
    else:
        read_model(path, SCHEMA_MODELS[kind])
    return kind


def contract_kind(data: object) -> str | None:
    """Which contract a parsed JSON document claims to be, from its fields."""
    if not isinstance(data, dict):
        return None
    if "task_id" in data:
        return "result"
    if "totals" in data or "head_sha" in data:
        return "aggregate"
    if "verify" in data and "repairs" in data:
        return "verify"
    if "run_id" in data and ("tasks" in data or "status" in data):
        return "plan"
    if "act" in data and "source" in data:
        return "request"
    return None


# -- init -------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """``orchestrator init``: write a commented config layer into a repository."""
    from orchestrator.init_config import write_config_layer

    top = require_repo(args.repo, clean=False)
    written = write_config_layer(top, force=args.force)
    for path in written:
        say(f"wrote {path.relative_to(top)}")
    say("")
    say("Every key in these files is optional: they are layered over the packaged defaults.")
    say("Try a run offline, with scripted agents and simulated costs:")
    say("  orchestrator plan --workflow parallel_feature_implementation --task 'first item' \\")
    say("      --replay configs/orchestration/replay.yml --dry-run")
    say("  orchestrator run --workflow parallel_feature_implementation --task 'first item' \\")
    say("      --replay configs/orchestration/replay.yml")
    return 0


def _event_payload(args: argparse.Namespace) -> dict[str, object] | None:
    """The raw event payload (for the id of the comment to react to), if there is one."""
    from orchestrator.fileio import load_json

    path = getattr(args, "event", None) or _env_path("GITHUB_EVENT_PATH")
    if path is None or args.workflow or args.request or args.task:
        return None
    data = load_json(path)
    return data if isinstance(data, dict) else None


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None
