"""``/retry`` reads the earlier run's artifacts through the REST API (loopback GitHub)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from orchestrator.contracts import Plan, Reuse
from orchestrator.errors import InputError
from orchestrator.github.artifacts import artifact_name, task_name
from orchestrator.github.client import GitHubClient, GitHubError
from orchestrator.github.reuse import extract, fetch_reused
from orchestrator.runfolder import RunFolder
from tests.fakes.github_fake import serve_github
from tests.unit.test_actions_io import plan_with
from tests.unit.test_aggregate import write_result

TOKEN = "ghs_reuse_token_never_in_storage"


def retry_plan(reused: list[str]) -> Plan:
    plan = plan_with([["a", "b"], ["c"]], base_sha="0" * 40)
    return plan.model_copy(update={"reuse": Reuse(workflow_run_id=7, tasks=reused)})


def earlier_run(root: Path, plan: Plan, artifacts: dict[str, list[str]]) -> Path:
    """What upload-artifact stored for workflow run 7: one folder per artifact."""
    for name, task_ids in artifacts.items():
        for task_id in task_ids:
            write_result(root / name, plan, task_id, f"diff {task_id}\n".encode())
            (root / name / "tasks" / task_id / "transcript.jsonl").write_text("{}\n")
    return root


def client(url: str) -> GitHubClient:
    return GitHubClient("Codertocat/Hello-World", token=TOKEN, api_url=url, sleep=lambda _: None)


def test_reused_tasks_come_from_their_own_artifacts_or_an_earlier_reused_bundle(
    tmp_path: Path,
) -> None:
    plan = retry_plan(["a", "c"])
    stored = earlier_run(
        tmp_path / "run-7",
        plan,
        {
            task_name("123-1", 1, "b"): ["b"],  # run again: not downloaded
            artifact_name("123-1", "reused"): ["a"],  # reused by an earlier retry already
            task_name("123-1", 2, "c"): ["c"],
            "unrelated-artifact": ["a"],
        },
    )
    with serve_github() as (fake, server):
        fake.run_artifacts[7] = stored
        reused = fetch_reused(client(server.url), plan, tmp_path / "out")
    assert (reused.found, reused.missing) == (["a", "c"], [])
    out = RunFolder(tmp_path / "out")
    assert out.patch("c").read_bytes() == b"diff c\n" and out.transcript("c").is_file()
    assert not out.task_dir("b").exists()
    # Listed once, two archives; the storage host never saw the token.
    paths = [call.path for call in fake.calls]
    assert paths.count("/repos/Codertocat/Hello-World/actions/runs/7/artifacts") == 1
    assert sum(p.endswith("/zip") for p in paths) == 2
    assert len(fake.blob_requests) == 2
    assert all("authorization" not in r.headers for r in fake.blob_requests)
    assert all(call.headers.get("authorization") for call in fake.calls)


def test_a_missing_artifact_is_reported_and_a_result_of_another_run_refused(
    tmp_path: Path,
) -> None:
    plan = retry_plan(["a", "c"])
    other = plan_with([["a", "b"], ["c"]], base_sha="0" * 40, run_id="999-1")
    stored = earlier_run(tmp_path / "run-7", other, {task_name("123-1", 1, "a"): ["a"]})
    with serve_github() as (fake, server):
        fake.run_artifacts[7] = stored
        with pytest.raises(InputError, match="run_id"):
            fetch_reused(client(server.url), plan, tmp_path / "out")
        fake.run_artifacts[7] = earlier_run(tmp_path / "run-7b", plan, {})
        reused = fetch_reused(client(server.url), plan, tmp_path / "out2")
    assert (reused.found, reused.missing) == ([], ["a", "c"])


def test_without_actions_read_the_listing_fails_with_the_status(tmp_path: Path) -> None:
    with serve_github() as (fake, server):
        denied = {"message": "Resource not accessible by integration"}
        fake.fail("GET", r"/actions/runs/7/artifacts", 403, body=denied)
        with pytest.raises(GitHubError) as caught:
            fetch_reused(client(server.url), retry_plan(["a"]), tmp_path / "out")
    assert caught.value.status == 403


def zipped(entries: dict[str, bytes], *, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (0o120777 << 16) | 0
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "archive",
    [
        zipped({"../escape.txt": b"x"}),
        zipped({"/abs/tasks/a/result.json": b"x"}),
        zipped({"other/a.txt": b"x"}),
        zipped({"tasks/a/result.json": b"{}"}, link="tasks/a/changes.patch"),
        b"not a zip",
    ],
    ids=["dotdot", "absolute", "outside-tasks", "symlink", "not-zip"],
)
def test_unsafe_archives_are_refused(tmp_path: Path, archive: bytes) -> None:
    with pytest.raises(InputError):
        extract(archive, tmp_path / "x", "orchestrator-1-reused")
    assert not (tmp_path / "escape.txt").exists()
