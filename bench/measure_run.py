"""One run's timings, for bench/overhead.py, against the orchestrator found on ``--root``.

Run with the checkout to measure first on ``sys.path`` (``--root``), so the same measurement
runs against this checkout and against a baseline revision side by side. Uses only the API both
have had since the first release: ``plan_request``, ``execute_plan``, ``aggregate_run``.
Prints one JSON object: plan, execute, aggregate and total seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="checkout to import from")
    parser.add_argument("--n", type=int, required=True, help="replay tasks")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per task")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    from orchestrator.aggregate import aggregate_run
    from orchestrator.config import default_config_dir, load_config
    from orchestrator.coordinator import cli_request
    from orchestrator.executor import execute_plan
    from orchestrator.gitrepo import commit_env, head_sha, run_git
    from orchestrator.planner import plan_request

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = work / "repo"
        repo.mkdir()
        for i in range(20):
            (repo / f"module_{i}.py").write_text(f"VALUE_{i} = {i}\n")
        env = commit_env()
        run_git(repo, "init", "-q", "-b", "main", env=env)
        run_git(repo, "add", "-A", env=env)
        run_git(repo, "commit", "-q", "-m", "base", env=env)
        folder = work / "config"
        shutil.copytree(default_config_dir(), folder)
        tasks = {
            f"t{i}": [
                {
                    "tool_calls": [
                        {
                            "name": "write_file",
                            "arguments": {"path": f"out/t{i}.txt", "content": f"{i}\n"},
                        }
                    ],
                    "latency_s": args.latency,
                    "usage": {"input_tokens": 1000, "output_tokens": 100},
                },
                {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
            ]
            for i in range(args.n)
        }
        (folder / "script.json").write_text(json.dumps({"planner": [], "tasks": tasks}))
        lines = ["agents:"]
        for name in ("codex", "claude", "gemini", "deepseek", "copilot"):
            lines += [f"  {name}:", "    provider: replay", f"    model: {name}",
                      "    script: script.json"]  # fmt: skip
        (folder / "agents.yml").write_text("\n".join(lines) + "\n")
        (folder / "settings.yml").write_text("planning:\n  max_tasks: 256\n  max_parallel: 256\n")
        config = load_config(folder)
        items = [f"t{i}" for i in range(args.n)]
        request = cli_request(workflow="parallel_feature_implementation", items=items)
        t0 = time.perf_counter()
        plan = asyncio.run(
            plan_request(request, config, base_sha=head_sha(repo), max_parallel=args.n)
        )
        t1 = time.perf_counter()
        out = work / "out"
        results = asyncio.run(execute_plan(plan, repo=repo, out_dir=out, max_parallel=args.n))
        t2 = time.perf_counter()
        aggregate = aggregate_run(plan, out, repo, out, wall_s=t2 - t1)
        t3 = time.perf_counter()
        if not all(r.status == "succeeded" for r in results.values()):
            raise SystemExit("a benchmark task failed")
        if aggregate.status != "succeeded":
            raise SystemExit(f"the aggregate failed: {aggregate.reason}")
    print(json.dumps({"plan": t1 - t0, "execute": t2 - t1, "aggregate": t3 - t2, "total": t3 - t0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
