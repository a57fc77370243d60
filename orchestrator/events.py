"""GitHub event payload → :class:`~orchestrator.contracts.Request`: who asked, what, and may we act.

Decision rules (defaults are DESIGN.md contracts, configurable through :class:`EventSettings`):

* Bots first: a sender of type ``Bot`` or a login ending in ``[bot]`` is refused unless listed
  in ``allowed_bots`` (so the orchestrator never reacts to its own comments). An allowed bot
  counts as trusted.
* ``issues``/``labeled`` (and ``pull_request``/``pull_request_target`` ``labeled``): act when the
  label is the trigger label. Applying a label needs triage rights, so the labeler is trusted,
  except when the labeler is the issue's own untrusted author (issue templates apply labels
  for anyone who opens an issue). ``issues``/``opened``: act when a trusted author opened the
  issue with the trigger label, or with an ``/orchestrate`` (or ``/plan``) command on the
  body's first non-empty line.
* ``issue_comment``, ``pull_request_review_comment`` ``created`` (``edited`` only with
  ``allow_edited``) and ``pull_request_review`` ``submitted``: act when a recognised slash
  command is on the first non-empty line and ``author_association`` is trusted.
* ``workflow_dispatch``, ``repository_dispatch``: trusted (both need write access); act when a
  request, workflow or tasks are given. ``schedule``: act when the cron is configured.

Every piece of text is cleaned with :func:`~orchestrator.sanitize.clean_untrusted` before it is
parsed, so commands hidden in HTML comments or hidden elements never trigger, and a command
line that contained invisible or bidi control characters is refused (what a reader saw and
what the program reads could differ).

A decision not to act never depends on which workflows exist: their names only shape what an
acting request asks for (a dispatch naming an unknown one is an error, not a skip). So the skip
path of ``orchestrator plan`` (``trigger_gate.py``) runs these same rules with no workflow names
and without pydantic: :func:`request_fields` is the decision, :func:`parse_event` wraps it in a
``Request``. This module imports only the standard library's cheap parts (no dataclasses,
typing or pathlib) for that reason.

What the planner gets: ``title`` is the issue/PR title; ``text`` is the command's free text
(plus the lines after the command). A bare ``/orchestrate`` (no workflow, items or text) on an
issue or PR, and a trigger label, both mean "do what this issue says": ``text`` is then the
body (minus any command line), ``items`` its unchecked task-list lines ``- [ ] …`` and
``workflow`` the one named on an ``/orchestrate WORKFLOW`` line of the body.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from orchestrator.errors import InputError
from orchestrator.fileio import load_json
from orchestrator.ids import RUN_ID_PATTERN, TASK_ID_PATTERN
from orchestrator.sanitize import INVISIBLE_CHARS, clean_untrusted, strip_hidden_html

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from orchestrator.contracts import Command, Request, RunMode

__all__ = [
    "COMMAND_NAME_PATTERN",
    "PERMISSION_EXEMPT_SOURCES",
    "SUPPORTED_EVENTS",
    "EventSettings",
    "ParsedCommand",
    "ScheduleSpec",
    "load_event",
    "parse_command",
    "parse_event",
    "read_event",
    "request_fields",
]

SUPPORTED_EVENTS = (
    "issues",
    "issue_comment",
    "pull_request_review_comment",
    "pull_request_review",
    "pull_request",
    "pull_request_target",
    "workflow_dispatch",
    "repository_dispatch",
    "schedule",
)

#: Request sources whose actor's repository permission is not checked: local and API runs,
#: schedules (no actor) and dispatches (dispatching already needs write access).
PERMISSION_EXEMPT_SOURCES = frozenset(
    {"cli", "api", "schedule", "workflow_dispatch", "repository_dispatch"}
)


#: What ``triggers.command`` may be (lowercase, so ``/Orchestrate`` never matches by accident).
COMMAND_NAME_PATTERN = r"^[a-z][a-z0-9-]*$"


class _Record:
    """An immutable record compared by value (frozen dataclasses, without their import cost)."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)


class ScheduleSpec(_Record):
    """What a scheduled run does: a workflow, its items and/or a free-text request."""

    __slots__ = ("items", "mode", "request", "workflow")
    workflow: str | None
    items: tuple[str, ...]
    request: str
    mode: RunMode | None

    def __init__(
        self,
        workflow: str | None = None,
        items: tuple[str, ...] = (),
        request: str = "",
        mode: RunMode | None = None,
    ) -> None:
        self._set(workflow=workflow, items=items, request=request, mode=mode)


class EventSettings(_Record):
    """The trigger settings ``config.py`` builds (defaults are the DESIGN.md contract)."""

    __slots__ = (
        "allow_edited",
        "allowed_bots",
        "command",
        "default_workflow",
        "schedules",
        "trigger_label",
        "trusted_associations",
    )
    trigger_label: str
    command: str
    trusted_associations: tuple[str, ...]
    allowed_bots: tuple[str, ...]
    allow_edited: bool
    default_workflow: str | None
    schedules: Mapping[str, ScheduleSpec]

    def __init__(
        self,
        trigger_label: str = "orchestrate",
        command: str = "orchestrate",
        trusted_associations: tuple[str, ...] = ("OWNER", "MEMBER", "COLLABORATOR"),
        allowed_bots: tuple[str, ...] = (),
        allow_edited: bool = False,
        default_workflow: str | None = None,
        schedules: Mapping[str, ScheduleSpec] | None = None,
    ) -> None:
        self._set(
            trigger_label=trigger_label,
            command=command,
            trusted_associations=trusted_associations,
            allowed_bots=allowed_bots,
            allow_edited=allow_edited,
            default_workflow=default_workflow,
            schedules={} if schedules is None else schedules,
        )


class ParsedCommand(_Record):
    """A slash command from the first non-empty line of a comment or body.

    ``args`` is the rest of the command line as written; ``workflow``, ``items`` and ``text``
    are its parts for ``/orchestrate`` and ``/plan`` (``text`` includes the lines after the
    command line that are not items).
    """

    __slots__ = ("args", "command", "items", "text", "workflow")
    command: Command
    args: str
    workflow: str | None
    items: tuple[str, ...]
    text: str

    def __init__(
        self,
        command: Command,
        args: str = "",
        workflow: str | None = None,
        items: tuple[str, ...] = (),
        text: str = "",
    ) -> None:
        self._set(command=command, args=args, workflow=workflow, items=items, text=text)

    @property
    def bare(self) -> bool:
        """No workflow, items or text: "do what this issue says"."""
        return self.workflow is None and not self.items and not self.text


_FIXED_COMMANDS: dict[str, Command] = {
    "plan": "plan",
    "approve": "approve",
    "retry": "retry",
    "cancel": "cancel",
    "status": "status",
}
_COMMAND_RE = re.compile(r"/([a-z][a-z0-9_-]*)(?=$|[\s:])")
_WORKFLOW_RE = re.compile(r"([a-z0-9_]+)(?=$|[\s:])")
_BULLET_RE = re.compile(r"^(?:[-*+]\s+(?:\[ \]\s+)?|\d+[.)]\s+)")
_TASK_ITEM_RE = re.compile(r"^\s{0,3}[-*+]\s+\[ \]\s+(\S.*)$", re.MULTILINE)
_TASK_ID_RE = re.compile(TASK_ID_PATTERN)
_RUN_ID_RE = re.compile(RUN_ID_PATTERN)


def _first_line(text: str) -> tuple[str, str]:
    """The first non-empty line (stripped) and everything after it."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip():
            return line.strip(), "\n".join(lines[index + 1 :])
    return "", ""


def _split_items(text: str) -> list[str]:
    items = []
    for line in text.split("\n"):
        for part in line.split(";"):
            item = _BULLET_RE.sub("", part.strip()).strip()
            if item:
                items.append(item)
    return items


def parse_command(
    text: str, settings: EventSettings, workflows: Collection[str] = ()
) -> ParsedCommand | None:
    """The slash command at the start of the first non-empty line of (cleaned) ``text``.

    Grammar: ``/orchestrate [WORKFLOW][: item; item; …] [free text]`` (the configured command
    name), ``/plan`` with the same arguments, ``/approve``, ``/retry TASK_ID``, ``/cancel``,
    ``/status``. ``WORKFLOW`` is one ``[a-z0-9_]+`` token that is in ``workflows``; otherwise
    the words are free text. After ``:`` the items run to the end of the command line and on
    over the following non-empty lines (split on ``;`` and newlines, bullets removed), until a
    blank line; what follows is free text. Command names are lowercase only. Returns ``None``
    when the line does not start with a known command.
    """
    line, rest = _first_line(text)
    match = _COMMAND_RE.match(line)
    if match is None:
        return None
    name = match.group(1)
    args = line[match.end() :].strip()
    if name == settings.command:
        command: Command = "orchestrate"
    elif name in _FIXED_COMMANDS:
        command = _FIXED_COMMANDS[name]
    else:
        return None
    if command not in ("orchestrate", "plan"):
        if line[match.end() :].startswith(":"):
            return None
        return ParsedCommand(command=command, args=args)

    remainder = line[match.end() :].lstrip()
    workflow = None
    wf = _WORKFLOW_RE.match(remainder)
    if wf and wf.group(1) in workflows:
        workflow = wf.group(1)
        remainder = remainder[wf.end() :].lstrip(" \t")
    items: list[str] = []
    if remainder.startswith(":"):
        block, _, after = rest.partition("\n\n")
        if not block.strip():
            block, after = "", rest
        items = _split_items(remainder[1:] + "\n" + block)
        free = after.strip()
    else:
        free = (remainder + "\n" + rest).strip()
    return ParsedCommand(
        command=command, args=args, workflow=workflow, items=tuple(items), text=free
    )


# --------------------------------------------------------------------------- payload access


def _at(payload: Mapping[str, Any], dotted: str) -> Any:
    value: Any = payload
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _need_obj(payload: Mapping[str, Any], dotted: str, source: str) -> Mapping[str, Any]:
    value = _at(payload, dotted)
    if value is None:
        raise InputError(source, dotted, "missing")
    if not isinstance(value, Mapping):
        raise InputError(source, dotted, f"must be an object, got {type(value).__name__}")
    return value


def _need_str(payload: Mapping[str, Any], dotted: str, source: str) -> str:
    value = _at(payload, dotted)
    if value is None:
        raise InputError(source, dotted, "missing")
    if not isinstance(value, str):
        raise InputError(source, dotted, f"must be a string, got {type(value).__name__}")
    return value


def _opt_str(payload: Mapping[str, Any], dotted: str, source: str) -> str | None:
    value = _at(payload, dotted)
    if value is None or isinstance(value, str):
        return value
    raise InputError(source, dotted, f"must be a string, got {type(value).__name__}")


def _need_int(payload: Mapping[str, Any], dotted: str, source: str) -> int:
    value = _at(payload, dotted)
    if value is None:
        raise InputError(source, dotted, "missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(source, dotted, f"must be an integer, got {type(value).__name__}")
    return value


def _clean(value: str | None) -> str:
    return clean_untrusted(value or "").strip()


def _command_line_tampered(raw: str) -> bool:
    """Whether the first visible line of ``raw`` hides invisible or bidi control characters."""
    visible = strip_hidden_html(raw.replace("\r\n", "\n").replace("\r", "\n"))
    for line in visible.split("\n"):
        if clean_untrusted(line).strip():
            return any(ch in INVISIBLE_CHARS for ch in line if ch != "\t")
    return False


# --------------------------------------------------------------------------- decisions


class _Draft:
    """The Request fields gathered so far; ``build`` finishes with a decision."""

    __slots__ = (
        "action",
        "actor",
        "author_association",
        "command",
        "command_args",
        "is_fork",
        "is_pull_request",
        "issue_number",
        "items",
        "mode",
        "repository",
        "sender_type",
        "source",
        "text",
        "title",
        "trusted",
        "url",
        "workflow",
    )

    def __init__(self, source: str) -> None:
        self.source = source
        self.action: str | None = None
        self.repository: str | None = None
        self.actor: str | None = None
        self.author_association: str | None = None
        self.sender_type: str | None = None
        self.trusted = False
        self.command: Command | None = None
        self.command_args = ""
        self.workflow: str | None = None
        self.items: list[str] = []
        self.title = ""
        self.text = ""
        self.issue_number: int | None = None
        self.is_pull_request = False
        self.is_fork = False
        self.url: str | None = None
        self.mode: RunMode | None = None

    def build(self, act: bool, reason: str) -> dict[str, Any]:
        """The ``Request`` fields, by name, with the decision."""
        return {
            "source": self.source,
            "action": self.action,
            "act": act,
            "reason": " ".join(reason.split()),
            "repository": self.repository,
            "actor": self.actor,
            "author_association": self.author_association,
            "sender_type": self.sender_type,
            "trusted": self.trusted,
            "command": self.command,
            "command_args": self.command_args,
            "workflow": self.workflow,
            "items": self.items,
            "title": self.title,
            "text": self.text,
            "issue_number": self.issue_number,
            "is_pull_request": self.is_pull_request,
            "is_fork": self.is_fork,
            "url": self.url,
            "mode": self.mode,
        }


def _is_bot(login: str, sender_type: str | None) -> bool:
    return sender_type == "Bot" or login.lower().endswith("[bot]")


def _bot_allowed(login: str, settings: EventSettings) -> bool:
    def norm(name: str) -> str:
        name = name.strip().lower()
        return name[: -len("[bot]")] if name.endswith("[bot]") else name

    return norm(login) in {norm(b) for b in settings.allowed_bots}


def _sender(payload: Mapping[str, Any], draft: _Draft, source: str) -> None:
    _need_obj(payload, "sender", source)
    draft.actor = _need_str(payload, "sender.login", source)
    draft.sender_type = _opt_str(payload, "sender.type", source)


def _bot_refusal(draft: _Draft, settings: EventSettings) -> str | None:
    """Reason to refuse a bot sender, or None (human, or allowed bot)."""
    login = draft.actor or ""
    if not _is_bot(login, draft.sender_type):
        return None
    if _bot_allowed(login, settings):
        return None
    return f"sender @{login} is a bot and not in allowed_bots"


def _trusted_association(association: str | None, settings: EventSettings) -> bool:
    return (association or "").upper() in {a.upper() for a in settings.trusted_associations}


def _untrusted_reason(who: str, association: str | None, settings: EventSettings) -> str:
    trusted = ", ".join(settings.trusted_associations) or "none"
    return (
        f"{who} @{{actor}} has author_association {association or 'NONE'}, "
        f"which is not trusted (trusted: {trusted})"
    )


class _Content:
    """Workflow, items and text of a whole issue/PR body."""

    __slots__ = ("items", "text", "workflow")

    def __init__(self, workflow: str | None, items: list[str], text: str) -> None:
        self.workflow, self.items, self.text = workflow, items, text


def _issue_content(body: str, settings: EventSettings, workflows: Collection[str]) -> _Content:
    """Workflow, items and text of an issue/PR body taken as a whole request."""
    lines = body.split("\n")
    workflow = None
    items: list[str] = []
    kept: list[str] = []
    found = False
    for line in lines:
        parsed = None if found else parse_command(line, settings, workflows)
        if parsed is not None and parsed.command in ("orchestrate", "plan"):
            found = True
            workflow = parsed.workflow
            items.extend(parsed.items)
            if parsed.text:
                kept.append(parsed.text)
            continue
        kept.append(line)
    for item in _TASK_ITEM_RE.findall(body):
        item = item.strip()
        if item not in items:
            items.append(item)
    return _Content(workflow, items, "\n".join(kept).strip())


def _check_workflow(name: str | None, workflows: Collection[str], source: str, where: str) -> None:
    if name is not None and name not in workflows:
        known = ", ".join(sorted(workflows)) or "none"
        raise InputError(source, where, f"unknown workflow '{name}' (known: {known})")


def _finish(
    draft: _Draft, act: bool, reason: str, settings: EventSettings, workflows: Collection[str]
) -> dict[str, Any]:
    """Apply the default workflow to an acting orchestrate/plan request, then build it."""
    if act and draft.workflow is None and draft.command in ("orchestrate", "plan"):
        default = settings.default_workflow
        _check_workflow(default, workflows, "event settings", "default_workflow")
        draft.workflow = default
    return draft.build(act, reason.replace("{actor}", draft.actor or "?"))


def _apply_command(
    draft: _Draft,
    parsed: ParsedCommand,
    body: str,
    settings: EventSettings,
    workflows: Collection[str],
) -> tuple[bool, str]:
    """Fill the draft from a parsed command; ``body`` is the issue/PR body for a bare command."""
    draft.command = parsed.command
    draft.command_args = parsed.args
    if parsed.command == "retry":
        task_ids = parsed.args.split()
        if not all(_TASK_ID_RE.fullmatch(task_id) for task_id in task_ids):
            return False, "/retry takes task ids or nothing, e.g. '/retry' or '/retry task-1'"
        draft.command_args = " ".join(dict.fromkeys(task_ids))
    if parsed.command in ("approve", "cancel", "status"):
        words = parsed.args.split()
        if len(words) > 1 or (words and not _RUN_ID_RE.fullmatch(words[0])):
            return (
                False,
                f"/{parsed.command} takes at most one run id, e.g. '/{parsed.command} 4242-1'",
            )
        draft.command_args = words[0] if words else ""
    if parsed.command in ("orchestrate", "plan"):
        if parsed.bare:
            content = _issue_content(body, settings, workflows)
            draft.workflow, draft.items, draft.text = content.workflow, content.items, content.text
        else:
            draft.workflow, draft.items, draft.text = (
                parsed.workflow,
                list(parsed.items),
                parsed.text,
            )
    return True, f"/{_command_name(parsed.command, settings)} from @{{actor}}"


def _command_name(command: Command, settings: EventSettings) -> str:
    return settings.command if command == "orchestrate" else command


def _comment_decision(
    draft: _Draft,
    raw_body: str,
    association: str | None,
    context_body: str,
    settings: EventSettings,
    workflows: Collection[str],
) -> tuple[bool, str]:
    """Shared rules for a comment (or review) carrying a slash command."""
    parsed = parse_command(clean_untrusted(raw_body), settings, workflows)
    if parsed is None:
        return False, f"no recognised slash command on the first line (e.g. /{settings.command})"
    draft.command = parsed.command
    if _command_line_tampered(raw_body):
        return False, "the command line contains invisible or bidi control characters"
    is_bot = _is_bot(draft.actor or "", draft.sender_type)
    if not is_bot and not _trusted_association(association, settings):
        draft.trusted = False
        return False, _untrusted_reason("commenter", association, settings)
    draft.trusted = True
    return _apply_command(draft, parsed, context_body, settings, workflows)


def _issue_fields(issue: Mapping[str, Any], draft: _Draft, source: str, where: str) -> str:
    """Fill title/number/url from an issue or PR object; returns its cleaned body."""
    payload = {where: issue}
    draft.issue_number = _need_int(payload, f"{where}.number", source)
    draft.title = _clean(_opt_str(payload, f"{where}.title", source))
    draft.url = _opt_str(payload, f"{where}.html_url", source)
    return _clean(_opt_str(payload, f"{where}.body", source))


def _fork(payload: Mapping[str, Any]) -> bool:
    head = _at(payload, "pull_request.head.repo.full_name")
    base = _at(payload, "pull_request.base.repo.full_name")
    return head is None or head != base


def _on_issues(
    payload: Mapping[str, Any],
    draft: _Draft,
    settings: EventSettings,
    workflows: Collection[str],
    source: str,
) -> tuple[bool, str]:
    where = "issue" if draft.source == "issues" else "pull_request"
    issue = _need_obj(payload, where, source)
    raw_body = _opt_str(payload, f"{where}.body", source) or ""
    body = _issue_fields(issue, draft, source, where)
    if where == "pull_request":
        draft.is_pull_request = True
        draft.is_fork = _fork(payload)
    else:
        draft.is_pull_request = issue.get("pull_request") is not None
    association = _opt_str(payload, f"{where}.author_association", source)
    author = _opt_str(payload, f"{where}.user.login", source)
    draft.author_association = association
    label = settings.trigger_label

    if draft.action == "labeled":
        name = _need_str(payload, "label.name", source)
        if name != label:
            return False, f"label '{name}' is not the trigger label '{label}'"
        if draft.is_fork:
            # The request would be the fork author's PR body, run with this repository's
            # secrets (pull_request_target): a maintainer's label does not vouch for its text.
            return False, (
                "a label on a pull request from a fork is not a request: its body is the fork "
                f"author's; comment /{settings.command} … on it to ask in your own words"
            )
        by_author = author is not None and author == draft.actor
        if by_author and not _trusted_association(association, settings):
            return False, _untrusted_reason("labeler (the issue's author)", association, settings)
        draft.trusted = True
        draft.command = "orchestrate"
        content = _issue_content(body, settings, workflows)
        draft.workflow, draft.items, draft.text = content.workflow, content.items, content.text
        return True, f"label '{label}' added by @{{actor}}"

    if draft.action == "opened" and where == "issue":
        labels = issue.get("labels") or []
        names = {lab.get("name") for lab in labels if isinstance(lab, Mapping)}
        parsed = parse_command(body, settings, workflows)
        has_command = parsed is not None and parsed.command in ("orchestrate", "plan")
        if label not in names and not has_command:
            return False, f"issue opened without the '{label}' label or a /{settings.command} line"
        if has_command and label not in names and _command_line_tampered(raw_body):
            return False, "the command line contains invisible or bidi control characters"
        if not _trusted_association(association, settings):
            return False, _untrusted_reason("issue author", association, settings)
        draft.trusted = True
        if parsed is not None and has_command:
            draft.command = parsed.command
            draft.command_args = parsed.args
        else:
            draft.command = "orchestrate"
        content = _issue_content(body, settings, workflows)
        draft.workflow, draft.items, draft.text = content.workflow, content.items, content.text
        why = f"'{label}' label" if label in names else f"/{settings.command} command"
        return True, f"issue opened by @{{actor}} with the {why}"

    return False, f"{draft.source} action '{draft.action}' does not trigger the orchestrator"


def _on_comment(
    payload: Mapping[str, Any],
    draft: _Draft,
    settings: EventSettings,
    workflows: Collection[str],
    source: str,
) -> tuple[bool, str]:
    review = draft.source == "pull_request_review"
    key = "review" if review else "comment"
    if draft.source == "issue_comment":
        issue = _need_obj(payload, "issue", source)
        context = _issue_fields(issue, draft, source, "issue")
        draft.is_pull_request = issue.get("pull_request") is not None
    else:
        pr = _need_obj(payload, "pull_request", source)
        context = _issue_fields(pr, draft, source, "pull_request")
        draft.is_pull_request = True
        draft.is_fork = _fork(payload)
    _need_obj(payload, key, source)
    raw_body = _opt_str(payload, f"{key}.body", source) if review else None
    if not review:
        raw_body = _need_str(payload, f"{key}.body", source)
    association = _opt_str(payload, f"{key}.author_association", source)
    draft.author_association = association
    draft.url = _opt_str(payload, f"{key}.html_url", source) or draft.url

    wanted = "submitted" if review else "created"
    if draft.action == "edited" and not review:
        if not settings.allow_edited:
            return False, "edited comments are ignored (allow_edited is off)"
        refusal = _edit_refusal(payload, key, raw_body or "", settings, workflows, source)
        if refusal is not None:
            return False, refusal
    elif draft.action != wanted:
        return False, f"{draft.source} action '{draft.action}' does not trigger the orchestrator"
    return _comment_decision(draft, raw_body or "", association, context, settings, workflows)


def _edit_refusal(
    payload: Mapping[str, Any],
    key: str,
    body: str,
    settings: EventSettings,
    workflows: Collection[str],
    source: str,
) -> str | None:
    """Why an edited comment must not start a run, or ``None``.

    ``author_association`` describes the comment's author, not whoever edited it, so an edit by
    anyone else (a maintainer's comment edited by another account, or the reverse) carries no
    trust we can read from the payload. And an edit that leaves the command line as it was is
    not a new request: fixing a typo below a command must not run it a second time.
    """
    author = _opt_str(payload, f"{key}.user.login", source)
    editor = _opt_str(payload, "sender.login", source)
    if author is None or editor is None or author.lower() != editor.lower():
        return (
            f"comment edited by @{editor or '?'}, not by its author @{author or '?'}: "
            "the author's association says nothing about the editor"
        )
    before = _at(payload, "changes.body.from")
    if isinstance(before, str):
        old = parse_command(clean_untrusted(before), settings, workflows)
        new = parse_command(clean_untrusted(body), settings, workflows)
        if (
            old is not None
            and new is not None
            and _first_line(clean_untrusted(before))[0] == _first_line(clean_untrusted(body))[0]
        ):
            return "the edit left the command line unchanged: not a new request"
    return None


def _split_tasks(value: Any, source: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return _split_items(_clean(value))
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise InputError(source, f"{where}.{index}", "must be a string")
            if _clean(item):
                items.append(_clean(item))
        return items
    raise InputError(source, where, f"must be a string or a list, got {type(value).__name__}")


def _on_dispatch(
    payload: Mapping[str, Any],
    draft: _Draft,
    settings: EventSettings,
    workflows: Collection[str],
    source: str,
) -> tuple[bool, str]:
    key = "inputs" if draft.source == "workflow_dispatch" else "client_payload"
    if _at(payload, key) is not None:
        _need_obj(payload, key, source)
    request = _clean(_opt_str(payload, f"{key}.request", source))
    workflow = _clean(_opt_str(payload, f"{key}.workflow", source)) or None
    _check_workflow(workflow, workflows, source, f"{key}.workflow")
    tasks = _at(payload, f"{key}.tasks")
    if draft.source == "workflow_dispatch" and tasks is not None and not isinstance(tasks, str):
        raise InputError(source, f"{key}.tasks", "must be a string")
    draft.items = _split_tasks(tasks, source, f"{key}.tasks")
    draft.workflow, draft.text = workflow, request
    draft.trusted = True
    draft.command = "orchestrate"
    if not (request or workflow or draft.items):
        draft.command = None
        return False, f"{draft.source} without a request, workflow or tasks in {key}"
    return True, f"{draft.source} by @{{actor}}"


def _on_schedule(
    payload: Mapping[str, Any],
    draft: _Draft,
    settings: EventSettings,
    workflows: Collection[str],
    source: str,
) -> tuple[bool, str]:
    cron = _need_str(payload, "schedule", source)
    draft.action = None
    draft.trusted = True
    spec = settings.schedules.get(cron)
    if spec is None:
        return False, f"no schedule configured for cron '{cron}'"
    _check_workflow(spec.workflow, workflows, "event settings", f"schedules.{cron}.workflow")
    draft.command = "orchestrate"
    draft.workflow = spec.workflow
    draft.items = [item for item in (_clean(i) for i in spec.items) if item]
    draft.text = _clean(spec.request)
    draft.mode = spec.mode
    return True, f"schedule '{cron}'"


_HANDLERS = {
    "issues": _on_issues,
    "pull_request": _on_issues,
    "pull_request_target": _on_issues,
    "issue_comment": _on_comment,
    "pull_request_review_comment": _on_comment,
    "pull_request_review": _on_comment,
    "workflow_dispatch": _on_dispatch,
    "repository_dispatch": _on_dispatch,
    "schedule": _on_schedule,
}


def request_fields(
    payload: Mapping[str, Any],
    event_name: str,
    settings: EventSettings,
    *,
    workflows: Collection[str],
    source: str = "<payload>",
) -> dict[str, Any]:
    """:func:`parse_event`'s decision as the ``Request``'s fields by name, without pydantic.

    Raises:
        InputError: as :func:`parse_event`.
    """
    handler = _HANDLERS.get(event_name)
    if handler is None:
        supported = ", ".join(SUPPORTED_EVENTS)
        raise InputError(
            source, "event_name", f"unsupported event '{event_name}' (supported: {supported})"
        )
    if not isinstance(payload, Mapping):
        kind = type(payload).__name__
        raise InputError(source, "", f"event payload must be a JSON object, got {kind}")
    draft = _Draft(source=event_name)
    action = _at(payload, "action")
    draft.action = action if isinstance(action, str) else None
    draft.repository = _opt_str(payload, "repository.full_name", source)
    if event_name != "schedule":
        _sender(payload, draft, source)
        refusal = _bot_refusal(draft, settings)
        if refusal is not None:
            return draft.build(False, refusal)
    act, reason = handler(payload, draft, settings, workflows, source)
    return _finish(draft, act, reason, settings, workflows)


def parse_event(
    payload: Mapping[str, Any],
    event_name: str,
    settings: EventSettings,
    *,
    workflows: Collection[str],
    source: str = "<payload>",
) -> Request:
    """Decide what a GitHub event asks for and whether to act; ``act``/``reason`` always set.

    Raises:
        InputError: Unknown ``event_name``, a payload that is not an object, a required field
            missing or of the wrong type, or an unknown workflow named in dispatch inputs.
    """
    from orchestrator.contracts import Request

    fields = request_fields(payload, event_name, settings, workflows=workflows, source=source)
    return Request(**fields)


def load_event(path: Path | str) -> dict[str, Any]:
    """The JSON object in an event file (``GITHUB_EVENT_PATH``); errors name the file."""
    data = load_json(path)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise InputError(str(path), "", f"event payload must be a JSON object, got {kind}")
    return data


def read_event(
    path: Path, event_name: str, settings: EventSettings, *, workflows: Collection[str]
) -> Request:
    """:func:`parse_event` on a JSON file (``GITHUB_EVENT_PATH``); errors name the file."""
    data = load_event(path)
    return parse_event(data, event_name, settings, workflows=workflows, source=str(path))
