"""Claude Code (``claude``, npm ``@anthropic-ai/claude-code``) as a worker.

Run as ``claude -p --output-format stream-json --verbose`` with the prompt on standard input:
edits are accepted in its working directory only (``--permission-mode acceptEdits``; shell
commands only when ``sandbox.run_command`` is on), the web tools are off, and our turn and
dollar limits become its own ``--max-turns`` and ``--max-budget-usd``. ``ANTHROPIC_BASE_URL``
points it at another endpoint (``base_url``, as for the ``anthropic`` provider).
Its telemetry, error reporting and update checks are off, so the provider's API is the only
host it contacts.

The stream: ``assistant`` events carry each model response with its ``usage`` (one event per
content block, so a response is counted once by its message id); ``user`` events carry tool
results; the final ``result`` event has the totals, the final text and ``total_cost_usd``.
A failed run says ``is_error: true`` even when its ``subtype`` is ``success`` (an API error),
so the error is read from ``is_error``, never from the subtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.agent_clis.catalog import CLIS
from orchestrator.agent_clis.driver import CliRequest, Launch, Tally, count, text_of
from orchestrator.contracts import Usage
from orchestrator.providers.anthropic_response import usage_of

#: Variables that keep Claude Code off every host but the API (verified with a DNS log).
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    # Our chain falls back to the next agent; its own default is 10 retries with back-off.
    "CLAUDE_CODE_MAX_RETRIES": "2",
}
#: Tools that reach the network by themselves.
WEB_TOOLS = ("WebFetch", "WebSearch")
#: ``result`` subtypes of Claude Code's own limits (given ours) → our limit's name.
BUDGET_SUBTYPES = {"error_max_turns": "max_turns", "error_max_budget_usd": "max_usd"}


class ClaudeCode:
    """The ``claude-code`` provider."""

    cli = CLIS["claude-code"]
    default_api = "https://api.anthropic.com"
    turn_limit_exit: int | None = None

    def launch(self, request: CliRequest, key: str | None) -> Launch:
        """``claude -p`` with our limits, in stream-json."""
        spec, limits = request.spec, request.limits
        args = [
            "-p",
            "--output-format", "stream-json",
            "--verbose",
            "--model", spec.model,
            "--permission-mode", "acceptEdits",
            "--max-turns", str(limits.max_turns),
            "--no-session-persistence",
            "--disallowedTools", *WEB_TOOLS,
            "--append-system-prompt", request.rules,
        ]  # fmt: skip
        if request.commands:
            args += ["--allowedTools", "Bash"]
        if limits.max_usd is not None:
            args += ["--max-budget-usd", f"{limits.max_usd:.6f}"]
        env = {**QUIET_ENV, "CLAUDE_CONFIG_DIR": str(request.home / "claude")}
        if spec.base_url:
            env["ANTHROPIC_BASE_URL"] = spec.base_url
        secrets = {self.cli.key_env: key} if key else {}
        api = spec.base_url or self.default_api
        return Launch([*args, *spec.args], env, secrets, {}, api)

    def tally(self) -> ClaudeTally:
        """A reader of Claude Code's stream-json."""
        return ClaudeTally()


@dataclass
class ClaudeTally(Tally):
    """Claude Code's stream, read event by event."""

    _by_message: dict[str, Usage] = field(default_factory=dict)

    def feed(self, event: dict[str, Any]) -> None:
        """Count responses and tokens; take the final ``result``."""
        kind = event.get("type")
        if kind == "assistant":
            self._response(event.get("message"))
        elif kind == "user":
            self._tool_results(event.get("message"))
        elif kind == "system" and event.get("subtype") == "api_retry":
            self.notice = f"API retry {count(event.get('attempt'))}: {text_of(event.get('error'))}"
        elif kind == "system" and event.get("subtype") == "permission_denied":
            tool = text_of(event.get("tool_name")) or "a tool"
            why = text_of(event.get("decision_reason")) or "denied"
            self.tool_errors.append(f"{tool}: {why}")
        elif kind == "result":
            self._result(event)

    def _response(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        ident = text_of(message.get("id")) or f"#{len(self._by_message)}"
        if ident not in self._by_message:
            self.turns += 1
        self._by_message[ident] = usage_of(message.get("usage"))
        self.usage = sum(self._by_message.values(), Usage())
        for block in message.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "text":
                self.summary = text_of(block.get("text")) or self.summary

    def _tool_results(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            return
        for block in message["content"]:
            failed = isinstance(block, dict) and block.get("type") == "tool_result"
            if failed and block.get("is_error") is True:
                self.tool_errors.append(_first_line(block.get("content")))

    def _result(self, event: dict[str, Any]) -> None:
        self.finished = True
        self.turns = max(self.turns, count(event.get("num_turns")))
        if isinstance(event.get("usage"), dict):
            self.usage = usage_of(event["usage"])
        cost = event.get("total_cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
            self.reported_cost = float(cost)
        self.summary = text_of(event.get("result")) or self.summary
        subtype = text_of(event.get("subtype"))
        if subtype in BUDGET_SUBTYPES:
            errors = [text_of(e) for e in event.get("errors") or [] if text_of(e)]
            limit = BUDGET_SUBTYPES[subtype]
            self.budget = f"{limit} budget reached: " + ("; ".join(errors) or subtype)
        elif event.get("is_error") is True:
            errors = [text_of(e) for e in event.get("errors") or [] if text_of(e)]
            reason = "; ".join(errors) or text_of(event.get("result"))
            self.error = reason or text_of(event.get("subtype")) or "Claude Code failed"


def _first_line(content: Any) -> str:
    if isinstance(content, list):
        content = " ".join(text_of(c.get("text")) for c in content if isinstance(c, dict))
    text = text_of(content).strip()
    return text.splitlines()[0][:200] if text else "a tool failed"
