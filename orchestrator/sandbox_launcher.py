"""Start a command inside the sandbox with its secrets and its network forwarders.

This file runs INSIDE the bubblewrap sandbox, as ``python -I -S launcher.py FD -- argv...``
with the orchestrator's own interpreter, so it uses the standard library only and imports
nothing of the orchestrator (the host side imports :func:`pipe` from here, one home for it).

It reads a JSON config from the inherited pipe ``FD`` (never from argv or a file: bwrap's
``/proc/<pid>/cmdline`` is readable by other host processes, and the secrets must not touch a
disk)::

    {"secrets": {"NAME": "value"},
     "forwards": [{"listen": ["127.0.0.1", 3128], "socket": "/tmp/.orchestrator/egress/proxy.sock",
                   "optional": false}]}

Each forward listens on TCP in the sandbox's own network namespace (its loopback is up) and
pipes every accepted connection to a new connection on its UNIX socket, which the host serves
(``orchestrator/egress.py``). Then it runs ``argv`` with its own environment plus the secrets,
forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it, and exits with its exit
code (128 + N when signal N killed it; 127 when it was not found, 126 when it could not run).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
from typing import Any

#: Signals passed on to the command (SIGKILL cannot be caught; the sandbox kills the whole PID
#: namespace on a limit anyway).
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_CHUNK = 1 << 16


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF, then half-close ``writer``; errors end it."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        # The other side went away (reset, or the transport is already closed): nothing to do.
        return


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Pipe two connections into each other until both directions ended, then close both."""
    try:
        await asyncio.gather(pipe(a[0], b[1]), pipe(b[0], a[1]))
    finally:
        for writer in (a[1], b[1]):
            writer.close()


async def _forward(
    socket_path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        upstream = await asyncio.open_unix_connection(socket_path)
    except OSError:
        writer.close()
        return
    await splice((reader, writer), upstream)


async def _listen(forwards: list[dict[str, Any]]) -> list[asyncio.Server]:
    servers: list[asyncio.Server] = []
    for forward in forwards:
        host, port = forward["listen"]
        handler = functools.partial(_forward, forward["socket"])
        try:
            servers.append(await asyncio.start_server(handler, host, port))
        except OSError as exc:
            if not forward.get("optional"):
                why = f"sandbox: cannot listen on {host}:{port}: {exc.strerror}"
                raise SystemExit(why) from None
    return servers


async def _run(config: dict[str, Any], command: list[str]) -> int:
    servers = await _listen(config.get("forwards", []))
    env = {**os.environ, **config.get("secrets", {})}
    try:
        proc = await asyncio.create_subprocess_exec(*command, env=env)
    except FileNotFoundError:
        print(f"sandbox: {command[0]}: command not found", file=sys.stderr)
        return 127
    except OSError as exc:
        print(f"sandbox: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 126
    loop = asyncio.get_running_loop()
    for signum in FORWARDED_SIGNALS:
        loop.add_signal_handler(signum, _send, proc, signum)
    code = await proc.wait()
    for server in servers:
        server.close()
    return code if code >= 0 else 128 - code


def _send(proc: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        proc.send_signal(signum)


def _read_config(fd: int) -> dict[str, Any]:
    chunks: list[bytes] = []
    with os.fdopen(fd, "rb", closefd=True) as stream:
        while chunk := stream.read(_CHUNK):
            chunks.append(chunk)
    config = json.loads(b"".join(chunks) or b"{}")
    if not isinstance(config, dict):
        raise SystemExit("sandbox: the launcher's config is not a JSON object")
    return config


def main(argv: list[str]) -> int:
    """``launcher.py FD -- command...``: the exit code of the command."""
    if len(argv) < 4 or argv[2] != "--" or not argv[1].isdigit():
        print("usage: launcher.py FD -- command [args...]", file=sys.stderr)
        return 2
    config = _read_config(int(argv[1]))
    return asyncio.run(_run(config, argv[3:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
