"""The quality signal: PR state and tracking-comment reactions, read back into the history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.contracts import Request
from orchestrator.github.client import GitHubClient, RetryPolicy
from orchestrator.github.tracking import TrackingState, render_tracking
from orchestrator.metrics import Quality, RunMetrics, parse_history, run_metrics
from orchestrator.quality import QualityChange, gather_quality
from orchestrator.redact import Redactor
from orchestrator.stats import render_stats
from tests.fakes.github_fake import FakeGitHub, serve_github
from tests.unit.test_metrics import make_run

BOT = "github-actions[bot]"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)


@pytest.fixture
def gh() -> Iterator[tuple[FakeGitHub, GitHubClient]]:
    with serve_github(FakeGitHub()) as (fake, server):
        client = GitHubClient(
            fake.full_name,
            token="t0ken-value",
            api_url=server.url,
            redactor=Redactor(),
            sleep=lambda _: None,
            policy=RetryPolicy(max_retries=1),
        )
        yield fake, client


def metrics(run_id: str, *, issue: int | None, pr: int | None, minutes: int = 0) -> RunMetrics:
    return RunMetrics(
        run_id=run_id,
        finished_at=T0 + timedelta(minutes=minutes),
        status="succeeded",
        tasks=1,
        succeeded=1,
        sequential_s=1.0,
        parallel_s=1.0,
        speedup=1.0,
        attempts=1,
        retries=0,
        fallbacks=0,
        error_rate=0.0,
        fallback_rate=0.0,
        input_tokens=1,
        output_tokens=1,
        cost_usd=0.0,
        issue_number=issue,
        pr_number=pr,
    )


def write_history(path: Path, *runs: RunMetrics) -> Path:
    path.write_text("".join(run.model_dump_json() + "\n" for run in runs))
    return path


def tracking_body(run_id: str, issue: int) -> str:
    return render_tracking(TrackingState(run_id, issue, "succeeded"))


def by_id(path: Path) -> dict[str, RunMetrics]:
    return {run.run_id: run for run in parse_history(path.read_text(), str(path))}


def test_run_metrics_names_the_issue_and_the_pr() -> None:
    plan, aggregate, results = make_run()
    request = Request(source="issues", act=True, reason="labeled", issue_number=7)
    plan = plan.model_copy(update={"request": request})
    aggregate = aggregate.model_copy(update={"pr": {"number": 12, "url": "https://x/pull/12"}})
    line = run_metrics(plan, aggregate, results)
    assert (line.issue_number, line.pr_number) == (7, 12)
    bare = run_metrics(*make_run())
    assert (bare.issue_number, bare.pr_number) == (None, None)


def test_merged_closed_open_and_reactions(
    gh: tuple[FakeGitHub, GitHubClient], tmp_path: Path
) -> None:
    fake, client = gh
    merged, closed, still_open = (fake.add_pull(f"orchestrator/r{i}") for i in (1, 2, 3))
    fake.merge_pull(merged)
    fake.close_pull(closed)
    comment = fake.add_comment(1, tracking_body("r1", 1), login=BOT, bot=True)
    fake.add_comment(1, "thanks!", login="alice")
    for login in ("alice", "bob"):
        fake.react(comment, "+1", login=login)
    fake.react(comment, "heart", login="alice")
    fake.react(comment, "-1", login="carol")
    history = write_history(
        tmp_path / "history.jsonl",
        metrics("r1", issue=1, pr=merged),
        metrics("r2", issue=None, pr=closed, minutes=1),
        metrics("r3", issue=None, pr=still_open, minutes=2),
        metrics("local", issue=None, pr=None, minutes=3),  # a local run: nothing to read
    )
    changes: list[QualityChange] = []
    assert gather_quality(history, client, bot_logins=[BOT], now=NOW, on_change=changes.append) == 3
    runs = by_id(history)
    assert runs["r1"].quality == Quality(
        pr_state="merged", reactions={"+1": 2, "-1": 1, "heart": 1}, checked_at=NOW
    )
    assert runs["r2"].quality == Quality(pr_state="closed", checked_at=NOW)
    assert runs["r3"].quality == Quality(pr_state="open", checked_at=NOW)
    assert runs["local"].quality is None
    assert list(runs) == ["r1", "r2", "r3", "local"]  # order and every run kept
    assert [c.describe() for c in changes] == [
        "r1: unknown → merged, +1:2 -1:1 heart:1",
        "r2: unknown → closed",
        "r3: unknown → open",
    ]
    # read-only on GitHub: GET calls only
    assert fake.calls and all(call.method == "GET" for call in fake.calls)
    assert fake.write_calls == []
    # stats shows the signal
    assert "| merged +1:2 -1:1 heart:1 |" in render_stats(list(runs.values()))


def test_open_pr_is_read_again_until_merged(
    gh: tuple[FakeGitHub, GitHubClient], tmp_path: Path
) -> None:
    fake, client = gh
    number = fake.add_pull("orchestrator/r1")
    comment = fake.add_comment(4, tracking_body("r1", 4), login=BOT, bot=True)
    history = write_history(tmp_path / "h.jsonl", metrics("r1", issue=4, pr=number))
    assert gather_quality(history, client, bot_logins=[BOT], now=NOW) == 1
    assert by_id(history)["r1"].quality == Quality(pr_state="open", checked_at=NOW)
    # nothing new: checked again (checked_at moves) but not counted as a change
    later = NOW + timedelta(days=1)
    assert gather_quality(history, client, bot_logins=[BOT], now=later) == 0
    assert by_id(history)["r1"].quality == Quality(pr_state="open", checked_at=later)
    fake.merge_pull(number)
    fake.react(comment, "rocket", login="alice")
    changes: list[QualityChange] = []
    last = later + timedelta(days=1)
    assert gather_quality(history, client, bot_logins=[BOT], now=last, on_change=changes.append)
    assert by_id(history)["r1"].quality == Quality(
        pr_state="merged", reactions={"rocket": 1}, checked_at=last
    )
    assert changes[0].describe() == "r1: open → merged, rocket:1"
    # final: a merged run is not read again
    calls = len(fake.calls)
    assert gather_quality(history, client, bot_logins=[BOT], now=last + timedelta(days=1)) == 0
    assert len(fake.calls) == calls
    assert by_id(history)["r1"].quality == Quality(
        pr_state="merged", reactions={"rocket": 1}, checked_at=last
    )


def test_forged_tracking_comment_by_a_person_is_ignored(
    gh: tuple[FakeGitHub, GitHubClient], tmp_path: Path
) -> None:
    fake, client = gh
    number = fake.add_pull("orchestrator/r1")
    forged = fake.add_comment(2, tracking_body("r1", 2), login="mallory")
    fake.react(forged, "+1", login="mallory")
    fake.react(forged, "heart", login="mallory")
    real = fake.add_comment(2, tracking_body("r1", 2), login=BOT, bot=True)
    fake.react(real, "-1", login="alice")
    # another run's tracking comment on the same issue does not count either
    other = fake.add_comment(2, tracking_body("r0", 2), login=BOT, bot=True)
    fake.react(other, "hooray", login="alice")
    history = write_history(tmp_path / "h.jsonl", metrics("r1", issue=2, pr=number))
    assert gather_quality(history, client, bot_logins=[BOT], now=NOW) == 1
    quality = by_id(history)["r1"].quality
    assert quality is not None and quality.reactions == {"-1": 1}


def test_only_forged_comment_keeps_reactions_unknown(
    gh: tuple[FakeGitHub, GitHubClient], tmp_path: Path
) -> None:
    fake, client = gh
    forged = fake.add_comment(2, tracking_body("r1", 2), login="mallory")
    fake.react(forged, "+1", login="mallory")
    history = write_history(tmp_path / "h.jsonl", metrics("r1", issue=2, pr=None))
    before = history.read_text()
    assert gather_quality(history, client, bot_logins=[BOT], now=NOW) == 0
    assert history.read_text() == before  # nothing could be read: the run is as it was


def test_missing_pr_and_issue_are_tolerated(
    gh: tuple[FakeGitHub, GitHubClient], tmp_path: Path
) -> None:
    fake, client = gh
    known = fake.add_pull("orchestrator/ok")
    fake.fail("GET", r"/issues/9/comments$", 404, body={"message": "Not Found"})
    earlier = Quality(pr_state="open", reactions={"heart": 1}, checked_at=T0)
    gone = metrics("gone", issue=9, pr=999).model_copy(update={"quality": earlier})
    history = write_history(
        tmp_path / "h.jsonl",
        gone,
        metrics("half", issue=None, pr=998, minutes=1),
        metrics("ok", issue=None, pr=known, minutes=2),
    )
    assert gather_quality(history, client, bot_logins=[BOT], now=NOW) == 1
    runs = by_id(history)
    assert runs["gone"].quality == earlier  # PR 404 and issue 404: left as it was
    assert runs["half"].quality is None
    assert runs["ok"].quality == Quality(pr_state="open", checked_at=NOW)
    assert {c.status for c in fake.calls} == {200, 404}
    assert fake.write_calls == []


def test_pr_number_from_an_older_line_and_a_missing_history(
    gh: tuple[FakeGitHub, GitHubClient], tmp_path: Path
) -> None:
    fake, client = gh
    number = fake.add_pull("orchestrator/r1")
    fake.close_pull(number)
    old = metrics("old", issue=None, pr=None).model_copy(
        update={"pr_url": f"https://github.com/{fake.full_name}/pull/{number}"}
    )
    history = write_history(tmp_path / "h.jsonl", old)
    assert gather_quality(history, client, bot_logins=[BOT], now=NOW) == 1
    quality = by_id(history)["old"].quality
    assert quality is not None and quality.pr_state == "closed"
    assert gather_quality(tmp_path / "none.jsonl", client, bot_logins=[BOT], now=NOW) == 0
    assert not (tmp_path / "none.jsonl").exists()
