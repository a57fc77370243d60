"""The contract tools: every tool, its errors, and argument validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.shell import Shell
from orchestrator.agent.tools import MAX_LIST_ENTRIES, MAX_SEARCH_MATCHES, ToolBox, ToolOutcome
from orchestrator.agent.workspace import Workspace
from orchestrator.contracts import Limits, ReviewComment, SandboxSettings
from orchestrator.providers.base import ToolCall
from tests.conftest import git, make_repo

CONTRACT_TOOLS = [
    "list_files",
    "read_file",
    "search",
    "write_file",
    "edit_file",
    "delete_file",
    "add_review_comment",
    "finish",
]


def toolbox(root: Path, *, commands: bool = False, **limits: Any) -> ToolBox:
    ws = Workspace.open(root, git(root, "rev-parse", "HEAD"), Limits.model_validate(limits))
    shell = Shell.for_settings(SandboxSettings(run_command=commands))
    return ToolBox(ws, task_id="t1", commands=shell)


def run(box: ToolBox, name: str, **arguments: Any) -> ToolOutcome:
    return box.call(ToolCall(id="c1", name=name, arguments=arguments))


def ok(box: ToolBox, name: str, **arguments: Any) -> str:
    outcome = run(box, name, **arguments)
    assert not outcome.is_error, outcome.text
    return outcome.text


def err(box: ToolBox, name: str, **arguments: Any) -> str:
    outcome = run(box, name, **arguments)
    assert outcome.is_error, outcome.text
    return outcome.text


def test_specs_are_the_contract(repo: Path) -> None:
    box = toolbox(repo)
    specs = {spec.name: spec for spec in box.specs()}
    assert list(specs) == CONTRACT_TOOLS
    assert specs["read_file"].parameters["required"] == ["path"]
    assert set(specs["read_file"].parameters["properties"]) == {"path", "start_line", "end_line"}
    assert specs["edit_file"].parameters["required"] == ["path", "old", "new"]
    assert specs["add_review_comment"].parameters["properties"]["line"]["type"] == "integer"
    assert specs["list_files"].parameters["required"] == []
    assert all(spec.parameters["additionalProperties"] is False for spec in specs.values())
    assert all(spec.description for spec in specs.values())
    with_commands = toolbox(repo, commands=True)  # offered: the sandbox works on this machine
    assert [s.name for s in with_commands.specs()][-1] == "run_command"


def test_list_files(tmp_path: Path) -> None:
    files = {f"f{i:04}.txt": "x\n" for i in range(MAX_LIST_ENTRIES + 7)}
    files["sub/a.txt"] = "a\n"
    box = toolbox(make_repo(tmp_path / "r", files))
    assert ok(box, "list_files", path="sub") == "sub/a.txt"
    text = ok(box, "list_files")
    assert text.endswith("(8 more)")
    assert len(text.splitlines()) == MAX_LIST_ENTRIES + 1
    assert "no such file" in err(box, "list_files", path="missing")
    assert "escapes" in err(box, "list_files", path="..")


def test_read_file(tmp_path: Path) -> None:
    lines = "".join(f"line {i}\n" for i in range(1, 3001))
    box = toolbox(make_repo(tmp_path / "r", {"a.txt": "one\ntwo\nthree\n", "long.txt": lines}))
    assert ok(box, "read_file", path="a.txt") == "     1\tone\n     2\ttwo\n     3\tthree"
    assert ok(box, "read_file", path="a.txt", start_line=2, end_line=2) == "     2\ttwo"
    assert ok(box, "read_file", path="a.txt", start_line=3, end_line=99) == "     3\tthree"
    assert "past the end" in err(box, "read_file", path="a.txt", start_line=4)
    assert "before start_line" in err(box, "read_file", path="a.txt", start_line=3, end_line=2)
    assert "at least 1" in err(box, "read_file", path="a.txt", start_line=0)
    capped = ok(box, "read_file", path="long.txt")
    assert "output truncated at line 2000 of 3000" in capped
    assert "start_line=2001" in capped
    assert ok(box, "read_file", path="long.txt", start_line=2999).startswith("  2999\tline 2999")
    assert "no such file" in err(box, "read_file", path="nope.txt")
    assert "absolute paths" in err(box, "read_file", path="/etc/passwd")


def test_read_file_empty_binary_and_too_big(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"empty.txt": "", "big.txt": "x" * 500})
    (root / "b.bin").write_bytes(b"\x00\xff")
    git(root, "add", "b.bin")
    git(root, "commit", "-q", "-m", "b")
    box = toolbox(root, max_file_bytes=100)
    assert ok(box, "read_file", path="empty.txt") == "(empty file)"
    assert "binary file" in err(box, "read_file", path="b.bin")
    assert "over the 100 bytes read limit" in err(box, "read_file", path="big.txt")


def test_search(tmp_path: Path) -> None:
    many = "".join("needle\n" for _ in range(MAX_SEARCH_MATCHES + 5))
    root = make_repo(
        tmp_path / "r",
        {"src/a.py": "def f():\n    return 42\n", "docs/b.md": "return policy\n", "m.txt": many},
    )
    (root / "bin.dat").write_bytes(b"\x00return")
    git(root, "add", "bin.dat")
    git(root, "commit", "-q", "-m", "bin")
    box = toolbox(root)
    assert ok(box, "search", pattern=r"return \d+") == "src/a.py:2:     return 42"
    assert ok(box, "search", pattern="return", path="docs") == "docs/b.md:1: return policy"
    assert ok(box, "search", pattern="zzz").startswith("no matches")
    assert "invalid regular expression" in err(box, "search", pattern="(")
    text = ok(box, "search", pattern="needle")
    assert text.endswith("(5 more matches not shown; narrow the pattern or the path)")
    # The agent's own edits are searched too.
    ok(box, "write_file", path="new.py", content="x = 'needle2'\n")
    assert ok(box, "search", pattern="needle2") == "new.py:1: x = 'needle2'"


def test_write_edit_delete(repo: Path) -> None:
    box = toolbox(repo)
    assert ok(box, "write_file", path="notes/n.md", content="a\nb\n").startswith("created")
    assert ok(box, "write_file", path="README.md", content="# new\n").startswith("wrote")
    assert ok(box, "edit_file", path="src/app.py", old="'hello '", new="'hi '") == (
        "edited src/app.py at line 2"
    )
    assert "hi " in box.workspace.read_text("src/app.py")
    assert "0 matches" in err(box, "edit_file", path="src/app.py", old="absent", new="x")
    ok(box, "write_file", path="dup.txt", content="x\nx\n")
    assert "matches 2 times" in err(box, "edit_file", path="dup.txt", old="x", new="y")
    assert "must not be empty" in err(box, "edit_file", path="dup.txt", old="", new="y")
    assert ok(box, "delete_file", path="src/util.py") == "deleted src/util.py"
    assert "no such file" in err(box, "delete_file", path="src/util.py")
    assert "allow_workflow_edits" in err(
        box, "write_file", path=".github/workflows/x.yml", content="on: push\n"
    )
    assert ".git/" in err(box, "write_file", path=".git/hooks/pre-commit", content="x")
    assert box.workspace.changed_files() == [
        "README.md",
        "dup.txt",
        "notes/n.md",
        "src/app.py",
        "src/util.py",
    ]


def test_review_comments(repo: Path) -> None:
    box = toolbox(repo)
    ok(box, "add_review_comment", path="src/app.py", line=2, body="Use an f-string.")
    assert box.review_comments == [
        ReviewComment(path="src/app.py", line=2, body="Use an f-string.", task_id="t1")
    ]
    assert "out of range" in err(box, "add_review_comment", path="src/app.py", line=3, body="x")
    assert "out of range" in err(box, "add_review_comment", path="src/app.py", line=0, body="x")
    assert "no such file" in err(box, "add_review_comment", path="nope.py", line=1, body="x")
    assert "must not be empty" in err(
        box, "add_review_comment", path="src/app.py", line=1, body=" "
    )
    assert len(box.review_comments) == 1


def test_finish(repo: Path) -> None:
    box = toolbox(repo)
    assert box.finished is None
    assert ok(box, "finish", summary="all done") == "finished"
    assert box.finished == "all done"


def test_run_command_is_not_offered_unless_asked_for(repo: Path) -> None:
    box = toolbox(repo)
    assert "run_command" not in [spec.name for spec in box.specs()]
    assert "not enabled" in err(box, "run_command", command="ls")


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("rm_rf", {}, "unknown tool 'rm_rf'"),
        ("read_file", {}, "missing required argument(s) path"),
        ("read_file", {"path": "a", "mode": "r"}, "unexpected argument(s) mode"),
        ("read_file", {"path": 3}, "argument path must be string, got number"),
        ("read_file", {"path": "README.md", "start_line": "2"}, "must be integer, got string"),
        ("read_file", {"path": "README.md", "start_line": True}, "must be integer, got boolean"),
        ("write_file", {"path": "a.txt", "content": None}, "missing required argument(s) content"),
        ("finish", {"summary": ["x"]}, "must be string, got array"),
    ],
)
def test_argument_validation(
    repo: Path, name: str, arguments: dict[str, Any], message: str
) -> None:
    box = toolbox(repo)
    assert message in err(box, name, **arguments)
    assert box.workspace.changed_files() == []


def test_lenient_but_safe_arguments(repo: Path) -> None:
    box = toolbox(repo)
    # Optional arguments sent as null are dropped; integral floats count as integers.
    assert (
        ok(box, "read_file", path="README.md", start_line=1.0, end_line=None) == "     1\t# sample"
    )
    assert ok(box, "list_files", path=None).startswith("README.md")


def test_malformed_json_arguments(repo: Path) -> None:
    box = toolbox(repo)
    outcome = box.call(
        ToolCall(id="x", name="write_file", arguments={}, arguments_error="invalid JSON")
    )
    assert outcome.is_error
    assert "not a valid JSON object (invalid JSON)" in outcome.text
