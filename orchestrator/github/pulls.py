"""The pull request a command was given on: where the run works, and its diff as data.

A command on a pull request (an ``/orchestrate`` comment, a label on a PR) is about that PR,
so the plan job reads it from the API (two GETs: the PR and its files) rather than trusting the
event: an ``issue_comment`` payload does not even say where the head lives.

* **Same repository**: the plan is pinned to the PR's head commit, so agents work on the PR as
  it is and the aggregate step can fast-forward the PR's branch (``publish.py``).
* **Fork**: the plan is pinned to the PR's base commit, a commit of this repository. Fork code
  is never checked out in a job that holds secrets; agents see the fork's change only as the
  diff below, fenced as untrusted data, and the work becomes a follow-up PR into the base.

The diff is GitHub's per-file listing (``GET …/pulls/{n}/files``), cut at
:data:`MAX_DIFF_CHARS`; files GitHub shows no hunks for (binary, too large) are named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.contracts import PullRequestContext

if TYPE_CHECKING:
    from orchestrator.github.client import GitHubClient

__all__ = ["MAX_DIFF_CHARS", "pull_request_context", "render_diff"]

#: Characters of a PR's diff kept for the agents (and in plan.json); the rest is counted.
MAX_DIFF_CHARS = 30_000


def pull_request_context(client: GitHubClient, number: int) -> PullRequestContext:
    """PR ``number`` of the client's repository: its two sides, whether it is a fork, its diff.

    A head whose repository is gone (a deleted fork) counts as a fork.
    """
    pull = client.get_pull(number)
    head_repo = pull.head.repo.full_name if pull.head.repo is not None else None
    fork = head_repo is None or head_repo.lower() != client.repository.lower()
    return PullRequestContext(
        number=number,
        head_ref=pull.head.ref,
        head_sha=pull.head.sha,
        head_repo=head_repo,
        base_ref=pull.base.ref,
        base_sha=pull.base.sha,
        fork=fork,
        diff=render_diff(client.list_pull_files(number)),
    )


def render_diff(files: list[Any], limit: int = MAX_DIFF_CHARS) -> str:
    """GitHub's diff entries (``filename``, ``status``, ``patch``…) as one text, at most
    ``limit`` characters; files beyond it are counted, not dropped silently."""
    blocks: list[str] = []
    used = 0
    for index, entry in enumerate(files):
        block = _file_block(entry)
        if used + len(block) > limit:
            left = len(files) - index
            blocks.append(f"… {left} more changed file{'s' if left != 1 else ''} not shown")
            break
        blocks.append(block)
        used += len(block) + 1
    return "\n".join(blocks)


def _file_block(entry: Any) -> str:
    name = str(entry.filename)
    previous = getattr(entry, "previous_filename", None)
    renamed = f" (from {previous})" if isinstance(previous, str) and previous else ""
    header = f"--- {name}{renamed}: {entry.status}, +{entry.additions} -{entry.deletions}"
    patch = getattr(entry, "patch", None)
    if not isinstance(patch, str) or not patch:
        return f"{header}\n(no hunks shown: binary, too large, or only renamed)"
    return f"{header}\n{patch.rstrip()}"
