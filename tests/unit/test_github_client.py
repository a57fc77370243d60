"""Rate limits, retries, redaction and the call log of the githubkit façade."""

from __future__ import annotations

import pytest

from orchestrator.errors import InputError
from orchestrator.github.client import GitHubClient, GitHubError, RetryPolicy
from orchestrator.redact import Redactor
from tests.fakes.github_fake import FakeGitHub, serve_github


def make(url: str, sleeps: list[float], now: float = 1_000.0, **kw: object) -> GitHubClient:
    return GitHubClient(
        "Codertocat/Hello-World",
        token="secret-token-123456",
        api_url=url,
        redactor=Redactor(["canary-value-999"]),
        sleep=sleeps.append,
        clock=lambda: now,
        **kw,  # type: ignore[arg-type]
    )


def test_secondary_limit_with_retry_after_is_waited_out() -> None:
    sleeps: list[float] = []
    with serve_github() as (fake, server):
        fake.secondary_limit_on_write(nth=1, retry_after=42)
        client = make(server.url, sleeps)
        client.create_issue_comment(1, "hi")
    assert sleeps == [42.0]
    assert [(c.method, c.status) for c in client.calls] == [("POST", 403), ("POST", 201)]
    assert len(client.write_calls) == 2 and len(fake.comments) == 1


def test_secondary_limit_message_without_retry_after_waits_at_least_a_minute() -> None:
    sleeps: list[float] = []
    with serve_github() as (fake, server):
        for nth in (1, 1):
            fake.fail(
                "POST",
                r"/comments$",
                403,
                nth=nth,
                body={"message": "You have exceeded a secondary rate limit."},
            )
        make(server.url, sleeps).create_issue_comment(1, "hi")
    assert sleeps == [60.0, 120.0]


def test_primary_limit_waits_until_reset() -> None:
    sleeps: list[float] = []
    with serve_github() as (fake, server):
        fake.exhaust_primary(reset_at=1_030)
        make(server.url, sleeps, now=1_000.0).get_repo()
    assert sleeps == [31.0]


def test_primary_limit_too_far_away_gives_up_with_the_reset_time() -> None:
    sleeps: list[float] = []
    with serve_github() as (fake, server):
        fake.exhaust_primary(reset_at=100_000)
        with pytest.raises(GitHubError, match="resets at unix time 100000"):
            make(server.url, sleeps, now=1_000.0).get_repo()
    assert sleeps == []


def test_retries_are_bounded() -> None:
    sleeps: list[float] = []
    with serve_github() as (fake, server):
        for _ in range(5):
            fake.secondary_limit_on_write(nth=1, retry_after=1)
        client = make(server.url, sleeps, policy=RetryPolicy(max_retries=3))
        with pytest.raises(GitHubError, match="403"):
            client.create_issue_comment(1, "hi")
    assert sleeps == [1.0, 1.0, 1.0] and len(client.calls) == 4 and not fake.comments


def test_server_error_retried_for_get_not_for_post() -> None:
    sleeps: list[float] = []
    with serve_github() as (fake, server):
        fake.fail("GET", r"/comments$", 502)
        fake.fail("POST", r"/comments$", 500)
        client = make(server.url, sleeps)
        assert client.list_issue_comments(1) == []
        with pytest.raises(GitHubError, match="500"):
            client.create_issue_comment(1, "hi")
    assert sleeps == [2.0]
    assert [c.status for c in client.calls] == [502, 200, 500]


def test_every_body_and_error_is_redacted() -> None:
    with serve_github() as (fake, server):
        fake.fail("POST", r"/comments$", 422, body={"message": "bad canary-value-999"})
        client = make(server.url, [])
        with pytest.raises(GitHubError) as caught:
            client.create_issue_comment(1, "token secret-token-123456 and canary-value-999")
        assert "canary-value-999" not in str(caught.value)
        client.create_issue_comment(1, "again canary-value-999 ghp_" + "a" * 36)
    for call in fake.calls:
        text = call.raw_body.decode()
        assert "canary-value-999" not in text and "secret-token-123456" not in text
        assert "ghp_" not in text
    assert fake.calls[0].headers["authorization"] == "token secret-token-123456"


def test_ghes_api_url_with_a_path_prefix() -> None:
    with serve_github() as (fake, server):
        client = GitHubClient(
            "Codertocat/Hello-World", token="x" * 10, api_url=server.url + "/api/v3"
        )
        with pytest.raises(GitHubError, match="404"):
            client.get_repo()
    assert fake.calls[0].path == "/api/v3/repos/Codertocat/Hello-World"


def test_from_env_needs_repository_and_credentials() -> None:
    with pytest.raises(InputError, match="GITHUB_REPOSITORY"):
        GitHubClient.from_env({})
    with pytest.raises(InputError, match="GITHUB_TOKEN"):
        GitHubClient.from_env({"GITHUB_REPOSITORY": "o/r"})
    client = GitHubClient.from_env(
        {"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "abcdefgh12", "GITHUB_API_URL": "http://h/"}
    )
    assert client.api_url == "http://h/" and client.token == "abcdefgh12"


def test_github_app_installation_token() -> None:
    """App id + private key → a real RS256 JWT (PyJWT) → installation → installation token."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    with serve_github(FakeGitHub()) as (fake, server):
        env = {
            "GITHUB_REPOSITORY": "Codertocat/Hello-World",
            "GITHUB_API_URL": server.url,
            "GITHUB_APP_ID": "5",
            "GITHUB_APP_PRIVATE_KEY": pem,
            "GITHUB_TOKEN": "not-this-one-123",
        }
        client = GitHubClient.from_env(env)
        assert client.token == fake.installation_tokens[0]
        assert client.app_slug == "orchestrator-app"
        client.get_repo()
    scheme, _, token = fake.calls[0].headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])  # the signature verifies
    assert claims["iss"] == "5" and claims["exp"] > claims["iat"]
    assert fake.calls[-1].headers["authorization"] == f"token {client.token}"
