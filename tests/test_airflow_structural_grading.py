"""Structural changes of an unpinned DAG are graded by whether DagRuns may be running (issue 17, item 2).

With the count unknown (no live count, nothing declared) or runs running, a task added, an edge added
or removed, or a trigger rule changed blocks (breaking, drain gate); when the count says none run
(here: the DAG declared drained, as a live count of 0 does) they are info, and a new leaf task is not
reported. Statically (`airflow.load: false`) and with real Airflow 3 the grading is the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow_env import AIRFLOW_3, airflow_python
from gitrepo import make_repo

from bot.engines.airflow.decisions import SchedulerUnavailable, replay
from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

BASE = """from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("orders", start_date=datetime(2026, 1, 1), schedule="@daily", catchup=False):
    extract = BashOperator(task_id="extract", bash_command="echo extract")
    clean = BashOperator(task_id="clean", bash_command="echo clean")
    load = BashOperator(task_id="load", bash_command="echo load")
    extract >> clean >> load
"""
EDITS: dict[str, tuple[str, str, str | None]] = {
    "new_root": (
        BASE + '    audit = BashOperator(task_id="audit", bash_command="echo audit")\n',
        "AFL103",
        None,
    ),
    "inserted": (
        BASE.replace(
            "extract >> clean", 'extract >> BashOperator(task_id="dedupe", bash_command="echo d") >> clean'
        ),
        "AFL103",
        "AFL144",
    ),
    "edge_removed": (
        BASE.replace("extract >> clean >> load", "extract >> clean\n    extract >> load"),
        "AFL105",
        "AFL143",
    ),
    "edge_added": ("<fork>", "AFL104", "AFL143"),
    "trigger_rule": (
        BASE.replace('task_id="load",', 'task_id="load", trigger_rule="all_done",'),
        "AFL106",
        "AFL143",
    ),
}
FORK = BASE.replace("extract >> clean >> load", "extract >> clean\n    extract >> load")
LEAF = BASE + '    notify = BashOperator(task_id="notify", bash_command="echo n")\n    load >> notify\n'


def _check(root: Path, head: str, config: str, python: str | None) -> Report:
    """`<fork>`: the edge `clean >> load` added to a DAG where both only follow `extract`."""
    files = {".github/inflight-guard.yml": config}
    base = FORK if head == "<fork>" else BASE
    head = BASE if head == "<fork>" else head
    repo = make_repo(root, {**files, "dags/orders.py": base}, {**files, "dags/orders.py": head})
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir), base="main", replay=ReplayOptions(python=python, cache=None)
        )
    )


def _active(report: Report) -> dict[str, str]:
    return {
        f.rule: f.severity.value for f in report.findings if not f.suppressed and f.rule.startswith("AFL1")
    }


@pytest.mark.parametrize("name", sorted(EDITS))
def test_static_structural_change_blocks_while_runs_may_be_running(tmp_path: Path, name: str) -> None:
    head, rule, idle = EDITS[name]
    report = _check(tmp_path / "unknown", head, "airflow:\n  load: false\n", None)
    assert _active(report).get(rule) == "breaking", _active(report)
    assert report.verdict.level.value == "breaking"
    assert any(g.kind == "drain" and g.definition == "orders" for g in report.gates)
    drained = _check(tmp_path / "drained", head, "airflow:\n  load: false\ndrained: [orders]\n", None)
    assert rule not in _active(drained), _active(drained)
    # A task with no downstream (here one with no upstream either) is a leaf: not reported at all.
    assert _active(drained).get(idle) == "info" if idle else not _active(drained), _active(drained)
    assert drained.verdict.level.value != "breaking"


def test_new_leaf_with_no_running_runs_is_safe(tmp_path: Path) -> None:
    unknown = _check(tmp_path / "unknown", LEAF, "airflow:\n  load: false\n", None)
    assert _active(unknown).get("AFL103") == "breaking"
    drained = _check(tmp_path / "drained", LEAF, "airflow:\n  load: false\ndrained: [orders]\n", None)
    assert not {"AFL103", "AFL143", "AFL144"} & set(_active(drained)), _active(drained)
    assert drained.verdict.level.value != "breaking"  # statically, AFL001 (not loaded) stays risky


def test_grading_is_the_same_with_airflow_loading_the_dags(tmp_path: Path) -> None:
    python = airflow_python(AIRFLOW_3)
    head, rule, idle = EDITS["edge_removed"]
    assert _active(_check(tmp_path / "unknown", head, "{}\n", python)).get(rule) == "breaking"
    drained = _check(tmp_path / "drained", head, "drained: [orders]\n", python)
    assert _active(drained).get(idle) == "info" and rule not in _active(drained)


def test_unknown_task_state_in_an_export_fails_closed(tmp_path: Path) -> None:
    doc = {
        "dag_runs": [{"dag_id": "orders", "dag_run_id": "r1", "state": "running"}],
        "task_instances": [{"dag_id": "orders", "dag_run_id": "r1", "task_id": "load", "state": "exploded"}],
    }
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "orders.json").write_text(json.dumps(doc))
    files = {".github/inflight-guard.yml": "airflow:\n  load: false\n"}
    head = BASE.replace("echo load", "echo load v2")
    repo = make_repo(tmp_path / "repo", {**files, "dags/orders.py": BASE}, {**files, "dags/orders.py": head})
    report = run_check(
        CheckOptions(
            repo=Path(repo.working_dir), base="main", replay=ReplayOptions(sources=[str(runs)], cache=None)
        )
    )
    [finding] = [f for f in report.findings if f.rule == "AFL203"]
    assert "task_instances[0]: unknown state 'exploded'" in finding.message
    assert report.verdict.level.value == "error"


def test_scheduler_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SchedulerUnavailable, match="cannot start /nonexistent/python"):
        replay("/nonexistent/python", {}, [], tmp_path, 30)
