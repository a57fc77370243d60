"""Export the JSON Schemas of the stage files and config files to ``schemas/``, and the files
the skip path of ``orchestrator plan`` reads instead of the models and the YAML parser
(``orchestrator/_skipped_plan.json``, ``orchestrator/_defaults_parsed.json``).

python -m orchestrator.schema_export          # write
python -m orchestrator.schema_export --check  # exit 1 when a file is stale (used by tests)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from orchestrator.config import AgentsFile, RoutingFile, Settings, WorkflowsFile
from orchestrator.config_layers import PARSED_DEFAULTS_FILE, render_parsed_defaults
from orchestrator.contracts import SCHEMA_MODELS
from orchestrator.fileio import write_atomic
from orchestrator.trigger_gate import SKELETON_FILE, render_skeleton

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "agents": AgentsFile,
    "routing_rules": RoutingFile,
    "workflows": WorkflowsFile,
    "settings": Settings,
}


def rendered() -> dict[str, str]:
    """File name → JSON Schema text, for every exported model."""
    out: dict[str, str] = {}
    for name, model in {**SCHEMA_MODELS, **CONFIG_MODELS}.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{name}.schema.json"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def generated() -> dict[Path, str]:
    """Every generated file (the schemas and the skip path's files) → its text."""
    files = {SCHEMA_DIR / name: text for name, text in rendered().items()}
    files[Path(SKELETON_FILE)] = render_skeleton()
    files[Path(PARSED_DEFAULTS_FILE)] = render_parsed_defaults()
    return files


def main(argv: list[str]) -> int:
    """Write the generated files, or with ``--check`` report the stale ones."""
    stale = []
    for path, text in generated().items():
        name = path.name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if "--check" in argv:
            stale.append(name)
        else:
            write_atomic(path, text)
    if stale:
        sys.stderr.write(f"stale schemas (run make schemas): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
