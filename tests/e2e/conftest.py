"""End-to-end fixtures: a config set whose agents are replay agents playing a test script."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import default_config_dir

#: Test modules that run the real workflow files under act (the slowest part of the suite).
ACT_MODULES = frozenset({"test_workflows.py", "test_workflows_pr.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every end-to-end test ``slow`` and the act ones ``act`` (``make test-fast``)."""
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if path.parent == here:
            item.add_marker(pytest.mark.slow)
            if path.name in ACT_MODULES:
                item.add_marker(pytest.mark.act)
                # act runs a whole workflow (up to ~25 jobs); on a loaded 2-core machine one
                # takes up to ~2 min, which the suite-wide 120 s limit would cut short.
                if item.get_closest_marker("timeout") is None:
                    item.add_marker(pytest.mark.timeout(300))


AGENT_NAMES = ("codex", "claude", "gemini", "deepseek", "copilot")


def write_file_turns(
    path: str, content: str, summary: str, latency: float = 0.0
) -> list[dict[str, Any]]:
    """A plausible agent: look around, write one file, finish."""
    return [
        {"tool_calls": [{"name": "list_files", "arguments": {"path": "."}}], "latency_s": latency},
        {"tool_calls": [{"name": "write_file", "arguments": {"path": path, "content": content}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": summary}}]},
    ]


def make_replay_config(
    folder: Path, tasks: dict[str, list[dict[str, Any]]], planner: list[Any] | None = None
) -> Path:
    """Copy the default config set into ``folder`` with every agent replaced by a replay agent."""
    shutil.copytree(default_config_dir(), folder)
    script = {"planner": planner or [], "tasks": tasks}
    (folder / "script.json").write_text(json.dumps(script, indent=1))
    lines = ["agents:"]
    for name in AGENT_NAMES:
        lines += [
            f"  {name}:",
            "    provider: replay",
            f"    model: {name}-model",
            "    script: script.json",
            "    input_per_mtok: 2.0",
            "    output_per_mtok: 10.0",
        ]
    (folder / "agents.yml").write_text("\n".join(lines) + "\n")
    return folder


FEATURE_TASKS = {
    "pace-metrics": write_file_turns(
        "src/pace.py", "def pace(t):\n    return 1000 / t\n", "pace added"
    ),
    "weather-normalization": write_file_turns(
        "src/weather.py", "def adjust(t, going):\n    return t * going\n", "weather added"
    ),
    "jockey-ratings": write_file_turns("src/jockey.py", "RATINGS = {}\n", "jockey ratings added"),
}


@pytest.fixture
def replay_config(tmp_path: Path) -> Path:
    """Replay agents scripted for the three feature tasks of the issue's example."""
    return make_replay_config(tmp_path / "config", FEATURE_TASKS)


from tests.e2e.github_world import world  # noqa: E402, F401  (the fixture, for every e2e test)
