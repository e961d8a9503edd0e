"""The Airflow engine's edges on real Airflow 3: loader robustness, config errors, replay fairness."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_3, airflow_python
from cli_support import run_process
from conftest import FIXTURES
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

RUNS = FIXTURES / "airflow_runs"
DAG = (RUNS / "etl_orders.py").read_text()
HEADER = """from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
"""


@pytest.fixture(scope="module")
def python() -> str:
    return airflow_python(AIRFLOW_3)


def _check(tmp_path: Path, base: dict[str, str], head: dict[str, str], python: str, **options: Any) -> Report:
    repo = make_repo(tmp_path / "repo", base, head)
    config = options.pop("config", None)
    path = None
    if config:
        path = tmp_path / "inflight-guard.yml"
        path.write_text(config)
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            config=path,
            replay=ReplayOptions(python=python, cache=None, **options),
        )
    )


def test_backfill_count_stops_at_end_date(tmp_path: Path, python: str) -> None:
    dag = HEADER + (
        'with DAG("short", start_date=datetime(2020, 1, 1), end_date=datetime(2020, 1, 3), '
        'schedule="@daily", catchup=True):\n    EmptyOperator(task_id="a")\n'
    )
    report = _check(tmp_path, {"README.md": "x"}, {"dags/short.py": dag}, python)
    added = [f for f in report.findings if f.change and f.change.kind == "airflow.dag.added"]
    assert len(added) == 1
    runs = added[0].change.details["runs"] if added[0].change else None
    assert isinstance(runs, int) and 1 <= runs <= 3, runs  # not every day since 2020


def test_dags_folder_is_normalised_or_refused(tmp_path: Path, python: str) -> None:
    base = {
        "dags/a.py": HEADER
        + 'with DAG("a", start_date=datetime(2026, 1, 1)):\n    EmptyOperator(task_id="x")\n'
    }
    head = {"dags/a.py": base["dags/a.py"].replace('task_id="x"', 'task_id="y"')}
    dotted = _check(tmp_path / "1", base, head, python, config="airflow:\n  dags_folder: ./dags/\n")
    assert "AFL102" in {f.rule for f in dotted.findings}
    repo = make_repo(tmp_path / "2" / "repo", base, head)
    for value, words in (
        ("/opt/airflow/dags", "relative to the repository root"),
        ("nope", "no Python file under it"),
    ):
        config = tmp_path / "2" / "c.yml"
        config.write_text(f"airflow:\n  dags_folder: {value}\n")
        run = run_process(
            "check", "--repo", repo.working_dir, "--base", "main", "--config", config, "--python", python
        )
        assert run.exit_code == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], run.stderr


def test_a_dag_file_calling_sys_exit_is_an_import_error(tmp_path: Path, python: str) -> None:
    good = HEADER + 'with DAG("a", start_date=datetime(2026, 1, 1)):\n    EmptyOperator(task_id="x")\n'
    head = {
        "dags/a.py": good.replace('task_id="x"', 'task_id="y"'),
        "dags/bad.py": "import sys\nimport airflow  # dag\nsys.exit(3)\n",
    }
    report = _check(tmp_path, {"dags/a.py": good}, head, python)
    rules = {f.rule for f in report.findings}
    assert "AFL001" not in rules  # the loader survived: the other file was loaded by Airflow
    assert "AFL102" in rules
    errors = [f for f in report.findings if f.rule == "AFL002"]
    assert (
        errors
        and "SystemExit: 3" in errors[0].message
        and errors[0].location
        and errors[0].location.path == "dags/bad.py"
    )


def test_parse_time_variable_failing_on_both_sides_is_read_statically(
    tmp_path: Path, python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_dag = HEADER + (
        'from airflow.sdk import Variable\n\nBUCKET = Variable.get("etl_bucket")\n\n'
        'with DAG("vars", start_date=datetime(2026, 1, 1), schedule="@daily", catchup=False):\n'
        '    a = EmptyOperator(task_id="a")\n'
    )
    head_dag = base_dag + '    a >> EmptyOperator(task_id="b")\n'
    monkeypatch.delenv("AIRFLOW_VAR_ETL_BUCKET", raising=False)
    report = _check(tmp_path / "1", {"dags/v.py": base_dag}, {"dags/v.py": head_dag}, python)
    rules = sorted(f.rule for f in report.findings)
    assert rules == ["AFL001", "AFL103"], rules  # no AFL002: base fails the same way
    static = next(f for f in report.findings if f.rule == "AFL001")
    assert "dags/v.py does not import here, in base nor head" in static.message
    # A task added to an unpinned DAG whose running runs are not counted blocks (issue 17, item 2).
    assert report.verdict.level.value == "breaking"
    monkeypatch.setenv("AIRFLOW_VAR_ETL_BUCKET", "bucket-1")  # the user's Variables reach the loader
    loaded = _check(tmp_path / "2", {"dags/v.py": base_dag}, {"dags/v.py": head_dag}, python)
    assert sorted(f.rule for f in loaded.findings) == ["AFL103"]


def _runs(folder: Path, mutate: Any) -> Path:
    run = json.loads((RUNS / "v2-dagRuns-pinned.json").read_text())["dag_runs"][0]
    run["bundle_version"] = None
    tis = json.loads((RUNS / "v2-taskInstances.json").read_text())["task_instances"]
    doc = {"dag_runs": [run], "task_instances": copy.deepcopy(tis)}
    mutate(doc)
    folder.mkdir(parents=True)
    (folder / "etl_orders.json").write_text(json.dumps(doc))
    return folder


def _replayed(tmp_path: Path, head: str, runs: Path, python: str, base: str = DAG) -> Report:
    return _check(
        tmp_path, {"dags/etl_orders.py": base}, {"dags/etl_orders.py": head}, python, sources=[str(runs)]
    )


def test_replay_blames_only_what_the_change_does(tmp_path: Path, python: str) -> None:
    """A mapped task still at its placeholder instance, instances already `removed`, a task gone
    before this change: history, not this change's doing. The change (a comment) breaks nothing."""

    def mutate(doc: dict[str, Any]) -> None:
        tis = doc["task_instances"]
        tis[:] = [t for t in tis if t["task_id"] != "process"]
        tis.append({**tis[0], "task_id": "process", "map_index": -1, "state": None})
        tis.append({**tis[0], "task_id": "legacy_step", "state": "removed"})
        tis.append({**tis[0], "task_id": "list_files", "state": "running"})

    runs = _runs(tmp_path / "runs", mutate)
    report = _replayed(tmp_path, DAG.replace("echo load", "echo load  # same"), runs, python)
    result = next(r for r in report.replay if r.definition == "etl_orders")
    assert result.outcome == "ok", result.message
    assert "AFL201" not in {f.rule for f in report.findings}


def test_replay_cross_product_of_literal_expansions(tmp_path: Path, python: str) -> None:
    base = DAG.replace(
        "process.expand(name=list_files())", 'process.expand(name=["a", "b"], part=[1, 2, 3])'
    ).replace("def process(name):", "def process(name, part):")
    head = base.replace("part=[1, 2, 3]", "part=[1, 2]")

    def mutate(doc: dict[str, Any]) -> None:
        tis = doc["task_instances"]
        proc = next(t for t in tis if t["task_id"] == "process")
        tis[:] = [t for t in tis if t["task_id"] != "process"]
        tis += [{**proc, "map_index": i, "state": "success"} for i in range(6)]

    report = _replayed(tmp_path, head, _runs(tmp_path / "runs", mutate), python, base=base)
    result = next(r for r in report.replay if r.definition == "etl_orders")
    # 2 x 3 = 6 instances before, 2 x 2 = 4 now: Airflow's scheduler removes indexes 4 and 5, not 2 to 5.
    assert result.outcome == "nondeterminism"
    for i in (4, 5):
        assert f"`process` [{i}] finished (success): the scheduler marks it `removed`" in result.message
    assert "`process` [2]" not in result.message and "`process` [3]" not in result.message


def test_queued_run_and_run_without_task_instances(tmp_path: Path, python: str) -> None:
    def queued(doc: dict[str, Any]) -> None:
        doc["dag_runs"][0]["state"] = "queued"
        for t in doc["task_instances"]:
            t["state"] = None

    head = DAG.replace('task_id="load"', 'task_id="load_orders"')
    report = _replayed(tmp_path / "q", head, _runs(tmp_path / "q" / "runs", queued), python)
    result = next(r for r in report.replay if r.definition == "etl_orders")
    assert result.outcome == "ok" and "nothing ran yet" in result.message

    def bare(doc: dict[str, Any]) -> None:
        doc["task_instances"] = []

    report = _replayed(tmp_path / "b", head, _runs(tmp_path / "b" / "runs", bare), python)
    assert "AFL203" in {f.rule for f in report.findings}  # cannot judge: fails closed
    assert report.verdict.level.value == "error"
