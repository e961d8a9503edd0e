"""Record Cadence histories by running workflows on the SDK's own decision engine.

No Cadence server can be installed here, so this plays the server's part: it appends the
events a server would write for each decision the real `WorkflowEngine` returns (activity
scheduled → started → completed with a scripted result, timer started → fired, child
started → completed, markers, upserts) and runs the next decision task on the whole history,
as the SDK's worker does. The histories are what `cadence workflow show` would export, as
protobuf `History` messages (and, through `to_thrift_json`, in the CLI's Thrift-JSON shape).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cadence._internal.workflow.workflow_engine import WorkflowEngine
from cadence.api.v1 import common_pb2, history_pb2, tasklist_pb2
from cadence.data_converter import DefaultDataConverter
from cadence.workflow import WorkflowDefinition, WorkflowInfo
from google.protobuf import json_format

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Decision attributes → the event the server records for them.
RECORDED = {
    "schedule_activity_task_decision_attributes": "activity_task_scheduled_event_attributes",
    "start_timer_decision_attributes": "timer_started_event_attributes",
    "record_marker_decision_attributes": "marker_recorded_event_attributes",
    "start_child_workflow_execution_decision_attributes": "start_child_workflow_execution_initiated_event_attributes",
    "signal_external_workflow_execution_decision_attributes": "signal_external_workflow_execution_initiated_event_attributes",
    "request_cancel_external_workflow_execution_decision_attributes": "request_cancel_external_workflow_execution_initiated_event_attributes",
    "upsert_workflow_search_attributes_decision_attributes": "upsert_workflow_search_attributes_event_attributes",
    "request_cancel_activity_task_decision_attributes": "activity_task_cancel_requested_event_attributes",
    "cancel_timer_decision_attributes": "timer_canceled_event_attributes",
    "complete_workflow_execution_decision_attributes": "workflow_execution_completed_event_attributes",
    "fail_workflow_execution_decision_attributes": "workflow_execution_failed_event_attributes",
    "cancel_workflow_execution_decision_attributes": "workflow_execution_canceled_event_attributes",
    "continue_as_new_workflow_execution_decision_attributes": "workflow_execution_continued_as_new_event_attributes",
}
CLOSING = {
    "workflow_execution_completed_event_attributes",
    "workflow_execution_failed_event_attributes",
    "workflow_execution_canceled_event_attributes",
    "workflow_execution_continued_as_new_event_attributes",
}


class ActivityFailure(Exception):
    """A scripted activity failure: the activity's error reason."""


class Recorder:
    """One execution: its events so far, and the scripted outcomes of what it starts."""

    def __init__(
        self,
        definition: WorkflowDefinition[Any],
        args: Sequence[Any] = (),
        *,
        results: Mapping[str, Any] | None = None,
        workflow_id: str = "wf-1",
        run_id: str = "run-1",
        signals: Mapping[int, Sequence[tuple[str, Sequence[Any]]]] | None = None,
    ) -> None:
        self.definition = definition
        self.converter = DefaultDataConverter()
        self.results: Mapping[str, Any] = results or {}
        self.signals = signals or {}
        self.workflow_id, self.run_id = workflow_id, run_id
        self.events: list[history_pb2.HistoryEvent] = []
        self.clock = START
        started = history_pb2.WorkflowExecutionStartedEventAttributes(
            workflow_type=common_pb2.WorkflowType(name=definition.name),
            task_list=tasklist_pb2.TaskList(name="orders"),
            input=self.converter.to_data(list(args)),
            original_execution_run_id=run_id,
            first_execution_run_id=run_id,
        )
        started.execution_start_to_close_timeout.FromTimedelta(timedelta(days=30))
        started.task_start_to_close_timeout.FromTimedelta(timedelta(seconds=10))
        self._append("workflow_execution_started_event_attributes", started)

    def _append(self, field: str, attrs: Any) -> history_pb2.HistoryEvent:
        event = history_pb2.HistoryEvent(event_id=len(self.events) + 1)
        event.event_time.FromDatetime(self.clock)
        getattr(event, field).CopyFrom(attrs)
        self.events.append(event)
        self.clock += timedelta(milliseconds=250)
        return event

    def _decision_task(self) -> tuple[int, int]:
        scheduled = self._append(
            "decision_task_scheduled_event_attributes", history_pb2.DecisionTaskScheduledEventAttributes()
        )
        started = self._append(
            "decision_task_started_event_attributes",
            history_pb2.DecisionTaskStartedEventAttributes(scheduled_event_id=scheduled.event_id),
        )
        return scheduled.event_id, started.event_id

    def _info(self) -> WorkflowInfo:
        return WorkflowInfo(
            workflow_type=self.definition.name,
            workflow_domain="orders",
            workflow_id=self.workflow_id,
            workflow_run_id=self.run_id,
            workflow_task_list="orders",
            data_converter=self.converter,
        )

    def run(self, *, decisions: int | None = None) -> history_pb2.History:
        """Run decision tasks until the workflow closes (or `decisions` of them ran: in flight)."""
        done = 0
        while decisions is None or done < decisions:
            for name, args in self.signals.get(done, ()):
                self._append(
                    "workflow_execution_signaled_event_attributes",
                    history_pb2.WorkflowExecutionSignaledEventAttributes(
                        signal_name=name, input=self.converter.to_data(list(args))
                    ),
                )
            scheduled, started = self._decision_task()
            engine = WorkflowEngine(self._info(), self.definition)
            result = engine.process_decision(list(self.events))
            completed = self._append(
                "decision_task_completed_event_attributes",
                history_pb2.DecisionTaskCompletedEventAttributes(
                    scheduled_event_id=scheduled, started_event_id=started
                ),
            )
            done += 1
            opened: list[history_pb2.HistoryEvent] = []
            closed = False
            for decision in result.decisions:
                which = decision.WhichOneof("attributes")
                assert which is not None
                field = RECORDED[which]
                attrs = getattr(history_pb2.HistoryEvent(), field).__class__()
                _copy_common(getattr(decision, which), attrs)
                if attrs.DESCRIPTOR.fields_by_name.get("decision_task_completed_event_id"):
                    attrs.decision_task_completed_event_id = completed.event_id
                opened.append(self._append(field, attrs))
                closed = closed or field in CLOSING
            if closed:
                break
            if decisions is not None and done >= decisions:
                break
            progressed = self._resolve(opened)
            if not progressed and not self.signals.get(done):
                break  # waiting on something that never comes
        return history_pb2.History(events=self.events)

    def _resolve(self, opened: Sequence[history_pb2.HistoryEvent]) -> bool:
        progressed = False
        for event in opened:
            which = event.WhichOneof("attributes")
            if which == "activity_task_scheduled_event_attributes":
                progressed = True
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                began = self._append(
                    "activity_task_started_event_attributes",
                    history_pb2.ActivityTaskStartedEventAttributes(scheduled_event_id=event.event_id),
                )
                outcome = self.results.get(name, f"{name}-done")
                if callable(outcome):
                    outcome = outcome()
                if isinstance(outcome, ActivityFailure):
                    self._append(
                        "activity_task_failed_event_attributes",
                        history_pb2.ActivityTaskFailedEventAttributes(
                            scheduled_event_id=event.event_id,
                            started_event_id=began.event_id,
                            failure=common_pb2.Failure(reason=str(outcome), details=b"{}"),
                        ),
                    )
                else:
                    self._append(
                        "activity_task_completed_event_attributes",
                        history_pb2.ActivityTaskCompletedEventAttributes(
                            scheduled_event_id=event.event_id,
                            started_event_id=began.event_id,
                            result=self.converter.to_data([outcome]),
                        ),
                    )
            elif which == "timer_started_event_attributes":
                progressed = True
                attrs = event.timer_started_event_attributes
                self.clock += attrs.start_to_fire_timeout.ToTimedelta()
                self._append(
                    "timer_fired_event_attributes",
                    history_pb2.TimerFiredEventAttributes(
                        timer_id=attrs.timer_id, started_event_id=event.event_id
                    ),
                )
            elif which == "start_child_workflow_execution_initiated_event_attributes":
                progressed = True
                attrs = event.start_child_workflow_execution_initiated_event_attributes
                execution = common_pb2.WorkflowExecution(workflow_id=attrs.workflow_id, run_id="child-run")
                began = self._append(
                    "child_workflow_execution_started_event_attributes",
                    history_pb2.ChildWorkflowExecutionStartedEventAttributes(
                        workflow_execution=execution,
                        workflow_type=attrs.workflow_type,
                        initiated_event_id=event.event_id,
                    ),
                )
                outcome = self.results.get(attrs.workflow_type.name, f"{attrs.workflow_type.name}-done")
                self._append(
                    "child_workflow_execution_completed_event_attributes",
                    history_pb2.ChildWorkflowExecutionCompletedEventAttributes(
                        workflow_execution=execution,
                        workflow_type=attrs.workflow_type,
                        initiated_event_id=event.event_id,
                        started_event_id=began.event_id,
                        result=self.converter.to_data([outcome]),
                    ),
                )
            elif which == "signal_external_workflow_execution_initiated_event_attributes":
                progressed = True
                attrs = event.signal_external_workflow_execution_initiated_event_attributes
                self._append(
                    "external_workflow_execution_signaled_event_attributes",
                    history_pb2.ExternalWorkflowExecutionSignaledEventAttributes(
                        initiated_event_id=event.event_id, workflow_execution=attrs.workflow_execution
                    ),
                )
        return progressed


def _copy_common(source: Any, target: Any) -> None:
    names = {f.name for f in target.DESCRIPTOR.fields}
    for field, value in source.ListFields():
        if field.name not in names:
            continue
        if field.type == field.TYPE_MESSAGE and not field.is_repeated:
            getattr(target, field.name).CopyFrom(value)
        elif field.is_repeated:
            getattr(target, field.name).extend(value)
        else:
            setattr(target, field.name, value)


def load_runner() -> Any:
    """The Cadence replay runner (a standalone script: run by path in the user's interpreter)."""
    path = Path(__file__).resolve().parents[1] / "bot" / "engines" / "cadence" / "runner.py"
    spec = importlib.util.spec_from_file_location("cadence_runner", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(
    definition: WorkflowDefinition[Any],
    args: Sequence[Any] = (),
    *,
    decisions: int | None = None,
    **kwargs: Any,
) -> history_pb2.History:
    """Run `definition` on the SDK's engine and return the history a server would hold."""
    return Recorder(definition, args, **kwargs).run(decisions=decisions)


def to_proto_json(history: history_pb2.History) -> dict[str, Any]:
    """The SDK's protobuf JSON of a history (`{"events": [...]}`, lowerCamel names)."""
    return json_format.MessageToDict(history)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _pascal(field: str) -> str:
    return "".join(part.capitalize() for part in field.split("_"))


def _camel(field: str) -> str:
    pascal = _pascal(field)
    return pascal[:1].lower() + pascal[1:]


def _thrift_value(field: Any, value: Any, out: dict[str, Any]) -> None:
    """Write one proto field the way the Go CLI's Thrift JSON writes it."""
    name = _camel(field.name)
    message = field.message_type.name if field.message_type is not None else None
    if message == "Duration":
        out[f"{name}Seconds"] = int(value.ToTimedelta().total_seconds())
    elif message == "Payload":
        out[name] = base64.b64encode(bytes(value.data)).decode()
    elif message == "Timestamp":
        out[name] = value.ToNanoseconds()
    elif message == "Failure":  # Thrift has reason + details beside each other
        out["reason"] = value.reason
        out["details"] = base64.b64encode(bytes(value.details)).decode()
    elif message is not None and field.message_type.GetOptions().map_entry:
        out[name] = {
            key: base64.b64encode(bytes(item.data)).decode() if hasattr(item, "data") else item
            for key, item in value.items()
        }
    elif field.enum_type is not None:
        enum = field.enum_type.values_by_number[value].name
        prefix = _snake(field.enum_type.name).upper() + "_"
        out[name] = enum[len(prefix) :] if enum.startswith(prefix) else enum
    elif message is not None:
        out[name] = _thrift_message(value)
    elif isinstance(value, bytes):
        out[name] = base64.b64encode(value).decode()
    else:
        out[name] = value


def _thrift_message(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        _thrift_value(field, value, out)
    return out


def to_thrift_json(history: history_pb2.History) -> list[dict[str, Any]]:
    """The Cadence CLI's export (`cadence workflow show --of h.json`): an array of Thrift-JSON events."""
    events: list[dict[str, Any]] = []
    for event in history.events:
        which = event.WhichOneof("attributes")
        assert which is not None
        kind = _pascal(which.removesuffix("_event_attributes"))
        events.append(
            {
                "eventId": event.event_id,
                "timestamp": event.event_time.ToNanoseconds(),
                "eventType": kind,
                "version": -24,
                "taskId": 1048576 + event.event_id,
                f"{_camel(which)}": _thrift_message(getattr(event, which)),
            }
        )
    return events


def write(history: history_pb2.History, path: Any, *, fmt: str = "thrift") -> None:
    """Write a history as the CLI (`thrift`) or the SDK's protobuf JSON (`proto`) exports it."""
    data: Any = to_thrift_json(history) if fmt == "thrift" else to_proto_json(history)
    with open(path, "w", encoding="utf-8") as fh:  # noqa: PTH123
        json.dump(data, fh, indent=1)


Factory = Callable[[], WorkflowDefinition[Any]]
