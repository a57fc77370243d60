"""A small façade over githubkit: auth, GHES, rate limits, retries, redaction, a call log.

Every REST call the orchestrator makes goes through :meth:`GitHubClient.request`, the single
choke point that

* redacts every string of the JSON body (secrets never reach GitHub, whatever built the body),
* records the call (method, path, status) so tests and reports can count write calls,
* waits out rate limits: a *secondary* limit (403/429 with ``Retry-After``, or GitHub's
  "secondary rate limit" message) waits ``Retry-After`` seconds, else at least 60 s, doubling on
  each repeat; an exhausted *primary* limit (``x-ratelimit-remaining: 0``) waits until
  ``x-ratelimit-reset``; a 5xx answer to an idempotent call is retried with a short backoff.
  Retries are bounded (:class:`RetryPolicy`); ``sleep`` and ``clock`` are injectable for tests.
* parses the answer with githubkit's own models (``githubkit_schemas.latest.models``).

githubkit's own retry loop and HTTP cache are switched off: the loop sleeps with
``time.sleep`` (not injectable) and a cache would serve stale lists of comments on re-runs.

Auth: a token (``GITHUB_TOKEN``), or a GitHub App (app id + private key): the app's JWT finds
the repository's installation and mints an installation token, used from then on like any token
(so ``git push`` can use it too). The API root honours ``GITHUB_API_URL`` (GitHub Enterprise
Server: ``https://HOST/api/v3``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from orchestrator.errors import InputError, OrchestratorError
from orchestrator.extras import require
from orchestrator.redact import Redactor, default_redactor

try:
    from githubkit import GitHub
    from githubkit.exception import (
        GitHubException,
        PrimaryRateLimitExceeded,
        RequestError,
        RequestFailed,
        SecondaryRateLimitExceeded,
    )
    from githubkit_schemas.latest import models
except ModuleNotFoundError:  # a lean install: every GitHub path imports this module first
    require("github", source="GitHub", what="publishing and reading GitHub")
    raise

__all__ = [
    "DEFAULT_API_URL",
    "FULL_JSON",
    "WRITE_METHODS",
    "Call",
    "GitHubClient",
    "GitHubError",
    "RetryPolicy",
    "app_installation_token",
    "models",
]

DEFAULT_API_URL = "https://api.github.com"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Calls that may be repeated after a server error without risk of doing the work twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE"})
_SECONDARY_MESSAGE = "secondary rate limit"
USER_AGENT = "gh-orchestrator"
#: The media type whose answers carry ``body_html`` (rendered Markdown, signed image URLs).
FULL_JSON = "application/vnd.github.full+json"

T = TypeVar("T")


class GitHubError(OrchestratorError):
    """A GitHub API call failed (after any retries); the message is redacted, one line."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Call:
    """One HTTP attempt made through the client (a retried call appears once per attempt)."""

    method: str
    path: str
    status: int | None

    @property
    def is_write(self) -> bool:
        """POST, PATCH, PUT or DELETE."""
        return self.method in WRITE_METHODS


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on waiting and retrying.

    Args:
        max_retries: Retries per call (rate limits and server errors together).
        secondary_min_wait_s: Wait on a secondary limit without ``Retry-After`` (doubles).
        max_wait_s: A single wait longer than this gives up instead (e.g. a primary limit that
            resets in an hour); the error says when the limit resets.
        server_error_base_s: First backoff after a 5xx on an idempotent call (doubles).
    """

    max_retries: int = 5
    secondary_min_wait_s: float = 60.0
    max_wait_s: float = 900.0
    server_error_base_s: float = 2.0


@dataclass
class _Attempts:
    secondary: int = 0
    server: int = 0
    waits: list[float] = field(default_factory=list)


def _split_repository(repository: str) -> tuple[str, str]:
    owner, _, name = repository.partition("/")
    if not owner or not name or "/" in name:
        raise InputError("GITHUB_REPOSITORY", "", f"expected OWNER/REPO, got {repository!r}")
    return owner, name


def _api_root(api_url: str | None) -> str:
    root = (api_url or DEFAULT_API_URL).strip() or DEFAULT_API_URL
    return root.rstrip("/") + "/"


def _new_github(auth: Any, api_url: str | None, timeout_s: float) -> GitHub[Any]:
    return GitHub(
        auth,
        base_url=_api_root(api_url),
        user_agent=USER_AGENT,
        timeout=timeout_s,
        http_cache=False,
        auto_retry=False,
    )


def app_installation_token(
    app_id: str,
    private_key: str,
    repository: str,
    *,
    api_url: str | None = None,
    timeout_s: float = 30.0,
) -> tuple[str, str]:
    """Mint an installation access token of a GitHub App for ``repository``; also the app's slug.

    Needs PyJWT (``githubkit[auth-app]``) to sign the app's JWT.

    Raises:
        InputError: PyJWT missing, or the credentials are malformed.
        GitHubError: the app is not installed on the repository, or GitHub refused.
    """
    from githubkit import AppAuthStrategy

    owner, name = _split_repository(repository)
    app = _new_github(AppAuthStrategy(app_id, private_key), api_url, timeout_s)
    redactor = default_redactor().with_values(private_key)
    try:
        installation = app.rest.apps.get_repo_installation(owner, name).parsed_data
        token = app.rest.apps.create_installation_access_token(installation.id).parsed_data
    except RequestFailed as exc:
        status = exc.response.status_code
        raise GitHubError(
            redactor.redact(f"GitHub App auth for {repository} failed ({status})"), status=status
        ) from None
    except GitHubException as exc:
        text = redactor.redact(f"{type(exc).__name__}: {exc}")
        if "jwt" in text.lower():
            raise InputError(
                "GITHUB_APP_PRIVATE_KEY", "", "GitHub App auth needs PyJWT (githubkit[auth-app])"
            ) from None
        raise GitHubError(f"GitHub App auth for {repository} failed: {text}") from None
    return token.token, installation.app_slug


class GitHubClient:
    """The REST calls the orchestrator makes, for one repository.

    Args:
        repository: ``OWNER/REPO``.
        token: Installation token, ``GITHUB_TOKEN`` or a PAT.
        api_url: API root (``GITHUB_API_URL``); default ``https://api.github.com``.
        redactor: Applied to every request body and error message (default: the environment's,
            plus ``token``).
        sleep: Called with the seconds to wait before a retry (``time.sleep``).
        clock: Unix time now (``time.time``), for ``x-ratelimit-reset``.
        policy: Retry bounds.
    """

    def __init__(
        self,
        repository: str,
        *,
        token: str,
        api_url: str | None = None,
        redactor: Redactor | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        policy: RetryPolicy | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.owner, self.repo = _split_repository(repository)
        self.repository = f"{self.owner}/{self.repo}"
        self.api_url = _api_root(api_url)
        self._token = token
        self.redactor = (redactor or default_redactor()).with_values(token)
        self._sleep = sleep
        self._clock = clock
        self.policy = policy or RetryPolicy()
        self.calls: list[Call] = []
        #: The GitHub App's slug when authenticated as an App installation.
        self.app_slug: str | None = None
        self.waits: list[float] = []
        self._gh = _new_github(token, api_url, timeout_s)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        policy: RetryPolicy | None = None,
    ) -> GitHubClient:
        """A client from ``GITHUB_REPOSITORY``, ``GITHUB_API_URL`` and the credentials.

        A GitHub App (``GITHUB_APP_ID`` + ``GITHUB_APP_PRIVATE_KEY``, or the same with the
        ``ORCHESTRATOR_`` prefix that the reusable workflow passes) wins over ``GITHUB_TOKEN``
        (``GH_TOKEN`` also works) when both are set: the App is what lets the PR trigger CI.

        Raises:
            InputError: no repository or no credentials in the environment.
        """
        env = os.environ if environ is None else environ
        repository = env.get("GITHUB_REPOSITORY", "").strip()
        if not repository:
            raise InputError("GITHUB_REPOSITORY", "", "not set (OWNER/REPO)")
        api_url = env.get("GITHUB_API_URL") or None
        app_id = (env.get("GITHUB_APP_ID") or env.get("ORCHESTRATOR_APP_ID") or "").strip()
        private_key = (
            env.get("GITHUB_APP_PRIVATE_KEY") or env.get("ORCHESTRATOR_APP_PRIVATE_KEY") or ""
        )
        app_slug = None
        if app_id and private_key.strip():
            token, app_slug = app_installation_token(
                app_id, private_key, repository, api_url=api_url
            )
        else:
            token = (env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or "").strip()
        if not token:
            raise InputError(
                "GITHUB_TOKEN",
                "",
                "not set: give GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY",
            )
        redactor = Redactor.from_env(env, extra=[token, private_key] if private_key else [token])
        client = cls(
            repository, token=token, api_url=api_url, redactor=redactor, sleep=sleep, policy=policy
        )
        client.app_slug = app_slug
        return client

    # -- bookkeeping ---------------------------------------------------------------------

    @property
    def token(self) -> str:
        """The credential (for ``git push``; never print it)."""
        return self._token

    @property
    def write_calls(self) -> list[Call]:
        """Every POST/PATCH/PUT/DELETE attempt so far."""
        return [call for call in self.calls if call.is_write]

    def repo_path(self, suffix: str = "") -> str:
        """``/repos/OWNER/REPO`` + ``suffix``."""
        return f"/repos/{self.owner}/{self.repo}{suffix}"

    # -- the choke point -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        model: type[T],
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """Send one REST call (redacted body, retries, call log) and parse the answer.

        ``headers`` are extra request headers (e.g. ``Accept``: :data:`FULL_JSON`).

        Raises:
            GitHubError: GitHub answered with an error after the allowed retries, or the
                answer did not match githubkit's model.
        """
        response = self._send(method, path, model, body=body, params=params, headers=headers)
        try:
            return cast("T", response.parsed_data)
        except Exception as exc:  # pydantic ValidationError and JSON errors
            text = self.redactor.redact(str(exc).splitlines()[0])
            raise GitHubError(
                f"{method.upper()} {path}: unexpected answer from GitHub: {text}"
            ) from None

    def _send(
        self,
        method: str,
        path: str,
        model: type[T],
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """:meth:`request` without parsing: githubkit's ``Response`` (redirects followed; httpx
        drops the ``Authorization`` header when a redirect leaves the API's origin)."""
        method = method.upper()
        payload = self.redactor.redact_obj(dict(body)) if body is not None else None
        attempts = _Attempts()
        while True:
            try:
                response = self._gh.request(
                    method,
                    path.lstrip("/"),
                    json=payload,
                    params=dict(params) if params else None,
                    headers=dict(headers) if headers else None,
                    response_model=model,
                )
            except RequestFailed as exc:
                status = exc.response.status_code
                self.calls.append(Call(method, path, status))
                wait = self._wait_for(exc, method, attempts)
                if wait is None:
                    raise GitHubError(self._describe(method, path, exc), status=status) from None
                self._wait(wait, attempts)
                continue
            except RequestError as exc:
                self.calls.append(Call(method, path, None))
                if method in IDEMPOTENT_METHODS and attempts.server < self.policy.max_retries:
                    wait = self.policy.server_error_base_s * 2.0**attempts.server
                    attempts.server += 1
                    self._wait(wait, attempts)
                    continue
                text = self.redactor.redact(f"{type(exc).__name__}: {exc!r}")
                raise GitHubError(f"{method} {path} failed: {text}") from None
            self.calls.append(Call(method, path, response.status_code))
            return response

    def _wait(self, seconds: float, attempts: _Attempts) -> None:
        attempts.waits.append(seconds)
        self.waits.append(seconds)
        self._sleep(seconds)

    def _wait_for(self, exc: RequestFailed, method: str, attempts: _Attempts) -> float | None:
        """Seconds to wait before retrying, or ``None`` to give up."""
        if len(attempts.waits) >= self.policy.max_retries:
            return None
        response = exc.response
        status = response.status_code
        headers = response.headers
        retry_after = _seconds(headers.get("retry-after"))
        if isinstance(exc, SecondaryRateLimitExceeded) or (
            status in (403, 429) and _SECONDARY_MESSAGE in _message(exc).lower()
        ):
            if retry_after is not None:
                wait = retry_after
            else:
                wait = self.policy.secondary_min_wait_s * 2.0**attempts.secondary
            attempts.secondary += 1
            return wait if wait <= self.policy.max_wait_s else None
        if isinstance(exc, PrimaryRateLimitExceeded) or (
            status in (403, 429) and headers.get("x-ratelimit-remaining") == "0"
        ):
            reset = _seconds(headers.get("x-ratelimit-reset"))
            wait = max(0.0, reset - self._clock()) + 1.0 if reset is not None else 60.0
            return wait if wait <= self.policy.max_wait_s else None
        if status == 429:
            wait = retry_after if retry_after is not None else self.policy.secondary_min_wait_s
            return wait if wait <= self.policy.max_wait_s else None
        if status >= 500 and method in IDEMPOTENT_METHODS:
            wait = self.policy.server_error_base_s * 2.0**attempts.server
            attempts.server += 1
            return wait
        return None

    def _describe(self, method: str, path: str, exc: RequestFailed) -> str:
        status = exc.response.status_code
        text = f"{method} {path} failed ({status}): {_message(exc)}"
        if status in (403, 429):
            reset = exc.response.headers.get("x-ratelimit-reset")
            if reset:
                text += f" (rate limit resets at unix time {reset})"
        return self.redactor.redact(" ".join(text.split())[:500])

    # -- typed operations ----------------------------------------------------------------

    def get_repo(self) -> models.FullRepository:
        """``GET /repos/{owner}/{repo}``."""
        return self.request("GET", self.repo_path(), models.FullRepository)

    def collaborator_permission(self, username: str) -> str:
        """``admin``, ``maintain``, ``write``, ``triage``, ``read`` or ``none``."""
        try:
            found = self.request(
                "GET",
                self.repo_path(f"/collaborators/{username}/permission"),
                models.RepositoryCollaboratorPermission,
            )
        except GitHubError as exc:
            if exc.status == 404:
                return "none"
            raise
        role = found.role_name or found.permission
        return role

    def list_issue_comments(self, number: int) -> list[models.IssueComment]:
        """Every comment of an issue or PR (all pages, oldest first)."""
        return self._paginate(self.repo_path(f"/issues/{number}/comments"), models.IssueComment)

    def get_issue_comment(self, comment_id: int) -> models.IssueComment | None:
        """``GET …/issues/comments/{id}``; ``None`` when it was deleted (404)."""
        try:
            return self.request(
                "GET", self.repo_path(f"/issues/comments/{comment_id}"), models.IssueComment
            )
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def get_issue_html(self, number: int) -> str:
        """The rendered body (``body_html``) of an issue or PR: its ``<img src>`` are signed,
        directly downloadable URLs, also in private repositories."""
        issue = self.request(
            "GET", self.repo_path(f"/issues/{number}"), models.Issue, headers={"Accept": FULL_JSON}
        )
        html = issue.body_html
        return html if isinstance(html, str) else ""

    def get_issue_comment_html(self, comment_id: int) -> str:
        """The rendered body (``body_html``) of an issue or PR comment."""
        comment = self.request(
            "GET",
            self.repo_path(f"/issues/comments/{comment_id}"),
            models.IssueComment,
            headers={"Accept": FULL_JSON},
        )
        html = comment.body_html
        return html if isinstance(html, str) else ""

    def create_issue_comment(self, number: int, body: str) -> models.IssueComment:
        """``POST …/issues/{number}/comments``."""
        return self.request(
            "POST",
            self.repo_path(f"/issues/{number}/comments"),
            models.IssueComment,
            body={"body": body},
        )

    def update_issue_comment(self, comment_id: int, body: str) -> models.IssueComment:
        """``PATCH …/issues/comments/{id}``."""
        return self.request(
            "PATCH",
            self.repo_path(f"/issues/comments/{comment_id}"),
            models.IssueComment,
            body={"body": body},
        )

    def add_reaction(
        self, content: str, *, comment_id: int | None = None, issue_number: int | None = None
    ) -> models.Reaction:
        """A reaction on a comment (``comment_id``) or on the issue/PR itself."""
        if comment_id is not None:
            path = self.repo_path(f"/issues/comments/{comment_id}/reactions")
        elif issue_number is not None:
            path = self.repo_path(f"/issues/{issue_number}/reactions")
        else:
            raise ValueError("comment_id or issue_number is required")
        return self.request("POST", path, models.Reaction, body={"content": content})

    def get_pull(self, number: int) -> models.PullRequest:
        """``GET …/pulls/{number}``."""
        return self.request("GET", self.repo_path(f"/pulls/{number}"), models.PullRequest)

    def find_pulls(self, branch: str, *, state: str = "open") -> list[models.PullRequestSimple]:
        """Pull requests whose head is ``OWNER:branch`` in this repository."""
        return self._paginate(
            self.repo_path("/pulls"),
            models.PullRequestSimple,
            params={"head": f"{self.owner}:{branch}", "state": state},
        )

    def create_pull(
        self, *, title: str, head: str, base: str, body: str, draft: bool = True
    ) -> models.PullRequest:
        """``POST …/pulls``."""
        return self.request(
            "POST",
            self.repo_path("/pulls"),
            models.PullRequest,
            body={"title": title, "head": head, "base": base, "body": body, "draft": draft},
        )

    def update_pull(self, number: int, *, title: str, body: str) -> models.PullRequest:
        """``PATCH …/pulls/{number}`` (title and body only)."""
        return self.request(
            "PATCH",
            self.repo_path(f"/pulls/{number}"),
            models.PullRequest,
            body={"title": title, "body": body},
        )

    def list_pull_files(self, number: int) -> list[models.DiffEntry]:
        """The files of a PR's diff, each with its ``patch`` (hunks)."""
        return self._paginate(self.repo_path(f"/pulls/{number}/files"), models.DiffEntry)

    def list_reviews(self, number: int) -> list[models.PullRequestReview]:
        """Every review of a PR."""
        return self._paginate(self.repo_path(f"/pulls/{number}/reviews"), models.PullRequestReview)

    def create_review(
        self,
        number: int,
        *,
        commit_id: str | None,
        body: str,
        comments: list[dict[str, Any]],
        event: str = "COMMENT",
    ) -> models.PullRequestReview:
        """One submitted review with all its inline comments (``POST …/reviews``)."""
        payload: dict[str, Any] = {"body": body, "event": event, "comments": comments}
        if commit_id:
            payload["commit_id"] = commit_id
        return self.request(
            "POST",
            self.repo_path(f"/pulls/{number}/reviews"),
            models.PullRequestReview,
            body=payload,
        )

    def cancel_workflow_run(self, run_id: int) -> bool:
        """Cancel a workflow run: True when GitHub accepted it, False when the run had already
        finished (GitHub's 409). Needs ``actions: write``."""
        try:
            self.request(
                "POST", self.repo_path(f"/actions/runs/{run_id}/cancel"), models.EmptyObject
            )
        except GitHubError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def list_run_artifacts(self, run_id: int) -> list[models.Artifact]:
        """Every artifact of a workflow run (``GET …/actions/runs/{id}/artifacts``, paged).
        Needs ``actions: read``."""
        artifacts: list[models.Artifact] = []
        path = self.repo_path(f"/actions/runs/{run_id}/artifacts")
        for page in range(1, 51):
            query: dict[str, str | int] = {"per_page": 100, "page": page}
            answer = self.request(
                "GET", path, models.ReposOwnerRepoActionsRunsRunIdArtifactsGetResponse200,
                params=query,
            )  # fmt: skip
            artifacts.extend(answer.artifacts)
            if len(answer.artifacts) < 100 or len(artifacts) >= answer.total_count:
                break
        return artifacts

    def download_artifact(self, artifact_id: int) -> bytes:
        """The zip archive of an artifact (``GET …/actions/artifacts/{id}/zip``).

        GitHub answers with a redirect to a signed storage URL on another host; the token is
        not sent there (httpx drops ``Authorization`` when a redirect changes origin).
        """
        path = self.repo_path(f"/actions/artifacts/{artifact_id}/zip")
        response = self._send("GET", path, cast("type[Any]", bytes))
        return bytes(response.content)

    def rate_limit(self) -> models.RateLimitOverview:
        """``GET /rate_limit`` (does not count against the limit)."""
        return self.request("GET", "/rate_limit", models.RateLimitOverview)

    def _paginate(
        self, path: str, model: type[T], *, params: Mapping[str, str | int] | None = None
    ) -> list[T]:
        items: list[T] = []
        page = 1
        while True:
            query: dict[str, str | int] = {**(params or {}), "per_page": 100, "page": page}
            batch = cast(
                "list[T]",
                self.request("GET", path, cast("type[Any]", list[model]), params=query),  # type: ignore[valid-type]
            )
            items.extend(batch)
            if len(batch) < 100 or page >= 50:
                return items
            page += 1


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _message(exc: RequestFailed) -> str:
    try:
        data = json.loads(exc.response.raw_response.content or b"null")
    except (ValueError, UnicodeDecodeError):
        return exc.response.raw_response.text[:200]
    if isinstance(data, dict):
        message = str(data.get("message", ""))
        errors = data.get("errors")
        if errors:
            message += f" {json.dumps(errors)[:300]}"
        return message
    return ""
