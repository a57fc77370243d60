"""The agent-CLI fake on its own: what each format's reply carries, errors, hangs, records.

The real CLIs run against it in tests/e2e/test_agent_cli_fake.py; these tests pin the parts a
CLI run does not show (the error bodies, the hang, redaction) in milliseconds.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.fakes.agent_cli_fake import AgentCliFake, Create, Replace, Usage

EDITS = [Create("a.txt", "one\ntwo\n"), Replace("a.txt", "two", "three")]
CLAUDE_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "stream": True,
    "system": [{"type": "text", "text": "Primary working directory: /work/tree\nMore."}],
    "tools": [{"name": "Write"}, {"name": "Edit"}],
    "messages": [{"role": "user", "content": "go"}],
}


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def sse(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_claude_gets_write_then_edit_with_absolute_paths_then_text() -> None:
    with AgentCliFake(EDITS, final_text="fin", usage=Usage(7, 3, 2)) as fake:
        _, first = post(f"{fake.url}/v1/messages?beta=true", CLAUDE_BODY)
        result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}
        later = dict(CLAUDE_BODY, messages=[*CLAUDE_BODY["messages"], result])
        _, second = post(f"{fake.url}/v1/messages?beta=true", later)
        twice = dict(later, messages=[*later["messages"], result])
        _, third = post(f"{fake.url}/v1/messages", twice)
    start, block, delta = sse(first)[:3]
    assert start["message"]["usage"]["input_tokens"] == 7
    assert start["message"]["usage"]["cache_read_input_tokens"] == 2
    assert block["content_block"]["name"] == "Write"
    assert json.loads(delta["delta"]["partial_json"]) == {
        "file_path": "/work/tree/a.txt",
        "content": "one\ntwo\n",
    }
    edit = json.loads(sse(second)[2]["delta"]["partial_json"])
    assert edit == {"file_path": "/work/tree/a.txt", "old_string": "two", "new_string": "three"}
    events = sse(third)
    assert events[2]["delta"] == {"type": "text_delta", "text": "fin"}
    assert events[4]["usage"] == {"output_tokens": 3}
    assert fake.model_calls == 3


def test_codex_gets_apply_patch_with_relative_paths() -> None:
    body: dict[str, Any] = {
        "model": "gpt-5.5",
        "input": [],
        "tools": [{"type": "custom", "name": "apply_patch"}],
    }
    with AgentCliFake(EDITS, usage=Usage(10, 4, 6)) as fake:
        _, first = post(f"{fake.url}/v1/responses", body)
        done = {"type": "custom_tool_call_output", "call_id": "c", "output": "ok"}
        _, second = post(f"{fake.url}/v1/responses", dict(body, input=[done]))
    item = sse(first)[-1]["response"]["output"][0]
    assert item["type"] == "custom_tool_call"
    assert item["input"] == "*** Begin Patch\n*** Add File: a.txt\n+one\n+two\n*** End Patch\n"
    completed = sse(second)[-1]["response"]
    assert completed["output"][0]["input"] == (
        "*** Begin Patch\n*** Update File: a.txt\n@@\n-two\n+three\n*** End Patch\n"
    )
    assert completed["usage"]["input_tokens"] == 16  # cached ones included, as OpenAI counts
    assert completed["usage"]["input_tokens_details"] == {"cached_tokens": 6}


def test_codex_without_apply_patch_is_told_which_model_to_use() -> None:
    with AgentCliFake(EDITS) as fake:
        status, raw = post(f"{fake.url}/v1/responses", {"model": "gpt-x", "input": [], "tools": []})
    assert status == 400
    assert "gpt-5.5" in json.loads(raw)["error"]["message"]


def test_gemini_gets_write_file_then_replace_and_json_side_answers() -> None:
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "go"}]}],
        "systemInstruction": {"parts": [{"text": "**Workspace Directories:**\n  - /work/tree\n"}]},
        "tools": [{"functionDeclarations": [{"name": "write_file"}, {"name": "replace"}]}],
    }
    with AgentCliFake(EDITS) as fake:
        model = f"{fake.url}/v1beta/models/gemini-2.5-flash"
        _, first = post(f"{model}:streamGenerateContent?alt=sse", body)
        response = {"role": "user", "parts": [{"functionResponse": {"name": "write_file"}}]}
        _, second = post(
            f"{model}:generateContent", dict(body, contents=[*body["contents"], response])
        )
        side = {
            "contents": body["contents"],
            "generationConfig": {"responseMimeType": "application/json"},
        }
        _, third = post(f"{model}:generateContent", side)
        _, counted = post(f"{model}:countTokens", side)
    call = sse(first)[0]["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call == {
        "name": "write_file",
        "args": {"file_path": "/work/tree/a.txt", "content": "one\ntwo\n"},
    }
    replace = json.loads(second)["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert replace["name"] == "replace"
    assert replace["args"]["old_string"] == "two" and replace["args"]["instruction"]
    side_text = json.loads(third)["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(side_text)["next_speaker"] == "user"
    assert json.loads(counted) == {"totalTokens": 120}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/messages",
            {"type": "error", "error": {"type": "rate_limit_error", "message": "fake error 429"}},
        ),
        (
            "/v1/responses",
            {
                "error": {
                    "message": "fake error 429",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        (
            "/v1beta/models/m:generateContent",
            {"error": {"code": 429, "message": "fake error 429", "status": "RESOURCE_EXHAUSTED"}},
        ),
    ],
)
def test_error_status_answers_each_format_s_documented_error(
    path: str, body: dict[str, Any]
) -> None:
    with AgentCliFake(EDITS, error_status=429) as fake:
        status, raw = post(f"{fake.url}{path}", {})
    assert (status, json.loads(raw)) == (429, body)


def test_hang_delays_each_model_reply_and_closing_releases_it() -> None:
    with AgentCliFake(hang_s=0.3) as fake:
        started = time.monotonic()
        post(f"{fake.url}/v1/messages", dict(CLAUDE_BODY, stream=False))
        assert time.monotonic() - started >= 0.3
    with AgentCliFake(hang_s=60) as fake:
        caller = threading.Thread(
            target=post, args=(f"{fake.url}/v1/messages", CLAUDE_BODY), daemon=True
        )
        caller.start()
        while fake.model_calls == 0:
            time.sleep(0.01)
        started = time.monotonic()
    caller.join(timeout=5)
    assert not caller.is_alive()
    assert time.monotonic() - started < 5


def test_requests_are_recorded_with_secret_headers_redacted_but_checkable() -> None:
    with AgentCliFake() as fake:
        post(f"{fake.url}/v1/messages", CLAUDE_BODY, {"x-api-key": "sk-secret", "X-Trace": "t1"})
    (request,) = fake.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "<redacted>"
    assert request.headers["x-trace"] == "t1"
    assert request.has_header("X-API-Key") and request.header_is("x-api-key", "sk-secret")
    assert not request.header_is("x-api-key", "<redacted>")
    assert "sk-secret" not in repr(request)
    assert request.json()["model"] == "claude-sonnet-4-5"
    assert fake.saw("sk-secret") and fake.saw("Primary working directory")
    assert not fake.saw("never-sent")
