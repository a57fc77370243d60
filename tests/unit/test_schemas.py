"""The exported JSON Schemas match the models, and `orchestrator validate` uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.schema_export import SCHEMA_DIR, rendered
from orchestrator.schema_export import main as export_main


def test_schemas_are_up_to_date() -> None:
    assert export_main(["--check"]) == 0, "run `make schemas`"
    assert set(rendered()) == {p.name for p in SCHEMA_DIR.glob("*.schema.json")}


def test_plan_schema_names_the_contract_fields() -> None:
    schema = json.loads((SCHEMA_DIR / "plan.schema.json").read_text())
    for field in ("schema_version", "run_id", "status", "reason", "base_sha", "tasks"):
        assert field in schema["properties"]
    task = schema["$defs"]["Task"]["properties"]
    for field in ("id", "type", "title", "instructions", "agent", "backups", "depends_on", "wave"):
        assert field in task


def test_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert "5 agents, 12 task types, 4 workflows" in capsys.readouterr().out
    bad = tmp_path / "result.json"
    bad.write_text(json.dumps({"schema_version": "1", "task_id": "Bad Id"}))
    assert main(["validate", str(bad)]) == 2
    assert "task_id" in capsys.readouterr().err
    other = tmp_path / "x.json"
    other.write_text("{}")
    assert main(["validate", str(other)]) == 2


def test_validate_warns_when_a_price_is_old_or_undated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "agents.yml").write_text(
        "agents:\n  codex:\n    price_checked: 2020-01-01\n  claude:\n    price_checked: null\n"
    )
    assert main(["validate", "--config", str(config)]) == 0  # a warning, not an error
    out = capsys.readouterr().out
    assert "warning: agents.codex.price_checked: 2020-01-01 is " in out
    assert "(prices.max_age_days 120); check the prices against https://developers.openai" in out
    assert "warning: agents.claude.price_checked: not set; date the prices against" in out
    assert "agents.gemini" not in out


def test_default_prices_are_dated_with_a_source_and_none_is_zero_by_accident() -> None:
    from datetime import date

    from orchestrator.config import load_config
    from orchestrator.pricing import price_warnings

    agents = load_config().agents
    checked = [spec.price_checked for spec in agents.values()]
    assert all(day is not None for day in checked)
    assert all(spec.price_source for spec in agents.values())
    newest = max(day for day in checked if day is not None)
    assert price_warnings(agents, 120, newest) == []
    assert len(price_warnings(agents, 120, date(2099, 1, 1))) == len(agents)
    # Only GitHub Models is free; every other price is a real number, or unset (unknown).
    zero = {n for n, s in agents.items() if 0.0 in (s.input_per_mtok, s.output_per_mtok)}
    assert zero == {"copilot"}


def test_validate_warns_about_an_agent_without_prices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "agents.yml").write_text("agents:\n  claude: {model: claude-opus-5-5}\n")
    assert main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: agents.claude: no prices (claude-opus-5-5): its cost is unknown and budgets "
        "cannot count it" in out
    )
