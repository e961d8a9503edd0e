"""One harness (tests/fixture_harness.py) over tests/fixtures/temporal/<case>/.

Temporal's expected.yaml also allows `importable: false` (the fixture is deliberately broken Python;
default true; see test_fixtures_are_real.py). `outline_fixes: true`: applying the outline makes the
verdict non-breaking and clears the breaking findings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES
from fixture_harness import apply_outline, expected, explain, run_case

CASES = sorted(p for p in (FIXTURES / "temporal").iterdir() if p.is_dir())


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    want = expected(case, extra_keys=("importable",))
    repo, report = run_case(case, tmp_path, want)
    if not report.plan.outline:
        return
    again = apply_outline(repo, report, case)
    if want.get("outline_fixes", False):
        assert again.verdict.level.value != "breaking", explain(again)
        breaking = {r.rule for r in report.findings if r.severity == "breaking"}
        assert not [
            f for f in again.findings if f.rule in breaking and not f.suppressed and f.severity == "breaking"
        ], explain(again)
