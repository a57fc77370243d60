"""The skip path's gate agrees with the full path: same decision, same Request, same plan.json.

A table over every webhook fixture, with variations of what decides (labels, first lines,
associations, senders, actions, event kinds), under several config sets (the defaults, an
``orchestrator init`` layer, a layer that renames the trigger, widens trust or allows a bot, a
complete set). Whenever the gate says "skip" the full path (``load_config`` +
``parse_event`` + ``skipped_plan`` + ``write_model``) must say so too, with the same fields and
the same bytes; and the gate must say "skip" wherever the full path does, or it saves nothing.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import config_layers
from orchestrator.cli import _skip_path_options
from orchestrator.config import Config, default_config_dir, load_config
from orchestrator.contracts import Plan, Request
from orchestrator.errors import InputError
from orchestrator.events import parse_event
from orchestrator.github.actions import plan_outputs, skipped_plan_outputs
from orchestrator.init_config import write_config_layer
from orchestrator.planner import skipped_plan
from orchestrator.trigger_gate import (
    _utc_now,
    decide,
    event_settings,
    render_skeleton,
    skip_plan,
    skipped_plan_text,
)
from tests.conftest import WEBHOOKS

FIXTURES = sorted(WEBHOOKS.glob("*.json"))

# --------------------------------------------------------------------------- config sets


def _layer(repo: Path, settings: str) -> Path:
    folder = repo / "configs" / "orchestration"
    folder.mkdir(parents=True)
    (folder / "settings.yml").write_text(settings, encoding="utf-8")
    return repo


CONFIG_SETS: dict[str, str | None] = {
    "defaults": None,
    "init layer": "init",
    "renamed trigger": "triggers:\n  label: robots\n  command: go-bots\n",
    "widened trust": "trust:\n  author_associations: [OWNER, CONTRIBUTOR, NONE]\n",
    "no one trusted": "trust:\n  author_associations: []\n",
    "allowed bot, edits on": (
        "trust:\n  allowed_bots: [dependabot, 'renovate[bot]']\n"
        "triggers:\n  allow_edited_comments: true\n"
    ),
    "a schedule": (
        "schedules:\n  '0 3 * * *':\n    workflow: code_review_fix_pipeline\n    request: nightly\n"
    ),
    "complete set": "complete",
}


def _config_args(kind: str | None, tmp: Path) -> tuple[Path | None, Path | None]:
    """(``--config``, repo) for a config set made in ``tmp``."""
    if kind is None:
        return None, None
    repo = tmp / "repo"
    if kind == "init":
        write_config_layer(repo)
        return None, repo
    if kind == "complete":
        folder = tmp / "complete"
        shutil.copytree(default_config_dir(), folder)
        text = (folder / "settings.yml").read_text(encoding="utf-8")
        (folder / "settings.yml").write_text(text.replace("label: orchestrate", "label: go"))
        return folder, None
    return None, _layer(repo, kind)


@pytest.fixture(scope="module", params=sorted(CONFIG_SETS))
def config_set(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Config, Path | None, Path | None]]:
    name = request.param
    config, repo = _config_args(CONFIG_SETS[name], tmp_path_factory.mktemp("config"))
    yield name, load_config(config, repo), config, repo


# --------------------------------------------------------------------------- event variations

FIRST_LINES = (
    "/orchestrate fix the flaky test",
    "/orchestrate parallel_feature_implementation: dark mode; i18n",
    "/orchestrate",
    "/go-bots do it",
    "/plan code_review_fix_pipeline",
    "/approve",
    "/approve 4242-1 extra",
    "/retry",
    "/retry task-1",
    "/status ../x",
    "/cancel: now",
    "/deploy",
    "/Orchestrate please",
    "Looks good to me",
    "<!-- /orchestrate -->\nthanks",
    "/orche\u200bstrate hidden",
    "\u202e/orchestrate reversed",
    "\n\n   /orchestrate after blank lines",
    "",
)
ASSOCIATIONS = ("OWNER", "member", "CONTRIBUTOR", "NONE", None)
LABELS = ("orchestrate", "robots", "bug")


def _bot(payload: dict[str, Any], login: str) -> None:
    payload["sender"] = {**payload.get("sender", {}), "login": login, "type": "Bot"}


def variations(name: str, payload: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(label, event name, payload) cases derived from one fixture."""
    event = name.split(".")[0]
    yield "as is", event, payload
    bot = copy.deepcopy(payload)
    _bot(bot, "renovate[bot]")
    yield "bot sender", event, bot
    other_bot = copy.deepcopy(payload)
    _bot(other_bot, "dependabot[bot]")
    yield "allowed-looking bot", event, other_bot
    if event in ("issue_comment", "pull_request_review_comment", "pull_request_review"):
        key = "review" if event == "pull_request_review" else "comment"
        for line in FIRST_LINES:
            for association in ASSOCIATIONS:
                case = copy.deepcopy(payload)
                case[key]["body"] = line + "\n\nmore text"
                case[key]["author_association"] = association
                yield f"{key} {line[:20]!r} by {association}", event, case
        if event == "issue_comment":
            edit = copy.deepcopy(payload)
            edit["action"] = "edited"
            edit["comment"]["body"] = "/orchestrate now"
            edit["changes"] = {"body": {"from": "/orchestrate earlier"}}
            edit["sender"]["login"] = edit["comment"]["user"]["login"]
            yield "edited by its author", event, edit
            stranger = copy.deepcopy(edit)
            stranger["sender"]["login"] = "someone-else"
            yield "edited by another", event, stranger
            deleted = copy.deepcopy(payload)
            deleted["action"] = "deleted"
            yield "deleted", event, deleted
    if event in ("issues", "pull_request"):
        where = "issue" if event == "issues" else "pull_request"
        for label in LABELS:
            for association in ASSOCIATIONS:
                case = copy.deepcopy(payload)
                case["action"] = "labeled"
                case["label"] = {"name": label}
                case[where]["author_association"] = association
                case[where].setdefault("user", {})["login"] = case["sender"]["login"]
                yield f"labeled {label} by author {association}", event, case
        for line in FIRST_LINES[:6]:
            case = copy.deepcopy(payload)
            case["action"] = "opened"
            case[where]["body"] = line
            yield f"opened {line[:20]!r}", event, case
        if event == "pull_request":
            yield "pull_request_target", "pull_request_target", copy.deepcopy(payload)
    if event in ("workflow_dispatch", "repository_dispatch"):
        key = "inputs" if event == "workflow_dispatch" else "client_payload"
        for inputs in (
            {},
            {"request": "add a CSV export"},
            {"workflow": "code_review_fix_pipeline"},
            {"workflow": "no_such_flow"},
            {"tasks": "a; b"},
        ):
            case = copy.deepcopy(payload)
            case[key] = inputs
            yield f"dispatch {inputs}", event, case
    if event == "workflow_dispatch":
        for cron in ("0 3 * * *", "5 4 * * 1"):
            yield f"schedule {cron}", "schedule", {"schedule": cron}


def all_cases() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in FIXTURES:
        payload = json.loads(path.read_text(encoding="utf-8"))
        for label, event, case in variations(path.name, payload):
            yield f"{path.stem}: {label}", event, case


def _full(config: Config, event: str, payload: dict[str, Any], source: str) -> Request | InputError:
    try:
        return parse_event(
            payload, event, config.event_settings(), workflows=list(config.workflows), source=source
        )
    except InputError as exc:
        return exc


# --------------------------------------------------------------------------- the table


def test_the_gate_skips_exactly_where_the_full_path_skips_with_the_same_request(
    config_set: tuple[str, Config, Path | None, Path | None],
) -> None:
    name, config, config_dir, repo = config_set
    settings = event_settings(str(config_dir) if config_dir else None, str(repo) if repo else None)
    assert settings is not None, f"{name}: the gate cannot read these settings"
    skipped = acted = 0
    for label, event, payload in all_cases():
        full = _full(config, event, payload, "event.json")
        fields = decide(event, payload, settings, "event.json")
        if fields is None:
            assert isinstance(full, InputError) or full.act, f"{name}: {label}: gate deferred"
            acted += 1
            continue
        assert isinstance(full, Request), f"{name}: {label}: the full path fails: {full}"
        assert not full.act, f"{name}: {label}: gate skipped what acts ({full.reason})"
        assert Request(**fields) == full, f"{name}: {label}"
        skipped += 1
    # The table is not vacuous: both outcomes occur many times under every config set.
    assert skipped > 300
    assert acted > 10


def test_settings_read_by_the_gate_are_the_config_s(
    config_set: tuple[str, Config, Path | None, Path | None],
) -> None:
    _, config, config_dir, repo = config_set
    gate = event_settings(str(config_dir) if config_dir else None, str(repo) if repo else None)
    full = config.event_settings()
    assert gate is not None
    assert (gate.trigger_label, gate.command, gate.allow_edited) == (
        full.trigger_label,
        full.command,
        full.allow_edited,
    )
    assert gate.trusted_associations == full.trusted_associations
    assert gate.allowed_bots == full.allowed_bots
    assert set(gate.schedules) == set(full.schedules)


@pytest.mark.parametrize(
    "settings",
    [
        "triggers: null\n",  # the model's default, which only the full loader knows
        "trust:\n  allowed_bots: null\n",
        "triggers:\n  allow_edited_comments: 'yes'\n",  # pydantic reads it; the gate does not
        "triggers:\n  command: Orchestrate\n",  # invalid: the full path says so (exit 2)
        "triggers:\n  label: 7\n",
        "trust:\n  author_associations: OWNER\n",
        "schedules:\n  7: {}\n",
    ],
)
def test_settings_the_gate_cannot_take_as_they_are_go_to_the_full_loader(
    tmp_path: Path, settings: str
) -> None:
    assert event_settings(None, str(_layer(tmp_path, settings))) is None


def test_an_unreadable_settings_layer_is_the_full_loader_s_error(tmp_path: Path) -> None:
    repo = _layer(tmp_path, "triggers: [unclosed\n")
    with pytest.raises(InputError):
        event_settings(None, str(repo))
    with pytest.raises(InputError):
        load_config(None, repo)


# --------------------------------------------------------------------------- plan.json


def test_plan_json_is_the_full_path_s_byte_for_byte() -> None:
    config = load_config()
    compared = 0
    for index, (label, event, payload) in enumerate(all_cases()):
        # Microseconds or none (pydantic then leaves them out), in turn.
        created = datetime(2026, 3, 4, 5, 6, 7, (0, 7, 478450)[index % 3], tzinfo=UTC)
        # Text the payload carries as it is (logins, URLs): quotes, escapes, controls, emoji.
        payload = copy.deepcopy(payload)
        if "repository" in payload:
            payload["repository"]["full_name"] = 'o"w\\ner/\u00e9\u2028\x01\U0001f600'
        fields = decide(event, payload, config.event_settings(), "event.json")
        if fields is None:
            continue
        request = Request(**fields)
        plan = skipped_plan("1234-1", request.reason, request)
        full = plan.model_copy(update={"created_at": created}).model_dump_json(indent=2) + "\n"
        stamp = full.split('"created_at": "')[1].split('"')[0]
        text = skipped_plan_text("1234-1", fields, stamp)
        assert text == full, label
        Plan.model_validate_json(text)
        compared += 1
    assert compared > 300


def test_a_text_json_cannot_hold_as_utf8_leaves_it_to_the_full_path() -> None:
    payload = json.loads((WEBHOOKS / "issue_comment.created.1.json").read_text())
    payload["repository"]["full_name"] = "lone \ud800 surrogate"
    fields = decide("issue_comment", payload, load_config().event_settings(), "e.json")
    assert fields is not None
    assert skipped_plan_text("1-1", fields, "2026-01-01T00:00:00Z") is None


def test_the_time_is_written_as_pydantic_writes_it() -> None:
    stamp = _utc_now()
    plan = Plan(run_id="r", status="skipped", reason="x", created_at=stamp)  # type: ignore[arg-type]
    assert json.loads(plan.model_dump_json())["created_at"] == stamp


def test_the_skeleton_is_the_one_generated_from_the_model() -> None:
    from orchestrator.trigger_gate import SKELETON_FILE

    assert Path(SKELETON_FILE).read_text(encoding="utf-8") == render_skeleton()


# --------------------------------------------------------------------------- skip_plan


def _event(tmp_path: Path, body: str = "thanks!") -> Path:
    payload = json.loads((WEBHOOKS / "issue_comment.created.1.json").read_text())
    payload["comment"]["body"] = body
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return path


def test_skip_plan_writes_plan_json_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    code = skip_plan(event=str(_event(tmp_path)), event_name="issue_comment", out=str(out))
    assert code == 0
    plan = Plan.model_validate_json((out / "plan.json").read_text())
    assert plan.status == "skipped"
    assert capsys.readouterr().out == (f"skipped: {plan.reason}\nplan: {out / 'plan.json'}\n")
    assert [p.name for p in out.iterdir()] == ["plan.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("body", "out_state", "event_name"),
    [
        ("/orchestrate add dark mode", "empty", "issue_comment"),  # acts: the planner's
        ("thanks!", "holds a file", "issue_comment"),  # an earlier attempt: claim() decides
        ("thanks!", "missing", "issue_comment"),
        ("thanks!", "trailing slash", "issue_comment"),  # printed differently by pathlib
        ("thanks!", "empty", "push"),  # unsupported: exit 2 from the full path
    ],
)
def test_skip_plan_leaves_the_rest_to_the_full_command(
    tmp_path: Path, body: str, out_state: str, event_name: str
) -> None:
    out = tmp_path / "run"
    if out_state != "missing":
        out.mkdir()
    if out_state == "holds a file":
        (out / "plan.json").write_text("{}")
    given = str(out) + ("/" if out_state == "trailing slash" else "")
    event = str(_event(tmp_path, body))
    assert skip_plan(event=event, event_name=event_name, out=given) is None
    assert not (out / "plan.json").exists() or out_state == "holds a file"


def test_a_bad_event_file_is_left_to_the_full_command(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    bad = tmp_path / "event.json"
    bad.write_text("[1, 2]")
    assert skip_plan(event=str(bad), event_name="issue_comment", out=str(out)) is None
    assert skip_plan(event=str(tmp_path / "nope"), event_name="issues", out=str(out)) is None
    assert list(out.iterdir()) == []


JOB = ["plan", "--event", "e", "--event-name", "n", "--out", "o"]


@pytest.mark.parametrize(
    ("argv", "taken"),
    [
        (JOB, True),
        ([*JOB, "--repo", "r", "--config", "c", "--publish", "--max-parallel", "8"], True),
        ([*JOB, "--confirm-permission", "write", "--workspace", "r"], True),
        (JOB[:-2], False),  # no --out
        (["plan", "--event=e", *JOB[3:]], False),
        (["plan", "--ev", *JOB[2:]], False),  # abbreviated
        ([*JOB, "--dry-run"], False),
        ([*JOB, "--out", "p"], False),
        ([*JOB[:-1], "-o"], False),
        ([*JOB[:-1], ""], False),
        ([*JOB, "--max-parallel", "0"], False),
        ([*JOB, "--max-parallel", "many"], False),
        ([*JOB, "--confirm-permission", "root"], False),
        ([*JOB, "--replay", "r"], False),
        ([*JOB, "--publish", "--publish"], False),
        (["run", *JOB[1:]], False),
        (["plan", "--help"], False),
    ],
)
def test_only_plain_plan_job_arguments_take_the_skip_path(argv: list[str], taken: bool) -> None:
    assert (_skip_path_options(argv) is not None) is taken


# --------------------------------------------------------------------------- settings files

COMMENT_ONLY = [
    "",
    "# a comment\n",
    "#\n   # indented\n\n  \n# é ü 🙂 ‰\n",
    "# no newline at the end",
]
NOT_COMMENT_ONLY = [
    "\t# a tab before the comment\n",  # PyYAML refuses it
    "# a bell \x07 in a comment\n",  # PyYAML refuses it
    "# a next-line \x85 label: x\n",  # U+0085 ends the comment
    "\ufeff# a byte order mark\n",
    "---\n",
    "key: value # comment\n",
]


@pytest.mark.parametrize("text", COMMENT_ONLY)
def test_a_comment_only_file_is_what_pyyaml_reads_as_nothing(text: str) -> None:
    assert config_layers._comment_only(text)
    for loader in (yaml.SafeLoader, yaml.CSafeLoader):
        assert yaml.load(text, Loader=loader) is None


@pytest.mark.parametrize("text", NOT_COMMENT_ONLY)
def test_anything_else_is_left_to_pyyaml(text: str) -> None:
    assert not config_layers._comment_only(text)


def test_orchestrator_init_writes_comment_only_layers(tmp_path: Path) -> None:
    for path in write_config_layer(tmp_path):
        if path.suffix == ".yml" and path.name != "replay.yml":
            assert config_layers._comment_only(path.read_text(encoding="utf-8")), path.name


def test_the_recorded_defaults_are_used_only_for_their_own_text() -> None:
    path = default_config_dir() / "settings.yml"
    text = path.read_text(encoding="utf-8")
    recorded = config_layers._parsed_default(str(path), text)
    assert recorded == yaml.safe_load(text)
    assert config_layers._parsed_default(str(path), text + "# edited\n") is None
    assert config_layers.read_layer(path).data == yaml.safe_load(text)


# --------------------------------------------------------------------------- plan-outputs


def test_a_skipped_plan_s_outputs_need_no_model(tmp_path: Path) -> None:
    payload = json.loads((WEBHOOKS / "issue_comment.created.1.json").read_text())
    fields = decide("issue_comment", payload, load_config().event_settings(), "e.json")
    assert fields is not None
    text = skipped_plan_text("77-1", fields, "2026-01-01T00:00:00Z")
    assert text is not None
    data = json.loads(text)
    assert skipped_plan_outputs(data) == plan_outputs(Plan.model_validate(data))
    for broken in ({"max_parallel": 0}, {"max_parallel": True}, {"run_id": 7}, {"tasks": None}):
        assert skipped_plan_outputs({**data, **broken}) is None
    assert skipped_plan_outputs({**data, "status": "planned"}) is None
