"""Docs that cannot drift: one source for each caller, one repository and ref for every action."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTION_REF = re.compile(r"uses:\s*([\w.-]+/[\w.-]+)/actions/[\w-]+@([\w.-]+)")


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, re.DOTALL)


def without_header_comment(text: str) -> str:
    return text[text.index("name:") :]


def test_a_caller_quoted_in_the_docs_is_the_example_file_itself() -> None:
    examples = {
        path.name: without_header_comment(path.read_text())
        for path in (ROOT / "examples" / "workflows").glob("*.yml")
    }
    quoted = 0
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for block in yaml_blocks(doc.read_text()):
            name = re.search(r"^name: (orchestrate.*)$", block, re.MULTILINE)
            if name is None or "workflows/orchestrate.yml@" not in block:
                continue
            match = [n for n, text in examples.items() if text.startswith(name.group(0))]
            assert match, f"{doc.name}: a caller named {name.group(1)!r} has no example file"
            assert block == examples[match[0]], f"{doc.name} quotes an outdated {match[0]}"
            quoted += 1
    assert quoted >= 1  # docs/usage.md quotes the label caller


def test_the_reusable_workflow_names_one_repository_and_ref_for_its_actions() -> None:
    text = (ROOT / ".github" / "workflows" / "orchestrate.yml").read_text()
    refs = set(ACTION_REF.findall(text))
    assert len(ACTION_REF.findall(text)) >= 5
    assert len(refs) == 1, f"the reusable workflow mixes action references: {sorted(refs)}"
    callers = "".join(p.read_text() for p in (ROOT / "examples" / "workflows").glob("*.yml"))
    ((repository, ref),) = refs
    assert f"{repository}/.github/workflows/orchestrate.yml@{ref}" in callers


#: Paths outside the repository the docs may name: what their own commands create beside it.
MADE_BY_THE_DOCS = {"replay.yml", "run"}


def test_docs_name_no_file_outside_the_repository() -> None:
    for doc in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        outside = set(re.findall(r"\.\./([\w.-]+)", doc.read_text()))
        assert outside <= MADE_BY_THE_DOCS, (doc.name, outside - MADE_BY_THE_DOCS)


def test_callers_group_runs_only_after_the_trust_gate() -> None:
    """A workflow-level concurrency group admits every event (an untrusted comment, another
    label) into the maintainers' queue, where it can replace a pending run: groups belong on
    the job, behind its ``if:``."""
    import yaml

    callers = [
        ROOT / "examples" / "workflows" / "orchestrate-comment.yml",
        ROOT / "examples" / "workflows" / "orchestrate-label.yml",
        ROOT / ".github" / "workflows" / "orchestrate-self.yml",
    ]
    for path in callers:
        workflow = yaml.safe_load(path.read_text())
        assert "concurrency" not in workflow, path.name
        job = workflow["jobs"]["orchestrate"]
        assert "concurrency" in job and "if" in job, path.name
        if "comment" in job["if"]:
            assert "author_association" in job["if"], path.name


def test_the_reusable_workflow_exposes_what_the_composite_action_does() -> None:
    """Callers of the reusable workflow get the run's tokens and cost, as action users do."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github/workflows/orchestrate.yml").read_text())
    action = yaml.safe_load((ROOT / "actions/aggregate/action.yml").read_text())
    outputs = workflow[True]["workflow_call"]["outputs"]  # `on:` loads as the key True
    job_outputs = workflow["jobs"]["aggregate"]["outputs"]
    for name in ("status", "pr-url", "tokens", "cost-usd"):
        assert name in action["outputs"]
        assert outputs[name]["value"] == f"${{{{ jobs.aggregate.outputs.{name} }}}}"
        assert job_outputs[name] == f"${{{{ steps.aggregate.outputs.{name} }}}}"
