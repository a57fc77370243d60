"""Vendors' coding-agent CLIs as workers: Claude Code, Codex CLI and Gemini CLI.

An agent whose ``provider`` is ``claude-code``, ``codex-cli`` or ``gemini-cli`` does a task by
running that CLI headless on the task's tree instead of our tool loop; planning, routing,
budgets, the sandbox, merge, verify and publishing stay ours (docs/providers/agent-clis.md).

* ``catalog.py`` — the three CLIs: npm package, pinned version, program name;
* ``install.py`` — finding an installed CLI, installing a pinned one with npm;
* ``claude.py``, ``codex.py``, ``gemini.py`` — one driver per CLI: its flags, environment and
  configuration files, and the reader of its machine-readable stream;
* ``runner.py`` — one attempt: the CLI in the sandbox, on the task's tree, within our limits.

Importing this package imports none of them.
"""
