"""What every vendor CLI driver provides: how to launch the CLI, and how to read its stream.

A driver (``claude.py``, ``codex.py``, ``gemini.py``) knows one CLI's flags, environment,
configuration files and machine-readable output; ``runner.py`` does the rest the same way for
all of them (sandbox, network, time, budgets, the tree's changes). A driver runs no process and
touches no file: ``launch`` returns what to write and run, ``Tally.feed`` reads one event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.agent_clis.catalog import AgentCli
from orchestrator.contracts import AgentSpec, Limits, Usage


@dataclass(frozen=True)
class CliRequest:
    """What a driver needs to build one run of its CLI.

    Attributes:
        agent: The agent's name in ``agents.yml``.
        spec: The agent's settings (model, base URL, version, extra args).
        tree: The task's tree on disk: the CLI's working directory.
        home: A private, writable folder for the CLI's state and configuration files.
        limits: The attempt's limits (turns, tokens, dollars).
        commands: Whether the CLI may run shell commands (``sandbox.run_command``).
        rules: Our rules for agents, appended to the CLI's system prompt where it can take them.
    """

    agent: str
    spec: AgentSpec
    tree: Path
    home: Path
    limits: Limits
    commands: bool
    rules: str


@dataclass(frozen=True)
class Launch:
    """One run of a CLI: its arguments (after the program), environment and files.

    Attributes:
        args: The arguments; the prompt is read from standard input.
        env: Plain variables (never a secret: the sandbox refuses secret-looking names here).
        secrets: The API key under the name the CLI reads, passed out of every argv and file.
        files: Files to write before the start (configuration), absolute paths under ``home``.
        api_url: The provider endpoint the CLI talks to: the only network it may reach.
    """

    args: list[str]
    env: dict[str, str]
    secrets: dict[str, str]
    files: dict[Path, str]
    api_url: str


@dataclass
class Tally:
    """What a CLI's event stream said so far; read event by event while it runs.

    ``turns`` counts model responses as well as the CLI lets us see them (docs/providers/
    agent-clis.md says how each CLI is counted); ``usage`` is the tokens it reported;
    ``reported_cost`` a cost the CLI computed itself (only Claude Code does).
    """

    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    reported_cost: float | None = None
    summary: str = ""
    error: str | None = None
    finished: bool = False
    #: Set when the CLI stopped itself on one of our limits (its own turn or dollar limit).
    budget: str | None = None
    #: The last transient error the CLI printed (a retry, a lost connection).
    notice: str | None = None
    tool_errors: list[str] = field(default_factory=list)
    events: int = 0

    def feed_line(self, line: str) -> dict[str, Any] | None:
        """Read one line of the stream; the event it held (``None``: not a JSON object)."""
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        self.events += 1
        self.feed(event)
        return event

    def feed(self, event: dict[str, Any]) -> None:
        """Take one event into the tally (each CLI reads its own kinds)."""
        raise NotImplementedError


class Driver(Protocol):
    """One vendor CLI."""

    cli: AgentCli
    #: The provider's API when ``base_url`` is not set.
    default_api: str
    #: The exit code the CLI uses when its own turn limit stopped it (``None``: none).
    turn_limit_exit: int | None

    def launch(self, request: CliRequest, key: str | None) -> Launch:
        """The arguments, environment and files of one run (``key``: the API key, if any)."""
        ...

    def tally(self) -> Tally:
        """A fresh reader of this CLI's stream."""
        ...


def count(value: Any) -> int:
    """A token count from a CLI's JSON: a non-negative int, anything else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def text_of(value: Any) -> str:
    """A string from a CLI's JSON (anything else is ``""``)."""
    return value if isinstance(value, str) else ""
