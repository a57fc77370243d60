"""Command line: parse arguments, call one function of ``orchestrator.commands``, map errors.

Exit codes (contract): 0 done (also "decided not to act"); 1 ran and failed; 2 bad input or
config, with a one-line reason naming the file and field. Heavy modules are imported only
inside the command that needs them, so ``plan`` on an event it skips returns quickly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"orchestrator: error: arguments: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI)."""
    parser = _Parser(prog="orchestrator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser, *, repo: bool = True) -> None:
        if repo:
            p.add_argument("--repo", type=Path, default=Path(), help="git repository")
            p.add_argument("--config", type=Path, help="config folder (replaces the whole set)")
        p.add_argument("--out", type=Path, help="output folder")

    plan = sub.add_parser("plan", help="decide whether to act and write plan.json")
    source = plan.add_mutually_exclusive_group()
    source.add_argument("--event", type=Path, help="GitHub event payload (GITHUB_EVENT_PATH)")
    source.add_argument("--workflow", help="workflow template name (with --task items)")
    source.add_argument("--request", help="free-text request for the LLM planner")
    plan.add_argument("--event-name", help="event name (GITHUB_EVENT_NAME)")
    plan.add_argument("--task", action="append", default=[], metavar="TEXT", help="an item")
    plan.add_argument("--max-parallel", type=int, help="tasks at once")
    plan.add_argument(
        "--publish",
        action="store_true",
        help="answer on GitHub: 👀 reaction, tracking comment, /plan /approve /status /cancel",
    )
    plan.add_argument(
        "--confirm-permission",
        metavar="LEVEL",
        choices=("read", "triage", "write", "maintain", "admin"),
        help="with --publish: also require this repository permission of the actor",
    )
    common(plan)

    task = sub.add_parser("task", help="run one task of a plan (a matrix job)")
    task.add_argument("--plan", type=Path, required=True)
    task.add_argument("--task", required=True, metavar="ID")
    task.add_argument("--workspace", type=Path, default=Path(), help="checkout at base_sha")
    common(task, repo=False)

    agg = sub.add_parser("aggregate", help="merge task results into one branch")
    agg.add_argument("--plan", type=Path, required=True)
    agg.add_argument("--results", type=Path, help="folder holding tasks/<id>/ (default: plan's)")
    agg.add_argument("--workspace", type=Path, default=Path(), help="the repository")
    agg.add_argument("--publish", action="store_true", help="push and open the PR on GitHub")
    agg.add_argument(
        "--link-keyword",
        default="Closes",
        help="how the PR body links the issue: 'Closes' (default) or e.g. 'Refs'",
    )
    agg.add_argument("--remote", default="origin", help="git remote to push to (--publish)")
    agg.add_argument("--history", type=Path, help="append the run's metrics line to this file")
    common(agg, repo=False)

    run = sub.add_parser("run", help="plan, execute and aggregate locally")
    run.add_argument("request", nargs="?", default="", help="free-text request")
    run.add_argument("--workflow", help="workflow template name")
    run.add_argument("--task", action="append", default=[], metavar="TEXT", help="an item")
    run.add_argument("--plan", type=Path, help="execute a saved plan.json")
    run.add_argument("--max-parallel", type=int, help="tasks at once")
    common(run)

    progress = sub.add_parser("progress", help="update the tracking comment between waves")
    progress.add_argument("--plan", type=Path, required=True)
    progress.add_argument("--results", type=Path, help="folder holding tasks/<id>/")

    stats = sub.add_parser("stats", help="render the run history (tables, Mermaid charts)")
    stats.add_argument("files", nargs="*", type=Path, help="history or metrics.jsonl files")
    stats.add_argument("--repo", type=Path, default=Path())
    stats.add_argument("--config", type=Path)
    stats.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")

    quality = sub.add_parser(
        "quality",
        help="record each run's PR state and tracking-comment reactions in the history",
    )
    quality.add_argument(
        "--history", type=Path, help="history file (default: the config's planning.history)"
    )
    quality.add_argument("--repo", type=Path, default=Path())
    quality.add_argument("--config", type=Path)

    sub.add_parser("mcp", help="serve the orchestrator's tools over MCP (stdio)")

    demo = sub.add_parser("demo", help="run the bundled offline demo")
    demo.add_argument("--out", type=Path, default=Path(".orchestrator/demo"))

    validate = sub.add_parser("validate", help="validate a config set and contract files")
    validate.add_argument("files", nargs="*", type=Path, help="plan/result/aggregate JSON files")
    validate.add_argument("--config", type=Path)
    validate.add_argument("--repo", type=Path, default=Path())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``orchestrator`` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "max_parallel", None) is not None and not 1 <= args.max_parallel <= 256:
        sys.stderr.write("orchestrator: error: --max-parallel: must be between 1 and 256\n")
        return 2
    from orchestrator import commands
    from orchestrator.errors import OrchestratorError

    try:
        return commands.dispatch(args)
    except OrchestratorError as exc:
        from orchestrator.redact import default_redactor

        sys.stderr.write(f"orchestrator: error: {default_redactor().redact(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("orchestrator: interrupted\n")
        return 130


def env_path(name: str) -> Path | None:
    """A path from an environment variable, or None when unset or empty."""
    value = os.environ.get(name)
    return Path(value) if value else None


if __name__ == "__main__":
    raise SystemExit(main())
