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
