"""A stateful loopback GitHub REST server: just the operations the orchestrator uses.

Answers are built from GitHub's own example responses in
``tests/fixtures/github/openapi-subset.json`` (the example is deep-copied, then the state's
values are filled in), patched only where githubkit's current models require more than the
examples carry (see ``_PATCHES``). ``tests/unit/test_github_fake.py`` validates every request
body and every answer against the fixture's JSON schemas and parses the answers with githubkit's
models, so this fake cannot drift from the real API.

State: issue comments (each with its reactions rollup), reactions, pull requests (open, closed or
merged) (heads resolved in a bare git repository, the test's ``origin``; a fork's head as its
``refs/pull/N/head`` there, as GitHub keeps it), reviews, collaborator permissions. Every call
is recorded (method, path, operation, request body, status, answer). Knobs:
:meth:`FakeGitHub.fail` injects an answer on the Nth matching call;
:meth:`secondary_limit_on_write` a 403 with ``Retry-After`` on the Nth write;
:meth:`exhaust_primary` a 403 with ``x-ratelimit-remaining: 0``.

Issues and comments answer ``body_html`` under ``Accept: application/vnd.github.full+json``,
rendered from their Markdown images (``![alt](url)`` and ``<img src>``) as github.com does:
an attachment (:meth:`FakeGitHub.add_attachment`) becomes a signed URL under ``/user-content/``
on this server, which serves its bytes (recorded in ``downloads``, not ``calls``); any other
image becomes a camo proxy URL with ``data-canonical-src`` (``camo=False``: the link as is).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import html
import io
import json
import re
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES
from tests.fakes.loopback import LoopbackServer, Reply, Request

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
REACTION_CONTENTS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
NOW = "2026-01-02T03:04:05Z"


@functools.lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    """The fixture's REST description (2.7 MB, loaded once)."""
    path = FIXTURES / "github" / "openapi-subset.json"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def operation(template: str, method: str) -> dict[str, Any]:
    """The OpenAPI operation object."""
    return openapi()["paths"][template][method.lower()]  # type: ignore[no-any-return]


def example(template: str, method: str, status: int) -> Any:
    """A deep copy of GitHub's first example answer for an operation."""
    content = operation(template, method)["responses"][str(status)]["content"]
    examples = content["application/json"]["examples"]
    value = next(iter(examples.values()))["value"]
    # Some examples are wrapped once more ({"value": {...}, "x-github-breaking-changes": …}).
    if isinstance(value, dict) and set(value) <= {"value", "x-github-breaking-changes", "summary"}:
        value = value["value"]
    return copy.deepcopy(value)


# -------------------------------------------------------------------- operations (templates)

REPO = "/repos/{owner}/{repo}"
ISSUE = "/repos/{owner}/{repo}/issues/{issue_number}"
COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
COMMENT = "/repos/{owner}/{repo}/issues/comments/{comment_id}"
COMMENT_REACTIONS = "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"
ISSUE_REACTIONS = "/repos/{owner}/{repo}/issues/{issue_number}/reactions"
PULLS = "/repos/{owner}/{repo}/pulls"
PULL = "/repos/{owner}/{repo}/pulls/{pull_number}"
PULL_FILES = "/repos/{owner}/{repo}/pulls/{pull_number}/files"
REVIEWS = "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"
PERMISSION = "/repos/{owner}/{repo}/collaborators/{username}/permission"
RATE_LIMIT = "/rate_limit"
CANCEL_RUN = "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel"
RUN_ARTIFACTS = "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts"
ARTIFACT_ARCHIVE = "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}/{archive_format}"
# Not in the fixture subset (GitHub App auth): minimal bodies, checked by githubkit only.
INSTALLATION = "/repos/{owner}/{repo}/installation"
ACCESS_TOKENS = "/app/installations/{installation_id}/access_tokens"

_ROUTES: list[tuple[str, str]] = [
    ("GET", RATE_LIMIT),
    ("GET", REPO),
    ("GET", ISSUE),
    ("GET", COMMENTS),
    ("POST", COMMENTS),
    ("GET", COMMENT),
    ("PATCH", COMMENT),
    ("POST", COMMENT_REACTIONS),
    ("POST", ISSUE_REACTIONS),
    ("GET", PULLS),
    ("POST", PULLS),
    ("GET", PULL),
    ("PATCH", PULL),
    ("GET", PULL_FILES),
    ("GET", REVIEWS),
    ("POST", REVIEWS),
    ("GET", PERMISSION),
    ("POST", CANCEL_RUN),
    ("GET", RUN_ARTIFACTS),
    ("GET", ARTIFACT_ARCHIVE),
    ("GET", INSTALLATION),
    ("POST", ACCESS_TOKENS),
]


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[a-z_]+\}", r"([^/]+)", template) + "$")


_COMPILED = [(method, template, _template_regex(template)) for method, template in _ROUTES]


def match_route(method: str, path: str) -> tuple[str, list[str]] | None:
    """The operation template and path parameters of a request, or ``None``."""
    for route_method, template, regex in _COMPILED:
        found = regex.match(path)
        if found and route_method == method:
            return template, list(found.groups())
    return None


@dataclass
class Recorded:
    """One call the fake answered."""

    method: str
    path: str
    template: str | None
    query: dict[str, list[str]]
    body: Any
    raw_body: bytes
    status: int
    answer: Any
    headers: dict[str, str]

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


@dataclass
class Attachment:
    """A file uploaded to an issue or comment (served under ``/user-content/``)."""

    data: bytes
    content_type: str = "image/png"
    redirect_to: str | None = None
    status: int = 200


@dataclass
class _Fault:
    method: str | None
    path_re: re.Pattern[str]
    nth: int
    reply: Callable[[], Reply]
    writes_only: bool = False
    seen: int = 0
    fired: bool = False


def _git(git_dir: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else ""


@dataclass
class FakeGitHub:
    """The state and the request handler; serve it with :func:`serve_github`."""

    owner: str = "Codertocat"
    repo: str = "Hello-World"
    default_branch: str = "main"
    git_dir: Path | None = None
    bot_login: str = "github-actions[bot]"
    #: Owner of the fork a ``from_fork`` PR comes from (``OWNER/REPO`` is its repository;
    #: its head commit is ``refs/pull/N/head`` of ``git_dir``, as GitHub keeps it).
    fork_owner: str = "forker"
    #: Repository permission per login; the example repository's owner is its admin.
    permissions: dict[str, str] = field(default_factory=lambda: {"Codertocat": "admin"})
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    reactions: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[Recorded] = field(default_factory=list)
    base_url: str = "http://127.0.0.1"
    installation_tokens: list[str] = field(default_factory=list)
    #: Issues by number: title, body (Markdown), author.
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Uploaded files by asset id.
    attachments: dict[str, Attachment] = field(default_factory=dict)
    #: Requests to ``/user-content/`` and ``/camo/`` (image downloads).
    downloads: list[Request] = field(default_factory=list)
    #: Render off-site images through a camo proxy URL (as github.com does).
    camo: bool = True
    #: Workflow runs cancelled through the API, and runs that have already finished (a cancel
    #: of one is a 409, as GitHub answers).
    cancelled_runs: list[int] = field(default_factory=list)
    finished_runs: set[int] = field(default_factory=set)
    #: Called with each comment the bot creates, right after it is stored (under the lock):
    #: a test can play what another workflow run does meanwhile (e.g. a ``/cancel``).
    on_bot_comment: Callable[[dict[str, Any]], None] | None = None
    #: Each workflow run's artifacts: run id → folder holding one folder per artifact (what
    #: upload-artifact stored, e.g. the act stand-in's ``ACT_STANDIN_ARTIFACTS``).
    run_artifacts: dict[int, Path] = field(default_factory=dict)
    #: Requests for artifact archives at the storage URL GitHub redirects to (another origin).
    blob_requests: list[Request] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _next_id: int = 1000
    _next_number: int = 100
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---------------------------------------------------------------- knobs and queries

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def write_calls(self) -> list[Recorded]:
        return [call for call in self.calls if call.is_write]

    def fail(
        self,
        method: str | None,
        path_pattern: str,
        status: int,
        *,
        nth: int = 1,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        writes_only: bool = False,
    ) -> None:
        """Answer the ``nth`` matching call with ``status`` (once)."""
        answer = body or {"message": "Server Error"}

        def reply() -> Reply:
            return Reply(status=status, body=answer, headers=dict(headers or {}))

        self._faults.append(
            _Fault(method, re.compile(path_pattern), nth, reply, writes_only=writes_only)
        )

    def secondary_limit_on_write(self, nth: int, retry_after: int = 7) -> None:
        """The ``nth`` write call gets GitHub's secondary-rate-limit 403 with ``Retry-After``."""
        self.fail(
            None,
            r".*",
            403,
            nth=nth,
            writes_only=True,
            headers={"Retry-After": str(retry_after), "x-ratelimit-remaining": "4999"},
            body={
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits",
            },
        )

    def exhaust_primary(self, *, reset_at: int, nth: int = 1) -> None:
        """The ``nth`` call (any) gets a primary-rate-limit 403 resetting at ``reset_at``."""
        self.fail(
            None,
            r".*",
            403,
            nth=nth,
            headers={
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(reset_at),
            },
            body={
                "message": "API rate limit exceeded for installation ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits",
            },
        )

    def add_pull(
        self, head: str, *, base: str = "main", from_fork: bool = False, title: str = "A PR"
    ) -> int:
        """Seed an open PR (as if a person opened it); returns its number."""
        with self._lock:
            number = self._number()
        self.pulls[number] = {
            "number": number,
            "title": title,
            "body": "human text",
            "head": head,
            "base": base,
            "draft": False,
            "state": "open",
            "merged": False,
            "fork": from_fork,
            "id": self._id(),
        }
        return number

    def merge_pull(self, number: int) -> None:
        """Merge a PR (as a maintainer would): closed, with ``merged_at`` set."""
        self.pulls[number].update(state="closed", merged=True)

    def close_pull(self, number: int) -> None:
        """Close a PR without merging it."""
        self.pulls[number].update(state="closed", merged=False)

    def tracking_comments(self) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if "orchestrator:tracking" in c["body"]]

    # ---------------------------------------------------------------- dispatch

    def handle(self, request: Request) -> Reply:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: Request) -> Reply:
        if request.path.startswith(("/user-content/", "/camo/")):
            self.downloads.append(request)
            return self._user_content(request)
        if request.path.startswith("/artifact-storage/"):
            self.blob_requests.append(request)
            return self._artifact_blob(request)
        body: Any = None
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                body = None
        route = match_route(request.method, request.path)
        template = route[0] if route else None
        reply = self._fault(request)
        if reply is None:
            if route is None:
                reply = Reply(404, {"message": "Not Found"})
            else:
                reply = self._serve(request.method, route[0], route[1], request, body)
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": "1900000000",
            "x-ratelimit-resource": "core",
            **reply.headers,
        }
        reply.headers = headers
        self.calls.append(
            Recorded(
                request.method,
                request.path,
                template,
                request.query,
                body,
                request.body,
                reply.status,
                reply.body,
                request.headers,
            )
        )
        return reply

    def _fault(self, request: Request) -> Reply | None:
        for fault in self._faults:
            if fault.fired:
                continue
            if fault.method and fault.method != request.method:
                continue
            if fault.writes_only and request.method not in WRITE_METHODS:
                continue
            if not fault.path_re.search(request.path):
                continue
            fault.seen += 1
            if fault.seen == fault.nth:
                fault.fired = True
                return fault.reply()
        return None

    def _serve(
        self, method: str, template: str, params: list[str], request: Request, body: Any
    ) -> Reply:
        scoped = template not in (RATE_LIMIT, ACCESS_TOKENS)
        if scoped and (params[0] != self.owner or params[1] != self.repo):
            return Reply(404, {"message": "Not Found"})
        handler = getattr(self, "_op_" + re.sub(r"\W+", "_", f"{method}{template}").strip("_"))
        return handler(params, request, body)  # type: ignore[no-any-return]

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _number(self) -> int:
        self._next_number += 1
        return self._next_number

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _html(self, path: str) -> str:
        return f"https://github.com/{self.full_name}{path}"

    def _user(self, template_user: dict[str, Any], login: str, bot: bool) -> dict[str, Any]:
        user = copy.deepcopy(template_user)
        user["login"] = login
        user["type"] = "Bot" if bot else "User"
        return user

    # ---------------------------------------------------------------- issues and images

    def add_issue(self, number: int, body: str, *, title: str = "An issue") -> None:
        """Seed an issue (as a person wrote it)."""
        self.issues[number] = {"number": number, "title": title, "body": body}

    def add_attachment(
        self,
        data: bytes,
        *,
        content_type: str = "image/png",
        redirect_to: str | None = None,
        status: int = 200,
    ) -> str:
        """Seed an uploaded file; returns its ``https://github.com/user-attachments/assets/…``
        link for Markdown. ``redirect_to``: its signed URL answers 302 to there instead;
        ``status``: it answers that (e.g. 404, an expired upload)."""
        with self._lock:
            asset = f"{self._id():08d}-0000-4000-8000-000000000000"
        self.attachments[asset] = Attachment(data, content_type, redirect_to, status)
        return f"https://github.com/user-attachments/assets/{asset}"

    def signed_url(self, asset: str) -> str:
        return f"{self.base_url}/user-content/assets/{asset}?jwt=signed.{asset}"

    def render_html(self, markdown: str) -> str:
        """``body_html`` of Markdown: its images as github.com renders them, the rest escaped."""
        prefix = "https://github.com/user-attachments/assets/"
        parts: list[str] = []
        pattern = re.compile(
            r"!\[(?P<alt>[^\]]*)\]\((?P<url>[^)\s]+)\)|<img\b(?P<attrs>[^>]*)>", re.IGNORECASE
        )
        position = 0
        for found in pattern.finditer(markdown):
            parts.append(html.escape(markdown[position : found.start()]))
            position = found.end()
            if found.group("url"):
                url, alt = found.group("url"), found.group("alt")
            else:
                attrs = found.group("attrs")
                src = re.search(r'src="([^"]*)"', attrs)
                alt_found = re.search(r'alt="([^"]*)"', attrs)
                url = src.group(1) if src else ""
                alt = alt_found.group(1) if alt_found else ""
            if url.startswith(prefix) and url[len(prefix) :] in self.attachments:
                src_attr = f'src="{html.escape(self.signed_url(url[len(prefix) :]))}"'
            elif self.camo:
                digest = hashlib.sha1(url.encode()).hexdigest()
                src_attr = (
                    f'src="{self.base_url}/camo/{digest}" data-canonical-src="{html.escape(url)}"'
                )
            else:
                src_attr = f'src="{html.escape(url)}"'
            parts.append(
                f'<a target="_blank" rel="noopener noreferrer" href="{html.escape(url)}">'
                f'<img {src_attr} alt="{html.escape(alt)}" style="max-width: 100%;"></a>'
            )
        parts.append(html.escape(markdown[position:]))
        return "<p>" + "".join(parts) + "</p>"

    def _user_content(self, request: Request) -> Reply:
        if request.path.startswith("/camo/"):
            return Reply(200, b"GIF89a camo", headers={"Content-Type": "image/gif"})
        asset = request.path.rpartition("/")[2]
        found = self.attachments.get(asset)
        if found is None or request.query.get("jwt") != [f"signed.{asset}"]:
            return Reply(404, b"Not Found", headers={"Content-Type": "text/plain"})
        if found.redirect_to is not None:
            return Reply(302, b"", headers={"Location": found.redirect_to})
        if found.status != 200:
            return Reply(found.status, b"gone", headers={"Content-Type": "text/plain"})
        return Reply(200, found.data, headers={"Content-Type": found.content_type})

    def _full(self, request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return "full+json" in accept or "html+json" in accept

    def _op_GET_repos_owner_repo_issues_issue_number(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        stored = self.issues.get(int(params[2]))
        if stored is None:
            return Reply(404, {"message": "Not Found"})
        data = example(ISSUE, "get", 200)
        number = stored["number"]
        data["number"] = number
        data["title"] = stored["title"]
        data["body"] = stored["body"]
        data.pop("pull_request", None)
        path = f"/repos/{self.full_name}/issues/{number}"
        data["url"] = self._url(path)
        data["repository_url"] = self._url(f"/repos/{self.full_name}")
        data["html_url"] = self._html(f"/issues/{number}")
        data["comments_url"] = self._url(f"{path}/comments")
        data["events_url"] = self._url(f"{path}/events")
        data["labels_url"] = self._url(f"{path}/labels{{/name}}")
        if self._full(request):
            data["body_html"] = self.render_html(stored["body"])
            data["body_text"] = stored["body"]
        return Reply(200, data)

    # ---------------------------------------------------------------- repository

    def _repo_json(self) -> dict[str, Any]:
        data = example(REPO, "get", 200)
        for key in ("source", "parent", "template_repository"):
            data.pop(key, None)
        data.setdefault("language", None)
        data["name"] = self.repo
        data["full_name"] = self.full_name
        data["owner"]["login"] = self.owner
        data["default_branch"] = self.default_branch
        data["html_url"] = self._html("")
        data["url"] = self._url(f"/repos/{self.full_name}")
        return data  # type: ignore[no-any-return]

    def _op_GET_repos_owner_repo(self, params: list[str], request: Request, body: Any) -> Reply:  # noqa: N802
        return Reply(200, self._repo_json())

    def _op_GET_rate_limit(self, params: list[str], request: Request, body: Any) -> Reply:  # noqa: N802
        return Reply(200, example(RATE_LIMIT, "get", 200))

    def _op_GET_repos_owner_repo_collaborators_username_permission(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        data = example(PERMISSION, "get", 200)
        permission = self.permissions.get(params[2], "read")
        legacy = {"maintain": "write", "triage": "read"}.get(permission, permission)
        data["permission"] = legacy
        data["role_name"] = permission
        data["user"]["login"] = params[2]
        data["user"]["role_name"] = permission
        return Reply(200, data)

    def _op_POST_repos_owner_repo_actions_runs_run_id_cancel(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        run_id = int(params[2])
        if run_id in self.finished_runs:
            return Reply(409, {"message": "Cannot cancel a workflow run that is completed."})
        self.cancelled_runs.append(run_id)
        return Reply(202, {})

    # ---------------------------------------------------------------- artifacts

    def _artifacts_of(self, run_id: int) -> list[tuple[int, str, Path]]:
        """(id, name, folder) of each artifact of a run; ids are stable per run and name."""
        root = self.run_artifacts.get(run_id)
        if root is None or not root.is_dir():
            return []
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        return [(run_id * 1000 + index, p.name, p) for index, p in enumerate(folders, start=1)]

    def _op_GET_repos_owner_repo_actions_runs_run_id_artifacts(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        run_id = int(params[2])
        template = example(RUN_ARTIFACTS, "GET", 200)["artifacts"][0]
        items = []
        for artifact_id, name, folder in self._artifacts_of(run_id):
            item = copy.deepcopy(template)
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            api = f"{self.base_url}/repos/{self.full_name}/actions/artifacts/{artifact_id}"
            item.update(
                id=artifact_id, name=name, size_in_bytes=size, url=api,
                archive_download_url=f"{api}/zip", node_id=f"artifact-{artifact_id}",
            )  # fmt: skip
            item["workflow_run"]["id"] = run_id
            items.append(item)
        wanted = request.query.get("name", [None])[0]
        if wanted is not None:
            items = [item for item in items if item["name"] == wanted]
        return Reply(200, {"total_count": len(items), "artifacts": _page(items, request)})

    def _op_GET_repos_owner_repo_actions_artifacts_artifact_id_archive_format(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        artifact_id = int(params[2])
        if params[3] != "zip":
            return Reply(404, {"message": "Not Found"})
        if not any(a[0] == artifact_id for a in self._artifacts_of(artifact_id // 1000)):
            return Reply(404, {"message": "Not Found"})
        # GitHub answers with a signed storage URL on another host; "localhost" is another
        # origin than the API's 127.0.0.1, so a client that forwards its token would show.
        storage = self.base_url.replace("127.0.0.1", "localhost")
        location = f"{storage}/artifact-storage/{artifact_id}.zip?sig=signed.{artifact_id}"
        return Reply(302, b"", headers={"Location": location})

    def _artifact_blob(self, request: Request) -> Reply:
        name = request.path.rpartition("/")[2].removesuffix(".zip")
        if not name.isdigit() or request.query.get("sig") != [f"signed.{name}"]:
            return Reply(403, b"AuthenticationFailed", headers={"Content-Type": "text/plain"})
        artifact_id = int(name)
        found = [a for a in self._artifacts_of(artifact_id // 1000) if a[0] == artifact_id]
        if not found:
            return Reply(404, b"BlobNotFound", headers={"Content-Type": "text/plain"})
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(found[0][2].rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(found[0][2]).as_posix())
        return Reply(200, buffer.getvalue(), headers={"Content-Type": "application/zip"})

    # ---------------------------------------------------------------- comments, reactions

    def _comment_json(self, stored: dict[str, Any]) -> dict[str, Any]:
        data = example(COMMENTS, "post", 201)
        data["id"] = stored["id"]
        data["node_id"] = f"IC_{stored['id']}"
        data["body"] = stored["body"]
        data["user"] = self._user(data["user"], stored["login"], stored["bot"])
        data["author_association"] = "NONE" if stored["bot"] else "OWNER"
        path = f"/repos/{self.full_name}/issues"
        data["url"] = self._url(f"{path}/comments/{stored['id']}")
        data["issue_url"] = self._url(f"{path}/{stored['issue']}")
        data["html_url"] = self._html(f"/issues/{stored['issue']}#issuecomment-{stored['id']}")
        data["created_at"] = stored["created_at"]
        data["updated_at"] = stored["updated_at"]
        data["reactions"] = self._rollup({"comment": stored["id"]}, data["url"])
        return data  # type: ignore[no-any-return]

    def _rollup(self, target: dict[str, Any], url: str) -> dict[str, Any]:
        """GitHub's ``reactions`` rollup of a comment or issue: a count per content."""
        counts = dict.fromkeys(REACTION_CONTENTS, 0)
        for reaction in self.reactions:
            if reaction["target"] == target:
                counts[reaction["content"]] += 1
        return {"url": f"{url}/reactions", "total_count": sum(counts.values()), **counts}

    def react(self, comment_id: int, content: str, *, login: str) -> None:
        """Seed a person's reaction on a comment (one per person and content, as on GitHub)."""
        assert content in REACTION_CONTENTS, content
        target = {"comment": comment_id}
        for reaction in self.reactions:
            if (reaction["target"], reaction["content"], reaction["login"]) == (
                target,
                content,
                login,
            ):
                return
        self.reactions.append(
            {"id": self._id(), "target": target, "content": content, "login": login}
        )

    def add_comment(self, issue: int, body: str, *, login: str, bot: bool = False) -> int:
        """Seed a comment (e.g. a forged tracking comment by a person)."""
        comment_id = self._id()
        self.comments[comment_id] = {
            "id": comment_id,
            "issue": issue,
            "body": body,
            "login": login,
            "bot": bot,
            "created_at": NOW,
            "updated_at": NOW,
        }
        return comment_id

    def _op_GET_repos_owner_repo_issues_issue_number_comments(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        issue = int(params[2])
        found = [self._comment_json(c) for c in self.comments.values() if c["issue"] == issue]
        return Reply(200, _page(found, request))

    def _op_POST_repos_owner_repo_issues_issue_number_comments(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return _invalid("body is required")
        if len(body["body"]) > 65536:
            return _invalid("body is too long (maximum is 65536 characters)")
        comment_id = self.add_comment(int(params[2]), body["body"], login=self.bot_login, bot=True)
        created = self._comment_json(self.comments[comment_id])
        if self.on_bot_comment is not None:
            self.on_bot_comment(self.comments[comment_id])
        return Reply(201, created)

    def _op_GET_repos_owner_repo_issues_comments_comment_id(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        stored = self.comments.get(int(params[2]))
        if stored is None:
            return Reply(404, {"message": "Not Found"})
        data = self._comment_json(stored)
        if self._full(request):
            data["body_html"] = self.render_html(stored["body"])
            data["body_text"] = stored["body"]
        return Reply(200, data)

    def _op_PATCH_repos_owner_repo_issues_comments_comment_id(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        stored = self.comments.get(int(params[2]))
        if stored is None:
            return Reply(404, {"message": "Not Found"})
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return _invalid("body is required")
        if stored["login"] != self.bot_login:
            return Reply(403, {"message": "Resource not accessible by integration"})
        stored["body"] = body["body"]
        stored["updated_at"] = "2026-01-02T03:05:00Z"
        return Reply(200, self._comment_json(stored))

    def _reaction(self, target: dict[str, Any], body: Any, template: str) -> Reply:
        if not isinstance(body, dict) or body.get("content") not in REACTION_CONTENTS:
            return _invalid("content is invalid")
        for reaction in self.reactions:
            if (
                reaction["target"] == target
                and reaction["content"] == body["content"]
                and reaction["login"] == self.bot_login
            ):
                data = example(template, "post", 200)
                data["id"], data["content"] = reaction["id"], reaction["content"]
                return Reply(200, data)
        reaction = {
            "id": self._id(),
            "target": target,
            "content": body["content"],
            "login": self.bot_login,
        }
        self.reactions.append(reaction)
        data = example(template, "post", 201)
        data["id"], data["content"] = reaction["id"], reaction["content"]
        data["user"]["login"] = self.bot_login
        return Reply(201, data)

    def _op_POST_repos_owner_repo_issues_comments_comment_id_reactions(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        return self._reaction({"comment": int(params[2])}, body, COMMENT_REACTIONS)

    def _op_POST_repos_owner_repo_issues_issue_number_reactions(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        return self._reaction({"issue": int(params[2])}, body, ISSUE_REACTIONS)

    # ---------------------------------------------------------------- pulls

    def _sha(self, ref: str) -> str | None:
        if self.git_dir is None:
            return "6dcb09b5b57875f334f61aebed695e2e4193db5e"
        return (
            _git(self.git_dir, "rev-parse", "--verify", "-q", f"refs/heads/{ref}").strip() or None
        )

    def _head_sha(self, stored: dict[str, Any]) -> str | None:
        """A PR's head commit: its branch here, or for a fork the ``refs/pull/N/head`` GitHub
        keeps in the base repository (the fork's branch itself is in another repository)."""
        if stored["fork"] and self.git_dir is not None:
            ref = f"refs/pull/{stored['number']}/head"
            return _git(self.git_dir, "rev-parse", "--verify", "-q", ref).strip() or None
        return self._sha(stored["head"])

    def _side(
        self, side: dict[str, Any], ref: str, fork: bool, sha: str | None = None
    ) -> dict[str, Any]:
        side["ref"] = ref
        side["sha"] = sha or self._sha(ref) or "0" * 40
        owner = self.fork_owner if fork else self.owner
        side["label"] = f"{owner}:{ref}"
        if side.get("repo") is not None:
            full_name = f"{owner}/{self.repo}"
            side["repo"]["full_name"] = full_name
            side["repo"]["name"] = self.repo
            side["repo"]["owner"]["login"] = owner
            side["repo"]["html_url"] = f"https://github.com/{full_name}"
            side["repo"]["clone_url"] = f"https://github.com/{full_name}.git"
            side["repo"].setdefault("language", None)
        return side

    def _pull_fill(self, data: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
        number = stored["number"]
        data["id"] = stored["id"]
        data["node_id"] = f"PR_{stored['id']}"
        data["number"] = number
        data["title"] = stored["title"]
        data["body"] = stored["body"]
        data["draft"] = stored["draft"]
        data["state"] = stored["state"]
        merged = bool(stored.get("merged"))
        data["merged_at"] = NOW if merged else None
        data["closed_at"] = NOW if stored["state"] == "closed" else None
        if "merged" in data:  # the full PR object (not the list item)
            data["merged"] = merged
            if not merged:
                data["merged_by"] = None
        data["labels"] = []
        data["requested_teams"] = []
        data["requested_reviewers"] = []
        data["assignees"] = []
        data["assignee"] = None
        data["milestone"] = None
        data["url"] = self._url(f"/repos/{self.full_name}/pulls/{number}")
        data["html_url"] = self._html(f"/pull/{number}")
        data["head"] = self._side(
            data["head"], stored["head"], stored["fork"], self._head_sha(stored)
        )
        data["base"] = self._side(data["base"], stored["base"], False)
        return data

    def _pull_json(self, stored: dict[str, Any], template: str, method: str, status: int) -> Any:
        return self._pull_fill(example(template, method, status), stored)

    def _op_GET_repos_owner_repo_pulls(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        head = (request.query.get("head") or [""])[0]
        state = (request.query.get("state") or ["open"])[0]
        found = []
        for stored in self.pulls.values():
            owner = self.fork_owner if stored["fork"] else self.owner
            if head and head != f"{owner}:{stored['head']}":
                continue
            if state != "all" and stored["state"] != state:
                continue
            item = example(PULLS, "get", 200)[0]
            found.append(self._pull_fill(item, stored))
        return Reply(200, _page(found, request))

    def _op_POST_repos_owner_repo_pulls(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        if not isinstance(body, dict) or not body.get("head") or not body.get("base"):
            return _invalid("head and base are required")
        head, base = str(body["head"]), str(body["base"])
        if self._sha(head) is None:
            return _invalid(f"head {head} does not exist", field="head")
        for stored in self.pulls.values():
            if stored["head"] == head and stored["base"] == base and stored["state"] == "open":
                return _invalid(f"A pull request already exists for {self.owner}:{head}.")
        number = self._number()
        self.pulls[number] = {
            "number": number,
            "title": body.get("title") or head,
            "body": body.get("body"),
            "head": head,
            "base": base,
            "draft": bool(body.get("draft", False)),
            "state": "open",
            "merged": False,
            "fork": False,
            "id": self._id(),
        }
        return Reply(201, self._pull_json(self.pulls[number], PULLS, "post", 201))

    def _op_GET_repos_owner_repo_pulls_pull_number(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        stored = self.pulls.get(int(params[2]))
        if stored is None:
            return Reply(404, {"message": "Not Found"})
        return Reply(200, self._pull_json(stored, PULL, "get", 200))

    def _op_PATCH_repos_owner_repo_pulls_pull_number(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        stored = self.pulls.get(int(params[2]))
        if stored is None:
            return Reply(404, {"message": "Not Found"})
        if not isinstance(body, dict):
            return _invalid("invalid body")
        for key in ("title", "body", "state"):
            if key in body:
                stored[key] = body[key]
        return Reply(200, self._pull_json(stored, PULL, "patch", 200))

    def pull_diff(self, number: int) -> dict[str, str]:
        """Per file, the unified diff of a PR (base...head), as GitHub shows it."""
        stored = self.pulls[number]
        if self.git_dir is None:
            return {}
        base, head = self._sha(stored["base"]), self._head_sha(stored)
        if not base or not head:
            return {}
        names = _git(self.git_dir, "diff", "--name-only", f"{base}...{head}").split()
        out = {}
        for name in names:
            patch = _git(self.git_dir, "diff", f"{base}...{head}", "--", name)
            hunks = patch[patch.find("@@") :] if "@@" in patch else ""
            out[name] = hunks.rstrip("\n")
        return out

    def _op_GET_repos_owner_repo_pulls_pull_number_files(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        number = int(params[2])
        if number not in self.pulls:
            return Reply(404, {"message": "Not Found"})
        entries = []
        for name, patch in self.pull_diff(number).items():
            item = example(PULL_FILES, "get", 200)[0]
            item["filename"] = name
            item["patch"] = patch
            added = sum(1 for line in patch.splitlines() if line.startswith("+"))
            removed = sum(1 for line in patch.splitlines() if line.startswith("-"))
            item["additions"], item["deletions"], item["changes"] = added, removed, added + removed
            item["status"] = "modified"
            entries.append(item)
        return Reply(200, _page(entries, request))

    def _review_json(self, stored: dict[str, Any], method: str, status: int) -> Any:
        data = example(REVIEWS, method, status)
        if isinstance(data, list):
            data = data[0]
        data["id"] = stored["id"]
        data["node_id"] = f"PRR_{stored['id']}"
        data["body"] = stored["body"]
        data["state"] = "COMMENTED"
        data["commit_id"] = stored["commit_id"]
        data["user"]["login"] = self.bot_login
        data["user"]["type"] = "Bot"
        number = stored["number"]
        data["html_url"] = self._html(f"/pull/{number}#pullrequestreview-{stored['id']}")
        data["pull_request_url"] = self._url(f"/repos/{self.full_name}/pulls/{number}")
        return data

    def _op_GET_repos_owner_repo_pulls_pull_number_reviews(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        number = int(params[2])
        found = [self._review_json(r, "get", 200) for r in self.reviews.get(number, [])]
        return Reply(200, _page(found, request))

    def _op_POST_repos_owner_repo_pulls_pull_number_reviews(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        number = int(params[2])
        if number not in self.pulls:
            return Reply(404, {"message": "Not Found"})
        if not isinstance(body, dict):
            return _invalid("invalid body")
        if body.get("event") in ("COMMENT", "REQUEST_CHANGES") and not body.get("body"):
            return _invalid("body is required for COMMENT")
        diff = self.pull_diff(number)
        for comment in body.get("comments") or []:
            lines = _right_lines(diff.get(comment.get("path", ""), ""))
            if comment.get("line") not in lines:
                return Reply(
                    422,
                    {
                        "message": "Unprocessable Entity",
                        "errors": ["Line could not be resolved"],
                        "status": "422",
                    },
                )
        stored = {
            "id": self._id(),
            "number": number,
            "body": body.get("body") or "",
            "commit_id": body.get("commit_id") or self._head_sha(self.pulls[number]),
            "comments": list(body.get("comments") or []),
        }
        self.reviews.setdefault(number, []).append(stored)
        return Reply(200, self._review_json(stored, "post", 200))

    # ---------------------------------------------------------------- GitHub App auth

    def _op_GET_repos_owner_repo_installation(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        account = example(REPO, "get", 200)["owner"]
        return Reply(
            200,
            {
                "id": 77,
                "account": account,
                "repository_selection": "selected",
                "access_tokens_url": self._url("/app/installations/77/access_tokens"),
                "repositories_url": self._url("/installation/repositories"),
                "html_url": "https://github.com/settings/installations/77",
                "app_id": 5,
                "target_id": 1,
                "target_type": "Organization",
                "permissions": {"issues": "write", "pull_requests": "write"},
                "events": [],
                "created_at": NOW,
                "updated_at": NOW,
                "single_file_name": None,
                "app_slug": "orchestrator-app",
                "suspended_by": None,
                "suspended_at": None,
            },
        )

    def _op_POST_app_installations_installation_id_access_tokens(  # noqa: N802
        self, params: list[str], request: Request, body: Any
    ) -> Reply:
        token = f"ghs_{'A' * 30}{len(self.installation_tokens):06d}"
        self.installation_tokens.append(token)
        return Reply(201, {"token": token, "expires_at": "2099-01-01T00:00:00Z"})


def _right_lines(patch: str) -> set[int]:
    lines: set[int] = set()
    for match in re.finditer(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", patch, re.MULTILINE):
        start, count = int(match.group(1)), int(match.group(2) or 1)
        lines.update(range(start, start + count))
    return lines


def _page(items: list[Any], request: Request) -> list[Any]:
    per_page = int((request.query.get("per_page") or ["30"])[0])
    page = int((request.query.get("page") or ["1"])[0])
    return items[(page - 1) * per_page : page * per_page]


def _invalid(message: str, field: str | None = None) -> Reply:
    errors = [{"resource": "Issue", "code": "custom", "field": field, "message": message}]
    return Reply(422, {"message": "Validation Failed", "errors": errors})


@contextmanager
def serve_github(fake: FakeGitHub | None = None) -> Iterator[tuple[FakeGitHub, LoopbackServer]]:
    """A started loopback server answering as ``fake``."""
    fake = fake or FakeGitHub()
    with LoopbackServer(fake.handle) as server:
        fake.base_url = server.url
        yield fake, server


def nullable_to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → JSON Schema (``anyOf`` with ``null``), recursively."""
    if isinstance(schema, list):
        return [nullable_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {k: nullable_to_json_schema(v) for k, v in schema.items() if k != "nullable"}
    for key in ("example", "examples"):
        converted.pop(key, None)
    if schema.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def response_schema(template: str, method: str, status: int) -> Any:
    """JSON Schema of an operation's answer (from the fixture)."""
    content = operation(template, method)["responses"][str(status)]["content"]
    return nullable_to_json_schema(content["application/json"]["schema"])


def request_schema(template: str, method: str) -> Any | None:
    """JSON Schema of an operation's request body, or ``None``."""
    body = operation(template, method).get("requestBody")
    if not body:
        return None
    return nullable_to_json_schema(body["content"]["application/json"]["schema"])


IN_FIXTURE = frozenset(t for _, t in _ROUTES) - {INSTALLATION, ACCESS_TOKENS}
