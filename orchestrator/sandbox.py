"""Run one command in a bubblewrap sandbox: no network, no secrets, only its tree writable.

Two callers use this module: the agent's ``run_command`` tool and the ``verify`` step that runs
the repository's test command on a merged tree. Both hand over a command and a tree (a git
worktree the orchestrator made); both get back a :class:`CommandResult` whose ``describe()`` is
the text for the model and the transcript.

What a command gets (docs/sandbox.md has the exact argv and the reasons):

* the host file system read-only (``--ro-bind / /``) with the tree bound writable on top; a
  private, size-limited ``/tmp`` (the ``HOME`` is an empty folder in it); every home folder of
  the invoking user, ``$RUNNER_TEMP`` and a few host secret files hidden by empty read-only
  mounts; the tree's ``.git`` read-only, because the orchestrator runs git on the tree after the
  command (a written ``.git/config`` or hook would run outside the sandbox);
* its own user, PID, network, IPC, UTS and cgroup namespaces: no network at all (only a
  loopback of its own), no capabilities, no nested user namespaces, a new session;
* an environment of ``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and what the caller passes, never
  the orchestrator's (API keys, ``GITHUB_TOKEN``, ``ACTIONS_*`` stay outside);
* limits (:class:`SandboxLimits`): wall clock, output size, processes, memory, size of one file,
  total bytes written to the tree, size of ``/tmp``. Whatever is exceeded kills the whole
  process tree; a limit that cannot be enforced on this machine is named in
  :attr:`Sandbox.notes` and in every result, never silently dropped.

There is no unsandboxed fallback: :meth:`Sandbox.probe` returns a :class:`SandboxUnavailable`
with a one-line reason when bubblewrap cannot run here, and then no command runs at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import json
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from orchestrator.egress import SANDBOX_EGRESS, Egress, Endpoint, Resolver, launcher_config
from orchestrator.redact import is_secret_name

__all__ = [
    "CommandResult",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxUnavailable",
    "split_command",
]

#: ``off`` makes :meth:`Sandbox.probe` report the sandbox unavailable (tests of that path, and
#: operators who want ``run_command`` gone); empty or ``on`` probes normally.
ENV_SWITCH = "ORCHESTRATOR_SANDBOX"
#: Another bubblewrap binary than the ``bwrap`` on ``PATH``.
ENV_BWRAP = "ORCHESTRATOR_BWRAP"
#: ``off`` stops the sandbox from creating cgroups (the limits that need them are then reported
#: as not enforced).
ENV_CGROUP = "ORCHESTRATOR_SANDBOX_CGROUP"

PROBE_TIMEOUT_S = 10.0
#: A command printing more than ``output_bytes`` times this is killed: keeping head and tail is
#: cheap, but a command printing gigabytes would still burn its whole time limit.
OUTPUT_KILL_FACTOR = 100
#: How often the free space of the tree's file system is polled for the total disk cap.
DISK_POLL_S = 0.1
#: How long clean-up waits for a killed sandbox to disappear before giving up on it.
REAP_TIMEOUT_S = 5.0

#: The HOME inside the sandbox: an empty folder in the private ``/tmp`` (it shares its size cap).
SANDBOX_HOME = "/tmp/home"  # noqa: S108 - inside the private tmpfs
#: Credential stores under a home folder, hidden when they would be visible (the home itself is
#: hidden as a whole; these matter when part of it is bound back).
CREDENTIAL_PATHS = (
    ".ssh",
    ".netrc",
    ".git-credentials",
    ".config/gh",
    ".aws",
    ".config/gcloud",
    ".azure",
    ".docker",
    ".kube",
    ".gnupg",
)
#: Host files readable by their owner: when the orchestrator runs as root, the sandboxed
#: process is still host uid 0 (without capabilities, but the owner of these files).
HOST_SECRET_PATHS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh",
    "/etc/ssl/private",
    "/run/secrets",
    "/var/run/secrets",
)
#: Host folders replaced by an empty read-only tmpfs besides the homes. /run holds UNIX sockets
#: (docker.sock, containerd, the D-Bus system bus, systemd's private socket): a read-only mount
#: does not stop connect(), and the network namespace does not cover file-system sockets, so a
#: visible docker.sock would be a way out (the runner user is in the docker group).
HIDDEN_HOST_FOLDERS = ("/run", "/var/run")
_CGROUP_PREFIX = "orchestrator-sandbox-"
_CGROUP_JOIN_FAILED = "sandbox: cannot join the cgroup"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MIB = 1024 * 1024
_DEV_SHM = "/dev/shm"  # noqa: S108 - a private tmpfs in the sandbox, sized like /tmp
#: Where the launcher (``sandbox_launcher.py``, bound read-only) is inside the sandbox.
SANDBOX_LAUNCHER = "/tmp/.orchestrator/launcher.py"  # noqa: S108 - inside the private tmpfs
#: The launcher's config must fit a pipe's default buffer (64 KiB on Linux).
_PIPE_BYTES = 65536
_MEMORY_NOTE = "memory_mb is enforced per process (RLIMIT_AS)"


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SandboxLimits:
    """What one command may use; exceeding any limit kills the whole process tree.

    Attributes:
        timeout_s: Wall clock, seconds.
        memory_mb: Address space of each process (``RLIMIT_AS``) and, where a cgroup is
            available, the memory of all of the command's processes together.
        max_processes: Processes and threads of the command (cgroup ``pids.max`` as root,
            ``RLIMIT_NPROC`` counted in the sandbox's own user namespace otherwise).
        output_bytes: Output kept (stdout and stderr together): the first and the last half.
            A command printing more than ``OUTPUT_KILL_FACTOR`` times this is killed.
        file_mb: Largest file a process may write (``RLIMIT_FSIZE``).
        disk_mb: Bytes the command may add to its tree in total. Polled every
            ``DISK_POLL_S`` seconds, so a fast writer can overshoot by what it writes in one
            poll; files that existed before count only when the command changed them.
        tmp_mb: Size of the private ``/tmp`` (and ``/dev/shm``), which holds ``HOME`` too.
        address_space: Whether ``memory_mb`` is also the address space of each process
            (``RLIMIT_AS``). False for runtimes that reserve far more than they use (Node's
            WebAssembly, Bun, the JVM): memory is then capped by the cgroup only, and where
            there is none, every result says the memory limit is not enforced.
    """

    timeout_s: float = 120.0
    memory_mb: int = 4096
    max_processes: int = 256
    output_bytes: int = 64_000
    file_mb: int = 256
    disk_mb: int = 1024
    tmp_mb: int = 256
    address_space: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.address_space, bool):
            raise ValueError(
                f"sandbox limit address_space must be a bool, not {self.address_space!r}"
            )
        for name in (
            "timeout_s",
            "memory_mb",
            "max_processes",
            "output_bytes",
            "file_mb",
            "disk_mb",
            "tmp_mb",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"sandbox limit {name} must be a positive number, not {value!r}")


@dataclass(frozen=True)
class CommandResult:
    """What one sandboxed command did.

    Attributes:
        argv: The command as run (inside the sandbox).
        exit_code: Its exit status (128 + N when signal N killed it), or ``None`` when the
            sandbox killed it for a limit.
        duration_s: Wall-clock seconds, sandbox start-up included.
        output: stdout and stderr interleaved, decoded as UTF-8 (bad bytes replaced); when
            ``truncated``, the head and the tail with a marker naming the bytes left out.
        output_bytes: How many bytes the command printed in all (up to the kill).
        truncated: Whether bytes were left out of ``output``.
        killed: ``"timeout"``, ``"output"`` or ``"disk"`` when the sandbox killed the command.
        notes: One line each: why it was killed, and limits not enforced on this machine.
        egress_refused: ``host:port`` of each network request refused because it was not an
            allowed endpoint (``egress`` of :meth:`Sandbox.run`), in order.
    """

    argv: list[str]
    exit_code: int | None
    duration_s: float
    output: str
    output_bytes: int
    truncated: bool
    killed: str | None
    notes: tuple[str, ...] = ()
    egress_refused: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the command ran to the end and exited 0."""
        return self.killed is None and self.exit_code == 0

    def describe(self) -> str:
        """The text handed back to the model and written to the transcript."""
        if self.killed is not None:
            status = f"killed ({self.killed})"
        elif self.exit_code is None:
            status = "no exit code"
        else:
            status = f"exit code {self.exit_code}{_exit_hint(self.exit_code)}"
        lines = [f"$ {shlex.join(self.argv)}", f"{status} after {self.duration_s:.2f} s"]
        lines += [f"note: {note}" for note in self.notes]
        if self.truncated:
            lines.append(
                f"output: {self.output_bytes} bytes in all, truncated (the first and the last"
                " part are kept)"
            )
        elif self.output_bytes:
            lines.append(f"output: {self.output_bytes} bytes")
        else:
            lines.append("output: none")
        text = "\n".join(lines)
        return f"{text}\n{self.output}" if self.output else text


@dataclass(frozen=True)
class SandboxUnavailable:
    """Why commands cannot be sandboxed here; the caller then offers no command tool at all.

    Attributes:
        reason: One line: what failed and, when known, the fix.
    """

    reason: str


class SandboxError(RuntimeError):
    """The sandbox itself failed while starting a command (not the command)."""


def split_command(command: str, *, allowed: Sequence[str] | None = None) -> list[str]:
    """Split a command line into argv like a shell would, without any shell features.

    Quotes and backslashes work as in ``sh``; pipes, redirections, ``&&``, globs and variables
    do not (they reach the program as plain words); for those the command must be
    ``sh -c '…'`` explicitly.

    Args:
        command: The command line, e.g. from the model.
        allowed: Program names the first word may have (compared by basename, so
            ``/usr/bin/git`` is ``git``); ``None`` allows any. Not a security boundary — the
            sandbox is — only a policy on what the agent is meant to run.

    Returns:
        The argv, at least one word.

    Raises:
        ValueError: One line the model can act on: an unbalanced quote, an empty command, a
            NUL byte, or a program not in ``allowed``.
    """
    if "\0" in command:
        raise ValueError("the command contains a NUL byte")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"cannot split the command: {str(exc).lower()}") from None
    if not argv:
        raise ValueError("the command is empty")
    if allowed is not None:
        program = PurePosixPath(argv[0]).name
        if program not in allowed:
            names = ", ".join(sorted(set(allowed))) or "none"
            raise ValueError(f"{program!r} is not an allowed command (allowed: {names})")
    return argv


# --------------------------------------------------------------------------- the sandbox


@dataclass(frozen=True)
class _Cgroups:
    """Where this process may create cgroups: one parent per hierarchy (v1) or one (v2)."""

    version: int
    pids: Path | None
    memory: Path | None


class Sandbox:
    """A bubblewrap that works on this machine; get one from :meth:`probe`.

    Attributes:
        bwrap: Path of the bubblewrap binary.
        version: ``bwrap --version`` output (``bubblewrap 0.8.0``).
        notes: Limits this machine cannot enforce as asked, one line each (also in every
            :class:`CommandResult`).
    """

    _probes: ClassVar[dict[tuple[str, ...], Sandbox | SandboxUnavailable]] = {}
    _probe_lock: ClassVar[threading.Lock] = threading.Lock()
    _serial: ClassVar[itertools.count[int]] = itertools.count()

    def __init__(
        self,
        *,
        bwrap: str,
        prlimit: str,
        version: str,
        cgroups: _Cgroups | None,
        notes: Sequence[str] = (),
    ) -> None:
        self.bwrap = bwrap
        self.version = version
        self.notes = tuple(notes)
        self._prlimit = prlimit
        self._cgroups = cgroups

    def __repr__(self) -> str:
        return f"Sandbox({self.describe()})"

    def describe(self) -> str:
        """One line: the binary and how processes and memory are capped."""
        if self._cgroups is None:
            caps = "rlimits only (no cgroup)"
        else:
            parts = [n for n in ("pids", "memory") if getattr(self._cgroups, n) is not None]
            caps = f"rlimits and cgroup v{self._cgroups.version} ({', '.join(parts)})"
        return f"{self.version} at {self.bwrap}, {caps}"

    # ------------------------------------------------------------------ probe

    @classmethod
    def probe(cls, *, refresh: bool = False) -> Sandbox | SandboxUnavailable:
        """Whether commands can be sandboxed here: runs the exact sandbox argv with /bin/true.

        Cached per process (keyed by the ``ORCHESTRATOR_SANDBOX*`` variables and the uid).
        Blocks for the probe (tens of milliseconds, at most ``PROBE_TIMEOUT_S``): call it once
        at start-up.

        Args:
            refresh: Probe again even when a result is cached.

        Returns:
            A usable :class:`Sandbox`, or a :class:`SandboxUnavailable` with a one-line reason
            (bwrap missing, Ubuntu's AppArmor user-namespace restriction with the fix, …).
        """
        key = (
            os.environ.get(ENV_SWITCH, ""),
            os.environ.get(ENV_BWRAP, ""),
            os.environ.get(ENV_CGROUP, ""),
            str(os.geteuid()),
        )
        with cls._probe_lock:
            if refresh or key not in cls._probes:
                cls._probes[key] = cls._probe()
            return cls._probes[key]

    @classmethod
    def _probe(cls) -> Sandbox | SandboxUnavailable:
        switch = os.environ.get(ENV_SWITCH, "").strip().lower()
        if switch in ("off", "0", "false", "no"):
            return SandboxUnavailable(f"the sandbox is switched off ({ENV_SWITCH}={switch})")
        if switch not in ("", "on", "1", "true", "yes"):
            return SandboxUnavailable(f"{ENV_SWITCH}={switch!r} is not one of: on, off")
        if not sys.platform.startswith("linux"):
            return SandboxUnavailable(f"the bubblewrap sandbox needs Linux, not {sys.platform}")
        bwrap = _find_bwrap()
        if isinstance(bwrap, SandboxUnavailable):
            return bwrap
        prlimit = shutil.which("prlimit", path=_host_path())
        if prlimit is None:
            return SandboxUnavailable(
                "prlimit is not installed (it sets the memory, file and process limits):"
                " apt-get install util-linux"
            )
        version = _bwrap_version(bwrap)
        notes: list[str] = []
        cgroups: _Cgroups | None = None
        if os.environ.get(ENV_CGROUP, "").strip().lower() in ("off", "0", "false", "no"):
            why = f"cgroups are switched off ({ENV_CGROUP}=off)"
        elif os.geteuid() != 0:
            # Non-root: cgroupfs is not ours to write (a delegated subtree or systemd-run would
            # be), and RLIMIT_NPROC in the sandbox's own user namespace caps processes anyway.
            why = "cgroups need root here"
        else:
            cgroups, why = _detect_cgroups()
        sandbox = cls(bwrap=bwrap, prlimit=prlimit, version=version, cgroups=cgroups)
        rc, stderr = sandbox._probe_run()
        if rc != 0 and cgroups is not None and _CGROUP_JOIN_FAILED in stderr:
            why = stderr.strip().splitlines()[-1]
            cgroups = None
            sandbox = cls(bwrap=bwrap, prlimit=prlimit, version=version, cgroups=None)
            rc, stderr = sandbox._probe_run()
        if rc != 0:
            return SandboxUnavailable(_classify_failure(bwrap, version, rc, stderr))
        if os.geteuid() == 0 and (cgroups is None or cgroups.pids is None):
            notes.append(
                "max_processes is not enforced: as root RLIMIT_NPROC does not apply, and no"
                f" cgroup pids controller is usable ({why})"
            )
        if cgroups is None or cgroups.memory is None:
            notes.append(
                f"{_MEMORY_NOTE}, not for all processes together:"
                f" no cgroup memory controller ({why})"
            )
        return cls(bwrap=bwrap, prlimit=prlimit, version=version, cgroups=cgroups, notes=notes)

    def _probe_run(self) -> tuple[int, str]:
        """Run /bin/true with the exact argv of :meth:`run`; (exit code, stderr)."""
        scratch = Path(tempfile.mkdtemp(prefix=f"{_CGROUP_PREFIX}{os.getpid()}-probe-"))
        cgroup: _Cgroup | None = None
        info_r: int | None = None
        try:
            tree = scratch / "tree"
            tree.mkdir()
            empty = scratch / "empty"
            empty.touch(mode=0o444)
            limits = SandboxLimits()
            if self._cgroups is not None:
                _remove_stale_cgroups(self._cgroups)
                try:
                    cgroup = _Cgroup.create(self._cgroups, limits, next(self._serial))
                except OSError as exc:
                    return 1, f"{_CGROUP_JOIN_FAILED}: {exc}"
            info_r, info_w = os.pipe()
            argv = self._command_line(
                ["/bin/true"],
                tree=tree,
                limits=limits,
                env={},
                empty=empty,
                info_fd=info_w,
                cgroup=cgroup,
            )
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=_outer_env(),
                    cwd="/",
                    start_new_session=True,
                    pass_fds=(info_w,),
                )
            except OSError as exc:
                return 127, f"cannot start {self.bwrap}: {exc.strerror or exc}"
            finally:
                os.close(info_w)
            try:
                _, err = proc.communicate(timeout=PROBE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid)
                proc.communicate()
                return -1, f"did not finish /bin/true within {PROBE_TIMEOUT_S:g} s"
            return proc.returncode, err.decode("utf-8", "replace")
        finally:
            if info_r is not None:
                os.close(info_r)
            if cgroup is not None:
                cgroup.remove_now()
            shutil.rmtree(scratch, ignore_errors=True)

    # ------------------------------------------------------------------ run

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        limits: SandboxLimits,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        binds: Sequence[Path] = (),
        writable: Sequence[Path] = (),
        egress: Sequence[Endpoint] = (),
        resolve: Resolver | None = None,
        stdout_path: Path | None = None,
    ) -> CommandResult:
        """Run ``argv`` in the sandbox with ``cwd`` as its writable tree.

        Never blocks the event loop on the command: pipes are read by asyncio, the disk check
        walks the tree in a thread. Cancelling the awaiting task kills the sandbox; when this
        returns or raises, no process of the command, cgroup, network connection or temporary
        file is left.

        Args:
            argv: The program and its arguments (see :func:`split_command`); looked up on the
                sandbox's ``PATH``.
            cwd: The tree: an existing folder, bound read-write at the same path; the
                command starts there. Its ``.git`` (if any) is read-only.
            limits: What the command may use.
            env: Extra environment variables (on top of ``PATH``, ``HOME``, ``TMPDIR`` and
                ``LANG``, and of the proxy variables with ``egress``, which they may override).
                Secret-looking names are refused.
            secret_env: Variables the command gets that never appear in an argv or a file
                (an API key): handed to the in-sandbox launcher through an inherited pipe.
            binds: Host files or folders visible read-only at the same (resolved) path, even
                under a hidden home or ``$RUNNER_TEMP`` (a CLI's install folder).
            writable: Existing host folders bound read-write at the same (resolved) path (a
                CLI's state folder, its ``HOME``).
            egress: The only network endpoints the command may reach (docs/sandbox.md,
                "Network for agent CLIs"); empty: no network at all.
            resolve: Where the host connects for an endpoint, ``(host, port) -> (address,
                port)``; by default the host's own DNS (tests map fake host names).
            stdout_path: A host file (created or truncated, mode 0600) that receives the
                command's stdout; ``output`` then holds stderr only. Bounded by ``file_mb``.

        Returns:
            The exit code, duration, capped output, which limit (if any) killed it, and the
            endpoints refused.

        Raises:
            ValueError: Empty ``argv``, a bad ``cwd``, a refused variable or folder.
            SandboxError: The sandbox could not be set up (a cgroup, bwrap vanished).
        """
        command = _check_argv(argv)
        tree = _check_tree(cwd)
        extra = _check_env(env)
        secrets = _check_secret_env(secret_env, extra)
        ro = [_check_bind(path, "binds") for path in binds]
        rw = [_check_bind(path, "writable", folder=True) for path in writable]
        endpoints = tuple(egress)
        for endpoint in endpoints:
            if not isinstance(endpoint, Endpoint):
                raise ValueError(f"egress takes Endpoint values, not {endpoint!r}")
        launch = bool(secrets or endpoints)
        started = time.monotonic()
        out_fd = _open_stdout(stdout_path) if stdout_path is not None else None
        gate = Egress(endpoints, resolve=resolve) if endpoints else None
        try:
            if gate is not None:
                await gate.__aenter__()
                extra = {**gate.sandbox_env(), **extra}
            extras = _Extras(
                binds=tuple(ro),
                writable=tuple(rw),
                egress=str(gate.folder) if gate is not None and gate.folder else None,
                config=launcher_config(secrets, gate) if launch else None,
                stdout_fd=out_fd,
            )
            killed, capture, returncode = await self._run_job(command, tree, limits, extra, extras)
        finally:
            if out_fd is not None:
                os.close(out_fd)
            if gate is not None:
                await asyncio.shield(gate.aclose())
        return CommandResult(
            argv=command,
            exit_code=None if killed else returncode,
            duration_s=time.monotonic() - started,
            output=capture.text()[0],
            output_bytes=capture.total,
            truncated=capture.text()[1],
            killed=killed,
            notes=tuple(self._notes(killed, limits, gate)),
            egress_refused=tuple(gate.refused) if gate is not None else (),
        )

    def _notes(self, killed: str | None, limits: SandboxLimits, gate: Egress | None) -> list[str]:
        """The result's notes: why it was killed, limits not enforced, endpoints refused."""
        notes = list(self.notes)
        if not limits.address_space and (self._cgroups is None or self._cgroups.memory is None):
            notes = [n for n in notes if not n.startswith(_MEMORY_NOTE)]
            notes.append(
                "memory limit not enforced: address_space is off (no RLIMIT_AS) and no cgroup"
                " memory controller is usable"
            )
        if killed == "timeout":
            notes.insert(0, f"stopped: the time limit of {limits.timeout_s:g} s was reached")
        elif killed == "output":
            notes.insert(
                0,
                "stopped: the command printed more than"
                f" {limits.output_bytes * OUTPUT_KILL_FACTOR} bytes",
            )
        elif killed == "disk":
            notes.insert(0, f"stopped: the command wrote more than {limits.disk_mb} MB")
        if gate is not None and gate.refused:
            refused = ", ".join(dict.fromkeys(gate.refused))
            notes.append(f"network refused (not an allowed endpoint): {refused}")
        return notes

    async def _run_job(
        self,
        command: list[str],
        tree: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
        extras: _Extras,
    ) -> tuple[str | None, _Capture, int | None]:
        """Start bwrap, supervise it, clean up: (killed, capture, exit code)."""
        scratch = Path(tempfile.mkdtemp(prefix=f"{_CGROUP_PREFIX}{os.getpid()}-"))
        job = _Job(scratch=scratch)
        fds: list[int] = []
        try:
            empty = scratch / "empty"
            empty.touch(mode=0o444)
            # Files whose inode changed after this instant count against disk_mb; taking the
            # time from a file uses the file systems' own clock (coarser than time.time()).
            since_ns = empty.stat().st_ctime_ns
            if self._cgroups is not None:
                try:
                    job.cgroup = _Cgroup.create(self._cgroups, limits, next(self._serial))
                except OSError as exc:
                    raise SandboxError(f"cannot create the sandbox's cgroup: {exc}") from exc
            job.info_r, info_w = os.pipe()
            fds.append(info_w)
            os.set_blocking(job.info_r, False)
            config_fd = None
            if extras.config is not None:
                config_fd = _config_pipe(extras.config)
                fds.append(config_fd)
            full = self._command_line(
                command,
                tree=tree,
                limits=limits,
                env=env,
                empty=empty,
                info_fd=info_w,
                cgroup=job.cgroup,
                extras=extras,
                config_fd=config_fd,
            )
            try:
                job.proc = await asyncio.create_subprocess_exec(
                    *full,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if extras.stdout_fd is None else extras.stdout_fd,
                    stderr=subprocess.STDOUT if extras.stdout_fd is None else subprocess.PIPE,
                    env=_outer_env(),
                    cwd="/",
                    # Its own process group, so a kill reaches bwrap and nothing of ours.
                    start_new_session=True,
                    pass_fds=tuple(fds),
                )
            except OSError as exc:
                raise SandboxError(f"cannot start {self.bwrap}: {exc}") from exc
            finally:
                for fd in fds:
                    os.close(fd)
                fds.clear()
            job.watch_info()
            killed, capture = await self._supervise(job, tree, limits, since_ns)
        finally:
            for fd in fds:
                os.close(fd)
            # Shielded: a second cancellation must not leave the kill half done. If it comes,
            # the clean-up still finishes in the background.
            await asyncio.shield(job.cleanup())
        assert job.proc is not None
        return killed, capture, job.proc.returncode

    async def _supervise(
        self, job: _Job, tree: Path, limits: SandboxLimits, since_ns: int
    ) -> tuple[str | None, _Capture]:
        """Wait for the command to end or for a limit; kill on a limit. (killed, output)."""
        proc = job.proc
        assert proc is not None
        # stdout and stderr on one pipe, or stderr alone when stdout goes to a file.
        stream = proc.stdout or proc.stderr
        assert stream is not None
        capture = _Capture(limits.output_bytes)
        over = asyncio.Event()
        job.pump = asyncio.create_task(
            _pump(stream, capture, limits.output_bytes * OUTPUT_KILL_FACTOR, over)
        )
        job.tasks.append(job.pump)
        exited = asyncio.create_task(proc.wait())
        overflow = asyncio.create_task(over.wait())
        disk = asyncio.create_task(
            _watch_disk(tree, limits.disk_mb * _MIB, since_ns, job.stop_walk)
        )
        job.tasks += [exited, overflow, disk]
        deadline = asyncio.get_running_loop().time() + limits.timeout_s
        killed: str | None = None
        pending: set[asyncio.Task[Any]] = {job.pump, exited, overflow, disk}
        while killed is None and not (exited.done() and job.pump.done()):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                killed = "timeout"
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if overflow in done:
                killed = "output"
            elif disk in done:
                disk.result()  # re-raise an error of the watcher itself
                killed = "disk"
        if killed is not None:
            job.kill()
        # After the kill every writer of the pipe is gone: read the rest for the tail.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(job.pump), REAP_TIMEOUT_S)
        return killed, capture

    # ------------------------------------------------------------------ argv

    def _command_line(
        self,
        command: Sequence[str],
        *,
        tree: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
        empty: Path,
        info_fd: int | None,
        cgroup: _Cgroup | None,
        extras: _Extras | None = None,
        config_fd: int | None = None,
    ) -> list[str]:
        """The full argv: [sh cgroup-join] bwrap <mounts> <namespaces> <env> -- prlimit …
        [launcher] cmd."""
        tmp_bytes = str(limits.tmp_mb * _MIB)
        argv: list[str] = []
        if cgroup is not None:
            # Join the cgroup before bwrap starts, so every process it forks is counted; a
            # preexec_fn would do the same but is unsafe in a process with threads.
            argv += [
                "/bin/sh",
                "-c",
                'while [ "$1" != -- ]; do echo $$ > "$1" ||'
                f' {{ echo "{_CGROUP_JOIN_FAILED} $1" >&2; exit 125; }}; shift; done;'
                ' shift; exec "$@"',
                "sandbox",
                *(str(f) for f in cgroup.procs_files()),
                "--",
            ]
        folders = _program_folders(command)
        argv += [self.bwrap, *_mount_args(tree, tmp_bytes, empty, folders, extras)]
        argv += [
            "--chdir", str(tree),
            # user, ipc, pid, net, uts and cgroup namespaces: no network but a private loopback.
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--hostname", "sandbox",
            # The whole tree dies with bwrap (PID namespace + PDEATHSIG), so killing bwrap's
            # process group is enough; --new-session keeps it off our terminal.
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--clearenv",
        ]  # fmt: skip
        base = {
            "PATH": _sandbox_path(),
            "HOME": SANDBOX_HOME,
            "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's private tmpfs
            "LANG": "C.UTF-8",
        }
        for name, value in {**base, **env}.items():
            argv += ["--setenv", name, value]
        if info_fd is not None:
            argv += ["--info-fd", str(info_fd)]
        argv += [
            "--",
            self._prlimit,
            # RLIMIT_NPROC counts in the sandbox's own user namespace (kernel ≥ 5.14), so one
            # sandbox cannot starve another of the same uid; +1 for bwrap's init.
            f"--nproc={limits.max_processes + 1}",
            *([f"--as={limits.memory_mb * _MIB}"] if limits.address_space else []),
            f"--fsize={limits.file_mb * _MIB}",
            # A core dump would land in the tree.
            "--core=0",
            "--",
        ]
        if config_fd is not None:
            # -I -S: nothing from the environment, the tree or site-packages runs before it.
            argv += [sys.executable, "-I", "-S", SANDBOX_LAUNCHER, str(config_fd), "--"]
        return [*argv, *command]


# --------------------------------------------------------------------------- one running job


@dataclass(frozen=True)
class _Extras:
    """What a run adds to the plain sandbox (all empty: the argv is exactly the plain one)."""

    binds: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    #: The host folder of the egress sockets, bound read-only at ``SANDBOX_EGRESS``.
    egress: str | None = None
    #: The launcher's JSON config; None: the command runs without the launcher.
    config: bytes | None = None
    stdout_fd: int | None = None


@dataclass
class _Job:
    """Everything one ``run`` must release, whatever happens."""

    scratch: Path
    proc: asyncio.subprocess.Process | None = None
    info_r: int | None = None
    #: A pidfd of bwrap's init in the sandbox, opened as soon as bwrap names it (while it
    #: certainly lives, so the pid cannot have been reused by then).
    init_pidfd: int | None = None
    init_late: bool = False
    reading_info: bool = False
    cgroup: _Cgroup | None = None
    pump: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stop_walk: threading.Event = field(default_factory=threading.Event)

    def watch_info(self) -> None:
        """Read bwrap's ``--info-fd`` JSON as soon as it arrives, without blocking the loop."""
        if self.info_r is None:
            return
        try:
            asyncio.get_running_loop().add_reader(self.info_r, self.take_info)
            self.reading_info = True
        except NotImplementedError:  # an event loop without add_reader: read it at the end
            pass

    def take_info(self, *, late: bool = False) -> None:
        """Open a pidfd on bwrap's init from the ``--info-fd`` JSON (``child-pid``)."""
        if self.info_r is None or self.init_pidfd is not None:
            return
        try:
            data = os.read(self.info_r, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.stop_info()
        pid = _parse_child_pid(data)
        if pid is not None:
            with contextlib.suppress(OSError):
                self.init_pidfd = os.pidfd_open(pid)
                self.init_late = late

    def stop_info(self) -> None:
        if self.reading_info and self.info_r is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self.info_r)
            self.reading_info = False

    def kill(self) -> None:
        """SIGKILL bwrap's process group and bwrap's init in the sandbox (if still running)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        _killpg(self.proc.pid)
        if self.init_pidfd is not None and not self.init_late:
            # Killing bwrap kills its init by PDEATHSIG (--die-with-parent); killing the init
            # directly does not depend on that, and the kernel then empties the namespace.
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)

    async def cleanup(self) -> None:
        """Kill, reap, wait for the PID namespace to empty, remove the cgroup and files."""
        try:
            self.stop_walk.set()
            self.take_info(late=True)
            self.stop_info()
            if self.proc is not None:
                self.kill()
                await self.proc.wait()
            if self.init_pidfd is not None:
                # The kernel kills every process of a PID namespace before its init counts as
                # exited: once it has, the command's whole tree is gone (double-forked daemons
                # included).
                await _wait_pidfd(self.init_pidfd, REAP_TIMEOUT_S)
            if self.pump is not None and not self.pump.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.pump), REAP_TIMEOUT_S)
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.cgroup is not None:
                await self.cgroup.remove()
        finally:
            self.stop_info()
            for fd in (self.info_r, self.init_pidfd):
                if fd is not None:
                    os.close(fd)
            self.info_r = self.init_pidfd = None
            shutil.rmtree(self.scratch, ignore_errors=True)


class _Capture:
    """The head and the tail of a stream, and its total size."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap - cap // 2
        self.tail_cap = cap // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_cap:
            self.tail += chunk
            if len(self.tail) > self.tail_cap:
                del self.tail[: len(self.tail) - self.tail_cap]

    def text(self) -> tuple[str, bool]:
        """(decoded output with an omission marker, truncated)."""
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:
            return (self.head + self.tail).decode("utf-8", "replace"), False
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        marker = f"\n[... {omitted} bytes of output left out ...]\n"
        return f"{head}{marker}{tail}", True


async def _pump(
    stream: asyncio.StreamReader, capture: _Capture, kill_at: int, over: asyncio.Event
) -> None:
    """Read to EOF (so the pipe transport closes), flagging ``over`` past ``kill_at`` bytes."""
    while chunk := await stream.read(1 << 16):
        capture.add(chunk)
        if capture.total > kill_at:
            over.set()


async def _watch_disk(tree: Path, cap: int, since_ns: int, stop: threading.Event) -> None:
    """Return when the command has added more than ``cap`` bytes to ``tree``.

    Free space of the tree's file system is the cheap trigger (polled); only when it fell by
    more than the allowance is the tree walked (in a thread) for the bytes of files whose inode
    changed since ``since_ns`` (ctime cannot be set back by the command, unlike mtime). Other
    writers on the same file system only cause walks, never a kill.
    """
    counted = 0
    base = _free_bytes(tree)
    while True:
        await asyncio.sleep(DISK_POLL_S)
        grown = base - _free_bytes(tree)
        if counted + grown <= cap:
            continue
        counted = await asyncio.to_thread(_bytes_changed_since, tree, since_ns, stop)
        if counted > cap:
            return
        base = _free_bytes(tree)


def _free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bfree * st.f_frsize


def _bytes_changed_since(root: Path, since_ns: int, stop: threading.Event) -> int:
    """Allocated bytes of everything under ``root`` whose inode changed since ``since_ns``."""
    total = 0
    stack = [str(root)]
    while stack and not stop.is_set():
        folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                except OSError:
                    continue
                if st.st_ctime_ns >= since_ns:
                    total += st.st_blocks * 512
    return total


# --------------------------------------------------------------------------- mounts


@dataclass(frozen=True)
class _Mount:
    path: str
    args: tuple[str, ...]
    #: True when the host's content stays visible at ``path`` (a bind), False for a tmpfs.
    shows_host: bool


def _mount_args(
    tree: Path,
    tmp_bytes: str,
    empty: Path,
    programs: Sequence[str] = (),
    extras: _Extras | None = None,
) -> list[str]:
    """bwrap's file-system arguments, parents before children (bwrap applies them in order).

    ``programs``: folders of the command's own program (``_program_folders``), bound back
    read-only when a hidden folder or the private ``/tmp`` would hide them. ``extras``: the
    caller's binds, the launcher and the egress sockets (:meth:`Sandbox.run`).
    """
    mounts = [
        _Mount("/", ("--ro-bind", "/", "/"), True),
        _Mount("/dev", ("--dev", "/dev"), False),
        _Mount(_DEV_SHM, ("--size", tmp_bytes, "--tmpfs", _DEV_SHM), False),
        _Mount("/proc", ("--proc", "/proc"), False),
        _Mount("/tmp", ("--perms", "1777", "--size", tmp_bytes, "--tmpfs", "/tmp"), False),  # noqa: S108
        _Mount(SANDBOX_HOME, ("--perms", "0700", "--dir", SANDBOX_HOME), False),
    ]
    # /dev is a tmpfs bwrap made writable for us; read-only keeps it from holding data.
    remount = ["/dev"]
    for folder in _hidden_folders():
        mounts.append(_Mount(folder, ("--tmpfs", folder), False))
        remount.append(folder)
    for folder in [*_python_folders(), *programs]:
        if not _visible(folder, mounts):
            mounts.append(_Mount(folder, ("--ro-bind", folder, folder), True))
    mounts += _extra_mounts(extras) if extras is not None else []
    mounts.append(_Mount(str(tree), ("--bind", str(tree), str(tree)), True))
    git = tree / ".git"
    # A symlinked .git cannot be covered (mounts follow it); worktrees and clones have none.
    if not git.is_symlink() and git.exists():
        mounts.append(_Mount(str(git), ("--ro-bind", str(git), str(git)), True))
    for secret in _secret_paths():
        if not _visible(secret, mounts):
            continue
        if Path(secret).is_dir():
            mounts.append(_Mount(secret, ("--tmpfs", secret), False))
            remount.append(secret)
        else:
            # An empty regular file: a /dev/null bind would make reads fail with EACCES
            # (bwrap's binds are nodev), and tools would error instead of seeing nothing.
            mounts.append(_Mount(secret, ("--ro-bind", str(empty), secret), False))
    mounts.sort(key=lambda m: len(Path(m.path).parts))
    args = [arg for mount in mounts for arg in mount.args]
    for folder in remount:
        args += ["--remount-ro", folder]
    return args


def _extra_mounts(extras: _Extras) -> list[_Mount]:
    """The caller's read-only and writable binds, the launcher and the egress sockets."""
    mounts = [_Mount(p, ("--ro-bind", p, p), True) for p in extras.binds]
    mounts += [_Mount(p, ("--bind", p, p), True) for p in extras.writable]
    if extras.config is not None:
        launcher = str(Path(__file__).with_name("sandbox_launcher.py"))
        mounts.append(_Mount(SANDBOX_LAUNCHER, ("--ro-bind", launcher, SANDBOX_LAUNCHER), False))
    if extras.egress is not None:
        # Read-only: connect() on a UNIX socket works through it; the folder stays as we made it.
        mounts.append(_Mount(SANDBOX_EGRESS, ("--ro-bind", extras.egress, SANDBOX_EGRESS), False))
    return mounts


def _visible(path: str, mounts: Sequence[_Mount]) -> bool:
    """Whether the host's ``path`` would show through ``mounts`` (deepest mount wins)."""
    best: _Mount | None = None
    for mount in mounts:
        if _inside(path, mount.path) and (
            best is None or len(Path(mount.path).parts) >= len(Path(best.path).parts)
        ):
            best = mount
    return best is not None and best.shows_host


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _homes() -> list[str]:
    """The invoking user's home folders ($HOME and the passwd entry), resolved."""
    candidates = [os.environ.get("HOME", "")]
    with contextlib.suppress(KeyError):
        candidates.append(pwd.getpwuid(os.geteuid()).pw_dir)
    homes: list[str] = []
    for candidate in candidates:
        if not candidate:
            continue
        real = os.path.realpath(candidate)
        if real != "/" and Path(real).is_dir() and real not in homes:
            homes.append(real)
    return homes


def _hidden_folders() -> list[str]:
    """Folders replaced by an empty read-only tmpfs: the homes, the runner's temp folder
    (the checkout's credentials since actions/checkout v6) and :data:`HIDDEN_HOST_FOLDERS`."""
    folders = _homes()
    for candidate in (os.environ.get("RUNNER_TEMP", ""), *HIDDEN_HOST_FOLDERS):
        if candidate and Path(candidate).is_dir():
            real = os.path.realpath(candidate)
            if real != "/" and real not in folders:
                folders.append(real)
    return folders


def _python_folders() -> list[str]:
    """The orchestrator's own Python, bound back read-only when a hidden folder holds it.

    ``PATH`` ends with the folder of ``sys.executable`` as a fallback; that only works when the
    interpreter (often under a home: pyenv, uv, a venv in the checkout) stays visible.
    """
    folders: list[str] = []
    for candidate in (sys.prefix, sys.base_prefix, str(Path(sys.executable).parent)):
        real = os.path.realpath(candidate)
        if real != "/" and Path(real).is_dir() and real not in folders:
            folders.append(real)
    hidden = _hidden_folders()
    return [f for f in folders if f not in hidden]


def _program_folders(command: Sequence[str]) -> list[str]:
    """Where the command's program lives, when named by its absolute path, so a hidden folder
    cannot make it "not found".

    A configured ``verify.command`` often names an interpreter by its absolute path (a venv
    under ``/tmp`` or a home, pyenv's versions): its folder, its prefix (the parent of a
    ``bin`` folder) and, for a Python venv, the base interpreter's prefix named in
    ``pyvenv.cfg``. A folder that holds a home, the runner's temp folder or a credential store
    is never bound (only the program's own folder then, when that is safe).
    """
    program = _find_program(command[0]) if command else None
    if program is None:
        return []
    folders: list[Path] = []
    # The name as given (a venv's bin/python is a link) and what it finally points to.
    for path in (program, Path(os.path.realpath(program))):
        folder = Path(os.path.realpath(path.parent))
        folders.append(folder)
        if folder.name == "bin":
            folders.append(folder.parent)
            base = _venv_home(folder.parent)
            if base is not None:
                folders += [base, base.parent] if base.name == "bin" else [base]
    guarded = [*_hidden_folders(), *_secret_paths()]
    found: list[str] = []
    for folder in folders:
        real = os.path.realpath(folder)
        if real == "/" or any(_inside(g, real) for g in guarded) or real in found:
            continue
        found.append(real)
    return found


def _find_program(name: str) -> Path | None:
    """The program the command names by an absolute path (links not followed), if it exists.

    A bare name is left to the sandbox's own ``PATH`` lookup: binding what the host would find
    could expose a wrapper (a pyenv shim) without what it needs, and shadow a working program
    later on the ``PATH``.
    """
    path = Path(name)
    return path if path.is_absolute() and path.is_file() else None


def _venv_home(prefix: Path) -> Path | None:
    """The ``home`` of a venv's ``pyvenv.cfg`` (the base interpreter's folder), if any."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return Path(os.path.realpath(value.strip()))
    return None


def _secret_paths() -> list[str]:
    """Credential stores and host secrets that exist, resolved; hidden where visible."""
    paths = [str(Path(home, rel)) for home in _homes() for rel in CREDENTIAL_PATHS]
    paths += HOST_SECRET_PATHS
    found: list[str] = []
    for path in paths:
        if os.path.lexists(path):
            real = os.path.realpath(path)
            if real != "/" and Path(real).exists() and real not in found:
                found.append(real)
    return found


def _outer_env() -> dict[str, str]:
    """The environment of bwrap itself: nothing secret, even outside the sandbox."""
    return {"PATH": _host_path()}


def _host_path() -> str:
    return os.environ.get("PATH") or os.defpath


def _sandbox_path() -> str:
    """The host PATH, plus the folder of this Python as a fallback for ``python``."""
    entries = [e for e in _host_path().split(os.pathsep) if e]
    fallback = str(Path(sys.executable).parent) if sys.executable else ""
    if fallback and fallback not in entries:
        entries.append(fallback)
    return os.pathsep.join(entries)


# --------------------------------------------------------------------------- checks


def _check_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, str):
        raise ValueError("argv must be a list of words, not a string (see split_command)")
    command = list(argv)
    if not command or not command[0]:
        raise ValueError("the command is empty")
    for word in command:
        if not isinstance(word, str) or "\0" in word:
            raise ValueError(f"argv words must be strings without NUL bytes: {word!r}")
    return command


def _check_tree(cwd: Path) -> Path:
    tree = Path(os.path.realpath(cwd))
    if not tree.is_dir():
        raise ValueError(f"the sandbox tree {cwd} is not an existing folder")
    for folder in ["/", *_hidden_folders()]:
        if _inside(folder, str(tree)):
            raise ValueError(
                f"the sandbox tree {tree} contains {folder}, which must stay hidden:"
                " use a project folder"
            )
    return tree


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"not a valid environment variable name: {name!r}")
        if "\0" in value:
            raise ValueError(f"environment variable {name} contains a NUL byte")
        if is_secret_name(name) or name.upper().startswith("ACTIONS_"):
            raise ValueError(f"environment variable {name} looks like a secret: not passed")
        checked[name] = value
    return checked


def _check_secret_env(secrets: Mapping[str, str] | None, env: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in (secrets or {}).items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ValueError(f"not a valid environment variable name in secret_env: {name!r}")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"secret_env variable {name} must be a string without NUL bytes")
        if name in env:
            raise ValueError(f"environment variable {name} is given in both env and secret_env")
        checked[name] = value
    return checked


def _check_bind(path: Path, arg: str, *, folder: bool = False) -> str:
    """The resolved path of a ``binds``/``writable`` entry; ValueError (one line) if refused."""
    real = os.path.realpath(path)
    if not (Path(real).is_dir() if folder else Path(real).exists()):
        kind = "an existing folder" if folder else "an existing file or folder"
        raise ValueError(f"{arg}: {path} is not {kind}")
    if real == "/":
        raise ValueError(f"{arg}: {path} is the whole file system")
    for hidden in _hidden_folders():
        if _inside(hidden, real):
            raise ValueError(f"{arg}: {path} contains {hidden}, which must stay hidden")
    for secret in _secret_paths():
        if _inside(secret, real) or _inside(real, secret):
            raise ValueError(f"{arg}: {path} overlaps the credential path {secret}")
    return real


def _open_stdout(path: Path) -> int:
    """A write fd on ``stdout_path`` (created or truncated, 0600; a symlink is refused)."""
    if not Path(path).parent.is_dir():
        raise ValueError(f"stdout_path: the folder of {path} does not exist")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        raise ValueError(f"stdout_path: cannot open {path}: {exc.strerror or exc}") from None


def _config_pipe(config: bytes) -> int:
    """The read end of a pipe holding the launcher's config (written whole, then closed).

    The config (secrets included) lives only in the pipe's kernel buffer: never in an argv, an
    environment outside the sandbox or a file. Written before the launcher starts, so it must
    fit the pipe's buffer.
    """
    if len(config) > _PIPE_BYTES:
        raise ValueError(
            f"secret_env is too large for the launcher's pipe ({len(config)} bytes with the"
            f" egress config; at most {_PIPE_BYTES})"
        )
    read, write = os.pipe()
    try:
        view = memoryview(config)
        while view:
            view = view[os.write(write, view) :]
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read


# --------------------------------------------------------------------------- probing


def _find_bwrap() -> str | SandboxUnavailable:
    configured = os.environ.get(ENV_BWRAP, "").strip()
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            return SandboxUnavailable(f"{ENV_BWRAP}={configured} is not an executable file")
        return configured
    found = shutil.which("bwrap", path=_host_path())
    if found is None:
        return SandboxUnavailable("bubblewrap is not installed: apt-get install bubblewrap")
    return found


def _bwrap_version(bwrap: str) -> str:
    try:
        proc = subprocess.run(
            [bwrap, "--version"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
            env={"PATH": _host_path()},
        )
    except (OSError, subprocess.TimeoutExpired):
        return "bubblewrap (version unknown)"
    words = proc.stdout.strip()
    return words if proc.returncode == 0 and words else "bubblewrap (version unknown)"


#: bwrap's stderr (bubblewrap.c) → why, and the fix. First match wins.
_FAILURES = (
    (
        ("setting up uid map: Permission denied", "Failed RTM_NEWADDR"),
        "AppArmor blocks unprivileged user namespaces (Ubuntu 24.04's"
        " kernel.apparmor_restrict_unprivileged_userns=1): load an AppArmor profile granting"
        " 'userns' to {bwrap} and run apparmor_parser -r on it (docs/sandbox.md), or"
        " sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
    ),
    (
        ("No permissions to create a new namespace",),
        "the kernel does not allow unprivileged user namespaces:"
        " sudo sysctl -w kernel.unprivileged_userns_clone=1",
    ),
    (
        ("max_*_namespaces exceeded", "nesting depth"),
        "no user namespace can be created (user.max_user_namespaces is 0, or this is already"
        " inside a sandbox that forbids nesting): sudo sysctl -w user.max_user_namespaces=15000",
    ),
    (
        ("does not support user namespaces",),
        "this kernel has no user namespaces (CONFIG_USER_NS): use another runner",
    ),
    (
        ("setuid use of bubblewrap is not supported",),
        "{bwrap} is setuid, which this sandbox does not support: install a non-setuid"
        " bubblewrap >= 0.8.0",
    ),
    (
        ("Unknown option", "Unrecognized option"),
        "{bwrap} ({version}) is too old: bubblewrap >= 0.8.0 is needed (--disable-userns, --size)",
    ),
)


def _classify_failure(bwrap: str, version: str, rc: int, stderr: str) -> str:
    """One line from a failed probe: the cause and the fix when bwrap's words are known."""
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    for needles, why in _FAILURES:
        if any(needle in stderr for needle in needles):
            return f"bubblewrap cannot run here: {why.format(bwrap=bwrap, version=version)}"
    if rc == -1:
        return f"bubblewrap cannot run here: {bwrap} {last}"
    detail = f": {last}" if last else ""
    return f"bubblewrap cannot run here ({bwrap} exited {rc} for /bin/true){detail}"


# --------------------------------------------------------------------------- cgroups


def _detect_cgroups() -> tuple[_Cgroups | None, str]:
    """Where to create per-command cgroups (root, no systemd needed); (setup, why not)."""
    try:
        own = Path("/proc/self/cgroup").read_text(encoding="utf-8")
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError as exc:
        return None, f"cannot read /proc: {exc}"
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in own.splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0":
            v2 = path
        for controller in controllers.split(","):
            v1[controller] = path
    mounts: list[tuple[str, str, str, set[str]]] = []  # (root, mount point, fstype, options)
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        fstype = fields[sep + 1]
        options = set(fields[sep + 3].split(",")) if len(fields) > sep + 3 else set()
        mounts.append((_unescape(fields[3]), _unescape(fields[4]), fstype, options))
    if "pids" in v1 or "memory" in v1:
        parents = {c: _v1_parent(c, v1.get(c), mounts) for c in ("pids", "memory")}
        if not any(parents.values()):
            return None, "the cgroup v1 pids and memory hierarchies are not mounted"
        return _Cgroups(1, parents["pids"], parents["memory"]), "cgroup v1 lacks a controller"
    if v2 is None:
        return None, "no cgroup hierarchy"
    return _v2_setup(v2, mounts)


def _v1_parent(
    controller: str, path: str | None, mounts: list[tuple[str, str, str, set[str]]]
) -> Path | None:
    if path is None:
        return None
    for root, point, fstype, options in mounts:
        if fstype == "cgroup" and controller in options and _inside(path, root):
            parent = Path(point) / os.path.relpath(path, root)
            if os.access(parent, os.W_OK):
                return parent
    return None


def _v2_setup(
    path: str, mounts: list[tuple[str, str, str, set[str]]]
) -> tuple[_Cgroups | None, str]:
    for root, point, fstype, _options in mounts:
        if fstype != "cgroup2" or not _inside(path, root):
            continue
        parent = Path(point) / os.path.relpath(path, root)
        try:
            available = (parent / "cgroup.controllers").read_text(encoding="utf-8").split()
            missing = {"pids", "memory"} - set(available)
            if missing:
                return None, f"cgroup v2 controllers missing: {', '.join(sorted(missing))}"
            enabled = (parent / "cgroup.subtree_control").read_text(encoding="utf-8").split()
            if not {"pids", "memory"} <= set(enabled):
                # Fails (EBUSY) when our own cgroup holds processes: v2's no-internal-process
                # rule. Untested here (cgroup v1 machine); docs/sandbox.md says so.
                (parent / "cgroup.subtree_control").write_text("+pids +memory", encoding="utf-8")
        except OSError as exc:
            return None, f"cannot use cgroup v2 at {parent}: {exc.strerror or exc}"
        return _Cgroups(2, parent, parent), ""
    return None, "the cgroup v2 hierarchy is not mounted"


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _remove_stale_cgroups(setup: _Cgroups) -> None:
    """rmdir empty cgroups left by a sandbox process that died without cleaning up."""
    for parent in {p for p in (setup.pids, setup.memory) if p is not None}:
        with contextlib.suppress(OSError):
            for child in parent.glob(f"{_CGROUP_PREFIX}*"):
                owner = child.name[len(_CGROUP_PREFIX) :].split("-", 1)[0]
                if owner.isdigit() and not _pid_alive(int(owner)):
                    with contextlib.suppress(OSError):
                        child.rmdir()


class _Cgroup:
    """The cgroup(s) of one command: created before it starts, removed after it is gone."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, setup: _Cgroups, limits: SandboxLimits, serial: int) -> _Cgroup:
        name = f"{_CGROUP_PREFIX}{os.getpid()}-{serial}"
        group = cls([])
        try:
            # +2: the pids cgroup also counts bwrap itself and its init in the sandbox.
            pids_max = str(limits.max_processes + 2)
            memory = str(limits.memory_mb * _MIB)
            if setup.version == 2:
                assert setup.pids is not None
                folder = setup.pids / name
                folder.mkdir()
                group.dirs.append(folder)
                _write(folder / "pids.max", pids_max)
                _write(folder / "memory.max", memory)
                _write(folder / "memory.swap.max", "0", optional=True)
                return group
            if setup.pids is not None:
                folder = setup.pids / name
                folder.mkdir()
                group.dirs.append(folder)
                _write(folder / "pids.max", pids_max)
            if setup.memory is not None:
                folder = setup.memory / name
                folder.mkdir()
                group.dirs.append(folder)
                _write(folder / "memory.limit_in_bytes", memory)
                # memory+swap at the same value: no swapping past the limit (when accounted).
                _write(folder / "memory.memsw.limit_in_bytes", memory, optional=True)
        except OSError:
            group.remove_now()
            raise
        return group

    def procs_files(self) -> list[Path]:
        return [folder / "cgroup.procs" for folder in self.dirs]

    def _try_remove(self) -> bool:
        """One pass: kill what is left, rmdir what is empty; True when all are gone."""
        left: list[Path] = []
        for folder in self.dirs:
            with contextlib.suppress(OSError):
                for pid in (folder / "cgroup.procs").read_text(encoding="ascii").split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(folder)
        self.dirs = left
        return not left

    async def remove(self) -> None:
        deadline = time.monotonic() + REAP_TIMEOUT_S
        while not self._try_remove() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def remove_now(self) -> None:
        deadline = time.monotonic() + REAP_TIMEOUT_S
        while not self._try_remove() and time.monotonic() < deadline:
            time.sleep(0.01)


def _write(path: Path, value: str, *, optional: bool = False) -> None:
    try:
        path.write_text(value, encoding="ascii")
    except OSError as exc:
        if not (optional and exc.errno in (errno.ENOENT, errno.EINVAL, errno.EACCES)):
            raise


# --------------------------------------------------------------------------- processes


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_child_pid(data: bytes) -> int | None:
    """bwrap's ``--info-fd`` JSON names the host pid of its init in the sandbox."""
    try:
        pid = json.loads(data.decode("utf-8", "replace")).get("child-pid")
    except (ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and pid > 1 else None


async def _wait_pidfd(pidfd: int, timeout: float) -> None:
    """Wait (polling, never blocking the loop) until the process of ``pidfd`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([pidfd], [], [], 0)
        if readable:
            return
        await asyncio.sleep(0.005)


def _exit_hint(code: int) -> str:
    if code == 127:
        return " (command not found)"
    if 128 < code < 128 + 65:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            return ""
        extra = ", often out of memory" if name == "SIGKILL" else ""
        extra = ", a file larger than file_mb" if name == "SIGXFSZ" else extra
        return f" (killed by {name}{extra})"
    return ""
