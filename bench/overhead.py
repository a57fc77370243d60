"""Benchmarks (not tests): `make bench` or `python bench/overhead.py --write`.

Everything is measured in one run, side by side, and reported as ratios where a ratio is the
honest figure:

1. Orchestration overhead and parallel efficiency: N independent replay tasks (one model turn of
   latency L, then `finish`) with max-parallel N, N = 1…64. Overhead is the whole process (plan,
   execute, aggregate; no verify) minus L. Target (working code): at N=64 at most
   0.30 s + 3 ms per task. With ``--baseline REV`` the same run is measured against that
   revision too (bench/measure_run.py in a subprocess each), side by side.
2. Start-up: `orchestrator plan` deciding to skip an untrusted comment, and `import
   orchestrator.cli`, each as a fresh process, against a bare `python -c pass`. Target: < 0.3 s.
3. Aggregate time for 10 and 100 patches (one commit each); with ``--baseline``, the ratio.
   Target (working code): 100 patches at least 5x faster than the baseline.
4. GitHub write calls per run against N, through the real CLI against the loopback fake.
5. Provider calls on a repeated run: the same plan twice against a loopback OpenAI server.
6. The process sandbox's cost per command (bench/sandbox.py).
7. Applying patches in memory against `git apply` (bench/diffapply.py).
8. The shared prompt prefix and batch runs: a 4-task run's cost with and without them, from the
   run's accounting (bench/provider_costs.py).
9. Each job's install: time, venv size and download for every extra against one job's extras
   (bench/install_size.py).
10. The plan job on a trigger that is not ours (the skip path), paired against `python -c pass`;
   with ``--baseline REV`` against that revision too (bench/skip_path.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.config import default_config_dir  # noqa: E402
from orchestrator.gitrepo import commit_env, run_git  # noqa: E402

AGENTS = ("codex", "claude", "gemini", "deepseek", "copilot")


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for i in range(20):
        (path / f"module_{i}.py").write_text(f"VALUE_{i} = {i}\n")
    env = commit_env()
    run_git(path, "init", "-q", "-b", "main", env=env)
    run_git(path, "add", "-A", env=env)
    run_git(path, "commit", "-q", "-m", "base", env=env)
    return path


def task_turns(i: int, latency: float) -> list[dict[str, Any]]:
    return [
        {
            "tool_calls": [
                {"name": "write_file", "arguments": {"path": f"out/t{i}.txt", "content": f"{i}\n"}}
            ],
            "latency_s": latency,
            "usage": {"input_tokens": 1000, "output_tokens": 100},
        },
        {"tool_calls": [{"name": "finish", "arguments": {"summary": f"t{i} done"}}]},
    ]


def make_config(folder: Path, n: int, latency: float) -> Path:
    shutil.copytree(default_config_dir(), folder)
    tasks = {f"t{i}": task_turns(i, latency) for i in range(n)}
    (folder / "script.json").write_text(json.dumps({"planner": [], "tasks": tasks}))
    lines = ["agents:"]
    for name in AGENTS:
        lines += [
            f"  {name}:",
            "    provider: replay",
            f"    model: {name}",
            "    script: script.json",
        ]
    (folder / "agents.yml").write_text("\n".join(lines) + "\n")
    (folder / "settings.yml").write_text("planning:\n  max_tasks: 256\n  max_parallel: 256\n")
    return folder


def items(n: int) -> list[str]:
    return [f"t{i}" for i in range(n)]


# -- 1 and 3: executor overhead, aggregate time -------------------------------------------------


def measure_run(n: int, latency: float, root: Path = ROOT, repeat: int = 1) -> dict[str, float]:
    """N tasks against the checkout ``root``, each run in a fresh process (measure_run.py);
    with ``repeat`` > 1 the run whose total is the median (a shared VM's noise is large)."""
    runs = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "measure_run.py"), "--root", str(root),
             "--n", str(n), "--latency", str(latency)],
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda timings: timings["total"])
    timings: dict[str, float] = runs[len(runs) // 2]
    return timings


@contextlib.contextmanager
def baseline_checkout(rev: str | None) -> Iterator[Path | None]:
    """A temporary checkout of ``rev`` (``None``: no baseline)."""
    if rev is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="orchestrator-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "-q", "--detach", str(tree), rev], check=True)
        try:
            yield tree
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=False)


# -- 2: start-up --------------------------------------------------------------------------------


def median_process_time(
    cmd: list[str] | Callable[[], list[str]], runs: int, env: dict[str, str]
) -> float:
    times = []
    for _ in range(runs):
        argv = cmd() if callable(cmd) else cmd
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_startup(work: Path, runs: int) -> dict[str, float]:
    payload = json.loads(
        (ROOT / "tests/fixtures/github/webhooks/issue_comment.created.1.json").read_text()
    )
    payload["comment"]["body"] = "/orchestrate add dark mode"
    payload["comment"]["author_association"] = "NONE"
    payload["sender"]["type"] = "User"
    event = work / "event.json"
    event.write_text(json.dumps(payload))
    # As installed for real (pip and `uv sync` in the Makefile compile bytecode): measure with
    # .pyc files present, not with this sandbox's PYTHONDONTWRITEBYTECODE.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "orchestrator")], check=True
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GITHUB_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    exe = str(Path(sys.executable).parent / "orchestrator")

    def skip() -> list[str]:
        # A fresh empty folder each time, as the plan job's (the skip path writes only there).
        out = tempfile.mkdtemp(dir=work)
        return [exe, "plan", "--event", str(event), "--event-name", "issue_comment", "--out", out]

    out = subprocess.run(skip(), check=True, capture_output=True, text=True, env=env).stdout
    assert out.startswith("skipped"), out
    return {
        "bare": median_process_time([sys.executable, "-c", "pass"], runs, env),
        "import": median_process_time([sys.executable, "-c", "import orchestrator.cli"], runs, env),
        "skip": median_process_time(skip, runs, env),
    }


# -- 4: GitHub write calls ----------------------------------------------------------------------


def github_writes(n: int, work: Path) -> int:
    from orchestrator.cli import main
    from orchestrator.redact import reset_default_redactor
    from tests.conftest import WEBHOOKS
    from tests.e2e.conftest import make_replay_config, write_file_turns
    from tests.fakes.github_fake import FakeGitHub, serve_github

    base = work / f"gh{n}"
    repo = make_repo(base / "repo")
    remote = base / "remote.git"
    env = commit_env()
    run_git(base, "init", "-q", "--bare", "-b", "main", str(remote), env=env)
    run_git(repo, "remote", "add", "origin", str(remote), env=env)
    run_git(repo, "push", "-q", "origin", "main", env=env)
    names = [f"feature {i}" for i in range(n)]
    tasks = {
        f"feature-{i}": write_file_turns(f"src/f{i}.py", f"V = {i}\n", "done") for i in range(n)
    }
    tasks["feature-0"].insert(
        2,
        {
            "tool_calls": [
                {
                    "name": "add_review_comment",
                    "arguments": {"path": "src/f0.py", "line": 1, "body": "check"},
                }
            ]
        },
    )
    config = make_replay_config(base / "config", tasks)
    settings = config / "settings.yml"
    settings.write_text(settings.read_text().replace("max_tasks: 20", "max_tasks: 256"))
    event = json.loads((WEBHOOKS / "issues.labeled.1.json").read_text())
    event["label"]["name"] = "orchestrate"
    event["issue"]["body"] = "\n".join(f"- [ ] {name}" for name in names)
    event_path = base / "event.json"
    event_path.write_text(json.dumps(event))
    saved = dict(os.environ)
    try:
        with serve_github(FakeGitHub(git_dir=remote)) as (fake, server):
            os.environ.update(
                GITHUB_TOKEN="bench-token-0123456789",
                GITHUB_REPOSITORY="Codertocat/Hello-World",
                GITHUB_API_URL=server.url,
                GITHUB_RUN_ID=str(1000 + n),
                GITHUB_RUN_ATTEMPT="1",
            )
            reset_default_redactor()
            out = base / "out"
            quiet = open(os.devnull, "w")  # noqa: SIM115
            stdout, sys.stdout = sys.stdout, quiet
            stderr, sys.stderr = sys.stderr, quiet
            try:
                assert (
                    main(
                        [
                            "plan",
                            "--event",
                            str(event_path),
                            "--event-name",
                            "issues",
                            "--repo",
                            str(repo),
                            "--config",
                            str(config),
                            "--out",
                            str(out),
                            "--publish",
                        ]
                    )
                    == 0
                )
                assert (
                    main(
                        [
                            "run",
                            "--plan",
                            str(out / "plan.json"),
                            "--repo",
                            str(repo),
                            "--out",
                            str(out),
                            "--max-parallel",
                            "8",
                        ]
                    )
                    == 0
                )
                assert (
                    main(
                        [
                            "aggregate",
                            "--plan",
                            str(out / "plan.json"),
                            "--workspace",
                            str(repo),
                            "--publish",
                        ]
                    )
                    == 0
                )
            finally:
                sys.stdout, sys.stderr = stdout, stderr
                quiet.close()
            return len(fake.write_calls)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_default_redactor()


# -- 5: provider calls on a repeated run -------------------------------------------------------


def provider_calls_repeated(n: int, work: Path) -> tuple[int, int]:
    import yaml

    import orchestrator.providers as providers
    from orchestrator.cli import main
    from tests.fakes.openai_fake import OpenAIFake, write_file_then_finish

    base = work / "cache"
    repo = make_repo(base / "repo")
    config = base / "config"
    shutil.copytree(default_config_dir(), config)
    steps = [s for i in range(n) for s in write_file_then_finish(f"src/c{i}.py", f"C = {i}\n")]
    saved = dict(os.environ)
    providers.ALLOW_MODEL_REQUESTS = True
    os.environ["FAKE_OPENAI_API_KEY"] = "bench-key-0123456789"
    os.environ.pop("ORCHESTRATOR_CACHE_DIR", None)
    try:
        with OpenAIFake(steps) as fake:
            spec = fake.agent_config("openai")
            (config / "agents.yml").write_text(
                yaml.safe_dump({"agents": {name: spec for name in AGENTS}})
            )
            quiet = open(os.devnull, "w")  # noqa: SIM115
            stdout, sys.stdout = sys.stdout, quiet
            stderr, sys.stderr = sys.stderr, quiet
            try:
                args = ["--repo", str(repo), "--config", str(config), "--max-parallel", "1"]
                first = base / "first"
                assert (
                    main(
                        [
                            "run",
                            "--workflow",
                            "parallel_feature_implementation",
                            *[arg for i in range(n) for arg in ("--task", f"c{i}")],
                            *args,
                            "--out",
                            str(first),
                        ]
                    )
                    == 0
                )
                calls_first = len(fake.requests)
                assert (
                    main(
                        [
                            "run",
                            "--plan",
                            str(first / "plan.json"),
                            *args,
                            "--out",
                            str(base / "second"),
                        ]
                    )
                    == 0
                )
                calls_second = len(fake.requests) - calls_first
            finally:
                sys.stdout, sys.stderr = stdout, stderr
                quiet.close()
        return calls_first, calls_second
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- report -------------------------------------------------------------------------------------


def companion_sections(baseline: str | None = None) -> list[str]:
    """Sections 6–10: the sandbox's cost, the in-memory patch engine against git, what the
    shared prefix and batch runs save, each job's install and the skip path's start-up, as the
    companion scripts print them (each measures side by side within its own run)."""
    out: list[str] = []
    skip_args = ["--baseline", baseline] if baseline else []
    for number, (title, script, extra) in enumerate(
        (
            ("Process sandbox: one command, bubblewrap against a direct start", "sandbox.py", []),
            ("Applying patches: in memory against `git apply`", "diffapply.py", []),
            (
                "Shared prompt prefix and batch runs: cost from the accounting",
                "provider_costs.py",
                [],
            ),
            ("Each job's install: every extra against the job's own", "install_size.py", []),
            (
                "The plan job on a trigger that is not ours: skip path against `python -c pass`",
                "skip_path.py",
                skip_args,
            ),
        ),
        start=6,
    ):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script), *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        body = proc.stdout.strip() or f"(failed: {proc.stderr.strip()[-300:]})"
        out += ["", f"### {number}. {title} (`bench/{script}`)", "", "```", body, "```"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--runs", type=int, default=9, help="process launches per start-up figure")
    parser.add_argument("--repeat", type=int, default=3, help="runs per section-1 figure (median)")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    parser.add_argument(
        "--baseline", metavar="REV", help="also measure sections 1 and 3 at this git revision"
    )
    args = parser.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, baseline_checkout(args.baseline) as base:
        work = Path(tmp)
        against = f" Baseline: `{args.baseline}`, measured in the same run." if base else ""
        lines += [
            "### 1. Orchestration overhead and parallel efficiency",
            "",
            f"N replay tasks, each one model turn of L = {args.latency:.2f} s then `finish`, "
            "max-parallel N. Overhead = whole run (plan + execute + aggregate) − L; "
            f"efficiency = L ÷ whole run. Median of {args.repeat} runs.{against}",
            "",
            "| N | whole run (s) | overhead (s) | target (s) | met | efficiency "
            "| plan (s) | execute (s) | aggregate (s) | baseline overhead (s) | ratio |",
            "|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n in (int(s) for s in args.sizes.split(",")):
            m = measure_run(n, args.latency, repeat=args.repeat)
            overhead = m["total"] - args.latency
            target = 0.30 + 0.003 * n
            old = (
                measure_run(n, args.latency, base, args.repeat)["total"] - args.latency
                if base
                else None
            )
            lines.append(
                f"| {n} | {m['total']:.3f} | {overhead:.3f} | {target:.3f} "
                f"| {'yes' if overhead <= target else 'NO'} | {args.latency / m['total']:.1%} "
                f"| {m['plan']:.3f} | {m['execute']:.3f} | {m['aggregate']:.3f} "
                + (f"| {old:.3f} | {old / overhead:.1f}× |" if old is not None else "| – | – |")
            )
        s = measure_startup(work, args.runs)
        lines += [
            "",
            f"### 2. Start-up, fresh process, median of {args.runs}",
            "",
            "| command | median (s) | ÷ `python -c pass` |",
            "|---|---:|---:|",
            f"| `python -c pass` | {s['bare']:.3f} | 1.0 |",
            f"| `python -c 'import orchestrator.cli'` | {s['import']:.3f} "
            f"| {s['import'] / s['bare']:.1f} |",
            f"| `orchestrator plan` on an untrusted comment (→ skipped) | {s['skip']:.3f} "
            f"| {s['skip'] / s['bare']:.1f} |",
        ]
        lines += [
            "",
            "### 3. Aggregate time",
            "",
            "| patches | aggregate (s) | per patch (ms) | baseline (s) | speed-up |",
            "|---:|---:|---:|---:|---:|",
        ]
        for n in (10, 100):
            m = measure_run(n, 0.0)
            old = measure_run(n, 0.0, base)["aggregate"] if base else None
            lines.append(
                f"| {n} | {m['aggregate']:.3f} | {1000 * m['aggregate'] / n:.1f} "
                + (f"| {old:.3f} | {old / m['aggregate']:.1f}× |" if old else "| – | – |")
            )
        lines += [
            "",
            "### 4. GitHub write calls per run (label → plan → run → publish)",
            "",
            "| tasks | write calls |",
            "|---:|---:|",
        ]
        for n in (3, 10, 30):
            lines.append(f"| {n} | {github_writes(n, work)} |")
        first, second = provider_calls_repeated(4, work)
        lines += [
            "",
            "### 5. Provider calls, same plan run twice (4 tasks, loopback OpenAI)",
            "",
            "| run | model requests |",
            "|---|---:|",
            f"| first | {first} |",
            f"| second (response cache) | {second} |",
        ]
        lines += companion_sections(args.baseline)
    header = (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    text = "\n".join([header, "", *lines])
    print(text)
    if args.write:
        (ROOT / "BENCHMARKS.md").write_text(
            "# Benchmarks\n\nMeasured by `make bench` (bench/overhead.py); all figures from one "
            "run on one machine, side by side.\n\n" + text + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
