"""Redactor: environment secrets, explicit values and credential shapes become [REDACTED]."""

from __future__ import annotations

import json
import logging
import time

import pytest

from orchestrator import redact as redact_module
from orchestrator.redact import (
    PLACEHOLDER,
    RedactingFilter,
    Redactor,
    default_redactor,
    is_secret_name,
    reset_default_redactor,
)

GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2  # 40 chars after the prefix
ENV = {
    "GITHUB_TOKEN": "ghs_" + "Z9y8X7w6V5u4T3s2R1q0" * 2,
    "OPENAI_API_KEY": "not-a-known-shape-but-secret-1234",
    "MY_PASSWORD": "correct horse battery",
    "DB_PASSWD": "tr0ub4dor&3",
    "SOME_CREDENTIALS": "cred-value-42",
    "DEPLOY_PRIVATE": "private-material",
    "SHORT_TOKEN": "abc",  # too short to be treated as a secret
    "PATH": "/usr/local/bin:/usr/bin",
    "HOME": "/home/runner",
    "GIT_AUTHOR_NAME": "Some Developer",
}


@pytest.fixture
def redactor() -> Redactor:
    return Redactor.from_env(ENV)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("GITHUB_TOKEN", True),
        ("ACTIONS_RUNTIME_TOKEN", True),
        ("ANTHROPIC_API_KEY", True),
        ("aws_secret_access_key", True),
        ("PGPASSWORD", True),
        ("SMTP_PASSWD", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("SSH_PRIVATE", True),
        ("NPM_AUTH", True),
        ("GITHUB_PAT", True),
        ("PATH", False),
        ("HOME", False),
        ("GIT_AUTHOR_NAME", False),
        ("GITHUB_REPOSITORY", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_env_secrets_are_redacted_and_others_kept(redactor: Redactor) -> None:
    line = " | ".join(f"{k}={v}" for k, v in ENV.items())
    out = redactor.redact(line)
    for name in ("GITHUB_TOKEN", "OPENAI_API_KEY", "MY_PASSWORD", "DB_PASSWD", "DEPLOY_PRIVATE"):
        assert ENV[name] not in out
        assert f"{name}={PLACEHOLDER}" in out
    assert "SHORT_TOKEN=abc" in out
    assert "PATH=/usr/local/bin:/usr/bin" in out
    assert "GIT_AUTHOR_NAME=Some Developer" in out


def test_json_escaped_and_url_encoded_spellings_are_redacted(redactor: Redactor) -> None:
    dumped = json.dumps({"note": ENV["DB_PASSWD"] + ' and "quoted"'})
    assert "tr0ub4dor" not in redactor.redact(dumped)
    assert "tr0ub4dor" not in redactor.redact("https://x.test/?p=tr0ub4dor%263")


def test_extra_values_are_redacted() -> None:
    redactor = Redactor.from_env({}, extra=["s3cr3t-value", "", "ab"])
    assert redactor.redact("token s3cr3t-value here ab") == f"token {PLACEHOLDER} here ab"
    assert redactor.redact("") == ""


def test_longest_secret_wins_on_overlap() -> None:
    short, long = "abcdefgh", "abcdefgh-and-more"
    redactor = Redactor.from_env({"A_TOKEN": short, "B_TOKEN": long})
    assert redactor.redact(f"x {long} y {short} z") == f"x {PLACEHOLDER} y {PLACEHOLDER} z"
    # Not "[REDACTED]-and-more": the longer value is removed whole.
    assert "-and-more" not in redactor.redact(long)


@pytest.mark.parametrize(
    "secret",
    [
        GH_TOKEN,
        "gho_" + "a" * 36,
        "ghu_" + "B" * 36,
        "ghs_" + "c1" * 18,
        "ghr_" + "D2" * 18,
        "github_pat_11ABCDEFG0" + "x" * 60,
        "sk-" + "Ab3" * 16,
        "sk-proj-" + "Zz9_-" * 10,
        "sk-ant-api03-" + "Q" * 80,
        "AIzaSyA" + "b" * 32,
        "AKIAIOSFODNN7EXAMPLE",
    ],
)
def test_token_patterns(secret: str) -> None:
    out = Redactor().redact(f"the key is {secret}.")
    assert out == f"the key is {PLACEHOLDER}."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
            f"Authorization: Bearer {PLACEHOLDER}",
        ),
        ("authorization: token abcdef123456", f"authorization: token {PLACEHOLDER}"),
        (
            "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hz",
            f"AUTHORIZATION: basic {PLACEHOLDER}",
        ),
        (
            "curl -H 'Bearer abc123def456ghi789' https://api",
            f"curl -H 'Bearer {PLACEHOLDER}' https://api",
        ),
        (
            '{"Authorization": "Bearer xyz987654321abc"}',
            f'{{"Authorization": "Bearer {PLACEHOLDER}"}}',
        ),
        ("postgres://admin:hunter22@db:5432/x", f"postgres://admin:{PLACEHOLDER}@db:5432/x"),
        # Prose survives.
        ("Bearer authentication is described in RFC 6750.", None),
        ("We count tokens per task; the sk-learn docs say so.", None),
        ("see https://github.com/o/r/issues/1", None),
    ],
)
def test_header_and_url_patterns(text: str, expected: str | None) -> None:
    assert Redactor().redact(text) == (text if expected is None else expected)


def test_pem_private_key_block() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nAbCd+/==\n"
        "-----END RSA PRIVATE KEY-----"
    )
    out = Redactor().redact(f"key:\n{pem}\nafter")
    assert out == f"key:\n{PLACEHOLDER}\nafter"
    escaped = json.dumps(pem)  # as it appears inside a JSON transcript
    assert "MIIEowIBAAKCAQEA7" not in Redactor().redact(escaped)


def test_unterminated_pem_block_loses_its_body_but_not_the_next_paragraph() -> None:
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\nAAAA\n\nNext paragraph."
    assert Redactor().redact(text) == f"{PLACEHOLDER}\n\nNext paragraph."


def test_patterns_can_be_turned_off() -> None:
    assert Redactor(["literal-secret"], patterns=False).redact(GH_TOKEN) == GH_TOKEN


def test_with_values_adds_to_existing(redactor: Redactor) -> None:
    more = redactor.with_values("added-later-1")
    assert more.redact("added-later-1 " + ENV["MY_PASSWORD"]) == f"{PLACEHOLDER} {PLACEHOLDER}"
    assert redactor.redact("added-later-1") == "added-later-1"


def test_redact_obj_recurses_and_keeps_types(redactor: Redactor) -> None:
    data = {
        "summary": f"used {ENV['MY_PASSWORD']}",
        "nested": [{"k": GH_TOKEN}, ("t", ENV["GITHUB_TOKEN"]), 3, 1.5, True, None],
        ENV["DB_PASSWD"]: "key is secret",
        "api_key": "${OPENAI_API_KEY}",  # a reference, not a secret: kept readable
    }
    out = redactor.redact_obj(data)
    assert out["summary"] == f"used {PLACEHOLDER}"
    assert out["nested"] == [{"k": PLACEHOLDER}, ("t", PLACEHOLDER), 3, 1.5, True, None]
    assert out[PLACEHOLDER] == "key is secret"
    assert out["api_key"] == "${OPENAI_API_KEY}"
    assert data["summary"] == f"used {ENV['MY_PASSWORD']}"  # input not mutated


def test_a_secret_never_appears_in_output(redactor: Redactor) -> None:
    secret = ENV["OPENAI_API_KEY"]
    transcript = "\n".join(
        json.dumps({"turn": i, "text": f"step {i}: header x-api-key={secret}", "err": repr(secret)})
        for i in range(200)
    )
    out = redactor.redact(transcript)
    assert secret not in out
    assert out.count(PLACEHOLDER) == 400
    exc = RuntimeError(f"request failed with key {secret}")
    assert secret not in redactor.redact(str(exc))


def test_megabyte_transcript_is_fast() -> None:
    env = {f"SVC{i}_TOKEN": f"value-{i:04d}-" + "q" * 20 for i in range(50)}
    redactor = Redactor.from_env(env)
    chunk = "lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789 " * 16
    text = (chunk + env["SVC7_TOKEN"] + "\n") * 1000  # ~1.1 MB
    start = time.perf_counter()
    out = redactor.redact(text)
    elapsed = time.perf_counter() - start
    assert env["SVC7_TOKEN"] not in out
    assert elapsed < 2.0, elapsed


def test_default_redactor_is_cached_and_resettable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZZ_TEST_SECRET", "first-secret-value")
    reset_default_redactor()
    try:
        first = default_redactor()
        assert default_redactor() is first
        assert redact_module.redact("first-secret-value") == PLACEHOLDER
        monkeypatch.setenv("ZZ_TEST_SECRET", "second-secret-value")
        assert default_redactor().redact("second-secret-value") == "second-secret-value"
        reset_default_redactor()
        assert default_redactor().redact("second-secret-value") == PLACEHOLDER
    finally:
        monkeypatch.delenv("ZZ_TEST_SECRET")
        reset_default_redactor()


def test_logging_filter_redacts_message_args_and_exceptions(
    redactor: Redactor, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test_redact_filter")
    logger.addFilter(RedactingFilter(redactor))
    secret = ENV["MY_PASSWORD"]
    try:
        with caplog.at_level(logging.INFO, logger="test_redact_filter"):
            logger.info("using %s now", secret)
            try:
                raise ValueError(f"bad {secret}")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    assert secret not in caplog.text
    assert f"using {PLACEHOLDER} now" in caplog.text
    assert f"ValueError: bad {PLACEHOLDER}" in caplog.text
