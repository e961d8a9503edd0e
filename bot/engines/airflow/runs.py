"""Replay of running DagRuns: what the head DAG does to each run of a REST export.

Exports are the REST API's own JSON: `{"dag_runs": [...], "task_instances": [...]}` (what
`inflight-guard export airflow` writes), or the two collection responses in separate files, in the
v2 (Airflow 3) or v1 (Airflow 2) shapes. A run that keeps its bundle version (`bundle_version`
set, versioning not disabled) is pinned: it finishes on the DAG it started with. Every other
running run is replayed on Airflow's own scheduler, head DAG against base DAG (`decisions.py`,
`scheduler.py`); a DAG Airflow did not load here gets the tool's own estimate (`_problems`), said so.
Nothing of a run's `conf`, rendered fields or notes is read or shown.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.engines.airflow.diff import task_renames
from bot.engines.airflow.model import Dag, Task
from bot.evidence import examples, explaining, explanation, source_failures
from bot.histories import HistoryItem, ReplayOptions, SourceStats, iter_histories
from bot.model import Change, Definition, Finding, Location, ReplayResult, ReplaySummary

if TYPE_CHECKING:
    from bot.engines.airflow import AirflowContext

FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}
ACTIVE = {"running", "queued", "up_for_retry", "up_for_reschedule", "restarting", "deferred", "scheduled"}
OPEN_RUN = {"running", "queued"}


class ExportUnreadable(Exception):
    pass


@dataclass
class TaskInstance:
    task_id: str
    map_index: int
    state: str  # "" when it has not run (null)
    try_number: int = 0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def started(self) -> bool:
        return self.state in FINISHED or self.state in ACTIVE

    @property
    def pending(self) -> bool:
        return not self.started


@dataclass
class DagRun:
    dag_id: str
    run_id: str
    state: str
    source: str
    bundle_version: str | None = None
    started: float | None = None
    tasks: list[TaskInstance] = field(default_factory=list)
    # What the scheduler needs to rebuild the run (ISO texts as exported; never `conf`).
    dates: dict[str, str] = field(default_factory=dict)
    run_type: str = ""


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def read_export(data: Any, source: str) -> tuple[list[DagRun], list[tuple[str, str, TaskInstance]]]:
    """(runs, (dag_id, run_id, task instance)...) of one REST-shaped document."""
    if not isinstance(data, Mapping) or not ({"dag_runs", "task_instances"} & set(data)):
        raise ExportUnreadable("not an Airflow REST export (no `dag_runs` or `task_instances`)")
    runs: list[DagRun] = []
    for i, raw in enumerate(data.get("dag_runs") or []):
        if not isinstance(raw, Mapping) or not raw.get("dag_id") or not raw.get("dag_run_id"):
            raise ExportUnreadable(f"dag_runs[{i}]: no dag_id / dag_run_id")
        runs.append(
            DagRun(
                dag_id=str(raw["dag_id"]),
                run_id=str(raw["dag_run_id"]),
                state=str(raw.get("state") or ""),
                source=source,
                bundle_version=raw.get("bundle_version") or None,
                started=_epoch(raw.get("start_date")),
                dates=_dates(raw),
                run_type=str(raw.get("run_type") or ""),
            )
        )
    instances: list[tuple[str, str, TaskInstance]] = []
    for i, raw in enumerate(data.get("task_instances") or []):
        if not isinstance(raw, Mapping) or not raw.get("task_id") or not raw.get("dag_run_id"):
            raise ExportUnreadable(f"task_instances[{i}]: no task_id / dag_run_id")
        index = raw.get("map_index", -1)
        state = _state(raw.get("state"))
        if state and state not in FINISHED | ACTIVE:
            raise ExportUnreadable(f"task_instances[{i}]: unknown state {state[:40]!r}")
        instances.append(
            (
                str(raw.get("dag_id") or ""),
                str(raw["dag_run_id"]),
                TaskInstance(
                    task_id=str(raw["task_id"]),
                    map_index=int(index) if isinstance(index, int) else -1,
                    state=state,
                    try_number=raw["try_number"] if isinstance(raw.get("try_number"), int) else 0,
                ),
            )
        )
    return runs, instances


def _dates(raw: Mapping[str, Any]) -> dict[str, str]:
    """The run's dates the scheduler reads (v1: `execution_date` is the logical date)."""
    out = {}
    for key in ("logical_date", "data_interval_start", "data_interval_end", "run_after", "start_date"):
        value = raw.get(key) or (raw.get("execution_date") if key == "logical_date" else None)
        if isinstance(value, str) and _epoch(value) is not None:
            out[key] = value
    return out


def _state(value: Any) -> str:
    text = str(value or "").lower()
    return "" if text in ("none", "no_status", "null") else text


def _common(run: DagRun) -> dict[str, Any]:
    return {
        "history": f"{run.source}#{run.run_id}",
        "workflow_type": run.dag_id,
        "run_id": run.run_id,
        "open": True,
        "events": len(run.tasks),
        "started": run.started,
    }


def check_run(run: DagRun, context: AirflowContext, head_disabled: bool) -> ReplayResult | None:
    """What the head DAG does to one running DagRun, when that needs no scheduler: None when it does."""
    common = _common(run)
    dag_id = run.dag_id
    head = context.pairs.get(dag_id, (None, None))[1]
    pinned = bool(run.bundle_version) and not head_disabled and not context.versioning_disabled
    if pinned:
        return ReplayResult(
            **common,
            definition=dag_id,
            outcome="ok",
            message=f"pinned to bundle version {run.bundle_version}: finishes on the DAG it started with",
        )
    if head is None:
        reason = "the DAG is removed in head"
        return ReplayResult(
            **common,
            definition=dag_id,
            outcome="nondeterminism",
            event=f"dag {run.dag_id}",
            message=f"{reason}: the scheduler can no longer find it, so this running run "
            "cannot finish (its remaining tasks never run)",
        )
    if head.dag_id != dag_id:
        return ReplayResult(
            **common,
            definition=dag_id,
            outcome="nondeterminism",
            event=f"dag {run.dag_id}",
            message=f"DAG renamed to `{head.dag_id}`: this run of `{dag_id}` is orphaned (its DAG is gone) "
            "and the new id starts with no history",
        )
    if not run.tasks:
        return ReplayResult(
            **common,
            definition=dag_id,
            outcome="unreadable",
            message="no task instances exported for this run: export them too (`inflight-guard export airflow`)",
        )
    if run.state == "queued" and not any(t.started for t in run.tasks):
        return ReplayResult(
            **common,
            definition=dag_id,
            outcome="ok",
            message="queued, nothing ran yet: starts on the head DAG",
        )
    return None


UNLOADABLE = "import_error "  # the event of a run whose DAG's head file does not import


def unloadable(run: DagRun, context: AirflowContext) -> ReplayResult:
    """A running run of a DAG whose head file Airflow cannot import: nothing to replay it on. Airflow's
    DAG processor records the import error and the DAG goes stale (Airflow 2 deactivates it and deletes
    its serialized DAG; Airflow 3 marks it `is_stale`), and the scheduler examines running runs of
    active, non-stale DAGs only: an unpinned run stops where it is."""
    base, error = context.unloadable[run.dag_id]
    common = _common(run)
    if run.bundle_version and not context.versioning_disabled and not base.disable_bundle_versioning:
        return ReplayResult(
            **common,
            definition=run.dag_id,
            outcome="ok",
            message=f"pinned to bundle version {run.bundle_version}: finishes on the DAG it started with "
            f"(head's {error.path} does not import)",
        )
    lines = [ln.strip() for ln in error.message.strip().splitlines() if ln.strip()]
    why = lines[-1][:200] if lines else "import failed"
    return ReplayResult(
        **common,
        definition=run.dag_id,
        outcome="nondeterminism",
        event=f"{UNLOADABLE}{error.path}:{error.line}",
        message=f"not replayed: {error.path} does not import on head (line {error.line}: {why}), so Airflow "
        f"has no DAG `{run.dag_id}` to schedule this running run's remaining tasks on",
    )


def structural(run: DagRun, context: AirflowContext, common: dict[str, Any]) -> ReplayResult:
    """The hand model, for DAGs Airflow did not load here (read statically): not the scheduler's word."""
    base, head = context.pairs[run.dag_id]
    assert head is not None
    broken, diverged = _problems(run, base, head, context.major)
    note = " (estimated from the DAG files read statically, not replayed on Airflow's scheduler)"
    if broken:
        return ReplayResult(
            **common,
            definition=run.dag_id,
            outcome="nondeterminism",
            event=broken[0][0],
            message="; ".join(m for _, m in (broken + diverged)[:6]) + note,
        )
    if diverged:
        return ReplayResult(
            **common,
            definition=run.dag_id,
            outcome="diverged",
            event=diverged[0][0],
            message="; ".join(m for _, m in diverged[:6]) + note,
        )
    return ReplayResult(
        **common,
        definition=run.dag_id,
        outcome="ok",
        message="takes the head DAG without losing or re-running work" + note,
    )


def _instances(task: Task) -> int | None:
    """How many mapped instances a literal expansion makes (a cross product); None when not literal."""
    if not task.expand_keys or any(k not in task.expand_lengths for k in task.expand_keys):
        return None
    count = 1
    for key in task.expand_keys:
        count *= task.expand_lengths[key]
    return count


def _problems(
    run: DagRun, base: Dag | None, head: Dag, major: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What this change (base → head) does to one unpinned run: (broken, diverged), each (where, what).

    Only what the change causes counts: a task already gone in base, or instances already
    `removed`, are history; a task base already had is not new.
    """
    broken: list[tuple[str, str]] = []
    diverged: list[tuple[str, str]] = []
    by_task: dict[str, list[TaskInstance]] = {}
    for ti in run.tasks:
        if ti.state != "removed":
            by_task.setdefault(ti.task_id, []).append(ti)
    renamed_from = {new: old for old, new in task_renames(base.tasks, head.tasks).items()} if base else {}

    def state(task_id: str) -> str:
        tis = by_task.get(task_id, [])
        if any(t.state in ACTIVE for t in tis):
            return "active"
        if tis and all(t.finished for t in tis):
            return "finished"
        return "pending" if tis else "absent"

    for task_id, tis in sorted(by_task.items()):
        where = f"task {task_id}"
        old = base.tasks.get(task_id) if base is not None else None
        if task_id not in head.tasks:
            if base is not None and old is None:
                continue  # gone before this change
            s = state(task_id)
            renamed = next((n for n, o in renamed_from.items() if o == task_id), None)
            also = f" (renamed to `{renamed}`)" if renamed else ""
            if s == "finished":
                broken.append(
                    (where, f"`{task_id}`{also} finished: its instance becomes `removed`, history orphaned")
                )
            elif s == "active":
                broken.append((where, f"`{task_id}`{also} is {tis[0].state}: marked `removed` mid-flight"))
            else:
                broken.append((where, f"`{task_id}`{also} has not run: its work is silently dropped"))
            continue
        task = head.tasks[task_id]
        mapped_tis = [t for t in tis if t.map_index >= 0]
        was_mapped = old.mapped if old is not None else bool(mapped_tis)
        if task.mapped and not was_mapped and any(t.map_index < 0 and t.started for t in tis):
            broken.append((where, f"`{task_id}` is now mapped: its unmapped instance becomes `removed`"))
        elif was_mapped and not task.mapped and mapped_tis:
            broken.append(
                (
                    where,
                    f"`{task_id}` is no longer mapped: its {len(mapped_tis)} mapped instances become `removed`",
                )
            )
        elif task.mapped and was_mapped:
            limit = _instances(task)
            before = _instances(old) if old is not None else None
            cut = [t for t in mapped_tis if limit is not None and t.map_index >= limit]
            if cut and (before is None or limit is None or limit < before):
                broken.append(
                    (
                        where,
                        f"`{task_id}` expands over fewer items: map indexes ≥ {limit} ({len(cut)}) become `removed`",
                    )
                )
        if old is not None and state(task_id) == "pending" and old.trigger_rule != task.trigger_rule:
            diverged.append(
                (
                    where,
                    f"`{task_id}` has not run and now waits under trigger rule `{task.trigger_rule}` "
                    f"(was `{old.trigger_rule}`)",
                )
            )
        if (
            old is not None
            and major < 3
            and old.retries
            and not task.retries
            and any(t.state == "up_for_retry" for t in tis)
        ):
            broken.append(
                (where, f"`{task_id}` is up for retry and retries drop to 0: its pending retry is cancelled")
            )
        new_ups = [u for u in task.upstream if u not in by_task and (base is None or u not in base.tasks)]
        if new_ups and state(task_id) in ("active", "finished"):
            ran = "ran" if state(task_id) == "finished" else "started"
            diverged.append((where, f"`{task_id}` already {ran} before its new upstream {_names(new_ups)}"))
    for task_id, task in sorted(head.tasks.items()):
        if task_id in by_task or (base is not None and task_id in base.tasks):
            continue
        where = f"task {task_id}"
        ready = all(state(u) == "finished" for u in task.upstream)
        later = [d for d in task.downstream if state(d) in ("active", "finished")]
        source = renamed_from.get(task_id)
        if source and state(source) == "finished":
            broken.append(
                (
                    where,
                    f"`{task_id}` (renamed from `{source}`) becomes schedulable: re-runs work `{source}` "
                    "already did, out of order",
                )
            )
        elif ready and later:
            diverged.append(
                (
                    where,
                    f"new task `{task_id}` would run late, after its downstream {_names(later)} already started (out of order)",
                )
            )
        elif ready:
            why = "no upstream" if not task.upstream else "its upstreams already finished"
            diverged.append((where, f"new task `{task_id}` would run at once inside this run ({why})"))
        else:
            diverged.append((where, f"new task `{task_id}` joins this run"))
    return broken, diverged


def _names(ids: Sequence[str]) -> str:
    return ", ".join(f"`{i}`" for i in ids)


def _load(items: Iterable[HistoryItem], results: list[ReplayResult]) -> list[DagRun]:
    """Every run of every readable export, with its task instances (from any file).

    An export that holds no run, or only task instances of runs no export holds, gets a `skipped`
    line: a file the user supplied is never dropped without one.
    """
    runs: dict[tuple[str, str], DagRun] = {}
    loose: list[tuple[str, str, TaskInstance]] = []
    runless: dict[str, list[tuple[str, str, TaskInstance]]] = {}  # file → its instances
    for item in items:
        try:
            try:
                data = json.loads(Path(item.path).read_text(encoding="utf-8-sig"))
            except json.JSONDecodeError as exc:
                raise ExportUnreadable(
                    f"invalid JSON at line {exc.lineno}, column {exc.colno} (truncated?)"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ExportUnreadable(str(exc)) from None
            found, instances = read_export(data, item.name)
        except ExportUnreadable as exc:
            results.append(
                ReplayResult(history=item.name, definition=None, outcome="unreadable", message=str(exc))
            )
            continue
        finally:
            item.release()
        for run in found:
            runs.setdefault((run.dag_id, run.run_id), run)
        loose += instances
        if not found:
            runless[item.name] = instances
    by_run: dict[str, list[DagRun]] = {}
    for run in runs.values():
        by_run.setdefault(run.run_id, []).append(run)

    def target_of(dag_id: str, run_id: str) -> DagRun | None:
        target = runs.get((dag_id, run_id))
        if target is None and not dag_id and len(by_run.get(run_id, [])) == 1:
            target = by_run[run_id][0]
        return target

    for dag_id, run_id, ti in loose:
        target = target_of(dag_id, run_id)
        if target is not None:
            target.tasks.append(ti)
    for name, instances in sorted(runless.items()):
        orphans = [i for i in instances if target_of(i[0], i[1]) is None]
        if instances and not orphans:
            continue  # task instances of runs another export holds: read with them
        message = (
            f"not checked: {len(orphans)} task instances of DagRuns no export holds (export the dag_runs too)"
            if orphans
            else "not checked: the export holds no DagRun"
        )
        results.append(ReplayResult(history=name, definition=None, outcome="skipped", message=message))
    return list(runs.values())


def run_replay(
    context: AirflowContext | None, options: ReplayOptions
) -> tuple[list[ReplayResult], ReplaySummary]:
    """Check every running DagRun of the exports against the head DAG; name every other run with why
    it was not checked. Without a context (no DAG file changed) every run is named as untouched."""
    began = time.monotonic()
    stats = SourceStats()
    results: list[ReplayResult] = []
    with tempfile.TemporaryDirectory(prefix="inflight-guard-airflow-runs-") as spool:
        items = iter_histories(options, Path(spool), stats)
        runs = _load(items, results)
    known = set(context.pairs) | set(context.unloadable) if context is not None else set()
    slots: list[tuple[DagRun, ReplayResult | None]] = []
    for run in sorted(runs, key=lambda r: (r.dag_id, r.run_id)):
        common: dict[str, Any] = {
            "history": f"{run.source}#{run.run_id}",
            "workflow_type": run.dag_id,
            "run_id": run.run_id,
            "started": run.started,
        }
        found: ReplayResult | None
        if run.state not in OPEN_RUN:
            found = ReplayResult(
                **common,
                definition=run.dag_id if run.dag_id in known else None,
                open=False,
                outcome="skipped",
                message=f"not checked: the DagRun is {run.state or 'in no state'} (only running ones are)",
            )
        elif run.dag_id not in known or context is None:
            found = ReplayResult(
                **common,
                definition=None,
                open=True,
                outcome="unmatched",
                message=f"DAG `{run.dag_id}` is not one this change touches",
            )
        elif run.dag_id in context.unloadable:
            found = unloadable(run, context)
        else:
            head = context.pairs[run.dag_id][1]
            found = check_run(run, context, bool(head is not None and head.disable_bundle_versioning))
        slots.append((run, found))
    try:
        decided, figures = _on_scheduler(context, [r for r, f in slots if f is None], options)
    finally:
        if context is not None and context.extraction.live is not None:
            context.extraction.live.close()  # the loader kept up for this replay is done
    for run, found in slots:
        result = found or decided.get((run.dag_id, run.run_id))
        if result is None:
            assert context is not None
            result = structural(run, context, _common(run))
        if options.log is not None and result.failed:
            options.log.write("airflow", result)  # built from ids and states only: nothing withheld
        results.append(result)
        if options.progress is not None:
            options.progress(result)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    notes = [f"--histories {spec}: no export found" for spec in stats.empty]
    if figures.get("startup") is not None:
        notes.append(
            f"running DagRuns replayed on Airflow's scheduler: start-up {figures['startup']} s, "
            f"{figures.get('seconds', 0)} s in all, {figures.get('traces', 0)} distinct traces"
            + (f", metadata database migrated in {figures['migrate']} s" if figures.get("migrate") else "")
            + (" (in the DAG loader's process)" if figures.get("in_process") else "")
        )
    if figures.get("fallback"):
        notes.append(f"the replay ran in a process of its own: it failed {figures['fallback']}")
    version = context.extraction.airflow_version if context is not None else None
    summary = ReplaySummary(
        interpreter=(
            "Airflow's scheduler (DagRun.update_state, verify_integrity)"
            if figures.get("startup") is not None
            else "inflight-guard (DagRun checker)"
        ),
        sdk=f"Airflow {version or '(unknown version)'}",
        shards=[str(options.shard)] if options.shard else [],
        seconds=round(time.monotonic() - began, 3),
        counts=counts,
        source_errors=list(stats.errors),
        notes=notes,
    )
    return results, summary


def as_request(run: DagRun) -> dict[str, Any]:
    """A run as the scheduler replay reads it: ids, dates, run type, task instances (never `conf`)."""
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "run_type": run.run_type,
        **run.dates,
        "tis": [
            {
                "task_id": t.task_id,
                "map_index": t.map_index,
                "state": t.state or None,
                "try_number": t.try_number,
            }
            for t in run.tasks
        ],
    }


def _on_scheduler(
    context: AirflowContext | None, runs: Sequence[DagRun], options: ReplayOptions
) -> tuple[dict[tuple[str, str], ReplayResult], dict[str, Any]]:
    """The runs Airflow loaded both DAGs of, judged by Airflow's scheduler (`decisions.py`); the others
    are left to the caller. A scheduler that cannot run is an `error` for each of its runs."""
    from bot.engines.airflow.decisions import SchedulerUnavailable, judge, replay

    python = context.extraction.python if context is not None else None
    if context is None or not runs or python is None:
        return {}, {}
    extraction = context.extraction
    dags: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for dag_id in {r.dag_id for r in runs}:
        base = extraction.base.serialized.get(dag_id)
        head = extraction.head.serialized.get(dag_id)
        if isinstance(base, dict) and isinstance(head, dict):
            dags[dag_id] = (base, head)
    mine = [r for r in runs if r.dag_id in dags]
    if not mine:
        return {}, {}
    out: dict[tuple[str, str], ReplayResult] = {}
    try:
        requests = [as_request(r) for r in mine]
        timeout = max(options.timeout, 120.0)
        traces, figures = replay(python, dags, requests, options.cache, timeout, extraction.live)
    except SchedulerUnavailable as exc:
        for run in mine:
            out[(run.dag_id, run.run_id)] = ReplayResult(
                **_common(run), definition=run.dag_id, outcome="error", message=str(exc)
            )
        return out, {}
    for run in mine:
        entry = traces.get((run.dag_id, run.run_id))
        base, head = context.pairs[run.dag_id]
        key = (run.dag_id, run.run_id)
        if entry is None or "error" in entry or base is None or head is None:
            why = entry.get("error") if entry else "no answer for this run"
            out[key] = ReplayResult(
                **_common(run),
                definition=run.dag_id,
                outcome="error",
                message=f"Airflow's scheduler could not replay this run: {why}",
            )
            continue
        verdict = judge(entry, base, head)
        out[key] = ReplayResult(
            **_common(run),
            definition=run.dag_id,
            outcome=verdict.outcome,
            event=verdict.event,
            message=verdict.message,
        )
    return out, figures


def replay_changes(
    results: Sequence[ReplayResult],
    summary: ReplaySummary,
    definitions: Sequence[Definition],
    static: Sequence[Finding],
) -> list[Change]:
    """One fact per DAG and outcome (broken, diverged), and per unreadable export."""
    by_id = {d.id: d for d in definitions if d.engine == "airflow"}
    groups: dict[tuple[str, str], list[ReplayResult]] = {}
    stranded: dict[str, list[ReplayResult]] = {}
    for r in results:
        if r.definition in by_id and (r.event or "").startswith(UNLOADABLE):
            stranded.setdefault(str(r.definition), []).append(r)
        elif r.definition in by_id and r.outcome in ("nondeterminism", "diverged"):
            groups.setdefault((str(r.definition), r.outcome), []).append(r)
    changes: list[Change] = []
    for dag_id, group in sorted(stranded.items()):
        d = by_id[dag_id]  # its path and line are the head's import error
        changes.append(
            Change(
                kind="airflow.replay.unloadable",
                engine="airflow",
                definition=dag_id,
                location=Location(path=d.path, line=d.line or 1),
                details={"runs": len(group), "message": group[0].message, "examples": examples(group)},
            )
        )
    for (dag_id, outcome), group in sorted(groups.items()):
        d = by_id[dag_id]
        task = (group[0].event or "").removeprefix("task ").removeprefix("dag ")
        explained = explaining([f for f in static if f.definition == dag_id], "task", task)
        location = (
            explained.location
            if explained is not None and explained.location is not None
            else Location(path=d.path, line=d.line or 1)
        )
        changes.append(
            Change(
                kind="airflow.replay.broken" if outcome == "nondeterminism" else "airflow.replay.diverged",
                engine="airflow",
                definition=dag_id,
                location=location,
                details={
                    "runs": len(group),
                    "task": task,
                    "message": group[0].message,
                    "examples": examples(group),
                    **explanation(explained),
                },
            )
        )
    # A run Airflow's scheduler could not replay fails closed, like an export that cannot be read.
    unreadable = [r for r in results if r.outcome in ("unreadable", "error")]
    for r in unreadable:
        changes.append(
            Change(
                kind="airflow.replay.unreadable",
                engine="airflow",
                definition="",
                location=Location(path=r.history, line=1),
                details={"message": r.message, "history": r.history},
            )
        )
    changes += source_failures(summary.source_errors, "airflow.replay.source_failed", "airflow")
    return changes
