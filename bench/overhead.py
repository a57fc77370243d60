"""Orchestration overhead, measured (not a test): `make bench` or `python bench/overhead.py`.

1. N independent replay tasks, each one model turn of fixed latency L plus a `finish` turn,
   run with `--max-parallel N`: wall time of the executor against the ideal L, and of the whole
   run (plan + execute + aggregate into a branch). Target (issue 2): at N=32 the executor's
   overhead stays under 0.5 s + 10 ms per task.
2. `orchestrator plan` deciding to skip an untrusted comment, as a fresh process, against a bare
   `python -c pass` measured in the same run. Target: under 0.3 s.

Figures go to stdout as a Markdown table and, with --write, into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.aggregate import aggregate_run  # noqa: E402
from orchestrator.config import default_config_dir, load_config  # noqa: E402
from orchestrator.coordinator import cli_request  # noqa: E402
from orchestrator.executor import execute_plan  # noqa: E402
from orchestrator.gitrepo import commit_env, head_sha, run_git  # noqa: E402
from orchestrator.planner import plan_request  # noqa: E402

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


def make_config(folder: Path, n: int, latency: float) -> Path:
    shutil.copytree(default_config_dir(), folder)
    tasks = {
        f"t{i}": [
            {
                "tool_calls": [
                    {
                        "name": "write_file",
                        "arguments": {"path": f"out/t{i}.txt", "content": f"task {i}\n"},
                    }
                ],
                "latency_s": latency,
                "usage": {"input_tokens": 1000, "output_tokens": 100},
            },
            {"tool_calls": [{"name": "finish", "arguments": {"summary": f"t{i} done"}}]},
        ]
        for i in range(n)
    }
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


def measure_run(n: int, latency: float, work: Path) -> dict[str, float]:
    repo = make_repo(work / f"repo{n}")
    config = load_config(make_config(work / f"cfg{n}", n, latency))
    request = cli_request(
        workflow="parallel_feature_implementation", items=[f"t{i}" for i in range(n)]
    )
    t0 = time.perf_counter()
    plan = asyncio.run(plan_request(request, config, base_sha=head_sha(repo), max_parallel=n))
    t1 = time.perf_counter()
    out = work / f"out{n}"
    results = asyncio.run(execute_plan(plan, repo=repo, out_dir=out, max_parallel=n))
    t2 = time.perf_counter()
    aggregate = aggregate_run(plan, out, repo, out, wall_s=t2 - t1)
    t3 = time.perf_counter()
    assert all(r.status == "succeeded" for r in results.values()), "a benchmark task failed"
    assert aggregate.status == "succeeded", aggregate.reason
    return {"plan": t1 - t0, "execute": t2 - t1, "aggregate": t3 - t2, "total": t3 - t0}


def median_process_time(cmd: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_skip(work: Path, runs: int) -> tuple[float, float]:
    payload = json.loads(
        (ROOT.parent / "shared/fixtures/github/webhooks/issue_comment.created.1.json").read_text()
    )
    payload["comment"]["body"] = "/orchestrate add dark mode"
    payload["comment"]["author_association"] = "NONE"
    payload["sender"]["type"] = "User"
    event = work / "event.json"
    event.write_text(json.dumps(payload))
    exe = str(Path(sys.executable).parent / "orchestrator")
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
    cmd = [
        exe,
        "plan",
        "--event",
        str(event),
        "--event-name",
        "issue_comment",
        "--out",
        str(work / "skip"),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    assert out.startswith("skipped"), out
    bare = median_process_time([sys.executable, "-c", "pass"], runs, env)
    skip = median_process_time(cmd, runs, env)
    return skip, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--sizes", default="1,8,32,64")
    parser.add_argument("--runs", type=int, default=7, help="process launches for the skip timing")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",")):
            m = measure_run(n, args.latency, work)
            overhead = m["execute"] - args.latency
            target = 0.5 + 0.010 * n
            rows.append(
                f"| {n} | {args.latency:.2f} | {m['execute']:.3f} | {overhead:.3f} | {target:.3f} "
                f"| {'yes' if overhead < target else 'NO'} | {m['execute'] / args.latency:.3f} "
                f"| {m['plan']:.3f} | {m['aggregate']:.3f} | {m['total']:.3f} |"
            )
        skip, bare = measure_skip(work, args.runs)
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "### Executor overhead: N replay tasks of latency L, max-parallel N",
        "",
        "| N | L (s) | execute wall (s) | overhead (s) | target (s) | met | wall ÷ ideal "
        "| plan (s) | aggregate (s) | whole run (s) |",
        "|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"### `plan` that decides to skip (fresh process, median of {args.runs})",
        "",
        "| command | median (s) | ratio to `python -c pass` |",
        "|---|---:|---:|",
        f"| `python -c pass` | {bare:.3f} | 1.00 |",
        f"| `orchestrator plan` (untrusted comment → skipped) | {skip:.3f} | {skip / bare:.2f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        (ROOT / "BENCHMARKS.md").write_text(
            "# Benchmarks\n\nMeasured by `make bench` (bench/overhead.py); figures from one run, "
            "side by side.\n\n" + text + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
