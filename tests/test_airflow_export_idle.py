"""An export that covers a DAG and holds no running DagRun of it says none run (issue 17, item 2).

`inflight-guard export airflow --dag-id orders` against the REST fake (every request and response
validated against Airflow's own OpenAPI description, tests/airflow_fake.py) finds no running or queued
run of `orders` and writes a document naming the DAG and the states it looked for. The check then
counts 0 running runs: structural findings of the unpinned DAG grade `info`, as with a live count of 0.
An export that does not say it looked for running runs, or holds one, leaves them breaking.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_fake import FakeAirflow
from cli_support import invoke
from gitrepo import make_repo
from test_airflow_export import login, v2  # noqa: F401  # the REST fake and its credentials
from test_airflow_structural_grading import BASE, EDITS

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

HEAD, RULE, IDLE = EDITS["edge_removed"]  # AFL105 breaking while runs may run; AFL143 info when none do
CONFIG = "airflow:\n  load: false\n"


def _check(root: Path, runs: Path) -> Report:
    files = {".github/inflight-guard.yml": CONFIG}
    repo = make_repo(root / "repo", {**files, "dags/orders.py": BASE}, {**files, "dags/orders.py": HEAD})
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir), base="main", replay=ReplayOptions(sources=[str(runs)], cache=None)
        )
    )


def _active(report: Report) -> dict[str, str]:
    return {
        f.rule: f.severity.value for f in report.findings if not f.suppressed and f.rule.startswith("AFL1")
    }


def test_an_export_with_no_running_run_counts_zero(
    v2: FakeAirflow,  # noqa: F811
    login: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    out = invoke("export", "airflow", "--url", v2.url, "--dag-id", "orders", "--out", runs)
    assert out.exit_code == 0, out.stderr
    assert v2.violations == []
    doc = json.loads((runs / "orders.json").read_text())
    assert doc["dag_id"] == "orders" and doc["dag_runs"] == [] and set(doc["states"]) == {"running", "queued"}
    report = _check(tmp_path, runs)
    [orders] = [d for d in report.definitions if d.id == "orders"]
    assert orders.in_flight.count == 0, orders.in_flight
    assert "no running or queued DagRun" in orders.in_flight.source
    active = _active(report)
    assert RULE not in active and active.get(IDLE) == "info", active
    assert report.verdict.level.value != "breaking"


def _written(root: Path, document: dict[str, Any]) -> Path:
    runs = root / "runs"
    runs.mkdir(parents=True)
    (runs / "orders.json").write_text(json.dumps(document))
    return runs


def test_an_export_that_does_not_cover_running_runs_counts_nothing(tmp_path: Path) -> None:
    finished = {
        "dag_runs": [{"dag_id": "orders", "dag_run_id": "r1", "state": "success"}],
        "task_instances": [],
    }
    for name, document in (
        ("no_states", finished),  # hand-made: finished runs, nothing said of running ones
        ("success_only", {**finished, "states": ["success"]}),
        (
            "one_running",
            {
                **finished,
                "dag_runs": [
                    *finished["dag_runs"],
                    {"dag_id": "orders", "dag_run_id": "r2", "state": "running"},
                ],
                "states": ["running", "queued", "success"],
            },
        ),
    ):
        report = _check(tmp_path / name, _written(tmp_path / name, document))
        [orders] = [d for d in report.definitions if d.id == "orders"]
        assert orders.in_flight.count != 0, (name, orders.in_flight)
        assert _active(report).get(RULE) == "breaking", (name, _active(report))


def test_finished_runs_of_an_export_that_looked_for_running_ones_count_zero(tmp_path: Path) -> None:
    document = {
        "dag_runs": [{"dag_id": "orders", "dag_run_id": "r1", "state": "success"}],
        "task_instances": [],
        "states": ["running", "queued", "success"],
    }
    report = _check(tmp_path, _written(tmp_path, document))
    [orders] = [d for d in report.definitions if d.id == "orders"]
    assert orders.in_flight.count == 0 and "it holds 1 in other states" in orders.in_flight.source
    assert RULE not in _active(report)
