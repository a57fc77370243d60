"""GitHub Actions I/O: step outputs, the job summary, and workflow commands.

The reusable workflow (``.github/workflows/orchestrate.yml``) is driven by step outputs:

* ``plan`` → ``run`` (``"true"``/``"false"``), ``waves``, ``max-parallel``, ``run-id`` and
  ``matrix-1`` … ``matrix-K``: one ``{"include": [{"task", "agent", "title"}, …]}`` document per
  wave, or the empty string for a wave the plan does not have. Wave jobs are guarded with
  ``if: needs.plan.outputs.matrix-N != ''``, so ``fromJSON`` only ever sees a non-empty matrix
  (GitHub rejects a matrix with an empty ``include``).
* ``aggregate`` → ``status``, ``pr-url``, ``tokens``, ``cost-usd``.

Outputs are written to ``$GITHUB_OUTPUT`` in the heredoc form with a random delimiter, so a
value containing newlines (or a line that looks like ``name=value``) cannot inject another
output. Workflow commands (``::error::`` …) escape ``%``, CR and LF the way the runner expects.

Command line, for the composite actions::

    python -m orchestrator.github.actions plan-outputs --plan OUT/plan.json
    python -m orchestrator.github.actions aggregate-outputs --aggregate OUT/aggregate.json \
        [--summary OUT/summary.md]
"""

from __future__ import annotations

import json
import os
import re
import sys

from orchestrator.errors import InputError

# Only the standard library's cheap parts at import: ``plan-outputs`` on a skipped plan (most
# runs of the plan job) reads it as JSON, without pydantic, argparse or pathlib.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import TextIO

    from orchestrator.contracts import Aggregate, Plan

__all__ = [
    "MAX_MATRIX_JOBS",
    "MAX_WAVES",
    "add_mask",
    "aggregate_outputs",
    "append_summary",
    "artifact_safe",
    "error",
    "input_error",
    "main",
    "notice",
    "plan_outputs",
    "set_outputs",
    "skipped_plan_outputs",
    "warning",
    "write_aggregate_outputs",
    "write_plan_outputs",
]

#: Wave jobs in the reusable workflow (``wave-1`` … ``wave-8``): the most waves a plan has in CI.
MAX_WAVES = 8
#: GitHub's limit on the jobs one matrix may generate.
MAX_MATRIX_JOBS = 256
#: Longest task title carried into a matrix entry (it only names the job in the UI).
TITLE_CHARS = 80

_ARTIFACT_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# -- workflow commands ------------------------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(
    name: str, message: str, properties: Mapping[str, str] | None, stream: TextIO | None
) -> None:
    props = ",".join(
        f"{key}={_escape_property(value)}" for key, value in (properties or {}).items()
    )
    line = f"::{name}{' ' + props if props else ''}::{_escape_data(message)}\n"
    (stream or sys.stdout).write(line)


def error(message: str, *, title: str | None = None, stream: TextIO | None = None) -> None:
    """An ``::error::`` annotation (shown on the run page)."""
    _command("error", message, {"title": title} if title else None, stream)


def warning(message: str, *, title: str | None = None, stream: TextIO | None = None) -> None:
    """A ``::warning::`` annotation."""
    _command("warning", message, {"title": title} if title else None, stream)


def notice(message: str, *, title: str | None = None, stream: TextIO | None = None) -> None:
    """A ``::notice::`` annotation."""
    _command("notice", message, {"title": title} if title else None, stream)


def add_mask(value: str, *, stream: TextIO | None = None) -> None:
    """Ask the runner to mask ``value`` in every later log line (each line of it)."""
    for line in value.splitlines():
        if line.strip():
            _command("add-mask", line, None, stream)


# -- files ------------------------------------------------------------------------------------


def _env_file(name: str, path: Path | None) -> Path | str | None:
    if path is not None:
        return path
    return os.environ.get(name) or None


def _delimiter(values: Sequence[str]) -> str:
    while True:
        candidate = f"ghadelimiter_{os.urandom(16).hex()}"  # secrets.token_hex, without secrets
        if not any(candidate in value for value in values):
            return candidate


def format_outputs(outputs: Mapping[str, str]) -> str:
    """``$GITHUB_OUTPUT`` text: every value in heredoc form with one random delimiter."""
    for name in outputs:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise ValueError(f"invalid output name {name!r}")
    delimiter = _delimiter([*outputs.keys(), *outputs.values()])
    return "".join(
        f"{name}<<{delimiter}\n{value}\n{delimiter}\n" for name, value in outputs.items()
    )


def set_outputs(outputs: Mapping[str, str], path: Path | None = None) -> bool:
    """Append step outputs to ``$GITHUB_OUTPUT`` (or ``path``); False when neither is set."""
    target = _env_file("GITHUB_OUTPUT", path)
    if target is None:
        return False
    with open(target, "a", encoding="utf-8") as handle:  # noqa: PTH123 - no pathlib here
        handle.write(format_outputs(outputs))
    return True


def append_summary(markdown: str, path: Path | None = None) -> bool:
    """Append markdown to ``$GITHUB_STEP_SUMMARY`` (or ``path``); False when neither is set."""
    target = _env_file("GITHUB_STEP_SUMMARY", path)
    if target is None:
        return False
    with open(target, "a", encoding="utf-8") as handle:  # noqa: PTH123 - no pathlib here
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True


def job_url(environ: Mapping[str, str] | None = None) -> str | None:
    """This job's page: ``SERVER/OWNER/REPO/actions/runs/RUN_ID/job/CHECK_RUN_ID``.

    The check run id is the job's id; the task action passes ``job.check_run_id`` (GitHub.com
    since 2025) as ``ORCHESTRATOR_CHECK_RUN_ID``, so no ``actions: read`` call is needed.
    ``None`` outside Actions or where the runner does not know it (GHES, act).
    """
    env = os.environ if environ is None else environ
    parts = [env.get(name, "").strip() for name in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    check_run = env.get("ORCHESTRATOR_CHECK_RUN_ID", "").strip()
    if not all(parts) or not check_run.isdigit():
        return None
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    return f"{server}/{parts[0]}/actions/runs/{parts[1]}/job/{check_run}"


def input_error(exc: InputError) -> int:
    """Report bad input from a step's ``python -m`` entry point: an ``::error::`` annotation and
    the CLI's one line on stderr; returns the exit code (2)."""
    error(str(exc), title="orchestrator")
    sys.stderr.write(f"orchestrator: error: {exc}\n")
    return exc.exit_code


# -- plan -------------------------------------------------------------------------------------


def artifact_safe(text: str) -> str:
    """``text`` reduced to characters every artifact store accepts in a name."""
    return _ARTIFACT_UNSAFE.sub("-", text).strip("-") or "run"


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def _idle_outputs(
    run_id: str, max_parallel: int, status: str, reason: str, max_waves: int
) -> dict[str, str]:
    """The outputs of a plan that runs no task (skipped, empty or awaiting /approve)."""
    outputs = {
        "run": "false",
        "run-id": artifact_safe(run_id),
        "waves": "0",
        "max-parallel": str(max_parallel),
        "status": status,
        "reason": " ".join(reason.split()),
        "base-sha": "",
        "reuse-from": "",
        "verify-extras": "",
    }
    outputs.update({f"matrix-{number}": "" for number in range(1, max_waves + 1)})
    return outputs


def plan_outputs(plan: Plan, max_waves: int = MAX_WAVES) -> dict[str, str]:
    """The plan job's outputs. ``InputError`` when the plan does not fit the workflow's jobs."""
    from orchestrator.extras import format_extras, repair_extras, task_extras

    run = plan.status == "planned" and bool(plan.tasks) and not plan.awaiting_approval
    if not run:
        return _idle_outputs(plan.run_id, plan.max_parallel, plan.status, plan.reason, max_waves)
    waves = max((task.wave for task in plan.tasks), default=0)
    if waves > max_waves:
        raise InputError(
            "plan.json",
            "tasks.wave",
            f"the plan has {waves} waves; the reusable workflow has jobs for {max_waves} "
            f"(wave-1 … wave-{max_waves}): set planning.max_waves to {max_waves} or less, or "
            "split the request into runs that build on each other",
        )
    # A /retry runs only the tasks it does not reuse: ``waves`` is the last wave that runs.
    last = max((t.wave for n in range(1, waves + 1) for t in plan.to_run(n)), default=0)
    outputs = {
        "run": "true",
        "run-id": artifact_safe(plan.run_id),
        "waves": str(last if run else 0),
        "max-parallel": str(plan.max_parallel),
        "status": plan.status,
        "reason": " ".join(plan.reason.split()),
        "base-sha": plan.base_sha or "",
        "reuse-from": str(plan.reuse.workflow_run_id) if run and plan.reuse else "",
        "verify-extras": format_extras(repair_extras(plan)) if run else "",
    }
    for number in range(1, max_waves + 1):
        tasks = plan.to_run(number) if run else []
        if len(tasks) > MAX_MATRIX_JOBS:
            raise InputError(
                "plan.json",
                "tasks",
                f"wave {number} has {len(tasks)} tasks; a matrix runs at most {MAX_MATRIX_JOBS}",
            )
        include = [
            {
                "task": t.id,
                "agent": t.agent,
                "title": _title(t.title),
                # what the job installs: its chain's SDKs (orchestrator/extras.py)
                "extras": format_extras(task_extras(plan, t.id)),
            }
            for t in tasks
        ]
        outputs[f"matrix-{number}"] = (
            json.dumps({"include": include}, ensure_ascii=False, separators=(",", ":"))
            if include
            else ""
        )
    return outputs


def write_plan_outputs(
    plan: Plan, *, output_path: Path | None = None, max_waves: int = MAX_WAVES
) -> dict[str, str]:
    """Write :func:`plan_outputs` to ``$GITHUB_OUTPUT``; say why when the plan does not run."""
    return _write_plan_outputs(plan_outputs(plan, max_waves), output_path)


def _write_plan_outputs(outputs: dict[str, str], output_path: Path | None) -> dict[str, str]:
    set_outputs(outputs, output_path)
    if outputs["run"] != "true":
        notice(f"not running: {outputs['reason'] or outputs['status']}", title="orchestrator plan")
    return outputs


def skipped_plan_outputs(data: object, max_waves: int = MAX_WAVES) -> dict[str, str] | None:
    """:func:`plan_outputs` of a skipped plan read as plain JSON, or ``None`` for any other.

    A skipped plan's outputs come from four fields; those are checked as ``Plan`` checks them
    (the rest was checked by the plan command that wrote the file). Anything else, or any doubt,
    is ``None``: read the file as a ``Plan``.
    """
    if not isinstance(data, dict) or data.get("status") != "skipped":
        return None
    run_id, reason, max_parallel = data.get("run_id"), data.get("reason"), data.get("max_parallel")
    if (
        data.get("schema_version") != "1"
        or data.get("tasks") != []
        or not isinstance(run_id, str)
        or not isinstance(reason, str)
        or not isinstance(max_parallel, int)
        or isinstance(max_parallel, bool)
        or not 1 <= max_parallel <= 256
    ):
        return None
    return _idle_outputs(run_id, max_parallel, "skipped", reason, max_waves)


# -- aggregate --------------------------------------------------------------------------------


def aggregate_outputs(aggregate: Aggregate) -> dict[str, str]:
    """The aggregate job's outputs (``cost-usd`` is ``unknown`` when a price is missing)."""
    pr = aggregate.pr or {}
    url = pr.get("html_url") or pr.get("url") or ""
    totals = aggregate.totals
    cost = "unknown" if totals.cost_usd is None else f"{totals.cost_usd:.4f}"
    failed = [t.id for t in aggregate.tasks if t.status != "succeeded" or not t.applied]
    return {
        "status": aggregate.status,
        "pr-url": str(url),
        "tokens": str(totals.input_tokens + totals.output_tokens),
        "cost-usd": cost,
        "branch": aggregate.branch or "",
        "failed-tasks": ",".join(failed),
    }


def write_aggregate_outputs(
    aggregate: Aggregate,
    summary_md: str,
    *,
    output_path: Path | None = None,
    summary_path: Path | None = None,
) -> dict[str, str]:
    """Outputs, the job summary, and one ``::error::`` per task that did not land."""
    outputs = aggregate_outputs(aggregate)
    set_outputs(outputs, output_path)
    append_summary(summary_md, summary_path)
    for task in aggregate.tasks:
        if task.status != "succeeded":
            why = f": {task.error}" if task.error else ""
            error(f"task {task.id} {task.status}{why}", title="orchestrator task")
        elif not task.applied:
            files = ", ".join(task.conflict_files) or "its patch"
            error(f"task {task.id} did not apply (conflict in {files})", title="orchestrator task")
    if aggregate.status != "succeeded":
        error(
            f"run {aggregate.run_id} {aggregate.status}"
            + (f": {aggregate.reason}" if aggregate.reason else ""),
            title="orchestrator aggregate",
        )
    return outputs


# -- command line -----------------------------------------------------------------------------


def _skipped_plan_main(argv: Sequence[str]) -> int | None:
    """``plan-outputs --plan FILE`` for a skipped plan, without argparse or pydantic; else None."""
    from orchestrator.fileio import load_json

    if len(argv) != 3 or argv[0] != "plan-outputs" or argv[1] != "--plan" or not argv[2]:
        return None
    try:
        data = load_json(argv[2])
    except InputError:
        return None  # the full path reports it
    outputs = skipped_plan_outputs(data)
    if outputs is None:
        return None
    _say_plan_outputs(_write_plan_outputs(outputs, None))
    return 0


def _say_plan_outputs(outputs: dict[str, str]) -> None:
    shown = {k: v for k, v in outputs.items() if not k.startswith("matrix-") or v}
    sys.stdout.write(json.dumps(shown, ensure_ascii=False, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m orchestrator.github.actions plan-outputs|aggregate-outputs``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    skipped = _skipped_plan_main(arguments)
    if skipped is not None:
        return skipped
    import argparse
    from pathlib import Path

    from orchestrator.contracts import Aggregate, Plan
    from orchestrator.fileio import read_model

    parser = argparse.ArgumentParser(prog="python -m orchestrator.github.actions")
    sub = parser.add_subparsers(dest="command", required=True)
    plan_cmd = sub.add_parser("plan-outputs", help="plan.json → $GITHUB_OUTPUT")
    plan_cmd.add_argument("--plan", type=Path, required=True)
    plan_cmd.add_argument("--max-waves", type=int, default=MAX_WAVES)
    agg_cmd = sub.add_parser("aggregate-outputs", help="aggregate.json → outputs and summary")
    agg_cmd.add_argument("--aggregate", type=Path, required=True)
    agg_cmd.add_argument("--summary", type=Path, help="summary.md for $GITHUB_STEP_SUMMARY")
    args = parser.parse_args(arguments)
    try:
        if args.command == "plan-outputs":
            outputs = write_plan_outputs(read_model(args.plan, Plan), max_waves=args.max_waves)
            _say_plan_outputs(outputs)
        else:
            aggregate = read_model(args.aggregate, Aggregate)
            summary = args.summary.read_text(encoding="utf-8") if args.summary else ""
            outputs = write_aggregate_outputs(aggregate, summary)
            sys.stdout.write(json.dumps(outputs, ensure_ascii=False, indent=1) + "\n")
    except InputError as exc:
        return input_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
