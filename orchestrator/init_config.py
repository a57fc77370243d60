"""``orchestrator init``: a commented config layer for a repository, and a starter replay script.

The files are layers over the packaged defaults (``config.load_config``): every key in them is
optional and the ones written here are all commented out, so a fresh ``init`` changes nothing
until a line is uncommented. ``replay.yml`` lets a run go end to end offline at once.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import REPO_CONFIG_DIR
from orchestrator.errors import InputError
from orchestrator.fileio import write_atomic

SETTINGS = """\
# settings.yml: triggers, trust, planning, limits, sandbox, verify, merge. This file is a
# layer over the packaged defaults: write only the keys you change (mappings merge key by key;
# `key: null` restores a default). Uncomment a line to change it. Reference:
# docs/configuration.md.

# triggers:
#   label: orchestrate            # labeling an issue with this starts a run
#   command: orchestrate          # /orchestrate in an issue or PR comment
#   allow_edited_comments: false
# trust:
#   author_associations: [OWNER, MEMBER, COLLABORATOR]
#   allowed_bots: []              # e.g. [renovate]
# planning:
#   default_workflow: parallel_feature_implementation
#   planner_agent: claude         # decomposes free-text requests
#   max_tasks: 20
#   max_waves: 8
#   max_parallel: 4
# limits:
#   max_turns: 30                 # per task
#   max_usd: 0.50                 # per task
#   run_max_usd: 5.00             # per run
#   allow_workflow_edits: false   # .github/workflows/ stays untouchable unless true
# sandbox:
#   run_command: true             # agents may run commands (bubblewrap; docs/sandbox.md)
#   timeout_s: 120
# verify:
#   command: python -m pytest -q  # unset: detected (make test, pytest, npm test, go, cargo)
#   fix_rounds: 1                 # fix-up tasks after a failed verify; 0 disables
# merge:
#   resolve_conflicts: true       # a resolve-<id> task tries each conflict
# schedules:
#   "0 3 * * *":                  # the cron of an `on: schedule` caller
#     workflow: code_review_fix_pipeline
#     request: Nightly review of recent changes
"""

AGENTS = """\
# agents.yml: the agents, layered over the packaged defaults (codex, claude, gemini, deepseek,
# copilot). Name an agent to change some of its fields; give `provider:` to define it anew
# (nothing of the default is kept); `NAME: null` removes it. Keys come from the environment
# only: `api_key: ${ENV_VAR}` names the variable, a literal key is refused.

# agents:
#   claude:
#     model: claude-opus-5-5              # another model, same provider and key
#     max_tokens: 8192
#   local:                                # a local model on an OpenAI-compatible server
#     provider: openai_compatible
#     model: qwen2.5-coder:14b
#     base_url: http://localhost:11434/v1
#     input_per_mtok: 0.0
#     output_per_mtok: 0.0
#   deepseek: null                        # never route to this one
"""

GUIDE = """\
# This folder configures the orchestrator for this repository

Each file here is a **layer over the packaged defaults**: write only what you change.
Precedence: `--config DIR` if given, else this folder, else the defaults.

- `settings.yml`: triggers, trust, planning, limits, sandbox, verify, merge, schedules;
  merged key by key, at every depth.
- `agents.yml`: the agents (provider, model, key variable, prices); merged field by field per
  agent, except that an entry naming a `provider:` replaces the default agent whole.
- `routing_rules.yml`: task type → primary and backup agents; merged field by field per type.
- `workflows.yml`: orchestration patterns (stage templates); a workflow replaces the default
  of the same name.
- `replay.yml`: scripted model turns for offline runs (`--replay`); a script, not config.

`NAME: null` removes an entry of the defaults (`deepseek: null` under `agents:` drops that
agent from every route). Keys come from the environment only: `api_key: ${ENV_VAR}` names the
variable, a literal key is refused.

`routing_rules.yml` and `workflows.yml` are not written here: with all three of `agents.yml`,
`routing_rules.yml` and `workflows.yml` this folder would be a complete set and replace the
defaults. Add them when you need them, for example:

```yaml
# routing_rules.yml: send documentation to a local model, Claude as the backup
routes:
  documentation:
    primary: local
    backup: [claude]
```

```yaml
# workflows.yml: a workflow of your own (a workflow of a default name replaces it)
workflows:
  docs_only:
    description: Document each item
    stages:
      - id: docs
        type: documentation
        for_each: item
        title: "Document {item}"
        instructions: "Write or update the documentation for {item}."
```

Run `orchestrator validate` after an edit: it says whether the folder is layered or complete
and names the file, line and field of any mistake. Reference: docs/configuration.md.
"""

REPLAY = """\
# replay.yml: scripted model turns, so a run goes end to end offline with no key and no cost
# (costs are shown as simulated). Use it with --replay:
#
#   orchestrator plan --workflow parallel_feature_implementation --task "first item" \\
#       --replay configs/orchestration/replay.yml --dry-run      # prints the task ids
#   orchestrator run  --workflow parallel_feature_implementation --task "first item" \\
#       --replay configs/orchestration/replay.yml
#
# `tasks:` maps a task id (as `--dry-run` prints it) to its turns; "*" serves every other
# task. In a string argument, {task_id} becomes the task's id. Format: docs/replay.md.
tasks:
  "*":
    - tool_calls:
        - name: list_files
          arguments: {path: "."}
      usage: {input_tokens: 1200, output_tokens: 40}
    - tool_calls:
        - name: write_file
          arguments:
            path: "orchestrator-notes/{task_id}.md"
            content: "# {task_id}\\n\\nWritten by a replayed agent (see replay.yml).\\n"
      usage: {input_tokens: 1500, output_tokens: 120}
    - tool_calls:
        - name: finish
          arguments: {summary: "{task_id}: wrote orchestrator-notes/{task_id}.md (replayed)"}
      usage: {input_tokens: 1700, output_tokens: 30}
"""

#: What ``init`` writes. Not ``routing_rules.yml`` and ``workflows.yml``: with all three of
#: agents, routing and workflows present the folder would be a complete set and replace the
#: defaults (config.is_complete_set); README.md shows them as examples instead.
FILES: dict[str, str] = {
    "README.md": GUIDE,
    "settings.yml": SETTINGS,
    "agents.yml": AGENTS,
    "replay.yml": REPLAY,
}


def write_config_layer(repo: Path, *, force: bool = False) -> list[Path]:
    """Write ``configs/orchestration/`` into ``repo``; return the files written.

    Raises:
        InputError: a file exists and ``force`` is not set (nothing is written then).
    """
    folder = repo / REPO_CONFIG_DIR
    if folder.exists() and not folder.is_dir():
        raise InputError("--repo", "", f"{folder} is a file, not a folder")
    existing = [folder / name for name in FILES if (folder / name).exists()]
    if existing and not force:
        names = ", ".join(path.name for path in existing)
        raise InputError(str(folder), "", f"{names} already exist; pass --force to overwrite them")
    written = []
    for name, text in FILES.items():
        write_atomic(folder / name, text)
        written.append(folder / name)
    return written
