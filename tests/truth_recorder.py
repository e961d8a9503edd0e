"""Truth from the engine: base code recorded by a real worker, in-flight prefixes replayed on head.

A case's `scenario.yaml` says how to drive its base:

    workflow: OrderWorkflow          # the class started (every workflow class of `module` is registered)
    module: app.workflows            # default
    activities_module: app.activities  # default; where head's activity types are looked up for decoding
    converter: default | pydantic    # the data converter client, worker and Replayer use
    runs:                            # or the keys of one run at the top level
      - args: [{...}]                # JSON, decoded into the run's types by the worker's converter
        activities:                  # scripted results per activity type, one per call;
          charge: ["ch-1", {raise: "card declined"}]   # the last one repeats; {raise: ...} fails it
        actions:                     # sent in order once the workflow waits (no task, no activity open)
          - {signal: approve, args: [...]}
          - {update: decide, args: [...], after: submit}  # after: an activity type it must have run

The worker runs in a subprocess of this interpreter (this file is its script) with the base tree
first on sys.path and one dynamic activity that answers every activity type from the script. The
completed histories (every run of a continue-as-new chain) are cut into in-flight prefixes: after
each WorkflowTaskCompleted and the command events directly following it, dropping a prefix that
ends closed. `replay` runs those prefixes on head with `temporalio.worker.Replayer` in another
subprocess, and decodes the input of every activity still open at a prefix's end into head's
parameter types, as a new worker would. Truth: breaking iff some in-flight prefix fails either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from temporalio.common import RawValue

CLOSE_EVENTS = frozenset(
    {
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT",
        "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
    }
)
# Events a workflow task's completion writes (its commands and protocol messages).
COMMAND_EVENTS = CLOSE_EVENTS | {
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED",
    "EVENT_TYPE_TIMER_STARTED",
    "EVENT_TYPE_TIMER_CANCELED",
    "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    "EVENT_TYPE_MARKER_RECORDED",
    "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    "EVENT_TYPE_NEXUS_OPERATION_SCHEDULED",
    "EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED",
}
WFT_COMPLETED = "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"
RECORD_TIMEOUT = 120
REPLAY_TIMEOUT = 180


def load_scenario(case: Path) -> dict[str, Any]:
    """Return the case's scenario with defaults filled in and its runs as a list."""
    data: dict[str, Any] = yaml.safe_load((case / "scenario.yaml").read_text())
    run_keys = {"args", "activities", "actions"}
    if "runs" not in data:
        data["runs"] = [{k: data.pop(k) for k in list(data) if k in run_keys}]
    unknown = set(data) - {"workflow", "module", "activities_module", "converter", "runs"}
    assert not unknown, f"{case.name}/scenario.yaml: unknown keys {unknown}"
    for run in data["runs"]:
        assert set(run) <= run_keys, f"{case.name}/scenario.yaml: unknown run keys {set(run) - run_keys}"
    data.setdefault("module", "app.workflows")
    data.setdefault("activities_module", "app.activities")
    data.setdefault("converter", "default")
    return data


def in_flight_prefixes(history: dict[str, Any]) -> list[dict[str, Any]]:
    """Cut a history after each WorkflowTaskCompleted and the command events following it; keep the
    prefixes that do not end closed (the points where an execution waits)."""
    events = history["events"]
    prefixes = []
    for i, event in enumerate(events):
        if event["eventType"] != WFT_COMPLETED:
            continue
        end = i + 1
        while end < len(events) and events[end]["eventType"] in COMMAND_EVENTS:
            end += 1
        if events[end - 1]["eventType"] not in CLOSE_EVENTS:
            prefixes.append({"events": events[:end]})
    return prefixes


def tree_digest(root: Path, scenario: dict[str, Any]) -> str:
    """A key for a base tree and the scenario that drives it (cases sharing both share a recording)."""
    h = hashlib.sha256(json.dumps(scenario, sort_keys=True).encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Recording:
    """The base's completed histories (by run name), their in-flight prefixes (by file stem), and the
    workflow id of each prefix (workflow code may derive ids from it: child ids are compared on replay)."""

    histories: dict[str, dict[str, Any]]
    prefixes: dict[str, dict[str, Any]]
    workflow_ids: dict[str, str]

    def write_prefixes(self, folder: Path) -> dict[Path, str]:
        """Write each prefix as an export of its own, `<stem>/<workflow id>__<run id>.json` (proto JSON,
        named as `inflight-guard export` names a history); return each file's workflow id."""
        files: dict[Path, str] = {}
        for stem, history in self.prefixes.items():
            workflow_id = self.workflow_ids[stem]
            started = history["events"][0]["workflowExecutionStartedEventAttributes"]
            safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", workflow_id)[:150]
            path = folder / stem / f"{safe}__{started['originalExecutionRunId']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(history), encoding="utf-8")
            files[path] = workflow_id
        return files


@dataclass(frozen=True)
class Outcome:
    """One prefix replayed on a tree: the replay failure and the open activity inputs it cannot decode."""

    name: str
    replay: str | None
    decode: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.replay is not None or bool(self.decode)


@dataclass(frozen=True)
class Truth:
    outcomes: list[Outcome]

    @property
    def verdict(self) -> str:
        return "breaking" if any(o.failed for o in self.outcomes) else "safe"

    @property
    def sources(self) -> set[str]:
        """What made it breaking: `replay`, `activity_decode`, or both."""
        found = {"replay" for o in self.outcomes if o.replay is not None}
        return found | {"activity_decode" for o in self.outcomes if o.decode}

    def explain(self) -> str:
        failed = [o for o in self.outcomes if o.failed]
        lines = [
            f"truth {self.verdict}: {len(failed)} of {len(self.outcomes)} in-flight prefixes fail on head"
        ]
        for o in failed[:3]:
            lines.append(f"  {o.name}: replay={(o.replay or '')[:300]!r} decode={o.decode}")
        return "\n".join(lines)


class TruthRecorder:
    """Records each (base tree, scenario) once per session on the dev server at `server`."""

    def __init__(self, server: str, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self._recordings: dict[str, Recording] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def recording(self, base: Path, scenario: dict[str, Any]) -> Recording:
        """Return the recording of `base` driven by `scenario`, recording it on first use."""
        key = tree_digest(base, scenario)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._recordings:
                self._recordings[key] = self._record(base, scenario, self.workdir / key)
            return self._recordings[key]

    def prefetch(self, cases: Iterable[Path], workers: int = 3) -> None:
        """Record every distinct base of `cases` at once (the worker processes mostly wait on the server)."""
        todo: dict[str, tuple[Path, dict[str, Any]]] = {}
        for case in cases:
            scenario = load_scenario(case)
            todo.setdefault(tree_digest(case / "base", scenario), (case / "base", scenario))
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda item: self.recording(*item), todo.values()):
                pass

    def _record(self, base: Path, scenario: dict[str, Any], out: Path) -> Recording:
        out.mkdir(parents=True, exist_ok=True)
        runs = _child(
            "record", {"server": self.server, "root": str(base), "scenario": scenario}, out, RECORD_TIMEOUT
        )
        prefixes: dict[str, dict[str, Any]] = {}
        workflow_ids: dict[str, str] = {}
        for run_name, run in runs.items():
            for prefix in in_flight_prefixes(run["history"]):
                stem = f"{run_name}-e{int(prefix['events'][-1]['eventId']):03d}"
                prefixes[stem] = prefix
                workflow_ids[stem] = run["workflow_id"]
        assert prefixes, f"{base}: the scenario left no in-flight point to replay"
        recording = Recording({k: v["history"] for k, v in runs.items()}, prefixes, workflow_ids)
        # The recorder's own check: the base replays its own prefixes cleanly.
        itself = replay(base, recording, scenario, out / "self")
        assert itself.verdict == "safe", f"{base} does not replay on itself:\n{itself.explain()}"
        return recording


def replay(tree: Path, recording: Recording, scenario: dict[str, Any], work: Path) -> Truth:
    """Replay every in-flight prefix of `recording` on `tree` with the real Replayer (in a subprocess)."""
    files = recording.write_prefixes(work / "prefixes")
    answer = _child(
        "replay",
        {"root": str(tree), "scenario": scenario, "prefixes": {str(p): wid for p, wid in files.items()}},
        work,
        REPLAY_TIMEOUT,
    )
    return Truth([Outcome(o["name"], o["replay"], o["decode"]) for o in answer["outcomes"]])


def _child(mode: str, spec: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    """Run this file as a script in `mode` and return the JSON it wrote."""
    work.mkdir(parents=True, exist_ok=True)
    fd, result = tempfile.mkstemp(suffix=".json", dir=work)
    os.close(fd)
    spec = {**spec, "out": result}
    # -P: the tests folder stays off sys.path; only the tree under test provides `app`.
    run = subprocess.run(
        [sys.executable, "-P", str(Path(__file__).resolve()), mode, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # no __pycache__ inside the fixtures
    )
    assert run.returncode == 0, f"{mode} {spec.get('root')}: rc {run.returncode}\n{run.stderr[-4000:]}"
    data: dict[str, Any] = json.loads(Path(result).read_text())
    return data


# ---- the subprocess side: imports the tree under test, never the project -------------------------


def _converter(name: str) -> Any:
    if name == "pydantic":
        from temporalio.contrib.pydantic import pydantic_data_converter

        return pydantic_data_converter
    from temporalio.converter import DataConverter

    return DataConverter.default


def _workflow_classes(module_name: str) -> list[type]:
    import importlib

    from temporalio import workflow

    module = importlib.import_module(module_name)
    return [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and v.__module__ == module.__name__
        and workflow._Definition.from_class(v) is not None
    ]


def _quiet_runtime() -> Any:
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


def _waiting(events: list[Any], after: str | None) -> bool:
    """True when the execution waits: no workflow task, activity or child open (and `after` ran)."""
    from temporalio.api.enums.v1 import EventType

    open_tasks = 0
    activities: dict[int, str] = {}
    children: set[int] = set()
    for e in events:
        kind = EventType.Name(e.event_type)
        if kind == "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED":
            open_tasks += 1
        elif kind in (
            "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
            "EVENT_TYPE_WORKFLOW_TASK_FAILED",
            "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT",
        ):
            open_tasks -= 1
        elif kind == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            activities[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif kind.startswith("EVENT_TYPE_ACTIVITY_TASK_") and kind.endswith(
            ("COMPLETED", "FAILED", "TIMED_OUT", "CANCELED")
        ):
            attrs = getattr(e, e.WhichOneof("attributes"))
            activities.pop(attrs.scheduled_event_id, None)
        elif kind == "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED":
            children.add(e.event_id)
        elif kind.startswith("EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_") and not kind.endswith("STARTED"):
            children.discard(getattr(e, e.WhichOneof("attributes")).initiated_event_id)
    ran = after is None or any(
        e.activity_task_scheduled_event_attributes.activity_type.name == after
        for e in events
        if EventType.Name(e.event_type) == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    )
    return open_tasks <= 0 and not activities and not children and ran


_SCRIPT: dict[str, list[Any]] = {}


async def _scripted(args: Sequence[RawValue]) -> Any:
    """The one activity of the recording worker: the next scripted result of the type asked for."""
    from temporalio import activity
    from temporalio.exceptions import ApplicationError

    results = _SCRIPT.get(activity.info().activity_type)
    if not results:
        return None
    item = results.pop(0) if len(results) > 1 else results[0]
    if isinstance(item, dict) and set(item) == {"raise"}:
        raise ApplicationError(str(item["raise"]), type="Scripted", non_retryable=True)
    return item


async def _record_main(spec: dict[str, Any]) -> dict[str, Any]:
    from temporalio import activity
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.worker import Worker

    scenario = spec["scenario"]
    classes = _workflow_classes(scenario["module"])
    started = next((c for c in classes if c.__name__ == scenario["workflow"]), None)
    assert started is not None, f"{scenario['module']} has no workflow class {scenario['workflow']}"
    script = _SCRIPT
    scripted = activity.defn(dynamic=True)(_scripted)
    client = await Client.connect(
        spec["server"], data_converter=_converter(scenario["converter"]), runtime=_quiet_runtime()
    )
    queue = f"truth-{uuid.uuid4()}"
    from temporalio import workflow

    defn_name = workflow._Definition.must_from_class(started).name
    histories: dict[str, Any] = {}
    async with Worker(client, task_queue=queue, workflows=classes, activities=[scripted]):
        for n, run in enumerate(scenario["runs"], 1):
            script.clear()
            script.update({k: list(v) for k, v in (run.get("activities") or {}).items()})
            handle = await client.start_workflow(
                defn_name, args=run.get("args", []), id=f"{defn_name}-{n}-{uuid.uuid4()}", task_queue=queue
            )
            for action in run.get("actions") or []:
                for _ in range(600):
                    if _waiting(list((await handle.fetch_history()).events), action.get("after")):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"run {n}: the workflow never waited for {action}")
                if "signal" in action:
                    await handle.signal(action["signal"], args=action.get("args", []))
                else:
                    await handle.execute_update(action["update"], args=action.get("args", []))
            # A run that fails (a saga that compensated) is recorded like any other.
            with contextlib.suppress(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), 60)
            run_id = handle.first_execution_run_id or handle.result_run_id
            part = 0
            while run_id:
                history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
                histories[f"run{n}" + (f"-can{part}" if part else "")] = {
                    "workflow_id": handle.id,
                    "history": json.loads(history.to_json()),
                }
                last = history.events[-1]
                run_id = (
                    last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                    if last.HasField("workflow_execution_continued_as_new_event_attributes")
                    else None
                )
                part += 1
    return histories


async def _replay_main(spec: dict[str, Any]) -> dict[str, Any]:
    import importlib
    import inspect
    import typing

    from temporalio import activity
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    scenario = spec["scenario"]
    converter = _converter(scenario["converter"])
    classes = _workflow_classes(scenario["module"])
    activities: dict[str, Any] = {}
    module = importlib.import_module(scenario["activities_module"])
    for value in vars(module).values():
        defn = activity._Definition.from_callable(value) if callable(value) else None
        if defn is not None and defn.name:
            activities[defn.name] = value

    names = sorted(spec["prefixes"])
    histories = [
        WorkflowHistory.from_json(spec["prefixes"][p], Path(p).read_text(encoding="utf-8")) for p in names
    ]

    def open_inputs(history: Any) -> list[str]:
        """Decode the input of each activity still open at the end into head's parameter types."""
        scheduled: dict[int, Any] = {}
        for e in history.events:
            kind = EventType.Name(e.event_type)
            if kind == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
                scheduled[e.event_id] = e.activity_task_scheduled_event_attributes
            elif kind.startswith("EVENT_TYPE_ACTIVITY_TASK_") and kind != "EVENT_TYPE_ACTIVITY_TASK_STARTED":
                attrs = getattr(e, e.WhichOneof("attributes"))
                scheduled.pop(getattr(attrs, "scheduled_event_id", 0), None)
        problems = []
        for attrs in scheduled.values():
            fn = activities.get(attrs.activity_type.name)
            if fn is None:
                continue  # a type head no longer defines: replay says whether the workflow still asks
            hints = typing.get_type_hints(fn)
            types = [hints.get(p, typing.Any) for p in inspect.signature(fn).parameters]
            try:
                converter.payload_converter.from_payloads(list(attrs.input.payloads), types)
            except Exception as exc:
                problems.append(f"{attrs.activity_type.name}: {type(exc).__name__}: {exc}")
        return problems

    async def each() -> Any:
        for h in histories:
            yield h

    outcomes = []
    replayer = Replayer(workflows=classes, data_converter=converter, runtime=_quiet_runtime())
    async with replayer.workflow_replay_iterator(each()) as results:
        done = [r async for r in results]
    for name, history, result in zip(names, histories, done, strict=True):
        failure = result.replay_failure
        text = None
        if failure is not None:
            text = f"{type(failure).__name__}: {failure} {failure.__cause__ or ''}".strip()
        outcomes.append({"name": Path(name).parent.name, "replay": text, "decode": open_inputs(history)})
    return {"outcomes": outcomes}


def _main(mode: str, spec: dict[str, Any]) -> None:
    sys.path.insert(0, spec["root"])
    run = _record_main if mode == "record" else _replay_main
    answer = asyncio.run(run(spec))
    Path(spec["out"]).write_text(json.dumps(answer), encoding="utf-8")


if __name__ == "__main__":
    try:
        _main(sys.argv[1], json.loads(sys.argv[2]))
        code = 0
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        print(f"truth_recorder {sys.argv[1]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # a process that used the SDK's runtime may abort at exit otherwise
