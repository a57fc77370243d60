"""One attempt of a task on a vendor CLI: the same tree, sandbox, budgets and result as our loop.

The CLI runs headless in the task's tree on disk (``Workspace.checkout``: the plan's base plus
the earlier waves' work, with nothing of the user's checkout), inside the process sandbox of
``run_command`` (``sandbox.py``): only the tree and a private state folder are writable, the
environment is ours to choose (its key arrives out of every argv and file), the network reaches
its provider's API and nothing else (``egress.py``), and the wall clock is ``timeout_s``. Where
the sandbox cannot run, a CLI agent does not run at all: the attempt fails and the chain goes
on, as for any failed agent.

Its event stream goes to a file that is read while it runs: each event joins the transcript
(redacted like everything written) and the tally of turns, tokens and cost; when our limits
say the budget is spent, the sandbox is stopped. Afterwards the tree's changes flow back into
the workspace (``Workspace.sync_checkout``: protected paths and size limits hold), so the patch,
merge, verify, review and accounting treat the CLI's work exactly like our loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.agent.loop import LoopOutcome, LoopStatus, agent_error
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.agent_clis.claude import ClaudeCode
from orchestrator.agent_clis.codex import CodexCli
from orchestrator.agent_clis.driver import CliRequest, Driver, Launch, Tally
from orchestrator.agent_clis.gemini import GeminiCli
from orchestrator.agent_clis.install import Installed, find
from orchestrator.contracts import AgentSpec, Limits, SandboxSettings, Usage
from orchestrator.egress import Endpoint
from orchestrator.pricing import cost_usd
from orchestrator.sandbox import CommandResult, Sandbox, SandboxLimits, SandboxUnavailable

#: provider → its driver.
DRIVERS: dict[str, Driver] = {
    "claude-code": ClaudeCode(),
    "codex-cli": CodexCli(),
    "gemini-cli": GeminiCli(),
}
#: How often the stream file is read while the CLI runs.
POLL_S = 0.2
#: Events longer than this are cut in the transcript (a tool result holding a whole file).
EVENT_CHARS = 20_000
#: Folders for the CLI's state, most preferred first: not ``/tmp``, which Codex refuses for
#: its helper binaries (and the sandbox's own ``/tmp`` is a private tmpfs anyway).
STATE_ROOTS = ("/var/tmp",)  # noqa: S108 - a private mkdtemp folder is made inside


@dataclass
class CliAttempt:
    """One agent's attempt at a task on a vendor CLI.

    Attributes:
        agent: The agent's name.
        spec: Its settings.
        workspace: The task's tree (its changes are taken back into it).
        limits: The attempt's limits (``TaskBudget.limits_for``).
        sandbox: The sandbox settings (memory, processes, output, disk; ``run_command``).
        prompt: The task: the run's shared context, then the task's own prompt.
        rules: Our rules for agents (``prompts.agent_cli_rules``).
        transcript: Receives the CLI's events.
        spent_usd: The run's spend before this attempt, for ``run_max_usd``.
    """

    agent: str
    spec: AgentSpec
    workspace: Workspace
    limits: Limits
    sandbox: SandboxSettings
    prompt: str
    rules: str
    transcript: Transcript
    spent_usd: Callable[[], float] | None = None
    warnings: list[str] = field(default_factory=list)

    async def run(self) -> LoopOutcome:
        """Run the CLI once; how it ended (never raises for the CLI's own failures)."""
        driver = DRIVERS[self.spec.provider]
        probed = Sandbox.probe()
        if isinstance(probed, SandboxUnavailable):
            why = f"{self.spec.provider} runs only in the sandbox, which cannot run here"
            return self._failed(f"{why}: {probed.reason}")
        version = self.spec.version or driver.cli.version
        installed = await asyncio.to_thread(find, driver.cli, version)
        if installed is None:
            return self._failed(
                f"{driver.cli.package}@{version} is not installed (python -m"
                f" orchestrator.agent_clis.install {self.spec.provider}@{version},"
                f" or put {driver.cli.bin} on PATH)"
            )
        if installed.version and installed.version != version:
            self.warnings.append(
                f"{self.agent}: {driver.cli.bin} on PATH is {installed.version}, not {version}"
            )
        tree = await asyncio.to_thread(self.workspace.checkout)
        home = Path(tempfile.mkdtemp(prefix="orchestrator-cli-", dir=_state_root()))
        try:
            key = os.environ.get(self.spec.key_env) if self.spec.key_env else None
            request = CliRequest(
                self.agent, self.spec, tree, home, self.limits, self.sandbox.run_command, self.rules
            )
            launch = driver.launch(request, key)
            tally = driver.tally()
            result, stopped = await self._run_sandboxed(
                probed, driver, installed, launch, tree, home, tally
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)
        not_kept = await asyncio.to_thread(self.workspace.sync_checkout)
        self.warnings += [f"not kept from {self.agent}'s changes: {note}" for note in not_kept]
        return self._outcome(driver, tally, result, stopped)

    async def _run_sandboxed(
        self,
        sandbox: Sandbox,
        driver: Driver,
        installed: Installed,
        launch: Launch,
        tree: Path,
        home: Path,
        tally: Tally,
    ) -> tuple[CommandResult | None, str | None]:
        """Start the CLI and read its stream until it ends or a budget stops it."""
        for path, text in launch.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        prompt = home / "prompt.md"
        prompt.write_text(self.prompt, encoding="utf-8")
        stream = home / "stream.jsonl"
        endpoint = Endpoint.parse(launch.api_url)
        argv = ["/bin/sh", "-c", 'exec "$@" < "$0"', str(prompt), str(installed.binary)]
        argv += launch.args
        self.transcript.record(
            "cli_start",
            agent=self.agent,
            program=driver.cli.bin,
            version=installed.version,
            args=launch.args,
            api=launch.api_url,
        )
        run = asyncio.create_task(
            sandbox.run(
                argv,
                cwd=tree,
                limits=self._sandbox_limits(),
                env=launch.env,
                secret_env=launch.secrets,
                binds=_binds(installed),
                writable=[home],
                egress=[endpoint],
                stdout_path=stream,
            )
        )
        stopped = await self._watch(run, stream, tally)
        if stopped is not None:
            return None, stopped
        result = run.result()
        for refused in result.egress_refused:
            self.warnings.append(f"{self.agent}: network access refused to {refused}")
        return result, None

    async def _watch(
        self, run: asyncio.Task[CommandResult], stream: Path, tally: Tally
    ) -> str | None:
        """Feed the stream to the tally while ``run`` runs; stop it when a budget is spent."""
        reader = _LineReader(stream)
        while True:
            done, _ = await asyncio.wait({run}, timeout=POLL_S)
            for line in await asyncio.to_thread(reader.new_lines, final=bool(done)):
                event = tally.feed_line(line)
                self.transcript.record(
                    "cli_event", agent=self.agent, event=event or line[:EVENT_CHARS]
                )
            if done:
                return None
            reason = self._over_budget(tally)
            if reason:
                self.transcript.record("budget", agent=self.agent, reason=reason)
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                return reason

    def _over_budget(self, tally: Tally) -> str | None:
        """Why the CLI must stop now, by our accounting (``None``: it may go on)."""
        limits = self.limits
        if tally.turns > limits.max_turns:
            return f"max_turns budget reached: {tally.turns} turns used (limit {limits.max_turns})"
        total = tally.usage.total
        if limits.max_tokens is not None and total >= limits.max_tokens:
            return f"max_tokens budget reached: {total} tokens used (limit {limits.max_tokens})"
        cost = self._cost(tally)
        if limits.max_usd is not None and cost is not None and cost >= limits.max_usd:
            return f"max_usd budget reached: ${cost:.4f} spent (limit ${limits.max_usd:.4f})"
        if limits.run_max_usd is not None and self.spent_usd is not None:
            spent = self.spent_usd() + (cost or 0.0)
            if spent >= limits.run_max_usd:
                return (
                    f"run_max_usd budget reached: ${spent:.4f} spent by the run"
                    f" (limit ${limits.run_max_usd:.4f})"
                )
        return None

    def _cost(self, tally: Tally) -> float | None:
        """Our price for its tokens; else the cost the CLI computed itself; else unknown."""
        ours = cost_usd(self.spec, tally.usage)
        return ours if ours is not None else tally.reported_cost

    def _outcome(
        self, driver: Driver, tally: Tally, result: CommandResult | None, stopped: str | None
    ) -> LoopOutcome:
        status: LoopStatus = "succeeded"
        error: str | None = None
        if stopped is not None:
            status, error = "budget_exceeded", stopped
        elif result is not None and result.killed == "timeout":
            status = "failed"
            error = f"stopped after its time limit of {self.spec.timeout_s:g} s"
        elif tally.budget:
            status, error = "budget_exceeded", tally.budget
        elif result is not None and _stopped_on_turns(driver, result):
            status = "budget_exceeded"
            error = f"max_turns budget reached: {driver.cli.bin} stopped at {self.limits.max_turns}"
        elif tally.error:
            status, error = "failed", tally.error
        elif result is not None and not result.ok:
            status, error = "failed", f"{driver.cli.bin} {_ended(result)}"
        elif not tally.finished:
            status = "failed"
            error = f"{driver.cli.bin} ended without a final result" + (
                f" (last error: {tally.notice})" if tally.notice else ""
            )
        if status == "succeeded":
            # A CLI that reports its tokens only at the end (Codex, Gemini) cannot be stopped in
            # time: a budget it passed is still reported as spent.
            over = self._over_budget(tally)
            if over:
                status, error = "budget_exceeded", over
        cost = self._cost(tally)
        if cost is not None and cost_usd(self.spec, tally.usage) is None:
            self.warnings.append(
                f"{self.agent}: cost as {driver.cli.bin} reported it (list prices)"
            )
        self.transcript.record(
            "cli_end", agent=self.agent, status=status, error=error, turns=tally.turns
        )
        return LoopOutcome(
            status=status,
            summary=tally.summary,
            turns=tally.turns,
            calls=tally.turns,
            usage=tally.usage,
            cost_usd=cost,
            error=agent_error(self.agent, error) if error else None,
            warnings=[*self.warnings, *(f"{self.agent}: {e}" for e in tally.tool_errors[:5])],
        )

    def _failed(self, error: str) -> LoopOutcome:
        self.transcript.record("error", agent=self.agent, error=error)
        return LoopOutcome(
            status="failed",
            summary="",
            turns=0,
            calls=0,
            usage=Usage(),
            cost_usd=0.0,
            error=agent_error(self.agent, error),
            warnings=list(self.warnings),
        )

    def _sandbox_limits(self) -> SandboxLimits:
        settings = self.sandbox
        return SandboxLimits(
            timeout_s=self.spec.timeout_s,
            memory_mb=settings.memory_mb,
            max_processes=settings.max_processes,
            output_bytes=settings.output_bytes,
            disk_mb=settings.disk_mb,
            # JavaScript engines reserve far more address space than they use: the memory
            # limit is the cgroup's (docs/sandbox.md).
            address_space=False,
        )


class _LineReader:
    """The complete lines a growing file gained since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def new_lines(self, *, final: bool = False) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = b"" if final else lines.pop()
        return [line.decode("utf-8", "replace") for line in lines if line.strip()]


def _binds(installed: Installed) -> list[Path]:
    """What the CLI needs to see read-only: its packages, and Node for the JavaScript ones."""
    binds = [installed.root]
    node = shutil.which("node")
    if node:
        binds.append(Path(os.path.realpath(node)).parent)
    return binds


def _stopped_on_turns(driver: Driver, result: CommandResult) -> bool:
    """Whether the CLI exited with its own code for "turn limit reached"."""
    return driver.turn_limit_exit is not None and result.exit_code == driver.turn_limit_exit


def _ended(result: CommandResult) -> str:
    tail = result.output.strip().splitlines()[-1:] if result.output.strip() else []
    how = f"exited with code {result.exit_code}" if result.killed is None else result.describe()
    return how + (f": {tail[0][:300]}" if tail else "")


def _state_root() -> str | None:
    for root in STATE_ROOTS:
        if Path(root).is_dir() and os.access(root, os.W_OK):
            return root
    return None
