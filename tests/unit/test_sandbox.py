"""The bubblewrap sandbox, driven for real: every test runs bwrap and checks from the host.

Each test proves one promise of ``orchestrator/sandbox.py`` and could fail: where the
sandbox's answer alone would not show it (no network, no secret), the test also checks the
host side (the listener got nothing, the file outside was not written, no pid survived).
bubblewrap must work on the machine running these tests; when it does not, the tests fail with
the probe's reason rather than skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import sandbox as sandbox_module
from orchestrator.sandbox import (
    CommandResult,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
    split_command,
)
from tests.fakes.loopback import Reply, serve

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
IS_ROOT = os.geteuid() == 0
NOBODY = 65534

#: Forks up to 300 children that sleep; prints how many it got and the first error. Bounded,
#: so a sandbox that fails to contain it costs 300 sleeping processes, not the machine.
BOUNDED_FORK_BOMB = """
import os, sys, time
spawned, error = 0, None
for _ in range(300):
    try:
        pid = os.fork()
    except OSError as exc:
        error = repr(exc)
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    spawned += 1
print(f"spawned={spawned} error={error}", flush=True)
os._exit(0)
"""


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    probed = Sandbox.probe()
    if isinstance(probed, SandboxUnavailable):
        pytest.fail(f"bubblewrap must work on the machine running these tests: {probed.reason}")
    return probed


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A project tree like the orchestrator's worktrees: in a temporary folder, with .git."""
    path = tmp_path / "tree"
    (path / ".git").mkdir(parents=True)
    (path / ".git" / "config").write_text("[core]\n")
    (path / "README.md").write_text("hello\n")
    return path


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host folder outside /tmp (the sandbox's /tmp is private, so this one is read-only)."""
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(
    sandbox: Sandbox,
    argv: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    **limits: float,
) -> CommandResult:
    return asyncio.run(sandbox.run(argv, cwd=cwd, limits=SandboxLimits(**limits), env=env))


def pids_with(marker: str) -> set[int]:
    """Host pids whose command line contains ``marker``."""
    found: set[int] = set()
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def daemon_command(marker: str) -> list[str]:
    """A command that double-forks a setsid+nohup heartbeat writer, then sleeps."""
    loop = f"while :; do date +%s%N > hb; sleep 0.05; done; : {marker}"
    return ["sh", "-c", f"( setsid nohup sh -c '{loop}' >/dev/null 2>&1 & ); sleep 1000"]


def leftovers() -> list[Path]:
    """This process's sandbox scratch folders and cgroups still on disk."""
    prefix = f"orchestrator-sandbox-{os.getpid()}-"
    found = list(Path(tempfile.gettempdir()).glob(f"{prefix}*"))
    setup, _ = sandbox_module._detect_cgroups() if IS_ROOT else (None, "")
    if setup is not None:
        for parent in {setup.pids, setup.memory} - {None}:
            assert parent is not None
            found += list(parent.glob(f"{prefix}*"))
    return found


async def wait_for(path: Path, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- isolation


def test_no_network_a_host_listener_and_dns_are_unreachable(sandbox: Sandbox, tree: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    code = f"""
import socket
for label, target in (("host", ("127.0.0.1", {port})), ("internet", ("1.1.1.1", 80))):
    try:
        socket.create_connection(target, timeout=3).close()
        print(label, "CONNECTED")
    except OSError as exc:
        print(label, "failed", type(exc).__name__)
try:
    socket.getaddrinfo("github.com", 443)
    print("dns RESOLVED")
except OSError as exc:
    print("dns failed", type(exc).__name__)
"""
    try:
        # The same check unsandboxed reaches the listener: the test can tell the difference.
        host = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=20)
        assert "host CONNECTED" in host.stdout
        listener.accept()[0].close()

        result = run(sandbox, [PY, "-c", code], tree)
        assert result.exit_code == 0, result.describe()
        assert "host failed ConnectionRefusedError" in result.output
        assert "internet failed" in result.output
        assert "dns failed gaierror" in result.output
        assert "CONNECTED" not in result.output and "RESOLVED" not in result.output
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_environment_is_cleared_and_secrets_never_enter(
    sandbox: Sandbox, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {
        "SANDBOX_CANARY_API_KEY": "canary-api-key-value-1",
        "GITHUB_TOKEN": "canary-github-token-2",
        "ACTIONS_RUNTIME_TOKEN": "canary-actions-token-3",
        "ORCHESTRATOR_APP_PRIVATE_KEY": "canary-app-key-4",
        "PLAIN_CANARY": "canary-plain-5",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    # The command's environment, then that of bwrap's init (bwrap's own, before --clearenv).
    script = "env; echo ---; tr '\\0' '\\n' < /proc/1/environ"
    result = run(sandbox, ["sh", "-c", script], tree, env={"EXTRA": "yes"})
    assert result.exit_code == 0, result.describe()
    for value in canaries.values():
        assert value not in result.output
    own, init = result.output.split("---\n")
    assert {line.split("=")[0] for line in init.splitlines()} <= {"PATH", "PWD"}
    env = dict(line.split("=", 1) for line in own.splitlines())
    assert {"PATH", "HOME", "TMPDIR", "LANG", "EXTRA"} <= set(env)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "EXTRA", "PWD", "SHLVL", "_"}
    assert env["HOME"] == "/tmp/home" and env["TMPDIR"] == "/tmp" and env["LANG"] == "C.UTF-8"
    assert env["PATH"].split(":")[-1] == str(Path(PY).parent)

    for refused in ("GITHUB_TOKEN", "MY_API_KEY", "ACTIONS_CACHE_URL", "DB_PASSWORD"):
        with pytest.raises(ValueError, match="looks like a secret"):
            run(sandbox, ["true"], tree, env={refused: "x"})
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        run(sandbox, ["true"], tree, env={"A=B": "x"})


def test_only_the_tree_is_writable(
    sandbox: Sandbox, tree: Path, tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = outside / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    script = f"""
try() {{ if ( eval "$2" ) 2>/dev/null; then echo "$1 WRITTEN"; else echo "$1 refused"; fi; }}
try tree 'echo ok > made-here.txt'
try etc 'echo x > /etc/sandbox-test'
try outside 'echo x > {outside}/x'
try home 'echo x > {home}/x'
try git 'echo x >> .git/config'
try tmp-host 'echo x > {tmp_path}/outside.txt'
try tmp-big 'head -c 20000000 /dev/zero > /tmp/big'
try shm-big 'head -c 20000000 /dev/zero > /dev/shm/big'
try dev 'echo x > /dev/sandbox-test'
"""
    result = run(sandbox, ["sh", "-c", script], tree, tmp_mb=8)
    assert result.exit_code == 0, result.describe()
    lines = set(result.output.split("\n"))
    assert "tree WRITTEN" in lines
    for name in ("etc", "outside", "home", "git", "tmp-big", "shm-big", "dev"):
        assert f"{name} refused" in lines, result.output
    assert (tree / "made-here.txt").read_text() == "ok\n"
    assert not Path("/etc/sandbox-test").exists()
    assert list(outside.iterdir()) == [home] and not list(home.iterdir())
    assert (tree / ".git" / "config").read_text() == "[core]\n"
    # tmp_path is under the host's /tmp: inside, /tmp is private, so the write lands there.
    assert not (tmp_path / "outside.txt").exists()


def test_host_sockets_in_run_are_unreachable(sandbox: Sandbox, tree: Path) -> None:
    """A read-only mount does not stop connect() on a UNIX socket, and the network namespace
    does not cover file-system sockets: /run (docker.sock, D-Bus, systemd) must be hidden."""
    listener: socket.socket | None = None
    path = Path("/run") / f"sandbox-test-{uuid.uuid4().hex}.sock"
    if os.access("/run", os.W_OK):  # root: a real socket, as docker.sock would be
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen()
    code = f"""
import os, socket
print("run:", sorted(os.listdir("/run")), "var-run:", sorted(os.listdir("/var/run")))
try:
    socket.socket(socket.AF_UNIX).connect({str(path)!r})
    print("CONNECTED")
except OSError as exc:
    print("failed", type(exc).__name__)
"""
    try:
        assert any(Path("/run").iterdir()), "the host's /run is empty: this test shows nothing"
        result = run(sandbox, [PY, "-c", code], tree)
    finally:
        if listener is not None:
            listener.close()
            path.unlink()
    assert "run: [] var-run: []" in result.output, result.describe()
    assert "failed FileNotFoundError" in result.output


def test_credentials_in_the_home_are_hidden(
    sandbox: Sandbox, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = outside / "home"
    secrets = {
        ".ssh/id_rsa": "SECRET-ssh",
        ".netrc": "machine github.com password SECRET-netrc",
        ".git-credentials": "https://x:SECRET-gitcred@github.com",
        ".config/gh/hosts.yml": "oauth_token: SECRET-gh",
        ".aws/credentials": "SECRET-aws",
        ".docker/config.json": "SECRET-docker",
        ".kube/config": "SECRET-kube",
        ".codex/auth.json": "SECRET-not-on-any-list",
    }
    for rel, text in secrets.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    # The GitHub-hosted layout: the tree lives under the runner's home.
    project = home / "work" / "project"
    project.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    script = (
        f"cat {home}/.ssh/id_rsa {home}/.netrc {home}/.codex/auth.json; grep -rs SECRET {home};"
        " ls -A ~; echo home=$HOME; echo data > result.txt; cat /etc/shadow | wc -c"
    )
    result = run(sandbox, ["sh", "-c", script], project)
    assert "SECRET" not in result.output, result.output
    assert "No such file or directory" in result.output
    assert "home=/tmp/home" in result.output
    assert result.output.rstrip().endswith("\n0")  # /etc/shadow reads as an empty file
    assert (project / "result.txt").read_text() == "data\n"


# --------------------------------------------------------------------------- limits


def test_timeout_kills_the_whole_tree_including_a_double_forked_daemon(
    sandbox: Sandbox, tree: Path
) -> None:
    marker = f"sandbox-daemon-{uuid.uuid4().hex}"

    async def scenario() -> tuple[CommandResult, set[int]]:
        task = asyncio.create_task(
            sandbox.run(daemon_command(marker), cwd=tree, limits=SandboxLimits(timeout_s=1.5))
        )
        await wait_for(tree / "hb")
        seen = pids_with(marker)
        return await asyncio.wait_for(task, 15), seen

    result, seen = asyncio.run(scenario())
    assert result.killed == "timeout" and result.exit_code is None
    assert 1.5 <= result.duration_s < 4, result.duration_s
    assert "time limit of 1.5 s" in result.describe()
    assert len(seen) >= 2  # the daemon's loop and the command itself, as host pids
    assert not pids_with(marker), "a process of the sandbox survived"
    beat = (tree / "hb").read_text()
    time.sleep(0.3)
    assert (tree / "hb").read_text() == beat
    assert not leftovers()


def test_nothing_outlives_a_command_that_exits(sandbox: Sandbox, tree: Path) -> None:
    marker = f"sandbox-bg-{uuid.uuid4().hex}"
    script = f"( setsid nohup sh -c 'sleep 60; : {marker}' >/dev/null 2>&1 & ); echo started"
    result = run(sandbox, ["sh", "-c", script], tree)
    assert result.exit_code == 0 and result.output == "started\n" and result.duration_s < 5
    assert not pids_with(marker), "a background process outlived the command"


def test_cancelling_the_caller_kills_the_sandbox(sandbox: Sandbox, tree: Path) -> None:
    marker = f"sandbox-cancel-{uuid.uuid4().hex}"

    async def scenario() -> set[int]:
        task = asyncio.create_task(
            sandbox.run(daemon_command(marker), cwd=tree, limits=SandboxLimits(timeout_s=60))
        )
        await wait_for(tree / "hb")
        seen = pids_with(marker)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done, "the cancelled run did not finish within 10 s"
        with pytest.raises(asyncio.CancelledError):
            task.result()
        return seen

    started = time.monotonic()
    seen = asyncio.run(scenario())
    assert time.monotonic() - started < 10
    assert seen and not pids_with(marker), "a process survived the cancellation"
    beat = (tree / "hb").read_text()
    time.sleep(0.3)
    assert (tree / "hb").read_text() == beat
    assert not leftovers()


def test_a_bounded_fork_bomb_is_contained(sandbox: Sandbox, tree: Path) -> None:
    marker = f"sandbox-bomb-{uuid.uuid4().hex}"
    result = run(sandbox, [PY, "-c", BOUNDED_FORK_BOMB, marker], tree, max_processes=40)
    assert result.exit_code == 0, result.describe()
    spawned = int(result.output.split("spawned=")[1].split()[0])
    assert spawned <= 40, result.output
    assert "Resource temporarily unavailable" in result.output
    assert not pids_with(marker)
    assert not leftovers()


@pytest.mark.skipif(not IS_ROOT, reason="root-only: RLIMIT_NPROC caps non-root callers")
def test_as_root_each_command_gets_a_cgroup_that_is_removed(sandbox: Sandbox, tree: Path) -> None:
    """As root RLIMIT_NPROC does not apply: processes and memory are capped by a cgroup per
    command (the non-root equivalent is test_a_non_root_caller_is_capped_by_rlimits)."""
    setup, why = sandbox_module._detect_cgroups()
    assert setup is not None and setup.pids is not None and setup.memory is not None, why
    marker = f"sandbox-cgroup-{uuid.uuid4().hex}"
    seen: dict[str, str] = {}

    async def scenario() -> None:
        task = asyncio.create_task(
            sandbox.run(
                ["sh", "-c", f"touch started; sleep 30; : {marker}"],
                cwd=tree,
                limits=SandboxLimits(timeout_s=20, max_processes=77, memory_mb=300),
            )
        )
        await wait_for(tree / "started")
        shells = [p for p in pids_with(marker) if Path(f"/proc/{p}/comm").read_text() == "sh\n"]
        assert len(shells) == 1, shells
        for line in Path(f"/proc/{shells[0]}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if setup.version == 1 else ["pids", "memory"]:
                seen[controller] = path
        pids_dir = setup.pids / Path(seen["pids"]).name
        memory_dir = setup.memory / Path(seen["memory"]).name
        seen["pids.max"] = (pids_dir / "pids.max").read_text().strip()
        limit = "memory.limit_in_bytes" if setup.version == 1 else "memory.max"
        seen["memory"] = (memory_dir / limit).read_text().strip()
        seen["dirs"] = f"{pids_dir} {memory_dir}"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert seen["pids.max"] == "79"  # 77 for the command, 2 for bwrap and its init
    assert seen["memory"] == str(300 << 20)
    for folder in seen["dirs"].split():
        assert Path(folder).name.startswith(f"orchestrator-sandbox-{os.getpid()}-")
        assert not Path(folder).exists()
    assert not leftovers()


@pytest.mark.skipif(not IS_ROOT, reason="root-only: needs a memory cgroup (RLIMIT_AS is tested)")
def test_as_root_memory_is_capped_for_all_processes_together(sandbox: Sandbox, tree: Path) -> None:
    """Two processes of 150 MB each fit RLIMIT_AS (200 MB each) but not the cgroup (200 MB)."""
    code = """
import subprocess, sys, time
child_code = "x = b'x' * (150 << 20); import time; time.sleep(1)"
child = subprocess.Popen([sys.executable, "-c", child_code])
time.sleep(0.3)
y = b"y" * (150 << 20)
print("parent allocated", flush=True)
print("child", child.wait(), flush=True)
"""
    capped = run(sandbox, [PY, "-c", code], tree, memory_mb=200)
    assert "child 0" not in capped.output, capped.describe()
    roomy = run(sandbox, [PY, "-c", code], tree, memory_mb=1024)
    assert "child 0" in roomy.output, roomy.describe()


def test_a_non_root_caller_is_capped_by_rlimits() -> None:
    """The GitHub-hosted case (the non-root ``runner`` user): RLIMIT_NPROC in the sandbox's own
    user namespace caps a fork bomb, RLIMIT_AS caps memory, and the caller owns the tree.
    Run as uid 65534 through setpriv when the tests run as root, directly otherwise."""
    # Everything uid 65534 reads lives in one world-readable folder (pytest's tmp is 0700).
    work = Path(tempfile.mkdtemp(prefix="sandbox-nonroot-"))
    try:
        work.chmod(0o755)
        package = work / "pkg" / "orchestrator"
        package.mkdir(parents=True)
        for name in ("__init__.py", "sandbox.py", "redact.py", "egress.py", "sandbox_launcher.py"):
            shutil.copy(ROOT / "orchestrator" / name, package / name)
        project = work / "tree"
        project.mkdir()
        script = work / "nonroot.py"
        script.write_text(
            "import asyncio, json, os, sys\n"
            "from pathlib import Path\n"
            "from orchestrator.egress import Endpoint\n"
            "from orchestrator.sandbox import Sandbox, SandboxLimits\n"
            "sb = Sandbox.probe()\n"
            "assert isinstance(sb, Sandbox), sb.reason\n"
            "tree = Path(sys.argv[1])\n"
            "limits = SandboxLimits(max_processes=30, memory_mb=256)\n"
            "def run(argv):\n"
            "    return asyncio.run(sb.run(argv, cwd=tree, limits=limits))\n"
            f"bomb = run([sys.executable, '-c', {BOUNDED_FORK_BOMB!r}])\n"
            "big = run([sys.executable, '-c', 'b = bytearray(1 << 30)'])\n"
            "write = run(['sh', '-c', 'echo hi > owned.txt'])\n"
            "fetch = ('import os, urllib.request as u;'\n"
            '         \' print(os.environ["K"], u.urlopen(os.environ["U"]).read())\')\n'
            "net = asyncio.run(sb.run([sys.executable, '-c', fetch], cwd=tree, limits=limits,"
            " env={'U': sys.argv[2]}, secret_env={'K': 'nonroot-secret'},"
            " egress=[Endpoint.parse(sys.argv[2])]))\n"
            "print(json.dumps({'uid': os.getuid(), 'notes': sb.notes, 'bomb': bomb.output,"
            " 'big': big.output, 'write': write.exit_code, 'net': net.output}))\n"
        )
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package.parent), "LANG": "C.UTF-8"}
        prefix: list[str] = []
        python = PY
        if IS_ROOT:
            os.chown(project, NOBODY, NOBODY)
            env["HOME"] = "/nonexistent"
            prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
            python = _python_for(prefix, env)
        with serve(lambda _: Reply(body="from-the-host")) as server:
            proc = subprocess.run(
                [*prefix, python, "-B", str(script), str(project), f"{server.url}/x"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout.splitlines()[-1])
        assert report["uid"] != 0
        assert "spawned=" in report["bomb"], report
        spawned = int(report["bomb"].split("spawned=")[1].split()[0])
        assert spawned <= 30, report["bomb"]
        assert "Resource temporarily unavailable" in report["bomb"]
        assert "MemoryError" in report["big"]
        assert report["write"] == 0
        # The egress sockets and the secrets' pipe work for a non-root caller too.
        assert "nonroot-secret b'from-the-host'" in report["net"], report["net"]
        assert (project / "owned.txt").stat().st_uid == report["uid"]
        assert any("per process (RLIMIT_AS)" in note for note in report["notes"])
        assert not any("max_processes is not enforced" in n for n in report["notes"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _python_for(prefix: list[str], env: dict[str, str]) -> str:
    """A Python >= 3.11 that uid 65534 can run, system ones first (ours may live in /root)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", PY):
        if not candidate:
            continue
        check = subprocess.run(
            [*prefix, candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
            capture_output=True,
            env=env,
            timeout=20,
        )
        if check.returncode == 0:
            return candidate
    pytest.fail("no Python >= 3.11 that uid 65534 can run: install python3 (3.11+) in /usr/bin")


def test_output_is_capped_head_and_tail_kept(sandbox: Sandbox, tree: Path) -> None:
    code = "import sys; sys.stdout.write('START' + 'x' * 200_000 + 'END\\n')"
    result = run(sandbox, [PY, "-c", code], tree, output_bytes=10_000)
    assert result.exit_code == 0 and result.killed is None
    assert result.output_bytes == 200_009 and result.truncated
    assert result.output.startswith("START") and result.output.endswith("END\n")
    assert "[... 190009 bytes of output left out ...]" in result.output
    assert len(result.output) < 10_100
    assert "200009 bytes in all, truncated" in result.describe()


def test_a_command_printing_50_mb_is_stopped(sandbox: Sandbox, tree: Path) -> None:
    code = "import sys\nfor _ in range(50): sys.stdout.buffer.write(b'x' * (1 << 20))"
    result = run(sandbox, [PY, "-c", code], tree)  # default cap: 64 kB kept, killed past 6.4 MB
    assert result.killed == "output" and result.exit_code is None
    assert 6_400_000 < result.output_bytes < 20 * (1 << 20)
    assert result.truncated and len(result.output) < 64_100
    assert result.duration_s < 5


def test_file_cap_stops_one_huge_file(sandbox: Sandbox, tree: Path) -> None:
    result = run(sandbox, ["sh", "-c", "head -c 20000000 /dev/zero > big"], tree, file_mb=5)
    assert result.exit_code == 128 + 25, result.describe()  # SIGXFSZ
    assert "SIGXFSZ" in result.describe()
    assert (tree / "big").stat().st_size == 5 * (1 << 20)


def test_disk_cap_stops_many_files_but_not_other_writers(
    sandbox: Sandbox, tree: Path, tmp_path: Path
) -> None:
    many = (
        "i=0; while [ $i -lt 100 ]; do"
        " head -c 2000000 /dev/zero > f$i; i=$((i+1)); sleep 0.02; done"
    )
    result = run(sandbox, ["sh", "-c", many], tree, disk_mb=20, file_mb=5)
    assert result.killed == "disk", result.describe()
    written = sum(f.stat().st_size for f in tree.glob("f*"))
    assert 20 * (1 << 20) < written < 60 * (1 << 20)
    assert result.duration_s < 10

    # Another writer on the same file system only makes the sandbox look at its tree.
    async def busy_neighbour() -> CommandResult:
        task = asyncio.create_task(
            sandbox.run(["sleep", "1.2"], cwd=tree, limits=SandboxLimits(disk_mb=20))
        )
        await asyncio.sleep(0.3)
        with (tmp_path / "neighbour.bin").open("wb") as fh:
            fh.write(b"\0" * (60 << 20))
        return await task

    quiet = asyncio.run(busy_neighbour())
    assert quiet.killed is None and quiet.exit_code == 0, quiet.describe()


def test_memory_limit_fails_a_large_allocation(sandbox: Sandbox, tree: Path) -> None:
    code = "b = bytearray(1 << 30); print('allocated')"
    capped = run(sandbox, [PY, "-c", code], tree, memory_mb=256)
    assert capped.exit_code != 0 and "MemoryError" in capped.output, capped.describe()
    roomy = run(sandbox, [PY, "-c", code], tree, memory_mb=2048)
    assert roomy.exit_code == 0 and "allocated" in roomy.output, roomy.describe()


def test_runs_overlap_and_never_block_the_event_loop(sandbox: Sandbox, tree: Path) -> None:
    """The orchestrator runs many tasks in one event loop: four sandboxes printing 5 MB each
    and sleeping 0.5 s overlap, and a ticker on the same loop keeps ticking meanwhile."""
    code = (
        "import sys, time\n"
        "sys.stdout.buffer.write(b'x' * (5 << 20)); sys.stdout.flush()\n"
        "time.sleep(0.5)"
    )

    async def scenario() -> tuple[float, float, list[CommandResult]]:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        results = await asyncio.gather(
            *(sandbox.run([PY, "-c", code], cwd=tree, limits=SandboxLimits()) for _ in range(4))
        )
        wall = time.monotonic() - started
        stop.set()
        await tick
        return wall, max(gaps), list(results)

    wall, worst_gap, results = asyncio.run(scenario())
    assert all(r.exit_code == 0 and r.output_bytes == 5 << 20 for r in results)
    assert wall < 1.8, f"4 x 0.5 s took {wall:.2f} s: the runs did not overlap"
    assert worst_gap < 0.25, f"the event loop stalled for {worst_gap:.3f} s"


def test_exit_codes_durations_and_description(sandbox: Sandbox, tree: Path) -> None:
    ok = run(sandbox, ["/bin/true"], tree)
    assert ok.ok and ok.exit_code == 0 and ok.killed is None and 0 < ok.duration_s < 5
    assert ok.describe() == f"$ /bin/true\nexit code 0 after {ok.duration_s:.2f} s\noutput: none"

    three = run(sandbox, ["sh", "-c", "echo out; echo err >&2; exit 3"], tree)
    assert three.exit_code == 3 and not three.ok
    assert three.output == "out\nerr\n" and three.output_bytes == 8 and not three.truncated
    assert three.describe().startswith("$ sh -c 'echo out; echo err >&2; exit 3'\nexit code 3")

    slow = run(sandbox, ["sleep", "0.3"], tree)
    assert slow.exit_code == 0 and 0.3 <= slow.duration_s < 3

    missing = run(sandbox, ["no-such-program-here"], tree)
    assert missing.exit_code == 127 and "(command not found)" in missing.describe()

    signalled = run(sandbox, ["sh", "-c", "kill -9 $$"], tree)
    assert signalled.exit_code == 137 and "killed by SIGKILL" in signalled.describe()


def test_bad_arguments_are_refused_before_anything_runs(sandbox: Sandbox, tree: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        run(sandbox, [], tree)
    with pytest.raises(ValueError, match="not an existing folder"):
        run(sandbox, ["true"], tree / "missing")
    with pytest.raises(ValueError, match="must stay hidden"):
        run(sandbox, ["true"], Path("/"))
    with pytest.raises(ValueError, match="must stay hidden"):
        run(sandbox, ["true"], Path(os.path.expanduser("~")))
    with pytest.raises(ValueError, match="positive"):
        SandboxLimits(timeout_s=0)
    assert not leftovers()


# --------------------------------------------------------------------------- unavailable


def test_switched_off_sandbox_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SANDBOX", "off")
    probed = Sandbox.probe()
    assert isinstance(probed, SandboxUnavailable)
    assert probed.reason == "the sandbox is switched off (ORCHESTRATOR_SANDBOX=off)"
    assert Sandbox.probe() is probed  # cached
    monkeypatch.setenv("ORCHESTRATOR_SANDBOX", "maybe")
    maybe = Sandbox.probe()
    assert isinstance(maybe, SandboxUnavailable) and "'maybe'" in maybe.reason


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("bwrap: setting up uid map: Permission denied", "apparmor_parser -r"),
        ("bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted", "AppArmor"),
        (
            "bwrap: No permissions to create a new namespace, likely because the kernel does"
            " not allow non-privileged user namespaces",
            "kernel.unprivileged_userns_clone=1",
        ),
        (
            "bwrap: Creating new namespace failed: nesting depth or"
            " /proc/sys/user/max_*_namespaces exceeded (ENOSPC)",
            "user.max_user_namespaces",
        ),
        ("bwrap: Unknown option --disable-userns", "bubblewrap >= 0.8.0"),
        ("bwrap: something new went wrong", "exited 1 for /bin/true): bwrap: something new"),
    ],
)
def test_a_broken_bwrap_gives_a_reason_and_never_runs_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str, expected: str
) -> None:
    log = tmp_path / "calls.log"
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'if [ "$1" = --version ]; then echo "bubblewrap 0.7.0"; exit 0; fi\n'
        f"echo '{message}' >&2\n"
        "exit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("ORCHESTRATOR_BWRAP", str(fake))
    probed = Sandbox.probe()
    assert isinstance(probed, SandboxUnavailable)
    assert expected in probed.reason and "\n" not in probed.reason
    calls = log.read_text().splitlines()
    assert calls[0] == "--version"
    # The probe ran the sandbox argv with /bin/true, nothing else and nothing outside bwrap.
    assert all(call.endswith("-- /bin/true") for call in calls[1:]) and len(calls) >= 2


def test_a_missing_or_hanging_bwrap_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BWRAP", str(tmp_path / "nowhere" / "bwrap"))
    missing = Sandbox.probe()
    assert isinstance(missing, SandboxUnavailable) and "not an executable file" in missing.reason

    hang = tmp_path / "bwrap"
    hang.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && exit 1\necho $$ > {tmp_path}/pid\nexec sleep 30\n'
    )
    hang.chmod(0o755)
    monkeypatch.setenv("ORCHESTRATOR_BWRAP", str(hang))
    monkeypatch.setattr(sandbox_module, "PROBE_TIMEOUT_S", 0.5)
    hung = Sandbox.probe()
    assert isinstance(hung, SandboxUnavailable) and "did not finish" in hung.reason
    pid = int((tmp_path / "pid").read_text())
    cmdline = Path(f"/proc/{pid}/cmdline")
    assert not cmdline.exists() or b"sleep" not in cmdline.read_bytes()


def test_limits_that_cannot_be_enforced_are_reported(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SANDBOX_CGROUP", "off")
    probed = Sandbox.probe()
    assert isinstance(probed, Sandbox), getattr(probed, "reason", "")
    assert any("memory_mb is enforced per process" in note for note in probed.notes)
    # As root without a pids cgroup, nothing caps processes: it must say so.
    assert any("max_processes is not enforced" in note for note in probed.notes) == IS_ROOT
    result = run(probed, ["/bin/true"], tree)
    assert result.notes == probed.notes
    for note in probed.notes:
        assert f"note: {note}" in result.describe()


# --------------------------------------------------------------------------- split_command


def test_split_command() -> None:
    assert split_command("pytest -q 'tests/a b.py'") == ["pytest", "-q", "tests/a b.py"]
    assert split_command("echo a | wc") == ["echo", "a", "|", "wc"]  # no shell features
    assert split_command("/usr/bin/git status", allowed=["git"]) == ["/usr/bin/git", "status"]
    for bad, message in [
        ("echo 'unclosed", "cannot split the command: no closing quotation"),
        ("echo \\", "cannot split the command: no escaped character"),
        ("", "the command is empty"),
        ("   ", "the command is empty"),
        ("echo \0", "the command contains a NUL byte"),
        ("rm -rf /", "'rm' is not an allowed command (allowed: git, pytest)"),
    ]:
        with pytest.raises(ValueError) as info:
            split_command(bad, allowed=["pytest", "git"])
        assert str(info.value) == message
    with pytest.raises(ValueError, match=r"allowed: none"):
        split_command("ls", allowed=[])


def test_a_program_named_by_its_path_under_a_hidden_folder_still_runs(
    sandbox: Sandbox, tree: Path, tmp_path: Path
) -> None:
    """A verify command such as ``/tmp/…/venv/bin/python -m pytest`` (a clone's venv under the
    private /tmp, or pyenv under a hidden home) runs: the venv and its base interpreter are
    bound back read-only, and nothing beside them becomes visible."""
    venv = tmp_path / "tools" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    neighbour = tmp_path / "tools" / "notes.txt"
    neighbour.write_text("private\n")
    python = str(venv / "bin" / "python")
    ran = run(sandbox, [python, "-c", "import sys; print(sys.prefix)"], tree)
    assert ran.exit_code == 0, ran.describe()
    assert str(venv) in ran.output
    peek = run(sandbox, [python, "-c", f"print(open({str(neighbour)!r}).read())"], tree)
    assert peek.exit_code != 0 and "private" not in peek.output
    write = run(sandbox, [python, "-c", f"open({str(venv / 'x')!r}, 'w')"], tree)
    assert write.exit_code != 0 and not (venv / "x").exists()
