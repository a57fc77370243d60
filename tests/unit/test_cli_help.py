"""The command line reads like a product: description, examples, version, help on every option."""

from __future__ import annotations

import argparse

import pytest

from orchestrator.cli import COMMANDS, build_parser, main


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_top_level_help_describes_the_product_with_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "Plan a request into typed tasks" in text  # not a module docstring
    assert "examples:" in text and "orchestrator demo" in text and "exit codes:" in text
    assert "Command line: parse arguments" not in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("orchestrator ") and out.split()[1][0].isdigit()


def test_every_command_has_a_description_examples_and_help_on_every_option() -> None:
    commands = subparsers()
    assert set(commands) == set(COMMANDS)
    for name, parser in commands.items():
        assert parser.description, name
        assert parser.epilog and "example" in parser.epilog, name
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


def test_a_bad_flag_shows_the_commands_own_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["aggregate", "--plan", "p.json", "--bogus"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: orchestrator aggregate")
    assert "orchestrator aggregate: error: unrecognized arguments: --bogus" in err


def test_repo_and_workspace_are_one_option() -> None:
    for command in ("task", "aggregate"):
        parser = subparsers()[command]
        repo = next(a for a in parser._actions if a.dest == "repo")
        assert repo.option_strings == ["--repo", "--workspace"]
