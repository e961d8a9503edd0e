"""Compare base and head DAG models: objective facts (`airflow.*` changes), never judgements."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from bot.engines.airflow.model import Dag, Task
from bot.model import Change, Location, Scalar

VOCABULARY: dict[str, str] = {
    "airflow.dag.added": "A DAG id exists in head but not in base.",
    "airflow.dag.removed": "A DAG id of base is gone from head's changed files.",
    "airflow.dag.renamed": "A DAG's id changed while its tasks stayed the same.",
    "airflow.dag.unstable": "Parsing the head DAG twice gave two different DAGs (e.g. `datetime.now()` in arguments).",
    "airflow.dag.settings_changed": "max_active_runs, max_active_tasks, tags or end_date changed.",
    "airflow.task.added": "A task id exists in head but not in base.",
    "airflow.task.removed": "A task id of base is gone from head.",
    "airflow.task.renamed": "A task's id changed; same operator and code hash.",
    "airflow.task.settings_changed": "depends_on_past, wait_for_downstream, pool, queue or task group changed.",
    "airflow.edge.added": "A task gained an upstream task.",
    "airflow.edge.removed": "A task lost an upstream task.",
    "airflow.trigger_rule.changed": "A task's trigger rule changed.",
    "airflow.mapping.toggled": "A task switched between mapped (`.expand()`) and unmapped.",
    "airflow.mapping.changed": "A mapped task's expand keys or literal expand list changed.",
    "airflow.operator.changed": "A task's operator class (or TaskFlow decorator) changed.",
    "airflow.task_code.changed": "A task's callable or templated fields changed.",
    "airflow.retries.changed": "A task's retries changed.",
    "airflow.schedule.changed": "The DAG's schedule / timetable changed.",
    "airflow.catchup.enabled": "catchup turned on.",
    "airflow.start_date.moved_earlier": "The DAG's start_date moved earlier.",
    "airflow.params.changed": "The DAG's params were added, removed or changed.",
    "airflow.outlets.changed": "A task's outlets (assets/datasets it updates) changed.",
    "airflow.config.unreadable": "The deployment's airflow.cfg (`airflow.config_file`) does not read as Airflow reads it.",
    "airflow.import_error": "A DAG file of head does not import (Airflow would not load it).",
    "airflow.extract.static": "Airflow was not importable: DAGs were read statically, with lower confidence.",
    "airflow.replay.broken": "A running DagRun loses or re-runs task instances under the head DAG.",
    "airflow.replay.unloadable": "Running DagRuns of a DAG whose head file does not import: not replayed, stranded.",
    "airflow.replay.diverged": "A running DagRun would run tasks late, out of order or under new rules.",
    "airflow.replay.unreadable": "An exported DagRun file could not be read.",
    "airflow.replay.source_failed": "A history source failed part-way.",
}


class _Emitter:
    def __init__(self, common: Mapping[str, Scalar]) -> None:
        self.changes: list[Change] = []
        self.common = dict(common)

    def emit(self, kind: str, dag: Dag, line: int | None, **details: Scalar) -> None:
        self._add(kind, dag, line, "head", details)

    def emit_base(self, kind: str, dag: Dag, line: int | None, **details: Scalar) -> None:
        """A fact located in the base tree (what head removed)."""
        self._add(kind, dag, line, "base", details)

    def _add(
        self, kind: str, dag: Dag, line: int | None, side: Literal["base", "head"], details: dict[str, Scalar]
    ) -> None:
        self.changes.append(
            Change(
                kind=kind,
                engine="airflow",
                definition=dag.dag_id,
                location=Location(path=dag.path, line=line or dag.line or 1, side=side),
                gated=bool(self.common.get("pinned")),
                details={**self.common, **details},
            )
        )


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def task_renames(base: Mapping[str, Task], head: Mapping[str, Task]) -> dict[str, str]:
    """old id → new id: a removed and an added task doing the same work (operator, code, fields)."""
    removed = [t for i, t in base.items() if i not in head]
    added = [t for i, t in head.items() if i not in base]
    out: dict[str, str] = {}
    for old in removed:
        same = [t for t in added if t.same_work == old.same_work and t.task_id not in out.values()]
        if len(same) > 1:  # ambiguous: prefer the one with the same upstreams
            same = [t for t in same if set(t.upstream) == set(old.upstream)] or same[:0]
        if len(same) == 1:
            out[old.task_id] = same[0].task_id
    return out


def diff_dag(base: Dag, head: Dag, common: Mapping[str, Scalar]) -> list[Change]:
    """Changes between two versions of one DAG."""
    e = _Emitter(common)
    renames = task_renames(base.tasks, head.tasks)
    new_id = {**{i: i for i in base.tasks}, **renames}
    for was, now in renames.items():
        e.emit("airflow.task.renamed", head, head.tasks[now].line, task=now, old=was, new=now)
    for task_id, t in base.tasks.items():
        if task_id not in head.tasks and task_id not in renames:
            downstream = ", ".join(sorted(t.downstream)) or "none"
            e.emit_base(
                "airflow.task.removed",
                base,
                t.line,
                task=task_id,
                operator=t.operator,
                downstream=downstream,
            )
    renamed_to = set(renames.values())
    for task_id, t in head.tasks.items():
        if task_id not in base.tasks and task_id not in renamed_to:
            ups = ", ".join(sorted(t.upstream)) or "none"
            e.emit(
                "airflow.task.added",
                head,
                t.line,
                task=task_id,
                operator=t.operator,
                upstream=ups,
                roots=not t.upstream,
                leaf=not t.downstream,
            )
    for old_id, old in base.tasks.items():
        task_id = new_id.get(old_id, old_id)
        new = head.tasks.get(task_id)
        if new is None:
            continue
        _compare_task(e, head, old, new, new_id, base)
    _compare_dag(e, base, head)
    return e.changes


def _compare_task(e: _Emitter, dag: Dag, old: Task, new: Task, new_id: Mapping[str, str], base: Dag) -> None:
    line = new.line
    tid = new.task_id
    before = {new_id.get(u, u) for u in old.upstream}
    after = set(new.upstream)
    # Order is what matters: an edge that only bypasses a removed step (extract → load once transform
    # is gone) was an ordering already; an edge to a removed task is the removal's (AFL101).
    was_before = {new_id.get(u, u) for u in _ancestors(base, old.task_id)}
    for up in sorted(after - before):
        if up in was_before:
            continue
        e.emit("airflow.edge.added", dag, line, task=tid, upstream=up, new_upstream=up not in new_id.values())
    ancestors = _ancestors(dag, tid)
    for up in sorted(before - after):
        if up in ancestors or up not in dag.tasks:  # still upstream through another task, or removed
            continue
        e.emit("airflow.edge.removed", dag, line, task=tid, upstream=up)
    if old.trigger_rule != new.trigger_rule:
        e.emit(
            "airflow.trigger_rule.changed", dag, line, task=tid, old=old.trigger_rule, new=new.trigger_rule
        )
    if old.mapped != new.mapped:
        e.emit(
            "airflow.mapping.toggled",
            dag,
            line,
            task=tid,
            old="mapped" if old.mapped else "unmapped",
            new="mapped" if new.mapped else "unmapped",
        )
    elif new.mapped and (old.expand_keys != new.expand_keys or old.expand_lengths != new.expand_lengths):
        shrunk = [
            k for k, n in new.expand_lengths.items() if k in old.expand_lengths and n < old.expand_lengths[k]
        ]
        e.emit(
            "airflow.mapping.changed",
            dag,
            line,
            task=tid,
            old=", ".join(old.expand_keys),
            new=", ".join(new.expand_keys),
            shrunk=bool(shrunk),
            keys=", ".join(shrunk),
        )
    if old.operator_kind != new.operator_kind:
        e.emit("airflow.operator.changed", dag, line, task=tid, old=old.operator, new=new.operator)
    elif old.code_hash != new.code_hash or (old.fields_hash != new.fields_hash and old.mapped == new.mapped):
        # (a mapping switch moves arguments between partial and expand: that is AFL107's, not code)
        what = "callable" if old.code_hash != new.code_hash else "templated fields"
        e.emit("airflow.task_code.changed", dag, line, task=tid, what=what)
    if old.retries != new.retries:
        e.emit(
            "airflow.retries.changed",
            dag,
            line,
            task=tid,
            old=old.retries,
            new=new.retries,
            lowered=new.retries < old.retries,
            to_zero=new.retries == 0,
        )
    if old.outlets != new.outlets:
        removed = sorted(set(old.outlets) - set(new.outlets))
        added = sorted(set(new.outlets) - set(old.outlets))
        e.emit(
            "airflow.outlets.changed",
            dag,
            line,
            task=tid,
            removed=", ".join(removed) or "none",
            added=", ".join(added) or "none",
            lost=bool(removed),
        )
    settings = [
        name
        for name in ("depends_on_past", "wait_for_downstream", "pool", "queue", "task_group")
        if getattr(old, name) != getattr(new, name)
    ]
    if settings:
        e.emit(
            "airflow.task.settings_changed",
            dag,
            line,
            task=tid,
            fields=", ".join(settings),
            depends_on_past=new.depends_on_past and not old.depends_on_past,
        )


def _ancestors(dag: Dag, task_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(dag.tasks[task_id].upstream) if task_id in dag.tasks else []
    while stack:
        current = stack.pop()
        if current in seen or current not in dag.tasks:
            continue
        seen.add(current)
        stack.extend(dag.tasks[current].upstream)
    return seen


def _compare_dag(e: _Emitter, base: Dag, head: Dag) -> None:
    if base.schedule != head.schedule:
        e.emit(
            "airflow.schedule.changed",
            head,
            head.line,
            old=base.schedule_summary or base.schedule or "None",
            new=head.schedule_summary or head.schedule or "None",
        )
    if head.catchup and not base.catchup:
        e.emit("airflow.catchup.enabled", head, head.line, **_storm(head, earlier=False))
    old_start, new_start = _date(base.start_date), _date(head.start_date)
    if old_start and new_start and new_start < old_start:
        e.emit(
            "airflow.start_date.moved_earlier",
            head,
            head.line,
            old=base.start_date,
            new=head.start_date,
            catchup=head.catchup,
            catchup_text=(
                "catchup is on, but the DAG has runs: the scheduler continues after its last one (exported, "
                "or asked with `airflow.url`) and creates no interval before the old start_date"
                if head.catchup and head.storm is not None and head.storm.since
                else f"catchup is on, and the timetable has {_storm(head, earlier=True)['runs_text']} "
                "interval(s) before the old start_date"
                if head.catchup
                else "with catchup off no past run is created"
            ),
            **_storm(head, earlier=True),
        )
    if base.params != head.params:
        removed = sorted(set(base.params) - set(head.params))
        added = sorted(set(head.params) - set(base.params))
        changed = sorted(k for k in base.params if k in head.params and base.params[k] != head.params[k])
        e.emit(
            "airflow.params.changed",
            head,
            head.line,
            removed=", ".join(removed) or "none",
            added=", ".join(added) or "none",
            changed=", ".join(changed) or "none",
            lost=bool(removed),
        )
    settings = [
        n
        for n in ("max_active_runs", "max_active_tasks", "tags", "end_date")
        if getattr(base, n) != getattr(head, n)
    ]
    if settings:
        e.emit("airflow.dag.settings_changed", head, head.line, fields=", ".join(settings))


def _storm(dag: Dag, earlier: bool) -> dict[str, Scalar]:
    """How many runs catchup creates, as details (`runs` None when unknown)."""
    storm = dag.storm
    if storm is None and dag.static:
        # Read statically: no timetable to ask, but `schedule=None` never runs on its own and
        # `@once` runs at most once, whatever catchup says.
        schedule = dag.schedule.strip().strip("\"'")
        if schedule in ("None", "@once", "once"):
            once = 0 if schedule == "None" else 1
            return {
                "runs": once,
                "runs_text": "no" if once == 0 else "at most 1",
                "storm": False,
                "since_text": SINCE_START,
            }
    if storm is None:
        return {
            "runs": None,
            "runs_text": "an unknown number of",
            "storm": dag.catchup,
            "since_text": SINCE_START,
        }
    runs = storm.earlier if earlier else storm.runs
    complete = storm.earlier_complete if earlier else storm.complete
    since = (
        f"every interval after its last scheduled run (ended {storm.since[:19]}, from the export) to now: "
        "the scheduler continues from there, so a pause or an outage since then comes back as one burst"
        if storm.since
        else SINCE_START
    )
    if runs is None:
        return {"runs": None, "runs_text": "an unknown number of", "storm": dag.catchup, "since_text": since}
    text = f"{runs:,}" if complete else f"at least {runs:,}"
    return {"runs": runs, "runs_text": text, "storm": dag.catchup and runs > 1, "since_text": since}


SINCE_START = (
    "every interval from start_date to now that has no run; for a DAG that already has runs, "
    "the scheduler continues after its last one instead (export them to count from there)"
)


def added_dag(dag: Dag, common: Mapping[str, Scalar]) -> Change:
    e = _Emitter(common)
    details = _storm(dag, earlier=False) if dag.catchup else {"runs": 0, "runs_text": "no", "storm": False}
    e.emit("airflow.dag.added", dag, dag.line, tasks=len(dag.tasks), catchup=dag.catchup, **details)
    return e.changes[0]


def removed_dag(dag: Dag, common: Mapping[str, Scalar]) -> Change:
    e = _Emitter(common)
    e.emit_base("airflow.dag.removed", dag, dag.line, tasks=len(dag.tasks))
    return e.changes[0]


def renamed_dag(old: Dag, new: Dag, common: Mapping[str, Scalar]) -> Change:
    e = _Emitter(common)
    storm = _storm(new, False) if new.catchup else {"runs": 0, "runs_text": "no", "storm": False}
    text = (
        f"; with catchup on it backfills {storm['runs_text']} runs from its start_date" if new.catchup else ""
    )
    e.emit("airflow.dag.renamed", new, new.line, old=old.dag_id, new=new.dag_id, storm_text=text, **storm)
    renamed = e.changes[0]
    return renamed.model_copy(update={"definition": old.dag_id})


def same_shape(a: Dag, b: Dag) -> bool:
    """Two DAGs with the same tasks doing the same work: a renamed DAG."""
    return bool(a.tasks) and {i: t.same_work for i, t in a.tasks.items()} == {
        i: t.same_work for i, t in b.tasks.items()
    }
