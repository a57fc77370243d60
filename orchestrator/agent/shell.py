"""``run_command``: an agent's command, run in the process sandbox on the task's checkout.

Offered only when ``settings.yml`` → ``sandbox.run_command`` is on *and* the sandbox works on
this machine (``sandbox.Sandbox.probe``); where it cannot run, the tool is not offered and the
task's result says why — a command never runs unsandboxed. The command line is split like a
shell splits words (``shlex``), without shell features: pipes and redirections need an explicit
``sh -c '…'``. The exit code, the duration and the output (head and tail, size noted) go back to
the model and into the transcript; files the command changed flow back into the task's work.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from orchestrator.contracts import SandboxSettings
from orchestrator.sandbox import Sandbox, SandboxLimits, SandboxUnavailable, split_command

if TYPE_CHECKING:
    from orchestrator.agent.workspace import Workspace


def limits_of(settings: SandboxSettings, *, timeout_s: float | None = None) -> SandboxLimits:
    """The sandbox limits the settings ask for (``timeout_s`` overrides, e.g. for verify)."""
    return SandboxLimits(
        timeout_s=timeout_s or settings.timeout_s,
        memory_mb=settings.memory_mb,
        max_processes=settings.max_processes,
        output_bytes=settings.output_bytes,
        disk_mb=settings.disk_mb,
    )


class Shell:
    """The run_command backend of one task (or ``None`` behind it: not offered, and why)."""

    def __init__(
        self, sandbox: Sandbox | None, settings: SandboxSettings, reason: str = ""
    ) -> None:
        self.sandbox = sandbox
        self.settings = settings
        #: Why run_command is not offered although asked for ("" when offered or not asked).
        self.reason = reason

    @classmethod
    def for_settings(cls, settings: SandboxSettings) -> Shell:
        """A shell when ``run_command`` is asked for and the sandbox works; else one that is
        not offered (with the reason when it was asked for)."""
        if not settings.run_command:
            return cls(None, settings)
        probed = Sandbox.probe()
        if isinstance(probed, SandboxUnavailable):
            return cls(None, settings, f"run_command is not offered: {probed.reason}")
        return cls(probed, settings)

    @property
    def offers(self) -> bool:
        """Whether the agent gets the tool."""
        return self.sandbox is not None

    def allowed(self) -> str:
        """The allow-list, for the tool's description."""
        commands = self.settings.commands
        return "any program" if commands is None else ", ".join(commands) or "none"

    async def run(self, workspace: Workspace, command: str) -> tuple[str, bool]:
        """Run ``command`` in the task's checkout; the text for the model and whether it is a
        tool error (a refused command; a command that ran and failed is not)."""
        if self.sandbox is None:
            return "run_command is not enabled in this sandbox", True
        try:
            argv = split_command(command)
        except ValueError as exc:
            return f"run_command: {exc}", True
        allowed = self.settings.commands
        program = PurePosixPath(argv[0]).name
        if allowed is not None and program not in allowed:
            return f"run_command: {program} is not allowed (allowed: {self.allowed()})", True
        tree = await asyncio.to_thread(workspace.checkout)
        result = await self.sandbox.run(argv, cwd=tree, limits=limits_of(self.settings))
        notes = await asyncio.to_thread(workspace.sync_checkout)
        text = result.describe()
        if notes:
            listed = "\n".join(f"- {note}" for note in notes)
            text += f"\n\nNot kept from the command's changes:\n{listed}"
        return text, False
