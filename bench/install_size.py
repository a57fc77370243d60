"""Benchmark (not a test): what each job's install costs. `python bench/install_size.py [-n 5]`.

Every profile runs the real ``actions/steps.sh install`` (the first step of every job) into a
fresh RUNNER_TEMP, side by side in one run, each time into a new venv:

* full: every extra (``ORCH_EXTRAS`` unset; what every job installed before extras existed);
* a task job on one provider: ``openai`` (codex, deepseek, copilot), ``anthropic`` (claude);
* a plan job that publishes, without the LLM planner: ``github``;
* the core only (``ORCH_EXTRAS=""``): a plan job from a workflow input, or a replayed task.

uv installs offline from this machine's cache, so the times are **warm-cache** times: no
download, only linking files into the venv, our package's build and its bytecode. What a runner
with an empty cache downloads is computed instead of timed: the size uv.lock records for the
wheel each installed distribution has for this interpreter. Last, the full install compiling
every file's bytecode (``UV_COMPILE_BYTECODE=1``) against ours (our package only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
STEPS = ROOT / "actions" / "steps.sh"
UV = ROOT / ".tools" / "bin" / "uv"

#: (label, ORCH_EXTRAS; None: unset)
PROFILES: list[tuple[str, str | None]] = [
    ("full (every extra)", None),
    ("task job, openai agent", "openai"),
    ("task job, anthropic agent", "anthropic"),
    ("plan job, publishing, no LLM planner", "github"),
    ("core only", ""),
]


def environment(runner_temp: Path, extras: str | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "RUNNER_", "ORCH_", "UV_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        RUNNER_TEMP=str(runner_temp),
        PATH=f"{UV.parent}{os.pathsep}{env['PATH']}",
        UV_OFFLINE="1",
        ORCH_PYTHON=os.path.realpath(sys.executable),
    )
    if extras is not None:
        env["ORCH_EXTRAS"] = extras
    return env


def install(work: Path, extras: str | None) -> tuple[float, Path]:
    """One ``steps.sh install`` into a fresh RUNNER_TEMP: seconds taken, and the venv."""
    runner_temp = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    subprocess.run(
        ["bash", str(STEPS), "install"],
        env=environment(runner_temp, extras),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started, runner_temp / "orchestrator" / "venv"


def install_compiling_everything(work: Path) -> float:
    """The full install as before: the same uv sync, every file compiled by uv."""
    runner_temp = Path(tempfile.mkdtemp(dir=work))
    env = environment(runner_temp, None)
    env.update(UV_PROJECT_ENVIRONMENT=str(runner_temp / "venv"), UV_COMPILE_BYTECODE="1")
    started = time.perf_counter()
    subprocess.run(
        [str(UV), "sync", "--project", str(ROOT), "--frozen", "--no-dev", "--no-editable",
         "--quiet", "--python", env["ORCH_PYTHON"], "--reinstall-package", "gh-orchestrator",
         "--extra", "all"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def site_packages(venv: Path) -> Path:
    (site,) = (venv / "lib").glob("python3*/site-packages")
    return site


def venv_bytes(venv: Path) -> int:
    """Apparent size of the venv's files, each inode once (uv hard-links from its cache)."""
    seen: set[int] = set()
    total = 0
    for folder, _dirs, files in os.walk(venv):
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            if stat.st_ino not in seen:
                seen.add(stat.st_ino)
                total += stat.st_size
    return total


def distributions(venv: Path) -> dict[str, str]:
    """Installed distributions (but ours): normalized name → version."""
    found = {}
    for info in site_packages(venv).glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        if canonicalize_name(name) != "gh-orchestrator":
            found[canonicalize_name(name)] = version
    return found


def python_files(venv: Path) -> int:
    return sum(1 for _ in site_packages(venv).rglob("*.py"))


def download_bytes(installed: dict[str, str], lock: dict[str, dict[str, Any]]) -> int:
    """What an empty cache downloads for these distributions: each one's best wheel here."""
    rank = {tag: i for i, tag in enumerate(sys_tags())}
    total = 0
    for name, version in installed.items():
        package = lock[name]
        assert package["version"] == version, (name, version)
        best: tuple[int, int] | None = None
        for wheel in package.get("wheels", []):
            tags = parse_wheel_filename(wheel["url"].rsplit("/", 1)[-1])[3]
            fit = min((rank[tag] for tag in tags if tag in rank), default=None)
            if fit is not None and (best is None or fit < best[0]):
                best = (fit, wheel["size"])
        if best is None:  # no wheel for this interpreter: the sdist is downloaded and built
            best = (0, package["sdist"]["size"])
        total += best[1]
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5, help="installs per profile (median)")
    parser.add_argument(
        "--compile-runs", type=int, default=3, help="full installs compiling every file (median)"
    )
    args = parser.parse_args()
    lock_data = tomllib.loads((ROOT / "uv.lock").read_text())
    lock = {canonicalize_name(p["name"]): p for p in lock_data["package"]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        install(work, None)  # warm-up: uv builds our wheel once, the cache is hot for everyone
        times: dict[str, list[float]] = {label: [] for label, _ in PROFILES}
        venvs: dict[str, Path] = {}
        compiled: list[float] = []
        for round_ in range(args.runs):  # interleaved: a busy moment hits every profile alike
            for label, extras in PROFILES:
                seconds, venvs[label] = install(work, extras)
                times[label].append(seconds)
            if round_ < args.compile_runs:
                compiled.append(install_compiling_everything(work))
        everything = statistics.median(compiled)
        for label, extras in PROFILES:
            venv = venvs[label]
            installed = distributions(venv)
            rows.append(
                (label, "(unset)" if extras is None else f'"{extras}"',
                 statistics.median(times[label]), venv_bytes(venv) / 1e6, len(installed),
                 python_files(venv), download_bytes(installed, lock) / 1e6)
            )  # fmt: skip
    full = rows[0]
    print(f"`steps.sh install` into a fresh venv, median of {args.runs}. Times are warm-cache")
    print("only: uv installs offline from this machine's cache (no download). The download column")
    print("is what a runner with an empty uv cache fetches, computed from uv.lock's wheel sizes.")
    print()
    print(
        "| job | ORCH_EXTRAS | install (s, warm cache) | ÷ full | venv (MB) | ÷ full "
        "| distributions | .py files | download, empty cache (MB, uv.lock) | ÷ full |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, extras, seconds, size, count, files, download in rows:
        print(f"| {label} | {extras} | {seconds:.2f} | {seconds / full[2]:.2f} | {size:.1f} "
              f"| {size / full[3]:.2f} | {count} | {files:,} | {download:.1f} "
              f"| {download / full[6]:.2f} |")  # fmt: skip
    print()
    print(
        f"full install, every file compiled (UV_COMPILE_BYTECODE=1), median of "
        f"{args.compile_runs}: {everything:.2f} s; ours (our package only): {full[2]:.2f} s "
        f"({everything / full[2]:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
