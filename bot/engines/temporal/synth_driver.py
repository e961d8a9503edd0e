"""Temporal synthesis driver: runs in the USER's interpreter, with their temporalio and the BASE code.

It records in-flight executions of the base workflows on a real Temporal server (a dev server the
parent started on loopback, or `temporal.dev_server`): one worker runs the base workflow classes,
every activity is a stub answering under the activity's own name with a value of its declared
return type (built by hypothesis from the type), and workflow inputs are built the same way from
the run signature. Each execution is driven through one variant (minimal values, flipped values,
signals and updates delivered, the k-th activity failing) and its history is cut into the prefixes
an execution can be in flight at: after each completed workflow task and the commands it recorded.

Timers do not cost wall time: the worker starts every timer with a 10 ms duration (replay does not
compare timer durations). An execution that stops making progress is waiting for input nobody
sends; it is terminated and its last wait point kept.

    python synth_driver.py CONFIG.json

stdout, one JSON object per line: `ready`, then `history` per file written, `reached` per
workflow, `error` for what could not be done (never payload data), `done`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import importlib.util
import json
import os
import sys
import time
import traceback
import typing
import uuid
from collections.abc import Sequence
from typing import Any

TIMER_SECONDS = 0.01
STALL_SECONDS = 1.0
POLL_SECONDS = 0.1
MAX_RUNS = 3  # runs followed through continue-as-new
CONCURRENCY = 16
MESSAGE_LIMIT = 300

# Events a completed workflow task's commands record, before anything else happens.
COMMAND_EVENTS = {
    "ACTIVITY_TASK_SCHEDULED",
    "TIMER_STARTED",
    "TIMER_CANCELED",
    "ACTIVITY_TASK_CANCEL_REQUESTED",
    "START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    "MARKER_RECORDED",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "WORKFLOW_PROPERTIES_MODIFIED",
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    "NEXUS_OPERATION_SCHEDULED",
}
CLOSING = {
    "WORKFLOW_EXECUTION_COMPLETED",
    "WORKFLOW_EXECUTION_FAILED",
    "WORKFLOW_EXECUTION_CANCELED",
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
    "WORKFLOW_EXECUTION_TERMINATED",
    "WORKFLOW_EXECUTION_TIMED_OUT",
}


try:
    from temporalio import workflow as _workflow
    from temporalio.common import RawValue

    @_workflow.defn(dynamic=True, sandboxed=False)
    class AnyChild:
        """A child workflow type the base does not define here: it completes at once."""

        @_workflow.run
        async def run(self, args: Sequence[RawValue]) -> Any:
            return None

except Exception:  # no SDK, or one without dynamic workflows: `_run` says what is missing
    AnyChild = None  # type: ignore[assignment,misc]


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _error(message: str, type_name: str | None = None) -> None:
    _emit({"kind": "error", "type": type_name, "message": message.splitlines()[0][:MESSAGE_LIMIT]})


def _shared(name: str) -> Any:
    """A module of the Python layer (bot/engines/python), loaded from its file."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), "python", name)
    spec = importlib.util.spec_from_file_location(f"_inflight_guard_{name[:-3]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- values from types -------------------------------------------------------------------------


class Values:
    """Values of declared types (bot/engines/python/values.py, by hypothesis): the simplest one, and
    one whose leaves are all filled; None (said once per type) when none can be built."""

    def __init__(self, home: str | None = None) -> None:
        from temporalio.converter import DataConverter

        converter = DataConverter.default.payload_converter

        def encodes(hint: Any, value: Any) -> bool:
            try:
                converter.from_payloads(converter.to_payloads([value]), [hint])
                return True
            except Exception:
                return False

        self.shared = _shared("values.py")
        self.values = self.shared.Values(encodes, home)  # ImportError without hypothesis
        self.failed: set[str] = set()

    def of(self, annotation: Any, mode: str, hint: Any = None) -> Any:
        """`mode`: minimal | flipped | hint (the minimal value with every leaf of the hint's type set
        to the hint: a literal the workflow compares against, so the branch it guards is taken)."""
        try:
            if mode == "hint":
                return _substitute(self.values.get(annotation, False), hint)
            return self.values.get(annotation, mode == "flipped")
        except self.shared.Unbuildable as exc:
            name = self.shared.type_name(annotation)
            if name not in self.failed:
                self.failed.add(name)
                _error(f"{exc}: None is used", None)
            return None


def _substitute(value: Any, hint: Any, depth: int = 0) -> Any:
    """`value` with each leaf of `hint`'s type replaced by `hint` (bools and enums are kept)."""
    if depth > 8 or value is None or isinstance(value, (bool, enum.Enum)):
        return value
    if isinstance(hint, str) and isinstance(value, str):
        return hint
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and isinstance(value, (int, float)):
        return type(value)(hint)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _substitute(getattr(value, f.name), hint, depth + 1)
            for f in dataclasses.fields(value)
            if f.init
        }
        try:
            return dataclasses.replace(value, **changes)
        except Exception:
            return value
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, dict) and hasattr(value, "model_copy"):
        return value.model_copy(
            update={k: _substitute(getattr(value, k, None), hint, depth + 1) for k in fields}
        )
    if isinstance(value, list):
        return [_substitute(v, hint, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, hint, depth + 1) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, hint, depth + 1) for k, v in value.items()}
    return value


# -- what the base declares --------------------------------------------------------------------


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def _activity_types(roots: Sequence[str]) -> dict[str, Any]:
    """Activity name → declared return type, for every activity defined in a loaded base module."""
    from temporalio import activity

    found: dict[str, Any] = {}

    def take(fn: Any) -> None:
        defn = getattr(fn, "__temporal_activity_definition", None)
        if defn is None or not getattr(defn, "name", None):
            return
        ret = getattr(defn, "ret_type", None)
        if ret is None:
            ret = _hints(getattr(defn, "fn", fn)).get("return")
        found.setdefault(defn.name, ret)

    del activity  # imported only to be sure the SDK is the one that set the attributes
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if not any(path.startswith(r) for r in roots):
            continue
        for value in list(vars(module).values()):
            if callable(value):
                take(value)
            if isinstance(value, type):
                for attr in list(vars(value).values()):
                    take(getattr(attr, "__func__", attr))
    return found


def _workflow_classes(roots: Sequence[str]) -> dict[str, type]:
    """Every workflow class of a loaded base module, by its type name (children run too)."""
    found: dict[str, type] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if not any(path.startswith(r) for r in roots):
            continue
        for value in list(vars(module).values()):
            defn = getattr(value, "__temporal_workflow_definition", None)
            if isinstance(value, type) and defn is not None and getattr(defn, "name", None):
                found.setdefault(defn.name, value)
    return found


@dataclasses.dataclass
class Variant:
    label: str
    mode: str = "minimal"  # how values are built: minimal | flipped | hint
    hint: Any = None  # with mode "hint": the literal every leaf of its type takes
    signals: bool = False
    fail_call: int = 0  # the k-th activity call of the execution fails (0: none)
    calls: int = 0


@dataclasses.dataclass
class Target:
    type_name: str
    cls: type
    reached: set[str] = dataclasses.field(default_factory=set)
    variants: list[str] = dataclasses.field(default_factory=list)
    seen: set[tuple[str, ...]] = dataclasses.field(default_factory=set)
    written: int = 0
    executions: int = 0
    truncated: bool = False
    max_calls: int = 0


# -- cutting histories ---------------------------------------------------------------------------


def _event_type(event: Any) -> str:
    from temporalio.api.enums.v1 import EventType

    return str(EventType.Name(event.event_type)).removeprefix("EVENT_TYPE_")


def _label(event: Any, kind: str) -> str:
    if kind == "ACTIVITY_TASK_SCHEDULED":
        return f"activity {event.activity_task_scheduled_event_attributes.activity_type.name}"
    if kind == "START_CHILD_WORKFLOW_EXECUTION_INITIATED":
        return f"child {event.start_child_workflow_execution_initiated_event_attributes.workflow_type.name}"
    if kind == "TIMER_STARTED":
        return "timer"
    if kind == "MARKER_RECORDED":
        return f"marker {event.marker_recorded_event_attributes.marker_name}"
    if kind == "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED":
        return "signal external"
    return kind.lower().replace("_", " ")


def _signature(event: Any, kind: str) -> str:
    return f"{kind}:{_label(event, kind)}"


DATA_EVENTS = (
    "workflow_execution_started_event_attributes",
    "activity_task_completed_event_attributes",
    "workflow_execution_signaled_event_attributes",
    "workflow_execution_update_accepted_event_attributes",
    "child_workflow_execution_completed_event_attributes",
)


def _data(events: Sequence[Any]) -> str:
    """A digest of the data a prefix hands the workflow (never written out)."""
    digest = hashlib.sha256()
    for e in events:
        for field in DATA_EVENTS:
            if e.HasField(field):
                attrs = getattr(e, field)
                for name in ("input", "result", "accepted_request"):
                    if attrs.DESCRIPTOR.fields_by_name.get(name) is not None and attrs.HasField(name):
                        digest.update(getattr(attrs, name).SerializeToString(deterministic=True))
    return digest.hexdigest()[:16]


def cut(events: Sequence[Any]) -> list[tuple[int, str, tuple[str, ...]]]:
    """The in-flight points of one run: (prefix length, what it waits on, its event signature)."""
    kinds = [_event_type(e) for e in events]
    points: list[tuple[int, str, tuple[str, ...]]] = []
    for i, kind in enumerate(kinds):
        if kind != "WORKFLOW_TASK_COMPLETED":
            continue
        j = i + 1
        while j < len(kinds) and kinds[j] in COMMAND_EVENTS:
            j += 1
        if j < len(kinds) and kinds[j] in CLOSING and kinds[j] != "WORKFLOW_EXECUTION_TERMINATED":
            continue  # the task closed the run: not in flight there
        waits = [_label(events[k], kinds[k]) for k in range(i + 1, j) if kinds[k] in COMMAND_EVENTS]
        # The same commands with other data (inputs, results, signals) steer head code differently.
        signature = (*(_signature(events[k], kinds[k]) for k in range(j)), _data(events[:j]))
        points.append((j, ", ".join(waits) or "a signal, an update or a condition", signature))
    return points


# -- driving executions --------------------------------------------------------------------------


def _working(raw: Any) -> bool:
    """True while a first attempt of a workflow task, or of an activity a worker took, is under way.

    Such an execution is progressing, however slowly: values built for other executions' stubs
    hold this worker's loop, and a loaded machine slows the server. An execution with nothing
    under way is waiting for input nobody sends, or for a task queue no worker here polls (an
    activity nobody takes), and a retried task is not progress: those stall as before.
    """
    from temporalio.api.enums.v1 import PendingActivityState

    if raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt <= 1:
        return True
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    return any(a.attempt <= 1 and a.state == started for a in raw.pending_activities)


async def _timer_pending(handle: Any) -> bool:
    """True when the execution has started a timer that has not fired nor been canceled."""
    history = await handle.fetch_history()
    pending: set[str] = set()
    for event in history.events:
        kind = _event_type(event)
        if kind == "TIMER_STARTED":
            pending.add(event.timer_started_event_attributes.timer_id)
        elif kind == "TIMER_FIRED":
            pending.discard(event.timer_fired_event_attributes.timer_id)
        elif kind == "TIMER_CANCELED":
            pending.discard(event.timer_canceled_event_attributes.timer_id)
    return bool(pending)


class Synthesis:
    def __init__(self, config: dict[str, Any], values: Values) -> None:
        self.config = config
        self.values = values
        self.out = config["out"]
        self.max_events = int(config.get("max_events", 1000))
        self.histories = int(config.get("histories", 64))
        self.deadline = time.monotonic() + float(config.get("seconds", 120))
        self.plans: dict[str, Variant] = {}
        self.hints: dict[str, list[Any]] = config.get("hints", {})
        self.activity_types: dict[str, Any] = {}
        self.queue = f"inflight-guard-synth-{uuid.uuid4().hex[:8]}"
        self.short_timers = False  # every timer starts with TIMER_SECONDS (`_patch_timers`)

    # the stub activity and child workflow ------------------------------------------------------

    def stub(self) -> Any:
        from temporalio import activity
        from temporalio.exceptions import ApplicationError

        synth = self

        @activity.defn(dynamic=True)
        async def stub(args: Sequence[RawValue]) -> Any:
            info = activity.info()
            plan = synth.plans.get(info.workflow_id or "")
            mode = "minimal"
            if plan is not None:
                plan.calls += 1
                mode = plan.mode
                if plan.fail_call and plan.calls == plan.fail_call:
                    raise ApplicationError(
                        f"synthesized failure of {info.activity_type}",
                        type="SynthesizedFailure",
                        non_retryable=True,
                    )
            return synth.values.of(
                synth.activity_types.get(info.activity_type), mode, plan.hint if plan else None
            )

        return stub

    # one execution ---------------------------------------------------------------------------

    def _args(self, types: Sequence[Any] | None, mode: str, hint: Any = None) -> list[Any]:
        return [self.values.of(t, mode, hint) for t in (types or [])]

    async def execute(self, client: Any, target: Target, variant: Variant) -> None:
        from temporalio import workflow
        from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateStage

        defn = workflow._Definition.must_from_class(target.cls)
        workflow_id = f"synth-{target.type_name}-{uuid.uuid4().hex[:12]}"
        self.plans[workflow_id] = variant
        handle = await client.start_workflow(
            target.type_name,
            args=self._args(defn.arg_types, variant.mode, variant.hint),
            id=workflow_id,
            task_queue=self.queue,
        )
        if variant.signals:
            for name, signal in sorted((k, v) for k, v in defn.signals.items() if k):
                try:
                    await handle.signal(name, args=self._args(signal.arg_types, "flipped"))
                except Exception as exc:
                    _error(f"signal {name} not delivered ({type(exc).__name__})", target.type_name)
            for name, update in sorted((k, v) for k, v in defn.updates.items() if k):
                try:
                    await asyncio.wait_for(
                        handle.start_update(
                            name,
                            args=self._args(update.arg_types, "flipped"),
                            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                        ),
                        timeout=STALL_SECONDS * 3,
                    )
                except Exception:
                    pass  # refused by its validator, or not accepted: the history says which
        length, since, runs = -1, time.monotonic(), set[str]()
        while True:
            description = await handle.describe()
            if description.status != WorkflowExecutionStatus.RUNNING:
                break
            runs.add(description.run_id or "")
            if len(runs) > MAX_RUNS:
                # A chain that keeps continuing as new (a polling loop): the runs capture follows are
                # recorded; later ones were not, so the recording is marked cut short.
                target.truncated = True
                await handle.terminate(reason="inflight-guard synthesis: recorded")
                break
            n = description.raw_description.workflow_execution_info.history_length
            now = time.monotonic()
            if n != length or _working(description.raw_description):
                length, since = n, now
            elif now - since > STALL_SECONDS and self.short_timers and await _timer_pending(handle):
                since = now  # a short timer fires on the server's next tick, about a second later
            if n >= self.max_events or now - since > STALL_SECONDS or now > self.deadline:
                target.truncated |= n >= self.max_events or now > self.deadline
                await handle.terminate(reason="inflight-guard synthesis: recorded")
                break
            await asyncio.sleep(POLL_SECONDS)
        target.executions += 1
        target.variants.append(variant.label)
        target.max_calls = max(target.max_calls, variant.calls)
        # From the run this started: `describe` follows the chain to its last run, capture follows it
        # from the first (each run's in-flight points are recorded).
        await self.capture(client, target, variant, workflow_id, handle.result_run_id or description.run_id)

    async def capture(self, client: Any, target: Target, variant: Variant, wid: str, run_id: str) -> None:
        from temporalio.client import WorkflowHistory

        for _ in range(MAX_RUNS):
            history = await client.get_workflow_handle(wid, run_id=run_id).fetch_history()
            events = list(history.events)
            history_run = run_id
            for e in events:
                kind = _event_type(e)
                if kind in COMMAND_EVENTS:
                    target.reached.add(_label(e, kind))
            for length, waits, signature in cut(events):
                if signature in target.seen or target.written >= self.histories:
                    target.truncated |= target.written >= self.histories and signature not in target.seen
                    continue
                target.seen.add(signature)
                target.written += 1
                slug = "".join(c if c.isalnum() else "-" for c in variant.label).strip("-")
                event_id = events[length - 1].event_id
                # Named as `inflight-guard export` names a history: the runner replays it under
                # this workflow id (code may derive child ids from it).
                folder = os.path.join(self.out, target.type_name, f"{slug}@{event_id}")
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, f"{wid}__{history_run}.json")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(WorkflowHistory(workflow_id=wid, events=events[:length]).to_json())
                _emit(
                    {
                        "kind": "history",
                        "type": target.type_name,
                        "file": path,
                        "variant": variant.label,
                        "event_id": event_id,
                        "point": waits,
                        "open": True,
                    }
                )
            last = _event_type(events[-1]) if events else ""
            if last != "WORKFLOW_EXECUTION_CONTINUED_AS_NEW":
                return
            run_id = events[-1].workflow_execution_continued_as_new_event_attributes.new_execution_run_id

    # exploration -----------------------------------------------------------------------------

    async def explore(self, client: Any, targets: Sequence[Target], budget: int) -> None:
        from temporalio import workflow

        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(target: Target, variant: Variant) -> None:
            async with gate:
                if time.monotonic() > self.deadline:
                    target.truncated = True
                    return
                try:
                    await self.execute(client, target, variant)
                except Exception as exc:
                    _error(f"execution {variant.label} not recorded: {type(exc).__name__}", target.type_name)

        first: list[Any] = []
        for t in targets:
            defn = workflow._Definition.must_from_class(t.cls)
            listening = any(k for k in defn.signals) or any(k for k in defn.updates)
            basics = [Variant("minimal"), Variant("flipped", "flipped"), Variant("signals", signals=True)]
            basics = [v for v in basics if v.label != "signals" or listening][:budget]
            # Values the workflow compares against (base and head), up to half the budget: the rest
            # is left for activity failures.
            room = max(0, min(budget - len(basics), budget // 2))
            hints = [
                Variant(f"value {h!r}"[:40], "hint", signals=listening, hint=h)
                for h in self.hints.get(t.type_name, [])[:room]
            ]
            first.extend((t, v) for v in [*basics, *hints])
        await asyncio.gather(*(one(t, v) for t, v in first))
        second: list[Any] = []
        for t in targets:
            room = budget - len([x for x in first if x[0] is t])
            for k in range(1, min(t.max_calls, room) + 1):
                second.append((t, Variant(f"activity call {k} fails", fail_call=k)))
            if room < t.max_calls:
                t.truncated = True
        await asyncio.gather(*(one(t, v) for t, v in second))


def _prebuild(values: Values, activity_types: dict[str, Any], targets: Sequence[Target]) -> None:
    """Build every value the executions will need before they start: building inside an activity
    would hold the worker's event loop while executions wait."""
    from temporalio import workflow

    types: list[Any] = list(activity_types.values())
    for t in targets:
        defn = workflow._Definition.must_from_class(t.cls)
        types += list(defn.arg_types or [])
        for handler in [*defn.signals.values(), *defn.updates.values()]:
            types += list(getattr(handler, "arg_types", None) or [])
    for annotation in types:
        for mode in ("minimal", "flipped"):
            values.of(annotation, mode)


def _patch_timers() -> bool:
    """Start every timer with a short duration: replay compares timers by sequence, not length."""
    try:
        from temporalio.worker import _workflow_instance as instance

        handle = instance._TimerHandle
        original = handle._apply_start_command
    except (ImportError, AttributeError):
        return False

    def short(self: Any, command: Any, delay: float) -> None:
        original(self, command, min(delay, TIMER_SECONDS))

    handle._apply_start_command = short  # type: ignore[method-assign]
    return True


async def _connect(address: str, seconds: float = 5.0) -> Any:
    """The server is up before the driver starts (the dev server the check started answers its health
    check first): a few seconds absorb a hiccup, and a configured address nobody serves fails fast."""
    from temporalio.client import Client

    deadline = time.monotonic() + seconds
    while True:
        try:
            return await Client.connect(address, namespace="default")
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def _run(config: dict[str, Any]) -> int:
    for p in reversed(config["paths"]):
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        values = Values(config.get("hypothesis_home"))
    except ImportError:
        _error(f"synthesis needs hypothesis in {sys.executable}: pip install hypothesis")
        return 2
    import temporalio
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker

    runner = _shared("runner.py")
    classes, errors = runner._load_workflows(config)
    for name in config.get("activity_modules", []):
        try:
            importlib.import_module(name)
        except BaseException as exc:
            _error(f"activity module {name} failed to import: {type(exc).__name__}")
    roots = [os.path.join(p, "") for p in config["paths"]]
    timers = _patch_timers()
    _emit(
        {
            "kind": "ready",
            "sdk": getattr(temporalio, "__version__", "unknown"),
            "python": sys.version.split()[0],
            "import_errors": errors,
            "short_timers": timers,
        }
    )
    synth = Synthesis(config, values)
    synth.short_timers = timers
    synth.activity_types = _activity_types(roots)
    registered = _workflow_classes(roots)
    registered.update(classes)
    targets = [Target(name, cls) for name, cls in sorted(classes.items())]
    _prebuild(values, synth.activity_types, targets)
    if not targets:
        return 0
    try:
        client = await _connect(config["address"])
    except Exception as exc:
        _error(f"no Temporal server at {config['address']}: {type(exc).__name__}")
        return 2
    worker = Worker(
        client,
        task_queue=synth.queue,
        workflows=[*registered.values(), *([AnyChild] if AnyChild is not None else [])],
        activities=[synth.stub()],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=32,
    )
    async with worker:
        await synth.explore(client, targets, int(config.get("executions", 8)))
    for t in targets:
        _emit(
            {
                "kind": "reached",
                "type": t.type_name,
                "executions": t.executions,
                "histories": t.written,
                "commands": sorted(t.reached),
                "variants": t.variants,
                "truncated": t.truncated,
            }
        )
    return 0


def main() -> None:
    try:
        with open(sys.argv[1], encoding="utf-8") as fh:
            config = json.load(fh)
        code = asyncio.run(_run(config))
    except BaseException as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" at {os.path.basename(frame[0].filename)}:{frame[0].lineno}" if frame else ""
        _error(f"synthesis stopped: {type(exc).__name__}{where}")
        code = 2
    _emit({"kind": "done"})
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
