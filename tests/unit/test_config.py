"""Config loading: the shipped set is valid, and every kind of mistake names file, line, field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.config import default_config_dir, load_config, resolve_config_dir
from orchestrator.errors import InputError


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(default_config_dir(), target)
    return target


def test_shipped_config_has_the_agents_task_types_and_workflows() -> None:
    config = load_config()
    assert set(config.agents) == {"codex", "claude", "gemini", "deepseek", "copilot"}
    assert config.agents["copilot"].key_env == "GITHUB_TOKEN"
    assert config.agents["copilot"].base_url == "https://models.github.ai/inference"
    assert len(config.task_types) == 12
    assert set(config.workflows) == {
        "parallel_feature_implementation",
        "analysis_implementation_pipeline",
        "research_documentation_sprint",
        "code_review_fix_pipeline",
    }
    assert config.settings.triggers.label == "orchestrate"
    assert config.settings.trust.author_associations == ["OWNER", "MEMBER", "COLLABORATOR"]
    assert config.settings.planning.max_tasks == 20


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def error_of(config_dir: Path) -> str:
    with pytest.raises(InputError) as info:
        load_config(config_dir)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_misspelled_field_names_file_line_and_field(config_dir: Path) -> None:
    replace(config_dir / "agents.yml", "    max_tokens: 8192\n", "    max_tokenz: 8192\n")
    message = error_of(config_dir)
    assert "agents.yml:" in message
    lines = (config_dir / "agents.yml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "max_tokenz" in text)
    assert f"agents.yml:{line}: agents.codex.max_tokenz: unknown field" in message


def test_wrong_type_names_the_line(config_dir: Path) -> None:
    replace(config_dir / "agents.yml", "max_tokens: 8192", "max_tokens: lots")
    message = error_of(config_dir)
    assert "agents.codex.max_tokens" in message
    assert "valid integer" in message


def test_literal_api_key_is_refused(config_dir: Path) -> None:
    replace(config_dir / "agents.yml", "${OPENAI_API_KEY}", "sk-live-abc")
    message = error_of(config_dir)
    assert "agents.codex.api_key" in message
    assert "sk-live-abc" in message or "pattern" in message


def test_yaml_syntax_error_names_the_line(config_dir: Path) -> None:
    (config_dir / "workflows.yml").write_text("workflows:\n  a: [unclosed\n")
    message = error_of(config_dir)
    assert "workflows.yml:" in message


def test_route_to_unknown_agent(config_dir: Path) -> None:
    replace(config_dir / "routing_rules.yml", "primary: codex,", "primary: kodex,")
    assert "routes.code_generation.primary: unknown agent 'kodex'" in error_of(config_dir)


def test_stage_with_unknown_type(config_dir: Path) -> None:
    replace(config_dir / "workflows.yml", "type: code_generation", "type: coding")
    message = error_of(config_dir)
    assert "workflows.parallel_feature_implementation.stages[0].type" in message


def test_stage_depending_on_a_later_stage(config_dir: Path) -> None:
    replace(config_dir / "workflows.yml", "depends_on: [design]", "depends_on: [integrate]")
    assert "not an earlier stage" in error_of(config_dir)


def test_a_partial_set_is_layered_over_the_defaults(config_dir: Path) -> None:
    (config_dir / "routing_rules.yml").unlink()
    config = load_config(config_dir)
    assert config.routes == load_config(None, None).routes  # from the defaults
    assert config.layers[-1] == config_dir


def test_settings_are_optional_and_validated(config_dir: Path) -> None:
    (config_dir / "settings.yml").unlink()
    assert load_config(config_dir).settings.planning.max_waves == 8
    (config_dir / "settings.yml").write_text("planning:\n  max_tasks: 999\n")
    assert "planning.max_tasks" in error_of(config_dir)


def test_repo_config_is_preferred_and_flag_wins(tmp_path: Path, config_dir: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(config_dir, repo / "configs" / "orchestration")
    assert resolve_config_dir(None, repo) == repo / "configs" / "orchestration"
    assert resolve_config_dir(config_dir, repo) == config_dir
    assert resolve_config_dir(None, tmp_path / "elsewhere") == default_config_dir()
    with pytest.raises(InputError, match="--config"):
        resolve_config_dir(tmp_path / "nope", None)


def test_another_model_in_a_layer_does_not_inherit_the_old_models_prices(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "agents.yml").write_text(
        "agents:\n"
        "  claude: {model: claude-opus-5-5}\n"  # another model: its price is not the default's
        "  gemini: {max_tokens: 2048}\n"  # the same model: its prices stay
        "  codex: {model: gpt-6-luna, input_per_mtok: 0.1, output_per_mtok: 0.5}\n"
    )
    agents = load_config(layer).agents
    defaults = load_config().agents
    claude = agents["claude"]
    assert (claude.input_per_mtok, claude.output_per_mtok, claude.price_checked) == (None,) * 3
    assert claude.max_tokens == defaults["claude"].max_tokens and claude.vision is False
    assert agents["gemini"].input_per_mtok == defaults["gemini"].input_per_mtok
    codex = agents["codex"]
    assert (codex.input_per_mtok, codex.output_per_mtok, codex.cached_input_per_mtok) == (
        0.1,
        0.5,
        None,
    )
