"""The replay provider: script validation, lookup, latency, usage, cost, and the full loop."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.agent.loop import LoopOutcome, run_agent
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import AgentSpec, Limits, Usage
from orchestrator.errors import InputError
from orchestrator.providers import build_model
from orchestrator.providers.base import Message, ModelError, ModelResponse, ModelSettings
from orchestrator.providers.replay import ReplayModel, load_script
from tests.conftest import git

SETTINGS = ModelSettings()


def write_script(tmp_path: Path, data: Any, name: str = "script.yml") -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def spec_for(script: Path, **extra: Any) -> AgentSpec:
    return AgentSpec.model_validate(
        {"provider": "replay", "model": "replay", "script": str(script), **extra}
    )


def ask(model: ReplayModel, messages: list[Message] | None = None) -> ModelResponse:
    return asyncio.run(model.request(messages or [Message(role="user", text="hi")], [], SETTINGS))


def test_build_model_plays_each_purpose_from_the_start(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        {
            "planner": [{"text": "plan"}],
            "tasks": {
                "design": [{"text": "design 1"}, {"text": "design 2"}],
                "*": [{"text": "any task"}],
            },
        },
    )
    spec = spec_for(script)
    planner = build_model("fake", spec, "planner")
    assert isinstance(planner.provider, ReplayModel)  # behind the retry and rate-limit layers
    assert ask(planner).text == "plan"
    first, second = ReplayModel("fake", spec, "design"), ReplayModel("fake", spec, "design")
    assert ask(first).text == "design 1"
    assert ask(first).text == "design 2"
    assert ask(second).text == "design 1"  # each instance plays its own list
    assert ask(ReplayModel("fake", spec, "bench-17")).text == "any task"


def test_exhausted_and_missing_scripts_are_clear_errors(tmp_path: Path) -> None:
    script = write_script(tmp_path, {"tasks": {"a": [{"text": "only"}]}})
    model = ReplayModel("fake", spec_for(script), "a")
    ask(model)
    with pytest.raises(ModelError, match=r"has no more turns for task a") as info:
        ask(model)
    assert not info.value.retryable
    assert str(script) in str(info.value)
    with pytest.raises(ModelError, match="has no turns for task b"):
        ask(ReplayModel("fake", spec_for(script), "b"))
    with pytest.raises(ModelError, match="has no more turns for the planner"):
        ask(ReplayModel("fake", spec_for(script), "planner"))


def test_script_setting_required(tmp_path: Path) -> None:
    spec = AgentSpec(provider="replay", model="replay")
    with pytest.raises(InputError, match=r"agents\.demo\.script"):
        ReplayModel("demo", spec, "planner")
    with pytest.raises(InputError, match=r"agents\.demo\.script: replay script .* not found"):
        ReplayModel("demo", spec_for(tmp_path / "missing.yml"), "planner")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {
                "tasks": {
                    "design": [{"text": "a"}, {"text": "b"}, {"tool_calls": [{"arguments": {}}]}]
                }
            },
            "tasks.design[2].tool_calls[0].name",
            "Field required",
        ),
        ({"tasks": {"x": [{}]}}, "tasks.x[0]", "needs text, tool_calls or error"),
        ({"planner": [{"text": "a", "latency_s": -1}]}, "planner[0].latency_s", "greater than"),
        (
            {"planner": [{"text": "a", "usage": {"input_tokens": "many"}}]},
            "planner[0].usage.input_tokens",
            "integer",
        ),
        (
            {"planner": [{"tool_calls": [{"name": "f", "arguments": 3}]}]},
            "planner[0].tool_calls[0].arguments",
            "mapping or a string",
        ),
        ({"planner": [{"txt": "typo"}]}, "planner[0].txt", "Extra inputs"),
        ({"tasks": ["not", "a", "map"]}, "tasks", "dictionary"),
    ],
)
def test_validation_errors_name_file_and_field(
    tmp_path: Path, data: Any, field: str, message: str
) -> None:
    script = write_script(tmp_path, data)
    with pytest.raises(InputError) as info:
        ReplayModel("fake", spec_for(script), "planner")
    assert info.value.source == str(script)
    assert info.value.field == field
    assert message in info.value.reason


def test_unparsable_files(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("planner: [\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.yml: invalid YAML at line"):
        load_script(bad_yaml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json: invalid JSON"):
        load_script(bad_json)


def test_json_script_and_cache(tmp_path: Path) -> None:
    script = write_script(tmp_path, {"planner": [{"text": "v1"}]}, "s.json")
    first = load_script(script)
    assert load_script(script) is first  # parsed once
    script.write_text(json.dumps({"planner": [{"text": "version 2"}]}), encoding="utf-8")
    assert load_script(script).planner[0].text == "version 2"  # mtime/size changed


def test_latency_is_honoured(tmp_path: Path) -> None:
    script = write_script(tmp_path, {"planner": [{"text": "slow", "latency_s": 0.2}]})
    model = ReplayModel("fake", spec_for(script), "planner")
    start = time.perf_counter()
    ask(model)
    assert time.perf_counter() - start >= 0.19


def test_latency_overlaps_between_tasks(tmp_path: Path) -> None:
    script = write_script(tmp_path, {"tasks": {"*": [{"text": "x", "latency_s": 0.3}]}})
    models = [ReplayModel("fake", spec_for(script), f"t{i}") for i in range(5)]

    async def all_at_once() -> None:
        await asyncio.gather(*(m.request([], [], SETTINGS) for m in models))

    start = time.perf_counter()
    asyncio.run(all_at_once())
    assert time.perf_counter() - start < 1.0  # awaited, not blocking


def test_usage_estimated_or_explicit(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        {
            "planner": [
                {"text": "x" * 10},
                {
                    "text": "y",
                    "usage": {"input_tokens": 7, "output_tokens": 3, "cached_input_tokens": 2},
                },
                {"tool_calls": [{"name": "finish", "arguments": {"summary": "s"}}]},
            ]
        },
    )
    model = ReplayModel("fake", spec_for(script), "planner")
    messages = [Message(role="system", text="a" * 9), Message(role="user", text="b" * 8)]
    assert ask(model, messages).usage == Usage(input_tokens=math.ceil(17 / 4), output_tokens=3)
    assert ask(model, messages).usage == Usage(
        input_tokens=7, output_tokens=3, cached_input_tokens=2
    )
    third = ask(model, messages)
    assert third.usage.output_tokens >= 1
    assert third.stop_reason == "tool_use"


def test_arguments_mapping_string_and_malformed(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        {
            "planner": [
                {
                    "tool_calls": [
                        {"name": "a", "arguments": {"path": "x"}},
                        {"name": "b", "arguments": '{"path": "y"}'},
                        {"name": "c", "arguments": '{"path": '},
                        {"name": "d", "arguments": "[1, 2]"},
                        {"name": "e", "id": "mine"},
                    ]
                }
            ]
        },
    )
    calls = ask(ReplayModel("fake", spec_for(script), "planner")).tool_calls
    assert [c.arguments for c in calls] == [{"path": "x"}, {"path": "y"}, {}, {}, {}]
    assert calls[0].arguments_error is None and calls[1].arguments_error is None
    assert calls[2].arguments_error is not None and "invalid JSON" in calls[2].arguments_error
    assert (
        calls[3].arguments_error is not None
        and "expected a JSON object" in calls[3].arguments_error
    )
    assert calls[4].id == "mine"
    assert len({c.id for c in calls}) == 5


def test_scripted_error(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        {"planner": [{"error": {"message": "overloaded", "retryable": True, "retry_after": 2}}]},
    )
    with pytest.raises(ModelError, match="overloaded") as info:
        ask(ReplayModel("fake", spec_for(script), "planner"))
    assert info.value.retryable
    assert info.value.retry_after == 2


def run_task(
    repo: Path, script: Path, task_id: str = "design", **limits: Any
) -> tuple[LoopOutcome, ToolBox]:
    spec = spec_for(script, input_per_mtok=3.0, output_per_mtok=15.0)
    ws = Workspace.open(repo, git(repo, "rev-parse", "HEAD"), Limits())
    box = ToolBox(ws, task_id=task_id)
    outcome = asyncio.run(
        run_agent(
            build_model("scripted", spec, task_id),
            box,
            system="system",
            prompt="prompt",
            limits=Limits.model_validate(limits),
            transcript=Transcript(),
        )
    )
    return outcome, box


def test_replay_goes_through_the_real_loop(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        {
            "tasks": {
                "design": [
                    {
                        "tool_calls": [
                            {
                                "name": "write_file",
                                "arguments": {"path": "DESIGN.md", "content": "# D\n"},
                            },
                            {"name": "write_file", "arguments": "{not json"},
                        ],
                        "usage": {"input_tokens": 1000, "output_tokens": 200},
                    },
                    {"text": "Done, I think."},
                    {
                        "tool_calls": [{"name": "finish", "arguments": {"summary": "designed"}}],
                        "usage": {"input_tokens": 2000, "output_tokens": 100},
                    },
                ]
            }
        },
    )
    outcome, box = run_task(repo, script)
    assert outcome.status == "succeeded"
    assert outcome.summary == "designed"
    assert box.workspace.changed_files() == ["DESIGN.md"]
    # Turn two's usage is estimated (never zero); the total is priced with the spec.
    assert outcome.usage.input_tokens > 3000
    assert outcome.usage.output_tokens > 300
    expected = (outcome.usage.input_tokens * 3.0 + outcome.usage.output_tokens * 15.0) / 1e6
    assert outcome.cost_usd == pytest.approx(expected)


def test_replay_budgets_apply(repo: Path, tmp_path: Path) -> None:
    forever = [{"tool_calls": [{"name": "list_files", "arguments": {}}]}] * 10
    script = write_script(tmp_path, {"tasks": {"*": forever}})
    outcome, _ = run_task(repo, script, "bench-1", max_turns=4)
    assert (outcome.status, outcome.turns) == ("budget_exceeded", 4)
    exhausted, _ = run_task(repo, script, "bench-2", max_turns=50)
    assert exhausted.status == "failed"
    assert exhausted.error is not None and "no more turns for task bench-2" in exhausted.error
    assert not exhausted.retryable
