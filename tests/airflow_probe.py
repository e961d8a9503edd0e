"""Runs inside a real Airflow venv (its own interpreter): the runbook's `airflow` commands through
Airflow's own CLI parser, and its REST calls through the REST app in-process — Airflow 3's
api-server (FastAPI TestClient), Airflow 2's webserver (Flask test client). One process per
version: the commands run as the `airflow` entry point runs them, without paying its start-up each
time. Prints one JSON answer: each command's exit code and output, each call's status and body.

    python airflow_probe.py request.json
    # {"out": path, "cli": [[argv...], ...], "rest": [[method, path, body], ...], "examine": dag_id}
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
import traceback
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any


def run_cli(argv: list[str]) -> dict[str, Any]:
    from airflow.cli import cli_parser

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = cli_parser.get_parser().parse_args(argv)
            args.func(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:
            code = 1
            traceback.print_exc()
    return {"argv": argv, "code": code, "stdout": out.getvalue()[-3000:], "stderr": err.getvalue()[-3000:]}


def rest_client() -> Any:
    import airflow

    if airflow.__version__.startswith("2."):
        from airflow.www.app import create_app as create_www

        flask = create_www(testing=True).test_client()
        # basic auth as the user the request's setup commands create (`users create -u probe`)
        auth = {"Authorization": "Basic " + base64.b64encode(b"probe:probe").decode()}

        def call2(method: str, path: str, body: Any) -> tuple[int, str]:
            r = flask.open(path, method=method, json=body, headers=auth)
            return r.status_code, r.get_data(as_text=True)

        return call2
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app("core"))

    def call3(method: str, path: str, body: Any) -> tuple[int, str]:
        r = client.request(method, path, json=body)
        return r.status_code, r.text

    return call3


def examined(dag_id: str) -> dict[str, list[str]]:
    """Which running runs of `dag_id` the scheduler's own query picks to schedule, paused and not:
    the DAG's newest run (one the request's commands triggered) is set running first."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    out: dict[str, list[str]] = {}
    for paused in (True, False):
        with create_session() as session:
            runs = session.query(DagRun).filter(DagRun.dag_id == dag_id).all()
            newest = max(runs, key=lambda r: r.id)
            newest.state = DagRunState.RUNNING
            if hasattr(newest, "run_after"):  # due an hour ago: the query compares it with now
                newest.run_after = newest.run_after - timedelta(hours=1)
            session.query(DagModel).filter(DagModel.dag_id == dag_id).update({"is_paused": paused})
            session.flush()
            if hasattr(DagRun, "get_running_dag_runs_to_examine"):  # Airflow 3
                picked = list(DagRun.get_running_dag_runs_to_examine(session))
            else:  # Airflow 2
                picked = list(DagRun.next_dagruns_to_examine(DagRunState.RUNNING, session))
            out["paused" if paused else "unpaused"] = [r.run_id for r in picked if r.dag_id == dag_id]
    return out


def main() -> int:
    warnings.simplefilter("ignore")
    request = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    answer: dict[str, Any] = {"cli": [run_cli(list(a)) for a in request.get("cli", [])], "rest": []}
    if request.get("examine"):  # ask alone: the CLI commands leave their sessions in this process
        answer["examine"] = examined(request["examine"])
    if request.get("rest"):
        call = rest_client()
        for method, path, body in request["rest"]:
            status, text = call(method, path, body)
            answer["rest"].append({"call": [method, path, body], "status": status, "body": text[:3000]})
    Path(request["out"]).write_text(json.dumps(answer), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
