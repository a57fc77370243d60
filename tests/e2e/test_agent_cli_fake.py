"""The real vendor agent CLIs, offline, against the loopback fake provider.

Each CLI installed by ``make agent-clis`` (the pinned version, from ``.cache/agent-clis``) runs
headless and unsandboxed in a temporary git repository, from an empty environment with a fresh
HOME and only the settings that point it at the fake. The fake plays "create hello.txt, then
edit it, then answer": the test checks the file, the exit code, the token usage the CLI
reports (the fake's, summed over its three calls) and that nothing else from the environment
reached the provider. A second run per CLI gets a 401 and must fail visibly.

The stdout of these runs, with machine-specific paths normalised, is kept in
``tests/fixtures/agent_clis/<provider>[-error].jsonl`` for the stream parsers' unit tests; the
test checks that a fresh run still has the fixture's shape (the event types in order), so a
CLI upgrade that changes its stream fails here. ``AGENT_CLI_FIXTURES=write`` rewrites them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent_clis.catalog import CLIS
from orchestrator.agent_clis.install import DIR_ENV, Installed, find
from tests.fakes.agent_cli_fake import CODEX_MODEL, AgentCliFake, Create, Replace, Usage

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "agent_clis"
PROVIDERS = ("claude-code", "codex-cli", "gemini-cli")
PROMPT = "Create hello.txt, then change its greeting."
EDITS = (
    Create("hello.txt", "hello from fake\n"),
    Replace("hello.txt", "hello from fake", "hello edited"),
)
USAGE = Usage(input_tokens=111, output_tokens=22, cached_tokens=5)
#: A value in the parent's environment that must never reach the provider.
CANARY = "canary-7f3a9c-not-for-the-provider"
#: The dummy key each CLI gets (the fake records it redacted; header_is compares).
KEY = "sk-fake-key-for-the-loopback-provider"
#: Header each CLI sends its key in.
KEY_HEADERS = {
    "claude-code": "x-api-key",
    "codex-cli": "authorization",
    "gemini-cli": "x-goog-api-key",
}
#: What each CLI's own retries are cut to, so an error run takes one request.
NO_RETRIES = {"CLAUDE_CODE_MAX_RETRIES": "0"}


@dataclass(frozen=True)
class Run:
    """One finished CLI run."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    tree: Path
    places: dict[str, str]  # machine-specific path → what the fixtures say instead

    def events(self) -> list[dict[str, Any]]:
        """stdout's JSON lines (each CLI prints one JSON object per line)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def installed(provider: str) -> Installed:
    """The pinned CLI from ``.cache/agent-clis``; fails (never skips) when it is missing."""
    cli = CLIS[provider]
    found = find(cli, environ={DIR_ENV: str(REPO / ".cache" / "agent-clis"), "PATH": ""})
    if found is None or found.version != cli.version:
        pytest.fail(f"{cli.package}@{cli.version} is not installed: run `make agent-clis`")
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A temporary folder holding the repository, HOME and TMPDIR of one run.

    Codex's state folder lives in /var/tmp instead: with it under /tmp Codex refuses to create
    its helper binaries, and every ``apply_patch`` then fails ("Failed to write file") while
    the run still exits 0. ``.ci/run`` tests a clone under /tmp, so the repository's own
    folder will not do either.
    """
    (tmp_path / "tree").mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path / "tree")], check=True)
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    codex_home = Path(tempfile.mkdtemp(prefix="orchestrator-codex-home-", dir="/var/tmp"))
    (tmp_path / "codex-home").symlink_to(codex_home)
    yield tmp_path
    shutil.rmtree(codex_home, ignore_errors=True)


def run_cli(provider: str, fake: AgentCliFake, workdir: Path) -> Run:
    """Run ``provider``'s CLI headless on ``workdir/tree`` against ``fake``."""
    cli = installed(provider)
    home, tree = workdir / "home", workdir / "tree"
    codex_home = (workdir / "codex-home").resolve()
    env = {
        "PATH": f"{cli.bin_dir}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(workdir / "tmp"),
        "LANG": "C.UTF-8",
        "CANARY_SECRET": CANARY,  # stands for every other secret of the job
    }
    command = _SETUPS[provider](fake, home, codex_home, env)
    started = time.monotonic()
    done = subprocess.run(
        [str(cli.binary), *command],
        cwd=tree,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    places = {
        str(tree): "/work/tree",
        _slug(tree): _slug(Path("/work/tree")),
        str(home): "/work/home",
        str(codex_home): "/work/codex-home",
        str(workdir / "tmp"): "/work/tmp",
        fake.url: "http://127.0.0.1:8080",
    }
    seconds = time.monotonic() - started
    return Run(done.returncode, done.stdout, done.stderr, seconds, tree, places)


def _claude(fake: AgentCliFake, home: Path, codex_home: Path, env: dict[str, str]) -> list[str]:
    env.update(
        ANTHROPIC_BASE_URL=fake.base_url("claude-code"),
        ANTHROPIC_API_KEY=KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
        **NO_RETRIES,
    )
    return [
        "-p", PROMPT, "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits", "--model", "claude-sonnet-4-5", "--max-turns", "5",
        "--no-session-persistence", "--disallowedTools", "WebFetch", "WebSearch",
    ]  # fmt: skip


def _codex(fake: AgentCliFake, home: Path, codex_home: Path, env: dict[str, str]) -> list[str]:
    (codex_home / "config.toml").write_text(
        f'model = "{CODEX_MODEL}"\n'
        'model_provider = "fake"\n'
        'approval_policy = "never"\n'
        'sandbox_mode = "workspace-write"\n'
        "[model_providers.fake]\n"
        'name = "Fake"\n'
        f'base_url = "{fake.base_url("codex-cli")}"\n'
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    env.update(CODEX_HOME=str(codex_home), OPENAI_API_KEY=KEY)
    return [
        "exec", "--json", "--skip-git-repo-check", "--ephemeral",
        "-c", "features.plugins=false", "-c", "analytics.enabled=false",
        "-c", 'web_search="disabled"',
        "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
        "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true",
        PROMPT,
    ]  # fmt: skip


def _gemini(fake: AgentCliFake, home: Path, codex_home: Path, env: dict[str, str]) -> list[str]:
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"disableAutoUpdate": True},
        "tools": {"exclude": ["web_fetch", "google_web_search"]},
    }
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env.update(
        GEMINI_API_KEY=KEY,
        GOOGLE_GEMINI_BASE_URL=fake.base_url("gemini-cli"),
        GEMINI_CLI_TRUST_WORKSPACE="true",
    )
    return [
        "-p",
        PROMPT,
        "-o",
        "stream-json",
        "--approval-mode",
        "auto_edit",
        "-m",
        "gemini-2.5-flash",
    ]


_SETUPS = {"claude-code": _claude, "codex-cli": _codex, "gemini-cli": _gemini}


# ----------------------------------------------------------------------------- reported usage


def reported_usage(provider: str, events: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(input incl. cached, cached, output) tokens from the CLI's final event."""
    if provider == "claude-code":
        usage = _last(events, "result")["usage"]
        cached = usage["cache_read_input_tokens"]
        return usage["input_tokens"] + cached, cached, usage["output_tokens"]
    if provider == "codex-cli":
        usage = _last(events, "turn.completed")["usage"]
        return usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"]
    stats = _last(events, "result")["stats"]
    return stats["input_tokens"], stats["cached"], stats["output_tokens"]


def _last(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [event for event in events if event.get("type") == kind]
    assert found, f"no {kind!r} event in {[e.get('type') for e in events]}"
    return found[-1]


# ----------------------------------------------------------------------------- fixtures


def shape(events: list[dict[str, Any]]) -> list[str]:
    """The stream's event kinds in order (type, with subtype or item type when present)."""
    kinds = []
    for event in events:
        kind = str(event.get("type"))
        detail = event.get("subtype") or (event.get("item") or {}).get("type")
        if event.get("type") in ("assistant", "user"):
            detail = ",".join(c.get("type", "") for c in event["message"]["content"])
        kinds.append(f"{kind}/{detail}" if detail else kind)
    return kinds


def normalised(run: Run) -> str:
    """stdout with the run's machine-specific paths, port and pids replaced."""
    text = run.stdout
    for place, stand_in in sorted(run.places.items(), key=lambda p: -len(p[0])):
        text = text.replace(place, stand_in)
    return re.sub(r"/cc-socks/\d+\.sock", "/cc-socks/1000.sock", text)


def check_fixture(name: str, run: Run) -> None:
    """The run has the committed fixture's shape (or rewrites it on request)."""
    path = FIXTURES / f"{name}.jsonl"
    text = normalised(run)
    if os.environ.get("AGENT_CLI_FIXTURES") == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing: rerun with AGENT_CLI_FIXTURES=write"
    committed = [json.loads(line) for line in path.read_text().splitlines()]
    assert shape(run.events()) == shape(committed), f"{name}: the stream changed shape"
    assert "/tmp/" not in text.replace("/tmp/cc-socks/", ""), f"{name}: a temporary path left"


def _slug(path: Path) -> str:
    """Claude Code's folder name for a project path (non-alphanumerics → ``-``)."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(path))


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_real_cli_creates_then_edits_a_file_through_the_fake(
    provider: str, workdir: Path
) -> None:
    with AgentCliFake(EDITS, final_text="Done: hello.txt created and edited.", usage=USAGE) as fake:
        run = run_cli(provider, fake, workdir)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (run.tree / "hello.txt").read_text() == "hello edited\n"
    assert fake.model_calls == 3
    per_call = USAGE.input_tokens + USAGE.cached_tokens
    assert reported_usage(provider, run.events()) == (
        3 * per_call,
        3 * USAGE.cached_tokens,
        3 * USAGE.output_tokens,
    )
    assert "Done: hello.txt created and edited." in run.stdout
    assert all(r.header_is(KEY_HEADERS[provider], _key_header(provider)) for r in fake.requests)
    assert fake.saw(KEY)
    assert not fake.saw(CANARY)
    assert run.seconds < 30, f"{provider} took {run.seconds:.1f} s"
    check_fixture(provider, run)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_provider_error_fails_the_real_cli_visibly(provider: str, workdir: Path) -> None:
    with AgentCliFake(EDITS, error_status=401) as fake:
        run = run_cli(provider, fake, workdir)
    assert not (run.tree / "hello.txt").exists()
    assert fake.model_calls == 1  # a 401 is not retried
    events = run.events()
    if provider == "claude-code":
        result = _last(events, "result")
        assert (run.returncode, result["is_error"], result["api_error_status"]) == (1, True, 401)
    elif provider == "codex-cli":
        assert run.returncode == 1
        assert "401" in _last(events, "turn.failed")["error"]["message"]
    else:  # Gemini CLI exits with the HTTP status, modulo 256
        assert run.returncode == 401 % 256
        result = _last(events, "result")
        assert result["status"] == "error" and "UNAUTHENTICATED" in result["error"]["message"]
    assert not fake.saw(CANARY)
    check_fixture(f"{provider}-error", run)


def _key_header(provider: str) -> str:
    return f"Bearer {KEY}" if provider == "codex-cli" else KEY
