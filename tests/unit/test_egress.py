"""Network, secrets, binds and stdout of the sandbox for agent CLIs, driven for real.

Every test that runs a command runs bubblewrap, the in-sandbox launcher and the host-side
egress proxy (``orchestrator/egress.py``); the servers are real HTTP servers on the host's
loopback (tests/fakes/loopback.py), and a fake host name is mapped to one by ``resolve``.
Where the command's answer alone would not prove a promise, the host side is checked too (the
server not asked, the secret in no argv or file). bubblewrap must work here; when it does not,
these tests fail with the probe's reason rather than skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.egress import Egress, Endpoint, Resolver
from orchestrator.sandbox import CommandResult, Sandbox, SandboxLimits, SandboxUnavailable
from tests.fakes.loopback import LoopbackServer, Reply, Request, serve

PY = sys.executable


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    probed = Sandbox.probe()
    if isinstance(probed, SandboxUnavailable):
        pytest.fail(f"bubblewrap must work on the machine running these tests: {probed.reason}")
    return probed


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    path = tmp_path / "tree"
    (path / ".git").mkdir(parents=True)
    return path


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A hidden home outside /tmp (the sandbox's /tmp is private), as $HOME."""
    path = Path(tempfile.mkdtemp(prefix="egress-test-home-", dir="/var/tmp"))
    monkeypatch.setenv("HOME", str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def answer(request: Request) -> Reply:
    return Reply(body={"path": request.path, "host": request.headers.get("host")})


def port_of(server: LoopbackServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def to_loopback(port: int) -> Resolver:
    """``resolve`` mapping every host name to the loopback server on ``port``."""
    return lambda host, _port: ("127.0.0.1", port)


def run(sandbox: Sandbox, argv: list[str], tree: Path, **kwargs: object) -> CommandResult:
    limits = kwargs.pop("limits", SandboxLimits(timeout_s=60))
    assert isinstance(limits, SandboxLimits)
    return asyncio.run(sandbox.run(argv, cwd=tree, limits=limits, **kwargs))  # type: ignore[arg-type]


def egress_folders() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"orchestrator-egress-{os.getpid()}-*"))


FETCH = """
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            print(url, response.status, response.read().decode())
    except Exception as exc:
        print(url, "FAILED", exc)
"""


# --------------------------------------------------------------------------- endpoints


def test_endpoint_parse_defaults_and_refusals() -> None:
    assert Endpoint.parse("https://api.anthropic.com/v1") == Endpoint(
        "https", "api.anthropic.com", 443
    )
    assert Endpoint.parse("http://LocalHost:8080") == Endpoint("http", "localhost", 8080)
    assert Endpoint.parse("http://[::1]:9/") == Endpoint("http", "::1", 9)
    assert str(Endpoint.parse("http://[::1]:9/")) == "[::1]:9"
    assert Endpoint.parse("http://127.0.0.2:1").loopback
    assert not Endpoint.parse("https://api.openai.com").loopback
    for bad in ("ftp://x", "https://", "api.openai.com", "http://x:99999"):
        with pytest.raises(ValueError, match="URL"):
            Endpoint.parse(bad)
    with pytest.raises(ValueError, match="port"):
        Endpoint("https", "x", 0)


# --------------------------------------------------------------------------- in the sandbox


def test_a_loopback_endpoint_is_reachable_and_another_loopback_server_is_not(
    sandbox: Sandbox, tree: Path
) -> None:
    with serve(answer) as allowed, serve(answer) as other:
        result = run(
            sandbox,
            [PY, "-c", FETCH, f"{allowed.url}/in", f"{other.url}/out"],
            tree,
            egress=[Endpoint.parse(allowed.url)],
        )
        assert result.exit_code == 0, result.describe()
        assert f"{allowed.url}/in 200" in result.output, result.output
        assert f"{other.url}/out FAILED" in result.output, result.output
        assert [r.path for r in allowed.requests] == ["/in"]
        assert other.requests == []
    assert egress_folders() == []


def test_the_proxy_allows_only_the_endpoints_and_records_the_rest(
    sandbox: Sandbox, tree: Path
) -> None:
    with serve(answer) as provider:
        port = port_of(provider)
        result = run(
            sandbox,
            [PY, "-c", FETCH, f"http://provider.test:{port}/x?q=1", f"http://other.test:{port}/"],
            tree,
            egress=[Endpoint("http", "provider.test", port)],
            resolve=to_loopback(port),
        )
        assert result.exit_code == 0, result.describe()
        assert f"http://provider.test:{port}/x?q=1 200" in result.output, result.output
        assert "other.test" in result.output and "HTTP Error 403" in result.output
        # The provider got the request in origin form, with its own Host and no proxy headers.
        (request,) = provider.requests
        assert (request.path, request.query) == ("/x", {"q": ["1"]})
        assert request.headers["host"] == f"provider.test:{port}"
        assert "proxy-connection" not in request.headers
    assert result.egress_refused == (f"other.test:{port}",)
    assert any("network refused" in n and f"other.test:{port}" in n for n in result.notes)


RAW_CONNECT = """
import os, socket, sys
proxy = os.environ["HTTPS_PROXY"].rsplit(":", 1)
for target in sys.argv[1:]:
    with socket.create_connection((proxy[0][7:], int(proxy[1])), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
        status = s.recv(4096).split(b"\\r\\n")[0].decode()
        print(target, status)
        if status.endswith("200 Connection established"):
            # Through the tunnel: plain HTTP to the (fake) provider, byte for byte.
            s.sendall(b"GET /tunnel HTTP/1.1\\r\\nHost: p\\r\\nConnection: close\\r\\n\\r\\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
            head, body = reply.split(b"\\r\\n")[0], reply.rsplit(b"\\r\\n", 1)[-1]
            print("tunnel", head.decode(), body.decode())
"""


def test_a_raw_connect_is_tunnelled_only_to_an_endpoint(sandbox: Sandbox, tree: Path) -> None:
    with serve(answer) as provider:
        port = port_of(provider)
        result = run(
            sandbox,
            [PY, "-c", RAW_CONNECT, "evil.test:443", f"provider.test:{port}", "10.0.0.1:22"],
            tree,
            egress=[Endpoint("https", "provider.test", port)],
            resolve=to_loopback(port),
        )
        assert result.exit_code == 0, result.describe()
        assert "evil.test:443 HTTP/1.1 403 Forbidden" in result.output, result.output
        assert "10.0.0.1:22 HTTP/1.1 403 Forbidden" in result.output
        assert f"provider.test:{port} HTTP/1.1 200 Connection established" in result.output
        assert 'tunnel HTTP/1.1 200 OK {"path": "/tunnel", "host": "p"}' in result.output
        assert [r.path for r in provider.requests] == ["/tunnel"]
    assert result.egress_refused == ("evil.test:443", "10.0.0.1:22")


def test_without_egress_there_is_no_proxy_and_no_network(sandbox: Sandbox, tree: Path) -> None:
    with serve(answer) as server:
        script = "import os; print(sorted(k for k in os.environ if 'proxy' in k.lower()))"
        result = run(sandbox, [PY, "-c", f"{script}\n{FETCH}", f"{server.url}/"], tree)
        assert result.exit_code == 0, result.describe()
        assert "[]" in result.output and "FAILED" in result.output
        assert server.requests == []


# --------------------------------------------------------------------------- secrets


def test_secret_env_reaches_the_command_and_no_argv_or_file(sandbox: Sandbox, tree: Path) -> None:
    secret = "sk-egress-canary-" + os.urandom(8).hex()

    async def scenario() -> tuple[CommandResult, list[str]]:
        ready = tree / "ready"
        command = sandbox.run(
            ["sh", "-c", 'echo "key=$MY_API_KEY"; touch ready; sleep 2'],
            cwd=tree,
            limits=SandboxLimits(timeout_s=30),
            secret_env={"MY_API_KEY": secret},
            egress=[Endpoint.parse("https://provider.test")],
        )
        task = asyncio.create_task(command)
        while not ready.exists():
            assert not task.done(), (await task).describe()
            await asyncio.sleep(0.02)
        # While it runs: every host process's argv, and every file the sandbox made.
        leaks = [f"argv of {pid}" for pid in pids_whose_cmdline_has(secret)]
        for folder in Path(tempfile.gettempdir()).glob(f"orchestrator-*-{os.getpid()}-*"):
            leaks += [str(f) for f in folder.rglob("*") if f.is_file() and secret_in(f, secret)]
        return await task, leaks

    result, leaks = asyncio.run(scenario())
    assert result.exit_code == 0, result.describe()
    assert f"key={secret}" in result.output
    assert leaks == []
    assert not any(secret in word for word in result.argv)


def test_secret_names_are_still_checked(sandbox: Sandbox, tree: Path) -> None:
    with pytest.raises(ValueError, match="looks like a secret"):
        run(sandbox, ["true"], tree, env={"MY_API_KEY": "x"})
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        run(sandbox, ["true"], tree, secret_env={"A=B": "x"})
    with pytest.raises(ValueError, match="NUL"):
        run(sandbox, ["true"], tree, secret_env={"K": "a\0b"})
    with pytest.raises(ValueError, match="given in both env and secret_env"):
        run(sandbox, ["true"], tree, env={"K": "a"}, secret_env={"K": "b"})


def pids_whose_cmdline_has(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def secret_in(path: Path, secret: str) -> bool:
    try:
        return secret.encode() in path.read_bytes()
    except OSError:
        return False


# --------------------------------------------------------------------------- launcher


def test_the_launcher_passes_exit_codes_and_signals_through(sandbox: Sandbox, tree: Path) -> None:
    secret = {"K": "v"}
    assert run(sandbox, ["sh", "-c", "exit 3"], tree, secret_env=secret).exit_code == 3
    killed = run(sandbox, ["sh", "-c", "kill -TERM $$"], tree, secret_env=secret)
    assert killed.exit_code == 143, killed.describe()
    missing = run(sandbox, ["no-such-program-here"], tree, secret_env=secret)
    assert missing.exit_code == 127 and "command not found" in missing.output
    slow = run(
        sandbox,
        ["sleep", "30"],
        tree,
        secret_env=secret,
        limits=SandboxLimits(timeout_s=1),
    )
    assert slow.killed == "timeout" and slow.duration_s < 10


def test_egress_closes_its_connections_and_leaves_nothing() -> None:
    """An idle tunnel is cut when the command's egress ends; no task or socket is left."""

    async def scenario(port: int) -> tuple[bytes, bytes, list[str]]:
        async with Egress(
            [Endpoint("https", "provider.test", port)], resolve=to_loopback(port)
        ) as gate:
            assert gate.folder is not None and (gate.folder.stat().st_mode & 0o777) == 0o700
            proxy = str(gate.folder / "proxy.sock")
            reader, writer = await asyncio.open_unix_connection(proxy)
            writer.write(f"CONNECT provider.test:{port} HTTP/1.1\r\n\r\n".encode())
            opened = await reader.readuntil(b"\r\n\r\n")
            bad_r, bad_w = await asyncio.open_unix_connection(proxy)
            bad_w.write(b"GET /relative HTTP/1.1\r\n\r\n")
            bad = await bad_r.read()
            bad_w.close()
            folder = gate.folder
        assert not folder.exists()
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF: the tunnel was closed
        writer.close()
        others = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return opened + rest, bad, others

    with serve(answer) as provider:
        opened, bad, others = asyncio.run(scenario(port_of(provider)))
    assert opened == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert bad.startswith(b"HTTP/1.1 400 Bad Request")
    assert others == []


# --------------------------------------------------------------------------- binds


def test_binds_show_a_folder_of_a_hidden_home_and_refuse_credentials(
    sandbox: Sandbox, tree: Path, home: Path
) -> None:
    tool = home / ".local" / "tool"
    tool.mkdir(parents=True)
    (tool / "cli.js").write_text("installed\n")
    (home / "private.txt").write_text("private-content\n")
    state = home / ".cli-state"
    state.mkdir()
    script = (
        f"cat {tool}/cli.js; cat {home}/private.txt || echo private-hidden;"
        f" echo x > {tool}/new || echo tool-read-only; echo kept > {state}/session"
    )
    result = run(sandbox, ["sh", "-c", script], tree, binds=[tool], writable=[state])
    assert result.exit_code == 0, result.describe()
    assert "installed" in result.output
    assert "private-hidden" in result.output and "private-content" not in result.output
    assert "tool-read-only" in result.output and not (tool / "new").exists()
    assert (state / "session").read_text() == "kept\n"

    (home / ".ssh").mkdir()
    (home / ".config" / "gh").mkdir(parents=True)
    refusals = {
        "binds": [
            (home, "contains"),
            (Path("/"), "whole file system"),
            (home / ".ssh", "credential path"),
            (home / ".config", "credential path"),
        ],
        "writable": [(home / "nope", "existing folder"), (tool / "cli.js", "existing folder")],
    }
    for arg, cases in refusals.items():
        for path, why in cases:
            with pytest.raises(ValueError, match=why):
                run(sandbox, ["true"], tree, **{arg: [path]})


# --------------------------------------------------------------------------- limits and stdout


WASM = "new WebAssembly.Memory({initial: 1}); console.log('wasm ok')"


def test_address_space_off_lets_node_reserve_what_rlimit_as_refuses(
    sandbox: Sandbox, tree: Path
) -> None:
    node = shutil.which("node")
    assert node, "node must be installed on the machine running these tests (the CLIs need it)"
    capped = run(sandbox, [node, "-e", WASM], tree)
    assert capped.exit_code != 0 and "could not allocate memory" in capped.output
    free = run(
        sandbox,
        ["sh", "-c", f"{node} -e \"{WASM}\" && grep 'Max address space' /proc/self/limits"],
        tree,
        limits=SandboxLimits(address_space=False),
    )
    assert free.exit_code == 0, free.describe()
    assert "wasm ok" in free.output
    assert "unlimited" in free.output.split("Max address space")[1].splitlines()[0]


def test_address_space_off_without_a_memory_cgroup_says_memory_is_not_enforced(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SANDBOX_CGROUP", "off")
    bare = Sandbox.probe(refresh=True)
    assert isinstance(bare, Sandbox), bare
    result = run(bare, ["true"], tree, limits=SandboxLimits(address_space=False))
    assert result.ok
    assert any(n.startswith("memory limit not enforced") for n in result.notes)
    assert not any("RLIMIT_AS), not for all" in n for n in result.notes)


def test_stdout_path_takes_a_large_stream_and_the_capture_keeps_stderr(
    sandbox: Sandbox, tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "events.jsonl"
    script = (
        "import sys\n"
        "line = b'{\"type\": \"event\"}' + b'.' * 1006 + b'\\n'\n"
        "for _ in range(5 * 1024): sys.stdout.buffer.write(line)\n"
        "print('done', file=sys.stderr)\n"
    )
    # 5 MB is far past the 100 x 1000 bytes that kill a command printing to the capture.
    result = run(
        sandbox,
        [PY, "-c", script],
        tree,
        stdout_path=out,
        limits=SandboxLimits(output_bytes=1000),
    )
    assert result.ok, result.describe()
    assert out.stat().st_size == 5 * 1024 * 1024
    assert (out.stat().st_mode & 0o777) == 0o600
    assert result.output == "done\n" and result.output_bytes == 5
    with pytest.raises(ValueError, match="stdout_path"):
        run(sandbox, ["true"], tree, stdout_path=tmp_path / "missing" / "out")
