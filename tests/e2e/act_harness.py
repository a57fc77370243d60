"""Run this checkout's workflows with act, exactly as a user repository would call them.

A throwaway "user" repository holds a small project, the caller workflows copied from
``examples/workflows/`` and a replay config. act runs in host mode; the reusable workflow and
the composite actions come from this checkout (``--local-repository
orchestrator-dev/orchestrator@v1=ROOT``) and the pinned third-party actions from the stand-ins
in ``tests/e2e/act/`` (artifacts through a shared folder). Nothing leaves the machine: the
model turns are replayed and GitHub is a loopback server when a test passes ``api_url``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import git, make_repo
from tests.e2e.conftest import make_replay_config

ROOT = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "act"
BIN = Path(sys.executable).parent
OWNER_REPO = "orchestrator-dev/orchestrator"
USES_RE = re.compile(r"uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})")
STANDIN_FOR = {
    "actions/setup-python": "setup-python",
    "astral-sh/setup-uv": "setup-uv",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "actions/cache": "cache",  # cache/restore and cache/save (cache entries in a shared folder)
    "actions/checkout": "checkout",  # only a checkout with a `ref` (act skips the others)
}

PROJECT_FILES = {
    "README.md": "# racing analytics\n",
    "src/__init__.py": "",
    "src/app.py": "def greet(name):\n    return 'hello ' + name\n",
}


def pinned_actions() -> set[tuple[str, str]]:
    """Every ``owner/repo@sha`` the workflows, examples and actions of this checkout use.

    An action in a subfolder (``actions/cache/restore@SHA``) counts as its repository.
    """
    found: set[tuple[str, str]] = set()
    paths = [
        ROOT / "action.yml",
        *ROOT.glob("actions/*/action.yml"),
        *(ROOT / ".github" / "workflows").glob("*.yml"),
        *(ROOT / "examples" / "workflows").glob("*.yml"),
    ]
    for path in paths:
        for name, sha in USES_RE.findall(path.read_text()):
            found.add(("/".join(name.split("/")[:2]), sha))
    return found


def snapshot_checkout(dest: Path) -> Path:
    """This checkout's tracked and unignored files, copied to ``dest`` (what a tag would hold).

    act reads a ``--local-repository`` folder whole, so pointing it at the working tree would
    drag in ``.venv/`` and caches (and race with tools writing there).
    """
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not name.startswith(("tests/", "bench/")):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def uv_cache_dir() -> str:
    """The machine's uv cache, shared by every job (uv installs from it, offline)."""
    return subprocess.run(
        [str(uv_binary()), "cache", "dir"], capture_output=True, text=True, check=True
    ).stdout.strip()


def uv_binary() -> Path:
    """This machine's uv (the Makefile bootstraps it into .tools/bin)."""
    for candidate in (ROOT / ".tools" / "bin" / "uv", BIN / "uv"):
        if candidate.exists():
            return candidate
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found (run make setup)")
    return Path(found)


CACHE_MODE_RE = re.compile(r"^\s*cache-mode:.*\n", re.MULTILINE)


def for_act(workflow: str) -> str:
    """The caller as act 0.2.89 accepts it: its schema predates the job key ``cache-mode``.

    This is the only change made to a copied example; GitHub itself accepts the key.
    """
    return CACHE_MODE_RE.sub("", workflow)


@dataclass
class UserRepo:
    """The throwaway repository a user would have, plus where its replay script lives."""

    path: Path
    script: Path


def make_user_repo(
    tmp: Path,
    tasks: dict[str, list[dict[str, Any]]],
    *,
    settings: dict[str, Any] | None = None,
) -> UserRepo:
    """A committed repository with the example callers and a replay config set.

    The replay script stays outside the repository (absolute path in agents.yml) so that every
    act job, whatever its workspace, plays the same script.
    """
    config = make_replay_config(tmp / "config", tasks)
    script = tmp / "script.json"
    shutil.move(config / "script.json", script)
    agents = (config / "agents.yml").read_text().replace("script.json", str(script))
    (config / "agents.yml").write_text(agents)
    if settings:
        data = yaml.safe_load((config / "settings.yml").read_text()) or {}
        data.update(settings)
        (config / "settings.yml").write_text(yaml.safe_dump(data))
    files = dict(PROJECT_FILES)
    for path in sorted(config.iterdir()):
        files[f"configs/orchestration/{path.name}"] = path.read_text()
    for path in sorted((ROOT / "examples" / "workflows").glob("*.yml")):
        files[f".github/workflows/{path.name}"] = for_act(path.read_text())
    repo = make_repo(tmp / "user-repo", files)
    return UserRepo(path=repo, script=script)


GITHUB_URL = "https://github.com/Codertocat/Hello-World.git"


def connect(user: UserRepo, remote: Path) -> None:
    """``origin`` is GitHub's URL for act (which reads the slug) and the bare repo ``remote``
    for git (pushes go there); ``main`` is pushed."""
    git(user.path, "remote", "add", "origin", GITHUB_URL)
    git(user.path, "config", f"url.{remote}.pushInsteadOf", GITHUB_URL)
    git(user.path, "push", "-q", "origin", "main")


@dataclass
class ActRun:
    """What one act invocation did."""

    returncode: int
    wall_s: float
    log: str
    artifacts: Path
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def jobs(self) -> dict[str, str]:
        """Job name → its result (``success``/``failure``), from act's JSON log."""
        results: dict[str, str] = {}
        for record in self.records:
            if record.get("jobResult") and record.get("job"):
                results[str(record["job"])] = str(record["jobResult"])
        return results

    def messages(self, job_prefix: str = "") -> list[str]:
        """Log lines of the jobs whose name starts with ``job_prefix``."""
        return [
            str(r.get("msg", ""))
            for r in self.records
            if str(r.get("job", "")).startswith(job_prefix)
        ]

    def downloads(self) -> list[tuple[str, str]]:
        """(job id, artifact name) of every artifact a download step fetched, in order."""
        log = self.artifacts.parent / "downloads.log"
        if not log.is_file():
            return []
        return [
            (job, name)
            for job, _, name in (line.partition("\t") for line in log.read_text().splitlines())
        ]

    def artifact_names(self) -> list[str]:
        return sorted(p.name for p in self.artifacts.iterdir()) if self.artifacts.is_dir() else []


def run_act(
    user: UserRepo,
    tmp: Path,
    checkout: Path,
    event_name: str,
    payload: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    actor: str = "octocat",
    timeout: float = 240,
    workflow: str | None = None,
) -> ActRun:
    """Run ``act EVENT`` in the user repository with every network dependency replaced.

    ``workflow`` (a file name in ``.github/workflows/``) runs that workflow only; by default
    every workflow the event triggers runs. The Actions cache stand-in keeps its entries in
    ``TMP/actions-cache/<key>/`` (see :func:`cache_entries`).
    """
    event = tmp / f"{event_name}.json"
    event.write_text(json.dumps(payload))
    artifacts = tmp / "artifacts"
    artifacts.mkdir(exist_ok=True)
    cache = tmp / "act-cache"
    runner_tmp = tmp / "runner"
    runner_tmp.mkdir(exist_ok=True)
    args = [
        str(BIN / "act"),
        event_name,
        "-e",
        str(event),
        "-P",
        "ubuntu-latest=-self-hosted",
        "--json",
        "--action-cache-path",
        str(cache),
        "--cache-server-path",
        str(tmp / "act-cache-server"),
        "--no-cache-server",
        "--action-offline-mode",
        "--actor",
        actor,
        "--concurrent-jobs",
        "4",
        "--local-repository",
        f"{OWNER_REPO}@v1={checkout}",
    ]
    if workflow is not None:
        args += ["-W", str(Path(".github") / "workflows" / workflow)]
    for repo, sha in sorted(pinned_actions()):
        if repo in STANDIN_FOR:
            args += ["--local-repository", f"{repo}@{sha}={STANDINS / STANDIN_FOR[repo]}"]
    standin_env = {
        "ACT_STANDIN_ARTIFACTS": str(artifacts),
        "ACT_STANDIN_DOWNLOAD_LOG": str(tmp / "downloads.log"),
        "ACT_STANDIN_CACHE": str(tmp / "actions-cache"),
        "ACT_STANDIN_PYTHON": os.path.realpath(sys.executable),
        "ACT_STANDIN_UV_DIR": str(uv_binary().parent),
        "ACT_STANDIN_WORKDIR": str(user.path),
        "UV_OFFLINE": "1",
        "UV_CACHE_DIR": uv_cache_dir(),
        "UV_PYTHON_DOWNLOADS": "never",
        **(env or {}),
    }
    for key, value in standin_env.items():
        args += ["--env", f"{key}={value}"]
    for key, value in (secrets or {"GITHUB_TOKEN": "ghs_test_token_not_real"}).items():
        args += ["-s", f"{key}={value}"]
    proc_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "RUNNER_", "ACT_"))
    }
    proc_env["HOME"] = os.environ.get("HOME", str(tmp))
    proc_env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")
    started = time.monotonic()
    proc = subprocess.run(
        args,
        cwd=user.path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=proc_env,
        check=False,
    )
    wall = time.monotonic() - started
    records = []
    for line in proc.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    shutil.rmtree(cache, ignore_errors=True)
    run = ActRun(
        returncode=proc.returncode,
        wall_s=wall,
        log=proc.stdout + proc.stderr,
        artifacts=artifacts,
        records=records,
    )
    (tmp / f"act-{event_name}.log").write_text(readable(run) + "\n" + proc.stderr)
    return run


def cache_entries(tmp: Path) -> dict[str, Path]:
    """Key → folder of each entry the cache stand-in saved during ``run_act(…, tmp, …)``."""
    root = tmp / "actions-cache"
    if not root.is_dir():
        return {}
    return {entry.name: entry for entry in sorted(root.iterdir()) if entry.is_dir()}


def seed_cache(tmp: Path, key: str, path: str, content: str) -> None:
    """An entry as if an earlier workflow run had saved ``content`` at ``path`` under ``key``."""
    entry = tmp / "actions-cache" / key
    entry.mkdir(parents=True)
    (entry / "0").write_text(content)
    manifest = {"key": key, "paths": [path], "seq": time.time_ns()}
    (entry / "manifest.json").write_text(json.dumps(manifest))


def readable(run: ActRun, job_prefix: str = "") -> str:
    """The log of the jobs whose name contains ``job_prefix``, without act's bookkeeping."""
    lines = []
    for record in run.records:
        message = str(record.get("msg", ""))
        if job_prefix in str(record.get("job", "")) and "LocalRepositoryCache" not in message:
            lines.append(f"{str(record.get('job', '')).strip()[-24:]:>24} | {message.rstrip()}")
    return "\n".join(lines)
