"""Replay running DagRuns on Airflow's own scheduler code, in the user's Airflow interpreter.

Run by inflight-guard inside the DAG loader's process, which stays up after loading the DAGs when
the check has exports to replay (`loader.py`: one interpreter start, one Airflow import for both), or
on its own as `PYTHON scheduler.py REQUEST.json` (the interpreter the DAG loader ran in).
The request holds, per DAG, Airflow's own serialized form of the base DAG (the control) and of the
head DAG (what the loader serialized), and the exported running DagRuns with their task instances.
For each run and each side, the run and its task instances are written to a throwaway metadata
database (a SQLite copy of a template migrated once per Airflow version), then Airflow decides:

1. the deploy: `DagRun.verify_integrity` with the side's DAG, as the scheduler does when the DAG of
   an unpinned run changes (task instances of removed tasks become `removed`, new tasks get one);
2. a scheduling pass: `DagRun.update_state` (which runs `task_instance_scheduling_decisions` and
   the dependency checks), then `DagRun.schedule_tis` on the task instances it returns;
3. the drain: every task instance the pass scheduled or that was running finishes `success`, and the
   next pass runs, until the run reaches a final state or nothing is left to schedule.

The answer records, per side, the task instances each pass scheduled, the final task instance states
and the run's final state. Only ids, states and map indexes are read or written: no `conf`, XCom or
rendered field. Standard library and Airflow only, so it runs on any Python Airflow supports:

    {"airflow": "3.3.2", "startup": 3.1, "migrate": 0.0,
     "runs": [{"dag_id": ..., "run_id": ..., "base": TRACE, "head": TRACE} | {..., "error": "..."}]}
    TRACE: {"passes": [[[task_id, map_index], ...], ...], "final": {"task_id#map_index": state},
            "exported": {"task_id#map_index": state}, "state": "success"}
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from datetime import datetime, timezone
from typing import Any

MAX_PASSES = 200
ACTIVE = ("running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting", "deferred")


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _serializer() -> Any:
    from airflow.serialization import serialized_objects

    found = getattr(serialized_objects, "DagSerialization", None)  # Airflow 3
    return found if found is not None else serialized_objects.SerializedDAG  # Airflow 2


def serialize(dag: Any) -> dict[str, Any]:
    """Airflow's own JSON form of a DAG (what the scheduler reads from the metadata database)."""
    data: dict[str, Any] = _serializer().to_dict(dag)
    return data


def _migrate(work: str, template: str) -> float:
    """Migrate `work` (Airflow already points at it) and keep a copy as the version's template."""
    began = time.monotonic()
    from airflow import settings
    from airflow.utils import db

    db.initdb()
    settings.engine.dispose()
    os.makedirs(os.path.dirname(template), exist_ok=True)
    partial = f"{template}.{os.getpid()}"
    shutil.copyfile(work, partial)
    os.replace(partial, template)  # atomic: a parallel check sees the whole file or none
    return time.monotonic() - began


def _point_at(db_path: str) -> None:
    """Point Airflow's engine and sessions at `db_path` (set before Airflow is imported)."""
    url = f"sqlite:///{db_path}"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = url
    os.environ["AIRFLOW__CORE__SQL_ALCHEMY_CONN"] = url


_PARAMS: dict[Any, Any] = {}


def _kwargs(fn: Any, **values: Any) -> dict[str, Any]:
    """The `values` `fn` takes (the signatures differ between Airflow versions)."""
    params = _PARAMS.get(fn)
    if params is None:
        import inspect

        params = _PARAMS[fn] = inspect.signature(fn).parameters
    return {k: v for k, v in values.items() if k in params}


class Replayer:
    def __init__(self) -> None:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance

        self.DagRun = DagRun
        self.TI = TaskInstance
        from airflow.models.taskmap import TaskMap

        self.TaskMap = TaskMap
        self.airflow3 = (
            "dag_version_id" in __import__("inspect").signature(DagRun.verify_integrity).parameters
        )

    def trace(
        self, dag: Any, other: Any, run: dict[str, Any], session: Any, fail: bool = False
    ) -> dict[str, Any]:
        """What Airflow's scheduler does to this run with `dag` deployed. With `fail`, the first task
        instance running when the drain begins (by task id, map index) fails for good instead."""
        from sqlalchemy import delete, select, update

        DagRun, TI = self.DagRun, self.TI
        run_id = run["run_id"]
        # Each run is replayed alone: the DAG's rows of the previous trace go first.
        session.execute(delete(TI).where(TI.dag_id == dag.dag_id))
        session.execute(delete(self.TaskMap).where(self.TaskMap.dag_id == dag.dag_id))
        session.execute(delete(DagRun).where(DagRun.dag_id == dag.dag_id))
        session.commit()
        logical = _when(run.get("logical_date"))
        start = _when(run.get("data_interval_start")) or logical
        end = _when(run.get("data_interval_end")) or start
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunType

        try:
            run_type = DagRunType(str(run.get("run_type") or "manual"))
        except ValueError:
            run_type = DagRunType.MANUAL
        values = {
            "dag_id": dag.dag_id,
            "run_id": run_id,
            "logical_date": logical,
            "execution_date": logical or _when(run.get("start_date")),
            "run_after": _when(run.get("run_after")) or logical or _when(run.get("start_date")),
            "start_date": _when(run.get("start_date")),
            "state": DagRunState.RUNNING,
            "run_type": run_type,
            "data_interval": (start, end) if start and end else None,
            "external_trigger": run_type == DagRunType.MANUAL,
        }
        if self.airflow3:
            from airflow.models.dagrun import DagRunTriggeredByType

            values["triggered_by"] = DagRunTriggeredByType.TEST
        dr = DagRun(**_kwargs(DagRun.__init__, **values))
        session.add(dr)
        session.flush()
        exported: dict[str, str] = {}
        # An instance exported twice (overlapping pages): the later row stands.
        unique = {(str(raw["task_id"]), int(raw["map_index"])): raw for raw in run["tis"]}
        for (task_id, index), raw in unique.items():
            task = dag.task_dict.get(task_id) or other.task_dict.get(task_id)
            placeholder = task is None
            if placeholder:  # gone from both DAGs: written as the scheduler left it
                task = next(iter(dag.task_dict.values()))
            state = raw.get("state") or None
            ti = TI(
                task, **_kwargs(TI.__init__, run_id=run_id, state=state, map_index=index, dag_version_id=None)
            )
            if placeholder:
                ti.task_id = task_id
            ti.dag_id = dag.dag_id
            ti.try_number = int(raw.get("try_number") or 0)
            session.add(ti)
            exported[f"{task_id}#{index}"] = state or "none"
        self._expansions(dag, other, run, exported, session)
        session.flush()
        dr.dag = dag
        if self.airflow3:
            dr.verify_integrity(session=session, dag_version_id=None)
        else:
            dr.verify_integrity(session=session)
        session.flush()
        passes: list[list[list[Any]]] = []
        failed: list[Any] | None = None
        last: list[Any] = []
        for _ in range(MAX_PASSES):
            schedulable, _callback = dr.update_state(session=session, execute_callbacks=False)
            session.flush()
            if dr.state in ("success", "failed"):
                break
            if schedulable:
                dr.schedule_tis(schedulable, session=session)
            passes.append(sorted([ti.task_id, ti.map_index] for ti in schedulable))
            session.expire_all()  # `schedule_tis` updates rows in bulk: read the states afresh
            states = self._states(session, dag.dag_id, run_id)
            active = [(task_id, index) for task_id, index, state in states if state in ACTIVE]
            if not schedulable and not active and states == last:
                break  # nothing changes any more: the run is stuck where it is
            last = states
            if fail and failed is None and active:
                first = min(active)
                failed = list(first)
                session.execute(
                    update(TI)
                    .where(TI.dag_id == dag.dag_id, TI.run_id == run_id, TI.task_id == first[0])
                    .where(TI.map_index == first[1])
                    .values(state="failed"),
                    execution_options={"synchronize_session": False},
                )
            session.execute(
                update(TI)
                .where(TI.dag_id == dag.dag_id, TI.run_id == run_id, TI.state.in_(ACTIVE))
                .values(state="success"),
                execution_options={"synchronize_session": False},
            )
            session.expire_all()
            dr = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)
            ).one()
            dr.dag = dag
        while passes and not passes[-1]:
            passes.pop()
        final = {
            f"{task_id}#{index}": state for task_id, index, state in self._states(session, dag.dag_id, run_id)
        }
        state = str(dr.state)
        session.commit()
        return {
            "passes": passes,
            "final": final,
            "exported": exported,
            "state": state.split(".")[-1].lower(),
            "failed": failed,
        }

    def _states(self, session: Any, dag_id: str, run_id: str) -> list[tuple[str, int, str]]:
        """(task id, map index, state) of the run's task instances, read from the database (only these
        columns: loading whole task instances costs more than a scheduling pass)."""
        from sqlalchemy import select

        TI = self.TI
        rows = session.execute(
            select(TI.task_id, TI.map_index, TI.state).where(TI.dag_id == dag_id, TI.run_id == run_id)
        ).all()
        return sorted((str(t), int(i), _name(s)) for t, i, s in rows)

    def _expansions(
        self, dag: Any, other: Any, run: dict[str, Any], exported: dict[str, str], session: Any
    ) -> None:
        """What the upstreams of a mapped task pushed, as far as the export shows: the number of mapped
        instances it holds (XCom values are not exported; their count is what mapping reads)."""
        counts: dict[str, int] = {}
        for raw in run["tis"]:
            if int(raw["map_index"]) >= 0:
                counts[raw["task_id"]] = max(counts.get(raw["task_id"], 0), int(raw["map_index"]) + 1)
        written: set[str] = set()
        for task_id, count in counts.items():
            for task in (dag.task_dict.get(task_id), other.task_dict.get(task_id)):
                deps = getattr(task, "iter_mapped_dependencies", None)
                for up in deps() if deps is not None else ():
                    if up.task_id in written or exported.get(f"{up.task_id}#-1") != "success":
                        continue
                    written.add(up.task_id)
                    session.add(self.TaskMap(dag.dag_id, up.task_id, run["run_id"], -1, count, None))


def _name(state: Any) -> str:
    """A state as the answer writes it: `success`, ... or `none` (not run)."""
    if state is None:
        return "none"
    return str(getattr(state, "value", state))


def _signature(run: dict[str, Any], dag: Any, other: Any) -> Any:
    """What the scheduler's decisions for a run depend on here: its task instances' states and tries,
    its run type, and which tasks' start/end dates admit its logical date (`verify_integrity` creates
    only those). Runs with the same signature get the same decisions: traced once."""
    when = _when(run.get("logical_date"))
    windows = []
    for task in sorted([*dag.task_dict.values(), *other.task_dict.values()], key=lambda t: t.task_id):
        start, end = getattr(task, "start_date", None), getattr(task, "end_date", None)
        windows.append(when is None or ((start is None or start <= when) and (end is None or when <= end)))
    instances = sorted(
        (str(t["task_id"]), int(t["map_index"]), str(t.get("state") or ""), int(t.get("try_number") or 0))
        for t in run["tis"]
    )
    return (str(run.get("run_type") or ""), tuple(windows), tuple(instances))


def _repoint() -> None:
    """In a process where Airflow is already imported (the DAG loader's, `loader.py --serve`): make its
    engine and sessions follow the database URL `_point_at` set (Airflow reads the environment first)."""
    from airflow import settings

    settings.dispose_orm()
    settings.configure_vars()
    settings.configure_orm()


def _unsynced(settings: Any) -> None:
    """The scratch database is thrown away after the replay: SQLite need not wait for the disk on each
    commit (`synchronous=OFF`, journal in memory). What Airflow reads and writes is unchanged."""
    from sqlalchemy import event

    engine = settings.get_engine() if hasattr(settings, "get_engine") else settings.engine

    def fast(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA journal_mode=MEMORY")
        cursor.close()

    event.listen(engine, "connect", fast)
    engine.dispose()  # pooled connections were opened before: the next ones get the pragmas


def answer(request: dict[str, Any], in_process: bool = False) -> dict[str, Any]:
    """Replay the request's runs and return the answer (see the module's text). `in_process`: Airflow
    is already imported in this interpreter (the loader's); its database is pointed afresh."""
    began = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="inflight-guard-airflow-db-")
    try:
        version = _version()
        cache = request.get("cache") or scratch
        template = os.path.join(cache, f"airflow-{version}.db")
        work = os.path.join(scratch, "replay.db")
        fresh = os.path.exists(template)
        if fresh:
            shutil.copyfile(template, work)
        _point_at(work)
        if in_process:
            _repoint()
        migrate = 0.0 if fresh else _migrate(work, template)
        from airflow import settings

        _unsynced(settings)

        out: dict[str, Any] = {
            "airflow": version,
            "startup": 0.0,
            "migrate": round(migrate, 3),
            "in_process": in_process,
            "runs": [],
        }
        deserialize = _serializer().from_dict
        dags: dict[str, dict[str, Any]] = {}
        replayer = Replayer()
        traced: dict[tuple[str, str, Any], dict[str, Any]] = {}
        out["startup"] = round(time.monotonic() - began, 3)
        session = settings.Session()
        try:
            for run in request["runs"]:
                entry: dict[str, Any] = {"dag_id": run["dag_id"], "run_id": run["run_id"]}
                try:
                    pair = dags.get(run["dag_id"])
                    if pair is None:
                        given = request["dags"][run["dag_id"]]
                        pair = dags[run["dag_id"]] = {s: deserialize(given[s]) for s in ("base", "head")}
                    for side, dag, other in (
                        ("base", pair["base"], pair["head"]),
                        ("head", pair["head"], pair["base"]),
                    ):
                        for fail in (False, True):
                            name = f"{side}_fail" if fail else side
                            key = (run["dag_id"], name, _signature(run, dag, other))
                            if key not in traced:
                                traced[key] = replayer.trace(dag, other, run, session, fail)
                            entry[name] = traced[key]
                except Exception as exc:
                    session.rollback()
                    entry["error"] = f"{type(exc).__name__}: {exc}"[:400]
                out["runs"].append(entry)
        finally:
            session.close()
            settings.dispose_orm()  # the scratch database goes next: no connection is left open on it
        out["seconds"] = round(time.monotonic() - began, 3)
        out["traces"] = len(traced)
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    warnings.simplefilter("ignore")
    began = time.monotonic()
    result = answer(request)
    result["seconds"] = round(time.monotonic() - began, 3)
    with open(request["out"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(3)
