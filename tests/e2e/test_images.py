"""Screenshots in the issue → plan --publish stores them → task jobs show them to vision agents.

Against the GitHub fake (its ``body_html`` points at signed user-content URLs on itself) and
replay agents, through the real CLI.
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any

from orchestrator.cli import main
from orchestrator.contracts import Plan
from orchestrator.fileio import read_model
from tests.e2e.conftest import make_replay_config, write_file_turns
from tests.e2e.github_world import TOKEN, World, labeled_event, plan_step
from tests.fakes.loopback import LoopbackServer, Reply
from tests.fakes.loopback import Request as Seen
from tests.unit.test_github_images import png

ITEM = "fix the login page"


def with_vision(config: Path) -> Path:
    agents = config / "agents.yml"
    agents.write_text(
        agents.read_text().replace(
            "    provider: replay\n", "    provider: replay\n    vision: true\n"
        )
    )
    return config


def user_turn(out: Path, task_id: str) -> dict[str, Any]:
    lines = (out / "tasks" / task_id / "transcript.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return next(e for e in events if e["kind"] == "user" and not e.get("run_context"))


def plan_with_images(world: World, config: Path, out: Path, body_extra: str) -> Plan:
    event = labeled_event(world.tmp, [ITEM], body_extra)
    payload = json.loads(event.read_text())
    world.fake.add_issue(payload["issue"]["number"], payload["issue"]["body"])
    assert plan_step(world, event, "issues", config, out) == 0
    return read_model(out / "plan.json", Plan)


def run_task(world: World, out: Path, plan: Plan) -> str:
    (task,) = plan.tasks
    args = ["task", "--plan", str(out / "plan.json"), "--task", task.id]
    assert main([*args, "--workspace", str(world.repo)]) == 0
    return task.id


def test_issue_screenshots_reach_vision_agents_only(world: World) -> None:
    shot = png(7)
    link = world.fake.add_attachment(shot)
    hits: list[Seen] = []

    def elsewhere(request: Seen) -> Reply:
        hits.append(request)
        return Reply(200, png(8), headers={"Content-Type": "image/png"})

    with LoopbackServer(elsewhere) as other:
        extra = f"\n\n![login page]({link})\n![tracker]({other.url}/pixel.png)\n"
        turns = {ITEM.replace(" ", "-"): write_file_turns("src/login.py", "OK = 1\n", "done")}
        seeing = with_vision(make_replay_config(world.tmp / "cfg-vision", turns))
        blind = make_replay_config(world.tmp / "cfg-blind", turns)
        out_seeing, out_blind = world.tmp / "out-vision", world.tmp / "out-blind"
        plan = plan_with_images(world, seeing, out_seeing, extra)
        blind_plan = plan_with_images(world, blind, out_blind, extra)
    assert hits == []  # the off-host image was never requested

    assert plan.request is not None
    (ref,) = plan.request.images
    assert ref.name == "login page" and ref.sha256 == sha256(shot).hexdigest()
    assert (out_seeing / ref.path).read_bytes() == shot
    assert ref.path == f"images/{ref.sha256}.png"
    downloads = [seen for seen in world.fake.downloads if seen.path.startswith("/user-content/")]
    assert len(downloads) == 2  # once per plan job
    assert all("authorization" not in seen.headers for seen in downloads)
    assert all(TOKEN not in json.dumps(seen.headers) for seen in downloads)
    assert not [seen for seen in world.fake.downloads if seen.path.startswith("/camo/")]

    seen_turn = user_turn(out_seeing, run_task(world, out_seeing, plan))
    assert seen_turn["images"] == ["login page"]
    assert "[image omitted" not in seen_turn["text"]

    blind_turn = user_turn(out_blind, run_task(world, out_blind, blind_plan))
    assert blind_turn["images"] == []
    assert '[image omitted: "login page"]' in blind_turn["text"]


def test_plan_reports_skipped_images_and_goes_on(world: World, capsys: Any) -> None:
    big = world.fake.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\x00" * (5 * 1024 * 1024))
    page = world.fake.add_attachment(b"<html></html>", content_type="image/png")
    turns = {ITEM.replace(" ", "-"): write_file_turns("src/login.py", "OK = 1\n", "done")}
    config = make_replay_config(world.tmp / "cfg", turns)
    out = world.tmp / "out"
    plan = plan_with_images(world, config, out, f"\n![huge]({big})\n![page]({page})\n")
    assert plan.status == "planned" and plan.request is not None
    assert plan.request.images == []
    printed = capsys.readouterr().out
    assert "image skipped: huge" in printed and "too big" in printed
    assert "image skipped: page" in printed and "not a PNG, JPEG, GIF or WebP image" in printed
    assert not (out / "images").exists()


def test_no_images_no_extra_call(world: World) -> None:
    turns = {ITEM.replace(" ", "-"): write_file_turns("src/login.py", "OK = 1\n", "done")}
    config = make_replay_config(world.tmp / "cfg", turns)
    out = world.tmp / "out"
    event = labeled_event(world.tmp, [ITEM])
    assert plan_step(world, event, "issues", config, out) == 0
    assert not [c for c in world.fake.calls if c.template and c.template.endswith("{issue_number}")]
    assert world.fake.downloads == []
