"""The vendor coding-agent CLIs the orchestrator can run as task workers, with pinned versions.

One entry per provider name as it appears in ``agents.yml``. The version is the one the tests
run against (``make agent-clis``) and the default that ``install`` fetches; the key variable is
the one each CLI reads by default, so the runner knows which secret to hand over and no other.
Standard library only: the installer imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentCli:
    """One vendor CLI: its npm package, pinned version, executable and key variable.

    Attributes:
        provider: Our provider name: ``claude-code``, ``codex-cli`` or ``gemini-cli``.
        package: The npm package that ships it.
        version: The pinned default version (the one the tests run).
        bin: The executable's name in ``node_modules/.bin`` and on PATH.
        key_env: The API-key variable the CLI reads by default.
    """

    provider: str
    package: str
    version: str
    bin: str
    key_env: str


CLIS: dict[str, AgentCli] = {
    cli.provider: cli
    for cli in (
        AgentCli(
            "claude-code", "@anthropic-ai/claude-code", "2.1.332", "claude", "ANTHROPIC_API_KEY"
        ),
        AgentCli("codex-cli", "@openai/codex", "0.171.0", "codex", "OPENAI_API_KEY"),
        AgentCli("gemini-cli", "@google/gemini-cli", "0.61.0", "gemini", "GEMINI_API_KEY"),
    )
}


def agent_cli(provider: str) -> AgentCli | None:
    """The catalog entry of ``provider``, or ``None`` when it is not a vendor CLI."""
    return CLIS.get(provider)
