"""The Cadence server's part around the SDK's own decision engine: one execution, event by event.

No Cadence server can be installed where inflight-guard runs, and none is needed to make a
history: the workflow's decisions come from cadence-python-client's real `WorkflowEngine`, and
this module appends the events a server writes for them (activity scheduled → started →
completed or failed, timer started → fired, child initiated → started → completed, markers,
upserts, signals) and runs the next decision task on the whole history, as the SDK's worker
does. What an activity or a child returns is the caller's `outcome` callback: scripted results
in the project's tests, values built from declared types by the synthesis driver.

Standalone like runner.py (standard library and the cadence SDK only): the synthesis driver
loads it by path in the user's interpreter, the tests import it the same way.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
# Decision events an execution then waits on, and how they are named to a reader.
WAITS = {
    "activity_task_scheduled_event_attributes": "activity",
    "timer_started_event_attributes": "timer",
    "start_child_workflow_execution_initiated_event_attributes": "child",
    "signal_external_workflow_execution_initiated_event_attributes": "signal external",
}


class Failed(Exception):
    """An outcome that fails the activity (or child) instead of returning: the failure's reason."""


Outcome = Callable[[str, str, int], Any]
"""(kind "activity" | "child", registered name, n-th call of that name) → a value, or `Failed`."""


class Sdk:
    """The parts of cadence-python-client this module drives, resolved once (ImportError if absent)."""

    def __init__(self) -> None:
        from cadence._internal.workflow.workflow_engine import WorkflowEngine
        from cadence.api.v1 import common_pb2, history_pb2, tasklist_pb2
        from cadence.data_converter import DefaultDataConverter
        from cadence.workflow import WorkflowInfo

        self.engine = WorkflowEngine
        self.common = common_pb2
        self.history = history_pb2
        self.tasklist = tasklist_pb2
        self.converter = DefaultDataConverter
        self.info = WorkflowInfo


def command_name(event: Any) -> str:
    """A decision event as a reader names it: "activity charge", "timer", "child Payment", ..."""
    which = event.WhichOneof("attributes") or ""
    attrs: Any = getattr(event, which, None)
    if which == "activity_task_scheduled_event_attributes":
        return f"activity {attrs.activity_type.name}"
    if which == "start_child_workflow_execution_initiated_event_attributes":
        return f"child {attrs.workflow_type.name}"
    if which == "marker_recorded_event_attributes":
        return f"marker {attrs.marker_name}"
    if which == "signal_external_workflow_execution_initiated_event_attributes":
        return f"signal external {attrs.signal_name}"
    if which == "timer_started_event_attributes":
        return "timer"
    return which.removesuffix("_event_attributes").replace("_", " ")


class Server:
    """One execution: its events so far, the commands it waits on, and the outcomes it is given."""

    def __init__(
        self,
        sdk: Sdk,
        definition: Any,
        args: Sequence[Any] = (),
        *,
        outcome: Outcome,
        workflow_id: str = "wf-1",
        run_id: str = "run-1",
        domain: str = "orders",
        task_list: str = "orders",
        identity: str = "",
    ) -> None:
        self.sdk = sdk
        self.definition = definition
        self.converter = sdk.converter()
        self.outcome = outcome
        self.workflow_id, self.run_id, self.domain, self.task_list = workflow_id, run_id, domain, task_list
        self.identity = identity
        self.events: list[Any] = []
        self.pending: list[Any] = []  # decision events still waiting on their outcome
        self.closed: str | None = None  # the closing event's attributes once the run ended
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self._cancel_requested: set[str] = set()
        self.clock = START
        h = sdk.history
        started = h.WorkflowExecutionStartedEventAttributes(
            workflow_type=sdk.common.WorkflowType(name=definition.name),
            task_list=sdk.tasklist.TaskList(name=task_list),
            input=self.converter.to_data(list(args)),
            original_execution_run_id=run_id,
            first_execution_run_id=run_id,
            identity=identity,
        )
        started.execution_start_to_close_timeout.FromTimedelta(timedelta(days=30))
        started.task_start_to_close_timeout.FromTimedelta(timedelta(seconds=10))
        self._append("workflow_execution_started_event_attributes", started)

    def _append(self, field: str, attrs: Any) -> Any:
        event = self.sdk.history.HistoryEvent(event_id=len(self.events) + 1)
        event.event_time.FromDatetime(self.clock)
        getattr(event, field).CopyFrom(attrs)
        self.events.append(event)
        self.clock += timedelta(milliseconds=250)
        return event

    def _info(self) -> Any:
        return self.sdk.info(
            workflow_type=self.definition.name,
            workflow_domain=self.domain,
            workflow_id=self.workflow_id,
            workflow_run_id=self.run_id,
            workflow_task_list=self.task_list,
            data_converter=self.converter,
        )

    def history(self, length: int | None = None) -> Any:
        """The history a server holds now (or its first `length` events), as a proto `History`."""
        return self.sdk.history.History(events=self.events[:length])

    def waiting_on(self) -> list[str]:
        """What the execution waits on now, in the order it asked ("activity charge", "timer")."""
        return [command_name(e) for e in self.pending]

    def signal(self, name: str, args: Sequence[Any]) -> None:
        """Record a signal delivered to the execution (the next decision task sees it)."""
        self._append(
            "workflow_execution_signaled_event_attributes",
            self.sdk.history.WorkflowExecutionSignaledEventAttributes(
                signal_name=name, input=self.converter.to_data(list(args)), identity=self.identity
            ),
        )

    def decide(self) -> list[Any]:
        """Run one decision task on the whole history; record its decisions; return their events.

        What the SDK raises (a workflow task failure: a signal handler raising, nondeterminism)
        propagates, and the history is left as it was before the task.
        """
        h = self.sdk.history
        before, clock = len(self.events), self.clock
        scheduled = self._append(
            "decision_task_scheduled_event_attributes", h.DecisionTaskScheduledEventAttributes()
        )
        started = self._append(
            "decision_task_started_event_attributes",
            h.DecisionTaskStartedEventAttributes(
                scheduled_event_id=scheduled.event_id, identity=self.identity
            ),
        )
        engine = self.sdk.engine(self._info(), self.definition)
        try:
            result = engine.process_decision(list(self.events))
        except BaseException:
            del self.events[before:]
            self.clock = clock
            raise
        completed = self._append(
            "decision_task_completed_event_attributes",
            h.DecisionTaskCompletedEventAttributes(
                scheduled_event_id=scheduled.event_id,
                started_event_id=started.event_id,
                identity=self.identity,
            ),
        )
        opened: list[Any] = []
        for decision in result.decisions:
            which = decision.WhichOneof("attributes")
            field = RECORDED[which]
            attrs = getattr(h.HistoryEvent(), field).__class__()
            _copy_common(getattr(decision, which), attrs)
            if "decision_task_completed_event_id" in attrs.DESCRIPTOR.fields_by_name:
                attrs.decision_task_completed_event_id = completed.event_id
            event = self._append(field, attrs)
            opened.append(event)
            if field in CLOSING:
                self.closed = field
            elif field in WAITS:
                self.pending.append(event)
            elif field == "timer_canceled_event_attributes":
                timer = event.timer_canceled_event_attributes.timer_id
                self.pending = [
                    e
                    for e in self.pending
                    if e.WhichOneof("attributes") != "timer_started_event_attributes"
                    or e.timer_started_event_attributes.timer_id != timer
                ]
            elif field == "activity_task_cancel_requested_event_attributes":
                self._cancel_requested.add(event.activity_task_cancel_requested_event_attributes.activity_id)
        return opened

    def resolve(self) -> bool:
        """Give every command the execution waits on its outcome; False when it waited on none."""
        pending, self.pending = self.pending, []
        for event in pending:
            which = event.WhichOneof("attributes")
            if which == "activity_task_scheduled_event_attributes":
                self._activity(event)
            elif which == "timer_started_event_attributes":
                attrs = event.timer_started_event_attributes
                self.clock += attrs.start_to_fire_timeout.ToTimedelta()  # no wall time: only the clock moves
                self._append(
                    "timer_fired_event_attributes",
                    self.sdk.history.TimerFiredEventAttributes(
                        timer_id=attrs.timer_id, started_event_id=event.event_id
                    ),
                )
            elif which == "start_child_workflow_execution_initiated_event_attributes":
                self._child(event)
            elif which == "signal_external_workflow_execution_initiated_event_attributes":
                attrs = event.signal_external_workflow_execution_initiated_event_attributes
                self._append(
                    "external_workflow_execution_signaled_event_attributes",
                    self.sdk.history.ExternalWorkflowExecutionSignaledEventAttributes(
                        initiated_event_id=event.event_id, workflow_execution=attrs.workflow_execution
                    ),
                )
        return bool(pending)

    def _result(self, kind: str, name: str) -> Any:
        self.calls[(kind, name)] += 1
        return self.outcome(kind, name, self.calls[(kind, name)])

    def _activity(self, event: Any) -> None:
        h = self.sdk.history
        attrs = event.activity_task_scheduled_event_attributes
        began = self._append(
            "activity_task_started_event_attributes",
            h.ActivityTaskStartedEventAttributes(scheduled_event_id=event.event_id, identity=self.identity),
        )
        ids = {"scheduled_event_id": event.event_id, "started_event_id": began.event_id}
        if attrs.activity_id in self._cancel_requested:
            self._append(
                "activity_task_canceled_event_attributes", h.ActivityTaskCanceledEventAttributes(**ids)
            )
            return
        outcome = self._result("activity", attrs.activity_type.name)
        if isinstance(outcome, Failed):
            failure = self.sdk.common.Failure(reason=str(outcome), details=b"{}")
            self._append(
                "activity_task_failed_event_attributes",
                h.ActivityTaskFailedEventAttributes(failure=failure, **ids),
            )
        else:
            result = self.converter.to_data([outcome])
            self._append(
                "activity_task_completed_event_attributes",
                h.ActivityTaskCompletedEventAttributes(result=result, identity=self.identity, **ids),
            )

    def _child(self, event: Any) -> None:
        h = self.sdk.history
        attrs = event.start_child_workflow_execution_initiated_event_attributes
        execution = self.sdk.common.WorkflowExecution(workflow_id=attrs.workflow_id, run_id="child-run")
        common = {
            "workflow_execution": execution,
            "workflow_type": attrs.workflow_type,
            "initiated_event_id": event.event_id,
        }
        began = self._append(
            "child_workflow_execution_started_event_attributes",
            h.ChildWorkflowExecutionStartedEventAttributes(**common),
        )
        outcome = self._result("child", attrs.workflow_type.name)
        if isinstance(outcome, Failed):
            self._append(
                "child_workflow_execution_failed_event_attributes",
                h.ChildWorkflowExecutionFailedEventAttributes(
                    started_event_id=began.event_id,
                    failure=self.sdk.common.Failure(reason=str(outcome), details=b"{}"),
                    **common,
                ),
            )
            return
        self._append(
            "child_workflow_execution_completed_event_attributes",
            h.ChildWorkflowExecutionCompletedEventAttributes(
                started_event_id=began.event_id, result=self.converter.to_data([outcome]), **common
            ),
        )


def _copy_common(source: Any, target: Any) -> None:
    """Copy the fields a decision and the event recording it share (same names, same types)."""
    names = {f.name for f in target.DESCRIPTOR.fields}
    for field, value in source.ListFields():
        if field.name not in names:
            continue
        flag = getattr(field, "is_repeated", None)  # protobuf >= 6; `label` before (deprecated since)
        repeated = flag if isinstance(flag, bool) else field.label == field.LABEL_REPEATED
        if field.type == field.TYPE_MESSAGE and not repeated:
            getattr(target, field.name).CopyFrom(value)
        elif repeated:
            getattr(target, field.name).extend(value)
        else:
            setattr(target, field.name, value)
