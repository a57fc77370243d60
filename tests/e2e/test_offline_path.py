"""A newcomer's offline path on their own repository: init, dry-run, --replay, simulated cost."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.contracts import Aggregate, TaskResult
from orchestrator.coordinator import Coordinator
from orchestrator.fileio import read_model
from tests.conftest import git, make_repo

FEATURES = ["--workflow", "parallel_feature_implementation", "--task", "subtract"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's repository with nothing of the orchestrator in it."""
    return make_repo(tmp_path / "my-project", {"calc.py": "def add(a, b):\n    return a + b\n"})


def init(project: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["init", "--repo", str(project)]) == 0
    capsys.readouterr()
    git(project, "add", "-A")
    git(project, "commit", "-qm", "orchestrator config")
    return project / "configs" / "orchestration" / "replay.yml"


def test_init_writes_a_commented_layer_that_changes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--repo", str(project)]) == 0
    printed = capsys.readouterr().out
    folder = project / "configs" / "orchestration"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "agents.yml",
        "replay.yml",
        "settings.yml",
    ]
    assert "wrote configs/orchestration/settings.yml" in printed and "--replay" in printed
    for name in ("settings.yml", "agents.yml"):
        text = (folder / name).read_text()
        assert yaml.safe_load(text) is None  # every key commented out
        assert "over the packaged" in text
    layered = load_config(None, project)
    defaults = load_config(None, None)
    assert layered.layers[-1] == folder
    assert layered.agents == defaults.agents and layered.settings == defaults.settings
    # A second init refuses to overwrite; --force does.
    code = main(["init", "--repo", str(project)])
    assert code == 2 and "--force" in capsys.readouterr().err
    (folder / "settings.yml").write_text("changed\n")
    assert main(["init", "--repo", str(project), "--force"]) == 0
    assert (folder / "settings.yml").read_text() != "changed\n"


def test_dry_run_prints_the_task_ids_and_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = init(project, capsys)
    code = main(["plan", "--workflow", "parallel_feature_implementation", "--task", "subtract",
                 "--task", "multiply numbers", "--replay", str(replay), "--dry-run",
                 "--repo", str(project)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "planned: 2 tasks in 1 wave from workflow parallel_feature_implementation (2 items)" in (
        printed
    )
    # 40 000 in / 4 000 out (planning.estimate.default) at codex's $2 / $10 per million.
    assert "  wave 1  subtract [code_generation] → codex  ≈ $0.1200" in printed
    assert "  wave 1  multiply-numbers [code_generation] → codex  ≈ $0.1200" in printed
    assert "  estimated cost ≈ $0.2400 (tokens from planning.estimate.default)" in printed
    assert "costs will be simulated" in printed and "nothing written" in printed
    assert not (project / ".orchestrator").exists()


def test_a_singular_plan_reads_singular(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replay = init(project, capsys)
    main(["plan", *FEATURES, "--replay", str(replay), "--dry-run", "--repo", str(project)])
    assert "planned: 1 task in 1 wave from workflow parallel_feature_implementation (1 item)" in (
        capsys.readouterr().out
    )


def test_run_with_replay_needs_no_key_and_labels_costs_simulated(
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    replay = init(project, capsys)
    out = tmp_path / "out"
    code = main(["run", *FEATURES, "--task", "multiply", "--replay", str(replay),
                 "--repo", str(project), "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    aggregate = read_model(out / "aggregate.json", Aggregate)
    assert aggregate.status == "succeeded" and aggregate.totals.cost_simulated
    assert aggregate.totals.cost_usd and aggregate.totals.cost_usd > 0  # the configured prices
    result = read_model(out / "tasks/subtract/result.json", TaskResult)
    assert result.cost_simulated and result.attempts[0].provider == "replay"
    assert "(simulated)" in printed
    summary = (out / "summary.md").read_text()
    assert "Cost (simulated)" in summary and "replayed usage priced" in summary
    history = (project / ".orchestrator" / "history.jsonl").read_text()
    assert json.loads(history.splitlines()[-1])["cost_simulated"] is True
    branch = aggregate.branch or ""
    assert git(project, "show", f"{branch}:orchestrator-notes/subtract.md").startswith("# subtract")
    assert git(project, "show", f"{branch}:orchestrator-notes/multiply.md").startswith("# multiply")


def test_python_api_takes_config_and_replay(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = init(project, capsys)
    coordinator = Coordinator(project, config=project / "configs" / "orchestration", replay=replay)
    result = asyncio.run(
        coordinator.execute_workflow(
            workflow="parallel_feature_implementation", tasks=["pace metrics"]
        )
    )
    assert result.status == "succeeded" and result.totals.cost_simulated


def test_a_layer_changes_only_what_it_names(project: Path) -> None:
    folder = project / "configs" / "orchestration"
    folder.mkdir(parents=True)
    (folder / "agents.yml").write_text(
        "agents:\n"
        "  claude:\n    model: claude-test-model\n"
        "  local:\n    provider: openai_compatible\n    model: qwen\n"
        "    base_url: http://localhost:11434/v1\n"
        "  deepseek: null\n"
        "  gemini:\n    provider: replay\n    model: g\n    script: s.yml\n"
    )
    (folder / "settings.yml").write_text("limits:\n  max_usd: 0.5\n")
    defaults = load_config(None, None)
    config = load_config(None, project)
    assert config.agents["claude"].model == "claude-test-model"
    assert config.agents["claude"].api_key == defaults.agents["claude"].api_key  # kept
    assert config.agents["local"].base_url == "http://localhost:11434/v1"
    assert "deepseek" not in config.agents
    # "never route to it": the default rules that named it keep their other agents.
    assert config.routes["code_generation"].chain == ["codex", "claude"]
    assert config.routes["math_stats"].primary == "gemini"
    # A new provider replaces the agent whole: no Gemini key variable leaks into it.
    assert config.agents["gemini"].provider == "replay" and config.agents["gemini"].api_key is None
    assert config.agents["gemini"].script == str((folder / "s.yml").resolve())
    assert config.settings.limits.max_usd == 0.5
    assert config.settings.limits.max_turns == defaults.settings.limits.max_turns
    assert config.workflows == defaults.workflows


def test_the_init_guide_examples_added_beside_the_layer_still_layer(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README ``init`` writes shows routing and workflow files; adding both must not turn
    the folder into a complete set whose commented-out agents.yml defines no agent."""
    assert main(["init", "--repo", str(project)]) == 0
    folder = project / "configs" / "orchestration"
    guide = (folder / "README.md").read_text()
    routing, workflows = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    (folder / "routing_rules.yml").write_text(routing.replace("primary: local", "primary: claude"))
    (folder / "workflows.yml").write_text(workflows)
    capsys.readouterr()
    assert main(["validate", "--repo", str(project)]) == 0, capsys.readouterr().err
    assert "layered over the defaults" in capsys.readouterr().out
    config = load_config(None, project)
    assert "docs_only" in config.workflows and "parallel_feature_implementation" in config.workflows
    assert config.routes["documentation"].primary == "claude"
    assert config.agents == load_config(None, None).agents


def test_a_mistake_in_a_layer_names_the_layer_file_and_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = project / "configs" / "orchestration"
    folder.mkdir(parents=True)
    (folder / "settings.yml").write_text("planning:\n  max_tasks: 20\n  max_wavez: 3\n")
    code = main(["validate", "--repo", str(project)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{folder / 'settings.yml'}:3: planning.max_wavez: unknown field" in err


def test_a_complete_set_still_replaces_the_defaults(project: Path) -> None:
    folder = project / "configs" / "orchestration"
    folder.mkdir(parents=True)
    (folder / "agents.yml").write_text(
        "agents:\n  solo:\n    provider: replay\n    model: m\n    script: s.yml\n"
    )
    (folder / "routing_rules.yml").write_text("routes:\n  code_generation:\n    primary: solo\n")
    (folder / "workflows.yml").write_text(
        "workflows:\n  only:\n    stages:\n      - {id: a, type: code_generation, title: A,"
        " instructions: do}\n"
    )
    (folder / "settings.yml").write_text(
        "planning:\n  default_workflow: only\n  planner_agent: solo\n"
    )
    config = load_config(None, project)
    assert list(config.agents) == ["solo"] and list(config.routes) == ["code_generation"]
    assert list(config.workflows) == ["only"] and config.layers == (folder,)
