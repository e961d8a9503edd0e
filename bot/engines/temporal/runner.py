"""Replay runner: runs in the USER's interpreter, with their temporalio, as a plain script.

Self-contained on purpose (standard library + temporalio only): inflight-guard need not be
installed where it runs; the helpers it shares with the other Python runners it loads by path
(bot/engines/python/runner.py). Protocol, one JSON object per line:

stdin   first line  {"paths": [...], "workflows": [{"type", "modules": [...], "class"}],
                     "replay": [types], "cache": dir | null, "sandbox": true}
        then        {"i": n, "path": file, "name": display name}     (EOF ends the run)
stdout  first line  {"kind": "ready", "sdk": version, "python": version, "import_errors": [...]}
        then        {"kind": "result", "i": n, "outcome": ..., ...}  one per history, as they finish

Outcomes: ok | nondeterminism | error | skipped | unmatched (type not replayed here) |
unreadable (not a history). A failure's SDK text goes to the parent twice, with the exception's
type (`exception`): as `text`, from which the parent reads a code, an event and names and which
it then drops, and as `raw`, redacted against every payload string of its history, for
`--replay-log`. Neither is ever shown: the head code may have put data derived from a payload in
it. `message` holds only this runner's own fixed sentences.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from typing import Any

CLOSE_EVENTS = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED": "completed",
    "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED": "failed",
    "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT": "timed_out",
    "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED": "canceled",
    "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED": "terminated",
    "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW": "continued_as_new",
}
# Command events (what workflow code asks for) and the attribute naming what they ask for.
ACTIVITY_DONE = {
    "EVENT_TYPE_ACTIVITY_TASK_COMPLETED": "activity_task_completed_event_attributes",
    "EVENT_TYPE_ACTIVITY_TASK_FAILED": "activity_task_failed_event_attributes",
    "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT": "activity_task_timed_out_event_attributes",
    "EVENT_TYPE_ACTIVITY_TASK_CANCELED": "activity_task_canceled_event_attributes",
}
COMMAND_EVENTS = {
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED": ("activity", "activity_type"),
    "EVENT_TYPE_TIMER_STARTED": ("timer", None),
    "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED": ("child_workflow", "workflow_type"),
    "EVENT_TYPE_MARKER_RECORDED": ("marker", None),
    "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": ("signal_external", None),
    "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": ("cancel_external", None),
    "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": ("upsert_search_attributes", None),
    "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED": ("upsert_memo", None),
}


def _shared() -> Any:
    """The runners' standard-library helpers (emit, import, redaction), loaded by path."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python", "runner.py")
    spec = importlib.util.spec_from_file_location("inflight_guard_runner_shared", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shared = _shared()
_emit, _import_error, _load_workflows = shared._emit, shared._import_error, shared._load_workflows
_binary, _load_json, _redact, serve = shared._binary, shared._load_json, shared._redact, shared.serve
MESSAGE_LIMIT, RAW_LIMIT = shared.MESSAGE_LIMIT, shared.RAW_LIMIT


def _wrap(data: Any) -> Any:
    """Accept the shapes people export: {"events": []}, a bare list, {"history": {...}}."""
    if isinstance(data, list):
        return {"events": data}
    if isinstance(data, dict) and "events" not in data and isinstance(data.get("history"), dict):
        return data["history"]
    return data


def _parse(raw: bytes, path: str, cache: str | None) -> tuple[Any, str]:
    """Return (History proto, format) from exported bytes; raises ValueError when unreadable."""
    from temporalio.api.history.v1 import History
    from temporalio.client import WorkflowHistory

    if not raw.strip():
        raise ValueError("empty file")
    head = raw.lstrip()[:1]
    if head not in (b"{", b"["):
        return _binary(raw, History()), "binpb"
    digest = hashlib.sha256(raw).hexdigest()
    cached = os.path.join(cache, digest[:2], digest + ".binpb") if cache else None
    if cached and os.path.exists(cached):
        history = History()
        try:
            with open(cached, "rb") as fh:
                blob = fh.read()
            # A checksum first: a torn or damaged entry is parsed again, never trusted.
            if hashlib.sha256(blob[32:]).digest() == blob[:32]:
                history.ParseFromString(blob[32:])
                if history.events:
                    return history, "json (cached)"
        except Exception:
            pass
    data = _wrap(_load_json(raw))
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ValueError(
            'not a history: expected {"events": [...]} as `temporal workflow show -o json` writes'
        )
    if not data["events"]:
        raise ValueError("history has no events")
    try:
        parsed = WorkflowHistory.from_json(path, data)
    except Exception as exc:  # its text may quote the file's payloads: the type says enough
        raise ValueError(f"not a Temporal history ({type(exc).__name__})") from None
    history = History(events=parsed.events)
    if cached:
        _store(cached, history.SerializeToString())
    return history, "json"


def _store(cached: str, data: bytes) -> None:
    """Write a cache entry atomically; a cache that cannot be written is simply not used."""
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(cached), suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(hashlib.sha256(data).digest() + data)
        os.replace(tmp, cached)
    except OSError:
        pass


def _enum_name(event: Any) -> str:
    from temporalio.api.enums.v1 import EventType

    return str(EventType.Name(event.event_type))


def _describe(history: Any) -> dict[str, Any]:
    events = history.events
    first = events[0]
    if _enum_name(first) != "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED":
        raise ValueError(
            f"first event is {_enum_name(first)}, not WorkflowExecutionStarted: export the whole history"
        )
    attrs = first.workflow_execution_started_event_attributes
    last = _enum_name(events[-1])
    commands = 0
    for e in events:
        if _enum_name(e) in COMMAND_EVENTS:
            commands += 1
    info: dict[str, Any] = {
        "type": attrs.workflow_type.name,
        "task_queue": attrs.task_queue.name or None,
        "run_id": attrs.original_execution_run_id or None,
        "events": len(events),
        "commands": commands,
        "closed": CLOSE_EVENTS.get(last),
        "start": first.event_time.ToSeconds() if first.HasField("event_time") else None,
        "end": events[-1].event_time.ToSeconds()
        if last in CLOSE_EVENTS and events[-1].HasField("event_time")
        else None,
    }
    if info["closed"] is None:
        info.update(_waiting_on(events))
    return info


def _waiting_on(events: Any) -> dict[str, Any]:
    """What an open history waits on that is due last: a pending timer's fire time, or a pending
    activity's deadline (schedule-to-close, else one start-to-close attempt)."""
    due: dict[int, tuple[float, str]] = {}
    for e in events:
        name = _enum_name(e)
        at = e.event_time.ToSeconds() if e.HasField("event_time") else None
        if name == "EVENT_TYPE_TIMER_STARTED" and at is not None:
            fire = e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
            due[e.event_id] = (at + fire, "timer")
        elif name == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" and at is not None:
            a = e.activity_task_scheduled_event_attributes
            whole = a.schedule_to_close_timeout.ToSeconds()
            limit = whole or a.start_to_close_timeout.ToSeconds()
            if limit:
                what = "activity timeout" if whole else "activity attempt timeout (retries extend it)"
                due[e.event_id] = (at + limit, what)
        elif name in ("EVENT_TYPE_TIMER_FIRED", "EVENT_TYPE_TIMER_CANCELED"):
            holder = (
                e.timer_fired_event_attributes
                if name == "EVENT_TYPE_TIMER_FIRED"
                else e.timer_canceled_event_attributes
            )
            due.pop(holder.started_event_id, None)
        elif name in ACTIVITY_DONE:
            due.pop(getattr(e, ACTIVITY_DONE[name]).scheduled_event_id, None)
    if not due:
        return {}
    until, what = max(due.values())
    return {"waits_until": until, "waits_on": what}


def _failure_event(message: str, history: Any) -> tuple[int | None, str | None]:
    """Return (event id, "KIND name") the failure points at, when the message says."""
    found = re.search(r"(?:HistoryEvent\(id: |event_id: |event id |EventId\(?)\s*(\d+)", message)
    named = re.findall(r"'([^']+)'", message)
    for e in history.events:
        kind = COMMAND_EVENTS.get(_enum_name(e))
        if kind is None:
            continue
        name = _command_name(e, kind)
        if found and e.event_id == int(found.group(1)):
            return e.event_id, f"{kind[0]} {name}".strip()
        if not found and name and named and name == named[0]:
            return e.event_id, f"{kind[0]} {name}"
    return (int(found.group(1)) if found else None), None


def _command_name(event: Any, kind: tuple[str, str | None]) -> str:
    label, attr = kind
    if label == "timer":
        return str(event.timer_started_event_attributes.timer_id)
    if label == "marker":
        return str(event.marker_recorded_event_attributes.marker_name)
    if attr is None:
        return ""
    holder = (
        event.activity_task_scheduled_event_attributes
        if label == "activity"
        else event.start_child_workflow_execution_initiated_event_attributes
    )
    return str(getattr(holder, attr).name)


def _outcome(failure: BaseException | None) -> str:
    if failure is None:
        return "ok"
    name = type(failure).__name__
    text = str(failure)
    if name == "NondeterminismError" or "TMPRL1100" in text or "Nondeterminism" in text:
        return "nondeterminism"
    return "error"


async def _run(config: dict[str, Any], out: Any) -> None:
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    for p in reversed(config["paths"]):
        if p not in sys.path:
            sys.path.insert(0, p)
    classes, errors = _load_workflows(config)
    roots = [os.path.join(p, "") for p in config["paths"]]
    for type_name, cls in list(classes.items()):
        try:
            await _validate(cls, _replayer_options(config))
        except Exception as exc:  # the SDK refuses the definition: a worker would not start either
            del classes[type_name]
            cause = exc.__cause__ or exc
            where = _import_error(cause, roots)
            where["message"] = f"{exc}: {type(cause).__name__}: {cause}".splitlines()[0][:MESSAGE_LIMIT]
            module = next((w["modules"] for w in config["workflows"] if w["type"] == type_name), ["?"])
            errors.append({"type": type_name, "module": (module or ["?"])[0], **where})
    import temporalio

    _emit(
        out,
        {
            "kind": "ready",
            "sdk": getattr(temporalio, "__version__", "unknown"),
            "python": sys.version.split()[0],
            "import_errors": errors,
        },
    )
    shared._READY = True  # from here on, histories are read: an error message may quote their payloads
    replay_types = set(config["replay"]) & set(classes)
    kwargs = _replayer_options(config)
    loop = asyncio.get_running_loop()
    # The Replayer answers in the order it is given histories: several may share a workflow id.
    pending: collections.deque[tuple[dict[str, Any], Any, float]] = collections.deque()

    async def histories() -> Any:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            job = json.loads(line)
            started = time.perf_counter()
            result: dict[str, Any] = {"kind": "result", "i": job["i"]}
            try:
                with open(job["path"], "rb") as fh:
                    raw = fh.read()
                history, fmt = _parse(raw, job["path"], config.get("cache"))
                result.update(_describe(history), format=fmt)
            except (OSError, ValueError) as exc:
                result.update(outcome="unreadable", message=str(exc)[:MESSAGE_LIMIT])
                _emit(out, result)
                continue
            except Exception as exc:  # a history odd enough to break the reader
                result.update(outcome="unreadable", message=f"not a usable history ({type(exc).__name__})")
                _emit(out, result)
                continue
            if result["type"] not in replay_types:
                result.update(outcome="unmatched")
                _emit(out, result)
                continue
            if len(history.events) < 2:
                # The Replayer waits forever on a history holding only its start event.
                result.update(
                    outcome="skipped",
                    message="holds only its start event: no workflow task ran yet, nothing to replay",
                )
                _emit(out, result)
                continue
            pending.append((result, history, started))
            # What the parent needs to name this history if its replay never returns.
            _emit(out, {**result, "kind": "begin"})
            yield WorkflowHistory(_workflow_id(job["path"]), list(history.events))

    if not classes:  # every head module failed to import: read and name the histories only
        async for _ in histories():
            pass
        return
    replayer = Replayer(workflows=list(classes.values()), **kwargs)
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for res in results:
            result, history, started = pending.popleft()
            failure = res.replay_failure
            result["outcome"] = _outcome(failure)
            if failure is not None:
                text = str(failure)
                # Event ids and names are read before the stack trace (its source lines quote code).
                result["event_id"], result["event"] = _failure_event(
                    text.split("stack_trace:", 1)[0], history
                )
                result.update(
                    exception=type(failure).__name__, text=text[:RAW_LIMIT], raw=_redact(text, history)
                )
            result["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            _emit(out, result)


# `inflight-guard export` names a history `<workflow id>__<run id>.json`; a CLI export is usually
# saved as `<workflow id>.json`. Workflow code that derives child ids from its own id replays only
# under the real one (a history's events do not hold it).
_EXPORTED = re.compile(r"^(.+)__[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}$")


def _workflow_id(path: str) -> str:
    stem = os.path.basename(path)
    for suffix in (".json", ".binpb", ".pb"):
        stem = stem.removesuffix(suffix)
    found = _EXPORTED.match(stem)
    return found.group(1) if found else stem or "replayed-history"


_OPTIONS: dict[str, Any] = {}


def _replayer_options(config: dict[str, Any]) -> dict[str, Any]:
    """Replayer keyword arguments: a quiet runtime (made once), the sandbox unless told otherwise."""
    if not _OPTIONS:
        runtime = _quiet_runtime()
        if runtime is not None:
            _OPTIONS["runtime"] = runtime
        if not config.get("sandbox", True):
            from temporalio.worker import UnsandboxedWorkflowRunner

            _OPTIONS["workflow_runner"] = UnsandboxedWorkflowRunner()
    return dict(_OPTIONS)


async def _validate(cls: type, options: dict[str, Any]) -> None:
    """Let the SDK validate a workflow as a worker does when it starts (sandbox import included)."""
    from temporalio.worker import Replayer

    async def nothing() -> Any:
        return
        yield

    async with Replayer(workflows=[cls], **options).workflow_replay_iterator(nothing()) as results:
        async for _ in results:
            pass


def _quiet_runtime() -> Any:
    """A runtime whose core logs stay at ERROR: replay failures are reported, not logged."""
    try:
        from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

        return Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
            )
        )
    except Exception:
        return None


def main() -> None:
    serve(lambda config, out: asyncio.run(_run(config, out)))


if __name__ == "__main__":
    main()
