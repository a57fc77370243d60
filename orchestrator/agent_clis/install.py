"""Find and install the vendor agent CLIs (npm packages) at pinned versions.

An install is an ``npm install --prefix`` folder named ``<provider>-<version>`` under one
folder, ``$ORCHESTRATOR_AGENT_CLIS`` (the tests use ``.cache/agent-clis``). ``find`` looks
there first, then on PATH; ``install`` fills that folder. Standard library only: it runs in an
Actions step before anything else is installed.

Command line (exit 2 on a bad argument, 1 when npm is missing or fails)::

    python -m orchestrator.agent_clis.install [--dir DIR] PROVIDER[@VERSION] ...

prints each CLI's bin folder, one per line, so an Actions step can append them to
``$GITHUB_PATH``; what it did goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.agent_clis.catalog import CLIS, AgentCli, agent_cli
from orchestrator.errors import InputError, OrchestratorError

#: The folder holding the installs, ``<dir>/<provider>-<version>/``.
DIR_ENV = "ORCHESTRATOR_AGENT_CLIS"
#: Where the command line installs without ``--dir`` or ``$ORCHESTRATOR_AGENT_CLIS`` (under cwd).
DEFAULT_DIR = Path(".cache") / "agent-clis"

# A version goes into a folder name and an npm argument: semver-like characters only.
_VERSION = re.compile(r"[0-9A-Za-z.+-]+")


class InstallError(OrchestratorError):
    """npm is missing or an install failed; exit code 1, a one-line message."""


@dataclass(frozen=True)
class Installed:
    """An installed CLI.

    Attributes:
        binary: The executable to run.
        root: The ``node_modules`` folder that must be visible (read-only) to run it: the
            install's own, or the global one holding a PATH install's package.
        version: The package's version as installed, ``None`` when it cannot be read (a
            binary on PATH that is not an npm package).
    """

    binary: Path
    root: Path
    version: str | None

    @property
    def bin_dir(self) -> Path:
        """The folder holding ``binary`` (what goes on PATH)."""
        return self.binary.parent


def install_folder(cli: AgentCli, version: str, folder: Path) -> Path:
    """The ``npm install --prefix`` folder of ``cli`` at ``version`` under ``folder``."""
    return folder / f"{cli.provider}-{version}"


def check_version(version: str, source: str = "version") -> str:
    """``version`` when it is semver-like (``[0-9A-Za-z.+-]+``), else an ``InputError``."""
    if not _VERSION.fullmatch(version) or version.startswith((".", "-")):
        raise InputError(source, "", f"bad version {version!r}: use letters, digits and . + -")
    return version


def find(
    cli: AgentCli, version: str | None = None, *, environ: Mapping[str, str] | None = None
) -> Installed | None:
    """The installed ``cli``: ``$ORCHESTRATOR_AGENT_CLIS/<provider>-<version>`` first, else PATH.

    Args:
        cli: The catalog entry.
        version: The wanted version; the pinned one when ``None``.
        environ: The environment to read ``$ORCHESTRATOR_AGENT_CLIS`` and ``PATH`` from
            (``os.environ`` when ``None``).

    Returns:
        The install, or ``None`` when there is none. A PATH install may be another version
        than the one asked for: ``Installed.version`` says which, the caller decides.
    """
    env = os.environ if environ is None else environ
    folder = env.get(DIR_ENV)
    if folder:
        found = _from_prefix(cli, install_folder(cli, version or cli.version, Path(folder)))
        if found is not None:
            return found
    on_path = shutil.which(cli.bin, path=env.get("PATH", os.defpath))
    return _from_path(cli, Path(on_path)) if on_path else None


def _from_prefix(cli: AgentCli, prefix: Path) -> Installed | None:
    """The install in an ``npm install --prefix`` folder, if its executable is there."""
    modules = prefix / "node_modules"
    binary = modules / ".bin" / cli.bin
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None
    return Installed(binary, modules, _package_version(modules / cli.package, cli.package))


def _from_path(cli: AgentCli, binary: Path) -> Installed:
    """The install behind an executable found on PATH (usually an npm global install).

    npm links ``<prefix>/bin/<bin>`` to ``<prefix>/lib/node_modules/<package>/...``; the root is
    the ``node_modules`` folder above the link's target that holds the package. A binary that
    is no npm package (a vendor's standalone installer) gets its own folder as root and no
    version.
    """
    real = binary.resolve()
    for folder in real.parents:
        package = folder / cli.package
        if folder.name == "node_modules" and package in real.parents:
            return Installed(binary, folder, _package_version(package, cli.package))
    return Installed(binary, real.parent, None)


def _package_version(package: Path, name: str) -> str | None:
    """The ``version`` in ``package/package.json`` when it is the package ``name``."""
    try:
        manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("name") != name:
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def install(cli: AgentCli, version: str, folder: Path) -> Installed:
    """Install ``cli`` at ``version`` into ``folder/<provider>-<version>`` (once).

    npm installs into a temporary sibling that is renamed into place, so a half-done install
    is never taken for a done one. Install scripts run: Claude Code's postinstall links its
    native binary (``--ignore-scripts`` leaves a stub that refuses to start).

    Raises:
        InputError: ``version`` is not semver-like.
        InstallError: npm is missing, fails, or leaves no executable.
    """
    check_version(version)
    target = install_folder(cli, version, folder)
    done = _from_prefix(cli, target)
    if done is not None:
        return done
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError(f"npm not found on PATH: install Node.js (with npm) to get {cli.bin}")
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder))
    try:
        _npm_install(npm, f"{cli.package}@{version}", scratch)
        if _from_prefix(cli, scratch) is None:
            raise InstallError(f"npm install {cli.package}@{version} left no .bin/{cli.bin}")
        _move_into_place(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    installed = _from_prefix(cli, target)
    if installed is None:  # another process put a broken install there between our checks
        raise InstallError(f"{target} holds no node_modules/.bin/{cli.bin}; remove it")
    return installed


def _npm_install(npm: str, spec: str, prefix: Path) -> None:
    """``npm install --prefix prefix spec``; its last stderr line on failure."""
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund"]
    done = subprocess.run(
        [*command, "--loglevel=error", spec], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else "no error output"
        raise InstallError(f"npm install {spec} failed (exit {done.returncode}): {last}")


def _move_into_place(scratch: Path, target: Path) -> None:
    """Rename ``scratch`` to ``target``; a concurrent install that got there first wins."""
    try:
        scratch.rename(target)
    except OSError:
        if not target.is_dir():
            raise


def parse_spec(spec: str) -> tuple[AgentCli, str]:
    """``PROVIDER[@VERSION]`` → the catalog entry and the version (the pinned one by default).

    Raises:
        InputError: Unknown provider or bad version.
    """
    provider, _, version = spec.partition("@")
    cli = agent_cli(provider)
    if cli is None:
        known = ", ".join(sorted(CLIS))
        raise InputError(spec, "", f"unknown provider {provider!r} (known: {known})")
    return cli, check_version(version, spec) if version else cli.version


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The command line; returns the exit code."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.agent_clis.install",
        description="Install vendor agent CLIs; prints each one's bin folder.",
    )
    parser.add_argument(
        "--dir", type=Path, help=f"install folder (default ${DIR_ENV} or .cache/agent-clis)"
    )
    parser.add_argument("specs", nargs="+", metavar="PROVIDER[@VERSION]")
    args = parser.parse_args(argv)
    folder = (args.dir or Path(env.get(DIR_ENV) or DEFAULT_DIR)).absolute()
    try:
        wanted = [parse_spec(spec) for spec in args.specs]  # all checked before any install
    except InputError as exc:
        sys.stderr.write(f"install: error: {exc}\n")
        return exc.exit_code
    for cli, version in wanted:
        try:
            installed = _install_reporting(cli, version, folder)
        except InstallError as exc:
            sys.stderr.write(f"install: error: {exc}\n")
            return exc.exit_code
        print(installed.bin_dir)
    return 0


def _install_reporting(cli: AgentCli, version: str, folder: Path) -> Installed:
    """``install`` with one stderr line saying what it did and how long it took."""
    started = time.monotonic()
    already = _from_prefix(cli, install_folder(cli, version, folder)) is not None
    installed = install(cli, version, folder)
    what = "already installed" if already else f"installed in {time.monotonic() - started:.1f} s"
    sys.stderr.write(f"{cli.provider} {version}: {what} ({installed.binary})\n")
    return installed


if __name__ == "__main__":
    sys.exit(main())
