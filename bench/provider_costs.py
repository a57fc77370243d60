"""Benchmark (not a test): what the shared prompt prefix and batch runs save, from the accounting.

`python bench/provider_costs.py` (part of `make bench`). A 4-task run (four research tasks on
the bundled sample project, each: list the files, finish) goes through the whole local
pipeline — planner, executor, task runner, agent loop, the real ``anthropic`` SDK — against the
loopback Anthropic server of tests/fakes, whose prompt cache follows Anthropic's prompt-caching
guide (prefix hashes up to ``cache_control`` breakpoints, 512-token minimum for
claude-sonnet-5-5, reads and writes reported in ``usage``). Costs are what the run's own
accounting says (``result.json``), at the bundled claude prices.

Three runs, side by side:

1. **shared prefix**: as shipped — every task's system prompt (our rules) and shared context
   message (the request, the repository map) are byte-identical and marked cacheable; the
   task's own text follows them.
2. **no shared prefix**: the same run with each task's id put in front of its system prompt
   (what a prompt that starts with the task looks like), so no two tasks share a prefix.
3. **batch**: run 1 as a batch run (``mode: batch``), each turn through Message Batches at the
   agent's ``batch_discount``.

The fake answers at once, so timings mean nothing here; only tokens and dollars are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orchestrator.providers as providers  # noqa: E402
import orchestrator.task_runner as task_runner  # noqa: E402
from orchestrator.config import default_config_dir  # noqa: E402
from orchestrator.contracts import TaskResult, Usage  # noqa: E402
from orchestrator.coordinator import Coordinator, cli_request  # noqa: E402
from orchestrator.providers.ratelimit import reset_limits  # noqa: E402
from tests.fakes.anthropic_fake import AnthropicFake, call, tool_calls  # noqa: E402

TOPICS = ["lap timing", "tyre wear", "weather effects", "pit strategy"]
KEY_ENV = "BENCH_ANTHROPIC_KEY"
SAMPLE = ROOT / "orchestrator" / "demo" / "sample_project"


def sample_repo(folder: Path, source: Path | None) -> Path:
    """The demo's sample project as a committed repository (its files make the repo map), or
    a clone of ``source``."""
    if source is not None:
        subprocess.run(["git", "clone", "-q", str(source), str(folder)], check=True)
        return folder
    shutil.copytree(SAMPLE, folder)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "sample"]):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
            cwd=folder,
            check=True,
        )
    return folder


def config_for(folder: Path, fake: AnthropicFake) -> Path:
    """A layer over the bundled config: claude on the fake (bundled model and prices), research
    → claude only, a one-stage workflow."""
    folder.mkdir()
    bundled = yaml.safe_load((default_config_dir() / "agents.yml").read_text())["agents"]["claude"]
    prices = {k: v for k, v in bundled.items() if "per_mtok" in k or k == "batch_discount"}
    spec = fake.spec(key_env=KEY_ENV, model=bundled["model"], timeout_s=10.0, **prices)
    agents = {"claude": spec.model_dump(exclude_defaults=True, mode="json")}
    (folder / "agents.yml").write_text(yaml.safe_dump({"agents": agents}))
    routes = {"routes": {"research": {"primary": "claude", "changes": False}}}
    (folder / "routing_rules.yml").write_text(yaml.safe_dump(routes))
    stage = {
        "id": "survey",
        "type": "research",
        "for_each": "item",
        "title": "Survey {item}",
        "instructions": "Summarise how the code handles {item}.",
    }
    workflows = {"workflows": {"survey": {"stages": [stage]}}}
    (folder / "workflows.yml").write_text(yaml.safe_dump(workflows))
    settings = {
        "batch": {"window_s": 0.05, "poll_s": 0.05},
        "planning": {"max_parallel": 1, "default_workflow": "survey"},
    }
    (folder / "settings.yml").write_text(yaml.safe_dump(settings))
    return folder


@contextlib.contextmanager
def task_first_prompts() -> Iterator[None]:
    """Run 2: each task's id in front of its system prompt, so no prefix is shared."""
    shared: Callable[..., str] = task_runner.system_prompt
    counter = iter(range(1_000))

    def unshared(*args: Any, **kwargs: Any) -> str:
        return f"Task {next(counter)} of this run.\n\n" + shared(*args, **kwargs)

    task_runner.system_prompt = unshared  # type: ignore[assignment]
    try:
        yield
    finally:
        task_runner.system_prompt = shared  # type: ignore[assignment]


def run(work: Path, name: str, source: Path | None, *, batch: bool = False) -> dict[str, Any]:
    """One 4-task run; its tokens and cost from the results."""
    reset_limits()
    with AnthropicFake(batch_polls=1) as fake:
        steps = [tool_calls(call("list_files", path=".")), tool_calls(call("finish", summary="ok"))]
        fake.script(*(steps * len(TOPICS)))
        config = config_for(work / f"cfg-{name}", fake)
        repo = sample_repo(work / f"repo-{name}", source)
        request = cli_request("Survey the code.", workflow="survey", items=TOPICS, source="api")
        if batch:
            request = request.model_copy(update={"mode": "batch"})
        coordinator = Coordinator(repo, config=config, out=work / f"out-{name}", max_parallel=1)
        outcome = asyncio.run(coordinator.run(request))
    results: list[TaskResult] = list(outcome.results.values())
    usage = sum((r.usage for r in results), Usage())
    statuses = {r.status for r in results}
    if statuses != {"succeeded"}:
        raise SystemExit(f"{name}: tasks ended {statuses}: {[r.error for r in results]}")
    return {
        "run": name,
        "input": usage.input_tokens,
        "cache_read": usage.cached_input_tokens,
        "cache_write": usage.cache_write_input_tokens,
        "output": usage.output_tokens,
        "batched": usage.batched_requests,
        "cost": sum(r.cost_usd or 0.0 for r in results),
    }


def main() -> None:
    providers.ALLOW_MODEL_REQUESTS = True
    import os

    os.environ[KEY_ENV] = "sk-ant-bench-000000000000000000"
    os.environ["ORCHESTRATOR_CACHE_DIR"] = "off"
    print(f"{len(TOPICS)} research tasks × 2 turns, claude on the loopback Anthropic API")
    for label, source in (("the demo's sample project", None), ("this repository", ROOT)):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            shared = run(work, "shared prefix", source)
            with task_first_prompts():
                unshared = run(work, "no shared prefix", source)
            batched = run(work, "shared prefix, batch", source, batch=True)
        report(label, [shared, unshared, batched])


def report(label: str, rows: list[dict[str, Any]]) -> None:
    shared, unshared, batched = rows
    print()
    print(f"On {label}:")
    print()
    print(
        "| run | input tokens | cache reads | cache writes | cached share | batched turns | cost |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        share = row["cache_read"] / row["input"] if row["input"] else 0.0
        print(
            f"| {row['run']} | {row['input']:,} | {row['cache_read']:,} | {row['cache_write']:,} "
            f"| {share:.0%} | {row['batched']} | ${row['cost']:.4f} |"
        )
    print()
    print(f"shared prefix: {shared['cost'] / unshared['cost']:.2f}x the cost of the unshared run")
    print(f"batch run: {batched['cost'] / shared['cost']:.2f}x the cost of the interactive run")


if __name__ == "__main__":
    main()
