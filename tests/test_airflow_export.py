"""`inflight-guard export airflow` and live DagRun counts, against a fake Airflow REST API that
validates every request and response with Airflow's own OpenAPI description (tests/airflow_fake.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_2, AIRFLOW_3, airflow_python
from airflow_fake import FakeAirflow
from cli_support import invoke, run_process
from conftest import FIXTURES
from gitrepo import make_repo
from servers import moto_env, moto_s3_server

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

RUNS = FIXTURES / "airflow_runs"
RUN = json.loads((RUNS / "v2-dagRuns-pinned.json").read_text())["dag_runs"][0]
TIS = json.loads((RUNS / "v2-taskInstances.json").read_text())["task_instances"]
DAG = (RUNS / "etl_orders.py").read_text()
SECRET = "s3cr3t-customer-4711"


def _v2_data() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """130 running runs of etl_orders (two pages), 20 of billing, 5 finished; one run with 150 TIs."""
    runs, instances = [], {}
    for dag_id, count, state in (
        ("etl_orders", 130, "running"),
        ("billing", 20, "running"),
        ("etl_orders", 5, "success"),
    ):
        for i in range(count):
            run = copy.deepcopy(RUN)
            run.update(
                dag_id=dag_id, dag_run_id=f"{dag_id}-{state}-{i:03d}", state=state, bundle_version=None
            )
            run["start_date"] = f"2026-11-{1 + i % 20:02d}T00:00:00Z"
            run["conf"] = {"customer": SECRET}
            runs.append(run)
            tis = []
            for ti in TIS:
                ti = copy.deepcopy(ti)
                ti.update(dag_id=dag_id, dag_run_id=run["dag_run_id"], rendered_fields={"sql": SECRET})
                tis.append(ti)
            instances[run["dag_run_id"]] = tis
    big = "etl_orders-running-000"
    instances[big] = instances[big] + [
        {**copy.deepcopy(TIS[7]), "dag_run_id": big, "map_index": 3 + i, "state": "success"}
        for i in range(140)
    ]
    return runs, instances


def _v1(run: dict[str, Any]) -> dict[str, Any]:
    """Airflow 2's DAGRun shape."""
    return {
        "dag_run_id": run["dag_run_id"],
        "dag_id": run["dag_id"],
        "logical_date": "2026-01-01T00:00:00+00:00",
        "execution_date": "2026-01-01T00:00:00+00:00",
        "start_date": run["start_date"],
        "end_date": None,
        "data_interval_start": "2026-01-01T00:00:00+00:00",
        "data_interval_end": "2026-01-02T00:00:00+00:00",
        "last_scheduling_decision": None,
        "run_type": "scheduled",
        "state": run["state"],
        "external_trigger": False,
        "conf": {"customer": SECRET},
        "note": None,
    }


def _v1_ti(ti: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "task_id",
        "dag_id",
        "dag_run_id",
        "map_index",
        "state",
        "try_number",
        "max_tries",
        "operator",
        "pool",
        "queue",
    )
    out = {k: ti[k] for k in keep}
    out.update(execution_date="2026-01-01T00:00:00+00:00", start_date=None, end_date=None, duration=None)
    return out


@pytest.fixture(scope="module")
def v2() -> Iterator[FakeAirflow]:
    runs, instances = _v2_data()
    fake = FakeAirflow(airflow_python(AIRFLOW_3), "v2", runs, instances).start()
    yield fake
    fake.stop()


@pytest.fixture
def login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_API_TOKEN", raising=False)
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "pw")


def test_export_v2_pages_and_drops_production_data(v2: FakeAirflow, tmp_path: Path, login: None) -> None:
    out = invoke("export", "airflow", "--url", v2.url, "--out", tmp_path / "runs")
    assert out.exit_code == 0, out.stderr
    assert "exported 150 DagRuns" in out.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["billing.json", "etl_orders.json"]
    doc = json.loads((tmp_path / "runs" / "etl_orders.json").read_text())
    assert len(doc["dag_runs"]) == 130 and {r["state"] for r in doc["dag_runs"]} == {"running"}
    assert len(doc["task_instances"]) == 130 * 10 + 140  # a second page of task instances too
    text = (tmp_path / "runs" / "etl_orders.json").read_text()
    assert SECRET not in text and '"conf"' not in text
    assert "POST /auth/token" in v2.requests[:3]  # username/password exchanged for a token
    assert any("offset=100" in r for r in v2.requests)
    assert v2.violations == []


def test_export_one_dag_then_check(v2: FakeAirflow, tmp_path: Path, login: None) -> None:
    out = invoke(
        "export", "airflow", "--url", v2.url, "--api", "v2", "--dag-id", "billing", "--out", tmp_path / "runs"
    )
    assert out.exit_code == 0, out.stderr
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["billing.json"]
    assert v2.violations == []


def test_exported_runs_replay_against_head(v2: FakeAirflow, tmp_path: Path, login: None) -> None:
    out = invoke("export", "airflow", "--url", v2.url, "--dag-id", "etl_orders", "--out", tmp_path / "runs")
    assert out.exit_code == 0, out.stderr
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    repo = make_repo(tmp_path / "repo", {"dags/etl_orders.py": DAG}, {"dags/etl_orders.py": head})
    report = run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            replay=ReplayOptions(
                sources=[str(tmp_path / "runs")], python=airflow_python(AIRFLOW_3), cache=None
            ),
        )
    )
    broken = [r for r in report.replay if r.outcome == "nondeterminism"]
    assert len(broken) == 130
    assert {f.rule for f in report.findings} >= {"AFL102", "AFL201"}


def _live_check(v2: FakeAirflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> Report:
    """Check a task rename of etl_orders with `airflow.url` pointing at the fake (+ `extra` config)."""
    monkeypatch.setenv("AIRFLOW_API_TOKEN", v2.token)
    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    repo = make_repo(tmp_path / "repo", {"dags/etl_orders.py": DAG}, {"dags/etl_orders.py": head})
    config = tmp_path / "inflight-guard.yml"
    config.write_text(f"airflow:\n  url: {v2.url}\n{extra}")
    report = run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            config=config,
            replay=ReplayOptions(python=airflow_python(AIRFLOW_3)),
        )
    )
    return report


def test_live_counts_of_running_runs(
    v2: FakeAirflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _live_check(v2, tmp_path, monkeypatch, "")
    d = next(d for d in report.definitions if d.id == "etl_orders")
    assert d.in_flight.count == 130
    assert d.in_flight.oldest_start == "2026-11-01T00:00:00Z"
    assert "Airflow REST v2" in d.in_flight.source
    assert v2.violations == []


def test_export_v1_basic_auth() -> None:
    python = airflow_python(AIRFLOW_2)
    runs, instances = _v2_data()
    fake = FakeAirflow(
        python,
        "v1",
        [_v1(r) for r in runs[:30]],
        {r["dag_run_id"]: [_v1_ti(t) for t in instances[r["dag_run_id"]]] for r in runs[:30]},
    ).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("AIRFLOW_API_TOKEN", raising=False)
            mp.setenv("AIRFLOW_USERNAME", "admin")
            mp.setenv("AIRFLOW_PASSWORD", "pw")
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                out = invoke("export", "airflow", "--url", fake.url, "--out", Path(tmp) / "runs")
                assert out.exit_code == 0, out.stderr
                doc = json.loads((Path(tmp) / "runs" / "etl_orders.json").read_text())
                assert doc["api"] == "v1" and len(doc["dag_runs"]) == 30
                assert "execution_date" in doc["dag_runs"][0]
        assert fake.requests[:2] == ["GET /api/v2/version", "GET /api/v1/version"]  # auto: v2, then v1
        assert fake.violations == []
    finally:
        fake.stop()


def test_bad_credentials_and_unreachable_are_one_line(v2: FakeAirflow, tmp_path: Path) -> None:
    env = {"AIRFLOW_USERNAME": "admin", "AIRFLOW_PASSWORD": "wrong", "AIRFLOW_API_TOKEN": ""}
    run = run_process("export", "airflow", "--url", v2.url, "--out", tmp_path / "x", env=env)
    assert run.exit_code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "POST /auth/token: HTTP 401" in lines[0], run.stderr
    run = run_process("export", "airflow", "--url", "http://127.0.0.1:9", "--out", tmp_path / "x", env=env)
    assert run.exit_code == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "answers neither /api/v2/version nor /api/v1/version" in run.stderr


def test_export_to_s3(v2: FakeAirflow, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("AIRFLOW_API_TOKEN", v2.token)
    with moto_s3_server() as endpoint:
        for key, value in moto_env(endpoint).items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="runs")
        out = invoke("export", "airflow", "--url", v2.url, "--dag-id", "billing", "--out", "s3://runs/prod/")
        assert out.exit_code == 0, out.stderr
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="runs")["Contents"]]
        assert keys == ["prod/billing.json"]
        body = json.loads(s3.get_object(Bucket="runs", Key="prod/billing.json")["Body"].read())
        assert len(body["dag_runs"]) == 20


def test_live_count_404_is_unknown_not_zero(
    v2: FakeAirflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong API version (or URL prefix) answers 404 for every DAG: that is not "nothing runs"."""
    report = _live_check(v2, tmp_path, monkeypatch, "  api: v1\n")
    d = next(d for d in report.definitions if d.id == "etl_orders")
    assert d.in_flight.count is None and "HTTP 404" in d.in_flight.source
    assert report.verdict.level.value == "breaking"  # AFL102 still blocks
