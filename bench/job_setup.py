"""Benchmark (not a test): each job's set-up time in the reusable workflow, under act.

`python bench/job_setup.py [--runs 3]`. One labeled issue with a three-item request (the
``parallel_feature_implementation`` workflow: three tasks in one wave) runs through the example
caller and this checkout's reusable workflow, with act in host mode as the end-to-end tests run
it (``tests/e2e/act_harness.py``: replayed agents, loopback GitHub, local ``origin``).

Set-up time of a job = from its first log record (act's "Set up job") to the first record of
its orchestrator command step (plan, task, progress, verify, aggregate): checkout, Python, uv,
installing the package, the sandbox set-up and the artifact downloads. act stamps its JSON log
records to the second, so each figure is ± 1 s; the uv cache is warm (this machine's), which is
the case the target (≤ 10 s on a warm cache) is about.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import WEBHOOKS, git  # noqa: E402
from tests.e2e.act_harness import (  # noqa: E402
    connect,
    make_user_repo,
    run_act,
)
from tests.e2e.conftest import FEATURE_TASKS  # noqa: E402
from tests.fakes.github_fake import FakeGitHub, serve_github  # noqa: E402

#: The step of each job where the orchestrator itself starts (the composite action's step name).
COMMAND_STEPS = (
    "Plan",
    "Run the task",
    "Stage this wave's stack",
    "Merge, resolve, verify, fix",
    "Merge, publish and summarise",
)


def job_kind(job: str) -> str:
    name = job.rsplit("/", 1)[-1].strip()
    return "task" if name.startswith("wave ") else name.split("-")[0]


def one_run(checkout: Path, tmp: Path) -> dict[str, float]:
    """Set-up seconds per job of one labeled run."""
    user = make_user_repo(tmp, copy.deepcopy(FEATURE_TASKS))
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    connect(user, remote)
    event = json.loads((WEBHOOKS / "issues.labeled.1.json").read_text())
    event["label"]["name"] = "orchestrate"
    items = ("pace metrics", "weather normalization", "jockey ratings")
    event["issue"]["body"] = "Please add:\n\n" + "".join(f"- [ ] {i}\n" for i in items)
    with serve_github(FakeGitHub(git_dir=remote)) as (_fake, server):
        env = {"GITHUB_API_URL": server.url, "GITHUB_SERVER_URL": "https://github.example"}
        run = run_act(user, tmp, checkout, "issues", event, env=env, timeout=900)
    if run.returncode != 0:
        raise SystemExit(f"act failed; log in {tmp}")
    first: dict[str, datetime] = {}
    command: dict[str, datetime] = {}
    for record in run.records:
        job, stamp = str(record.get("job", "")), record.get("time")
        if not job or not stamp:
            continue
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        first.setdefault(job, when)
        # act logs a composite action's inner steps under the outer step: "⭐ Run Main NAME"
        message = str(record.get("msg", "")).strip()
        if job not in command and any(message == f"⭐ Run Main {n}" for n in COMMAND_STEPS):
            command[job] = when
    return {job: (command[job] - first[job]).total_seconds() for job in command}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", help="also run the workflow of this git revision, alternating")
    args = parser.parse_args()
    from bench.artifact_traffic import checkout_of

    revisions: list[str | None] = [None] + ([args.before] if args.before else [])
    by_kind: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as scratch:
        checkouts = {rev: checkout_of(rev, Path(scratch)) for rev in revisions}
        for index in range(args.runs):
            for rev in revisions:  # alternating: both see the same machine
                tmp = Path(scratch) / f"run-{index}-{rev or 'head'}"
                tmp.mkdir()
                for job, seconds in one_run(checkouts[rev], tmp).items():
                    by_kind.setdefault((rev or "this checkout", job_kind(job)), []).append(seconds)
    print("\n| workflow | job | set-up s (median) | min | max | samples |")
    print("|---|---|---|---|---|---|")
    for (rev, kind), values in sorted(by_kind.items()):
        print(
            f"| {rev} | {kind} | {statistics.median(values):.0f} | {min(values):.0f} | "
            f"{max(values):.0f} | {len(values)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
