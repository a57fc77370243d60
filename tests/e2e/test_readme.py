"""The README's walkthrough works as written: its runnable blocks run, in order, verbatim.

A block marked ``<!-- runnable -->`` right above its fence is part of the walkthrough. The
``sh`` blocks run in one bash session (so ``cd`` and ``export`` carry over, as in a reader's
terminal); a ``python`` block runs with the ``python`` on that session's PATH. The session
starts in a folder laid out like the top of a checkout (``.venv`` and ``examples`` from this
one), with only the environment a user would have.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- runnable -->\n```(sh|python)\n(.*?)```", re.DOTALL)


def runnable_blocks(markdown: str) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(markdown)]


def as_script(blocks: list[tuple[str, str]]) -> str:
    lines = ["set -euo pipefail"]
    for number, (lang, body) in enumerate(blocks, start=1):
        lines.append(f"echo '### block {number} ({lang})'")
        if lang == "sh":
            lines.append(body)
        else:
            lines += ["python - <<'README_PY'", body, "README_PY"]
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(240)
def test_the_readme_walkthrough_runs_verbatim(tmp_path: Path) -> None:
    blocks = runnable_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 5 and {lang for lang, _ in blocks} == {"sh", "python"}
    top = tmp_path / "checkout"
    top.mkdir()
    (top / ".venv").symlink_to(ROOT / ".venv")
    (top / "examples").symlink_to(ROOT / "examples")
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path), ORCHESTRATOR_CACHE_DIR="off")
    (tmp_path / "home").mkdir()
    proc = subprocess.run(
        ["bash", "-c", as_script(blocks)],
        cwd=top,
        env=env,
        capture_output=True,
        text=True,
        timeout=220,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    # What each step promised: task ids, a branch per run, simulated costs, a valid run folder.
    assert "wave 1  subtract [code_generation] → codex" in out
    assert out.count("succeeded — ") >= 3 and "(simulated)" in out
    assert "../run/aggregate.json: valid aggregate" in out
    assert re.search(r"^succeeded orchestrator/\S+ \d+\.\d+", out, re.MULTILINE), out[-2000:]
