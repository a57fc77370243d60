"""The fake GitHub cannot drift: its answers and our requests match GitHub's own schemas."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from githubkit.compat import type_validate_python
from githubkit_schemas.latest import models

from orchestrator.github.client import GitHubClient
from orchestrator.redact import Redactor
from tests.conftest import git, make_repo
from tests.fakes import github_fake as gf
from tests.fakes.github_fake import FakeGitHub, serve_github

MODELS = {
    ("GET", gf.REPO): models.FullRepository,
    ("GET", gf.ISSUE): models.Issue,
    ("GET", gf.COMMENTS): list[models.IssueComment],
    ("POST", gf.COMMENTS): models.IssueComment,
    ("GET", gf.COMMENT): models.IssueComment,
    ("PATCH", gf.COMMENT): models.IssueComment,
    ("POST", gf.COMMENT_REACTIONS): models.Reaction,
    ("POST", gf.ISSUE_REACTIONS): models.Reaction,
    ("GET", gf.PULLS): list[models.PullRequestSimple],
    ("POST", gf.PULLS): models.PullRequest,
    ("GET", gf.PULL): models.PullRequest,
    ("PATCH", gf.PULL): models.PullRequest,
    ("GET", gf.PULL_FILES): list[models.DiffEntry],
    ("GET", gf.REVIEWS): list[models.PullRequestReview],
    ("POST", gf.REVIEWS): models.PullRequestReview,
    ("GET", gf.PERMISSION): models.RepositoryCollaboratorPermission,
    ("GET", gf.RATE_LIMIT): models.RateLimitOverview,
}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"a.py": "A = 1\nB = 2\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "a.py").write_text("A = 1\nB = 3\n")
    git(repo, "commit", "-qam", "change")
    git(repo, "push", "-q", "origin", "feature")
    return bare


def exercise(client: GitHubClient, fake: FakeGitHub) -> None:
    """Every operation the fake serves, through the real client."""
    client.get_repo()
    client.rate_limit()
    fake.permissions["alice"] = "maintain"
    assert client.collaborator_permission("alice") == "maintain"
    comment = client.create_issue_comment(1, "hello")
    client.update_issue_comment(comment.id, "hello again")
    client.request("GET", client.repo_path(f"/issues/comments/{comment.id}"), models.IssueComment)
    link = fake.add_attachment(b"GIF89a")
    fake.add_issue(1, f"Look: ![shot]({link})")
    assert '<img src="' + fake.signed_url(link.rpartition("/")[2]) in client.get_issue_html(1)
    assert "hello again" in client.get_issue_comment_html(comment.id)
    assert [c.body for c in client.list_issue_comments(1)] == ["hello again"]
    client.add_reaction("eyes", comment_id=comment.id)
    fake.react(comment.id, "+1", login="alice")
    fake.react(comment.id, "eyes", login="alice")
    (listed,) = client.list_issue_comments(1)
    assert listed.reactions and listed.reactions.plus_one == 1 and listed.reactions.eyes == 2
    client.add_reaction("eyes", issue_number=1)
    pull = client.create_pull(title="t", head="feature", base="main", body="b", draft=True)
    assert pull.draft and pull.head.ref == "feature"
    assert [p.number for p in client.find_pulls("feature")] == [pull.number]
    client.update_pull(pull.number, title="t2", body="b2")
    assert client.get_pull(pull.number).title == "t2"
    files = client.list_pull_files(pull.number)
    assert [f.filename for f in files] == ["a.py"]
    client.create_review(
        pull.number,
        commit_id=pull.head.sha,
        body="review",
        comments=[{"path": "a.py", "line": 2, "side": "RIGHT", "body": "why 3?"}],
    )
    assert len(client.list_reviews(pull.number)) == 1
    assert client.get_pull(pull.number).merged_at is None
    fake.merge_pull(pull.number)
    merged = client.get_pull(pull.number)
    assert merged.state == "closed" and merged.merged_at is not None and merged.merged
    assert client.find_pulls("feature", state="closed")[0].merged_at is not None
    # a PR from a fork: its head is the fork's, its commit the base repository's refs/pull/N/head
    fork = fake.add_pull("patch-1", from_fork=True)
    assert fake.git_dir is not None
    git(fake.git_dir, "update-ref", f"refs/pull/{fork}/head", "refs/heads/feature")
    forked = client.get_pull(fork)
    assert forked.head.repo is not None and forked.head.repo.full_name == "forker/Hello-World"
    assert forked.head.sha == git(fake.git_dir, "rev-parse", "feature")
    assert forked.head.repo.clone_url == "https://github.com/forker/Hello-World.git"
    assert [f.filename for f in client.list_pull_files(fork)] == ["a.py"]


def test_fake_answers_and_our_requests_match_githubs_schemas(remote: Path) -> None:
    with serve_github(FakeGitHub(git_dir=remote)) as (fake, server):
        client = GitHubClient(
            "Codertocat/Hello-World", token="t0ken-value", api_url=server.url, redactor=Redactor()
        )
        exercise(client, fake)
    seen = set()
    for call in fake.calls:
        assert call.template in gf.IN_FIXTURE, call.path
        key = (call.method, call.template)
        seen.add(key)
        request_schema = gf.request_schema(call.template, call.method)
        if request_schema is not None:
            jsonschema.validate(call.body, request_schema)
        schema = gf.response_schema(call.template, call.method, call.status)
        jsonschema.validate(call.answer, schema)
        type_validate_python(MODELS[key], call.answer)
    assert seen == set(MODELS)


def test_fake_refuses_what_github_refuses(remote: Path) -> None:
    with serve_github(FakeGitHub(git_dir=remote)) as (fake, server):
        client = GitHubClient("Codertocat/Hello-World", token="t0ken-value", api_url=server.url)
        pull = client.create_pull(title="t", head="feature", base="main", body="b")
        with pytest.raises(Exception, match="already exists"):
            client.create_pull(title="t", head="feature", base="main", body="b")
        with pytest.raises(Exception, match="Line could not be resolved"):
            client.create_review(
                pull.number,
                commit_id=None,
                body="x",
                comments=[{"path": "a.py", "line": 40, "side": "RIGHT", "body": "far"}],
            )
        with pytest.raises(Exception, match="404"):
            client.request("GET", "/repos/other/repo", models.FullRepository)
    assert [c.status for c in fake.calls] == [201, 422, 422, 404]


def test_examples_are_githubs_own() -> None:
    """The fake starts from the fixture's examples (not hand-made bodies)."""
    example = gf.example(gf.COMMENTS, "post", 201)
    assert example["user"]["login"] == "octocat"
    assert gf.match_route("POST", "/repos/o/r/pulls/3/reviews") == (gf.REVIEWS, ["o", "r", "3"])
