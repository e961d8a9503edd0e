"""One harness (tests/fixture_harness.py) over tests/fixtures/stepfunctions/<case>/.

`outline_fixes: true`: applying the outline satisfies the version gate and clears SFN120/SFN121.
Every outline, applied, must leave files that still parse (no SFN001).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES
from fixture_harness import apply_outline, expected, explain, run_case

CASES = sorted(p for p in (FIXTURES / "stepfunctions").iterdir() if p.is_dir())


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    want = expected(case)
    repo, report = run_case(case, tmp_path, want)
    if not report.plan.outline:
        return
    again = apply_outline(repo, report, case)
    # The patched files still parse (an outline must never break the template it fixes).
    assert not [f for f in again.findings if f.rule == "SFN001"], explain(again)
    if want.get("outline_fixes", False):
        assert all(g.status == "satisfied" for g in again.gates if g.kind == "version_gate"), explain(again)
        assert not [f for f in again.findings if f.rule in ("SFN120", "SFN121") and not f.suppressed], (
            explain(again)
        )
