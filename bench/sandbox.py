"""Benchmark (not a test): what a sandboxed command costs. `python bench/sandbox.py [-n 20]`.

Medians of N sequential runs, each a fresh bwrap (+ cgroup as root) through ``Sandbox.run``,
next to the same command started directly with ``asyncio.create_subprocess_exec``:

* ``/bin/true``: the sandbox's own start-up and tear-down;
* ``python -c pass`` (this interpreter): what a typical tool invocation pays on top;
* 8 concurrent ``sleep 0.5``: the runs overlap (one event loop), so the wall time stays near
  0.5 s rather than 4 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.sandbox import Sandbox, SandboxLimits  # noqa: E402


async def direct(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv)
    await proc.wait()
    return time.perf_counter() - started


async def sandboxed(sandbox: Sandbox, argv: list[str], tree: Path) -> float:
    started = time.perf_counter()
    result = await sandbox.run(argv, cwd=tree, limits=SandboxLimits())
    assert result.exit_code == 0, result.describe()
    return time.perf_counter() - started


async def main(n: int) -> None:
    sandbox = Sandbox.probe()
    if not isinstance(sandbox, Sandbox):
        raise SystemExit(f"sandbox unavailable: {sandbox.reason}")
    print(f"sandbox: {sandbox.describe()}")
    for note in sandbox.notes:
        print(f"  note: {note}")
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder)
        for argv in (["/bin/true"], [sys.executable, "-c", "pass"]):
            plain = [await direct(argv) for _ in range(n)]
            boxed = [await sandboxed(sandbox, argv, tree) for _ in range(n)]
            p, b = statistics.median(plain) * 1000, statistics.median(boxed) * 1000
            label = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))
            print(f"{label:<16} direct {p:6.1f} ms   sandboxed {b:6.1f} ms   (+{b - p:.1f} ms)")
        started = time.perf_counter()
        await asyncio.gather(*(sandboxed(sandbox, ["sleep", "0.5"], tree) for _ in range(8)))
        print(f"8 x sleep 0.5 concurrently: {time.perf_counter() - started:.2f} s wall")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="runs per command (median)")
    asyncio.run(main(parser.parse_args().n))
