"""The GitHub side: a githubkit façade, trigger confirmation, the tracking comment, publishing.

``client`` holds the only code that talks to the REST API; ``tracking`` renders and finds the
one tracking comment per run; ``publish`` is the plan-step and aggregate-step publishing;
``git_push`` pushes the merged branch without writing the token anywhere.
"""

from orchestrator.github.client import Call, GitHubClient, GitHubError, RetryPolicy

__all__ = ["Call", "GitHubClient", "GitHubError", "RetryPolicy"]
