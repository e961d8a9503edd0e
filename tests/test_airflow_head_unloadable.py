"""A head DAG file that no longer imports while DagRuns run (issue 17): the check fails closed.

The running runs are ones Airflow's scheduler left mid-flight (the recorded exports of
tests/fixtures/airflow_scheduled, written by tests/airflow_sched_recorder.py with real Airflow 3.3.2
and 2.11.2); the head file's import error is what Airflow's own DagBag reports, loading the file in the
same Airflow. Unpinned, each running run is reported as not replayed and breaking (AFL205), at the
file and line of the head's import error; a run pinned to a bundle version finishes on its own DAG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_2, AIRFLOW_3, airflow_python
from conftest import FIXTURES
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

VERSIONS = {"3": AIRFLOW_3, "2": AIRFLOW_2}
SCENARIO = "new_leaf_after_end"  # any running run: its DAG is what the head breaks


def _case(major: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / "airflow_scheduled" / f"airflow-{major}.json").read_text())
    assert data["airflow"] == VERSIONS[major]
    case: dict[str, Any] = data["scenarios"][SCENARIO]
    return case


def _breaks(text: str, how: str) -> tuple[str, int]:
    """The base file broken as `how` says, and the line the break is on."""
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith("load = "))
    if how == "syntax":
        lines[at] = lines[at].replace("Step(", "Step((", 1)  # an unclosed parenthesis
    else:
        lines.insert(at, "    from inflight_guard_no_such_module import helper")
    return "\n".join(lines) + "\n", at + 1


def _check(root: Path, major: str, head: str, export: dict[str, Any], config: str = "{}\n") -> Report:
    case = _case(major)
    path = f"dags/{SCENARIO}.py"
    files = {".github/inflight-guard.yml": config}
    repo = make_repo(root / "repo", {**files, path: case["base"]}, {**files, path: head})
    runs = root / "runs"
    runs.mkdir()
    (runs / "runs.json").write_text(json.dumps(export))
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            replay=ReplayOptions(
                sources=[str(runs)], python=airflow_python(VERSIONS[major]), cache=root / "cache"
            ),
        )
    )


@pytest.mark.parametrize("how", ["syntax", "import"])
@pytest.mark.parametrize("major", sorted(VERSIONS))
def test_running_runs_of_a_dag_that_no_longer_imports_are_breaking(
    tmp_path: Path, major: str, how: str
) -> None:
    case = _case(major)
    head, line = _breaks(case["base"], how)
    report = _check(tmp_path, major, head, case["export"])
    [run] = [r for r in report.replay if r.run_id == "manual__inflight"]
    assert run.outcome == "nondeterminism", run.message
    assert run.message.startswith(f"not replayed: dags/{SCENARIO}.py does not import on head (line {line}:")
    [stranded] = [f for f in report.findings if f.rule == "AFL205"]
    assert stranded.severity.value == "breaking"
    assert stranded.location is not None
    assert (stranded.location.path, stranded.location.line) == (f"dags/{SCENARIO}.py", line)
    assert "1 running DagRun(s)" in stranded.message and "could not be replayed" in stranded.message
    [error] = [f for f in report.findings if f.rule == "AFL002"]
    assert error.location is not None and error.location.line == line
    expected = "SyntaxError" if how == "syntax" else "inflight_guard_no_such_module"
    assert expected in error.message and expected in run.message
    assert report.verdict.level.value == "breaking"


def test_a_run_pinned_to_its_bundle_version_is_not_stranded(tmp_path: Path) -> None:
    case = _case("3")
    head, _ = _breaks(case["base"], "syntax")
    export = json.loads(json.dumps(case["export"]))
    for run in export["dag_runs"]:
        run["bundle_version"] = "3f2c1e0"
    report = _check(tmp_path, "3", head, export, "airflow:\n  bundle: git\n")
    [run] = [r for r in report.replay if r.run_id == "manual__inflight"]
    assert run.outcome == "ok" and "pinned to bundle version 3f2c1e0" in run.message
    assert not [f for f in report.findings if f.rule == "AFL205"]
    # The file still does not import: new runs cannot start, the change still blocks.
    assert [f.severity.value for f in report.findings if f.rule == "AFL002"] == ["breaking"]
