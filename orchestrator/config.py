"""The orchestration config set: agents, routing rules, workflow templates and settings.

A config set is one folder with ``agents.yml``, ``routing_rules.yml``, ``workflows.yml`` and an
optional ``settings.yml``. ``--config DIR`` replaces the whole set; without it the repository's
own ``configs/orchestration/`` is used when present, else the defaults shipped in the package.
Every file is validated; an error names the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from orchestrator.contracts import AgentSpec, Contract, Limits
from orchestrator.errors import InputError
from orchestrator.events import EventSettings, ScheduleSpec
from orchestrator.fileio import read_text

CONFIG_FILES = ("agents.yml", "routing_rules.yml", "workflows.yml")
SETTINGS_FILE = "settings.yml"
HARD_MAX_TASKS = 256  # a GitHub Actions matrix runs at most 256 jobs

M = TypeVar("M", bound=BaseModel)
#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else Python's.
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RouteRule(Contract):
    """Which agents handle a task type, in order of preference."""

    primary: str
    backup: list[str] = Field(default_factory=list)
    changes: bool = Field(
        default=True, description="True when the task must leave a patch to count as succeeded."
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
    command: str = Field(default="orchestrate", pattern=r"^[a-z][a-z0-9-]*$")
    allow_edited_comments: bool = False


class Trust(Contract):
    """Who may start a run."""

    author_associations: list[str] = Field(
        default_factory=lambda: ["OWNER", "MEMBER", "COLLABORATOR"]
    )
    allowed_bots: list[str] = Field(default_factory=list)


class Planning(Contract):
    """Planner defaults and caps."""

    default_workflow: str | None = "parallel_feature_implementation"
    planner_agent: str | None = "claude"
    max_tasks: int = Field(default=20, ge=1, le=HARD_MAX_TASKS)
    max_waves: int = Field(default=4, ge=1, le=32)
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


class ScheduleEntry(Contract):
    """What a scheduled run (``on: schedule``) with a given cron does."""

    workflow: str | None = None
    request: str = ""
    tasks: list[str] = Field(default_factory=list)


class Settings(Contract):
    """``settings.yml``: triggers, trust, planning caps, task limits, schedules."""

    triggers: Triggers = Field(default_factory=Triggers)
    trust: Trust = Field(default_factory=Trust)
    planning: Planning = Field(default_factory=Planning)
    limits: Limits = Field(default_factory=Limits)
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
                    workflow=entry.workflow, items=tuple(entry.tasks), request=entry.request
                )
                for cron, entry in settings.schedules.items()
            },
        )

    def with_agents(self, agents: Mapping[str, AgentSpec]) -> Config:
        """A copy with another agent set (used by the demo and tests), re-checked."""
        clone = Config(self.source, dict(agents), self.routes, self.workflows, self.settings)
        _cross_check(clone)
        return clone


def default_config_dir() -> Path:
    """The config set shipped with the package (or the source tree's, when run from it)."""
    package = Path(__file__).resolve().parent
    packaged = package / "_defaults" / "orchestration"
    if packaged.is_dir():
        return packaged
    return package.parent / "configs" / "orchestration"


def resolve_config_dir(config: Path | None, repo: Path | None) -> Path:
    """``--config`` if given, else the repository's ``configs/orchestration``, else defaults."""
    if config is not None:
        if not config.is_dir():
            raise InputError("--config", "", f"{config} is not a directory")
        return config
    if repo is not None and (repo / "configs" / "orchestration" / "agents.yml").is_file():
        return repo / "configs" / "orchestration"
    return default_config_dir()


def load_config(config: Path | None = None, repo: Path | None = None) -> Config:
    """Load and validate a config set.

    Raises:
        InputError: a file is missing or malformed, or the files disagree (e.g. a route naming
            an unknown agent); the message names file, line and field.
    """
    folder = resolve_config_dir(config, repo)
    agents = _load(folder / "agents.yml", AgentsFile)
    routing = _load(folder / "routing_rules.yml", RoutingFile)
    workflows = _load(folder / "workflows.yml", WorkflowsFile)
    settings_path = folder / SETTINGS_FILE
    settings = _load(settings_path, Settings) if settings_path.exists() else Settings()
    resolved = {name: _resolve_script(spec, folder) for name, spec in agents.agents.items()}
    loaded = Config(folder, resolved, routing.routes, workflows.workflows, settings)
    _cross_check(loaded)
    return loaded


def load_agents_file(path: Path) -> dict[str, AgentSpec]:
    """Load a lone ``agents.yml`` (scripts resolved relative to it)."""
    agents = _load(path, AgentsFile)
    return {name: _resolve_script(spec, path.parent) for name, spec in agents.agents.items()}


def _resolve_script(spec: AgentSpec, folder: Path) -> AgentSpec:
    if spec.script and not Path(spec.script).is_absolute():
        return spec.model_copy(update={"script": str((folder / spec.script).resolve())})
    return spec


def _cross_check(config: Config) -> None:
    """References between files must resolve; errors name the referring file and field."""
    for task_type, rule in config.routes.items():
        for index, name in enumerate(rule.chain):
            if name not in config.agents:
                field = f"routes.{task_type}." + ("primary" if index == 0 else "backup")
                raise InputError(
                    str(config.source / "routing_rules.yml"), field, f"unknown agent {name!r}"
                )
    for wf_name, workflow in config.workflows.items():
        for index, stage in enumerate(workflow.stages):
            if stage.type not in config.routes:
                raise InputError(
                    str(config.source / "workflows.yml"),
                    f"workflows.{wf_name}.stages[{index}].type",
                    f"unknown task type {stage.type!r} (not in routing_rules.yml)",
                )
    planning = config.settings.planning
    settings_file = str(config.source / SETTINGS_FILE)
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


def _load(path: Path, model: type[M]) -> M:
    """Parse one YAML file into ``model``; errors carry file, line and field."""
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        location = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InputError(location, "", f"{problem} {where}".strip()) from None
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [part for part in first["loc"] if not isinstance(part, str) or part != "__root__"]
        # Line numbers are needed only to report an error: compose the node tree just then.
        line = _line_of(yaml.compose(text, Loader=yaml.SafeLoader), loc)
        field = _dotted(loc)
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        raise InputError(f"{path}:{line}" if line else str(path), field, message) from None


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
