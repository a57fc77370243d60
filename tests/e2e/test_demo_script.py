"""The demo's replay script, played through the real sandbox tools on the real sample project.

Every task starts from the committed sample project (as in a run: same base commit, no sight of
its dependencies' files), its scripted tool calls go through ``ToolBox.call``, and its
``Workspace.diff()`` is applied in plan order with ``git apply --3way --index``, one commit per
task. The script's header (orchestrator/demo/script.yml) promises one conflict and a merged
branch whose own tests pass except tests/test_weather.py; this file holds it to that, and checks
that the pristine sample and the hand-resolved merge pass their tests too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from orchestrator import demo
from orchestrator.agent.tools import ToolBox
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import Limits, ReviewComment
from orchestrator.gitrepo import commit_env, head_sha, run_git
from orchestrator.providers.base import ToolCall
from orchestrator.providers.replay import load_script

pytestmark = pytest.mark.slow

#: The planner's task ids for analysis_implementation_pipeline on demo.ITEMS, in plan order.
PLAN_ORDER = [
    "design",
    "implement-pace-metrics",
    "implement-weather-normalization",
    "test-pace-metrics",
    "test-weather-normalization",
    "integrate",
]
WAVES = [
    ["design"],
    [
        "implement-pace-metrics",
        "implement-weather-normalization",
        "test-pace-metrics",
        "test-weather-normalization",
    ],
    ["integrate"],
]
CONFLICTED = "implement-weather-normalization"
CONFLICT_FILE = "racing/__init__.py"
#: Sample tests: 8 in the pristine project; 23 after every patch; 17 without racing.weather.
PRISTINE_PASSED = 8
MERGED_PASSED = 17
RESOLVED_PASSED = 23


@dataclass
class Played:
    base: Path
    base_sha: str
    patches: dict[str, bytes] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    comments: dict[str, list[ReviewComment]] = field(default_factory=dict)


def git(repo: Path, *args: str) -> str:
    return run_git(repo, *args, env=commit_env()).stdout.decode().strip()


def sample_tests(cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the sample project's own tests in ``cwd`` with this interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def passed(proc: subprocess.CompletedProcess[str]) -> int:
    match = re.search(r"(\d+) passed", proc.stdout)
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Played:
    """The sample project committed in a fresh repository, and every task's scripted work."""
    base = tmp_path_factory.mktemp("demo") / "base"
    shutil.copytree(
        demo.SAMPLE_PROJECT,
        base,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc"),
    )
    git(base, "init", "-q", "-b", "main")
    git(base, "add", "-A")
    git(base, "commit", "-q", "-m", "Sample project: racing analytics")
    result = Played(base=base, base_sha=head_sha(base))

    script = load_script(demo.SCRIPT)
    for task_id in PLAN_ORDER:
        workspace = Workspace.open(base, result.base_sha, Limits())
        box = ToolBox(workspace, task_id=task_id)
        names = []
        for number, turn in enumerate(script.tasks[task_id]):
            for index, scripted in enumerate(turn.tool_calls):
                assert isinstance(scripted.arguments, dict)
                call = ToolCall(
                    id=f"{task_id}-{number}-{index}",
                    name=scripted.name,
                    arguments=scripted.arguments,
                )
                outcome = box.call(call)
                assert not outcome.is_error, f"{task_id} turn {number}: {call.name}: {outcome.text}"
                names.append(call.name)
        assert names[-1] == "finish", f"{task_id} does not end with finish"
        assert names.count("finish") == 1
        assert box.finished
        result.summaries[task_id] = box.finished
        result.comments[task_id] = list(box.review_comments)
        result.patches[task_id] = workspace.diff_bytes()
    return result


def merge(played: Played, target: Path, order: list[str]) -> dict[str, list[str]]:
    """Clone the base to ``target`` and apply ``order``'s patches like the aggregator does."""
    git(played.base.parent, "clone", "-q", str(played.base), str(target))
    conflicts: dict[str, list[str]] = {}
    for task_id in order:
        patch = target.parent / f"{target.name}-{task_id}.patch"
        patch.write_bytes(played.patches[task_id])
        proc = run_git(target, "apply", "--3way", "--index", str(patch), check=False)
        if proc.returncode != 0:
            unmerged = git(target, "diff", "--name-only", "--diff-filter=U").splitlines()
            conflicts[task_id] = unmerged or [proc.stderr.decode()]
            git(target, "reset", "-q", "--hard", "HEAD")
            git(target, "clean", "-q", "-fdx")
            continue
        git(target, "commit", "-q", "-m", task_id)
    return conflicts


def test_script_covers_the_plan_and_looks_real() -> None:
    raw = yaml.safe_load(demo.SCRIPT.read_text(encoding="utf-8"))
    assert raw["planner"] == []
    assert list(raw["tasks"]) == PLAN_ORDER
    script = load_script(demo.SCRIPT)
    for task_id, turns in script.tasks.items():
        assert len(turns) >= 3, task_id
        first = {call.name for call in turns[0].tool_calls}
        assert first <= {"list_files", "read_file", "search"}, f"{task_id} should look first"
        for turn in turns:
            assert 0.2 <= turn.latency_s <= 0.6
            assert turn.usage is not None
            assert 1500 <= turn.usage.input_tokens <= 12000
            assert 50 <= turn.usage.output_tokens <= 1500
            assert turn.usage.cached_input_tokens < turn.usage.input_tokens
    # The demo must finish in seconds: the critical path of scripted latency stays small.
    critical = sum(
        max(sum(turn.latency_s for turn in script.tasks[task_id]) for task_id in wave)
        for wave in WAVES
    )
    assert critical < 6.0


def test_demo_agents_mirror_the_default_agents() -> None:
    defaults = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "configs/orchestration/agents.yml").read_text()
    )["agents"]
    agents = yaml.safe_load(demo.AGENTS_FILE.read_text(encoding="utf-8"))["agents"]
    assert set(agents) == {"codex", "claude", "gemini", "deepseek", "copilot"} == set(defaults)
    for name, spec in agents.items():
        assert spec["provider"] == "replay"
        assert (demo.AGENTS_FILE.parent / spec["script"]).resolve() == demo.SCRIPT
        assert "api_key" not in spec
        for key in ("model", "input_per_mtok", "cached_input_per_mtok", "output_per_mtok"):
            assert spec[key] == defaults[name][key], f"{name}.{key}"


def test_pristine_sample_project_passes_its_tests(played: Played) -> None:
    proc = sample_tests(played.base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert passed(proc) == PRISTINE_PASSED


def test_every_task_leaves_a_patch_from_the_base(played: Played) -> None:
    changed = {
        task_id: sorted(re.findall(r"^diff --git a/(\S+) ", patch.decode(), re.MULTILINE))
        for task_id, patch in played.patches.items()
    }
    assert changed == {
        "design": ["docs/design.md"],
        "implement-pace-metrics": ["racing/__init__.py", "racing/pace.py"],
        "implement-weather-normalization": ["racing/__init__.py", "racing/weather.py"],
        "test-pace-metrics": ["tests/test_pace.py"],
        "test-weather-normalization": ["tests/test_weather.py"],
        "integrate": [
            "README.md",
            "racing/__main__.py",
            "racing/report.py",
            "tests/test_report.py",
        ],
    }
    assert all(len(summary) > 80 for summary in played.summaries.values())
    comments = [c for task_comments in played.comments.values() for c in task_comments]
    assert [(c.task_id, c.path, c.line) for c in comments] == [("integrate", "racing/data.py", 51)]
    line = (played.base / "racing/data.py").read_text().splitlines()[50]
    assert "0.05" in line


def test_merge_has_one_conflict_and_the_sample_tests_say_what_is_missing(
    played: Played, tmp_path: Path
) -> None:
    merged = tmp_path / "merged"
    conflicts = merge(played, merged, PLAN_ORDER)
    assert conflicts == {CONFLICTED: [CONFLICT_FILE]}
    subjects = git(merged, "log", "--format=%s", "--reverse").splitlines()
    assert subjects[1:] == [t for t in PLAN_ORDER if t != CONFLICTED]
    assert (merged / "racing/pace.py").is_file()
    assert not (merged / "racing/weather.py").exists()
    assert '"pace_profile"' in (merged / CONFLICT_FILE).read_text()

    # Plain pytest stops at collecting tests/test_weather.py: racing.weather is not there.
    plain = sample_tests(merged)
    assert plain.returncode == 2, plain.stdout
    assert "1 error" in plain.stdout
    assert "No module named 'racing.weather'" in plain.stdout
    # Everything that does not need racing.weather passes.
    rest = sample_tests(merged, "--continue-on-collection-errors")
    assert passed(rest) == MERGED_PASSED
    assert re.search(r"\b\d+ failed\b", rest.stdout) is None, rest.stdout
    assert "ERROR tests/test_weather.py" in rest.stdout
    ignored = sample_tests(merged, "--ignore=tests/test_weather.py")
    assert ignored.returncode == 0, ignored.stdout
    assert passed(ignored) == MERGED_PASSED
    # The package and its CLI work without racing.weather; only --going-adjusted needs it.
    cli = subprocess.run(
        [sys.executable, "-m", "racing", "--race", "R01"],
        cwd=merged,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert "Northern Gale" in cli.stdout


def test_resolving_the_conflict_by_hand_passes_every_sample_test(
    played: Played, tmp_path: Path
) -> None:
    merged = tmp_path / "resolved"
    merge(played, merged, PLAN_ORDER)
    patch = tmp_path / "weather.patch"
    patch.write_bytes(played.patches[CONFLICTED])
    proc = run_git(merged, "apply", "--3way", "--index", str(patch), check=False)
    assert proc.returncode != 0
    text = (merged / CONFLICT_FILE).read_text()
    assert "<<<<<<<" in text
    # Resolution: keep every import and the union of both __all__ lists.
    imports = sorted(set(re.findall(r"^from racing\.\w+ import .+$", text, re.MULTILINE)))
    names = sorted(set(re.findall(r'^    "(\w+)",$', text, re.MULTILINE)), key=str.lower)
    resolved = (
        text.splitlines()[0]  # the module docstring
        + "\n\n"
        + "\n".join(imports)
        + "\n\n__all__ = [\n"
        + "".join(f'    "{name}",\n' for name in names)
        + "]\n"
    )
    (merged / CONFLICT_FILE).write_text(resolved)
    git(merged, "add", CONFLICT_FILE)
    git(merged, "commit", "-q", "-m", f"{CONFLICTED} (resolved by hand)")

    proc_tests = sample_tests(merged)
    assert proc_tests.returncode == 0, proc_tests.stdout
    assert passed(proc_tests) == RESOLVED_PASSED
    cli = subprocess.run(
        [sys.executable, "-m", "racing", "--race", "R05", "--going-adjusted"],
        cwd=merged,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert "124.23" in cli.stdout
