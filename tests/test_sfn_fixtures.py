"""One harness (tests/fixture_harness.py) over tests/fixtures/stepfunctions/<case>/.

Every outline, applied to head, must leave files that still parse (no SFN001), and gates nothing
by itself: an alias created in the same deploy has no previous version to keep executions on,
and a pin shipped with the change it guards does not protect executions already running.

`outline_fixes: true` is proven in two deploys, as a user would ship it: deploy 1 is the outline
alone on base; deploy 2 is this change on top of it. Deploy 2 has no SFN120/SFN121, and every
definition finding is gated by the alias deploy 1 created.
"""

from __future__ import annotations

from pathlib import Path

import git
import pytest
from conftest import FIXTURES
from fixture_harness import apply_outline, check, expected, explain, run_case
from gitrepo import ACTOR

from bot.model import Report

CASES = sorted(p for p in (FIXTURES / "stepfunctions").iterdir() if p.is_dir())
DEFINITION_RULES = {f"SFN1{n:02d}" for n in range(1, 19)}


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    want = expected(case)
    repo, report = run_case(case, tmp_path, want)
    if not report.plan.outline:
        return
    head = repo.head.commit
    outline = report.plan.outline
    again = apply_outline(repo, report, case)
    # The patched files still parse (an outline must never break the template it fixes).
    assert not [f for f in again.findings if f.rule == "SFN001"], explain(again)
    # In the same deploy the outline protects nothing: a new alias gates nothing, a pin shipped with
    # the change leaves running executions on the old definition calling the new code.
    assert not [f for f in again.findings if f.gated], explain(again)
    running = [f.rule for f in report.findings if f.rule == "SFN120"]
    assert [f.rule for f in again.findings if f.rule == "SFN120"] == running, explain(again)
    if want.get("outline_fixes", False):
        later = two_deploys(repo, outline, head, case)
        assert not [f for f in later.findings if f.rule in ("SFN120", "SFN121") and not f.suppressed], (
            explain(later)
        )
        before = sorted(f.rule for f in report.findings if f.rule in DEFINITION_RULES)
        mine = [f for f in later.findings if f.rule in DEFINITION_RULES]
        assert sorted(f.rule for f in mine) == before, explain(later)
        assert all(f.gated for f in mine), explain(later)


def two_deploys(repo: git.Repo, outline: str, head: git.Commit, case: Path) -> Report:
    """Check this change again with the outline already deployed: base + outline, then the change."""
    root = Path(repo.working_dir)
    patch = root.parent / "outline.patch"
    patch.write_text(outline)
    repo.git.checkout("-f", "-b", "deploy-1", "main")
    repo.git.apply(str(patch))  # the outline applies to base as it is: deploy 1 needs nothing else
    repo.git.add("--all")
    pinned = repo.index.commit("deploy 1: the outline alone", author=ACTOR, committer=ACTOR)
    repo.git.checkout("-b", "deploy-2")
    repo.git.cherry_pick(head.hexsha)
    repo.git.branch("-f", "main", pinned.hexsha)
    return check(root, case)
