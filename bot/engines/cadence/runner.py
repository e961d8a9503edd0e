"""Cadence replay runner: runs in the USER's interpreter, with their cadence-python-client.

The same protocol as the Temporal runner (whose standard-library helpers it shares, loaded by path
from bot/engines/python/runner.py): a config line, then one history path per line on stdin; a
`ready` line, then one `result` line per history on stdout. Outcomes: ok | nondeterminism |
error | skipped | unmatched | unreadable. A failure goes to the parent as facts read from the
exception object (the decision the history expected and the one the head made, the exception's
type, the head frame that raised it), with its text (`text`, read by the parent for a version
range, then dropped) and that text redacted of exact payload strings (`raw`, for `--replay-log`):
the parent shows the facts it can vouch for and never the text.

The SDK has no public replayer. `replay_history` is the one adapter over its internals
(`WorkflowEngine(info, definition).process_decision(events)`, which raises
`NonDeterminismError`); `SUPPORTED` names the SDK versions it was verified against, and an
SDK whose internals moved fails the run with that message instead of replaying wrongly.

Histories: the Cadence CLI's export (`cadence workflow show --of h.json`: a JSON array of
Thrift-JSON events, bytes in base64, timeouts as `*Seconds`), the SDK's protobuf JSON
(`{"events": [...]}`) and binary `History` protobufs.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import sys
import time
import traceback
from typing import Any

SUPPORTED = ("0.4.1",)
DIST = "cadence-python-client"
MESSAGE_LIMIT = 400
CLOSE_EVENTS = {
    "workflow_execution_completed_event_attributes": "completed",
    "workflow_execution_failed_event_attributes": "failed",
    "workflow_execution_timed_out_event_attributes": "timed_out",
    "workflow_execution_canceled_event_attributes": "canceled",
    "workflow_execution_terminated_event_attributes": "terminated",
    "workflow_execution_continued_as_new_event_attributes": "continued_as_new",
}
# Decision events (what workflow code asks for) and what names them.
COMMAND_EVENTS = {
    "activity_task_scheduled_event_attributes": "activity",
    "timer_started_event_attributes": "timer",
    "start_child_workflow_execution_initiated_event_attributes": "child_workflow",
    "marker_recorded_event_attributes": "marker",
    "signal_external_workflow_execution_initiated_event_attributes": "signal_external",
    "request_cancel_external_workflow_execution_initiated_event_attributes": "cancel_external",
    "upsert_workflow_search_attributes_event_attributes": "upsert_search_attributes",
}
KIND_OF_DECISION = {
    "ACTIVITY": "activity",
    "TIMER": "timer",
    "CHILD_WORKFLOW": "child_workflow",
    "MARKER": "marker",
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


# --- the adapter over the SDK's internals ----------------------------------------------------
class Adapter:
    """Everything this runner uses from cadence-python-client, resolved once."""

    def __init__(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(DIST)
        except PackageNotFoundError:
            found = "unknown"
        verified = ", ".join(SUPPORTED)
        self.version = (
            found if found in SUPPORTED else f"{found} (unverified: the adapter was verified with {verified})"
        )
        try:
            from cadence._internal.workflow.deterministic_event_loop import FatalDecisionError
            from cadence._internal.workflow.statemachine.nondeterminism import NonDeterminismError
            from cadence._internal.workflow.workflow_engine import WorkflowEngine
            from cadence.api.v1 import history_pb2
            from cadence.data_converter import DefaultDataConverter
            from cadence.workflow import WorkflowDefinition, WorkflowDefinitionOptions, WorkflowInfo
        except ImportError as exc:
            raise RuntimeError(
                f"{DIST} {found} is not supported by this replay adapter (verified with {verified}): {exc}"
            ) from None
        self.engine = WorkflowEngine
        self.nondeterminism = NonDeterminismError
        self.fatal = FatalDecisionError
        self.history = history_pb2
        self.converter = DefaultDataConverter
        self.definition = WorkflowDefinition
        self.options = WorkflowDefinitionOptions
        self.info = WorkflowInfo

    def define(self, cls: type, name: str) -> Any:
        """Return the SDK's definition of a workflow class under its registered type name."""
        return self.definition.wrap(cls, self.options(name=name))

    def replay(self, definition: Any, history: Any) -> tuple[str, BaseException | None]:
        """Drive the SDK's decision engine through a whole history: (outcome, failure)."""
        started = history.events[0].workflow_execution_started_event_attributes
        info = self.info(
            workflow_type=definition.name,
            workflow_domain="replay",
            workflow_id="replay",
            workflow_run_id=started.original_execution_run_id or "replay",
            workflow_task_list=started.task_list.name or "replay",
            data_converter=self.converter(),
        )
        engine = self.engine(info, definition)
        try:
            engine.process_decision(list(history.events))
        except self.nondeterminism as exc:
            return "nondeterminism", exc
        except self.fatal as exc:  # a version outside get_version's range, a duplicate decision
            return "nondeterminism", exc
        except Exception as exc:
            return "error", exc
        return "ok", None


# --- reading exports -------------------------------------------------------------------------
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _from_thrift(message: Any, data: dict[str, Any]) -> None:
    """Fill a proto message from the Go CLI's Thrift JSON of the same Cadence type."""
    for field in message.DESCRIPTOR.fields:
        camel = field.json_name
        kind = field.message_type.name if field.message_type is not None else None
        if kind == "Duration":
            seconds = data.get(f"{camel}Seconds", data.get(f"{camel}InSeconds"))
            if isinstance(seconds, int | float):
                getattr(message, field.name).FromSeconds(int(seconds))
            continue
        if kind == "Timestamp":
            nanos = data.get(camel, data.get(f"{camel}Timestamp"))
            if isinstance(nanos, int):
                getattr(message, field.name).FromNanoseconds(nanos)
            continue
        if kind == "Failure":
            if "reason" in data or "details" in data:
                failure = getattr(message, field.name)
                failure.reason = str(data.get("reason") or "")
                failure.details = base64.b64decode(data.get("details") or "")
            continue
        if camel not in data:
            continue
        value = data[camel]
        if kind == "Payload":
            getattr(message, field.name).data = base64.b64decode(value or "")
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = getattr(message, field.name)
            value_field = field.message_type.fields_by_name["value"]
            for key, item in (value or {}).items():
                if value_field.message_type is not None and value_field.message_type.name == "Payload":
                    target[key].data = base64.b64decode(item or "")
                elif value_field.message_type is None:
                    target[key] = item
        elif _repeated(field):
            if field.message_type is not None:
                for item in value or []:
                    _from_thrift(getattr(message, field.name).add(), item)
            else:
                getattr(message, field.name).extend(value or [])
        elif field.message_type is not None:
            if isinstance(value, dict):
                _from_thrift(getattr(message, field.name), value)
        elif field.enum_type is not None:
            names = {v.name for v in field.enum_type.values}
            prefix = _snake(field.enum_type.name).upper() + "_"
            name = value if value in names else f"{prefix}{value}"
            if name in names:
                setattr(message, field.name, field.enum_type.values_by_name[name].number)
        elif field.type == field.TYPE_BYTES:
            setattr(message, field.name, base64.b64decode(value or ""))
        elif value is not None:
            setattr(message, field.name, value)


def _repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6; `label` before (deprecated since)
    return bool(flag) if isinstance(flag, bool) else field.label == field.LABEL_REPEATED


def thrift_events(adapter: Adapter, items: list[Any]) -> Any:
    """Convert the CLI's Thrift-JSON event array into a proto `History`."""
    history = adapter.history.History()
    fields = adapter.history.HistoryEvent.DESCRIPTOR.fields_by_name
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ValueError(f"event {n} is not an object")
        event = history.events.add()
        event.event_id = int(item.get("eventId", n))
        if isinstance(item.get("timestamp"), int):
            event.event_time.FromNanoseconds(item["timestamp"])
        attrs = [k for k in item if k.endswith("EventAttributes")]
        if len(attrs) != 1:
            kind = item.get("eventType", "?")
            raise ValueError(f"event {event.event_id} ({kind}) has no event attributes")
        name = _snake(attrs[0])
        if name not in fields:
            raise ValueError(f"event {event.event_id}: unknown event kind {attrs[0]}")
        _from_thrift(getattr(event, name), item[attrs[0]] or {})
        getattr(event, name).SetInParent()
    return history


def parse(adapter: Adapter, raw: bytes) -> tuple[Any, str]:
    """Return (History proto, format) from exported bytes; raises ValueError when unreadable."""
    from google.protobuf import json_format

    if not raw.strip():
        raise ValueError("empty file")
    if raw.lstrip()[:1] not in (b"{", b"["):
        return shared._binary(raw, adapter.history.History()), "binpb"
    data = shared._load_json(raw)
    if isinstance(data, dict) and isinstance(data.get("history"), dict):
        data = data["history"]
    if isinstance(data, list) and data and isinstance(data[0], dict) and "timestamp" in data[0]:
        return thrift_events(adapter, data), "thrift-json"
    if isinstance(data, list):
        data = {"events": data}
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ValueError("not a history: expected the JSON array `cadence workflow show --of` writes")
    if not data["events"]:
        raise ValueError("history has no events")
    history = adapter.history.History()
    try:
        json_format.ParseDict(data, history, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(f"not a Cadence history ({str(exc)[:200]})") from None
    return history, "proto-json"


def describe(history: Any) -> dict[str, Any]:
    events = history.events
    first = events[0]
    if first.WhichOneof("attributes") != "workflow_execution_started_event_attributes":
        raise ValueError(
            f"first event is {first.WhichOneof('attributes')}, not WorkflowExecutionStarted: "
            "export the whole history"
        )
    attrs = first.workflow_execution_started_event_attributes
    last = events[-1].WhichOneof("attributes") or ""

    def seconds(event: Any) -> float | None:
        return event.event_time.ToSeconds() if event.HasField("event_time") else None

    return {
        "type": attrs.workflow_type.name,
        "task_queue": attrs.task_list.name or None,  # Cadence's task list
        "run_id": attrs.original_execution_run_id or attrs.first_execution_run_id or None,
        "events": len(events),
        "commands": sum(1 for e in events if e.WhichOneof("attributes") in COMMAND_EVENTS),
        "closed": CLOSE_EVENTS.get(last),
        "start": seconds(first),
        "end": seconds(events[-1]) if last in CLOSE_EVENTS else None,
    }


def _event_name(event: Any) -> str:
    which = event.WhichOneof("attributes")
    kind = COMMAND_EVENTS.get(which, "")
    attrs = getattr(event, which)
    if kind == "activity":
        return f"activity {attrs.activity_type.name}"
    if kind == "child_workflow":
        return f"child_workflow {attrs.workflow_type.name}"
    if kind == "timer":
        return f"timer {attrs.timer_id}"
    if kind == "marker":
        return f"marker {attrs.marker_name}"
    return kind or which.removesuffix("_event_attributes")


NAMES = ("activity_type", "workflow_type", "signal_name")


def _expectation(expected: Any) -> str:
    """The SDK's expected or issued decision in words (`activity `charge` (event 5)`), not the repr
    of its properties dict."""
    if expected is None:
        return ""
    decision = getattr(expected, "decision_id", None)
    kind_enum = getattr(decision, "decision_type", None)
    kind = str(getattr(kind_enum, "name", "decision")).lower().replace("_", " ")
    props = getattr(expected, "properties", None) or {}
    name = next((str(props[k]) for k in NAMES if props.get(k)), None)
    if name is None and kind in ("timer", "marker"):
        name = str(getattr(decision, "id", "") or "") or None
    text = f"{kind} `{name}`" if name else kind
    if props.get("canceled"):
        text = f"the cancellation of {text}"
    elif "success" in props and kind == "workflow complete":
        text = "the workflow's completion" if props["success"] else "the workflow's failure"
    event_id = getattr(expected, "event_id", None)
    return f"{text} (event {event_id})" if event_id else text


def failure_details(failure: BaseException, history: Any) -> tuple[str, int | None, str | None]:
    """Return (text without exact payload strings, event id, "KIND name") of a replay failure."""
    expected = getattr(failure, "expected", None)
    actual = getattr(failure, "actual", None)
    if expected is not None or actual is not None:
        message = (
            f"history has {_expectation(expected) or 'nothing more'}, "
            f"head code issues {_expectation(actual) or 'nothing'}"
        )
    else:
        message = f"{type(failure).__name__}: {failure}"
    event_id = getattr(expected, "event_id", None)
    event = None
    if event_id:
        match = next((e for e in history.events if e.event_id == event_id), None)
        if match is not None:
            event = _event_name(match)
    return shared._redact(message, history), event_id, event


def _decision(expectation: Any) -> dict[str, Any] | None:
    """A decision the SDK compared, as facts: its kind, the type it names, how it ends a workflow."""
    if expectation is None:
        return None
    decision_id = getattr(expectation, "decision_id", None)
    kind = getattr(getattr(decision_id, "decision_type", None), "name", None)
    if not isinstance(kind, str):
        return None
    props = getattr(expectation, "properties", None) or {}
    out: dict[str, Any] = {"kind": kind.lower()}
    for key in ("activity_type", "workflow_type", "signal_name"):
        if isinstance(props.get(key), str):
            out["name"] = props[key]
    if isinstance(props.get("success"), bool):
        out["success"] = props["success"]
    if props.get("canceled") is True:
        out["canceled"] = True
    return out


def failure_facts(failure: BaseException, roots: list[str]) -> dict[str, Any]:
    """What the parent may read of a failure besides its text: decisions, the exception type, where."""
    facts: dict[str, Any] = {"exception": type(failure).__name__}
    expected, actual = getattr(failure, "expected", None), getattr(failure, "actual", None)
    if expected is not None or actual is not None:
        facts.update(expected=_decision(expected), actual=_decision(actual))
    for frame in traceback.extract_tb(failure.__traceback__):
        if any(frame.filename.startswith(r) for r in roots) and frame.lineno is not None:
            facts["where"] = {"path": frame.filename, "line": frame.lineno, "function": frame.name}
    return facts


# --- the run ---------------------------------------------------------------------------------
def _run(config: dict[str, Any], out: Any) -> None:
    logging.disable(logging.CRITICAL)  # the SDK logs each failure with its traceback
    for p in reversed(config["paths"]):
        if p not in sys.path:
            sys.path.insert(0, p)
    adapter = Adapter()
    classes, errors = shared._load_workflows(config)
    definitions: dict[str, Any] = {}
    roots = [os.path.join(p, "") for p in config["paths"]]
    for type_name, cls in classes.items():
        try:
            definitions[type_name] = adapter.define(cls, type_name)
        except Exception as exc:  # the SDK refuses the class: a worker would not register it
            where = shared._import_error(exc, roots)
            module = next((w["modules"] for w in config["workflows"] if w["type"] == type_name), ["?"])
            errors.append({"type": type_name, "module": (module or ["?"])[0], **where})
    shared._emit(
        out,
        {
            "kind": "ready",
            "sdk": f"cadence-python-client {adapter.version}",
            "python": sys.version.split()[0],
            "import_errors": errors,
        },
    )
    shared._READY = True
    replay_types = set(config["replay"]) & set(definitions)
    for line in sys.stdin:
        job = json.loads(line)
        started = time.perf_counter()
        result: dict[str, Any] = {"kind": "result", "i": job["i"]}
        try:
            with open(job["path"], "rb") as fh:
                raw = fh.read()
            history, fmt = parse(adapter, raw)
            result.update(describe(history), format=fmt)
        except (OSError, ValueError) as exc:
            result.update(outcome="unreadable", message=str(exc)[:MESSAGE_LIMIT])
            shared._emit(out, result)
            continue
        except Exception as exc:
            result.update(outcome="unreadable", message=f"not a usable history ({type(exc).__name__})")
            shared._emit(out, result)
            continue
        if result["type"] not in replay_types:
            result.update(outcome="unmatched")
            shared._emit(out, result)
            continue
        shared._emit(out, {**result, "kind": "begin"})
        outcome, failure = adapter.replay(definitions[result["type"]], history)
        result["outcome"] = outcome
        if failure is not None:
            result["raw"], result["event_id"], result["event"] = failure_details(failure, history)
            text = f"{type(failure).__name__}: {failure}"
            result.update(failure_facts(failure, roots), text=text[: shared.RAW_LIMIT])
        result["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        shared._emit(out, result)


def main() -> None:
    shared.serve(_run)


if __name__ == "__main__":
    main()
