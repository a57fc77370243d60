"""The agent-CLI installer: spec parsing, install folders, idempotence, PATH installs.

npm is replaced by a small executable speaking npm's command line (``install --prefix P
pkg@ver``) that lays out what npm would: ``P/node_modules/<package>/package.json``, its bin
and the ``.bin`` link. It logs each call, so a test can tell whether npm ran at all.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.agent_clis.catalog import CLIS, agent_cli
from orchestrator.agent_clis.install import (
    DIR_ENV,
    InstallError,
    find,
    install,
    main,
    parse_spec,
)
from orchestrator.errors import InputError

CLAUDE = CLIS["claude-code"]
REPO = Path(__file__).resolve().parents[2]

FAKE_NPM = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_NPM_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if os.environ.get("FAKE_NPM_FAIL"):
    sys.stderr.write("npm error code E404\nnpm error 404 Not Found - GET https://registry/x\n")
    sys.exit(1)
prefix = args[args.index("--prefix") + 1]
spec = args[-1]
name, _, version = spec.rpartition("@")
bin_name = os.environ["FAKE_NPM_BIN"]
package = os.path.join(prefix, "node_modules", name)
os.makedirs(os.path.join(package, "bin"))
with open(os.path.join(package, "package.json"), "w") as f:
    json.dump({"name": name, "version": version, "bin": {bin_name: "bin/cli"}}, f)
cli = os.path.join(package, "bin", "cli")
with open(cli, "w") as f:
    f.write("#!/bin/sh\necho " + version + "\n")
os.chmod(cli, 0o755)
os.makedirs(os.path.join(prefix, "node_modules", ".bin"))
os.symlink(os.path.join("..", name, "bin", "cli"),
           os.path.join(prefix, "node_modules", ".bin", bin_name))
"""


@pytest.fixture
def npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``npm`` first on PATH; returns its call log."""
    bin_dir = tmp_path / "npm-bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(FAKE_NPM)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "npm.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    monkeypatch.setenv("FAKE_NPM_BIN", CLAUDE.bin)
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_catalog_pins_each_cli_with_its_package_binary_and_key() -> None:
    assert {(c.provider, c.package, c.bin, c.key_env) for c in CLIS.values()} == {
        ("claude-code", "@anthropic-ai/claude-code", "claude", "ANTHROPIC_API_KEY"),
        ("codex-cli", "@openai/codex", "codex", "OPENAI_API_KEY"),
        ("gemini-cli", "@google/gemini-cli", "gemini", "GEMINI_API_KEY"),
    }
    assert agent_cli("codex-cli") is CLIS["codex-cli"]
    assert agent_cli("openai") is None


@pytest.mark.parametrize(
    ("spec", "version"),
    [("claude-code", "2.1.332"), ("claude-code@2.0.1-beta.3+x", "2.0.1-beta.3+x")],
)
def test_a_spec_names_a_provider_and_optionally_a_version(spec: str, version: str) -> None:
    assert parse_spec(spec) == (CLAUDE, version)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("claude", "unknown provider 'claude' (known: claude-code, codex-cli, gemini-cli)"),
        ("claude-code@1.0;rm -rf /", "bad version '1.0;rm -rf /'"),
        ("claude-code@$(id)", "bad version"),
        ("claude-code@../x", "bad version"),
        ("claude-code@-x", "bad version"),
    ],
)
def test_a_bad_spec_is_an_input_error(spec: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_spec(spec)
    assert says in str(caught.value)


def test_install_runs_npm_with_scripts_into_a_folder_named_provider_and_version(
    npm: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "clis"
    installed = install(CLAUDE, "2.1.332", folder)
    prefix = folder / "claude-code-2.1.332"
    assert installed.binary == prefix / "node_modules" / ".bin" / "claude"
    assert installed.root == prefix / "node_modules"
    assert installed.version == "2.1.332"
    assert subprocess.run([installed.binary], capture_output=True, text=True).stdout == "2.1.332\n"
    (args,) = calls(npm)
    assert args[:2] == ["install", "--prefix"]
    assert "--ignore-scripts" not in args  # Claude Code's postinstall must run
    assert args[-1] == "@anthropic-ai/claude-code@2.1.332"
    assert sorted(p.name for p in folder.iterdir()) == ["claude-code-2.1.332"]  # no leftovers


def test_a_second_install_does_not_call_npm(npm: Path, tmp_path: Path) -> None:
    first = install(CLAUDE, "2.1.332", tmp_path)
    assert install(CLAUDE, "2.1.332", tmp_path) == first
    assert len(calls(npm)) == 1
    install(CLAUDE, "2.1.333", tmp_path)  # another version is another folder
    assert len(calls(npm)) == 2


def test_a_failed_install_says_npm_s_last_line_and_leaves_nothing(
    npm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    with pytest.raises(InstallError) as caught:
        install(CLAUDE, "9.9.9", tmp_path / "clis")
    assert str(caught.value) == (
        "npm install @anthropic-ai/claude-code@9.9.9 failed (exit 1): "
        "npm error 404 Not Found - GET https://registry/x"
    )
    assert list((tmp_path / "clis").iterdir()) == []


def test_without_npm_install_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InstallError, match="npm not found on PATH"):
        install(CLAUDE, "2.1.332", tmp_path / "clis")


def test_find_prefers_the_install_folder_then_path(npm: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clis"
    install(CLAUDE, "2.1.332", folder)
    environ = {DIR_ENV: str(folder), "PATH": ""}
    found = find(CLAUDE, environ=environ)
    assert found is not None
    assert found.version == "2.1.332"
    assert find(CLAUDE, "2.0.0", environ=environ) is None  # not installed, nothing on PATH
    assert find(CLAUDE, environ={"PATH": ""}) is None


def test_a_path_install_is_found_with_its_node_modules_and_version(
    npm: Path, tmp_path: Path
) -> None:
    # npm -g lays out <prefix>/lib/node_modules/<package> and links <prefix>/bin/<bin> to it.
    install(CLAUDE, "2.0.5", tmp_path / "g")
    modules = tmp_path / "g" / "claude-code-2.0.5" / "node_modules"
    global_bin = tmp_path / "global-bin"
    global_bin.mkdir()
    (global_bin / "claude").symlink_to(modules / "@anthropic-ai" / "claude-code" / "bin" / "cli")
    found = find(CLAUDE, environ={DIR_ENV: str(tmp_path / "none"), "PATH": str(global_bin)})
    assert found is not None
    assert (found.binary, found.root, found.version) == (global_bin / "claude", modules, "2.0.5")


def test_a_path_binary_outside_npm_has_no_version(tmp_path: Path) -> None:
    binary = tmp_path / "claude"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    found = find(CLAUDE, environ={"PATH": str(tmp_path)})
    assert found is not None
    assert (found.root, found.version) == (tmp_path, None)


def test_the_command_line_prints_one_bin_folder_per_cli(
    npm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "clis"
    assert main(["--dir", str(folder), "claude-code", "claude-code@2.0.0"], environ={}) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        str(folder / f"claude-code-{v}" / "node_modules" / ".bin") for v in ("2.1.332", "2.0.0")
    ]
    assert "claude-code 2.1.332: installed in" in err
    assert main(["claude-code"], environ={DIR_ENV: str(folder)}) == 0
    assert "claude-code 2.1.332: already installed" in capsys.readouterr().err
    assert len(calls(npm)) == 2


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("copilot", "install: error: copilot: unknown provider 'copilot'"),
        ("gemini-cli@1 2", "install: error: gemini-cli@1 2: bad version '1 2'"),
    ],
)
def test_the_command_line_refuses_a_bad_spec_before_installing_anything(
    npm: Path, tmp_path: Path, spec: str, says: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.agent_clis.install",
            "--dir",
            str(tmp_path),
            "claude-code",
            spec,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(says)
    assert len(done.stderr.splitlines()) == 1
    assert calls(npm) == []


def test_the_command_line_fails_with_one_line_when_npm_fails(
    npm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    assert main(["--dir", str(tmp_path), "claude-code"], environ={}) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("install: error: npm install @anthropic-ai/claude-code@2.1.332 failed")
    assert len(err.splitlines()) == 1
