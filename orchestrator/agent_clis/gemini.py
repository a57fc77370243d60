"""Gemini CLI (``gemini``, npm ``@google/gemini-cli``) as a worker.

Run as ``gemini -o stream-json --approval-mode auto_edit`` with the prompt on standard input
(``-p`` adds one closing line: the headless switch). Edits are approved in the working
directory only; its shell tool exists only when ``sandbox.run_command`` is on (``yolo`` mode,
still inside our sandbox). Its settings (``$GEMINI_CLI_HOME/.gemini/settings.json``) choose API
key authentication, turn off usage statistics, update checks and the web tools, and make our
``max_turns`` its ``model.maxSessionTurns``. ``GOOGLE_GEMINI_BASE_URL`` points it at another
endpoint (``base_url``, as for the ``gemini`` provider); our rules are its global context file.

The stream: ``message`` events (the assistant's text comes in deltas), ``tool_use`` and
``tool_result`` (a failed tool says ``status: error`` while the run goes on, and the CLI still
exits 0), and a final ``result`` with the token totals (no cost) or the error. A turn is counted
per model response: a run of ``tool_use`` or assistant events after the previous tool results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.agent_clis.catalog import CLIS
from orchestrator.agent_clis.driver import CliRequest, Launch, Tally, count, text_of
from orchestrator.contracts import Usage

#: The closing line of the prompt (``-p``); the task itself comes on standard input.
HEADLESS_PROMPT = "Do the task described above."
#: Tools that reach the network by themselves.
WEB_TOOLS = ("web_fetch", "google_web_search")


class GeminiCli:
    """The ``gemini-cli`` provider."""

    cli = CLIS["gemini-cli"]
    default_api = "https://generativelanguage.googleapis.com"
    turn_limit_exit: int | None = 53  # FatalTurnLimitedError (model.maxSessionTurns)

    def launch(self, request: CliRequest, key: str | None) -> Launch:
        """``gemini -o stream-json`` with its settings file."""
        spec = request.spec
        gemini_home = request.home / "gemini"
        mode = "yolo" if request.commands else "auto_edit"
        args = ["-o", "stream-json", "--approval-mode", mode, "--model", spec.model, *spec.args]
        args += ["-p", HEADLESS_PROMPT]
        env = {
            "GEMINI_CLI_HOME": str(gemini_home),
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            # One process: the relaunch only raises Node's heap limit, which we set ourselves.
            "GEMINI_CLI_NO_RELAUNCH": "true",
            "NO_COLOR": "1",
        }
        if spec.base_url:
            env["GOOGLE_GEMINI_BASE_URL"] = spec.base_url
        secrets = {self.cli.key_env: key} if key else {}
        files = {
            gemini_home / ".gemini" / "settings.json": settings_json(request.limits.max_turns),
            gemini_home / ".gemini" / "GEMINI.md": request.rules + "\n",
        }
        return Launch(args, env, secrets, files, spec.base_url or self.default_api)

    def tally(self) -> GeminiTally:
        """A reader of Gemini CLI's stream-json."""
        return GeminiTally()


def settings_json(max_turns: int) -> str:
    """Gemini CLI's settings: API key auth, no statistics, updates or web tools, our turns."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"disableAutoUpdate": True},
        "tools": {"exclude": list(WEB_TOOLS)},
        "model": {"maxSessionTurns": max_turns},
    }
    return json.dumps(settings, indent=2) + "\n"


@dataclass
class GeminiTally(Tally):
    """Gemini CLI's stream, read event by event."""

    _in_response: bool = False
    _text: str = ""

    def feed(self, event: dict[str, Any]) -> None:
        """Count responses; collect the final text; take the ``result``."""
        kind = event.get("type")
        if kind == "tool_use":
            self._respond()
            self._text = ""
        elif kind == "message" and event.get("role") == "assistant":
            self._respond()
            self._text += text_of(event.get("content"))
            self.summary = self._text
        elif kind == "tool_result":
            self._in_response = False
            if event.get("status") == "error":
                self.tool_errors.append(_error_text(event.get("error")) or "a tool failed")
        elif kind == "error":
            self.notice = text_of(event.get("message")) or self.notice
        elif kind == "result":
            self._result(event)

    def _respond(self) -> None:
        if not self._in_response:
            self.turns += 1
            self._in_response = True

    def _result(self, event: dict[str, Any]) -> None:
        self.finished = True
        stats = event.get("stats")
        if isinstance(stats, dict):
            total_in = count(stats.get("input_tokens"))
            self.usage = Usage(
                input_tokens=total_in,
                output_tokens=count(stats.get("output_tokens")),
                cached_input_tokens=min(count(stats.get("cached")), total_in),
            )
        if event.get("status") != "success":
            self.error = _error_text(event.get("error")) or "Gemini CLI failed"


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return text_of(error.get("message"))[:500]
    return text_of(error)[:500]
