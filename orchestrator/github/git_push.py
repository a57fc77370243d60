"""Push a commit to (or fetch one from) the ``origin`` remote without writing the token anywhere.

For an HTTP(S) remote the token travels as an ``http.<url>.extraheader`` given to git through
the environment (``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``): it is not
in ``.git/config``, not in the command line (``ps``), and git's output is redacted before it is
shown. An empty value first resets any extraheader ``actions/checkout`` persisted for the same
URL, so GitHub never sees two ``Authorization`` headers. A plain path or ``file://`` remote
(tests, mirrors) needs no credential.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.gitrepo import GitError, commit_env, git_text, run_git
from orchestrator.redact import Redactor, default_redactor

__all__ = ["PushRejectedError", "auth_env", "fetch_commit", "has_commit", "push"]


class PushRejectedError(GitError):
    """The remote refused the push (not a fast-forward, protected branch …)."""


def auth_env(remote_url: str, token: str | None) -> dict[str, str]:
    """Environment entries that make git send ``token`` to ``remote_url`` (and nowhere else)."""
    parts = urlsplit(remote_url)
    if not token or parts.scheme not in ("http", "https") or not parts.hostname:
        return {}
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    key = f"http.{parts.scheme}://{host}/.extraheader"
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": key,
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": key,
        "GIT_CONFIG_VALUE_1": f"AUTHORIZATION: basic {basic}",
    }


def push(
    repo: Path,
    sha: str,
    branch: str,
    *,
    token: str | None,
    remote: str = "origin",
    force: bool = False,
    redactor: Redactor | None = None,
) -> None:
    """Push ``sha`` to ``refs/heads/<branch>`` of ``remote``.

    Raises:
        PushRejectedError: the remote refused the update (e.g. not a fast-forward).
        GitError: any other failure; the message is redacted.
    """
    env, redactor = _remote_env(repo, remote, token, redactor)
    refspec = f"{'+' if force else ''}{sha}:refs/heads/{branch}"
    proc = run_git(repo, "push", "--porcelain", remote, refspec, env=env, check=False)
    if proc.returncode == 0:
        return
    stderr = redactor.redact(proc.stderr.decode("utf-8", "replace"))
    stdout = redactor.redact(proc.stdout.decode("utf-8", "replace"))
    text = f"{stdout}\n{stderr}"
    error_cls = PushRejectedError if "[rejected]" in text or "rejected" in stderr else GitError
    raise error_cls(["push", remote, f"refs/heads/{branch}"], proc.returncode, text.strip())


def has_commit(repo: Path, sha: str) -> bool:
    """Whether ``sha`` names a commit present in ``repo``'s object store."""
    proc = run_git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False)
    return proc.returncode == 0


def fetch_commit(
    repo: Path,
    sha: str,
    *,
    token: str | None,
    remote: str = "origin",
    redactor: Redactor | None = None,
) -> None:
    """Fetch one commit (depth 1) from ``remote`` unless ``repo`` already has it.

    A job's checkout is shallow at the workflow's commit; a ``/retry`` keeps the plan's older
    ``base_sha``, which the checkout then lacks.

    Raises:
        GitError: the fetch failed; the message is redacted.
    """
    if has_commit(repo, sha):
        return
    env, redactor = _remote_env(repo, remote, token, redactor)
    proc = run_git(repo, "fetch", "--depth=1", "--no-tags", remote, sha, env=env, check=False)
    if proc.returncode != 0 or not has_commit(repo, sha):
        text = redactor.redact(proc.stderr.decode("utf-8", "replace")).strip()
        raise GitError(["fetch", remote, sha], proc.returncode or 1, text)


def _remote_env(
    repo: Path, remote: str, token: str | None, redactor: Redactor | None
) -> tuple[dict[str, str], Redactor]:
    """git's environment for talking to ``remote`` with ``token``, and a redactor that hides it."""
    token = token or None
    redactor = (redactor or default_redactor()).with_values(*([token] if token else []))
    url = git_text(repo, "remote", "get-url", remote)
    env = {k: v for k, v in commit_env().items() if not k.startswith("GIT_CONFIG_")}
    env.update(auth_env(url, token))
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env, redactor
