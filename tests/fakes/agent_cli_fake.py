"""One loopback provider for the real vendor agent CLIs: Claude Code, Codex CLI, Gemini CLI.

It speaks the three wire formats those CLIs use, each as its SDK expects it:

- Anthropic Messages: ``POST /v1/messages[?beta=true]`` (SSE, or JSON when not streaming) and
  ``POST /v1/messages/count_tokens`` — Claude Code with ``ANTHROPIC_BASE_URL=fake.url``;
- OpenAI Responses: ``POST /v1/responses`` (SSE) — Codex with a custom
  ``[model_providers.X]`` whose ``base_url`` is ``fake.base_url("codex-cli")`` and
  ``wire_api = "responses"``, model ``gpt-5.5`` (only models of Codex's own catalog get the
  ``apply_patch`` tool);
- Gemini: ``POST /v1beta/models/<m>:streamGenerateContent?alt=sse``, ``:generateContent`` and
  ``:countTokens`` — Gemini CLI with ``GOOGLE_GEMINI_BASE_URL=fake.url``.

A test scripts the agent neutrally, as edits, and the fake plays each edit as the CLI's own
edit tool (Claude ``Write``/``Edit`` with absolute paths under the working directory its
system prompt names; Codex ``apply_patch`` with a patch of relative paths; Gemini
``write_file``/``replace``), one edit per model call, then the final text::

    with AgentCliFake([Create("hello.txt", "hi\\n"), Replace("hello.txt", "hi", "bye")]) as fake:
        ... run the CLI against fake.base_url("claude-code") ...
        assert fake.model_calls == 3 and not fake.saw("canary")

Which edit comes next is the number of tool results in the request's history, so a CLI's
side calls (titles, next-speaker checks, token counts) never use one up. Every reply closes its
connection (``Connection: close``): the CLIs' HTTP clients wait for the end of an SSE body
without a length or chunking otherwise.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.anthropic_fake import ERROR_TYPES as ANTHROPIC_ERROR_TYPES
from tests.fakes.gemini_fake_steps import STATUSES as GEMINI_STATUSES

#: The model Codex must be run with: its catalog gives this one the freeform ``apply_patch``.
CODEX_MODEL = "gpt-5.5"

#: OpenAI's documented ``error.type`` / ``error.code`` per status.
OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}

# Header names whose values are secrets: recorded redacted (``Recorded.header_is`` compares).
_SECRET_HEADER = re.compile(r"key|auth|token|secret|cookie|signature", re.IGNORECASE)
# Where each CLI's system prompt names its working directory.
_CWD_PATTERNS = (
    re.compile(r"Primary working directory: (/\S+)"),  # Claude Code
    re.compile(r"Workspace Directories:\*\*\s*\n\s*- (/\S+)"),  # Gemini CLI
)


# ----------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class Create:
    """Create ``path`` (relative to the CLI's working directory) holding ``content``."""

    path: str
    content: str


@dataclass(frozen=True)
class Replace:
    """Replace ``old`` by ``new`` in ``path``.

    Codex edits by lines (a patch), so for it ``old`` and ``new`` are whole lines; Claude and
    Gemini replace the text itself. Whole lines work the same in all three.
    """

    path: str
    old: str
    new: str


Edit = Create | Replace


@dataclass(frozen=True)
class Usage:
    """The tokens each model reply reports.

    ``input_tokens`` are the uncached ones and ``cached_tokens`` the cache reads, mapped to
    each format's fields: Anthropic ``input_tokens`` / ``cache_read_input_tokens``; OpenAI
    ``input_tokens`` (their sum) / ``input_tokens_details.cached_tokens``; Gemini
    ``promptTokenCount`` (their sum) / ``cachedContentTokenCount``.
    """

    input_tokens: int = 120
    output_tokens: int = 30
    cached_tokens: int = 0


@dataclass
class Recorded:
    """One request the fake received; secret-looking header values are redacted."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body or b"null")

    def has_header(self, name: str) -> bool:
        """Whether the request carried header ``name`` (any case)."""
        return name.lower() in self.headers

    def header_is(self, name: str, value: str) -> bool:
        """Whether header ``name`` had exactly ``value`` (works for redacted ones too)."""
        key = name.lower()
        return self._secrets.get(key, self.headers.get(key)) == value

    def text(self) -> str:
        """Everything the request carried, unredacted: path, header values and body."""
        values = {**self.headers, **self._secrets}
        lines = [f"{self.method} {self.path}?{self.query}"]
        lines += [f"{key}: {value}" for key, value in values.items()]
        return "\n".join(lines) + "\n" + self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Answer:
    """A reply before encoding: status, JSON body, or SSE events (name, data)."""

    status: int = 200
    body: Any = None
    events: list[tuple[str | None, Any]] | None = None


# ----------------------------------------------------------------------------- the fake


class AgentCliFake:
    """A scripted provider for the three agent CLIs on ``127.0.0.1:<ephemeral>``.

    Args:
        edits: The edits to play, one per model call, in order.
        final_text: The answer once the edits are done.
        usage: The tokens every model reply reports.
        error_status: Answer every model call with this HTTP status and the provider's
            documented error body instead (``None``: answer normally).
        hang_s: Wait this long before answering each model call (a provider that hangs).
        cwd: The working directory when a CLI's system prompt does not name one.
    """

    def __init__(
        self,
        edits: Iterable[Edit] = (),
        *,
        final_text: str = "Done.",
        usage: Usage | None = None,
        error_status: int | None = None,
        hang_s: float = 0.0,
        cwd: str | None = None,
    ) -> None:
        self.edits = list(edits)
        self.final_text = final_text
        self.usage = usage or Usage()
        self.error_status = error_status
        self.hang_s = hang_s
        self.cwd = cwd
        self.requests: list[Recorded] = []
        #: Model calls answered (SSE or JSON), not counting token counts and unknown paths.
        self.model_calls = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def base_url(self, provider: str) -> str:
        """The base URL to configure ``provider``'s CLI with (Codex's includes ``/v1``)."""
        return f"{self.url}/v1" if provider == "codex-cli" else self.url

    def saw(self, text: str) -> bool:
        """Whether ``text`` appeared in any request (path, unredacted headers or body)."""
        with self._lock:
            return any(text in request.text() for request in self.requests)

    def __enter__(self) -> AgentCliFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # releases hanging replies
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- dispatch --------------------------------------------------------------------------

    def answer(self, request: Recorded) -> _Answer:
        """The reply to ``request`` (called on the server's thread for it)."""
        path = request.path
        if request.method != "POST":
            return _Answer(404, {"error": {"message": f"fake: no {request.method} {path}"}})
        if path == "/v1/messages/count_tokens":
            return _Answer(body={"input_tokens": self.usage.input_tokens})
        if path.endswith(":countTokens"):
            return _Answer(body={"totalTokens": self.usage.input_tokens})
        route = _route(path)
        if route is None:
            return _Answer(404, {"error": {"message": f"fake: unknown path {path}"}})
        body = _json_object(request.body)
        with self._lock:
            self.model_calls += 1
        if self.hang_s:
            self._closing.wait(self.hang_s)
        if self.error_status is not None:
            return _error(route, self.error_status)
        return self._play(route, body, path)

    def _play(self, route: str, body: dict[str, Any], path: str) -> _Answer:
        if route == "anthropic":
            return self._anthropic(body)
        if route == "openai":
            return self._openai(body)
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        return self._gemini(body, model, stream=":streamGenerateContent" in path)

    def _next_edit(self, done: int, offered: bool) -> Edit | None:
        """The edit to play after ``done`` tool results, if the request offers the tool."""
        return self.edits[done] if offered and done < len(self.edits) else None

    def _cwd(self, body: dict[str, Any]) -> str | None:
        text = "\n".join(_strings(body))
        for pattern in _CWD_PATTERNS:
            found = pattern.search(text)
            if found:
                return found.group(1).rstrip(".").rstrip("/")
        return self.cwd

    # -- Anthropic Messages ------------------------------------------------------------------

    def _anthropic(self, body: dict[str, Any]) -> _Answer:
        messages = body.get("messages") or []
        done = sum(1 for block in _blocks(messages) if block.get("type") == "tool_result")
        tools = {tool.get("name") for tool in body.get("tools") or [] if isinstance(tool, dict)}
        edit = self._next_edit(done, offered={"Write", "Edit"} <= tools)
        if edit is None:
            block: dict[str, Any] = {"type": "text", "text": self.final_text}
        else:
            cwd = self._cwd(body)
            if cwd is None:
                return _error("anthropic", 400, "fake: no working directory in the prompt")
            block = _claude_tool(edit, cwd)
        message = _anthropic_message(body.get("model"), block, self.usage)
        if not body.get("stream"):
            return _Answer(body=message)
        return _Answer(events=_anthropic_events(message, block, self.usage))

    # -- OpenAI Responses --------------------------------------------------------------------

    def _openai(self, body: dict[str, Any]) -> _Answer:
        items = [item for item in body.get("input") or [] if isinstance(item, dict)]
        done = sum(1 for i in items if i.get("type", "").endswith("call_output"))
        tools = {t.get("name"): t for t in body.get("tools") or [] if isinstance(t, dict)}
        edit = self._next_edit(done, offered=True)
        if edit is not None and "apply_patch" not in tools:
            return _error(
                "openai", 400, f"fake: no apply_patch tool (run Codex with {CODEX_MODEL})"
            )
        if edit is None:
            item = _openai_message(self.final_text)
        else:
            item = _openai_patch_call(_codex_patch(edit), tools["apply_patch"].get("type"))
        return _Answer(events=_openai_events(body.get("model"), item, self.usage))

    # -- Gemini ------------------------------------------------------------------------------

    def _gemini(self, body: dict[str, Any], model: str, *, stream: bool) -> _Answer:
        contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
        done = sum(1 for c in contents for p in c.get("parts") or [] if "functionResponse" in p)
        declared = {
            d.get("name")
            for tool in body.get("tools") or []
            for d in tool.get("functionDeclarations") or []
        }
        config = body.get("generationConfig") or {}
        wants_json = config.get("responseMimeType") == "application/json"
        edit = self._next_edit(done, offered={"write_file", "replace"} <= declared)
        if edit is not None:
            cwd = self._cwd(body)
            if cwd is None:
                return _error("gemini", 400, "fake: no working directory in the prompt")
            part: dict[str, Any] = {"functionCall": _gemini_call(edit, cwd)}
        elif wants_json:  # the CLI's side questions (next speaker, routing) want JSON
            part = {"text": json.dumps(_GEMINI_SIDE_ANSWER)}
        else:
            part = {"text": self.final_text}
        chunk = _gemini_chunk(model, part, self.usage)
        return _Answer(events=[(None, chunk)]) if stream else _Answer(body=chunk)


# ----------------------------------------------------------------------------- formats


def _route(path: str) -> str | None:
    """Which wire format a model call's path belongs to."""
    if path == "/v1/messages":
        return "anthropic"
    if path == "/v1/responses":
        return "openai"
    if path.startswith("/v1beta/models/") and path.endswith(
        (":streamGenerateContent", ":generateContent")
    ):
        return "gemini"
    return None


def _error(route: str, status: int, message: str | None = None) -> _Answer:
    """The provider's documented error body for ``status``."""
    text = message or f"fake error {status}"
    if route == "anthropic":
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": text}}
        return _Answer(status, body)
    if route == "openai":
        kind, code = OPENAI_ERRORS.get(status, ("server_error", None))
        return _Answer(
            status, {"error": {"message": text, "type": kind, "param": None, "code": code}}
        )
    name = GEMINI_STATUSES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    return _Answer(status, {"error": {"code": status, "message": text, "status": name}})


def _claude_tool(edit: Edit, cwd: str) -> dict[str, Any]:
    """``Write``/``Edit`` tool use (Claude Code wants absolute paths)."""
    path = _absolute(edit.path, cwd)
    if isinstance(edit, Create):
        name, args = "Write", {"file_path": path, "content": edit.content}
    else:
        name, args = "Edit", {"file_path": path, "old_string": edit.old, "new_string": edit.new}
    return {"type": "tool_use", "id": _id("toolu_"), "name": name, "input": args}


def _anthropic_message(model: Any, block: dict[str, Any], usage: Usage) -> dict[str, Any]:
    stop = "tool_use" if block["type"] == "tool_use" else "end_turn"
    return {
        "id": _id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached_tokens,
        },
    }


def _anthropic_events(
    message: dict[str, Any], block: dict[str, Any], usage: Usage
) -> list[tuple[str | None, Any]]:
    """The Messages stream: the block opened empty, filled by one delta, then the stop."""
    if block["type"] == "tool_use":
        empty = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    else:
        empty = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": block["text"]}
    # message_start carries output_tokens 1 and message_delta the final count, as the API does.
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": start}),
        ("content_block_start", {"index": 0, "content_block": empty}),
        ("content_block_delta", {"index": 0, "delta": delta}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": stop, "usage": {"output_tokens": usage.output_tokens}}),
        ("message_stop", {}),
    ]
    return [(name, {"type": name, **data}) for name, data in events]


def _codex_patch(edit: Edit) -> str:
    """The ``apply_patch`` text of ``edit`` (paths relative to the working directory)."""
    if isinstance(edit, Create):
        lines = [f"*** Add File: {edit.path}", *(f"+{line}" for line in edit.content.splitlines())]
    else:
        lines = [f"*** Update File: {edit.path}", "@@"]
        lines += [f"-{line}" for line in edit.old.splitlines()]
        lines += [f"+{line}" for line in edit.new.splitlines()]
    return "\n".join(["*** Begin Patch", *lines, "*** End Patch"]) + "\n"


def _openai_patch_call(patch: str, tool_type: Any) -> dict[str, Any]:
    """The ``apply_patch`` call: freeform (``custom``) for Codex's own models, else a function."""
    call = {"call_id": _id("call_"), "name": "apply_patch", "status": "completed"}
    if tool_type == "custom":
        return {"type": "custom_tool_call", "id": _id("ctc_"), "input": patch, **call}
    arguments = json.dumps({"input": patch})
    return {"type": "function_call", "id": _id("fc_"), "arguments": arguments, **call}


def _openai_message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": _id("msg_"),
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _openai_events(model: Any, item: dict[str, Any], usage: Usage) -> list[tuple[str | None, Any]]:
    """The Responses stream: created, the item added (a text delta), done, completed."""
    response = {
        "id": _id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": "in_progress",
        "output": [],
    }
    totals = {
        "input_tokens": usage.input_tokens + usage.cached_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.cached_tokens + usage.output_tokens,
    }
    events: list[tuple[str, dict[str, Any]]] = [("response.created", {"response": response})]
    if item["type"] == "message":
        events.append(
            ("response.output_item.added", _added(item, {"status": "in_progress", "content": []}))
        )
        text = item["content"][0]["text"]
        delta = {"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": text}
        events.append(("response.output_text.delta", delta))
    else:
        events.append(("response.output_item.added", _added(item, {})))
    events.append(("response.output_item.done", {"output_index": 0, "item": item}))
    finished = {**response, "status": "completed", "output": [item], "usage": totals}
    events.append(("response.completed", {"response": finished}))
    return [
        (name, {"type": name, "sequence_number": n, **data})
        for n, (name, data) in enumerate(events)
    ]


def _added(item: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {"output_index": 0, "item": {**item, **changes}}


def _gemini_call(edit: Edit, cwd: str) -> dict[str, Any]:
    """``write_file``/``replace`` (``instruction`` is required by Gemini CLI's schema)."""
    path = _absolute(edit.path, cwd)
    if isinstance(edit, Create):
        return {"name": "write_file", "args": {"file_path": path, "content": edit.content}}
    args = {
        "file_path": path,
        "instruction": f"Replace the text in {edit.path}.",
        "old_string": edit.old,
        "new_string": edit.new,
    }
    return {"name": "replace", "args": args}


#: What Gemini CLI's JSON side questions get: the user speaks next, a simple task.
_GEMINI_SIDE_ANSWER = {
    "reasoning": "fake",
    "next_speaker": "user",
    "complexity_reasoning": "simple",
    "complexity_score": 10,
    "model_choice": "flash",
}


def _gemini_chunk(model: str, part: dict[str, Any], usage: Usage) -> dict[str, Any]:
    prompt = usage.input_tokens + usage.cached_tokens
    return {
        "candidates": [
            {"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": usage.output_tokens,
            "cachedContentTokenCount": usage.cached_tokens,
            "totalTokenCount": prompt + usage.output_tokens,
        },
        "modelVersion": model,
        "responseId": _id(""),
    }


# ----------------------------------------------------------------------------- helpers


def _absolute(path: str, cwd: str) -> str:
    return path if path.startswith("/") else f"{cwd}/{path}"


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:20]


def _json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; ``{}`` when it is not one (the reply then says so)."""
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _blocks(messages: list[Any]) -> Iterator[dict[str, Any]]:
    """Every content block of Anthropic ``messages``."""
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from (block for block in content if isinstance(block, dict))


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (to search the prompts, whatever their nesting)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# ----------------------------------------------------------------------------- HTTP


def _handler_class(fake: AgentCliFake) -> type[BaseHTTPRequestHandler]:
    """The request handler bound to ``fake``."""

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            request = _record(self)
            with fake._lock:
                fake.requests.append(request)
            reply = fake.answer(request)
            # A CLI that gave up (killed by a hang test) leaves a closed socket.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _send(self, reply)
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

    return _Handler


def _record(handler: BaseHTTPRequestHandler) -> Recorded:
    """The request as received: body de-chunked and gunzipped, secrets set aside."""
    body = _read_body(handler)
    if handler.headers.get("Content-Encoding", "").lower() == "gzip":
        body = gzip.decompress(body)
    headers: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for name, value in handler.headers.items():
        key = name.lower()
        if _SECRET_HEADER.search(key):
            headers[key], secrets[key] = "<redacted>", value
        else:
            headers[key] = value
    parts = urlsplit(handler.path)
    return Recorded(handler.command, parts.path, parts.query, headers, body, secrets)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = handler.headers.get("Content-Length")
    if length is not None:
        return handler.rfile.read(int(length))
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return b""
    chunks = []
    while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()
    handler.rfile.readline()  # the blank line after the last chunk
    return b"".join(chunks)


def _send(handler: BaseHTTPRequestHandler, reply: _Answer) -> None:
    """Write ``reply``: JSON with a length, or SSE until the connection closes."""
    handler.send_response(reply.status)
    handler.send_header("Connection", "close")
    if reply.events is None:
        payload = json.dumps(reply.body).encode()
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        return
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()
    for name, data in reply.events:
        head = f"event: {name}\n" if name else ""
        handler.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
        handler.wfile.flush()
