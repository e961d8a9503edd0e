"""One harness (tests/fixture_harness.py) over tests/fixtures/airflow/<case>/, on real Airflow.

Each case is checked twice:
- with the DAG loader in a venv of real apache-airflow (3.x; `airflow: 2` in expected.yaml runs
  the case on 2.x, whose files then use Airflow 2 imports) — what expected.yaml says;
- with the static `ast` fallback (the check's interpreter has no Airflow): `static:` in
  expected.yaml gives its findings and verdict (AFL001 always among them), or `static_gap:` names
  the documented gap (docs/airflow.md) that makes it differ; either way it is never `safe`.

`outline_fixes: true`: applying the outline (a parallel definition under a new dag_id, the old
file back to base) makes the verdict non-breaking.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_2, AIRFLOW_3, airflow_python
from conftest import FIXTURES
from fixture_harness import apply_outline, check, expected, explain, run_case
from gitrepo import make_repo

CASES = sorted(p for p in (FIXTURES / "airflow").iterdir() if p.is_dir() and (p / "expected.yaml").exists())
EXTRA = ("airflow", "static", "static_gap")


def _python(want: dict[str, Any]) -> str:
    return airflow_python(AIRFLOW_2 if want.get("airflow") == 2 else AIRFLOW_3)


def test_enough_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_on_airflow(case: Path, tmp_path: Path) -> None:
    want = expected(case, EXTRA)
    python = _python(want)
    repo, report = run_case(case, tmp_path, want, python)
    assert not [f for f in report.findings if f.rule == "AFL001"], "Airflow should have loaded the DAGs"
    if want.get("outline_fixes"):
        fixed = apply_outline(repo, report, case, python)
        assert fixed.verdict.level.value != "breaking", explain(fixed)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_statically(case: Path, tmp_path: Path) -> None:
    want = expected(case, EXTRA)
    assert ("static" in want) != ("static_gap" in want), f"{case.name}: give `static` or `static_gap`"
    repo = make_repo(tmp_path / "repo", case / "base" if (case / "base").is_dir() else None, case / "head")
    report = check(Path(repo.working_dir), case, sys.executable)  # no Airflow in the test venv
    rules = Counter(f.rule for f in report.findings if not f.suppressed)
    assert report.verdict.level.value != "safe", explain(report)
    assert rules["AFL001"] == 1, explain(report)
    if "static" in want:
        static = want["static"]
        assert rules == Counter(item["rule"] for item in static.get("findings", [])), explain(report)
        for item in static.get("findings", []):
            if "line" in item:
                lines = [f.location.line for f in report.findings if f.rule == item["rule"] and f.location]
                assert item["line"] in lines, explain(report)
        assert report.verdict.level.value == static["verdict"], explain(report)
