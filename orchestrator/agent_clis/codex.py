"""Codex CLI (``codex``, npm ``@openai/codex``) as a worker.

Run as ``codex exec --json --ephemeral -`` with the prompt on standard input. Its endpoint is
a provider of its own in ``$CODEX_HOME/config.toml`` (``wire_api = "responses"``, the only wire
API Codex speaks): Codex ignores ``OPENAI_BASE_URL``, and its built-in provider first tries a
WebSocket. ``base_url`` is the API root with its version, as for the ``openai`` provider
(``http://host:port/v1``). Plugins, analytics and web search are off, so the provider's API is
the only host it contacts.

Codex's own sandbox needs user namespaces, which ours does not give (it runs inside ours), so
it runs with ``sandbox_mode = "danger-full-access"`` and no approvals: the limits are ours —
only the task's tree is writable, the network reaches the provider's API alone. Codex has no
turn or dollar limit of its own: ours are applied to its stream while it runs.

The stream: ``item.completed`` events carry the agent's messages, commands and file changes;
``turn.completed`` the turn's token usage (no cost); ``turn.failed`` the error. Codex reports
no per-response event, so a turn is counted per completed message, command, file change, MCP
call or web search — each comes from one model response, several from one response are each
counted.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.agent_clis.catalog import CLIS
from orchestrator.agent_clis.driver import CliRequest, Launch, Tally, count, text_of
from orchestrator.contracts import Usage

#: The name of our provider table in config.toml.
PROVIDER_ID = "orchestrator"
#: The variable Codex reads the key from (``env_key`` of that table).
KEY_ENV = CLIS["codex-cli"].key_env
#: Items that each stand for (part of) one model response.
TURN_ITEMS = frozenset(
    {"agent_message", "command_execution", "file_change", "mcp_tool_call", "web_search"}
)


class CodexCli:
    """The ``codex-cli`` provider."""

    cli = CLIS["codex-cli"]
    default_api = "https://api.openai.com/v1"
    turn_limit_exit: int | None = None

    def launch(self, request: CliRequest, key: str | None) -> Launch:
        """``codex exec --json`` with its configuration file."""
        spec = request.spec
        api = spec.base_url or self.default_api
        codex_home = request.home / "codex"
        args = [
            "exec",
            "--json",
            "--ephemeral",
            "--skip-git-repo-check",
            "--model", spec.model,
            *spec.args,
            "-",
        ]  # fmt: skip
        env = {"CODEX_HOME": str(codex_home), "CODEX_NON_INTERACTIVE": "1"}
        secrets = {KEY_ENV: key} if key else {}
        files = {codex_home / "config.toml": config_toml(spec.model, api, has_key=bool(key))}
        files[codex_home / "AGENTS.md"] = request.rules + "\n"
        return Launch(args, env, secrets, files, api)

    def tally(self) -> CodexTally:
        """A reader of Codex's JSONL events."""
        return CodexTally()


def config_toml(model: str, api: str, *, has_key: bool) -> str:
    """Codex's configuration: our endpoint as its provider, no plugins, analytics or web."""
    lines = [
        f"model = {_toml(model)}",
        f"model_provider = {_toml(PROVIDER_ID)}",
        'approval_policy = "never"',
        'sandbox_mode = "danger-full-access"',
        'web_search = "disabled"',
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[features]",
        "plugins = false",
        "",
        f"[model_providers.{PROVIDER_ID}]",
        f"name = {_toml('orchestrator')}",
        f"base_url = {_toml(api)}",
        'wire_api = "responses"',
        # Our chain falls back to the next agent: Codex's own retries only add waiting.
        "request_max_retries = 1",
        "stream_max_retries = 1",
    ]
    if has_key:
        lines.append(f"env_key = {_toml(KEY_ENV)}")
    return "\n".join(lines) + "\n"


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (both escape \\, \" and control characters).
    return json.dumps(value)


class CodexTally(Tally):
    """Codex's JSONL events, read one by one."""

    def feed(self, event: dict[str, Any]) -> None:
        """Count items and tokens; take a failed turn's error."""
        kind = event.get("type")
        if kind == "item.completed" and isinstance(event.get("item"), dict):
            self._item(event["item"])
        elif kind == "turn.completed":
            self.finished = True
            self.error = None
            self.usage = self.usage + _usage(event.get("usage"))
        elif kind == "turn.failed":
            failure = event.get("error")
            message = text_of(failure.get("message")) if isinstance(failure, dict) else ""
            self.error = message or self.notice or "the turn failed"
        elif kind == "error":
            self.notice = text_of(event.get("message")) or self.notice

    def _item(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind in TURN_ITEMS:
            self.turns += 1
        if kind == "agent_message":
            self.summary = text_of(item.get("text")) or self.summary
        elif kind == "command_execution" and count(item.get("exit_code")):
            command = text_of(item.get("command"))[:120]
            self.tool_errors.append(f"{command}: exit code {item['exit_code']}")
        elif kind == "error":
            self.tool_errors.append(text_of(item.get("message"))[:200])


def _usage(raw: Any) -> Usage:
    """Codex's turn usage as ours (its input already includes the cached part)."""
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=count(raw.get("input_tokens")),
        output_tokens=count(raw.get("output_tokens")),
        cached_input_tokens=count(raw.get("cached_input_tokens")),
        cache_write_input_tokens=count(raw.get("cache_write_input_tokens")),
    )
