"""Benchmark (not a test): artifact downloads of one workflow run, as N grows, under act.

`python bench/artifact_traffic.py [N ...] [--before REV]` (default N: 10 50 200). Each N is one
manual dispatch of ``analysis_implementation_pipeline`` through the example caller and the
reusable workflow of this checkout, run by act in host mode exactly as the end-to-end tests run
it (``tests/e2e/act_harness.py``: replayed agents, loopback GitHub, local ``origin``). The plan
has three waves: ``design``, then an ``implement-*`` and a ``test-*`` task per item, then
``integrate`` (N = 2 × items + 2).

The download-artifact stand-in logs every artifact it fetches; the figures are those counts:
total downloads, the task jobs' share, and what one job of the last wave fetched. With
``--before REV`` the same runs are repeated on the workflow and actions of revision REV
(e.g. ``4b91248``, before stacks), side by side in the same process.

The figures go to stdout as a Markdown table (BENCHMARKS.md section 11 holds the last run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.cli import main as cli_main  # noqa: E402
from orchestrator.contracts import Plan  # noqa: E402
from orchestrator.fileio import read_model  # noqa: E402
from tests.conftest import WEBHOOKS, git  # noqa: E402
from tests.e2e.act_harness import (  # noqa: E402
    connect,
    make_user_repo,
    run_act,
    snapshot_checkout,
)
from tests.e2e.conftest import write_file_turns  # noqa: E402
from tests.fakes.github_fake import FakeGitHub, serve_github  # noqa: E402

WORKFLOW = "analysis_implementation_pipeline"


def items_for(n: int) -> list[str]:
    return [f"metric {k}" for k in range((n - 2) // 2)]


def checkout_of(rev: str | None, tmp: Path) -> Path:
    """This checkout's files, or those of ``rev`` (``git archive``), as ``@v1`` would hold."""
    dest = tmp / f"checkout-{rev or 'head'}" / "orchestrator"
    if rev is None:
        return snapshot_checkout(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def one_run(n: int, checkout: Path, tmp: Path) -> dict[str, object]:
    """Dispatch an N-task plan under act; count the artifacts each job downloaded."""
    items = items_for(n)
    user = make_user_repo(tmp, {}, settings={"planning": {"max_tasks": 256}})
    probe = tmp / "probe"
    args = ["plan", "--workflow", WORKFLOW, "--repo", str(user.path), "--out", str(probe)]
    assert cli_main(args + [a for item in items for a in ("--task", item)]) == 0
    plan = read_model(probe / "plan.json", Plan)
    assert len(plan.tasks) == n, (len(plan.tasks), n)
    script = json.loads(user.script.read_text())
    for index, task in enumerate(plan.tasks):
        script["tasks"][task.id] = write_file_turns(f"src/t{index}.py", f"V = {index}\n", "done")
    user.script.write_text(json.dumps(script))
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    connect(user, remote)
    event = json.loads((WEBHOOKS / "workflow_dispatch.dispatch.1.json").read_text())
    event["inputs"] = {"workflow": WORKFLOW, "tasks": "; ".join(items), "request": ""}
    with serve_github(FakeGitHub(git_dir=remote)) as (_fake, server):
        env = {"GITHUB_API_URL": server.url, "GITHUB_SERVER_URL": "https://github.example"}
        started = time.monotonic()
        run = run_act(
            user, tmp, checkout, "workflow_dispatch", event, env=env,
            workflow="orchestrate-dispatch.yml", timeout=7200,
        )  # fmt: skip
        wall = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"N={n}: act failed; log in {tmp}")
    log = tmp / "downloads.log"
    rows = [line.split("\t") for line in log.read_text().splitlines()] if log.is_file() else []
    by_job = Counter(job for job, _ in rows)
    task_jobs = sum(count for job, count in by_job.items() if job.startswith("wave-"))
    return {
        "n": n,
        "downloads": len(rows),
        "task_jobs": task_jobs,
        "per_task_job": round(task_jobs / n, 2),
        "other_jobs": len(rows) - task_jobs,
        "wall_s": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="*", type=int, default=[10, 50, 200])
    parser.add_argument("--before", help="also run the workflow of this git revision")
    args = parser.parse_args()
    revisions: list[str | None] = [None] + ([args.before] if args.before else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as scratch:
        checkouts = {rev: checkout_of(rev, Path(scratch)) for rev in revisions}
        for n in args.n:
            for rev in revisions:
                tmp = Path(scratch) / f"n{n}-{rev or 'head'}"
                tmp.mkdir()
                row = one_run(n, checkouts[rev], tmp) | {"workflow": rev or "this checkout"}
                print(json.dumps(row), flush=True)
                rows.append(row)
    print("\n| N | workflow | downloads | by task jobs | per task job | by other jobs | wall s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['n']} | {row['workflow']} | {row['downloads']} | {row['task_jobs']} | "
            f"{row['per_task_job']} | {row['other_jobs']} | {row['wall_s']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
