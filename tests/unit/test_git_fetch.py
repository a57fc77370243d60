"""A /retry's older base commit is fetched into a shallow checkout (``git_push.fetch_commit``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.github.git_push import fetch_commit, has_commit
from orchestrator.gitrepo import GitError
from tests.conftest import git, make_repo


def test_a_missing_commit_is_fetched_and_an_unknown_one_fails_clearly(tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin", {"a.txt": "1\n"})
    old = git(origin, "rev-parse", "HEAD")
    (origin / "a.txt").write_text("2\n")
    git(origin, "commit", "-qam", "moved on")
    # What actions/checkout leaves: a depth-1 clone at the newest commit.
    git(tmp_path, "clone", "-q", "--depth=1", f"file://{origin}", "checkout")
    checkout = tmp_path / "checkout"
    assert not has_commit(checkout, old)
    fetch_commit(checkout, old, token=None)
    assert has_commit(checkout, old)
    fetch_commit(checkout, old, token=None)  # present: no second fetch needed
    with pytest.raises(GitError, match="fetch"):
        fetch_commit(checkout, "f" * 40, token="ghs_secret_value_1234")
