"""The orchestration config set: agents, routing rules, workflow templates and settings.

A config set is one folder with ``agents.yml``, ``routing_rules.yml``, ``workflows.yml`` and an
optional ``settings.yml``. ``--config DIR`` replaces the whole set; without it the repository's
own ``configs/orchestration/`` is used when present, else the defaults shipped in the package.
Which files are read and how their layers combine lives in ``config_layers.py`` (shared with the
skip path of ``orchestrator plan``); this module validates the result. Every file is
validated; an error names the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from orchestrator import config_layers
from orchestrator.config_layers import (
    CONFIG_FILES,
    SETTINGS_FILE,
    ConfigFolders,
    Layer,
    merged,
    read_layer,
)
from orchestrator.contracts import (
    AgentSpec,
    BatchSettings,
    Contract,
    Limits,
    MergeSettings,
    Plan,
    RunMode,
    SandboxSettings,
    VerifySettings,
)
from orchestrator.errors import InputError
from orchestrator.events import COMMAND_NAME_PATTERN, EventSettings, ScheduleSpec

HARD_MAX_TASKS = 256  # a GitHub Actions matrix runs at most 256 jobs

M = TypeVar("M", bound=BaseModel)


class RouteRule(Contract):
    """Which agents handle a task type, in order of preference."""

    primary: str
    backup: list[str] = Field(default_factory=list)
    changes: bool = Field(
        default=True, description="True when the task must leave a patch to count as succeeded."
    )
    prefer: Literal["order", "cheapest"] = Field(
        default="order",
        description="cheapest: the agent of the chain with a key and the lowest estimated cost "
        "for this type goes first (docs/routing.md).",
    )
    max_usd: float | None = Field(
        default=None,
        ge=0,
        description="Agents whose estimated cost for a task of this type is higher are not used.",
    )

    @field_validator("backup", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @property
    def chain(self) -> list[str]:
        """Primary first, then backups, without repeats."""
        return list(dict.fromkeys([self.primary, *self.backup]))


class Stage(Contract):
    """One stage of a workflow template; becomes one task, or one task per item."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")
    type: str
    title: str
    instructions: str
    for_each: Literal["item"] | None = None
    depends_on: list[str] = Field(default_factory=list)


class WorkflowTemplate(Contract):
    """A named orchestration pattern: stages with task types and dependencies."""

    description: str = ""
    require_approval: bool | None = Field(
        default=None,
        description="Its label or /orchestrate runs wait for /approve; unset: "
        "triggers.require_approval.",
    )
    mode: RunMode | None = Field(
        default=None, description="batch: its runs use the providers' batch APIs (docs/batch.md)."
    )
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _stages_refer_backwards(self) -> WorkflowTemplate:
        seen: set[str] = set()
        for index, stage in enumerate(self.stages):
            if stage.id in seen:
                raise ValueError(f"stages[{index}].id: duplicate stage id {stage.id!r}")
            for dep in stage.depends_on:
                if dep not in seen:
                    raise ValueError(f"stages[{index}].depends_on: {dep!r} is not an earlier stage")
            seen.add(stage.id)
        return self

    @property
    def per_item_stages(self) -> list[Stage]:
        """Stages that fan out over the request's items."""
        return [stage for stage in self.stages if stage.for_each == "item"]


class Triggers(Contract):
    """What starts a run."""

    label: str = "orchestrate"
    command: str = Field(default="orchestrate", pattern=COMMAND_NAME_PATTERN)
    allow_edited_comments: bool = False
    require_approval: bool = Field(
        default=False,
        description="Every label or /orchestrate run stops after planning until a trusted "
        "/approve (a workflow's own require_approval wins).",
    )


class Trust(Contract):
    """Who may start a run."""

    author_associations: list[str] = Field(
        default_factory=lambda: ["OWNER", "MEMBER", "COLLABORATOR"]
    )
    allowed_bots: list[str] = Field(default_factory=list)
    confirm_permission: Literal["none", "read", "triage", "write", "maintain", "admin"] = Field(
        default="write",
        description="In GitHub Actions, also ask the API for the actor's repository permission "
        "and act only at this level or above: an association (MEMBER, COLLABORATOR) or the right "
        "to add a label (triage) does not mean write access. 'none' relies on associations only.",
    )


class TokenGuess(Contract):
    """Tokens a task is expected to use, when the run history has nothing to say."""

    input_tokens: int = Field(default=40_000, ge=0)
    output_tokens: int = Field(default=4_000, ge=0)


class Estimates(Contract):
    """``planning.estimate``: what a task costs before it runs (docs/routing.md)."""

    default: TokenGuess = Field(default_factory=TokenGuess)
    by_type: dict[str, TokenGuess] = Field(default_factory=dict)
    min_history: int = Field(
        default=3, ge=1, description="Tasks of a type in the history before they are believed."
    )


class Prices(Contract):
    """``prices``: how old a configured price may be before ``validate`` warns."""

    max_age_days: int = Field(default=120, ge=1)


class Planning(Contract):
    """Planner defaults and caps."""

    default_workflow: str | None = "parallel_feature_implementation"
    planner_agent: str | None = "claude"
    max_tasks: int = Field(default=20, ge=1, le=HARD_MAX_TASKS)
    max_waves: int = Field(default=8, ge=1, le=32)
    max_parallel: int = Field(default=4, ge=1, le=256)
    learn_routing: bool = Field(
        default=False, description="Let run history reorder agent chains (docs/routing.md)."
    )
    learn_min_samples: int = Field(default=5, ge=1)
    learn_margin: float = Field(default=0.10, ge=0, le=1)
    history: str = Field(
        default=".orchestrator/history.jsonl",
        description="Run history (metrics lines), relative to the repository.",
    )
    estimate: Estimates = Field(default_factory=Estimates)


class ScheduleEntry(Contract):
    """What a scheduled run (``on: schedule``) with a given cron does."""

    workflow: str | None = None
    request: str = ""
    tasks: list[str] = Field(default_factory=list)
    mode: RunMode | None = Field(
        default=None, description="Unset: batch when settings batch.schedules is true."
    )


class Settings(Contract):
    """``settings.yml``: triggers, trust, planning caps, task limits, schedules."""

    triggers: Triggers = Field(default_factory=Triggers)
    trust: Trust = Field(default_factory=Trust)
    planning: Planning = Field(default_factory=Planning)
    limits: Limits = Field(default_factory=Limits)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    merge: MergeSettings = Field(default_factory=MergeSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    prices: Prices = Field(default_factory=Prices)
    schedules: dict[str, ScheduleEntry] = Field(default_factory=dict)


class AgentsFile(Contract):
    """``agents.yml``."""

    agents: dict[str, AgentSpec] = Field(min_length=1)


class RoutingFile(Contract):
    """``routing_rules.yml``."""

    routes: dict[str, RouteRule] = Field(min_length=1)


class WorkflowsFile(Contract):
    """``workflows.yml``."""

    workflows: dict[str, WorkflowTemplate] = Field(min_length=1)


@dataclass(frozen=True)
class Config:
    """A loaded, cross-checked config set."""

    source: Path
    agents: dict[str, AgentSpec]
    routes: dict[str, RouteRule]
    workflows: dict[str, WorkflowTemplate]
    settings: Settings
    layers: tuple[Path, ...] = ()
    files: Mapping[str, Path] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        """The file that set ``name`` (``routing_rules.yml``, …): the layer's, or the default."""
        return self.files.get(name, self.source / name)

    @property
    def task_types(self) -> list[str]:
        """Known task types (the keys of routing_rules.yml)."""
        return list(self.routes)

    def event_settings(self) -> EventSettings:
        """The trigger and trust settings the event parser needs."""
        settings = self.settings
        return EventSettings(
            trigger_label=settings.triggers.label,
            command=settings.triggers.command,
            trusted_associations=tuple(settings.trust.author_associations),
            allowed_bots=tuple(settings.trust.allowed_bots),
            allow_edited=settings.triggers.allow_edited_comments,
            # The planner, not the event parser, picks a workflow for free text: the LLM planner
            # when its agent has a key, else planning.default_workflow.
            default_workflow=None,
            schedules={
                cron: ScheduleSpec(
                    workflow=entry.workflow,
                    items=tuple(entry.tasks),
                    request=entry.request,
                    mode=entry.mode,
                )
                for cron, entry in settings.schedules.items()
            },
        )

    def with_agents(self, agents: Mapping[str, AgentSpec]) -> Config:
        """A copy with another agent set (used by the demo and tests), re-checked."""
        clone = Config(
            self.source,
            dict(agents),
            self.routes,
            self.workflows,
            self.settings,
            self.layers,
            self.files,
        )
        _cross_check(clone)
        return clone

    def with_replay(self, script: Path) -> Config:
        """A copy whose every agent plays ``script`` (provider ``replay``), prices kept.

        What ``--replay SCRIPT`` does: planning, routing, budgets and accounting run as with the
        real agents, no key is needed, and costs are labelled simulated wherever they are shown.

        Raises:
            InputError: the script is missing or malformed (named by its field).
        """
        from orchestrator.providers.replay import load_script

        load_script(script)  # fail now, naming the script's bad field, not mid-run
        path = str(script.resolve())
        replayed = {
            # A replayed agent is local: the endpoint's rate limits of the real one do not apply.
            name: spec.model_copy(
                update={
                    "provider": "replay",
                    "script": path,
                    "api_key": None,
                    "base_url": None,
                    "max_concurrency": None,
                    "requests_per_minute": None,
                }
            )
            for name, spec in self.agents.items()
        }
        return self.with_agents(replayed)

    def check_plan(self, plan: Plan, source: str) -> None:
        """Refuse a plan whose task types this config does not know (exit 2, naming the task).

        ``Plan`` checks its own shape when read; only the config knows the types.
        """
        for index, task in enumerate(plan.tasks):
            if task.type not in self.routes:
                known = ", ".join(self.routes)
                raise InputError(
                    source, f"tasks[{index}].type", f"unknown task type {task.type!r} ({known})"
                )

    def describe(self) -> str:
        """Where the config came from, for the command's report."""
        if len(self.layers) > 1:
            return f"{self.layers[-1]} (layered over the defaults)"
        if self.source.resolve() != default_config_dir().resolve():
            return f"{self.source} (a complete set: replaces the defaults)"
        return f"{self.source} (the defaults)"


def default_config_dir() -> Path:
    """The config set shipped with the package (or the source tree's, when run from it)."""
    return Path(config_layers.default_config_folder())


#: Where a repository keeps its own config layer.
REPO_CONFIG_DIR = Path(config_layers.REPO_CONFIG_DIR)


def resolve_config_dir(config: Path | None, repo: Path | None) -> Path:
    """``--config`` if given, else the repository's ``configs/orchestration``, else defaults."""
    return Path(config_layers.resolve_config_folder(config, repo))


def is_complete_set(folder: Path) -> bool:
    """A folder holding all three required files: it replaces the defaults (``config_layers``)."""
    return config_layers.is_complete_set(folder)


def load_config(config: Path | None = None, repo: Path | None = None) -> Config:
    """Load and validate a config set.

    Precedence (docs/configuration.md): ``--config DIR`` if given, else the repository's
    ``configs/orchestration/``, else the packaged defaults. A chosen folder that holds all of
    ``agents.yml``, ``routing_rules.yml`` and ``workflows.yml`` replaces the defaults; otherwise
    each file it has is layered over the default file of the same name
    (``config_layers.layered``).

    Raises:
        InputError: a file is missing or malformed, or the files disagree (e.g. a route naming
            an unknown agent); the message names file, line and field.
    """
    folders = ConfigFolders(config, repo)
    folder, defaults = Path(folders.folder), Path(folders.defaults)

    def layers(name: str) -> list[Layer]:
        return [read_layer(Path(path)) for path in folders.layer_files(name)]

    agent_layers = layers("agents.yml")
    agents = _load_layers(agent_layers, AgentsFile, "agents.yml", folder)
    routing = _load_layers(layers("routing_rules.yml"), RoutingFile, "routing_rules.yml", folder)
    workflows = _load_layers(layers("workflows.yml"), WorkflowsFile, "workflows.yml", folder)
    settings = _load_layers(layers(SETTINGS_FILE), Settings, SETTINGS_FILE, folder)
    resolved = {
        name: _resolve_script(spec, _script_folder(name, agent_layers))
        for name, spec in agents.agents.items()
    }
    routes = _without_removed(routing.routes, _removed_agents(agent_layers[1:]))
    sources = (defaults, folder) if folders.layered else (folder,)
    files = {name: Path(folders.file(name)) for name in (*CONFIG_FILES, SETTINGS_FILE)}
    loaded = Config(folder, resolved, routes, workflows.workflows, settings, sources, files)
    _cross_check(loaded)
    return loaded


def _removed_agents(layers: list[Layer]) -> set[str]:
    """Agents a layer removed with ``NAME: null``."""
    removed: set[str] = set()
    for layer in layers:
        entries = layer.data.get("agents")
        if isinstance(entries, dict):
            removed |= {name for name, value in entries.items() if value is None}
    return removed


def _without_removed(routes: dict[str, RouteRule], removed: set[str]) -> dict[str, RouteRule]:
    """Routes with the removed agents taken out of their chains.

    ``deepseek: null`` in a layer means "never route to it": the default rules that name it keep
    their other agents rather than fail. A chain left empty is an error in ``_cross_check``.
    """
    if not removed:
        return routes
    kept: dict[str, RouteRule] = {}
    for task_type, rule in routes.items():
        chain = [name for name in rule.chain if name not in removed] or rule.chain
        kept[task_type] = rule.model_copy(update={"primary": chain[0], "backup": chain[1:]})
    return kept


def load_agents_file(path: Path) -> dict[str, AgentSpec]:
    """Load a lone ``agents.yml`` (scripts resolved relative to it)."""
    agents = _load_layers([read_layer(path)], AgentsFile, "agents.yml", path.parent)
    return {name: _resolve_script(spec, path.parent) for name, spec in agents.agents.items()}


def _resolve_script(spec: AgentSpec, folder: Path) -> AgentSpec:
    if spec.script and not Path(spec.script).is_absolute():
        return spec.model_copy(update={"script": str((folder / spec.script).resolve())})
    return spec


def _script_folder(agent: str, layers: list[Layer]) -> Path:
    """The folder of the layer that last set the agent's ``script`` (relative paths start there)."""
    for layer in reversed(layers):
        entry = layer.data.get("agents", {}).get(agent) if isinstance(layer.data, dict) else None
        if isinstance(entry, dict) and "script" in entry:
            return Path(layer.path).parent
    return Path(layers[-1].path).parent if layers else Path()


def _cross_check(config: Config) -> None:
    """References between files must resolve; errors name the referring file and field."""
    for task_type, rule in config.routes.items():
        for index, name in enumerate(rule.chain):
            if name not in config.agents:
                field = f"routes.{task_type}." + ("primary" if index == 0 else "backup")
                raise InputError(
                    str(config.file("routing_rules.yml")), field, f"unknown agent {name!r}"
                )
    for wf_name, workflow in config.workflows.items():
        for index, stage in enumerate(workflow.stages):
            if stage.type not in config.routes:
                raise InputError(
                    str(config.file("workflows.yml")),
                    f"workflows.{wf_name}.stages[{index}].type",
                    f"unknown task type {stage.type!r} (not in routing_rules.yml)",
                )
    planning = config.settings.planning
    settings_file = str(config.file(SETTINGS_FILE))
    if planning.default_workflow and planning.default_workflow not in config.workflows:
        raise InputError(
            settings_file,
            "planning.default_workflow",
            f"unknown workflow {planning.default_workflow!r}",
        )
    if planning.planner_agent and planning.planner_agent not in config.agents:
        raise InputError(
            settings_file, "planning.planner_agent", f"unknown agent {planning.planner_agent!r}"
        )
    for cron, entry in config.settings.schedules.items():
        if entry.workflow and entry.workflow not in config.workflows:
            raise InputError(
                settings_file, f"schedules.{cron}.workflow", f"unknown workflow {entry.workflow!r}"
            )


# --------------------------------------------------------------------------- validating layers


def _load_layers(layers: list[Layer], model: type[M], name: str, folder: Path) -> M:
    """Validate the layered data of one file; an error names the layer that holds the field."""
    if not layers:
        if model is Settings:
            return model.model_validate({})
        raise InputError(str(folder / name), "", "file not found")
    data = merged(name, layers)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [part for part in first["loc"] if not isinstance(part, str) or part != "__root__"]
        layer = _blame(layers, loc)
        # Line numbers are needed only to report an error: compose the node tree just then.
        line = _line_of(yaml.compose(layer.text, Loader=yaml.SafeLoader), loc)
        field = _dotted(loc)
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        raise InputError(
            f"{layer.path}:{line}" if line else str(layer.path), field, message
        ) from None


def _blame(layers: list[Layer], loc: list[Any]) -> Layer:
    """The topmost layer that spells out the path of ``loc`` furthest (the one to fix)."""
    best, depth = layers[-1], -1
    for layer in reversed(layers):
        node: Any = layer.data
        reached = 0
        for part in loc:
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if (isinstance(node, dict) and part in node) or in_list:
                node = node[part]
            else:
                break
            reached += 1
        if reached > depth:
            best, depth = layer, reached
    return best


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its deepest existing ancestor)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if getattr(key, "value", None) == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line
