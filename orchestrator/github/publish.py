"""Publishing a run on GitHub: the plan step's answer and the aggregate step's branch, PR, review.

Rules that hold for every path here:

* A request that does not act (untrusted, bot, hidden command, wrong label) makes no call at all.
* Every text sent passes through the redactor (and again in :class:`GitHubClient`'s choke point).
* Write calls are batched per stage: the plan step makes at most a reaction and one tracking
  comment write; the aggregate step at most one PR create/update, one review and one tracking
  comment update, whatever the number of tasks.
* Everything is found again before it is created (tracking comment by its marker, PR by its head
  branch, review by the marker in its body), and nothing is rewritten when it is already as it
  should be: publishing the same run again writes nothing, and a run that failed half-way is
  completed by running the same step again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator import report
from orchestrator.contracts import Aggregate, Plan, Request, Reuse, ReviewComment, TaskResult
from orchestrator.fileio import write_model
from orchestrator.github.client import GitHubClient, GitHubError
from orchestrator.github.git_push import PushRejectedError, push
from orchestrator.github.tracking import (
    DEFAULT_BOT_LOGINS,
    FoundComment,
    TrackingState,
    TrackingStatus,
    find_tracking,
    landed,
    render_tracking,
    tracking_comments,
)
from orchestrator.markdown import md_block, md_text, one_line
from orchestrator.patches import diff_lines
from orchestrator.redact import Redactor
from orchestrator.text import plural

__all__ = [
    "GitHubContext",
    "PlanAnswer",
    "Publisher",
    "diff_lines",
    "publisher_from_env",
    "review_marker",
]


def review_marker(run_id: str) -> str:
    """Hidden line in the body of a run's review (finds it again on re-runs)."""
    return f"<!-- orchestrator:review run={run_id} -->"


def pr_marker(run_id: str) -> str:
    """Hidden line in the body of a run's pull request."""
    return f"<!-- orchestrator:pr run={run_id} -->"


@dataclass(frozen=True)
class GitHubContext:
    """Where the run lives on GitHub (from the Actions environment) and publishing options.

    Args:
        server_url: ``GITHUB_SERVER_URL`` (``https://github.com`` or a GHES host).
        run_id: ``GITHUB_RUN_ID`` of the current workflow run (for job-log links).
        link_keyword: How the PR body links the issue: ``Closes`` (closes it on merge), or e.g.
            ``Refs`` to link only.
        bot_logins: Accounts whose comments count as tracking comments.
        remote: The git remote to push to.
        draft: Open the PR as a draft.
    """

    repository: str
    server_url: str = "https://github.com"
    run_id: str | None = None
    link_keyword: str = "Closes"
    bot_logins: tuple[str, ...] = DEFAULT_BOT_LOGINS
    remote: str = "origin"
    draft: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GitHubContext:
        """From ``GITHUB_REPOSITORY``, ``GITHUB_SERVER_URL``, ``GITHUB_RUN_ID`` and
        ``ORCHESTRATOR_BOT_LOGIN`` (comma-separated; the App's ``SLUG[bot]`` with App auth)."""
        env = os.environ if environ is None else environ
        logins = [x.strip() for x in env.get("ORCHESTRATOR_BOT_LOGIN", "").split(",") if x.strip()]
        values: dict[str, Any] = {
            "repository": env.get("GITHUB_REPOSITORY", ""),
            "server_url": (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            "run_id": env.get("GITHUB_RUN_ID") or None,
            "bot_logins": tuple(logins) or DEFAULT_BOT_LOGINS,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def run_url(self) -> str | None:
        """``SERVER/OWNER/REPO/actions/runs/RUN_ID`` (where each task's job log is)."""
        if not self.run_id:
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


@dataclass
class PlanAnswer:
    """What the plan step did on GitHub."""

    plan: Plan
    actions: list[str] = field(default_factory=list)
    tracking_url: str | None = None


@dataclass(frozen=True)
class Progress:
    """What the progress step did: the tracking comment's URL, and whether the run was
    cancelled (``/cancel``), so that no later wave starts."""

    url: str | None = None
    cancelled: bool = False


@dataclass
class _Target:
    """Where the run's work and review go."""

    number: int
    url: str
    branch: str
    head_sha: str | None


class Publisher:
    """Publishes one run through a :class:`GitHubClient`."""

    def __init__(
        self, client: GitHubClient, context: GitHubContext, redactor: Redactor | None = None
    ) -> None:
        self.client = client
        self.context = context
        self.redactor = redactor or client.redactor
        #: Set by ``publish_aggregate``: the run had been cancelled with ``/cancel``.
        self.cancelled = False

    # ------------------------------------------------------------------ plan step

    def publish_plan(
        self,
        plan: Plan,
        event: Mapping[str, Any] | None = None,
        *,
        revalidate: Callable[[Plan, str | None], Plan] | None = None,
    ) -> PlanAnswer:
        """Answer an accepted command on its issue/PR; may replace the plan (``/approve``).

        A request that does not act, or that has no issue/PR to answer on, makes no call.

        Args:
            plan: The plan step's plan (skipped for commands answered here).
            event: The raw event payload (to react to the right comment).
            revalidate: Rebuilds a stored plan from the current config (agents, limits) pinned
                to the given base commit (``None``: this job's checkout); without it ``/approve``
                and ``/retry`` are refused. Comment state is never run as found.
        """
        answer = PlanAnswer(plan)
        request = plan.request
        if request is None or not request.act or request.issue_number is None:
            answer.actions.append(
                "no GitHub writes: " + (request.reason if request else "no request")
            )
            return answer
        number = request.issue_number
        self._react(request, event)
        answer.actions.append("reaction 👀")
        command = request.command or "orchestrate"
        if command in ("orchestrate", "plan"):
            return self._answer_start(answer, request, number)
        if command == "approve":
            return self._approve(answer, request, number, revalidate)
        if command == "cancel":
            return self._cancel(answer, request, number)
        if command == "status":
            return self._status(answer, request, number)
        if command == "retry":
            return self._retry(answer, request, number, revalidate)
        self._reply(
            number,
            f"`/{command}` is not handled by the GitHub side of this version; "
            "use `/orchestrate` to start a new run.",
        )
        answer.actions.append(f"reply: /{command} not supported")
        return answer

    def publish_planning_failure(
        self, request: Request, run_id: str, reason: str, event: Mapping[str, Any] | None = None
    ) -> str | None:
        """Say on the issue/PR why an accepted request could not be planned (a missing agent
        key, a plan over the caps, a planner that failed): otherwise it is only in the job
        log. Returns the tracking comment's URL, ``None`` when there is nowhere to say it."""
        if not request.act or request.issue_number is None:
            return None
        number = request.issue_number
        self._react(request, event)
        note = f"planning failed: {reason}"
        state = TrackingState(run_id, number, "failed", note=note, run_url=self.context.run_url)
        url, _ = self._upsert(number, None, state)
        return url

    def _answer_start(self, answer: PlanAnswer, request: Request, number: int) -> PlanAnswer:
        plan = answer.plan
        status: TrackingStatus
        if plan.status == "skipped":
            status, note = "skipped", plan.reason
        elif plan.awaiting_approval:
            status, note = "awaiting_approval", f"{plan.reason}; planned for @{request.actor}"
        else:
            status, note = "running", plan.reason
        state = TrackingState(
            plan.run_id, number, status, plan=plan, note=note, run_url=self.context.run_url
        )
        if self.context.run_id and self.context.run_id.isdigit():
            # What /cancel stops (an approved plan runs in the approving workflow run).
            state.extra["actions_run_id"] = int(self.context.run_id)
        found = self.find_run(number, plan.run_id)
        answer.tracking_url, comment_id = self._upsert(number, found, state)
        answer.actions.append(f"tracking comment: {status}")
        if plan.status == "planned" and plan.tracking_comment_id != comment_id:
            # Later jobs read the run's state from this comment only (by id, not by search).
            answer.plan = plan.model_copy(update={"tracking_comment_id": comment_id})
        return answer

    def _runs(self, number: int) -> list[FoundComment]:
        """The tracking comments of this issue, newest run last (the bot's own only)."""
        comments = self.client.list_issue_comments(number)
        return tracking_comments(comments, bot_logins=self.context.bot_logins)

    def _resolve(
        self, answer: PlanAnswer, request: Request, number: int, statuses: tuple[str, ...]
    ) -> FoundComment | None:
        """The one run a command means: the run id it names, else the only run in
        ``statuses``; replies (escaped) and returns ``None`` when there is none or several."""
        runs = self._runs(number)
        wanted = request.command_args.split()[0] if request.command_args.strip() else None
        verb = f"/{request.command}"
        if wanted is not None:
            named = [run for run in runs if run.state.run_id == wanted]
            if not named:
                self._reply(number, f"No orchestrator run {md_text(wanted, 80)} on this issue.")
                answer.actions.append(f"reply: {verb}: no such run")
                return None
            return named[-1]
        matching = [run for run in runs if run.state.status in statuses]
        if len(matching) == 1:
            return matching[0]
        if not matching:
            wanted_status = " or ".join(s.replace("_", " ") for s in statuses)
            self._reply(number, f"Nothing to {verb[1:]}: no run here is {wanted_status}.")
            answer.actions.append(f"reply: nothing to {verb[1:]}")
            return None
        listed = ", ".join(f"`{md_text(run.state.run_id, 80)}`" for run in matching)
        self._reply(
            number,
            f"Several runs could be meant ({listed}): name one, e.g. `{verb} "
            f"{md_text(matching[-1].state.run_id, 80)}`.",
        )
        answer.actions.append(f"reply: {verb}: several runs")
        return None

    def _approve(
        self,
        answer: PlanAnswer,
        request: Request,
        number: int,
        revalidate: Callable[[Plan, str | None], Plan] | None,
    ) -> PlanAnswer:
        found = self._resolve(answer, request, number, ("awaiting_approval",))
        if found is None:
            return answer
        stored = found.state.plan
        if found.state.status != "awaiting_approval" or stored is None:
            self._reply(
                number, f"Run `{md_text(found.state.run_id, 80)}` is not awaiting approval."
            )
            answer.actions.append("reply: nothing to approve")
            return answer
        if stored.request is not None and stored.request.issue_number not in (None, number):
            self._reply(number, "Nothing to approve: the stored plan belongs to another issue.")
            answer.actions.append("reply: plan of another issue")
            return answer
        if revalidate is None:
            self._reply(number, "Approval needs the plan step (it rebuilds the plan from config).")
            answer.actions.append("reply: approval not possible here")
            return answer
        approved = revalidate(stored, None).model_copy(
            update={"awaiting_approval": False, "tracking_comment_id": found.id}
        )
        note = f"{approved.reason}; approved by @{request.actor}"
        answer.actions.append(f"tracking comment: approved plan {approved.run_id}")
        return self._runs_here(answer, number, found, approved, note)

    def _runs_here(
        self, answer: PlanAnswer, number: int, found: FoundComment, plan: Plan, note: str
    ) -> PlanAnswer:
        """A stored run starts again in this workflow run (``/approve``, ``/retry``): its
        tracking comment says so and records this run (what ``/cancel`` stops)."""
        state = found.state
        state.status, state.plan, state.note = "running", plan, note
        if self.context.run_id and self.context.run_id.isdigit():
            state.extra["actions_run_id"] = int(self.context.run_id)
        state.run_url = self.context.run_url or state.run_url
        answer.tracking_url, _ = self._upsert(number, found, state)
        answer.plan = plan
        return answer

    def _retry(
        self,
        answer: PlanAnswer,
        request: Request,
        number: int,
        revalidate: Callable[[Plan, str | None], Plan] | None,
    ) -> PlanAnswer:
        """``/retry [TASK…]``: run the issue's last run again, only its tasks that did not land
        (or the named ones), in the same run id, branch and pull request. The other tasks'
        results are reused from the workflow run that made them (``Plan.reuse``)."""
        runs = self._runs(number)
        refusal = self._retry_refusal(runs[-1] if runs else None, number, revalidate)
        if refusal is not None or revalidate is None or not runs:
            self._reply(number, refusal or "Nothing to retry.")
            answer.actions.append("reply: nothing to retry")
            return answer
        found = runs[-1]
        stored, source = found.state.plan, found.state.extra["artifacts_run_id"]
        assert stored is not None  # checked by _retry_refusal
        ids = [task.id for task in stored.tasks]
        named = request.command_args.split()
        unknown = [task_id for task_id in named if task_id not in ids]
        landed = {str(x) for x in found.state.extra.get("landed") or []}
        again = named or [task_id for task_id in ids if task_id not in landed]
        run_id = md_text(stored.run_id, 80)
        if unknown or not again:
            text = (
                f"No task {', '.join(f'`{md_text(t, 64)}`' for t in unknown)} in run `{run_id}`."
                if unknown
                else f"Nothing to retry: every task of run `{run_id}` landed. Name tasks to run "
                "them again, e.g. `/retry " + md_text(ids[0], 64) + "`."
            )
            self._reply(number, text)
            answer.actions.append("reply: nothing to retry")
            return answer
        reused = [task_id for task_id in ids if task_id not in again]
        retried = revalidate(stored, stored.base_sha).model_copy(
            update={
                "awaiting_approval": False,
                "tracking_comment_id": found.id,
                "reuse": Reuse(workflow_run_id=source, tasks=reused) if reused else None,
            }
        )
        note = f"retry by @{request.actor}: running {', '.join(again)} again" + (
            f"; {plural(len(reused), 'task')} reused from workflow run {source}" if reused else ""
        )
        answer.actions.append(f"tracking comment: retry of {retried.run_id}")
        return self._runs_here(answer, number, found, retried, note)

    def _retry_refusal(
        self,
        found: FoundComment | None,
        number: int,
        revalidate: Callable[[Plan, str | None], Plan] | None,
    ) -> str | None:
        """Why the issue's last run cannot be retried, or ``None``."""
        if found is None:
            return "Nothing to retry: no orchestrator run on this issue yet."
        run_id = md_text(found.state.run_id, 80)
        if found.state.status in ("running", "planned", "awaiting_approval"):
            shown = found.state.status.replace("_", " ")
            return f"Run `{run_id}` is {shown}: `/retry` reruns what a finished run left undone."
        stored = found.state.plan
        source = found.state.extra.get("artifacts_run_id")
        if stored is None or stored.status != "planned" or not stored.tasks:
            return f"Nothing to retry: run `{run_id}` had no tasks."
        if not isinstance(source, int) or source < 1:
            return f"Nothing to retry: run `{run_id}` did not record its workflow run."
        if stored.request is not None and stored.request.issue_number not in (None, number):
            return "Nothing to retry: the stored plan belongs to another issue."
        if revalidate is None:
            return "A retry needs the plan step (it rebuilds the plan from config)."
        return None

    def _cancel(self, answer: PlanAnswer, request: Request, number: int) -> PlanAnswer:
        found = self._resolve(answer, request, number, ("awaiting_approval", "running", "planned"))
        if found is None:
            return answer
        state = found.state
        state.status = "cancelled"
        state.note = f"cancelled by @{request.actor}" + self._cancel_workflow_run(state)
        answer.tracking_url, _ = self._upsert(number, found, state)
        answer.actions.append("tracking comment: cancelled")
        return answer

    def _cancel_workflow_run(self, state: TrackingState) -> str:
        """Cancel the run's workflow run (recorded when it started); what happened, as a note.

        The aggregate job runs even in a cancelled workflow run (``always()``), so it also reads
        the tracking state and publishes nothing but the final status.
        """
        run_id = state.extra.get("actions_run_id")
        if not isinstance(run_id, int) or str(run_id) == self.context.run_id:
            return ""
        try:
            cancelled = self.client.cancel_workflow_run(run_id)
        except GitHubError as exc:
            if exc.status == 403:  # the reusable workflow's token has no actions: write
                return "; no later wave starts (this workflow's token may not cancel runs)"
            return f"; its workflow run could not be cancelled ({exc})"
        return "; its workflow run was cancelled" if cancelled else "; its workflow run had ended"

    def _status(self, answer: PlanAnswer, request: Request, number: int) -> PlanAnswer:
        runs = self._runs(number)
        wanted = request.command_args.split()[0] if request.command_args.strip() else None
        chosen = [r for r in runs if wanted is None or r.state.run_id == wanted]
        if not chosen:
            text = (
                "No orchestrator run on this issue yet."
                if wanted is None
                else (f"No orchestrator run {md_text(wanted, 80)} on this issue.")
            )
        else:
            state = chosen[-1].state
            note = f" — {md_text(state.note, 600)}" if state.note else ""
            text = (
                f"Run `{md_text(state.run_id, 80)}`: {state.status}{note}\n\n"
                f"Details: {chosen[-1].url}"
            )
            answer.tracking_url = chosen[-1].url
        self._reply(number, text)
        answer.actions.append("reply: status")
        return answer

    # ------------------------------------------------------------------ between waves

    def publish_progress(self, plan: Plan, results: Mapping[str, TaskResult]) -> Progress:
        """Update the run's tracking comment with the tasks finished so far (one write at most).

        Called by the small job after each wave; a plan that does not act, or a run with no
        tracking comment to update, makes no write. A run cancelled with ``/cancel`` is left
        as it is and said so (``Progress.cancelled``): the workflow starts no later wave.
        """
        request = plan.request
        if plan.status != "planned" or request is None or not request.act:
            return Progress()
        if request.issue_number is None:
            return Progress()
        found = self.find_run(request.issue_number, plan.run_id, plan.tracking_comment_id)
        if found is None or found.state.status == "cancelled":
            return Progress(found.url if found else None, cancelled=found is not None)
        done = [r for r in results.values() if r.status != "skipped"]
        waves_done = max((plan.task(r.task_id).wave for r in done), default=0)
        state = found.state
        state.status = "running"
        state.plan = plan
        state.note = (
            f"wave {waves_done} of {plan.waves} finished: {len(done)} of {len(plan.tasks)} "
            "tasks done"
        )
        state.run_url = self.context.run_url or state.run_url
        url, _ = self._upsert(request.issue_number, found, state, results=results)
        return Progress(url)

    # ------------------------------------------------------------------ aggregate step

    def publish_aggregate(
        self,
        plan: Plan,
        aggregate: Aggregate,
        results: Mapping[str, TaskResult],
        *,
        repo: Path,
        out_dir: Path,
    ) -> Aggregate:
        """Push the branch, open/update the PR, post the review, finish the tracking comment.

        Sets ``aggregate.pr`` and rewrites ``out_dir/aggregate.json`` atomically. Returns the
        updated aggregate. A plan whose request does not act publishes nothing.
        """
        request = plan.request
        if plan.status == "skipped" or plan.awaiting_approval:
            return aggregate
        if request is not None and not request.act:
            return aggregate
        issue = request.issue_number if request else None
        found = (
            self.find_run(issue, plan.run_id, plan.tracking_comment_id)
            if issue is not None
            else None
        )
        if found is not None and found.state.status == "cancelled":
            # /cancel came first: no branch, no pull request, no review — the final status only.
            self.cancelled = True
            self._finish_tracking(plan, aggregate, results, found, "cancelled", found.state.note)
            return aggregate
        target = self._land(plan, aggregate, results, request, repo)
        unplaced: list[ReviewComment] = []
        if target is not None:
            unplaced = self._review(plan, aggregate, target)
            pr = {"number": target.number, "url": target.url, "branch": target.branch}
            aggregate = aggregate.model_copy(update={"pr": pr})
            write_model(out_dir / "aggregate.json", aggregate)
        else:
            unplaced = list(aggregate.review_comments)
        if issue is not None:
            self._finish_tracking(
                plan, aggregate, results, found, aggregate.status, aggregate.reason, unplaced
            )
        return aggregate

    def _finish_tracking(
        self,
        plan: Plan,
        aggregate: Aggregate,
        results: Mapping[str, TaskResult],
        found: FoundComment | None,
        status: TrackingStatus,
        note: str,
        unplaced: list[ReviewComment] | None = None,
    ) -> None:
        """The tracking comment's final update: status, totals, the run's links."""
        issue = plan.request.issue_number if plan.request else None
        if issue is None:
            return
        extra = dict(found.state.extra) if found else {}
        # What /retry needs: the tasks whose work landed, and where their artifacts are.
        extra["landed"] = landed(plan, aggregate)
        if self.context.run_id and self.context.run_id.isdigit():
            extra["artifacts_run_id"] = int(self.context.run_id)
        if plan.reuse is not None and plan.reuse.tasks:
            note = f"{note}; reused from workflow run {plan.reuse.workflow_run_id}: " + ", ".join(
                plan.reuse.tasks
            )
        state = TrackingState(
            plan.run_id,
            issue,
            status,
            plan=plan,
            note=note.lstrip("; "),
            pr=aggregate.pr,
            run_url=self.context.run_url or (found.state.run_url if found else None),
            extra=extra,
        )
        self._upsert(
            issue,
            found,
            state,
            aggregate=aggregate,
            results=results,
            unplaced=unplaced if unplaced is not None else list(aggregate.review_comments),
        )

    def _land(
        self,
        plan: Plan,
        aggregate: Aggregate,
        results: Mapping[str, TaskResult],
        request: Request | None,
        repo: Path,
    ) -> _Target | None:
        """Push the work and find or open the PR that holds it; ``None`` when there is none."""
        issue = request.issue_number if request else None
        on_pr = request is not None and request.is_pull_request and issue is not None
        base_pr = self.client.get_pull(issue) if on_pr and issue is not None else None
        if aggregate.branch is None or aggregate.head_sha is None:
            if base_pr is not None:
                return _Target(base_pr.number, base_pr.html_url, base_pr.head.ref, base_pr.head.sha)
            return None
        token = self.client.token
        into: str | None = None  # the base of the follow-up PR
        note = ""
        if base_pr is not None:
            landed, into, note = self._onto_pr(plan, aggregate.head_sha, request, base_pr, repo)
            if landed is not None:
                return landed
        push(
            repo,
            aggregate.head_sha,
            aggregate.branch,
            token=token,
            remote=self.context.remote,
            force=True,
            redactor=self.redactor,
        )
        base = into or self.client.get_repo().default_branch
        title = self._title(plan)
        body = self._pr_body(
            plan, aggregate, results, issue if base_pr is None else None, note, base_pr
        )
        existing = self.client.find_pulls(aggregate.branch)
        if existing:
            pull = existing[0]
            if (pull.body or "") != body or pull.title != title:
                self.client.update_pull(pull.number, title=title, body=body)
            return _Target(pull.number, pull.html_url, aggregate.branch, aggregate.head_sha)
        created = self.client.create_pull(
            title=title, head=aggregate.branch, base=base, body=body, draft=self.context.draft
        )
        return _Target(created.number, created.html_url, aggregate.branch, aggregate.head_sha)

    def _onto_pr(
        self, plan: Plan, head_sha: str, request: Request | None, base_pr: Any, repo: Path
    ) -> tuple[_Target | None, str, str]:
        """The work of a command given on PR ``base_pr``: pushed onto its branch (a PR of this
        repository, fast-forward only) → that target; otherwise the base branch of a follow-up
        PR and the note saying why (docs/github.md#pull-requests-and-forks)."""
        number, head = base_pr.number, base_pr.head.ref
        planned = request.pull_request if request is not None else None
        same_repo = (
            base_pr.head.repo is not None
            and base_pr.head.repo.full_name.lower() == self.client.repository.lower()
            and not (planned is not None and planned.fork)
        )
        if not same_repo:
            # Never a push to the fork (the job's token cannot, and its author did not ask):
            # a follow-up PR from a branch of this repository into the PR's base.
            return (
                None,
                base_pr.base.ref,
                f"Follow-up to #{number}, which comes from a fork: nothing was pushed to the "
                "fork, and its code was never checked out or run here. The agents worked on "
                f"`{md_text(base_pr.base.ref, 100)}` at `{(plan.base_sha or '')[:12]}` and saw "
                "the fork's diff as data only.",
            )
        try:
            push(
                repo,
                head_sha,
                head,
                token=self.client.token,
                remote=self.context.remote,
                redactor=self.redactor,
            )
        except PushRejectedError:
            pass
        else:
            return _Target(number, base_pr.html_url, head, head_sha), "", ""
        if planned is not None and plan.base_sha == planned.head_sha:
            # Built on the PR's head: it goes back into that branch, by review now.
            why = "it moved since the plan"
            into = head
        else:
            why = "the run was not planned on its head"
            into = base_pr.base.ref
        return (
            None,
            into,
            f"The work could not be added to #{number}'s branch `{md_text(head, 100)}` ({why}): "
            f"this pull request proposes it into `{md_text(into, 100)}` instead.",
        )

    def _title(self, plan: Plan) -> str:
        request = plan.request
        subject = request.title if request and request.title else plan.reason
        return self.redactor.redact(f"Orchestrator: {one_line(subject, 200)}")

    def _pr_body(
        self,
        plan: Plan,
        aggregate: Aggregate,
        results: Mapping[str, TaskResult],
        issue: int | None,
        note: str,
        base_pr: Any,
    ) -> str:
        lines = [pr_marker(plan.run_id)]
        if issue is not None:
            lines.append(f"{self.context.link_keyword} #{issue}".strip())
        if note:
            lines.append(note)
        summary = report.render_summary(plan, aggregate.model_copy(update={"pr": None}), results)
        lines.append(summary)
        body = "\n\n".join(lines)
        return self.redactor.redact(body[:60_000])

    def _review(self, plan: Plan, aggregate: Aggregate, target: _Target) -> list[ReviewComment]:
        """Post the run's one review on ``target`` unless it exists; returns comments not placed."""
        comments = aggregate.review_comments
        if not comments:
            return []
        marker = review_marker(plan.run_id)
        for review in self.client.list_reviews(target.number):
            if marker in (review.body or ""):
                return []
        files = {
            entry.filename: diff_lines(entry.patch if isinstance(entry.patch, str) else None)
            for entry in self.client.list_pull_files(target.number)
        }
        inline: list[dict[str, Any]] = []
        outside: list[ReviewComment] = []
        for comment in comments:
            text = self._comment_text(comment)
            if comment.line in files.get(comment.path, set()):
                inline.append(
                    {"path": comment.path, "line": comment.line, "side": "RIGHT", "body": text}
                )
            else:
                outside.append(comment)
        body_lines = [
            marker,
            f"Review by the orchestrator run `{plan.run_id}`: {plural(len(comments), 'comment')} "
            f"from {plural(len({c.task_id for c in comments}), 'task')}.",
        ]
        if outside:
            body_lines += ["", "Comments on lines outside this pull request's diff:", ""]
            for comment in outside:
                body_lines.append(
                    f"- `{md_text(comment.path, 120)}` line {comment.line}: "
                    f"{self._comment_text(comment)}"
                )
        self.client.create_review(
            target.number,
            commit_id=target.head_sha,
            body=self.redactor.redact("\n".join(body_lines)),
            comments=inline,
        )
        return []

    def _comment_text(self, comment: ReviewComment) -> str:
        by = f"\n\n<sub>from task `{md_text(comment.task_id, 80)}`</sub>" if comment.task_id else ""
        return self.redactor.redact(md_block(comment.body, 5000) + by)

    # ------------------------------------------------------------------ helpers

    def _react(self, request: Request, event: Mapping[str, Any] | None) -> None:
        comment_id = None
        if request.source == "issue_comment" and isinstance(event, Mapping):
            comment = event.get("comment")
            if isinstance(comment, Mapping) and isinstance(comment.get("id"), int):
                comment_id = comment["id"]
        if comment_id is not None:
            self.client.add_reaction("eyes", comment_id=comment_id)
        else:
            self.client.add_reaction("eyes", issue_number=request.issue_number)

    def find_run(
        self, number: int, run_id: str, comment_id: int | None = None
    ) -> FoundComment | None:
        """The tracking comment of ``run_id``: the one whose id the run recorded when it made it
        (one GET), else the bot's comment carrying the run's state (a search)."""
        if comment_id is not None:
            comment = self.client.get_issue_comment(comment_id)
            return (
                None
                if comment is None
                else find_tracking([comment], bot_logins=self.context.bot_logins, run_id=run_id)
            )
        comments = self.client.list_issue_comments(number)
        return find_tracking(comments, bot_logins=self.context.bot_logins, run_id=run_id)

    def _upsert(
        self,
        number: int,
        found: FoundComment | None,
        state: TrackingState,
        *,
        aggregate: Aggregate | None = None,
        results: Mapping[str, TaskResult] | None = None,
        unplaced: list[ReviewComment] | None = None,
    ) -> tuple[str, int]:
        """Create or update the tracking comment; its URL and id."""
        body = self.redactor.redact(
            render_tracking(
                state,
                aggregate=aggregate,
                results=results,
                unplaced_comments=unplaced or [],
                redact=self.redactor.redact,
            )
        )
        if found is None:
            created = self.client.create_issue_comment(number, body)
            return str(created.html_url), int(created.id)
        if found.body != body:
            self.client.update_issue_comment(found.id, body)
        return found.url, found.id

    def _reply(self, number: int, text: str) -> None:
        """Post a short answer. Every value in ``text`` that came from people or agents is
        already ``md_text``-escaped by the caller; nothing here may start like a tracking
        comment."""
        self.client.create_issue_comment(number, self.redactor.redact(text))


def publisher_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    sleep: Callable[[float], None] | None = None,
    **overrides: Any,
) -> Publisher:
    """A publisher for the Actions environment (``GITHUB_TOKEN`` or App, ``GITHUB_API_URL`` …).

    Raises:
        InputError: the repository or the credentials are missing.
    """
    env = os.environ if environ is None else environ
    client = GitHubClient.from_env(env, sleep=sleep or time.sleep)
    context = GitHubContext.from_env(env, repository=client.repository, **overrides)
    if client.app_slug and "ORCHESTRATOR_BOT_LOGIN" not in env:
        context = replace(context, bot_logins=(f"{client.app_slug}[bot]",))
    return Publisher(client, context)
