"""Benchmark (not a test): the plan job on a trigger that is not ours, against `python -c pass`.

    python bench/skip_path.py [--rounds 30] [--baseline REV]

The commands are the plan job's (actions/steps.sh): `orchestrator plan --out DIR --repo REPO
--event FILE --event-name NAME --publish` into a fresh empty folder, then `python -m
orchestrator.github.actions plan-outputs --plan DIR/plan.json`, for a few payloads the
orchestrator skips. Paired and interleaved: every round runs each command once as a fresh
process, in a shuffled order, and a command's ratio in a round is its time over that round's
`python -c pass`; the figure is the median of those ratios (robust to the machine's load
drifting during the run). `python -c 'import json'` and `'import yaml'` are there to show what
the standard floor and a settings layer's parser cost. With `--baseline REV`, the same commands
also run on REV's package (a git worktree put first on PYTHONPATH) in the same rounds: before
and after, side by side. Target: at most 3x `python -c pass`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WEBHOOKS = ROOT / "tests" / "fixtures" / "github" / "webhooks"
BIN = Path(sys.executable).parent
TARGET = 3.0


def _event(work: Path, name: str, fixture: str, edit: dict[str, Any]) -> Path:
    payload = json.loads((WEBHOOKS / fixture).read_text(encoding="utf-8"))
    for dotted, value in edit.items():
        node = payload
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = work / f"{name}.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


#: (name, fixture, edits, event name, repository settings layer or None)
CASES: list[tuple[str, str, dict[str, Any], str, str | None]] = [
    ("untrusted /orchestrate comment", "issue_comment.created.1.json",
     {"comment.body": "/orchestrate add dark mode", "comment.author_association": "NONE"},
     "issue_comment", None),
    ("comment without a command", "issue_comment.created.1.json",
     {"comment.body": "Thanks, looks good to me."}, "issue_comment", None),
    ("another label", "issues.labeled.1.json", {"label.name": "bug"}, "issues", None),
    ("bot comment", "issue_comment.created.1.json",
     {"sender.login": "renovate[bot]", "sender.type": "Bot", "comment.body": "/orchestrate"},
     "issue_comment", None),
    ("another label, repo settings layer", "issues.labeled.1.json", {"label.name": "bug"},
     "issues", "triggers:\n  label: robots\n"),
]  # fmt: skip


@contextmanager
def baseline_tree(rev: str | None) -> Iterator[Path | None]:
    """A detached worktree of ``rev`` (removed afterwards), or None."""
    if rev is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="skip-baseline-"))
    tree = folder / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev],
                   check=True)  # fmt: skip
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       check=False)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def commands(work: Path, package: Path | None) -> dict[str, Callable[[], list[str]]]:
    """Name → a function making the command line (a fresh --out folder for each plan run)."""
    made: dict[str, Callable[[], list[str]]] = {}
    work.mkdir(parents=True)
    for name, fixture, edit, event_name, layer in CASES:
        event = _event(work, name.replace(" ", "-").replace("/", ""), fixture, edit)
        repo = work / f"repo-{len(made)}"
        if layer is not None:
            (repo / "configs" / "orchestration").mkdir(parents=True)
            (repo / "configs" / "orchestration" / "settings.yml").write_text(layer)
        repo.mkdir(exist_ok=True)

        def plan(event: Path = event, repo: Path = repo, event_name: str = event_name) -> list[str]:
            out = Path(tempfile.mkdtemp(dir=work))  # steps.sh: mkdir -p "$run_dir"
            return [str(BIN / "orchestrator"), "plan", "--out", str(out), "--repo", str(repo),
                    "--event", str(event), "--event-name", event_name, "--publish"]  # fmt: skip

        made[f"plan: {name}"] = plan
    skipped = work / "outputs-run"
    skipped.mkdir()
    first = made[f"plan: {CASES[0][0]}"]()
    first[first.index("--out") + 1] = str(skipped)
    subprocess.run(first, check=True, capture_output=True, env=_env(package))
    made["plan-outputs of the skipped plan"] = lambda: [
        sys.executable, "-m", "orchestrator.github.actions", "plan-outputs",
        "--plan", str(skipped / "plan.json"),
    ]  # fmt: skip
    return made


def _env(package: Path | None) -> dict[str, str]:
    # As installed for real (uv and pip compile bytecode, or the first run writes it): with .pyc
    # files present, not with this sandbox's PYTHONDONTWRITEBYTECODE.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GITHUB_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    env["GITHUB_OUTPUT"] = os.devnull
    if package is not None:
        env["PYTHONPATH"] = str(package)
    return env


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or ("plan" in cmd and not proc.stdout.startswith(("skipped", "::"))):
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
    return elapsed


def measure(rounds: int, baseline: str | None) -> str:
    with tempfile.TemporaryDirectory() as tmp, baseline_tree(baseline) as old:
        work = Path(tmp)
        # Not the source tree: `python -m`/`-c` put the current folder first on sys.path, where
        # it would shadow the baseline's package on PYTHONPATH.
        os.chdir(work)
        for tree in (ROOT, old):
            if tree is not None:
                compile_all = [sys.executable, "-m", "compileall", "-q", str(tree / "orchestrator")]
                subprocess.run(compile_all, check=True, capture_output=True)
        bare: dict[str, tuple[Callable[[], list[str]], dict[str, str]]] = {
            "python -c pass": (lambda: [sys.executable, "-c", "pass"], _env(None)),
            "python -c 'import json'": (lambda: [sys.executable, "-c", "import json"], _env(None)),
            "python -c 'import yaml'": (lambda: [sys.executable, "-c", "import yaml"], _env(None)),
        }
        after = {name: (make, _env(None)) for name, make in commands(work / "new", None).items()}
        before = (
            {name: (make, _env(old)) for name, make in commands(work / "old", old).items()}
            if old is not None
            else {}
        )
        runs = {**bare, **{f"after|{k}": v for k, v in after.items()},
                **{f"before|{k}": v for k, v in before.items()}}  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name in random.sample(list(runs), len(runs)):
                make, env = runs[name]
                times[name].append(_timed(make(), env))
        return report(times, rounds, baseline, list(after))


def report(
    times: dict[str, list[float]], rounds: int, baseline: str | None, names: list[str]
) -> str:
    base = times["python -c pass"]

    def ratio(name: str) -> float:
        return statistics.median(t / b for t, b in zip(times[name], base, strict=True))

    def ms(name: str) -> str:
        return f"{1000 * statistics.median(times[name]):.1f} ms"

    lines = [
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; "
        f"{rounds} rounds, paired and interleaved; ratio = median over rounds of "
        "(command ÷ that round's python -c pass)",
        "",
    ]
    header = f"{'command':<52}{'after':>10}{'÷ pass':>9}"
    if baseline:
        header += f"{'before (' + baseline[:9] + ')':>22}{'÷ pass':>9}"
    lines.append(header)
    for name in ("python -c pass", "python -c 'import json'", "python -c 'import yaml'"):
        lines.append(f"{name:<52}{ms(name):>10}{ratio(name):>8.1f}x")
    met = 0
    for name in names:
        row = f"{name:<52}{ms('after|' + name):>10}{ratio('after|' + name):>8.1f}x"
        met += ratio("after|" + name) <= TARGET
        if baseline:
            row += f"{ms('before|' + name):>22}{ratio('before|' + name):>8.1f}x"
        lines.append(row)
    lines += ["", f"target ≤ {TARGET:.0f}x python -c pass: met by {met} of {len(names)}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="runs of each command")
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision")
    args = parser.parse_args()
    print(measure(args.rounds, args.baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
