"""``actions/steps.sh install``: each job installs the core plus the extras in ORCH_EXTRAS.

The real script runs with this machine's uv, offline, from its cache (``make setup`` filled it)
into a temporary RUNNER_TEMP; the venv it leaves is then asked what it can import and run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import plan_of
from tests.e2e.act_harness import snapshot_checkout, uv_binary, uv_cache_dir

NOW = datetime(2026, 1, 1, tzinfo=UTC)

ROOT = Path(__file__).resolve().parents[2]
STEPS = ROOT / "actions" / "steps.sh"


def install(runner_temp: Path, extras: str | None) -> tuple[Path, str]:
    """Run ``steps.sh install`` with ``ORCH_EXTRAS=extras`` (None: unset); the venv and stdout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "RUNNER_", "ORCH_", "UV_", "VIRTUAL_ENV"))
    }
    env.update(
        RUNNER_TEMP=str(runner_temp),
        PATH=f"{uv_binary().parent}{os.pathsep}{env['PATH']}",
        UV_OFFLINE="1",
        UV_CACHE_DIR=uv_cache_dir(),
        ORCH_PYTHON=os.path.realpath(sys.executable),
        # Only the install step's own compilation may leave bytecode (not `orchestrator --help`).
        PYTHONDONTWRITEBYTECODE="1",
    )
    if extras is not None:
        env["ORCH_EXTRAS"] = extras
    proc = subprocess.run(
        ["bash", str(STEPS), "install"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return runner_temp / "orchestrator" / "venv", proc.stdout


def importable(venv: Path, module: str, *, load: bool = False) -> bool:
    """Whether the venv's Python finds ``module`` (``load``: imports it, with its dependencies).

    ``-B``: the check itself leaves no bytecode behind.
    """
    found = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    code = f"import {module}" if load else found
    proc = subprocess.run([venv / "bin" / "python", "-I", "-B", "-c", code],
                          capture_output=True, text=True)  # fmt: skip
    # Exit 1 is "not there" (find_spec found nothing, or the import raised ModuleNotFoundError).
    assert proc.returncode == 0 or (proc.returncode == 1 and "Error" not in proc.stderr.replace(
        "ModuleNotFoundError", "")), proc.stderr  # fmt: skip
    return proc.returncode == 0


def site_packages(venv: Path) -> Path:
    (site,) = (venv / "lib").glob("python3*/site-packages")
    return site


def test_a_task_job_for_an_openai_agent_installs_that_sdk_only(tmp_path: Path, repo: Path) -> None:
    venv, out = install(tmp_path / "runner", "openai")
    assert out.strip().splitlines()[-1] == (
        f"orchestrator installed from {ROOT} into {venv} (extras: openai)"
    )
    assert importable(venv, "openai", load=True)
    for absent in ("anthropic", "google.genai", "githubkit", "mcp"):
        assert not importable(venv, absent), absent
    # Bytecode for our own package only: the dependencies (thousands of files) stay as source.
    site = site_packages(venv)
    assert (site / "orchestrator" / "__pycache__").is_dir()
    assert list((site / "orchestrator" / "providers" / "__pycache__").glob("openai.*.pyc"))
    for dep in ("openai", "pydantic", "yaml"):
        assert (site / dep).is_dir() and not list((site / dep).rglob("__pycache__")), dep
    # What a lean job says when asked for more than it installed: one line, exit 2.
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "ORCHESTRATOR_ALLOW_MODEL_REQUESTS": "0",
    }
    planner = subprocess.run(
        [venv / "bin" / "orchestrator", "plan", "--request", "add a feature", "--repo", str(repo),
         "--dry-run"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert planner.returncode == 2, planner.stderr
    assert planner.stderr.strip() == (
        "orchestrator: error: agents.yml: agents.claude.provider: provider anthropic needs the "
        "'anthropic' extra: pip install 'gh-orchestrator[anthropic]'"
    )
    server = subprocess.run([venv / "bin" / "orchestrator", "mcp"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert server.returncode == 2 and "needs the 'mcp' extra" in server.stderr


@pytest.mark.parametrize(
    ("extras", "said", "present", "absent"),
    [
        ("", "none, the core only", ["yaml", "pydantic"], ["openai", "githubkit", "httpx"]),
        ("github", "github", ["githubkit", "httpx", "jwt"], ["openai", "anthropic", "mcp"]),
        (None, "all", ["openai", "anthropic", "google.genai", "githubkit", "mcp"], []),
        ("mcp,\n gemini ", "mcp gemini", ["mcp", "google.genai"], ["openai", "githubkit"]),
    ],
    ids=["core", "plan-job", "unset", "separators"],
)
def test_orch_extras_decides_what_is_installed(
    tmp_path: Path, extras: str | None, said: str, present: list[str], absent: list[str]
) -> None:
    venv, out = install(tmp_path / "runner", extras)
    assert out.strip().endswith(f"(extras: {said})")
    assert [m for m in present if importable(venv, m)] == present
    assert [m for m in absent if importable(venv, m)] == []


def test_the_steps_never_import_an_orchestrator_folder_of_the_user_s_checkout(
    tmp_path: Path,
) -> None:
    """Every step runs in the user's checkout; a package there named like ours must not shadow
    the installed one (``python -I``)."""
    runner = tmp_path / "runner"
    install(runner, "")
    workspace = tmp_path / "user-repo"
    (workspace / "orchestrator" / "github").mkdir(parents=True)
    for name in ("orchestrator/__init__.py", "orchestrator/github/__init__.py"):
        (workspace / name).write_text("raise SystemExit('the checkout was imported')\n")
    run_dir = runner / "orchestrator" / "run"
    run_dir.mkdir(parents=True)
    plan = plan_of(run_id="1-1", status="skipped", reason="not ours", created_at=NOW)
    (run_dir / "plan.json").write_text(plan.model_dump_json())
    outputs = tmp_path / "outputs.txt"
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "ORCH_"))
    }
    env.update(RUNNER_TEMP=str(runner), GITHUB_OUTPUT=str(outputs), ORCH_TASK="t")
    proc = subprocess.run(
        ["bash", str(STEPS), "task-names"], cwd=workspace, env=env, capture_output=True, text=True
    )
    assert "the checkout was imported" not in proc.stdout + proc.stderr
    assert "is not a task of the plan" in proc.stderr  # our module answered


def test_a_changed_source_is_never_installed_from_a_stale_cached_wheel(tmp_path: Path) -> None:
    """The same version built from other files is rebuilt (``[tool.uv] cache-keys``), while an
    unchanged checkout reuses its cached wheel."""
    checkout = snapshot_checkout(tmp_path / "orchestrator-checkout")
    steps = checkout / "actions" / "steps.sh"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "RUNNER_", "ORCH_", "UV_", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=f"{uv_binary().parent}{os.pathsep}{env['PATH']}",
        UV_OFFLINE="1",
        UV_CACHE_DIR=uv_cache_dir(),
        ORCH_PYTHON=os.path.realpath(sys.executable),
        ORCH_EXTRAS="",
    )

    def installed(job: str) -> bool:
        runner = tmp_path / job
        job_env = {**env, "RUNNER_TEMP": str(runner)}
        proc = subprocess.run(["bash", str(steps), "install"], env=job_env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        probe = "import orchestrator.text as t; print(hasattr(t, 'CHANGED_SINCE'))"
        python = runner / "orchestrator" / "venv" / "bin" / "python"
        return subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True,
                              check=True).stdout.strip() == "True"  # fmt: skip

    assert not installed("job-1")
    with (checkout / "orchestrator" / "text.py").open("a") as source:
        source.write("\nCHANGED_SINCE = True\n")
    assert installed("job-2")  # same version, other code: rebuilt
