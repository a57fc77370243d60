"""The GitHub side: a githubkit façade, trigger confirmation, the tracking comment, publishing.

``client`` holds the only code that talks to the REST API; ``tracking`` renders and finds the
one tracking comment per run; ``publish`` is the plan-step and aggregate-step publishing;
``git_push`` pushes the merged branch without writing the token anywhere. The names below are
imported when first used: ``python -m orchestrator.github.actions`` on a skipped plan must not
load githubkit.
"""

from __future__ import annotations

__all__ = ["Call", "GitHubClient", "GitHubError", "RetryPolicy"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from orchestrator.github.client import Call, GitHubClient, GitHubError, RetryPolicy


def __getattr__(name: str) -> object:
    if name in __all__:
        from orchestrator.github import client

        return getattr(client, name)
    raise AttributeError(f"module 'orchestrator.github' has no attribute {name!r}")
