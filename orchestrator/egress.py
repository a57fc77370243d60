"""Network for one sandboxed command: only to allowed endpoints, through the host.

The sandbox has its own network namespace with nothing but a loopback, so nothing inside can
reach the host's network on its own. :class:`Egress` (host side, in the orchestrator's event
loop, for the duration of one command) serves UNIX sockets in a private 0700 folder that the
sandbox sees read-only; the in-sandbox launcher (``orchestrator/sandbox_launcher.py``) listens
on TCP ports of the sandbox's loopback and pipes each connection to one of these sockets:

* one **forward** per endpoint whose host is loopback (``127.0.0.0/8``, ``localhost``,
  ``::1``): the sandbox's ``127.0.0.1:PORT`` reaches the host's ``127.0.0.1:PORT`` (local
  model servers, and the fake providers of the tests);
* one **HTTP proxy** at ``127.0.0.1:<proxy_port>`` in the sandbox: ``CONNECT host:port``
  (HTTPS, end to end encrypted) and absolute-form ``GET http://host:port/…`` requests, only for
  the allowed endpoints. Anything else is answered ``403`` and recorded in :attr:`Egress.refused`.

Clients find the proxy through :meth:`Egress.sandbox_env`. A client that ignores the proxy
variables reaches nothing: there is no route out of the namespace, and no DNS either.
docs/sandbox.md ("Network for agent CLIs") has the reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from orchestrator.sandbox_launcher import splice

__all__ = ["SANDBOX_EGRESS", "Egress", "Endpoint", "Resolver", "launcher_config"]

#: ``resolve(host, port) -> (address, port)`` for the upstream connection (tests map a fake
#: host name such as ``provider.test`` to a loopback server).
Resolver = Callable[[str, int], tuple[str, int]]

#: The proxy's port in the sandbox (its own loopback, so any port is free); the next one up
#: when a loopback endpoint uses it.
PROXY_PORT = 3128
#: Seconds to connect to an allowed endpoint before answering 504.
CONNECT_TIMEOUT_S = 30.0
#: A request head larger than this is answered 431.
MAX_HEAD_BYTES = 64 * 1024
#: Hop-by-hop and proxy headers dropped from a forwarded absolute-form request.
_DROPPED_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_PROXY = "localhost,127.0.0.1,::1"
#: Where the socket folder is bound (read-only) inside the sandbox.
SANDBOX_EGRESS = "/tmp/.orchestrator/egress"  # noqa: S108 - inside the sandbox's private tmpfs


@dataclass(frozen=True)
class Endpoint:
    """One network endpoint a sandboxed command may reach.

    Attributes:
        scheme: ``http`` or ``https``.
        host: Host name (lower case, no trailing dot) or IP address (IPv6 without brackets).
        port: TCP port.
    """

    scheme: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"endpoint scheme must be http or https, not {self.scheme!r}")
        if (
            not self.host
            or self.host != _normal_host(self.host)
            or any(c in self.host for c in "/ @")
        ):
            raise ValueError(f"not a valid endpoint host: {self.host!r}")
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 < self.port < 65536
        ):
            raise ValueError(f"endpoint port must be 1..65535, not {self.port!r}")

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """The endpoint of a base URL (``https://api.anthropic.com/v1`` → port 443).

        Raises:
            ValueError: One line: not an http(s) URL with a host, or a bad port.
        """
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a valid endpoint URL {url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        return cls(scheme, _normal_host(parts.hostname), port or _DEFAULT_PORTS[scheme])

    @property
    def loopback(self) -> bool:
        """Whether the host is this machine's loopback (reached by a forward, not the proxy)."""
        return _is_loopback(self.host)

    def __str__(self) -> str:
        return _host_port(self.host, self.port)


class Egress:
    """Serves one command's allowed network from the host; an async context manager.

    Attributes:
        endpoints: The allowed endpoints.
        refused: ``host:port`` of every request the proxy refused, in order.
        folder: The private folder of the UNIX sockets (set while entered).
        proxy_port: The proxy's TCP port inside the sandbox.
    """

    def __init__(self, endpoints: Sequence[Endpoint], *, resolve: Resolver | None = None) -> None:
        self.endpoints = tuple(dict.fromkeys(endpoints))
        self.refused: list[str] = []
        self.folder: Path | None = None
        taken = {e.port for e in self.endpoints if e.loopback}
        self.proxy_port = next(p for p in range(PROXY_PORT, 65536) if p not in taken)
        self._resolve = resolve
        self._allowed = {(e.host, e.port) for e in self.endpoints}
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._forwards: list[tuple[str, Endpoint]] = []

    async def __aenter__(self) -> Egress:
        self.folder = Path(
            tempfile.mkdtemp(prefix=f"orchestrator-egress-{os.getpid()}-")
        )  # mode 0700
        try:
            loopback = [e for e in self.endpoints if e.loopback]
            for index, endpoint in enumerate(loopback):
                name = f"forward-{index}.sock"
                await self._serve(name, self._forward_handler(endpoint))
                self._forwards.append((name, endpoint))
            await self._serve("proxy.sock", self._proxy)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop serving, close every connection and remove the folder (idempotent)."""
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    # ------------------------------------------------------------------ for the sandbox

    def sandbox_env(self) -> dict[str, str]:
        """The proxy variables for the command (loopback hosts go direct, to the forwards).

        Both spellings, because tools disagree on which they read (curl ignores upper-case
        ``HTTP_PROXY``; Go and Rust clients read either). ``NODE_USE_ENV_PROXY=1`` makes Node's
        own ``fetch``/``http`` honour them (Node ≥ 22.21 / 24.5; older ones ignore it).
        ``ALL_PROXY`` is not set: curl would use it for every protocol.
        """
        proxy = f"http://127.0.0.1:{self.proxy_port}"
        env = {name: proxy for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")}
        env.update({"NO_PROXY": _NO_PROXY, "no_proxy": _NO_PROXY, "NODE_USE_ENV_PROXY": "1"})
        return env

    def launcher_forwards(self, folder_inside: str) -> list[dict[str, Any]]:
        """The launcher's ``forwards`` config, with the socket folder at ``folder_inside``."""
        forwards: list[dict[str, Any]] = []
        for name, endpoint in self._forwards:
            socket = f"{folder_inside}/{name}"
            if endpoint.host == "localhost":
                # localhost may resolve to ::1 first; clients fall back to 127.0.0.1, and ::1
                # is served too where the namespace has IPv6.
                forwards.append({"listen": ["127.0.0.1", endpoint.port], "socket": socket})
                forwards.append(
                    {"listen": ["::1", endpoint.port], "socket": socket, "optional": True}
                )
            else:
                forwards.append({"listen": [endpoint.host, endpoint.port], "socket": socket})
        forwards.append(
            {"listen": ["127.0.0.1", self.proxy_port], "socket": f"{folder_inside}/proxy.sock"}
        )
        return forwards

    # ------------------------------------------------------------------ serving

    async def _serve(
        self,
        name: str,
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    ) -> None:
        assert self.folder is not None

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            self._writers.add(writer)
            try:
                await handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            except asyncio.CancelledError:
                # aclose() ends the connection: a cancelled callback task would only be logged
                # by asyncio's stream protocol as an error.
                pass
            finally:
                writer.close()
                self._writers.discard(writer)
                self._connections.discard(task)

        server = await asyncio.start_unix_server(
            tracked, path=str(self.folder / name), limit=MAX_HEAD_BYTES
        )
        self._servers.append(server)

    def _forward_handler(
        self, endpoint: Endpoint
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream = await self._connect(endpoint.host, endpoint.port)
            if upstream is not None:
                await self._splice((reader, writer), upstream)

        return handle

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        address, real_port = self._resolve(host, port) if self._resolve else (host, port)
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(address, real_port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            return None

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection: CONNECT, or an absolute-form http:// request."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await _answer(writer, 431, "request head too large")
            return
        request = _parse_head(head)
        if request is None:
            await _answer(writer, 400, "not a CONNECT or absolute-form http:// request")
            return
        host, port = request.host, request.port
        if (host, port) not in self._allowed:
            self.refused.append(_host_port(host, port))
            await _answer(writer, 403, f"{_host_port(host, port)} is not an allowed endpoint")
            return
        upstream = await self._connect(host, port)
        if upstream is None:
            await _answer(writer, 502, f"cannot connect to {_host_port(host, port)}")
            return
        if request.connect:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream[1].write(request.forwarded_head())
        await self._splice((reader, writer), upstream)

    async def _splice(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self._writers.add(upstream[1])
        try:
            await splice(client, upstream)
        finally:
            self._writers.discard(upstream[1])


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class _Request:
    connect: bool
    host: str
    port: int
    method: str = ""
    target: str = ""
    version: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def forwarded_head(self) -> bytes:
        """The absolute-form request rewritten to origin form, closing after the response."""
        lines = [f"{self.method} {self.target} {self.version}"]
        names = set()
        for name, value in self.headers:
            if name.lower() not in _DROPPED_HEADERS:
                lines.append(f"{name}: {value}")
                names.add(name.lower())
        if "host" not in names:
            lines.append(f"Host: {_host_port(self.host, self.port)}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(head: bytes) -> _Request | None:
    lines = head.decode("latin-1").split("\r\n")
    words = lines[0].split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        return None
    method, target, version = words
    if method.upper() == "CONNECT":
        host, _, port = target.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            return None
        return _Request(True, _normal_host(host), int(port))
    try:
        parts = urlsplit(target)
        port_or_none = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() != "http" or not parts.hostname:
        return None
    origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = tuple(
        (name.strip(), value.strip())
        for name, sep, value in (line.partition(":") for line in lines[1:] if line)
        if sep
    )
    host = _normal_host(parts.hostname)
    return _Request(False, host, port_or_none or 80, method, origin, version, headers)


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    phrases = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large"}
    phrase = phrases.get(status, "Bad Gateway")
    body = f"egress: {reason}\n".encode()
    writer.write(
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------- the launcher


def launcher_config(secrets: Mapping[str, str], egress: Egress | None) -> bytes:
    """The in-sandbox launcher's JSON config (``orchestrator/sandbox_launcher.py``).

    Holds the secrets: it goes through a pipe only, never to a file or an argv.
    """
    forwards = egress.launcher_forwards(SANDBOX_EGRESS) if egress is not None else []
    return json.dumps({"secrets": dict(secrets), "forwards": forwards}).encode("utf-8")
