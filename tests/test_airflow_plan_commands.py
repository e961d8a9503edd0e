"""Every `airflow` command and REST call the Airflow plan emits runs as written on real Airflow 2 and 3.

One migrated metadata database per version (module fixture), holding the head DAGs of a change
that needs every part of the plan (a removed and a renamed task: the drain; catchup turned on: the
cutover; a new DAG with catchup: its discovery). The plan's commands run through Airflow's own CLI
parser and its REST calls through the REST app in-process (tests/airflow_probe.py, in the venv's
interpreter). The drain's premise is checked with the scheduler's own query: a paused DAG's
running run is not examined, an unpaused one's is.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_2, AIRFLOW_3, airflow_python
from conftest import ROOT
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

PROBE = ROOT / "tests" / "airflow_probe.py"
CLI = re.compile(r"`(airflow [^`]+)`")
REST = re.compile(r"`(GET|POST|PATCH) \$AIRFLOW_URL(/api/v[12]/[^`]+)`(?: with body `([^`]+)`)?")

IMPORTS = {
    3: "from airflow.providers.standard.operators.bash import BashOperator\nfrom airflow.sdk import DAG\n",
    2: "from airflow import DAG\nfrom airflow.operators.bash import BashOperator\n",
}


def _orders(major: int, head: bool) -> str:
    lines = [
        "from datetime import datetime",
        "",
        IMPORTS[major],
        f'with DAG("orders", start_date=datetime(2024, 1, 1), schedule="@daily", catchup={head}):',
        '    extract = BashOperator(task_id="extract", bash_command="echo extract")',
        f'    load = BashOperator(task_id="{"load_orders" if head else "load"}", bash_command="echo load")',
    ]
    if not head:
        lines += ['    audit = BashOperator(task_id="audit", bash_command="echo audit")', "    load >> audit"]
    lines.append("    extract >> load")
    return "\n".join(lines) + "\n"


def _reports(major: int) -> str:
    return (
        f"from datetime import datetime\n\n{IMPORTS[major]}\n"
        'with DAG("reports", start_date=datetime(2024, 1, 1), schedule="@weekly", catchup=True):\n'
        '    BashOperator(task_id="build", bash_command="echo build")\n'
    )


def _plan_texts(tmp: Path, major: int, version: str) -> tuple[Report, list[str]]:
    repo = make_repo(
        tmp / "repo",
        {"dags/orders.py": _orders(major, False)},
        {"dags/orders.py": _orders(major, True), "dags/reports.py": _reports(major)},
    )
    config = tmp / "inflight-guard.yml"
    config.write_text(f"version: 1\nairflow: {{load: false, version: '{version}'}}\n")
    report = run_check(
        CheckOptions(
            repo=Path(repo.working_dir), base="main", config=config, replay=ReplayOptions(cache=None)
        )
    )
    return report, [*report.plan.runbook, *report.plan.rollback, *report.plan.canary]


def _env(home: Path, major: int) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
    }
    if major >= 3:
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    else:
        env["AIRFLOW__API__AUTH_BACKENDS"] = "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth"
    return env


@pytest.fixture(scope="module", params=[3, 2], ids=["airflow3", "airflow2"])
def ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The plan of the change for one Airflow version, and what that Airflow answered to it."""
    major = int(request.param)
    version = AIRFLOW_3 if major >= 3 else AIRFLOW_2
    python = airflow_python(version)
    tmp = tmp_path_factory.mktemp(f"airflow{major}")
    report, texts = _plan_texts(tmp, major, version)
    home = tmp / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "orders.py").write_text(_orders(major, True))
    (home / "dags" / "reports.py").write_text(_reports(major))
    env = _env(home, major)
    airflow = str(Path(python).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    commands = [shlex.split(c)[1:] for t in texts for c in CLI.findall(t)]
    calls = [
        [method, path, json.loads(body) if body else None]
        for t in texts
        for method, path, body in REST.findall(t)
    ]
    setup = [["dags", "reserialize"]]
    if major < 3:
        setup.append(["users", "create", "-u", "probe", "-p", "probe", "-r", "Admin", "-e", "p@example.com"])
        setup[-1] += ["-f", "p", "-l", "p"]
    out = tmp / "answer.json"
    ask = tmp / "request.json"
    trigger = ["POST", calls[0][1].split("/dags/")[0] + "/dags/orders/dagRuns", None]
    body = {"logical_date": None} if major >= 3 else {"conf": {}}
    ask.write_text(
        json.dumps({"out": str(out), "cli": setup + commands, "rest": [*calls, [*trigger[:2], body]]})
    )
    proc = subprocess.run([python, str(PROBE), str(ask)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer: dict[str, Any] = json.loads(out.read_text())
    # the scheduler's query, in a fresh process, over the runs the plan's trigger commands created
    ask.write_text(json.dumps({"out": str(out), "examine": "orders"}))
    proc = subprocess.run([python, str(PROBE), str(ask)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer["examine"] = json.loads(out.read_text())["examine"]
    return {
        "major": major,
        "report": report,
        "texts": texts,
        "commands": commands,
        "calls": calls,
        "answer": answer,
        "setup": len(setup),
    }


def test_the_plan_names_every_step(ran: dict[str, Any]) -> None:
    verbs = {" ".join(c[:2]) for c in ran["commands"]}
    want = {"dags list-runs", "dags pause", "dags unpause", "dags next-execution", "dags trigger"}
    want |= {"dags list-import-errors", "config get-value"}
    want.add("backfill create" if ran["major"] >= 3 else "dags backfill")
    assert want <= verbs, verbs
    methods = {(m, "dagRuns" in p) for m, p, _ in ran["calls"]}
    assert {("GET", True), ("PATCH", False), ("POST", True)} <= methods, ran["calls"]
    text = "\n".join(ran["texts"])
    assert "DAG_ID" not in text
    assert "min_serialized_dag_update_interval" not in text
    assert ("refresh_interval" if ran["major"] >= 3 else "dag_dir_list_interval") in text  # the new file
    # never "pause, then wait until nothing runs": the drain keeps the DAG unpaused while runs run
    assert not re.search(r"pause it so no new run starts", text)
    assert "_v2" not in text and not ran["report"].plan.outline.count("_v2")


def test_every_cli_command_runs(ran: dict[str, Any]) -> None:
    results = ran["answer"]["cli"]
    assert len(results) == ran["setup"] + len(ran["commands"])
    for r in results:
        assert r["code"] == 0, r
        assert "Traceback" not in r["stderr"], r
    by_verb = {" ".join(r["argv"][:2]): r for r in results}
    assert re.search(r"\d{4}-\d\d-\d\d", by_verb["dags next-execution"]["stdout"])
    assert by_verb["config get-value"]["stdout"].strip().splitlines()[-1].strip().isdigit()


def test_every_rest_call_answers(ran: dict[str, Any]) -> None:
    results = ran["answer"]["rest"]
    assert len(results) == len(ran["calls"]) + 1
    for r in results:
        assert 200 <= r["status"] < 300, r
    for r in results:
        method, path, _ = r["call"]
        if method == "GET" and "dagRuns" in path:
            assert "total_entries" in json.loads(r["body"]), r
        if method == "POST":
            assert json.loads(r["body"])["dag_id"] in ("orders", "reports"), r


def test_a_paused_dags_running_run_is_not_scheduled(ran: dict[str, Any]) -> None:
    """Why the drain keeps the DAG unpaused: the scheduler's own query skips a paused DAG's runs."""
    examined = ran["answer"]["examine"]
    newest = max(examined["unpaused"], default=None)
    assert examined["unpaused"], examined
    assert newest not in examined["paused"], examined
    assert examined["paused"] == [], examined
