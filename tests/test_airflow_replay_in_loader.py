"""The scheduler replay runs in the DAG loader's process; when that process cannot serve it (here a DAG
file takes the loader's standard input away), the replay runs in a process of its own and says so.

The run is one Airflow's scheduler left mid-flight (tests/fixtures/airflow_scheduled, recorded by
tests/airflow_sched_recorder.py with real Airflow 3.3.2); the outcome expected is the kind the
recorder proved from Airflow's own traces.
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow_env import AIRFLOW_3, airflow_python
from conftest import FIXTURES
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.pipeline import CheckOptions, run_check

SCENARIO = "new_leaf_after_end"
OUTCOME = {"broken": "nondeterminism", "diverged": "diverged", "ok": "ok"}
HOSTILE = "import io\nimport sys\n\nsys.stdin = io.StringIO('')  # the loader's channel is gone\n"


def test_replay_falls_back_to_its_own_process(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "airflow_scheduled" / "airflow-3.json").read_text())
    assert data["airflow"] == AIRFLOW_3
    case = data["scenarios"][SCENARIO]
    path = f"dags/{SCENARIO}.py"
    repo = make_repo(tmp_path / "repo", {path: HOSTILE + case["base"]}, {path: HOSTILE + case["head"]})
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "runs.json").write_text(json.dumps(case["export"]))
    report = run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            replay=ReplayOptions(
                sources=[str(runs)], python=airflow_python(AIRFLOW_3), cache=tmp_path / "cache"
            ),
        )
    )
    [run] = [r for r in report.replay if r.run_id == "manual__inflight"]
    assert run.outcome == OUTCOME[case["kind"]], run.message
    assert report.replay_summary is not None
    notes = report.replay_summary.notes
    assert any(
        n.startswith("the replay ran in a process of its own: it failed in the DAG loader") for n in notes
    )
    assert not any("(in the DAG loader's process)" in n for n in notes), notes
