"""Command line: parse arguments, call one function of ``orchestrator.commands``, map errors.

Exit codes (contract): 0 done (also "decided not to act"); 1 ran and failed; 2 bad input or
config, with a one-line reason naming the file and field. Heavy modules are imported only
inside the command that needs them. ``plan`` as the plan job runs it (``--event`` …) first asks
``trigger_gate`` whether the event is certainly not ours: that answer, and plan.json, come
without argparse, pathlib or pydantic (this module imports nothing at its top but ``os`` and
``sys``, which Python has loaded already).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path

DESCRIPTION = """\
Plan a request into typed tasks, run each on the agent best suited to it (OpenAI, Anthropic,
Gemini, DeepSeek, GitHub Models or any OpenAI-compatible endpoint) in parallel, and merge the
work into one branch with one commit per task. The same plan runs here, from Python, in
GitHub Actions (one matrix job per task) and from MCP clients."""

EPILOG = """\
examples:
  orchestrator demo                                   the bundled sample, offline, in seconds
  orchestrator init                                   write configs/orchestration/ into this repo
  orchestrator run --workflow parallel_feature_implementation --task "dark mode" --task "i18n"
  orchestrator run "add a CSV export"                 free text, planned by the planner agent
  orchestrator plan --workflow W --task a --dry-run   print the tasks (ids, waves, agents)
  orchestrator run --workflow W --task a --replay replay.yml   offline: scripted agents

exit codes: 0 done (also "decided not to act"), 1 ran and failed or partly succeeded,
2 bad input or config (one line naming the file and the field).
Run "orchestrator COMMAND --help" for a command's options and examples."""

#: Per command: one-line help, longer description, examples.
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": (
        "decide whether to act and write plan.json",
        """examples:
  orchestrator plan --workflow parallel_feature_implementation --task "pace metrics" --dry-run
  orchestrator plan --event event.json --event-name issue_comment --out run/
  orchestrator plan --request "add a CSV export" --replay replay.yml --out run/""",
    ),
    "task": (
        "run one task of a plan (what one matrix job does)",
        """examples:
  orchestrator task --plan run/plan.json --task pace-metrics
  orchestrator task --plan run/plan.json --task pace-metrics --repo . --out run/""",
    ),
    "aggregate": (
        "merge the tasks' results into one branch (and publish it with --publish)",
        """examples:
  orchestrator aggregate --plan run/plan.json --results run/
  orchestrator aggregate --plan run/plan.json --results run/ --publish   (in Actions)""",
    ),
    "verify": (
        "merge the results, resolve conflicts, run the repository's check, fix what broke "
        "(the Actions verify job); writes verify.json",
        """examples:
  orchestrator verify --plan run/plan.json --results run/
  orchestrator verify --plan run/plan.json --results run/ --repo .""",
    ),
    "run": (
        "plan, run every task in parallel and merge, in one process",
        """examples:
  orchestrator run --workflow parallel_feature_implementation --task "pace metrics" \\
      --task "jockey ratings"
  orchestrator run "add a dark mode" --repo ../my-project
  orchestrator run --plan run/plan.json --max-parallel 2
  orchestrator run --workflow W --task a --replay replay.yml   (offline, simulated cost)""",
    ),
    "init": (
        "write a commented config layer (configs/orchestration/) into a repository",
        """examples:
  orchestrator init                     in the repository's top folder
  orchestrator init --repo ../my-project --force""",
    ),
    "validate": (
        "check the config set and plan/result/aggregate files or replay scripts",
        """examples:
  orchestrator validate
  orchestrator validate run/plan.json run/tasks/*/result.json run/aggregate.json
  orchestrator validate replay.yml --config configs/orchestration""",
    ),
    "sandbox": (
        "say whether run_command and verify can run here (the bubblewrap process sandbox)",
        """example:
  orchestrator sandbox""",
    ),
    "progress": (
        "update the tracking comment between waves (Actions)",
        """example:
  orchestrator progress --plan run/plan.json --results run/""",
    ),
    "stats": (
        "render the run history as tables and Mermaid charts",
        """examples:
  orchestrator stats
  orchestrator stats .orchestrator/history.jsonl --out stats.md""",
    ),
    "quality": (
        "record each run's PR state and tracking-comment reactions in the history (Actions)",
        """example:
  orchestrator quality --history history.jsonl""",
    ),
    "mcp": (
        "serve the orchestrator's tools over MCP on stdin/stdout",
        """example (VS Code .vscode/mcp.json):
  {"servers": {"orchestrator": {"type": "stdio", "command": ".venv/bin/orchestrator",
                                "args": ["mcp"]}}}""",
    ),
    "demo": (
        "run the bundled offline demo (sample project, replayed agents)",
        """example:
  orchestrator demo --out /tmp/orchestrator-demo""",
    ),
}


#: Repository permissions ``--confirm-permission`` accepts (settings.yml ``trust``).
PERMISSION_LEVELS = ("none", "read", "triage", "write", "maintain", "admin")


def _formatter(prog: str) -> argparse.HelpFormatter:
    import argparse

    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30, width=100)


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("gh-orchestrator")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _argparse_classes() -> tuple[type[argparse.ArgumentParser], type[argparse.Action]]:
    """The parser (usage errors exit 2) and ``--version`` classes, made when first needed."""
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            self.print_usage(sys.stderr)
            sys.stderr.write(f"{self.prog}: error: {message}\n")
            raise SystemExit(2)

    class _Version(argparse.Action):
        """``--version``, looked up only when asked for (importlib.metadata costs start-up)."""

        def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
            super().__init__(option_strings, dest, nargs=0, help=help)

        def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
            sys.stdout.write(f"{parser.prog} {version()}\n")
            raise SystemExit(0)

    return _Parser, _Version


def _repo(p: argparse.ArgumentParser, what: str = "the git repository to work on") -> None:
    from pathlib import Path

    p.add_argument(
        "--repo",
        "--workspace",
        dest="repo",
        type=Path,
        default=Path(),
        metavar="DIR",
        help=f"{what} (default: the current folder; --workspace is the same option)",
    )


def _config(p: argparse.ArgumentParser) -> None:
    from pathlib import Path

    p.add_argument(
        "--config",
        type=Path,
        metavar="DIR",
        help="config folder: a complete set replaces the defaults, a partial one is layered "
        "over them (default: the repository's configs/orchestration/, else the defaults)",
    )


def _out(p: argparse.ArgumentParser, default: str) -> None:
    from pathlib import Path

    p.add_argument("--out", type=Path, metavar="DIR", help=f"output folder (default: {default})")


def _replay(p: argparse.ArgumentParser) -> None:
    from pathlib import Path

    p.add_argument(
        "--replay",
        type=Path,
        metavar="SCRIPT",
        help="play this replay script for every agent (offline; no keys; costs are simulated)",
    )


def _request(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workflow", metavar="NAME", help="workflow template from workflows.yml")
    p.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="TEXT",
        help="an item the workflow fans out over (repeat for several)",
    )
    p.add_argument("--max-parallel", type=int, metavar="N", help="tasks at once (1-256)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI)."""
    from pathlib import Path

    parser_class, version_action = _argparse_classes()
    parser = parser_class(
        prog="orchestrator", description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter
    )
    parser.add_argument("--version", action=version_action, help="print the version and exit")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=parser_class
    )

    def command(name: str) -> argparse.ArgumentParser:
        summary, examples = COMMANDS[name]
        return sub.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=examples,
            formatter_class=_formatter,
        )

    plan = command("plan")
    source = plan.add_mutually_exclusive_group()
    source.add_argument(
        "--event", type=Path, metavar="FILE", help="GitHub event payload (GITHUB_EVENT_PATH)"
    )
    source.add_argument("--request", metavar="TEXT", help="free-text request for the planner")
    plan.add_argument("--event-name", metavar="NAME", help="event name (GITHUB_EVENT_NAME)")
    _request(plan)
    plan.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (task ids, waves, agents) and write nothing",
    )
    plan.add_argument(
        "--publish",
        action="store_true",
        help="answer on GitHub: 👀 reaction, tracking comment, /plan /approve /status /cancel",
    )
    plan.add_argument(
        "--confirm-permission",
        metavar="LEVEL",
        choices=PERMISSION_LEVELS,
        help="in Actions or with --publish: require this repository permission of the actor, "
        "read through the API (default: settings.yml trust.confirm_permission, 'write'; "
        "'none' trusts author_association alone)",
    )
    _repo(plan)
    _config(plan)
    _replay(plan)
    _out(plan, "REPO/.orchestrator/runs/RUN_ID/")

    task = command("task")
    task.add_argument("--plan", type=Path, required=True, metavar="FILE", help="the plan.json")
    task.add_argument("--task", required=True, metavar="ID", help="the id of the task to run")
    _repo(task, "the checkout holding the plan's base commit")
    _config(task)
    _out(task, "the plan's folder; the task writes OUT/tasks/ID/")

    agg = command("aggregate")
    agg.add_argument("--plan", type=Path, required=True, metavar="FILE", help="the plan.json")
    agg.add_argument(
        "--results", type=Path, metavar="DIR", help="folder holding tasks/ID/ (default: plan's)"
    )
    _repo(agg, "the repository the branch is made in")
    _config(agg)
    agg.add_argument("--publish", action="store_true", help="push and open the PR on GitHub")
    agg.add_argument(
        "--link-keyword",
        default="Closes",
        metavar="WORD",
        help="how the PR body links the issue: 'Closes' (default) or e.g. 'Refs'",
    )
    agg.add_argument(
        "--remote", default="origin", metavar="NAME", help="git remote to push to (--publish)"
    )
    agg.add_argument(
        "--history", type=Path, metavar="FILE", help="append the run's metrics line to this file"
    )
    _out(agg, "the results folder")

    verify = command("verify")
    verify.add_argument("--plan", type=Path, required=True, metavar="FILE", help="the plan.json")
    verify.add_argument(
        "--results", type=Path, metavar="DIR", help="folder holding tasks/ID/ (default: plan's)"
    )
    _repo(verify, "the checkout holding the plan's base commit")
    _config(verify)

    run = command("run")
    run.add_argument("request", nargs="?", default="", help="free-text request for the planner")
    _request(run)
    run.add_argument("--plan", type=Path, metavar="FILE", help="execute a saved plan.json")
    _repo(run)
    _config(run)
    _replay(run)
    _out(run, "REPO/.orchestrator/runs/RUN_ID/")

    init = command("init")
    _repo(init, "the repository to write configs/orchestration/ into")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")

    command("sandbox")

    progress = command("progress")
    progress.add_argument("--plan", type=Path, required=True, metavar="FILE", help="plan.json")
    progress.add_argument("--results", type=Path, metavar="DIR", help="folder holding tasks/ID/")

    stats = command("stats")
    stats.add_argument("files", nargs="*", type=Path, help="history or metrics.jsonl files")
    _repo(stats, "the repository whose history to read")
    _config(stats)
    stats.add_argument(
        "--out", type=Path, metavar="FILE", help="write the Markdown here instead of stdout"
    )

    quality = command("quality")
    quality.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="history file (default: the config's planning.history)",
    )
    _repo(quality, "the repository whose history to read")
    _config(quality)

    command("mcp")

    demo = command("demo")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path(".orchestrator/demo"),
        metavar="DIR",
        help="where the sample repository and the run go (default: .orchestrator/demo)",
    )

    validate = command("validate")
    validate.add_argument(
        "files", nargs="*", type=Path, help="plan/result/aggregate JSON files or replay scripts"
    )
    _config(validate)
    _repo(validate, "the repository whose config to check")
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported with its own command's usage."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = _subparser(parser, args.command)
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    return parser  # pragma: no cover - every parser here has subcommands


#: ``plan`` options the skip path reads (as the plan job passes them, actions/steps.sh), each
#: spelled out in full with its value as the next argument; anything else goes to argparse.
_SKIP_PATH_OPTIONS = {
    "--event": "event",
    "--event-name": "event_name",
    "--out": "out",
    "--repo": "repo",
    "--workspace": "repo",
    "--config": "config",
    "--max-parallel": "max_parallel",
    "--confirm-permission": "confirm_permission",
}
_SKIP_PATH_FLAGS = ("--publish",)


def _skip_path_options(argv: Sequence[str]) -> dict[str, str] | None:
    """``plan``'s options when they are a plain run of the ones the skip path reads, else None."""
    if not argv or argv[0] != "plan":
        return None
    values: dict[str, str] = {}
    rest = list(argv[1:])
    while rest:
        option = rest.pop(0)
        if option in _SKIP_PATH_FLAGS and option not in values:
            values[option] = "true"  # --publish answers only a trigger that acts
            continue
        dest = _SKIP_PATH_OPTIONS.get(option)
        if dest is None or dest in values or not rest or not rest[0] or rest[0].startswith("-"):
            return None
        values[dest] = rest.pop(0)
    if not {"event", "event_name", "out"} <= values.keys():
        return None
    if values.get("confirm_permission", "none") not in PERMISSION_LEVELS:
        return None
    if "max_parallel" in values:
        try:
            if not 1 <= int(values["max_parallel"]) <= 256:
                return None
        except ValueError:
            return None
    return values


def _skip_path(argv: Sequence[str]) -> int | None:
    """``plan`` on an event that is certainly not ours, answered by ``trigger_gate``; else None."""
    values = _skip_path_options(argv)
    if values is None:
        return None
    from orchestrator.trigger_gate import skip_plan

    return skip_plan(
        event=values["event"],
        event_name=values["event_name"],
        out=values["out"],
        repo=values.get("repo", "."),
        config=values.get("config"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``orchestrator`` command."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    from orchestrator.errors import OrchestratorError

    try:
        skipped = _skip_path(arguments)
        if skipped is not None:
            return skipped
        args = parse(arguments)
        if getattr(args, "max_parallel", None) is not None and not 1 <= args.max_parallel <= 256:
            sys.stderr.write("orchestrator: error: --max-parallel: must be between 1 and 256\n")
            return 2
        from orchestrator import commands

        return commands.dispatch(args)
    except OrchestratorError as exc:
        return _fail(str(exc), exc.exit_code)
    except OSError as exc:
        # A path that is the wrong kind of thing (a file where a folder was asked for, …) is
        # bad input; a full disk or a lost device is a failure of the run.
        import errno

        where = exc.filename or ""
        reason = exc.strerror or str(exc)
        code = 1 if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS) else 2
        return _fail(f"{where}: {reason}" if where else reason, code)
    except KeyboardInterrupt:
        sys.stderr.write("orchestrator: interrupted\n")
        return 130


def _fail(message: str, code: int) -> int:
    from orchestrator.redact import default_redactor

    line = " ".join(default_redactor().redact(message).split())
    sys.stderr.write(f"orchestrator: error: {line}\n")
    return code


def env_path(name: str) -> Path | None:
    """A path from an environment variable, or None when unset or empty."""
    from pathlib import Path

    value = os.environ.get(name)
    return Path(value) if value else None


if __name__ == "__main__":
    raise SystemExit(main())
