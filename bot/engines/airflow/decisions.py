"""Running DagRuns judged by Airflow's own scheduler: the head DAG's decisions against the base's.

`scheduler.py` runs in the user's Airflow interpreter and replays each run twice on a throwaway
metadata database: with the base DAG (the control: what the run would do without this change) and
with the head DAG (what the deploy does to it). This module starts it and compares the two traces.
A run is `broken` when the head's decisions lose or re-run work, schedule a task before an upstream
it waited for under the base DAG, add a task mid-run, or end the run differently; `diverged` when the
only difference is a new leaf task that runs after everything else.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.engines.airflow.diff import task_renames
from bot.engines.airflow.extract import LiveLoader, LoaderFailed
from bot.engines.airflow.model import Dag

SCRIPT = Path(__file__).with_name("scheduler.py")
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


class SchedulerUnavailable(Exception):
    """The replay on Airflow's scheduler could not run (one line saying why)."""


@dataclass
class Verdict:
    outcome: Literal["ok", "nondeterminism", "diverged"]
    event: str | None
    message: str


def replay(
    python: str,
    dags: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    runs: Sequence[dict[str, Any]],
    cache: Path | None,
    timeout: float,
    live: LiveLoader | None = None,
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Any]]:
    """Traces per (dag_id, run_id) from Airflow's scheduler, and the answer's figures. `runs`: each
    run as `runs.as_request` writes it (ids, dates, run type, task instances' states). With `live`
    (the DAG loader's process, still up), the replay runs in it; else, or when that fails, in a
    process of its own (the figures' `fallback` says why)."""
    request = {
        "cache": str(cache / "airflow-db") if cache is not None else "",
        "dags": {i: {"base": b, "head": h} for i, (b, h) in dags.items()},
        "runs": list(runs),
    }
    fallback = ""
    if live is not None:
        try:
            answer = live.ask(request, timeout)
            return _traces(answer), {k: v for k, v in answer.items() if k != "runs"}
        except LoaderFailed as exc:
            fallback = f"in the DAG loader's process: {exc}"
    traces, figures = _own_process(python, request, timeout)
    if fallback:
        figures["fallback"] = fallback
    return traces, figures


def _traces(answer: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(e["dag_id"]), str(e["run_id"])): e for e in answer.get("runs", [])}


def _own_process(
    python: str, given: dict[str, Any], timeout: float
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Any]]:
    from bot.engines.airflow.extract import _env

    with tempfile.TemporaryDirectory(prefix="inflight-guard-airflow-sched-") as tmp:
        root = Path(tmp)
        request = {**given, "out": str(root / "answer.json")}
        (root / "request.json").write_text(json.dumps(request), encoding="utf-8")
        home = root / "home"
        home.mkdir()
        (root / "dags").mkdir()
        try:
            proc = subprocess.run(
                [python, str(SCRIPT), str(root / "request.json")],
                env=_env(str(home), str(root / "dags")),
                cwd=str(root),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SchedulerUnavailable(
                f"Airflow's scheduler took longer than {timeout:.0f} s to replay the runs"
            ) from None
        except OSError as exc:
            raise SchedulerUnavailable(f"cannot start {python}: {exc.strerror or exc}") from None
        out = root / "answer.json"
        if proc.returncode != 0 or not out.exists():
            tail = [
                ln
                for ln in proc.stderr.decode("utf-8", "replace").splitlines()
                if ln.strip() and not ln.startswith(" ") and "[info" not in ln and "Warning" not in ln
            ]
            last = tail[-1] if tail else f"exit code {proc.returncode}"
            raise SchedulerUnavailable(f"the scheduler replay failed in {python}: {last[:300]}")
        answer: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return _traces(answer), {k: v for k, v in answer.items() if k != "runs"}


def _task(key: str) -> str:
    return key.rsplit("#", 1)[0]


def _plain_label(key: str) -> str:
    task, index = key.rsplit("#", 1)
    return f"`{task}`" if index == "-1" else f"`{task}` [{index}]"


def _names(keys: Sequence[str]) -> str:
    shown = [_plain_label(k) for k in sorted(keys)[:4]]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _when(trace: dict[str, Any]) -> dict[str, int]:
    """The pass (1-based) in which the scheduler first scheduled each task instance."""
    out: dict[str, int] = {}
    for number, scheduled in enumerate(trace.get("passes") or [], start=1):
        for task_id, index in scheduled:
            out.setdefault(f"{task_id}#{index}", number)
    return out


def _on_failure(entry: dict[str, Any], label: Any) -> list[tuple[str, str]]:
    """The failure path: the first task instance running when the drain begins fails for good, on
    both DAGs. What ends differently (task instances both runs hold, the run's state, the pass each
    shared instance is scheduled in) is a change of behaviour the success path does not show: a
    trigger rule that now fires after a failure, an upstream that no longer guards its downstream."""
    control, deployed = entry.get("base_fail"), entry.get("head_fail")
    if not control or not deployed or not control.get("failed"):
        return []
    before, after = control.get("final") or {}, deployed.get("final") or {}
    shared = sorted(set(before) & set(after))
    when_b, when_h = _when(control), _when(deployed)
    moved = [k for k in shared if when_b.get(k) != when_h.get(k) or before[k] != after[k]]
    task, index = control["failed"]
    who = label(f"{task}#{index}")
    out = []
    for key in moved[:4]:
        out.append(
            (
                key,
                f"if {who} fails: {label(key)} ends `{after[key]}` on the head DAG "
                f"(with the base DAG: `{before[key]}`)",
            )
        )
    if not out and control.get("state") != deployed.get("state"):
        out.append(
            (
                "",
                f"if {who} fails: the run ends `{deployed.get('state')}` on the head DAG (with the base DAG: `{control.get('state')}`)",
            )
        )
    return out


def judge(entry: dict[str, Any], base: Dag, head: Dag) -> Verdict:
    """Compare what Airflow's scheduler does to one run with the head DAG against the base DAG."""
    control, deployed = entry["base"], entry["head"]
    exported: dict[str, str] = control.get("exported") or {}
    before: dict[str, str] = control.get("final") or {}
    after: dict[str, str] = deployed.get("final") or {}
    when_b, when_h = _when(control), _when(deployed)
    broken: list[tuple[str, str]] = []
    diverged: list[tuple[str, str]] = []
    renamed = task_renames(base.tasks, head.tasks)

    def _label(key: str) -> str:
        task = _task(key)
        also = f" (renamed to `{renamed[task]}`)" if task in renamed else ""
        return _plain_label(key) + also

    for key in sorted(set(exported) | set(before)):
        was, ctl, now = exported.get(key, "none"), before.get(key, "none"), after.get(key, "none")
        if now == ctl:
            continue
        if was in FINISHED and was != "removed":
            broken.append(
                (
                    key,
                    f"{_label(key)} finished ({was}): the scheduler marks it `{now}` on the head DAG, its work is lost",
                )
            )
        elif was != "none":
            broken.append(
                (
                    key,
                    f"{_label(key)} is {was}: the scheduler leaves it `{now}` on the head DAG (with the base DAG: `{ctl}`)",
                )
            )
        else:
            broken.append(
                (
                    key,
                    f"{_label(key)} has not run: it ends `{now}` on the head DAG (with the base DAG: `{ctl}`), its work is dropped",
                )
            )
    for key in sorted(set(when_h) & set(when_b)):
        h, b = when_h[key], when_b[key]
        if h < b:
            old_task = base.tasks.get(_task(key))
            ups = set(old_task.upstream) if old_task is not None else set()
            waited = [
                k
                for k in set(exported) | set(when_b)
                if _task(k) in ups and (exported.get(k, "none") not in FINISHED or when_b.get(k, 0) >= h)
            ]
            why = f" before its upstream {_names(waited)}" if waited else " earlier"
            broken.append(
                (
                    key,
                    f"{_label(key)} is scheduled in pass {h} on the head DAG, pass {b} with the base DAG: it runs{why}",
                )
            )
        elif h > b:
            diverged.append(
                (key, f"{_label(key)} is scheduled in pass {h} on the head DAG (pass {b} with the base DAG)")
            )
    last_shared = max((n for k, n in when_h.items() if k in before or k in exported), default=0)
    for key in sorted(set(after) - set(before) - set(exported)):
        task = _task(key)
        at = when_h.get(key)
        if task in base.tasks:
            broken.append(
                (key, f"{_label(key)} gets a new task instance on the head DAG: `{task}` runs again")
            )
        elif at is None:
            diverged.append(
                (
                    key,
                    f"new task {_label(key)} joins this run but the scheduler never starts it (ends `{after[key]}`)",
                )
            )
        else:
            h = at
            mid = task not in head.tasks or bool(head.tasks[task].downstream) or h <= last_shared
            later = sorted(
                k for k, n in when_h.items() if n > h and k not in set(after) - set(before) - set(exported)
            )
            also = f", before {_names(later)}" if later else ""
            if mid:
                broken.append(
                    (
                        key,
                        f"new task {_label(key)} appears mid-run: the scheduler starts it in pass {h}{also}",
                    )
                )
            else:
                diverged.append((key, f"new leaf task {_label(key)} runs after everything else (pass {h})"))
    for key in sorted(set(when_h) - set(when_b)):
        if key in before and exported.get(key, "none") in FINISHED:
            broken.append(
                (key, f"{_label(key)} already finished and is scheduled again on the head DAG: it re-runs")
            )
    broken += _on_failure(entry, _label) if not broken else []
    if control.get("state") != deployed.get("state"):
        broken.append(
            (
                "",
                f"the run ends `{deployed.get('state')}` on the head DAG (with the base DAG: `{control.get('state')}`)",
            )
        )
    if broken:
        first = next((k for k, _ in broken if k), "")
        return Verdict(
            "nondeterminism",
            f"task {_task(first)}" if first else None,
            "; ".join(m for _, m in (broken + diverged)[:6]),
        )
    if diverged:
        return Verdict("diverged", f"task {_task(diverged[0][0])}", "; ".join(m for _, m in diverged[:6]))
    return Verdict(
        "ok", None, "Airflow's scheduler makes the same decisions on the head DAG as on the base DAG"
    )
