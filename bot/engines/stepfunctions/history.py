"""Read one exported Step Functions execution history (`GetExecutionHistory`, as the CLI saves it).

`load_execution` accepts `{"events": [...]}` with or without the `DescribeExecution` fields at the
top, a list of pages, or pages concatenated with repeated events, and gives back an `Execution`:
who ran, how it ended, the input, and for every Task visit the recorded attempts, keyed the way the
interpreter's oracle asks for them: (Map iteration scope, state name, visit ordinal).

Attributing events. Map iterations and Parallel branches interleave their events, so each event is
placed by following `previousEventId`: a `*StateEntered` starts a visit, `MapIterationStarted`
{name, index} opens an iteration level (its index joins the scope), the first state of a Parallel
branch (entered right after `ParallelStateStarted`) opens a branch level, and the events that close
a Map or Parallel (`MapStateSucceeded`, `ParallelStateFailed`, `MapStateExited`...) go back to the
container. Verified against moto 5.2.5 (LocalStack's interpreter) and AWS's documented format;
where they differ both are read:
- moto links the first state to event 0 (AWS to event 1, `ExecutionStarted`): both mean "the start";
- moto links `MapStateSucceeded` and `MapStateExited` both to the last `MapIterationSucceeded`, and
  `MapStateFailed` straight to the failing inner state; AWS chains them (`...Succeeded` then
  `...Exited`); either way the closing event pops the iteration level;
- moto writes `TaskStateExited` after a caught Task failure, AWS links the Catch target to the
  failure event; both give the same "next state" of the visit;
- moto records a Choice without match as `States.Runtime`, AWS as `States.NoChoiceMatched`.

Redriven executions: only the first run (the events before the first `ExecutionRedriven`) is kept
for replay. The redrive restarts the failed states with the same definition, and its later events
would land on visits the first run already closed; `run_status` is that first run's ending.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from bot.engines.stepfunctions.interpreter import TaskFailure, TaskOutcome, TaskSuccess

Status = Literal["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "RUNNING"]
Scope = tuple[int, ...]
VisitKey = tuple[Scope, str, int]

_TERMINAL: Final[dict[str, Status]] = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
_STATUSES: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "RUNNING"})
_SCHEDULED: Final = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
_SUCCEEDED: Final = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded", "ActivitySucceeded"})
#: Failures of an attempt. Without a `*Scheduled` before, a `States.Runtime` one is the state's own
#: failure (moto writes a `TaskFailed` for a Parameters path that does not resolve: nothing ran).
_FAILED_AFTER_SCHEDULE: Final = frozenset(
    {
        "TaskFailed",
        "TaskTimedOut",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "ActivityFailed",
        "ActivityTimedOut",
    }
)
_FAILED_UNSCHEDULED: Final = frozenset({"LambdaFunctionScheduleFailed", "ActivityScheduleFailed"})
#: Errors of the state itself (its Parameters, ResultSelector...), not of the work it scheduled.
_STATE_LEVEL_ERRORS: Final = frozenset(
    {
        "States.Runtime",
        "States.QueryEvaluationError",
        "States.ResultPathMatchFailure",
        "States.DataLimitExceeded",
    }
)
_CONTAINER_CLOSERS: Final = {
    "MapStateSucceeded": "Map",
    "MapStateFailed": "Map",
    "MapStateAborted": "Map",
    "ParallelStateSucceeded": "Parallel",
    "ParallelStateFailed": "Parallel",
    "ParallelStateAborted": "Parallel",
}
_FAILURE_PROPAGATION: Final = frozenset(
    {"ExecutionFailed", "MapStateFailed", "ParallelStateFailed", "MapIterationFailed", "MapRunFailed"}
)


class HistoryUnreadable(Exception):
    """The data is not a Step Functions execution history; the message says why."""


@dataclass(frozen=True)
class StateVisit:
    """One `*StateEntered` of the history: which state, in which Map iterations, the how-many-th time."""

    name: str
    scope: Scope
    ordinal: int
    kind: str
    event_id: int
    has_input: bool
    #: The entered input and exited output as recorded (JSON text): parsed on access, as replay
    #: itself never needs them.
    input_text: Any = field(repr=False)
    exited: bool = False
    output_text: Any = field(default=None, repr=False)
    #: The state entered right after this one in the same branch (None: none recorded).
    next: str | None = None

    @property
    def key(self) -> VisitKey:
        """(scope, name, ordinal): how the interpreter's oracle names this visit."""
        return (self.scope, self.name, self.ordinal)

    @property
    def input(self) -> Any:
        """The state's input when it was entered (parsed JSON), None if not exported."""
        return _json(self.input_text)

    @property
    def output(self) -> Any:
        """The state's output when it exited (parsed JSON), None if it did not exit."""
        return _json(self.output_text)


@dataclass(frozen=True)
class Execution:
    """One recorded execution, read from its exported history."""

    name: str
    state_machine: str | None
    execution_name: str | None
    execution_arn: str | None
    version_arn: str | None
    status: Status
    started: float | None
    closed: float | None
    events: int
    input: Any = field(repr=False)
    error: str | None
    #: The failure's cause as recorded: payload text, never printed.
    cause: str | None = field(repr=False)
    failed_state: str | None
    tasks: Mapping[VisitKey, tuple[TaskOutcome, ...]] = field(repr=False, hash=False)
    visits: tuple[StateVisit, ...] = field(repr=False)
    entered: frozenset[str] = field(repr=False)
    skip_reason: str | None
    redriven: bool = False
    #: How the replayed run ended: `status`, except for a redriven execution (its first run).
    run_status: Status = "RUNNING"
    start_time: str | None = None

    @property
    def open(self) -> bool:
        """Whether the execution was still running when it was exported."""
        return self.status == "RUNNING"


@dataclass
class _Level:
    container: int  # index of the Map/Parallel visit
    kind: str  # "Map" or "Parallel"
    name: str
    index: int | None


@dataclass
class _Ctx:
    levels: tuple[_Level, ...]
    current: int | None  # index of the visit the event belongs to


@dataclass
class _VisitBuild:
    name: str
    scope: Scope
    ordinal: int
    kind: str
    event_id: int
    has_input: bool
    input_text: Any
    exited: bool = False
    output_text: Any = None
    next: str | None = None
    awaiting: bool = False
    attempts: list[TaskOutcome] = field(default_factory=list)


def load_execution(data: Any, name: str) -> Execution:
    """The execution a `GetExecutionHistory` export describes; `HistoryUnreadable` if it is none.

    `name` is the file's name, kept for messages.
    """
    top, events = _collect(data)
    return _Reader(top, events, name).read()


def _collect(data: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if isinstance(data, dict):
        pages: list[Any] = [data]
        top = data
    elif isinstance(data, list):
        if data and all(isinstance(page, dict) and "events" in page for page in data):
            pages, top = data, next((p for p in data if "executionArn" in p or "input" in p), data[0])
        elif data and all(isinstance(event, dict) and "type" in event for event in data):
            pages, top = [{"events": data}], {}
        else:
            raise HistoryUnreadable(
                "not a Step Functions history: a list, but not of history pages or events"
            )
    else:
        raise HistoryUnreadable("not a Step Functions history: not a JSON object")
    by_id: dict[int, dict[str, Any]] = {}
    for page in pages:
        if "events" not in page:
            raise HistoryUnreadable("not a Step Functions history: no `events`")
        events = page["events"]
        if not isinstance(events, list):
            raise HistoryUnreadable("not a Step Functions history: `events` is not a list")
        for position, event in enumerate(events):
            if not isinstance(event, dict):
                raise HistoryUnreadable(f"event at position {position} is not an object")
            event_id = event.get("id")
            if not isinstance(event_id, int) or isinstance(event_id, bool):
                raise HistoryUnreadable(f"event at position {position} has no numeric id")
            if not isinstance(event.get("type"), str):
                raise HistoryUnreadable(f"event {event_id} has no type")
            by_id.setdefault(event_id, event)
    if not by_id:
        raise HistoryUnreadable("not a Step Functions history: `events` is empty")
    return top, [by_id[i] for i in sorted(by_id)]


def _details(event: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def epoch(value: Any) -> float | None:
    """Seconds since the epoch of an event timestamp (ISO text, epoch number or datetime)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            try:
                return epoch(float(value))
            except ValueError:
                return None
        return epoch(moment)
    return None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _arn_part(arn: Any, kinds: tuple[str, ...], index: int) -> str | None:
    if not isinstance(arn, str):
        return None
    parts = arn.split(":")
    if len(parts) > index and parts[0] == "arn" and parts[5] in kinds:
        return parts[index] or None
    return None


class _Reader:
    def __init__(self, top: dict[str, Any], events: list[dict[str, Any]], name: str) -> None:
        self.top = top
        self.events = events
        self.name = name
        self.visits: list[_VisitBuild] = []
        self.counts: dict[tuple[Scope, str], int] = {}
        self.ctx: dict[int, _Ctx] = {}
        self.types: dict[int, str] = {event["id"]: event["type"] for event in events}
        self.details: dict[int, dict[str, Any]] = {event["id"]: _details(event) for event in events}

    def read(self) -> Execution:
        top, events = self.top, self.events
        redrive = next((i for i, e in enumerate(events) if e["type"] == "ExecutionRedriven"), None)
        first_run = events if redrive is None else events[:redrive]
        for event in first_run:
            self.place(event)
        status = self.status(events)
        run_status = self.status(first_run) if redrive is not None else status
        started_event = next((e for e in events if e["type"] == "ExecutionStarted"), None)
        start_details = self.details[started_event["id"]] if started_event else {}
        if "input" in start_details:
            execution_input, has_input = _json(start_details["input"]), True
        elif "input" in top:
            execution_input, has_input = _json(top["input"]), True
        else:
            execution_input, has_input = None, False
        terminal = next((e for e in reversed(first_run) if e["type"] in _TERMINAL), None)
        failure = (
            self.details[terminal["id"]] if terminal and terminal["type"] != "ExecutionSucceeded" else {}
        )
        state_machine_arn = top.get("stateMachineArn")
        execution_arn = top.get("executionArn")
        started = (
            epoch(started_event["timestamp"]) if started_event and "timestamp" in started_event else None
        )
        started = started if started is not None else epoch(top.get("startDate"))
        closing = next((e for e in reversed(events) if e["type"] in _TERMINAL), None)
        closed = epoch(closing.get("timestamp")) if closing and status != "RUNNING" else None
        if closed is None and status != "RUNNING":
            closed = epoch(top.get("stopDate"))
        visits = tuple(
            StateVisit(
                name=v.name,
                scope=v.scope,
                ordinal=v.ordinal,
                kind=v.kind,
                event_id=v.event_id,
                has_input=v.has_input,
                input_text=v.input_text,
                exited=v.exited,
                output_text=v.output_text,
                next=v.next,
            )
            for v in self.visits
        )
        tasks = {(v.scope, v.name, v.ordinal): tuple(v.attempts) for v in self.visits if v.kind == "Task"}
        return Execution(
            name=self.name,
            state_machine=_arn_part(state_machine_arn, ("stateMachine",), 6)
            or _arn_part(execution_arn, ("execution", "express"), 6),
            execution_name=top.get("name") or _arn_part(execution_arn, ("execution", "express"), 7),
            execution_arn=execution_arn if isinstance(execution_arn, str) else None,
            version_arn=top.get("stateMachineVersionArn"),
            status=status,
            started=started,
            closed=closed,
            events=len(events),
            input=execution_input,
            error=failure.get("error"),
            cause=failure.get("cause"),
            failed_state=self.failed_state(terminal)
            if terminal and terminal["type"] == "ExecutionFailed"
            else None,
            tasks=tasks,
            visits=visits,
            entered=frozenset(v.name for v in visits),
            skip_reason=self.skip_reason(has_input),
            redriven=redrive is not None,
            run_status=run_status,
            start_time=_iso(started),
        )

    def status(self, events: list[dict[str, Any]]) -> Status:
        for event in reversed(events):
            if event["type"] in _TERMINAL:
                return _TERMINAL[event["type"]]
            if event["type"] in ("ExecutionStarted", "ExecutionRedriven"):
                return "RUNNING"
        status = self.top.get("status")
        return status if status in _STATUSES else "RUNNING"

    def skip_reason(self, has_input: bool) -> str | None:
        top, events = self.top, self.events
        arn = str(top.get("executionArn") or "")
        kind = str(top.get("type") or top.get("stateMachineType") or "")
        if ":express:" in arn or kind.upper() == "EXPRESS":
            return "Express executions have no history; their events are only in CloudWatch Logs"
        first = events[0]["id"]
        if first > 1:
            return f"history starts at event {first} (a page is missing)"
        for before, after in itertools.pairwise(events):
            if after["id"] != before["id"] + 1:
                return f"events {before['id'] + 1} to {after['id'] - 1} are missing (a page is missing)"
        if not has_input or self.without_data():
            return (
                "exported without execution data (includeExecutionData=false): no input or results to replay"
            )
        for event in events:
            details = self.details[event["id"]]
            for key, value in details.items():
                if key.endswith("Details") and isinstance(value, dict) and value.get("truncated") is True:
                    return f"execution data truncated at event {event['id']}"
        if any(event["type"].startswith("MapRun") for event in events):
            return "a Distributed Map ran child executions: their Task results are not in this history"
        return None

    def without_data(self) -> bool:
        for event in self.events:
            details = self.details[event["id"]]
            if event["type"] == "ExecutionStarted" and "input" not in details:
                return True
            if event["type"] in _SUCCEEDED and "output" not in details:
                return True
        return False

    # ---------------------------------------------------------------------------- attribution

    def place(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        event_id = event["id"]
        details = self.details[event_id]
        previous_id = event.get("previousEventId")
        prev = self.ctx.get(previous_id) if isinstance(previous_id, int) else None
        if prev is None:
            prev = self.ctx.get(event_id - 1, _Ctx((), None)) if previous_id is None else _Ctx((), None)
        prev_type = self.types.get(previous_id) if isinstance(previous_id, int) else None
        if kind in ("ExecutionStarted", "ExecutionRedriven"):
            ctx = _Ctx((), None)
        elif kind.endswith("StateEntered"):
            levels = prev.levels
            linked = prev.current
            if prev_type == "ParallelStateStarted" and prev.current is not None:
                parallel = self.visits[prev.current].name
                levels = (*levels, _Level(prev.current, "Parallel", parallel, None))
                linked = None
            elif prev_type == "MapIterationStarted":
                linked = None
            entered = self.enter(event, kind, details, levels)
            ctx = _Ctx(levels, entered)
            if linked is not None and self.visits[linked].scope == self.visits[entered].scope:
                self.visits[linked].next = self.visits[entered].name
        elif kind == "MapIterationStarted":
            index = details.get("index")
            name = str(details.get("name"))
            levels, owner = prev.levels, prev.current if prev.current is not None else -1
            # With MaxConcurrency moto links the next iteration to the end of the previous one.
            for depth, level in enumerate(levels):
                if level.kind == "Map" and level.name == name:
                    levels, owner = levels[:depth], level.container
                    break
            level = _Level(owner, "Map", name, index if isinstance(index, int) else 0)
            ctx = _Ctx((*levels, level), None)
        elif kind in _CONTAINER_CLOSERS:
            family = _CONTAINER_CLOSERS[kind]
            if prev_type in (f"{family}StateEntered", f"{family}StateStarted"):
                ctx = prev
            else:
                ctx = self.pop(prev, lambda level: level.kind == family)
        elif kind in ("MapStateExited", "ParallelStateExited"):
            closed = details.get("name")
            ctx = self.pop(prev, lambda level: level.name == closed)
        else:
            ctx = prev
        self.ctx[event_id] = ctx
        self.record(kind, details, ctx)

    def enter(
        self, event: dict[str, Any], kind: str, details: dict[str, Any], levels: tuple[_Level, ...]
    ) -> int:
        scope = tuple(level.index for level in levels if level.index is not None)
        name = str(details.get("name"))
        ordinal = self.counts.get((scope, name), 0)
        self.counts[(scope, name)] = ordinal + 1
        self.visits.append(
            _VisitBuild(
                name=name,
                scope=scope,
                ordinal=ordinal,
                kind=kind.removesuffix("StateEntered"),
                event_id=event["id"],
                has_input="input" in details,
                input_text=details.get("input"),
            )
        )
        return len(self.visits) - 1

    @staticmethod
    def pop(prev: _Ctx, closes: Any) -> _Ctx:
        for depth in range(len(prev.levels) - 1, -1, -1):
            level = prev.levels[depth]
            if closes(level):
                return _Ctx(prev.levels[:depth], level.container)
        return prev

    def record(self, kind: str, details: dict[str, Any], ctx: _Ctx) -> None:
        if ctx.current is None:
            return
        visit = self.visits[ctx.current]
        if kind.endswith("StateExited") and details.get("name") == visit.name:
            visit.exited = True
            visit.output_text = details.get("output")
        if visit.kind != "Task":
            return
        if kind in _SCHEDULED:
            visit.awaiting = True
        elif kind in _SUCCEEDED and visit.awaiting:
            visit.awaiting = False
            visit.attempts.append(TaskSuccess(_json(details.get("output"))))
        elif kind in _FAILED_UNSCHEDULED or (
            kind in _FAILED_AFTER_SCHEDULE
            and (visit.awaiting or details.get("error") not in _STATE_LEVEL_ERRORS)
        ):
            visit.awaiting = False
            visit.attempts.append(TaskFailure(str(details.get("error") or ""), details.get("cause")))

    def failed_state(self, terminal: dict[str, Any]) -> str | None:
        by_id = {event["id"]: event for event in self.events}
        event: dict[str, Any] | None = terminal
        seen: set[int] = set()
        while event is not None and event["type"] in _FAILURE_PROPAGATION and event["id"] not in seen:
            seen.add(event["id"])
            event = by_id.get(event.get("previousEventId", event["id"] - 1))
        if event is None:
            return None
        ctx = self.ctx.get(event["id"])
        if ctx is None or ctx.current is None:
            return None
        return self.visits[ctx.current].name
