"""A skipped trigger, as the plan job runs it: what it imports, what it writes, what it outputs.

The plan job runs ``orchestrator plan --event … --out …`` and then
``python -m orchestrator.github.actions plan-outputs``. For an event that is not ours both
must stay cheap: this checks, with ``python -X importtime`` on the real commands, that neither
loads pydantic, PyYAML (without a settings layer to parse), the provider SDKs or githubkit,
and that what they write is what the full path writes. A behaviour test, not a timing one:
``bench/skip_path.py`` measures the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator import commands
from orchestrator.cli import parse
from orchestrator.contracts import Plan
from orchestrator.init_config import write_config_layer
from tests.conftest import WEBHOOKS

pytestmark = pytest.mark.slow

#: Never on the skip path: the models, the providers' SDKs, the GitHub client and what they use.
HEAVY = {
    "pydantic",
    "pydantic_core",
    "openai",
    "anthropic",
    "google",
    "githubkit",
    "httpx",
    "mcp",
    "hishel",
}
#: Standard modules the skip path avoids for their start-up cost.
COSTLY_STDLIB = {"argparse", "asyncio", "dataclasses", "inspect", "pathlib", "tempfile", "typing"}
#: Our own modules that mean "the full path ran".
FULL_PATH = {"orchestrator.config", "orchestrator.contracts", "orchestrator.planner"}

EXE = Path(sys.executable).parent / "orchestrator"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["GITHUB_RUN_ID"] = "4242"  # a fixed run id, so the two paths' files can be compared
    return env


def _imported(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Exit code, stdout and every module imported by ``python -X importtime ARGV``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        env=env or _env(),
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    modules.discard("imported package")  # the header line
    return proc.returncode, proc.stdout, modules


def _top(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def _event(tmp_path: Path, fixture: str, edit: dict[str, Any]) -> Path:
    payload = json.loads((WEBHOOKS / fixture).read_text(encoding="utf-8"))
    for dotted, value in edit.items():
        node = payload
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def _plan_argv(event: Path, name: str, out: Path, repo: Path) -> list[str]:
    # As actions/steps.sh runs it.
    return ["plan", "--out", str(out), "--repo", str(repo), "--event", str(event),
            "--event-name", name, "--publish"]  # fmt: skip


def _full_path_plan(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """plan.json as the full path writes it (argparse, config models, ``write_model``)."""
    for key in [k for k in os.environ if k.startswith("GITHUB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    out = tmp_path / "full"
    out.mkdir()
    args = parse([*argv[:2], str(out), *argv[3:]])
    assert commands.dispatch(args) == 0
    return (out / "plan.json").read_text(encoding="utf-8")


def _without_time(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if '"created_at"' not in line)


SKIPS = [
    ("untrusted /orchestrate", "issue_comment.created.1.json",
     {"comment.body": "/orchestrate add dark mode", "comment.author_association": "NONE"}),
    ("no command", "issue_comment.created.1.json", {"comment.body": "Looks good to me"}),
    ("another label", "issues.labeled.1.json", {"label.name": "bug"}),
    ("a bot", "issue_comment.created.1.json",
     {"sender.login": "renovate[bot]", "sender.type": "Bot", "comment.body": "/orchestrate"}),
]  # fmt: skip


@pytest.mark.parametrize(("why", "fixture", "edit"), SKIPS, ids=[case[0] for case in SKIPS])
def test_a_skipped_trigger_loads_no_model_sdk_or_yaml_and_writes_the_full_path_s_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str, fixture: str, edit: dict[str, Any]
) -> None:
    event = _event(tmp_path, fixture, edit)
    out = tmp_path / "run"
    out.mkdir()  # as steps.sh does before the command
    argv = _plan_argv(event, fixture.split(".")[0], out, tmp_path)
    code, stdout, modules = _imported([str(EXE), *argv])
    assert code == 0, stdout
    assert stdout.startswith("skipped: "), stdout
    assert not _top(modules) & (HEAVY | {"yaml"}), sorted(_top(modules) & (HEAVY | {"yaml"}))
    assert not modules & FULL_PATH
    assert not modules & COSTLY_STDLIB, sorted(modules & COSTLY_STDLIB)
    written = (out / "plan.json").read_text(encoding="utf-8")
    assert Plan.model_validate_json(written).status == "skipped"
    assert _without_time(written) == _without_time(_full_path_plan(argv, tmp_path, monkeypatch))


def test_plan_outputs_of_a_skipped_plan_load_no_model_and_match_the_full_path(
    tmp_path: Path,
) -> None:
    event = _event(tmp_path, "issue_comment.created.1.json", {"comment.body": "thanks"})
    out = tmp_path / "run"
    out.mkdir()
    assert _imported([str(EXE), *_plan_argv(event, "issue_comment", out, tmp_path)])[0] == 0
    outputs: dict[str, dict[str, str]] = {}
    for kind, extra in (("skip path", []), ("full path", ["--max-waves", "8"])):
        env = {**_env(), "GITHUB_OUTPUT": str(tmp_path / f"{kind}.txt")}
        argv = ["-m", "orchestrator.github.actions", "plan-outputs", "--plan",
                str(out / "plan.json"), *extra]  # fmt: skip
        code, stdout, modules = _imported(argv, env)
        assert code == 0
        assert stdout.startswith("::notice title=orchestrator plan::not running: ")
        outputs[kind] = _read_outputs(tmp_path / f"{kind}.txt")
        if kind == "skip path":
            assert not _top(modules) & (HEAVY | {"yaml"})
            assert not modules & COSTLY_STDLIB, sorted(modules & COSTLY_STDLIB)
        else:  # --max-waves is not the skip path's: the control that the check can fail
            assert "pydantic" in _top(modules)
    assert outputs["skip path"] == outputs["full path"]
    assert outputs["skip path"]["run"] == "false"


def _read_outputs(path: Path) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` in the heredoc form → name: value."""
    lines = path.read_text(encoding="utf-8").splitlines()
    values: dict[str, str] = {}
    while lines:
        name, delimiter = lines.pop(0).split("<<")
        value = []
        while (line := lines.pop(0)) != delimiter:
            value.append(line)
        values[name] = "\n".join(value)
    return values


def test_an_init_layer_needs_no_yaml_and_a_real_layer_no_model(tmp_path: Path) -> None:
    event = _event(tmp_path, "issues.labeled.1.json", {"label.name": "orchestrate"})
    for layer, yaml_expected in (("init", False), ("triggers:\n  label: robots\n", True)):
        repo = tmp_path / f"repo-{yaml_expected}"
        if layer == "init":
            write_config_layer(repo)
        else:
            (repo / "configs" / "orchestration").mkdir(parents=True)
            (repo / "configs" / "orchestration" / "settings.yml").write_text(layer)
        out = repo / "run"
        out.mkdir()
        code, stdout, modules = _imported([str(EXE), *_plan_argv(event, "issues", out, repo)])
        if yaml_expected:  # "orchestrate" is not this repository's label: skipped
            assert code == 0, stdout
            assert stdout.startswith("skipped: label 'orchestrate' is not the trigger label")
            assert "yaml" in _top(modules)
            assert not _top(modules) & HEAVY
        else:  # the label acts: the full planner runs (and refuses: no GITHUB_REPOSITORY)
            assert "pydantic" in _top(modules)
            assert not (out / "plan.json").exists()


def test_an_acting_trigger_still_gets_the_full_planner(tmp_path: Path) -> None:
    event = _event(tmp_path, "issue_comment.created.1.json",
                   {"comment.body": "/orchestrate add dark mode"})  # fmt: skip
    out = tmp_path / "run"
    out.mkdir()
    code, _, modules = _imported([str(EXE), *_plan_argv(event, "issue_comment", out, tmp_path)])
    assert code == 2  # --publish outside Actions (no GITHUB_REPOSITORY): the full path's refusal
    assert modules & FULL_PATH == FULL_PATH
