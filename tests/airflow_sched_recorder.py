"""Record DagRuns mid-flight and what Airflow's scheduler does next, for the scheduler-replay tests.

Run in a venv of real apache-airflow (not by the tool): `PYTHON tests/airflow_sched_recorder.py OUT.json`.
For each scenario (a base DAG file, a head DAG file, how many scheduling passes the run has made),
the base file is parsed by a DagBag and written to a fresh metadata database the way the DAG
processor writes it; a DagRun is created by Airflow (`create_dagrun`); the scheduler's own calls
(`DagRun.update_state`, `schedule_tis`) advance it pass by pass, tasks finishing `success` between
passes and the last pass's tasks left `running`. That state is exported in the REST API's shape.

Two identical runs are made. The truth is what Airflow then does to them: the control run goes on
with the base DAG; for the other, the head file is parsed and written as a new DAG version, the run's
DAG is re-read from the database and `verify_integrity` runs on it (the scheduler's step when an
unpinned run's DAG changes), and both go on pass by pass until they end. Each scenario declares the
kind of change it is (`broken`, `diverged`, `ok`); the recorder refuses to write one whose recorded
passes contradict that (identical traces declared as a change, different traces declared `ok`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STEP = (
    "\n\ndef Step(task_id, **kwargs):\n"
    '    return BashOperator(task_id=task_id, bash_command="echo " + task_id, **kwargs)\n\n\n'
)
AIRFLOW3_IMPORTS = (
    "from datetime import datetime\n"
    "from airflow.sdk import DAG, TaskGroup, task\n"
    "from airflow.providers.standard.operators.bash import BashOperator\n" + STEP
)
AIRFLOW2_IMPORTS = (
    "from datetime import datetime\n"
    "from airflow import DAG\n"
    "from airflow.decorators import task\n"
    "from airflow.utils.task_group import TaskGroup\n"
    "from airflow.operators.bash import BashOperator\n" + STEP
)
OPEN = 'with DAG("{dag_id}", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):\n'
CHAIN = (
    '    start = Step(task_id="start")\n'
    '    extract = Step(task_id="extract")\n'
    '    clean = Step(task_id="clean")\n'
    '    load = Step(task_id="load")\n'
    '    end = Step(task_id="end")\n'
    "    start >> extract >> clean >> load >> end\n"
)
FORK = (
    '    start = Step(task_id="start")\n'
    '    fast = Step(task_id="fast")\n'
    '    slow1 = Step(task_id="slow1")\n'
    '    slow2 = Step(task_id="slow2")\n'
    '    join = Step(task_id="join")\n'
    "    start >> fast >> join\n"
    "    start >> slow1 >> slow2 >> join\n"
)
MAPPED = (
    '    start = Step(task_id="start")\n'
    "    @task\n"
    "    def work(x):\n"
    "        return x\n"
    '    done = Step(task_id="done")\n'
    "    start >> work.expand(x=[1, 2, 3]) >> done\n"
)
TASKFLOW = (
    "    @task\n"
    "    def fetch():\n"
    "        return 1\n"
    "    @task\n"
    "    def shape(v):\n"
    "        return v\n"
    "    @task\n"
    "    def store(v):\n"
    "        return v\n"
    "    store(shape(fetch()))\n"
)
GROUP = (
    '    start = Step(task_id="start")\n'
    '    with TaskGroup("prep") as prep:\n'
    '        a = Step(task_id="a")\n'
    '        b = Step(task_id="b")\n'
    "        a >> b\n"
    '    end = Step(task_id="end")\n'
    "    start >> prep >> end\n"
)
FACTORY = (
    "def steps(names):\n"
    "    ops = [Step(task_id=n) for n in names]\n"
    "    for up, down in zip(ops, ops[1:]):\n"
    "        up >> down\n"
    "    return ops\n"
)


def _sub(body: str, old: str, new: str) -> str:
    assert old in body, (old, body)
    return body.replace(old, new)


# name: (shape, edit of the body, passes before the export, declared kind)
SCENARIOS: dict[str, tuple[str, Any, int, str]] = {
    "unchanged": ("chain", lambda b: b, 2, "ok"),
    "new_root_task": ("chain", lambda b: b + '    audit = Step(task_id="audit")\n', 2, "broken"),
    "new_leaf_after_end": (
        "chain",
        lambda b: b + '    notify = Step(task_id="notify")\n    end >> notify\n',
        2,
        "diverged",
    ),
    "new_leaf_mid_run": (
        "chain",
        lambda b: b + '    report = Step(task_id="report")\n    extract >> report\n',
        3,
        "broken",
    ),
    "upstream_inserted_before_finished": (
        "chain",
        lambda b: _sub(b, "start >> extract", 'start >> Step(task_id="audit") >> extract'),
        3,
        "broken",
    ),
    "upstream_inserted_before_pending": (
        "chain",
        lambda b: _sub(b, "clean >> load", 'clean >> Step(task_id="dedupe") >> load'),
        2,
        "broken",
    ),
    "edge_removed": (
        "chain",
        lambda b: _sub(b, "clean >> load >> end", "clean\n    load >> end"),
        3,
        "broken",
    ),
    "edge_added_to_finished_task": ("chain", lambda b: b + "    start >> clean\n", 3, "ok"),
    "edge_added_redundant": ("chain", lambda b: b + "    extract >> load\n", 2, "ok"),
    "trigger_rule_all_done_runs_after_failure": (
        "chain",
        lambda b: _sub(b, 'task_id="load")', 'task_id="load", trigger_rule="all_done")'),
        3,
        "broken",
    ),
    "trigger_rule_always": (
        "chain",
        lambda b: _sub(b, 'task_id="load")', 'task_id="load", trigger_rule="always")'),
        2,
        "broken",
    ),
    "trigger_rule_one_success": (
        "fork",
        lambda b: _sub(b, 'task_id="join")', 'task_id="join", trigger_rule="one_success")'),
        2,
        "broken",
    ),
    "finished_task_removed": (
        "chain",
        lambda b: _sub(_sub(b, '    start = Step(task_id="start")\n', ""), "start >> extract", "extract"),
        3,
        "broken",
    ),
    "pending_task_removed": (
        "chain",
        lambda b: _sub(_sub(b, '    end = Step(task_id="end")\n', ""), "load >> end", "load"),
        2,
        "broken",
    ),
    "pending_task_renamed": ("chain", lambda b: _sub(b, 'task_id="load"', 'task_id="load_v2"'), 2, "broken"),
    "running_task_removed": (
        "chain",
        lambda b: _sub(
            _sub(b, '    clean = Step(task_id="clean")\n', ""), "extract >> clean >> load", "extract >> load"
        ),
        3,
        "broken",
    ),
    "fork_branch_removed": (
        "fork",
        lambda b: _sub(b, "    start >> slow1 >> slow2 >> join\n", "    start >> slow1 >> slow2\n"),
        2,
        "broken",
    ),
    "mapped_list_shrinks": ("mapped", lambda b: _sub(b, "[1, 2, 3]", "[1, 2]"), 3, "broken"),
    "mapped_list_grows": ("mapped", lambda b: _sub(b, "[1, 2, 3]", "[1, 2, 3, 4]"), 2, "ok"),
    "mapped_made_unmapped": ("mapped", lambda b: _sub(b, "work.expand(x=[1, 2, 3])", "work(1)"), 2, "ok"),
    "taskflow_new_leaf_after_store": (
        "taskflow",
        lambda b: _sub(
            b,
            "    store(shape(fetch()))\n",
            "    s = store(shape(fetch()))\n    @task\n    def ping():\n        return 0\n    s >> ping()\n",
        ),
        1,
        "diverged",
    ),
    "taskflow_new_root": (
        "taskflow",
        lambda b: b + "    @task\n    def sidecar():\n        return 0\n    sidecar()\n",
        2,
        "broken",
    ),
    "group_task_added_mid": (
        "group",
        lambda b: _sub(
            b, "        a >> b\n", '        a >> b\n        c = Step(task_id="c")\n        a >> c\n'
        ),
        2,
        "broken",
    ),
    "factory_new_leaf_after_end": (
        "factory",
        lambda b: _sub(b, '["s1", "s2", "s3", "s4"]', '["s1", "s2", "s3", "s4", "s5"]'),
        2,
        "diverged",
    ),
    "factory_step_inserted": (
        "factory",
        lambda b: _sub(b, '["s1", "s2", "s3", "s4"]', '["s1", "s0", "s2", "s3", "s4"]'),
        2,
        "broken",
    ),
    "new_leaf_at_first_pass": (
        "chain",
        lambda b: b + '    notify = Step(task_id="notify")\n    end >> notify\n',
        1,
        "diverged",
    ),
}


def _body(shape: str) -> tuple[str, str]:
    """(module-level prelude, DAG body) of a shape."""
    if shape == "factory":
        return FACTORY, '    steps(["s1", "s2", "s3", "s4"])\n'
    return "", {"chain": CHAIN, "fork": FORK, "mapped": MAPPED, "taskflow": TASKFLOW, "group": GROUP}[shape]


def _file(imports: str, prelude: str, dag_id: str, body: str) -> str:
    return imports + prelude + OPEN.format(dag_id=dag_id) + body


CONTRADICTED: list[str] = []
ACTIVE = ("running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting", "deferred")


class Airflow:
    def __init__(self) -> None:
        import airflow
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance

        self.version = str(airflow.__version__)
        self.v3 = self.version.startswith("3")
        self.DagRun, self.TI = DagRun, TaskInstance

    def bag(self, folder: str) -> Any:
        try:
            from airflow.dag_processing.dagbag import DagBag
        except ImportError:
            from airflow.models.dagbag import DagBag
        return (
            DagBag(dag_folder=folder, include_examples=False)
            if not self.v3
            else DagBag(dag_folder=folder, bundle_path=Path(folder))
        )

    def write(self, folder: str, session: Any) -> None:
        """Write the folder's DAGs to the database as the DAG processor does."""
        bag = self.bag(folder)
        assert not bag.import_errors, bag.import_errors
        if self.v3:
            from airflow.dag_processing.dagbag import sync_bag_to_db

            sync_bag_to_db(bag, "dags-folder", None, session=session)
        else:
            bag.sync_to_db(session=session)
        session.commit()

    def scheduler_dag(self, dag_id: str, session: Any) -> Any:
        """The DAG as the scheduler reads it: the newest serialized version in the database."""
        from airflow.models.serialized_dag import SerializedDagModel

        if self.v3:
            return SerializedDagModel.get_dag(dag_id, session=session)
        return SerializedDagModel.get(dag_id, session=session).dag

    def create(self, dag: Any, run_id: str, day: int, session: Any) -> Any:
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunType

        when = datetime(2026, 1, day, tzinfo=UTC)
        if self.v3:
            from airflow.models.dagrun import DagRunTriggeredByType

            dr = dag.create_dagrun(
                run_id=run_id,
                logical_date=when,
                data_interval=(when, when),
                run_after=when,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
                state=DagRunState.RUNNING,
                start_date=when,
                session=session,
            )
        else:
            dr = dag.create_dagrun(
                run_id=run_id,
                execution_date=when,
                data_interval=(when, when),
                run_type=DagRunType.MANUAL,
                state=DagRunState.RUNNING,
                start_date=when,
                external_trigger=True,
                session=session,
            )
        session.commit()
        dr.dag = dag
        return dr

    def step(self, dr: Any, dag: Any, session: Any) -> tuple[Any, list[list[Any]] | None]:
        """One scheduler pass: (the run re-read, the task instances scheduled; None when it ended)."""
        dr.dag = dag
        schedulable, _ = dr.update_state(session=session, execute_callbacks=False)
        session.flush()
        if str(dr.state).split(".")[-1].lower() in ("success", "failed"):
            return dr, None
        if schedulable:
            dr.schedule_tis(schedulable, session=session)
        session.commit()
        return dr, sorted([ti.task_id, ti.map_index] for ti in schedulable)

    def tis(self, dr: Any, session: Any) -> list[Any]:
        from sqlalchemy import select

        TI = self.TI
        session.expire_all()  # Airflow's sessions keep objects past a commit: read the rows afresh
        return list(session.scalars(select(TI).where(TI.dag_id == dr.dag_id, TI.run_id == dr.run_id)))

    def finish(self, dr: Any, session: Any, state: str) -> None:
        for ti in self.tis(dr, session):
            if ti.state in ACTIVE:
                ti.state = state
        session.commit()

    def drain(self, dr: Any, dag: Any, session: Any, fail: bool = False) -> dict[str, Any]:
        """Pass after pass, every task instance the scheduler sent finishing `success`; with `fail`,
        the first one running when the drain begins (by task id, map index) fails for good."""
        passes: list[list[Any]] = []
        failed = None
        last: list[Any] = []
        for _ in range(100):
            dr, scheduled = self.step(dr, dag, session)
            if scheduled is None:
                break
            passes.append(scheduled)
            every = self.tis(dr, session)
            active = [ti for ti in every if ti.state in ACTIVE]
            states = sorted((ti.task_id, ti.map_index, str(ti.state)) for ti in every)
            if not scheduled and not active and states == last:
                break  # nothing changes any more
            last = states
            if fail and failed is None and active:
                first = min(active, key=lambda t: (t.task_id, t.map_index))
                first.state = "failed"
                failed = [first.task_id, first.map_index]
                session.commit()
            self.finish(dr, session, "success")
        while passes and not passes[-1]:
            passes.pop()
        final = {f"{ti.task_id}#{ti.map_index}": str(ti.state or "none") for ti in self.tis(dr, session)}
        return {
            "passes": passes,
            "final": final,
            "state": str(dr.state).split(".")[-1].lower(),
            "failed": failed,
        }


def _export(af: Airflow, dr: Any, session: Any) -> dict[str, Any]:
    """The run and its task instances in the REST API's shape (v2 on Airflow 3, v1 on Airflow 2)."""
    date_key = "logical_date" if af.v3 else "execution_date"
    run = {
        "dag_run_id": dr.run_id,
        "dag_id": dr.dag_id,
        date_key: "2026-01-01T00:00:00+00:00",
        "data_interval_start": "2026-01-01T00:00:00+00:00",
        "data_interval_end": "2026-01-01T00:00:00+00:00",
        "start_date": "2026-01-01T00:00:00+00:00",
        "run_type": "manual",
        "state": "running",
    }
    if af.v3:
        run.update(run_after="2026-01-01T00:00:00+00:00", bundle_version=None)
    tis = [
        {
            "dag_id": ti.dag_id,
            "dag_run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "state": ti.state,
            "try_number": ti.try_number,
        }
        for ti in sorted(af.tis(dr, session), key=lambda t: (t.task_id, t.map_index))
    ]
    return {"dag_runs": [run], "task_instances": tis}


def record(name: str, spec: tuple[str, Any, int, str], af: Airflow, work: str) -> dict[str, Any]:
    from airflow import settings

    shape, edit, passes, kind = spec
    imports = AIRFLOW3_IMPORTS if af.v3 else AIRFLOW2_IMPORTS
    prelude, body = _body(shape)
    dag_id = name
    base_text = _file(imports, prelude, dag_id, body)
    head_text = _file(imports, prelude, dag_id, edit(body))
    folder = Path(work) / name
    folder.mkdir(parents=True)
    path = folder / f"{name}.py"
    path.write_text(base_text)
    session = settings.Session()
    af.write(str(folder), session)
    base = af.scheduler_dag(dag_id, session)
    names = ("manual__inflight", "manual__control", "manual__inflight_fail", "manual__control_fail")
    runs = {rid: af.create(base, rid, day, session) for day, rid in enumerate(names, start=1)}
    for number in range(passes):
        for rid, dr in list(runs.items()):
            dr, _ = af.step(dr, base, session)
            runs[rid] = dr
            af.finish(dr, session, "running" if number == passes - 1 else "success")
    export = _export(af, runs["manual__inflight"], session)
    control = af.drain(runs["manual__control"], base, session)
    control_fail = af.drain(runs["manual__control_fail"], base, session, fail=True)
    path.write_text(head_text)
    af.write(str(folder), session)
    head = af.scheduler_dag(dag_id, session)
    traces = {}
    for rid, fail in (("manual__inflight", False), ("manual__inflight_fail", True)):
        dr = runs[rid]
        dr.dag = head
        if af.v3:
            from airflow.models.dag_version import DagVersion

            latest = DagVersion.get_latest_version(dag_id, session=session)
            dr.verify_integrity(session=session, dag_version_id=latest.id)
        else:
            dr.verify_integrity(session=session)
        session.commit()
        traces[fail] = af.drain(dr, head, session, fail=fail)
    deployed, deployed_fail = traces[False], traces[True]
    session.close()
    same = all(
        a["passes"] == b["passes"] and a["final"] == b["final"] and a["state"] == b["state"]
        for a, b in ((control, deployed), (control_fail, deployed_fail))
    )
    if same != (kind == "ok"):
        CONTRADICTED.append(
            f"{name}: declared {kind}, but Airflow's traces {'agree' if same else 'differ'}: "
            f"{control} {deployed} {control_fail} {deployed_fail}"
        )
    return {
        "kind": kind,
        "dag_id": dag_id,
        "passes_before_export": passes,
        "base": base_text,
        "head": head_text,
        "export": export,
        "truth": {
            "control": control,
            "head": deployed,
            "control_fail": control_fail,
            "head_fail": deployed_fail,
        },
    }


def main() -> int:
    warnings.simplefilter("ignore")
    out = sys.argv[1]
    work = tempfile.mkdtemp(prefix="airflow-sched-recorder-")
    os.environ["AIRFLOW_HOME"] = work
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{work}/airflow.db"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # The head is written seconds after the base: no throttle on writing a new serialized version.
    os.environ["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] = "0"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = work
    try:
        from airflow.utils import db

        db.initdb()
        af = Airflow()
        if af.v3:  # the DAG bundles the configuration names (the default `dags-folder`)
            from airflow.dag_processing.bundles.manager import DagBundlesManager

            DagBundlesManager().sync_bundles_to_db()
        only = os.environ.get("RECORD_ONLY")
        cases = {
            name: record(name, spec, af, work)
            for name, spec in SCENARIOS.items()
            if not only or name in only.split(",")
        }
        if CONTRADICTED:
            print("\n".join(CONTRADICTED), file=sys.stderr)
            return 1
        text = json.dumps({"airflow": af.version, "scenarios": cases}, indent=1, sort_keys=True)
        Path(out).write_text(text + "\n")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
