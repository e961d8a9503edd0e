"""Airflow's REST API: export running DagRuns with their task instances, count live runs.

v2 (Airflow 3) under `/api/v2`, v1 (Airflow 2) under `/api/v1`; `auto` asks `/api/v2/version`
first. Credentials from the environment: `AIRFLOW_API_TOKEN` (a bearer token), else
`AIRFLOW_USERNAME` / `AIRFLOW_PASSWORD` (v2: exchanged at `/auth/token`; v1: basic auth).
The files hold what `check --histories` reads; a run's `conf`, notes and rendered fields
(production data) are dropped before writing.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bot.credentials import credential
from bot.engines.stepfunctions.export import safe_name, writer
from bot.errors import UserError
from bot.model import InFlight

PAGE = 100
DROPPED = {
    "conf",
    "note",
    "rendered_fields",
    "rendered_map_index",
    "hostname",
    "unixname",
    "pid",
    "executor_config",
    "trigger",
    "triggerer_job",
    "triggering_user_name",
}


class Client:
    """A minimal REST client: JSON GETs with paging, one-line errors that never echo a body."""

    def __init__(self, url: str, api: str = "auto", timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"airflow url {url!r}: expected http(s)://HOST[:PORT]")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers: dict[str, str] = {"Accept": "application/json"}
        token = credential("AIRFLOW_API_TOKEN")
        user, password = credential("AIRFLOW_USERNAME"), credential("AIRFLOW_PASSWORD")
        self.api = api if api != "auto" else self._detect()
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            if self.api == "v2":
                self.headers["Authorization"] = f"Bearer {self._token(user, password)}"
            else:
                pair = base64.b64encode(f"{user}:{password}".encode()).decode()
                self.headers["Authorization"] = f"Basic {pair}"

    def _open(self, request: urllib.request.Request, what: str) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            hint = (
                " (set AIRFLOW_API_TOKEN or AIRFLOW_USERNAME/AIRFLOW_PASSWORD)"
                if exc.code in (401, 403)
                else ""
            )
            raise UserError(f"airflow {what}: HTTP {exc.code} {exc.reason}{hint}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"airflow {what}: cannot reach {self.url} ({reason})") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"airflow {what}: the answer is not JSON") from None

    def _detect(self) -> str:
        for api in ("v2", "v1"):
            request = urllib.request.Request(f"{self.url}/api/{api}/version", headers=self.headers)
            try:
                self._open(request, f"GET /api/{api}/version")
                return api
            except UserError:
                continue
        raise UserError(f"airflow: {self.url} answers neither /api/v2/version nor /api/v1/version")

    def _token(self, user: str, password: str) -> str:
        body = json.dumps({"username": user, "password": password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        answer = self._open(request, "POST /auth/token")
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise UserError("airflow POST /auth/token: no access_token in the answer")
        return token

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        full = f"/api/{self.api}{path}"
        request = urllib.request.Request(f"{self.url}{full}{query}", headers=self.headers)
        return self._open(request, f"GET {full}")

    def pages(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.get(path, {**(params or {}), "limit": PAGE, "offset": offset})
            items = page.get(key) if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise UserError(f"airflow GET /api/{self.api}{path}: no `{key}` in the answer")
            yield from items
            offset += len(items)
            total = page.get("total_entries")
            if not items or (isinstance(total, int) and offset >= total):
                return


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _clean(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in DROPPED}


def export(
    url: str,
    api: str,
    dag_ids: Sequence[str],
    out: str,
    states: Sequence[str] = ("running", "queued"),
    progress: Callable[[str], None] | None = None,
) -> int:
    """Write one file per DAG (`OUT/DAG_ID.json`) with its runs in `states` and their task instances.

    Returns how many runs were written.
    """
    client = Client(url, api)
    write = writer(out)
    params = {"state": list(states), "order_by": "start_date"}  # a stable order while paging
    if dag_ids:
        runs = [r for d in dag_ids for r in client.pages(f"/dags/{_q(d)}/dagRuns", "dag_runs", params)]
    else:
        runs = list(client.pages("/dags/~/dagRuns", "dag_runs", params))
    by_dag: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_dag.setdefault(str(run.get("dag_id")), []).append(run)
    # A DAG asked for with no run in `states` gets a document too: it says none was found (with the
    # default states, a check then knows no DagRun of it runs).
    empty = sorted(set(dag_ids) - set(by_dag))
    written = 0
    for dag_id, dag_runs in sorted(by_dag.items()):
        instances: list[dict[str, Any]] = []
        for run in dag_runs:
            path = f"/dags/{_q(dag_id)}/dagRuns/{_q(str(run['dag_run_id']))}/taskInstances"
            instances += [_clean(ti) for ti in client.pages(path, "task_instances")]
            written += 1
            if progress is not None:
                progress(str(run["dag_run_id"]))
        document = {
            "dag_runs": [_clean(r) for r in dag_runs],
            "task_instances": instances,
            "api": client.api,
            "states": list(states),
        }
        write(f"{safe_name(dag_id)}.json", json.dumps(document, indent=1, ensure_ascii=False).encode())
    for dag_id in empty:
        document = {
            "dag_id": dag_id,
            "dag_runs": [],
            "task_instances": [],
            "api": client.api,
            "states": list(states),
        }
        write(f"{safe_name(dag_id)}.json", json.dumps(document, indent=1, ensure_ascii=False).encode())
    return written


def live_figures(url: str, api: str, dag_ids: Sequence[str]) -> dict[str, InFlight]:
    """Running DagRuns per DAG: count and the oldest start."""
    client = Client(url, api)
    out: dict[str, InFlight] = {}
    for dag_id in dag_ids:
        try:
            page = client.get(
                f"/dags/{_q(dag_id)}/dagRuns", {"state": "running", "limit": 1, "order_by": "start_date"}
            )
        except UserError as exc:
            # A 404 may be a DAG not deployed yet, or a wrong URL or API version: never read it as 0.
            if "HTTP 404" in exc.message:
                out[dag_id] = InFlight(count=None, source=f"Airflow REST {client.api}: {exc.message}")
                continue
            raise
        runs = page.get("dag_runs") if isinstance(page, dict) else None
        total = page.get("total_entries") if isinstance(page, dict) else None
        oldest = runs[0].get("start_date") if isinstance(runs, list) and runs else None
        out[dag_id] = InFlight(
            count=total if isinstance(total, int) else None,
            oldest_start=oldest if isinstance(oldest, str) else None,
            source=f"Airflow REST {client.api} (running DagRuns)",
        )
    return out


def last_scheduled_runs(url: str, api: str, dag_ids: Sequence[str]) -> dict[str, list[str]]:
    """dag_id → [data_interval_start, data_interval_end] of its latest scheduled run, asked live: where
    the scheduler continues (catchup is counted from there). A DAG the server does not know has none."""
    client = Client(url, api)
    v2 = client.api == "v2"
    params: dict[str, Any] = {"limit": 1, "order_by": "-logical_date" if v2 else "-execution_date"}
    if v2:
        params["run_type"] = "scheduled"
    out: dict[str, list[str]] = {}
    for dag_id in dag_ids:
        try:
            page = client.get(f"/dags/{_q(dag_id)}/dagRuns", params)
        except UserError as exc:
            if "HTTP 404" in exc.message:
                continue
            raise
        runs = page.get("dag_runs") if isinstance(page, dict) else None
        run = runs[0] if isinstance(runs, list) and runs and isinstance(runs[0], dict) else {}
        if not v2 and run.get("run_type") not in (None, "scheduled", "backfill", "dataset_triggered"):
            continue  # v1 cannot filter by type: a manual newest run says nothing of the schedule
        start, end = run.get("data_interval_start"), run.get("data_interval_end")
        if isinstance(start, str) and isinstance(end, str):
            out[dag_id] = [start, end]
    return out
