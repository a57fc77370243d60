"""Redactor: environment secrets, explicit values and credential shapes become [REDACTED]."""

from __future__ import annotations

import base64
import json
import logging
import random
import string
import time
from collections.abc import Callable

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


# ----------------------------------------------------------------- security review regressions


def _adversarial_inputs(size: int) -> dict[str, str]:
    """Inputs that made a backtracking pattern retry from every position (about ``size`` each)."""
    rng = random.Random(7)
    b64 = string.ascii_letters + string.digits + "+/"
    return {
        "a-run": "a" * size,
        "a-colon": "a:" * (size // 2),
        "bearer-run": "Bearer " + "a" * size,
        "pem-junk": "-----BEGIN PRIVATE KEY-----" + "!x@ " * (size // 4),
        "pem-headers": "-----BEGIN RSA PRIVATE KEY-----\n\n" * (size // 33),
        "scheme-run": "x://" * (size // 4),
        "scheme-plus": "a+" * (size // 2),
        "url-user": "x://" + "u" * size,
        "base64-run": "".join(rng.choice(b64) for _ in range(size)),
        "authorization-spaces": "Authorization:" + " " * size + "!",
        "query-run": "?token" * (size // 6),
    }


def test_adversarial_input_is_redacted_in_linear_time(redactor: Redactor) -> None:
    # The precise figures are in bench/redact.py; this is a generous guard (< 1 s per MB),
    # far below what a quadratic pattern needs (minutes for one megabyte).
    inputs = _adversarial_inputs(1_000_000)
    total = sum(len(text) for text in inputs.values())
    assert total >= 10_000_000
    start = time.perf_counter()
    outputs = {name: redactor.redact(text) for name, text in inputs.items()}
    elapsed = time.perf_counter() - start
    assert elapsed < total / 1_000_000, f"{elapsed:.1f} s for {total / 1e6:.1f} MB"
    assert outputs["bearer-run"] == f"Bearer {PLACEHOLDER}"
    assert outputs["a-run"] == inputs["a-run"]
    assert outputs["scheme-run"] == inputs["scheme-run"]


CANARY = "canary-Kq3Zx8Vw2Lm5Np7Rt9Bs4Hd6"  # 30 characters, not a known credential shape
CANARY_ENV = {"CANARY_API_KEY": CANARY}


@pytest.mark.parametrize(
    "encode",
    [
        base64.b64encode,
        base64.urlsafe_b64encode,
        lambda raw: base64.b64encode(raw).rstrip(b"="),
        lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"="),
    ],
    ids=["std", "urlsafe", "std-unpadded", "urlsafe-unpadded"],
)
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5])
def test_base64_of_an_env_secret_is_redacted_at_any_offset(
    encode: Callable[[bytes], bytes], offset: int
) -> None:
    # The secret embedded in a longer payload starts at any byte offset (mod 3) of the
    # base64 stream; only the characters whose six bits all come from the secret are stable.
    secret = "sk_live_" + "0123456789abcdefghij"  # "_" after sk: no known shape
    raw = b"P" * offset + secret.encode() + b"; and more bytes after it"
    encoded = encode(raw).decode()
    out = Redactor.from_env({"STRIPE_SECRET": secret}).redact(f"blob: {encoded} end")
    first, last = -(-8 * offset // 6), 8 * (offset + len(secret)) // 6
    middle = encoded[first:last]
    assert len(middle) >= 36
    masked = out.replace(PLACEHOLDER, "\0")
    for i in range(len(middle) - 8):
        assert middle[i : i + 8] not in masked, (i, out)
    assert out.startswith(f"blob: {encoded[: (offset // 3) * 4]}")
    assert out.endswith(f"{encoded[-20:]} end")  # the bytes after the secret are kept


def test_base64_canary_key_does_not_survive_from_env() -> None:
    redactor = Redactor.from_env(CANARY_ENV)
    for blob in (
        base64.b64encode(CANARY.encode()).decode(),
        base64.b64encode((CANARY + "\n").encode()).decode(),  # echo "$KEY" | base64
        base64.b64encode(f"user:{CANARY}".encode()).decode(),  # docker "auth": user:key
        base64.urlsafe_b64encode(f"xy{CANARY}".encode()).decode().rstrip("="),
    ):
        out = redactor.redact(json.dumps({"auth": blob}))
        assert blob not in out
        assert PLACEHOLDER in out
    plain = base64.b64encode(CANARY.encode()).decode()
    assert redactor.redact(plain) == PLACEHOLDER


@pytest.mark.parametrize("width", [76, 64], ids=["base64-mime", "openssl-pem"])
def test_wrapped_base64_of_a_long_secret_is_redacted(width: int) -> None:
    secret = "-".join(f"seg{i:02d}Xy" for i in range(16))  # 111 chars: 148 in base64
    encoded = base64.b64encode(f"{secret}\n".encode()).decode()  # echo "$SECRET" | base64
    wrapped = "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))
    assert wrapped.count("\n") == 2
    out = Redactor.from_env({"LONG_SECRET": secret}).redact(f"$ base64\n{wrapped}\n$ ")
    assert out.startswith(f"$ base64\n{PLACEHOLDER}")
    assert out.endswith("\n$ ")
    assert len(out) < len("$ base64\n") + len(PLACEHOLDER) + 8  # at most the last character(s)


@pytest.mark.parametrize("case", [str.lower, str.upper], ids=["lower", "upper"])
def test_hex_of_an_env_secret_is_redacted(case: Callable[[str], str]) -> None:
    hexed = case(CANARY.encode().hex())
    out = Redactor.from_env(CANARY_ENV).redact(f"dump: {hexed}\n")
    assert out == f"dump: {PLACEHOLDER}\n"


@pytest.mark.parametrize("brk", ["\n", "\r\n", "\n    ", "  \n\t", " \n"])
def test_secret_split_by_a_line_break_anywhere_is_redacted(brk: str) -> None:
    redactor = Redactor.from_env(CANARY_ENV)
    for cut in range(1, len(CANARY)):
        text = f"value: {CANARY[:cut]}{brk}{CANARY[cut:]} done"
        assert redactor.redact(text) == f"value: {PLACEHOLDER} done", cut


def test_secret_wrapped_over_several_lines_is_redacted() -> None:
    secret = "wrapped-" + "".join(f"{i:02d}AbC" for i in range(20))  # 108 chars
    wrapped = "\n  ".join(secret[i : i + 17] for i in range(0, len(secret), 17))
    out = Redactor.from_env({"WRAPPED_TOKEN": secret}).redact(f"log:\n  {wrapped}\nnext")
    assert out == f"log:\n  {PLACEHOLDER}\nnext"


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASS",
        "SMTP_PASS",
        "PASS",
        "ADMIN_PW",
        "PW",
        "MYSQL_PWD",
        "PASSPHRASE",
        "GPG_PASSPHRASE",
        "SLACK_WEBHOOK_URL",
        "DISCORD_WEBHOOK",
        "SENTRY_DSN",
        "DSN",
        "DATABASE_URL",
        "DB_URL",
        "SQL_CONNECTION_STRING",
        "SESSION_COOKIE",
    ],
)
def test_more_secret_names(name: str) -> None:
    assert is_secret_name(name) is True


@pytest.mark.parametrize(
    "name",
    [
        "PWD",  # the working directory: redacting it would shred every path
        "OLDPWD",
        "BYPASS_CACHE",
        "COMPASS_HOME",
        "PASSENGER_ENV",
        "GITHUB_SERVER_URL",
        "GITHUB_API_URL",
        "RUNNER_WORKSPACE",
    ],
)
def test_names_that_only_look_secret(name: str) -> None:
    assert is_secret_name(name) is False


def test_credentials_in_connection_strings_are_secret_whatever_the_name() -> None:
    env = {
        "REDIS_URL": "redis://default:r3dis-pa55word@cache:6379/0",
        "HTTPS_PROXY": "http://proxyuser:pr0xy-s3cret@proxy.local:3128",
        "ADO_CONN": "Server=db;User Id=sa;Password=Adm1n-passw0rd;Encrypt=yes",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    redactor = Redactor.from_env(env)
    text = "pw r3dis-pa55word, pr0xy-s3cret and Adm1n-passw0rd at https://github.com"
    assert redactor.redact(text) == (
        f"pw {PLACEHOLDER}, {PLACEHOLDER} and {PLACEHOLDER} at https://github.com"
    )
    assert redactor.redact(env["REDIS_URL"]) == PLACEHOLDER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x-api-key: 0123456789abcdef0123", f"x-api-key: {PLACEHOLDER}"),
        ("X-Api-Key:0123456789abcdef0123", f"X-Api-Key:{PLACEHOLDER}"),
        ("api-key: c2VjcmV0LXZhbHVlLWhlcmU", f"api-key: {PLACEHOLDER}"),
        ("x-goog-api-key: GOOGvalue_abcdefgh", f"x-goog-api-key: {PLACEHOLDER}"),
        ('{"x-api-key": "plainvalue-xyz"}', f'{{"x-api-key": "{PLACEHOLDER}"}}'),
        ("curl -H 'X-API-KEY: abcdefghij' u", f"curl -H 'X-API-KEY: {PLACEHOLDER}' u"),
    ],
)
def test_api_key_headers_keep_their_name(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://api.test/v1/x?access_token=abcDEF123456&page=2",
            f"GET https://api.test/v1/x?access_token={PLACEHOLDER}&page=2",
        ),
        ("https://h.test/p?a=1&token=zzzzzzzz", f"https://h.test/p?a=1&token={PLACEHOLDER}"),
        ("https://h.test/p?api_key=k1", f"https://h.test/p?api_key={PLACEHOLDER}"),
        (
            "https://maps.test/js?key=AbC&callback=f",
            f"https://maps.test/js?key={PLACEHOLDER}&callback=f",
        ),
        (
            "https://app.test/cb#access_token=tok.en-1&token_type=bearer",
            f"https://app.test/cb#access_token={PLACEHOLDER}&token_type=bearer",
        ),
        ("[link](https://h.test/?token=abc)", f"[link](https://h.test/?token={PLACEHOLDER})"),
        ('<a href="/x?a=1&amp;sig=abc%2F">', f'<a href="/x?a=1&amp;sig={PLACEHOLDER}">'),
        # Not credentials.
        ("https://h.test/search?q=token&page=1", None),
        ("https://h.test/?keyword=x&monkey=y", None),
    ],
)
def test_credentials_in_query_parameters(text: str, expected: str | None) -> None:
    assert Redactor().redact(text) == (text if expected is None else expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Bearer abcdefghijklmnopqrstuvwxyzABCDEF",
            f"Bearer {PLACEHOLDER}",
        ),
        ("bearer abcdefghijklmnopqrst", f"bearer {PLACEHOLDER}"),  # 20 characters
        ("Bearer abcdEfghijkl done", f"Bearer {PLACEHOLDER} done"),  # 12, inner capital
        ("-H 'Bearer ya29.a-b_c~d+e/f=='", f"-H 'Bearer {PLACEHOLDER}'"),
        # Prose survives.
        ("Bearer authentication is described in RFC 6750.", None),
        ("Bearer tokens are short-lived.", None),
        ("Use Bearer Authentication here.", None),
        ("Bearer credentials; bearer-token schemes", None),
    ],
)
def test_bearer_tokens_without_digits(text: str, expected: str | None) -> None:
    assert Redactor().redact(text) == (text if expected is None else expected)


def test_pgp_and_encrypted_pem_blocks_lose_their_whole_body() -> None:
    encrypted = (
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        "DEK-Info: AES-128-CBC,3F1E2D\n\nSECRETBODYbase64AAAAAAAAAAAAAAAA\nMORE+/==\n"
        "-----END RSA PRIVATE KEY-----"
    )
    assert Redactor().redact(f"k:\n{encrypted}\nafter") == f"k:\n{PLACEHOLDER}\nafter"
    pgp = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGSECRETPGPBODYAAAAAAAA\n=abcd\n"
        "-----END PGP PRIVATE KEY BLOCK-----"
    )
    assert Redactor().redact(f"{pgp}\nafter") == f"{PLACEHOLDER}\nafter"


def test_fifty_env_secrets_are_hidden_in_every_spelling() -> None:
    # The speed of this case is measured in bench/redact.py, not asserted here.
    env = {f"SVC{i}_TOKEN": f"value-{i:04d}-" + "q" * 20 + f"{i:x}" for i in range(50)}
    redactor = Redactor.from_env(env)
    chunk = "lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789 " * 16
    for i in (0, 7, 49):
        secret = env[f"SVC{i}_TOKEN"].encode()
        spellings = [
            base64.b64encode(secret).decode(),
            base64.b64encode(b"xy" + secret + b"!").decode(),  # at byte offset 2
            secret.hex(),
            secret.hex().upper(),
        ]
        text = "\n".join(chunk + spelling for spelling in spellings)
        out = redactor.redact(text)
        assert out.count(PLACEHOLDER) == len(spellings)
        assert not any(spelling[4:-4] in out for spelling in spellings)


def test_a_long_private_key_is_hidden_in_every_spelling() -> None:
    # Thousands of characters per spelling: the trie is built and written without recursion.
    body = "\n".join(f"{i:02d}" + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" * 2 for i in range(40))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"
    redactor = Redactor(patterns=False).with_values(pem)
    blob = base64.b64encode(pem.encode()).decode()
    for text in (
        pem,
        json.dumps({"key": pem}),
        "\n".join(blob[i : i + 64] for i in range(0, len(blob), 64)),
        pem.encode().hex(),
        pem.replace("\n", "\r\n  "),  # re-wrapped and indented
    ):
        assert redactor.redact(text).strip() in (PLACEHOLDER, f'{{"key": "{PLACEHOLDER}"}}')


def test_with_values_does_not_re_encode_encodings() -> None:
    base = Redactor.from_env(CANARY_ENV)
    more = base.with_values("another-secret-value")
    # Spellings are derived from the secrets, not from earlier spellings: no base64 of base64.
    assert len(more.values) < 2 * len(base.values) + 40
    assert more.redact(base64.b64encode(CANARY.encode()).decode()) == PLACEHOLDER
