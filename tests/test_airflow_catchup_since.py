"""Catchup counted where the scheduler continues: after the DAG's last scheduled run (from an export,
or asked live with `airflow.url`), not from start_date — real Airflow 3's timetable counts."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow_env import AIRFLOW_3, airflow_python
from airflow_fake import FakeAirflow
from conftest import FIXTURES
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

HEADER = """from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
"""


def _dag(catchup: bool, start: str = "2020, 1, 1") -> str:
    return HEADER + (
        f'with DAG("daily", start_date=datetime({start}), schedule="@daily", catchup={catchup}):\n'
        '    EmptyOperator(task_id="run")\n'
    )


@pytest.fixture(scope="module")
def python() -> str:
    return airflow_python(AIRFLOW_3)


def _export(tmp_path: Path, days_ago: int) -> str:
    """A scheduled run of `daily` that ran `days_ago` days ago (Airflow 3's @daily is a cron trigger:
    its data interval is the trigger time), and a later manual run (the scheduler ignores it)."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    when = (midnight - timedelta(days=days_ago)).isoformat()
    runs = [
        {"dag_id": "daily", "dag_run_id": "scheduled__1", "state": "success", "run_type": "scheduled",
         "data_interval_start": when, "data_interval_end": when, "bundle_version": None},
        {"dag_id": "daily", "dag_run_id": "manual__1", "state": "success", "run_type": "manual",
         "data_interval_start": midnight.isoformat(), "data_interval_end": midnight.isoformat()},
    ]  # fmt: skip
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"dag_runs": runs, "task_instances": []}))
    return str(path)


def _check(tmp_path: Path, python: str, base: str, head: str, histories: tuple[str, ...] = ()) -> Report:
    repo = make_repo(tmp_path / "repo", {"dags/daily.py": base}, {"dags/daily.py": head})
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            replay=ReplayOptions(python=python, cache=None, sources=histories),
        )
    )


def _details(report: Report, kind: str) -> dict[str, object]:
    found = [f for f in report.findings if f.change and f.change.kind == kind]
    assert len(found) == 1, [f.rule for f in report.findings]
    assert found[0].change is not None
    return dict(found[0].change.details)


def test_catchup_counts_from_the_last_scheduled_run(tmp_path: Path, python: str) -> None:
    # last scheduled run 3 days ago: the runs due since are the 3 midnights after it, today's included
    export = _export(tmp_path, 3)
    report = _check(tmp_path / "a", python, _dag(False), _dag(True), (export,))
    details = _details(report, "airflow.catchup.enabled")
    assert details["runs"] == 3
    assert "after its last scheduled run" in str(details["since_text"])
    assert "AFL131" in {f.rule for f in report.findings}  # 3 runs at once: still a (small) burst
    # without the export: every day since 2020
    unknown = _details(_check(tmp_path / "b", python, _dag(False), _dag(True)), "airflow.catchup.enabled")
    # Counting stops after its time budget (a loaded machine): then the count says "at least".
    assert isinstance(unknown["runs"], int) and unknown["runs"] > 0
    if not str(unknown["runs_text"]).startswith("at least"):
        assert unknown["runs"] > 2000, unknown
    assert "start_date" in str(unknown["since_text"])


def test_start_date_moved_earlier_creates_nothing_before_the_last_run(tmp_path: Path, python: str) -> None:
    export = _export(tmp_path, 1)
    report = _check(tmp_path / "a", python, _dag(True, "2024, 1, 1"), _dag(True, "2020, 1, 1"), (export,))
    rules = {f.rule for f in report.findings}
    assert "AFL133" not in rules and "AFL134" in rules
    text = next(f.message for f in report.findings if f.rule == "AFL134")
    assert "continues after its last one" in text


def _computed(text: str) -> str:
    """The same DAG, its id computed at parse time (no literal a reader of the file can find)."""
    return text.replace(
        'with DAG("daily",', 'NAME = "-".join(["dai", "ly"]).replace("-", "")\nwith DAG(NAME,'
    )


@pytest.mark.parametrize("computed", [False, True])
def test_catchup_counts_from_the_last_run_asked_live(
    tmp_path: Path, python: str, monkeypatch: pytest.MonkeyPatch, computed: bool
) -> None:
    """With `airflow.url`, the last scheduled run comes from the REST API (the v2 description in the
    Airflow wheel validates the call and the answer); a newer manual run is not where it continues.
    The DAG is asked for by the id Airflow loaded, also when the file computes it."""
    template = json.loads((FIXTURES / "airflow_runs" / "v2-dagRuns-pinned.json").read_text())["dag_runs"][0]
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    runs = []
    for run_id, kind, when in (
        ("scheduled__old", "scheduled", midnight - timedelta(days=9)),
        ("scheduled__last", "scheduled", midnight - timedelta(days=2)),
        ("manual__now", "manual", midnight),
    ):
        stamp = when.isoformat().replace("+00:00", "Z")
        run = copy.deepcopy(template)
        run.update(
            dag_id="daily", dag_run_id=run_id, run_type=kind, state="success", logical_date=stamp,
            data_interval_start=stamp, data_interval_end=stamp, run_after=stamp, bundle_version=None,
        )  # fmt: skip
        runs.append(run)
    fake = FakeAirflow(python, "v2", runs, {}).start()
    try:
        monkeypatch.setenv("AIRFLOW_API_TOKEN", fake.token)
        shape = _computed if computed else str
        repo = make_repo(
            tmp_path / "repo", {"dags/daily.py": shape(_dag(False))}, {"dags/daily.py": shape(_dag(True))}
        )
        config = tmp_path / "inflight-guard.yml"
        config.write_text(f"airflow:\n  url: {fake.url}\n  api: v2\n")
        report = run_check(
            CheckOptions(
                repo=Path(repo.working_dir),
                base="main",
                config=config,
                replay=ReplayOptions(python=python, cache=None),
            )
        )
    finally:
        fake.stop()
    assert fake.violations == []
    assert any("run_type=scheduled" in r for r in fake.requests), fake.requests
    details = _details(report, "airflow.catchup.enabled")
    assert details["runs"] == 2  # the two midnights after the last scheduled run, today's included
