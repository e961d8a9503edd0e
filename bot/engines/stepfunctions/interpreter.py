"""An Amazon States Language interpreter that asks an oracle for every Task result.

`run_definition(definition, input, oracle)` runs a state machine definition (the dict parsed from
its JSON) the way Step Functions would, but never calls a service, never sleeps and never reads the
clock: every Task attempt asks `oracle(state, scope, visit, attempt, parameters)` for its outcome,
and a missing outcome stops the run (`PENDING`). Replay feeds the oracle from a recorded history;
tests feed it a dict of scripted results (`ScriptedOracle`).

Deterministic choices where the service is not: Parallel branches and Map iterations run one after
the other, in index order, and the first failing one (in that order) fails the state; `$$` times are
the execution's start time; `States.UUID`/`States.MathRandom`/`$uuid()`/`$random()` draw from a seeded
random source. TimeoutSeconds and HeartbeatSeconds are not simulated (a timeout is a recorded Task
outcome like any other).
"""

from __future__ import annotations

import random
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bot.engines.stepfunctions.choice import evaluate_rule, parse_timestamp
from bot.engines.stepfunctions.intrinsics import (
    QUERY_ERROR,
    RANDOM,
    Scope,
    StatesError,
    Unsupported,
    evaluate_expression,
    is_jsonata,
    is_number,
    read_path,
    resolve_jsonata,
    resolve_template,
    runtime_error,
    write_result_path,
)

__all__ = [
    "ExecutionContext",
    "Oracle",
    "PendingTask",
    "Run",
    "ScriptedOracle",
    "StatesError",
    "TaskFailure",
    "TaskOutcome",
    "TaskSuccess",
    "Unsupported",
    "Visit",
    "error_matches",
    "run_definition",
]

#: AWS's history limit: an execution that would need more state transitions cannot exist.
MAX_STEPS: Final = 25_000
_TASK_TOKEN: Final = "replay-task-token"


@dataclass(frozen=True)
class TaskSuccess:
    """A Task attempt that returned `output` (the raw result, before ResultSelector)."""

    output: Any


@dataclass(frozen=True)
class TaskFailure:
    """A Task attempt that failed with `error`; `cause` is payload text, never printed."""

    error: str
    cause: str | None = None


TaskOutcome = TaskSuccess | TaskFailure
Scope_ = tuple[int, ...]

#: `oracle(state_name, scope, visit, attempt, resolved_parameters)`: the outcome of one Task attempt,
#: or None when there is none. `scope` holds the Map iteration indexes (outermost first), `visit`
#: counts the earlier visits of that state in that scope, `attempt` the earlier attempts of this visit.
Oracle = Callable[[str, Scope_, int, int, Any], TaskOutcome | None]


class ScriptedOracle:
    """An oracle from a dict of scripted results: each state's outcomes are handed out in order."""

    def __init__(self, results: Mapping[str, Sequence[TaskOutcome]]) -> None:
        self._results = {name: list(outcomes) for name, outcomes in results.items()}
        self.calls: list[tuple[str, Scope_, int, int, Any]] = []

    def __call__(
        self, state: str, scope: Scope_, visit: int, attempt: int, parameters: Any
    ) -> TaskOutcome | None:
        """The next scripted outcome of `state`, or None when its script is used up."""
        self.calls.append((state, scope, visit, attempt, parameters))
        queue = self._results.get(state)
        return queue.pop(0) if queue else None


@dataclass(frozen=True, kw_only=True)
class ExecutionContext:
    """What the context object `$$` says about the execution."""

    name: str = "replay"
    arn: str = "arn:aws:states:us-east-1:000000000000:execution:StateMachine:replay"
    state_machine: str = "StateMachine"
    state_machine_arn: str = "arn:aws:states:us-east-1:000000000000:stateMachine:StateMachine"
    start_time: str = "1970-01-01T00:00:00.000Z"
    role_arn: str = "arn:aws:iam::000000000000:role/replay"
    redrive_count: int = 0


@dataclass(slots=True)
class Visit:
    """One state entered by the run, in the order the interpreter ran them."""

    name: str
    scope: Scope_
    ordinal: int
    kind: str
    input: Any
    output: Any = None
    exited: bool = False
    error: str | None = None
    #: Index (in `Run.visits`) of the state entered next in the same branch, None at its end.
    next_visit: int | None = None


@dataclass(frozen=True)
class PendingTask:
    """A Task attempt the oracle had no outcome for."""

    state: str
    scope: Scope_
    visit: int
    attempt: int


RunStatus = Literal["SUCCEEDED", "FAILED", "PENDING", "BUDGET_EXCEEDED", "UNSUPPORTED", "INVALID"]


@dataclass(frozen=True)
class Run:
    """How a run ended. `message` is safe to print: state names, error names, definition expressions."""

    status: RunStatus
    message: str
    steps: int
    visits: tuple[Visit, ...] = ()
    output: Any = None
    error: str | None = None
    #: How messages name `error`: the name itself, unless the definition computed it from the data.
    error_label: str | None = None
    #: The failure's cause: may carry payload text from a recorded failure. Never print it.
    cause: str | None = field(default=None, repr=False)
    #: Where it failed, waits for a Task outcome, or uses an unsupported feature.
    state: str | None = None
    #: The failure came from evaluating the definition on the data (a path, an intrinsic, JSONata, a
    #: Choice without match), not from a Task or a Fail state.
    definition_error: bool = False
    pending: tuple[PendingTask, ...] = ()


def run_definition(
    definition: Mapping[str, Any],
    input: Any,
    oracle: Oracle,
    *,
    context: ExecutionContext | None = None,
    max_steps: int = MAX_STEPS,
) -> Run:
    """Run `definition` on `input`, asking `oracle` for every Task attempt; never raises for ASL errors."""
    interpreter = _Interpreter(definition, input, oracle, context or ExecutionContext(), max_steps)
    return interpreter.run()


def error_matches(patterns: Any, error: str, *, container: bool = False) -> bool:
    """Whether a Retrier's or Catcher's `ErrorEquals` covers `error` (a catchable error).

    `States.ALL` covers everything, `States.TaskFailed` everything but timeouts, `States.Timeout` also
    the heartbeat timeout, and `States.BranchFailed` any failure of a Parallel branch or Map iteration.
    """
    if not isinstance(patterns, list):
        return False
    for pattern in patterns:
        if pattern in (error, "States.ALL"):
            return True
        if pattern == "States.TaskFailed" and error not in ("States.Timeout", "States.HeartbeatTimeout"):
            return True
        if pattern == "States.Timeout" and error == "States.HeartbeatTimeout":
            return True
        if pattern == "States.BranchFailed" and container:
            return True
    return False


class _Pending(Exception):
    def __init__(self, points: list[PendingTask]) -> None:
        super().__init__("pending")
        self.points = points


class _BudgetExceeded(Exception):
    pass


class _Invalid(Exception):
    def __init__(self, message: str, state: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.state = state


class _Variables:
    """Workflow variables of one branch: the outer ones are readable, only the local ones assignable."""

    def __init__(self, outer: Mapping[str, Any] | None = None) -> None:
        self.outer: Mapping[str, Any] = outer if outer is not None else {}
        self.local: dict[str, Any] = {}
        self.view: Mapping[str, Any] = ChainMap(self.local, self.outer)  # type: ignore[arg-type]

    def inner(self) -> _Variables:
        return _Variables(dict(self.view))

    def assign(self, values: Any, state: str) -> None:
        if values is None:
            return
        if not isinstance(values, dict):
            raise runtime_error(f"Assign of `{state}` must be an object")
        for name in values:
            if name in self.outer:
                raise runtime_error(
                    f"`{state}` assigns `${name}`, a variable of an outer scope (read-only in Map and Parallel)"
                )
        self.local.update(values)


@dataclass
class _Frame:
    """Everything one state evaluation needs besides its definition."""

    name: str
    state: Mapping[str, Any]
    data: Any
    scope: Scope_
    ordinal: int
    variables: _Variables
    jsonata: bool


class _Interpreter:
    def __init__(
        self,
        definition: Mapping[str, Any],
        input: Any,
        oracle: Oracle,
        context: ExecutionContext,
        max_steps: int,
    ) -> None:
        self.definition = definition
        self.input = input
        self.oracle = oracle
        self.execution = context
        self.max_steps = max_steps
        self.steps = 0
        self.visits: list[Visit] = []
        self.counts: dict[tuple[Scope_, str], int] = {}

    def run(self) -> Run:
        token = RANDOM.set(random.Random(0))
        try:
            language = self.definition.get("QueryLanguage", "JSONPath")
            output = self.run_machine(self.definition, self.input, (), _Variables(), language, "StartAt")
            return self.result("SUCCEEDED", "succeeded", output=output)
        except StatesError as err:
            where = f" at `{err.state}`" if err.state else ""
            detail = f": {err.cause}" if err.definition and err.cause else ""
            return self.result(
                "FAILED",
                f"fails with {err.shown}{where}{detail}",
                error=err.error,
                error_label=err.shown,
                cause=err.cause,
                state=err.state,
                definition_error=err.definition,
            )
        except _Pending as pending:
            first = pending.points[0]
            return self.result(
                "PENDING",
                f"needs an outcome for Task `{first.state}` that the oracle does not have",
                state=first.state,
                pending=tuple(pending.points),
            )
        except _BudgetExceeded:
            return self.result(
                "BUDGET_EXCEEDED",
                f"exceeds {self.max_steps:,} state transitions (a loop that never ends?)",
                state=self.visits[-1].name if self.visits else None,
            )
        except Unsupported as unsupported:
            return self.result(
                "UNSUPPORTED",
                f"`{unsupported.state}` uses {unsupported.feature}, which replay cannot simulate",
                state=unsupported.state,
            )
        except _Invalid as invalid:
            return self.result("INVALID", invalid.message, state=invalid.state)
        finally:
            RANDOM.reset(token)

    def result(self, status: RunStatus, message: str, **fields: Any) -> Run:
        return Run(status=status, message=message, steps=self.steps, visits=tuple(self.visits), **fields)

    # ------------------------------------------------------------------------------------ machines

    def run_machine(
        self,
        machine: Mapping[str, Any],
        data: Any,
        scope: Scope_,
        variables: _Variables,
        language: str,
        where: str,
    ) -> Any:
        """Run one state machine, branch or item processor from its StartAt; its output."""
        states = machine.get("States")
        name = machine.get("StartAt")
        if not isinstance(states, dict) or not isinstance(name, str):
            raise _Invalid(f"{where} has no `StartAt` and `States`", None)
        previous: Visit | None = None
        came_from = where
        while True:
            state = states.get(name)
            if not isinstance(state, dict):
                raise _Invalid(f"{came_from} names state `{name}`, which does not exist", name)
            self.steps += 1
            if self.steps > self.max_steps:
                raise _BudgetExceeded
            key = (scope, name)
            ordinal = self.counts.get(key, 0)
            self.counts[key] = ordinal + 1
            visit = Visit(name, scope, ordinal, str(state.get("Type")), data)
            if previous is not None:
                previous.next_visit = len(self.visits)
            self.visits.append(visit)
            previous = visit
            jsonata = state.get("QueryLanguage", language) == "JSONata"
            frame = _Frame(name, state, data, scope, ordinal, variables, jsonata)
            try:
                output, next_name = self.run_state(frame)
            except (StatesError, Unsupported) as err:
                if err.state is None:
                    err.state = name
                if isinstance(err, StatesError):
                    visit.error = err.error
                raise
            visit.output, visit.exited = output, True
            if next_name is None:
                return output
            data, name, came_from = output, next_name, f"`{name}`"

    def run_state(self, frame: _Frame) -> tuple[Any, str | None]:
        kind = frame.state.get("Type")
        handler = {
            "Pass": self.pass_state,
            "Task": self.task_state,
            "Choice": self.choice_state,
            "Wait": self.wait_state,
            "Succeed": self.succeed_state,
            "Fail": self.fail_state,
            "Parallel": self.parallel_state,
            "Map": self.map_state,
        }.get(str(kind))
        if handler is None:
            raise _Invalid(f"state `{frame.name}` has an unknown Type `{kind}`", frame.name)
        return handler(frame)

    # ------------------------------------------------------------------------------------- helpers

    def context(self, frame: _Frame, attempt: int = 0, **extra: Any) -> dict[str, Any]:
        run = self.execution
        context: dict[str, Any] = {
            "Execution": {
                "Id": run.arn,
                "Input": self.input,
                "Name": run.name,
                "RoleArn": run.role_arn,
                "StartTime": run.start_time,
                "RedriveCount": run.redrive_count,
            },
            "State": {"EnteredTime": run.start_time, "Name": frame.name, "RetryCount": attempt},
            "StateMachine": {"Id": run.state_machine_arn, "Name": run.state_machine},
        }
        context.update(extra)
        return context

    def scope(self, data: Any, context: Mapping[str, Any], frame: _Frame) -> Scope:
        return Scope(data, context, frame.variables.view)

    def bindings(self, frame: _Frame, context: Mapping[str, Any], **states: Any) -> dict[str, Any]:
        return {**frame.variables.view, "states": {"input": frame.data, "context": context, **states}}

    def input_path(self, frame: _Frame, context: Mapping[str, Any]) -> Any:
        if "InputPath" not in frame.state:
            return frame.data
        path = frame.state["InputPath"]
        return {} if path is None else read_path(path, self.scope(frame.data, context, frame), "InputPath")

    def output_path(self, frame: _Frame, output: Any, context: Mapping[str, Any]) -> Any:
        if "OutputPath" not in frame.state:
            return output
        path = frame.state["OutputPath"]
        return {} if path is None else read_path(path, self.scope(output, context, frame), "OutputPath")

    def jsonata_output(
        self, frame: _Frame, default: Any, bindings: Mapping[str, Any], holder: Any = None
    ) -> Any:
        source = frame.state if holder is None else holder
        if "Output" not in source:
            return default
        return resolve_jsonata(source["Output"], bindings, "Output")

    def next_of(self, frame: _Frame) -> str | None:
        if frame.state.get("End") is True:
            return None
        target = frame.state.get("Next")
        if not isinstance(target, str):
            raise _Invalid(f"state `{frame.name}` has neither `Next` nor `End`", frame.name)
        return target

    # -------------------------------------------------------------------------------------- states

    def pass_state(self, frame: _Frame) -> tuple[Any, str | None]:
        context = self.context(frame)
        if frame.jsonata:
            bindings = self.bindings(frame, context)
            output = self.jsonata_output(frame, frame.data, bindings)
            frame.variables.assign(self.jsonata_assign(frame.state, bindings), frame.name)
            return output, self.next_of(frame)
        effective = self.input_path(frame, context)
        result = effective
        if "Parameters" in frame.state:
            result = resolve_template(
                frame.state["Parameters"], self.scope(effective, context, frame), "Parameters"
            )
        if "Result" in frame.state:
            result = frame.state["Result"]
        assign = self.jsonpath_assign(frame.state, self.scope(result, context, frame))
        output = write_result_path(frame.state.get("ResultPath", "$"), frame.data, result)
        output = self.output_path(frame, output, context)
        frame.variables.assign(assign, frame.name)
        return output, self.next_of(frame)

    def jsonpath_assign(self, holder: Mapping[str, Any], scope: Scope) -> Any:
        return resolve_template(holder["Assign"], scope, "Assign") if "Assign" in holder else None

    def jsonata_assign(self, holder: Mapping[str, Any], bindings: Mapping[str, Any]) -> Any:
        return resolve_jsonata(holder["Assign"], bindings, "Assign") if "Assign" in holder else None

    def succeed_state(self, frame: _Frame) -> tuple[Any, str | None]:
        context = self.context(frame)
        if frame.jsonata:
            return self.jsonata_output(frame, frame.data, self.bindings(frame, context)), None
        return self.output_path(frame, self.input_path(frame, context), context), None

    def fail_state(self, frame: _Frame) -> tuple[Any, str | None]:
        context = self.context(frame)
        state = frame.state
        values: dict[str, Any] = {}
        for key in ("Error", "Cause"):
            if frame.jsonata:
                value = (
                    resolve_jsonata(state[key], self.bindings(frame, context), key) if key in state else None
                )
            elif f"{key}Path" in state:
                path = state[f"{key}Path"]
                if not isinstance(path, str):
                    raise runtime_error(f"{key}Path of `{frame.name}` must be a path")
                value = evaluate_expression(path, self.scope(frame.data, context, frame), f"{key}Path")
            else:
                value = state.get(key)
            if value is not None and not isinstance(value, str):
                raise runtime_error(f"the {key} of Fail state `{frame.name}` is not a string")
            values[key] = value
        failure = StatesError(values["Error"] or "", values["Cause"])
        if (frame.jsonata and is_jsonata(state.get("Error"))) or "ErrorPath" in state:
            # An error name taken from the data is data: messages name where it came from instead.
            failure.label = f"the Error computed by `{frame.name}`"
        raise failure

    def wait_state(self, frame: _Frame) -> tuple[Any, str | None]:
        context = self.context(frame)
        state = frame.state
        fields = [key for key in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if key in state]
        if len(fields) != 1:
            raise _Invalid(
                f"Wait state `{frame.name}` needs exactly one of Seconds, Timestamp, *Path", frame.name
            )
        key = fields[0]
        value = state[key]
        if frame.jsonata:
            bindings = self.bindings(frame, context)
            value = resolve_jsonata(value, bindings, key)
            _check_wait(frame.name, key, value, QUERY_ERROR)
            output = self.jsonata_output(frame, frame.data, bindings)
            frame.variables.assign(self.jsonata_assign(state, bindings), frame.name)
            return output, self.next_of(frame)
        effective = self.input_path(frame, context)
        if key.endswith("Path"):
            value = read_path(value, self.scope(effective, context, frame), key)
        _check_wait(frame.name, key.removesuffix("Path"), value, "States.Runtime")
        assign = self.jsonpath_assign(state, self.scope(effective, context, frame))
        output = self.output_path(frame, effective, context)
        frame.variables.assign(assign, frame.name)
        return output, self.next_of(frame)

    def choice_state(self, frame: _Frame) -> tuple[Any, str | None]:
        context = self.context(frame)
        state = frame.state
        rules = state.get("Choices")
        if not isinstance(rules, list) or not rules:
            raise _Invalid(f"Choice state `{frame.name}` has no Choices", frame.name)
        bindings = self.bindings(frame, context) if frame.jsonata else {}
        effective = frame.data if frame.jsonata else self.input_path(frame, context)
        scope = self.scope(effective, context, frame)
        chosen: Mapping[str, Any] | None = None
        for index, rule in enumerate(rules):
            where = f"Choices[{index}] of `{frame.name}`"
            if not isinstance(rule, dict):
                raise _Invalid(f"{where} is not an object", frame.name)
            if frame.jsonata:
                holds = resolve_jsonata(rule.get("Condition"), bindings, f"Choices[{index}].Condition")
                if not isinstance(holds, bool):
                    raise StatesError(
                        QUERY_ERROR, f"{where}: the Condition did not return a boolean", definition=True
                    )
            else:
                holds = evaluate_rule(rule, scope, where)
            if holds:
                chosen = rule
                break
        if chosen is None:
            if "Default" not in state:
                raise StatesError(
                    "States.NoChoiceMatched",
                    f"no Choices rule of `{frame.name}` matched and it has no Default",
                    definition=True,
                )
            target, holder = state["Default"], state
        else:
            target, holder = chosen.get("Next"), chosen
        if not isinstance(target, str):
            raise _Invalid(f"a Choices rule of `{frame.name}` has no Next", frame.name)
        if frame.jsonata:
            source = holder if "Output" in holder else state
            output = self.jsonata_output(frame, frame.data, bindings, source)
            assign = self.jsonata_assign(holder, bindings) if "Assign" in holder else None
            if assign is None and holder is not state:
                assign = self.jsonata_assign(state, bindings)
        else:
            output = self.output_path(frame, effective, context)
            assign = self.jsonpath_assign(holder, scope)
            if assign is None and holder is not state:
                assign = self.jsonpath_assign(state, scope)
        frame.variables.assign(assign, frame.name)
        return output, target

    # ----------------------------------------------------------------------- Task, Parallel, Map

    def task_state(self, frame: _Frame) -> tuple[Any, str | None]:
        state = frame.state
        resource = state.get("Resource")
        if not isinstance(resource, str):
            raise _Invalid(f"Task state `{frame.name}` has no Resource", frame.name)
        extra = {"Task": {"Token": _TASK_TOKEN}} if resource.endswith(".waitForTaskToken") else {}

        def attempt(number: int, context: dict[str, Any]) -> tuple[Any, Any]:
            if frame.jsonata:
                bindings = self.bindings(frame, context)
                arguments = (
                    resolve_jsonata(state["Arguments"], bindings, "Arguments")
                    if "Arguments" in state
                    else frame.data
                )
                for key in ("TimeoutSeconds", "HeartbeatSeconds"):
                    if key in state:
                        resolve_jsonata(state[key], bindings, key)
                result = self.ask(frame, number, arguments)
                return self.jsonata_result(frame, context, result)
            effective = self.input_path(frame, context)
            scope = self.scope(effective, context, frame)
            for key in ("TimeoutSecondsPath", "HeartbeatSecondsPath"):
                if key in state:
                    read_path(state[key], scope, key)
            parameters = (
                resolve_template(state["Parameters"], scope, "Parameters")
                if "Parameters" in state
                else effective
            )
            return self.jsonpath_result(frame, context, self.ask(frame, number, parameters))

        return self.with_retry(frame, attempt, container=False, **extra)

    def ask(self, frame: _Frame, attempt: int, parameters: Any) -> Any:
        outcome = self.oracle(frame.name, frame.scope, frame.ordinal, attempt, parameters)
        if outcome is None:
            raise _Pending([PendingTask(frame.name, frame.scope, frame.ordinal, attempt)])
        if isinstance(outcome, TaskFailure):
            raise StatesError(outcome.error, outcome.cause)
        return outcome.output

    def jsonpath_result(self, frame: _Frame, context: dict[str, Any], result: Any) -> tuple[Any, Any]:
        """ResultSelector and ResultPath applied to a Task/Parallel/Map result; the Assign values too."""
        assign = self.jsonpath_assign(frame.state, self.scope(result, context, frame))
        if "ResultSelector" in frame.state:
            scope = self.scope(result, context, frame)
            result = resolve_template(frame.state["ResultSelector"], scope, "ResultSelector")
        output = write_result_path(frame.state.get("ResultPath", "$"), frame.data, result)
        return self.output_path(frame, output, context), assign

    def jsonata_result(self, frame: _Frame, context: dict[str, Any], result: Any) -> tuple[Any, Any]:
        bindings = self.bindings(frame, context, result=result)
        return self.jsonata_output(frame, result, bindings), self.jsonata_assign(frame.state, bindings)

    def with_retry(
        self,
        frame: _Frame,
        attempt: Callable[[int, dict[str, Any]], tuple[Any, Any]],
        *,
        container: bool,
        **extra: Any,
    ) -> tuple[Any, str | None]:
        """Run `attempt` under the state's Retry and Catch; the state output and the next state."""
        retriers = frame.state.get("Retry") or []
        used = [0] * len(retriers)
        number = 0
        while True:
            context = self.context(frame, number, **extra)
            try:
                output, assign = attempt(number, context)
            except StatesError as err:
                if not err.catchable:
                    raise
                matching = next(
                    (
                        index
                        for index, retrier in enumerate(retriers)
                        if isinstance(retrier, dict)
                        and error_matches(retrier.get("ErrorEquals"), err.error, container=container)
                    ),
                    None,
                )
                if matching is not None:
                    # The first matching Retrier decides; once it is used up the error goes to Catch.
                    limit = retriers[matching].get("MaxAttempts", 3)
                    if is_number(limit) and used[matching] < limit:
                        used[matching] += 1
                        number += 1
                        continue
                return self.catch(frame, err, context, container=container)
            frame.variables.assign(assign, frame.name)
            return output, self.next_of(frame)

    def catch(
        self, frame: _Frame, err: StatesError, context: dict[str, Any], *, container: bool
    ) -> tuple[Any, str | None]:
        for catcher in frame.state.get("Catch") or []:
            if not isinstance(catcher, dict) or not error_matches(
                catcher.get("ErrorEquals"), err.error, container=container
            ):
                continue
            target = catcher.get("Next")
            if not isinstance(target, str):
                raise _Invalid(f"a Catch of `{frame.name}` has no Next", frame.name)
            error_output = {"Error": err.error, "Cause": err.cause if err.cause is not None else ""}
            if frame.jsonata:
                bindings = self.bindings(frame, context, errorOutput=error_output)
                output = (
                    resolve_jsonata(catcher["Output"], bindings, "Catch.Output")
                    if "Output" in catcher
                    else error_output
                )
                assign = self.jsonata_assign(catcher, bindings)
            else:
                assign = self.jsonpath_assign(catcher, self.scope(error_output, context, frame))
                output = write_result_path(catcher.get("ResultPath", "$"), frame.data, error_output)
            frame.variables.assign(assign, frame.name)
            return output, target
        raise err

    def parallel_state(self, frame: _Frame) -> tuple[Any, str | None]:
        branches = frame.state.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise _Invalid(f"Parallel state `{frame.name}` has no Branches", frame.name)

        def attempt(number: int, context: dict[str, Any]) -> tuple[Any, Any]:
            branch_input = self.container_input(frame, context)
            results: list[Any] = []
            pending: list[PendingTask] = []
            for index, branch in enumerate(branches):
                if not isinstance(branch, dict):
                    raise _Invalid(f"Branches[{index}] of `{frame.name}` is not an object", frame.name)
                language = "JSONata" if frame.jsonata else "JSONPath"
                where = f"Branches[{index}] of `{frame.name}`"
                try:
                    results.append(
                        self.run_machine(
                            branch, branch_input, frame.scope, frame.variables.inner(), language, where
                        )
                    )
                except _Pending as waiting:
                    pending.extend(waiting.points)
                    results.append(None)
            if pending:
                raise _Pending(pending)
            return self.container_result(frame, context, results)

        return self.with_retry(frame, attempt, container=True)

    def container_input(self, frame: _Frame, context: dict[str, Any]) -> Any:
        if frame.jsonata:
            if "Arguments" not in frame.state:
                return frame.data
            return resolve_jsonata(frame.state["Arguments"], self.bindings(frame, context), "Arguments")
        effective = self.input_path(frame, context)
        if frame.state.get("Type") == "Parallel" and "Parameters" in frame.state:
            return resolve_template(
                frame.state["Parameters"], self.scope(effective, context, frame), "Parameters"
            )
        return effective

    def container_result(self, frame: _Frame, context: dict[str, Any], results: list[Any]) -> tuple[Any, Any]:
        if frame.jsonata:
            return self.jsonata_result(frame, context, results)
        return self.jsonpath_result(frame, context, results)

    def map_state(self, frame: _Frame) -> tuple[Any, str | None]:
        state = frame.state
        for feature, label in (
            ("ItemReader", "ItemReader (items read from S3)"),
            ("ResultWriter", "ResultWriter (results written to S3)"),
            ("ItemBatcher", "ItemBatcher"),
        ):
            if feature in state:
                raise Unsupported(label)
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if not isinstance(processor, dict):
            raise _Invalid(f"Map state `{frame.name}` has no ItemProcessor", frame.name)
        mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
        tolerated = mode == "DISTRIBUTED" and any(key.startswith("ToleratedFailure") for key in state)

        def attempt(number: int, context: dict[str, Any]) -> tuple[Any, Any]:
            items, effective = self.map_items(frame, context)
            selector = state.get("ItemSelector", None if frame.jsonata else state.get("Parameters"))
            language = str(processor.get("QueryLanguage", "JSONata" if frame.jsonata else "JSONPath"))
            results: list[Any] = []
            pending: list[PendingTask] = []
            failures = 0
            for index, item in enumerate(items):
                item_context = self.context(frame, number, Map={"Item": {"Index": index, "Value": item}})
                item_input = item
                if selector is not None and frame.jsonata:
                    bindings = {**self.bindings(frame, item_context)}
                    item_input = resolve_jsonata(selector, bindings, "ItemSelector")
                elif selector is not None:
                    item_scope = self.scope(effective, item_context, frame)
                    item_input = resolve_template(selector, item_scope, "ItemSelector")
                where = f"ItemProcessor of `{frame.name}`"
                scope = (*frame.scope, index)
                try:
                    results.append(
                        self.run_machine(
                            processor, item_input, scope, frame.variables.inner(), language, where
                        )
                    )
                except _Pending as waiting:
                    pending.extend(waiting.points)
                    results.append(None)
                except StatesError as err:
                    if not tolerated or not err.catchable:
                        raise
                    failures += 1
                    results.append({"Error": err.error, "Cause": err.cause if err.cause is not None else ""})
            if failures:
                self.check_tolerance(frame, context, failures, len(items))
            if pending:
                raise _Pending(pending)
            return self.container_result(frame, context, results)

        return self.with_retry(frame, attempt, container=True)

    def map_items(self, frame: _Frame, context: dict[str, Any]) -> tuple[list[Any], Any]:
        state = frame.state
        if frame.jsonata:
            items = (
                resolve_jsonata(state["Items"], self.bindings(frame, context), "Items")
                if "Items" in state
                else frame.data
            )
            effective = frame.data
            what = "Items"
        else:
            effective = self.input_path(frame, context)
            path = state.get("ItemsPath", "$")
            items = read_path(path, self.scope(effective, context, frame), "ItemsPath")
            if "MaxConcurrencyPath" in state:
                read_path(
                    state["MaxConcurrencyPath"], self.scope(effective, context, frame), "MaxConcurrencyPath"
                )
            what = f"ItemsPath `{path}`"
        if not isinstance(items, list):
            error = QUERY_ERROR if frame.jsonata else "States.Runtime"
            raise StatesError(error, f"{what} of `{frame.name}` does not select an array", definition=True)
        return items, effective

    def check_tolerance(self, frame: _Frame, context: dict[str, Any], failures: int, total: int) -> None:
        state = frame.state
        scope = self.scope(frame.data, context, frame)
        count: Any = state.get("ToleratedFailureCount")
        if "ToleratedFailureCountPath" in state:
            count = read_path(state["ToleratedFailureCountPath"], scope, "ToleratedFailureCountPath")
        percentage: Any = state.get("ToleratedFailurePercentage")
        if "ToleratedFailurePercentagePath" in state:
            percentage = read_path(
                state["ToleratedFailurePercentagePath"], scope, "ToleratedFailurePercentagePath"
            )
        within = (is_number(count) and failures <= count) or (
            is_number(percentage) and total > 0 and failures * 100 / total <= percentage
        )
        if not within:
            raise StatesError(
                "States.ExceedToleratedFailureThreshold",
                f"more Map iterations of `{frame.name}` failed than it tolerates",
            )


def _check_wait(state: str, key: str, value: Any, error: str) -> None:
    if key == "Seconds":
        if not is_number(value) or int(value) != value or value < 0:
            raise StatesError(
                error, f"the {key} of Wait state `{state}` is not a non-negative integer", definition=True
            )
    elif parse_timestamp(value) is None:
        raise StatesError(
            error, f"the {key} of Wait state `{state}` is not an RFC 3339 timestamp", definition=True
        )
