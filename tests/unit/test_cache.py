"""The response cache: exact keys, hits that cost nothing, tolerance of broken files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import orchestrator.providers as providers
from orchestrator.contracts import AgentSpec, Usage
from orchestrator.providers import build_model
from orchestrator.providers.base import (
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
)
from orchestrator.providers.cache import CachedModel, cache_key, is_cacheable, request_document
from orchestrator.providers.ratelimit import reset_limits
from orchestrator.providers.testing import FunctionModel, ScriptedModel

SECRET = "sk-test-0123456789abcdef0123456789abcdef"
SPEC = AgentSpec(provider="openai", model="gpt-x", api_key="${CACHE_TEST_KEY}")
TOOLS = [ToolSpec(name="finish", description="done", parameters={"type": "object"})]
SETTINGS = ModelSettings(max_tokens=100)
CALL = ToolCall(id="call_1", name="finish", arguments={"summary": "done ✓"})
ANSWER = ModelResponse(
    text="thinking", tool_calls=(CALL,), usage=Usage(input_tokens=50, output_tokens=7)
)


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    reset_limits()
    yield
    reset_limits()


def conversation(text: str = "do it") -> list[Message]:
    return [
        Message(role="system", text="sys"),
        Message(role="user", text=text),
        Message(role="assistant", tool_calls=(ToolCall(id="a", name="list_files", arguments={}),)),
        Message(role="tool", text="README.md", tool_call_id="a", tool_name="list_files"),
    ]


def counting(answer: ModelResponse = ANSWER, spec: AgentSpec = SPEC) -> FunctionModel:
    return FunctionModel(lambda messages, tools: answer, spec=spec)


def ask(
    model: CachedModel,
    messages: list[Message] | None = None,
    tools: list[ToolSpec] | None = None,
    settings: ModelSettings = SETTINGS,
) -> ModelResponse:
    return asyncio.run(
        model.request(messages or conversation(), TOOLS if tools is None else tools, settings)
    )


def test_second_identical_call_is_a_hit_without_a_provider_call(tmp_path: Path) -> None:
    inner = counting()
    model = CachedModel(inner, tmp_path)
    first = ask(model)
    assert first == ANSWER and len(inner.requests) == 1 and model.stats.cache_hits == 0
    key = cache_key(SPEC, conversation(), TOOLS, SETTINGS)
    path = tmp_path / key[:2] / f"{key}.json"
    assert path.exists() and model.path_for(key) == path
    again = CachedModel(counting(), tmp_path)  # a fresh model (a later run) reads the disk
    second = ask(again)
    assert len(again.inner.requests) == 0  # type: ignore[attr-defined]
    assert again.stats.cache_hits == 1
    # Same turn, but nothing was billed: usage is zero on a hit.
    assert second.text == "thinking" and second.tool_calls == (CALL,)
    assert second.usage == Usage() and second.stop_reason is None
    stored = json.loads(path.read_text())
    assert stored["response"]["usage"]["input_tokens"] == 50  # the original is kept on disk


def test_a_rerun_hits_although_its_prompt_cache_key_is_a_new_run_id(tmp_path: Path) -> None:
    ask(CachedModel(counting(), tmp_path), settings=ModelSettings(max_tokens=100, cache_key="1-a"))
    rerun = CachedModel(counting(), tmp_path)
    ask(rerun, settings=ModelSettings(max_tokens=100, cache_key="2-b"))
    assert rerun.stats.cache_hits == 1 and len(rerun.inner.requests) == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "change",
    ["text", "tool_result", "tools", "settings", "model", "base_url", "provider"],
)
def test_any_difference_in_the_request_misses(tmp_path: Path, change: str) -> None:
    ask(CachedModel(counting(), tmp_path))
    messages, tools, settings, spec = conversation(), TOOLS, SETTINGS, SPEC
    if change == "text":
        messages = conversation("do it!")
    elif change == "tool_result":
        messages = [*messages[:-1], Message(role="tool", text="README.md\n", tool_call_id="a")]
    elif change == "tools":
        tools = []
    elif change == "settings":
        settings = ModelSettings(max_tokens=100, json_output=True)
    elif change == "model":
        spec = SPEC.model_copy(update={"model": "gpt-y"})
    elif change == "base_url":
        spec = SPEC.model_copy(update={"base_url": "https://proxy.example"})
    else:
        spec = SPEC.model_copy(update={"provider": "openai_compatible"})
    inner = counting(spec=spec)
    model = CachedModel(inner, tmp_path)
    ask(model, messages, tools, settings)
    assert len(inner.requests) == 1 and model.stats.cache_hits == 0


def test_key_never_contains_the_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TEST_KEY", SECRET)
    document = json.dumps(request_document(SPEC, conversation(), TOOLS, SETTINGS))
    assert SECRET not in document and "CACHE_TEST_KEY" not in document
    other_key = SPEC.model_copy(update={"api_key": "${OTHER_KEY}", "input_per_mtok": 9.0})
    assert cache_key(other_key, conversation(), TOOLS, SETTINGS) == cache_key(
        SPEC, conversation(), TOOLS, SETTINGS
    )
    ask(CachedModel(counting(), tmp_path))
    for path in tmp_path.rglob("*"):
        assert SECRET not in path.name
        if path.is_file():
            assert SECRET not in path.read_text() and "CACHE_TEST_KEY" not in path.read_text()


@pytest.mark.parametrize("garbage", [b"{not json", b"", b'{"format": 1}', b"\xff\xfe"])
def test_corrupt_file_is_a_miss_and_is_replaced(tmp_path: Path, garbage: bytes) -> None:
    key = cache_key(SPEC, conversation(), TOOLS, SETTINGS)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    inner = counting()
    model = CachedModel(inner, tmp_path)
    assert ask(model) == ANSWER and len(inner.requests) == 1
    assert json.loads(path.read_text())["key"] == key
    assert ask(model).usage == Usage() and model.stats.cache_hits == 1


def test_an_entry_under_the_wrong_name_is_not_trusted(tmp_path: Path) -> None:
    ask(CachedModel(counting(), tmp_path))
    key = cache_key(SPEC, conversation(), TOOLS, SETTINGS)
    other = cache_key(SPEC, conversation("other"), TOOLS, SETTINGS)
    target = tmp_path / other[:2] / f"{other}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((tmp_path / key[:2] / f"{key}.json").read_text())
    inner = counting()
    ask(CachedModel(inner, tmp_path), conversation("other"))
    assert len(inner.requests) == 1


def test_errors_are_not_cached(tmp_path: Path) -> None:
    inner = ScriptedModel([ModelError("500", retryable=True), ANSWER], spec=SPEC)
    model = CachedModel(inner, tmp_path)
    with pytest.raises(ModelError):
        ask(model)
    assert not list(tmp_path.rglob("*.json"))
    assert ask(model) == ANSWER and len(inner.requests) == 2


def test_deferred_entries_are_written_only_on_commit(tmp_path: Path) -> None:
    inner = counting()
    model = CachedModel(inner, tmp_path, deferred=True)
    ask(model)
    assert ask(model).usage == Usage() and len(inner.requests) == 1  # served from memory
    assert not list(tmp_path.rglob("*.json"))
    model.discard()
    ask(model)
    assert len(inner.requests) == 2
    assert model.commit() == 1 and len(list(tmp_path.rglob("*.json"))) == 1
    assert model.commit() == 0


def test_an_unwritable_cache_never_fails_the_call(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    model = CachedModel(counting(), blocker / "cache")
    assert ask(model) == ANSWER


class CountingProvider:
    """A registered provider for ``build_model``: always the same answer, counting calls."""

    calls = 0

    def __init__(self, agent: str, spec: AgentSpec, purpose: str) -> None:
        self.agent, self.spec = agent, spec

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        type(self).calls += 1
        return ANSWER


def test_build_model_puts_the_cache_outermost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(providers.PROVIDERS, "counting", "tests.unit.test_cache:CountingProvider")
    monkeypatch.setattr(CountingProvider, "calls", 0)
    spec = AgentSpec(provider="counting", model="m", max_concurrency=1)
    assert is_cacheable(spec) and not is_cacheable(AgentSpec(provider="replay", model="m"))
    first = build_model("a", spec, "t1", cache_dir=tmp_path)
    asyncio.run(first.request(conversation(), TOOLS, SETTINGS))
    second = build_model("b", spec, "t2", cache_dir=tmp_path)
    answer = asyncio.run(second.request(conversation(), TOOLS, SETTINGS))
    assert CountingProvider.calls == 1 and answer.usage == Usage()
    assert (first.stats.provider_calls, first.stats.cache_hits) == (1, 0)
    assert (second.stats.provider_calls, second.stats.cache_hits) == (0, 1)
    assert isinstance(second.provider, CountingProvider) and second.cache is not None
    uncached = build_model("c", spec, "t3")
    assert uncached.cache is None
    asyncio.run(uncached.request(conversation(), TOOLS, SETTINGS))
    assert CountingProvider.calls == 2
