"""Replay of running DagRuns (REST exports) against the head DAG, loaded by real Airflow 3.

The exports are the REST API's own shapes (tests/fixtures/airflow_runs/README.md): one running
run of `etl_orders` with finished, running and not-yet-run task instances and a mapped task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_3, airflow_python
from cli_support import invoke
from conftest import FIXTURES
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check
from bot.report import render

RUNS = FIXTURES / "airflow_runs"
DAG = (RUNS / "etl_orders.py").read_text()
SECRET = "s3cr3t-customer-4711"


@pytest.fixture(scope="module")
def python() -> str:
    return airflow_python(AIRFLOW_3)


def _runs(pinned: bool) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RUNS / "v2-dagRuns-pinned.json").read_text())
    run = data["dag_runs"][0]
    run["conf"] = {"customer": SECRET}  # production payload: must never be shown
    if not pinned:
        run["bundle_version"] = None
    return data


def _instances() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RUNS / "v2-taskInstances.json").read_text())
    return data


def _combined(folder: Path, pinned: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"dag_runs": _runs(pinned)["dag_runs"], "task_instances": _instances()["task_instances"]}
    (folder / "etl_orders.json").write_text(json.dumps(doc))
    return folder


def _check(tmp_path: Path, head: str, histories: Path, python: str, base: str = DAG) -> Report:
    repo = make_repo(tmp_path / "repo", {"dags/etl_orders.py": base}, {"dags/etl_orders.py": head})
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            replay=ReplayOptions(sources=[str(histories)], python=python, cache=None),
        )
    )


def _only(report: Report) -> Any:
    mine = [r for r in report.replay if r.definition == "etl_orders"]
    assert len(mine) == 1, report.replay
    return mine[0]


def test_unpinned_run_loses_pending_work_and_schedules_the_renamed_task(tmp_path: Path, python: str) -> None:
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    report = _check(tmp_path, head, _combined(tmp_path / "runs"), python)
    result = _only(report)
    assert result.outcome == "nondeterminism"
    assert result.run_id == "manual__inflight" and result.open
    # Airflow's scheduler, on the head DAG: `load` is marked removed, `load_orders` runs in its place.
    assert (
        "`load` (renamed to `load_orders`) has not run: it ends `removed` on the head DAG "
        "(with the base DAG: `success`), its work is dropped" in result.message
    )
    assert (
        "new task `load_orders` appears mid-run: the scheduler starts it in pass 3, before `end`"
        in result.message
    )
    rules = {f.rule for f in report.findings if not f.suppressed}
    assert {"AFL102", "AFL201"} <= rules
    assert report.verdict.level.value == "breaking"
    assert SECRET not in report.to_json()
    # The comment says it in the scheduler's terms: the run is broken, not "nondeterminism".
    comment = render(report, "markdown")
    assert "| in flight | broken |" in comment and ": 1 broken" in comment
    assert "nondeterminism" not in comment
    # Beside the static finding the replay explains: how many runs, counted as runs.
    explained = [f for f in report.findings if f.replay]
    assert explained and all(
        "1 exported running runs cannot finish on the head DAG here" in f.replay for f in explained
    )


def test_pinned_run_keeps_its_bundle_version(tmp_path: Path, python: str) -> None:
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    report = _check(tmp_path, head, _combined(tmp_path / "runs", pinned=True), python)
    result = _only(report)
    assert result.outcome == "ok"
    assert "pinned to bundle version deadbeef" in result.message
    assert "AFL201" not in {f.rule for f in report.findings}


def test_removing_a_finished_task_orphans_its_history(tmp_path: Path, python: str) -> None:
    head = DAG.replace('    start = EmptyOperator(task_id="start")\n', "").replace(
        "start >> extract", "extract"
    )
    report = _check(tmp_path, head, _combined(tmp_path / "runs"), python)
    result = _only(report)
    assert result.outcome == "nondeterminism"
    assert "`start` finished (success): the scheduler marks it `removed` on the head DAG" in result.message
    assert result.event == "task start"


def test_mapped_task_made_unmapped_removes_its_instances(tmp_path: Path, python: str) -> None:
    head = DAG.replace("process.expand(name=list_files())", "process(list_files())")
    report = _check(tmp_path, head, _combined(tmp_path / "runs"), python)
    result = _only(report)
    # Airflow's own scheduler keeps the mapped instances of a running run (verify_integrity skips a
    # task that is no longer mapped) and creates no unmapped one: this run is scheduled as before.
    # (The old expectation, "its mapped instances become removed", was the hand model's, not Airflow's.)
    assert result.outcome == "ok", result.message
    assert "same decisions" in result.message
    rules = {f.rule for f in report.findings}
    assert "AFL107" in rules and "AFL201" not in rules


def test_new_task_after_finished_work_runs_out_of_order(tmp_path: Path, python: str) -> None:
    # `audit` runs before `extract` now; in the exported run `extract` already ran.
    head = DAG.replace(
        "    start >> extract",
        '    audit = EmptyOperator(task_id="audit")\n    start >> audit >> extract\n    start >> extract',
    )
    report = _check(tmp_path, head, _combined(tmp_path / "runs"), python)
    result = _only(report)
    # An upstream inserted before finished work runs mid-run (issue 17: broken, not diverged).
    assert result.outcome == "nondeterminism"
    assert "new task `audit` appears mid-run: the scheduler starts it in pass 1" in result.message
    replay = [f for f in report.findings if f.rule == "AFL201"]
    assert replay and replay[0].location is not None and replay[0].location.path == "dags/etl_orders.py"


def test_trigger_rule_change_of_a_pending_task(tmp_path: Path, python: str) -> None:
    head = DAG.replace(
        'EmptyOperator(task_id="end")', 'EmptyOperator(task_id="end", trigger_rule="all_done")'
    )
    report = _check(tmp_path, head, _combined(tmp_path / "runs"), python)
    result = _only(report)
    # `end` waits for `load` under either rule while nothing fails: Airflow schedules it the same.
    # (The old expectation, `diverged`, was asserted by the hand model, not shown by the scheduler.)
    assert result.outcome == "ok", result.message
    assert {"AFL106"} <= {f.rule for f in report.findings}


def test_separate_collection_files_are_joined(tmp_path: Path, python: str) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "dagRuns.json").write_text(json.dumps(_runs(pinned=False)))
    (folder / "taskInstances.json").write_text(json.dumps(_instances()))
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    report = _check(tmp_path, head, folder, python)
    result = _only(report)
    assert result.outcome == "nondeterminism"
    assert result.events == 10  # the task instances of the other file were attached to the run


def test_every_run_and_export_not_checked_is_named(tmp_path: Path, python: str) -> None:
    """A finished run, task instances of a run no export holds, an export with no run: each is a line
    saying why it was not checked; task instances joined to a run add none."""
    folder = tmp_path / "runs"
    folder.mkdir()
    runs = _runs(pinned=False)
    finished = {**runs["dag_runs"][0], "dag_run_id": "scheduled__done", "state": "success"}
    runs["dag_runs"].append(finished)
    (folder / "dagRuns.json").write_text(json.dumps(runs))
    (folder / "taskInstances.json").write_text(json.dumps(_instances()))
    orphans = _instances()
    for ti in orphans["task_instances"]:
        ti["dag_run_id"] = "manual__gone"
    (folder / "orphans.json").write_text(json.dumps(orphans))
    (folder / "none.json").write_text(json.dumps({"dag_runs": [], "total_entries": 0}))
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    report = _check(tmp_path, head, folder, python)
    lines = {Path(r.history).name: r for r in report.replay}
    assert sorted(lines) == [
        "dagRuns.json#manual__inflight",
        "dagRuns.json#scheduled__done",
        "none.json",
        "orphans.json",
    ]
    assert lines["dagRuns.json#manual__inflight"].outcome == "nondeterminism"
    done = lines["dagRuns.json#scheduled__done"]
    assert (done.outcome, done.open, done.definition) == ("skipped", False, "etl_orders")
    assert done.message == "not checked: the DagRun is success (only running ones are)"
    count = len(orphans["task_instances"])
    assert lines["orphans.json"].outcome == "skipped"
    assert lines["orphans.json"].message == (
        f"not checked: {count} task instances of DagRuns no export holds (export the dag_runs too)"
    )
    assert lines["none.json"].message == "not checked: the export holds no DagRun"
    assert report.replay_summary is not None
    assert report.replay_summary.counts == {"nondeterminism": 1, "skipped": 3}


def test_airflow2_v1_export(tmp_path: Path, python: str) -> None:
    """v1 shapes: `execution_date`, no bundle fields (Airflow 2 never pins a run)."""
    runs = _runs(pinned=True)
    run = runs["dag_runs"][0]
    for key in ("bundle_version", "dag_versions", "run_after", "logical_date", "triggered_by"):
        run.pop(key, None)
    run["execution_date"] = "2026-01-01T00:00:00+00:00"
    instances = _instances()
    for ti in instances["task_instances"]:
        for key in ("dag_version", "run_after", "logical_date", "id"):
            ti.pop(key, None)
        ti["execution_date"] = "2026-01-01T00:00:00+00:00"
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "etl_orders.json").write_text(
        json.dumps({"dag_runs": runs["dag_runs"], "task_instances": instances["task_instances"]})
    )
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    result = _only(_check(tmp_path, head, folder, python))
    assert result.outcome == "nondeterminism"


def test_truncated_export_is_an_error_not_a_pass(tmp_path: Path, python: str) -> None:
    folder = _combined(tmp_path / "runs")
    text = (folder / "etl_orders.json").read_text()
    (folder / "etl_orders.json").write_text(text[: len(text) // 2])
    report = _check(tmp_path, DAG.replace("echo load", "echo load v2"), folder, python)
    unreadable = [f for f in report.findings if f.rule == "AFL203"]
    assert unreadable and "invalid JSON" in unreadable[0].message
    assert report.verdict.level.value == "error"


def test_cli_replay_and_exit_code(tmp_path: Path, python: str) -> None:
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    repo = make_repo(tmp_path / "repo", {"dags/etl_orders.py": DAG}, {"dags/etl_orders.py": head})
    runs = _combined(tmp_path / "runs")
    out = invoke(
        "check",
        "--repo",
        repo.working_dir,
        "--base",
        "main",
        "--python",
        python,
        "--histories",
        runs,
        "--format",
        "json",
    )
    assert out.exit_code == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["verdict"]["level"] == "breaking"
    assert SECRET not in out.stdout and SECRET not in out.stderr
