"""Replay one recorded Step Functions execution through a (new) state machine definition.

The head definition runs on the recorded input, and every Task attempt gets the recorded outcome
of the same visit: same state name, same Map iteration scope, same visit ordinal, same attempt.
The verdict (`Replayed.outcome`):

- `error` (blocks the merge): the head run fails on this real input where the recording did not —
  a path that no longer resolves, a Choice without match, an intrinsic or JSONata failure, an
  endless loop — or its terminal status differs from the recorded one (a Retry or Catch the
  recorded failure needed is gone; or a recorded failure now succeeds).
- `diverged` (shown, not a failure by itself: only new executions run the head definition): the
  head run leaves the recorded path before it can finish — it reaches a Task without a recorded
  outcome (a new or renamed Task, an extra retry, another branch), or it goes from a recorded state
  to a different next state than the recording did.
- `ok`: same terminal status along the recorded path; for an execution that is still running (or
  was stopped), the head run reaches the point where the recording ends without error.
- `skipped`: the history cannot be replayed faithfully (`Execution.skip_reason`) or the definition
  uses a feature the interpreter does not simulate (an S3 ItemReader...).

Error names. A name the recording holds (a Task's failure, the execution's) may be data: a
`SendTaskFailure` caller or a Fail state's `ErrorPath` can make it out of the input. Messages name
an error only when it is a `States.*` error or the base or head definition names it (`ErrorEquals`,
a Fail state's `Error`); any other is "an error the definitions do not name". `Replayed.detail`
holds the message with every recorded name, for `--replay-log` only.

Decisions. Failures beat divergence: an error found after the head left the recorded path is
still an error (the data up to the first Task without a record is real), and its message says
where the paths parted. A divergence is only reported when the run does not fail. Comparing paths
skips states the recording never had as long as they are not Tasks (an inserted Pass state that
leads back to the recorded next state is no divergence); the comparison is per visit, so Map
iterations and Parallel branches are compared on their own, whatever order they ran in. Two failed
runs count as the same ending even when the error names differ (moto writes `States.Runtime`
where AWS writes `States.NoChoiceMatched`); the message then names both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bot.engines.stepfunctions.history import Execution, StateVisit, VisitKey
from bot.engines.stepfunctions.interpreter import (
    ExecutionContext,
    Oracle,
    PendingTask,
    Run,
    TaskFailure,
    TaskOutcome,
    Visit,
    run_definition,
)

Outcome = Literal["ok", "error", "diverged", "skipped"]

#: Errors Step Functions raises when a definition does not fit the data.
DEFINITION_ERRORS: Final = frozenset(
    {
        "States.Runtime",
        "States.NoChoiceMatched",
        "States.IntrinsicFailure",
        "States.ParameterPathFailure",
        "States.ResultPathMatchFailure",
        "States.QueryEvaluationError",
    }
)
_CUT: Final = {"RUNNING": "is now", "ABORTED": "was stopped", "TIMED_OUT": "timed out"}
#: How messages name a recorded error whose name neither definition declares (it may be data).
UNNAMED: Final = "an error the definitions do not name"


@dataclass(frozen=True)
class Replayed:
    """The verdict of one replay; `message` names states, definition paths and error names the
    definitions declare only. `code` is the head's error when it fails and may be named;
    `detail` is the message with every recorded error name: never shown, only logged."""

    outcome: Outcome
    state: str | None
    message: str
    steps: int
    code: str | None = None
    detail: str | None = field(default=None, repr=False)


def error_names(definition: Mapping[str, Any]) -> frozenset[str]:
    """Every error name a definition declares: in Retry and Catch `ErrorEquals`, and Fail `Error`s."""
    names: set[str] = set()
    states = definition.get("States")
    if not isinstance(states, dict):
        return frozenset()
    for state in states.values():
        if not isinstance(state, dict):
            continue
        for handler in [*(state.get("Retry") or []), *(state.get("Catch") or [])]:
            if isinstance(handler, dict) and isinstance(handler.get("ErrorEquals"), list):
                names |= {e for e in handler["ErrorEquals"] if isinstance(e, str)}
        if state.get("Type") == "Fail" and isinstance(state.get("Error"), str) and "{%" not in state["Error"]:
            names.add(state["Error"])
        for branch in [*(state.get("Branches") or []), state.get("ItemProcessor"), state.get("Iterator")]:
            if isinstance(branch, dict):
                names |= error_names(branch)
    return frozenset(names)


def execution_oracle(execution: Execution) -> Oracle:
    """An oracle that answers each Task attempt with the recorded outcome of the same visit."""
    tasks: Mapping[VisitKey, tuple[TaskOutcome, ...]] = execution.tasks

    def oracle(
        state: str, scope: tuple[int, ...], visit: int, attempt: int, parameters: Any
    ) -> TaskOutcome | None:
        attempts = tasks.get((scope, state, visit))
        if attempts is None or attempt >= len(attempts):
            return None
        return attempts[attempt]

    return oracle


def execution_context(execution: Execution) -> ExecutionContext:
    """The context object `$$` of the recorded execution."""
    defaults = ExecutionContext()
    return ExecutionContext(
        name=execution.execution_name or defaults.name,
        arn=execution.execution_arn or defaults.arn,
        state_machine=execution.state_machine or defaults.state_machine,
        state_machine_arn=_machine_arn(execution) or defaults.state_machine_arn,
        start_time=execution.start_time or defaults.start_time,
    )


def _machine_arn(execution: Execution) -> str | None:
    arn = execution.execution_arn
    if not arn or execution.state_machine is None:
        return None
    parts = arn.split(":")
    return ":".join([*parts[:5], "stateMachine", execution.state_machine]) if len(parts) >= 6 else None


def replay_execution(
    definition: dict[str, Any], execution: Execution, *, base: Mapping[str, Any] | None = None
) -> Replayed:
    """Run `definition` on the recorded input with the recorded Task outcomes; the verdict.

    `base`, the definition the execution ran, adds the error names it declares to those messages
    may show (a head that drops a Retry no longer names the error the recording needed it for).
    """
    if execution.skip_reason:
        return Replayed("skipped", None, execution.skip_reason, 0)
    run = run_definition(
        definition, execution.input, execution_oracle(execution), context=execution_context(execution)
    )
    known = error_names(definition) | (error_names(base) if base is not None else frozenset())
    shown = _Verdict(definition, execution, run, known).decide()
    detail = _Verdict(definition, execution, run, known, reveal=True).decide().message
    code = run.error if shown.outcome == "error" and run.status == "FAILED" else None
    if code is not None and (run.error_label != f"`{code}`" or not _nameable(code, known)):
        code = None  # computed from the data by the definition, or a recorded name nobody declares
    return Replayed(shown.outcome, shown.state, shown.message, shown.steps, code, detail)


def _nameable(error: str, known: frozenset[str]) -> bool:
    return error.startswith("States.") or error in known


def state_names(definition: Mapping[str, Any]) -> set[str]:
    """Every state name of a definition, nested branches and item processors included."""
    names: set[str] = set()
    states = definition.get("States")
    if not isinstance(states, dict):
        return names
    for name, state in states.items():
        names.add(name)
        if not isinstance(state, dict):
            continue
        for branch in state.get("Branches") or []:
            if isinstance(branch, dict):
                names |= state_names(branch)
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                names |= state_names(state[key])
    return names


@dataclass(frozen=True)
class _Divergence:
    position: int
    state: str
    message: str


class _Verdict:
    def __init__(
        self,
        definition: Mapping[str, Any],
        execution: Execution,
        run: Run,
        known: frozenset[str] = frozenset(),
        *,
        reveal: bool = False,
    ) -> None:
        self.definition = definition
        self.execution = execution
        self.run = run
        self.known = known
        self.reveal = reveal
        self.recorded: dict[VisitKey, StateVisit] = {visit.key: visit for visit in execution.visits}
        self.cut = _CUT.get(execution.run_status)
        self.frontier = (
            {v.key for v in execution.visits if not v.exited and v.kind not in ("Map", "Parallel")}
            if self.cut
            else set()
        )
        self.names = state_names(definition)
        self.positions = {(v.scope, v.name, v.ordinal): i for i, v in enumerate(run.visits)}
        self.reached = next((i for i, v in enumerate(run.visits) if _key(v) in self.frontier), None)

    def replayed(self, outcome: Outcome, state: str | None, message: str) -> Replayed:
        return Replayed(outcome, state, message, self.run.steps)

    def named(self, error: str | None, label: str | None = None) -> str:
        """How a message names an error: the definition's label for a name it computed, the name when
        a definition declares it, else what it is (a recorded name may be data)."""
        if label is not None and label != f"`{error}`":
            return label
        if error is not None and (self.reveal or _nameable(error, self.known)):
            return f"`{error}`"
        return UNNAMED

    @property
    def head_error(self) -> str:
        return self.named(self.run.error, self.run.error_label)

    def decide(self) -> Replayed:
        run, execution = self.run, self.execution
        if run.status == "UNSUPPORTED":
            return self.replayed("skipped", run.state, run.message)
        if run.status == "INVALID":
            return self.replayed("error", run.state, f"the head definition is invalid: {run.message}")
        divergence = self.first_divergence()
        after = f" (after it {divergence.message})" if divergence else ""
        if run.status == "BUDGET_EXCEEDED":
            return self.replayed("error", run.state, f"head {run.message}{after}")
        if run.status == "FAILED" and run.definition_error and not self.failed_as_recorded():
            return self.replayed("error", run.state, f"head {run.message}{after}")
        if run.status == "PENDING":
            if divergence is None:
                if self.cut:
                    return self.replayed("ok", self.frontier_state(), self.where_now())
                divergence = self.pending_divergence(run.pending[0], self.position(run.pending[0]))
            return self.replayed("diverged", divergence.state, divergence.message)
        head = "SUCCEEDED" if run.status == "SUCCEEDED" else "FAILED"
        if self.cut:
            where = self.frontier_state()
            at = f" `{where}`," if where else ""
            if head == "FAILED" and self.reached is None:
                # The recorded execution went on from where head fails: a change on real input.
                return self.replayed(
                    "error",
                    run.state,
                    f"head fails with {self.head_error} at `{run.state}` before reaching{at} where the recorded "
                    f"execution {self.cut}{after}",
                )
            if divergence is not None:
                return self.replayed("diverged", divergence.state, divergence.message)
            if self.reached is None:
                return self.replayed(
                    "diverged",
                    where,
                    f"head finishes ({head}) without reaching{at} where the recorded execution {self.cut}",
                )
            ending = "succeeds" if head == "SUCCEEDED" else f"fails with {self.head_error} at `{run.state}`"
            return self.replayed("ok", self.frontier_state(), f"{self.where_now()}; head then {ending}")
        recorded = execution.run_status
        if head != recorded:
            state = run.state if head == "FAILED" else execution.failed_state
            how = f" ({self.head_error} at `{run.state}`)" if head == "FAILED" else ""
            return self.replayed(
                "error", state, f"terminal status changes: recorded {recorded}, head {head}{how}{after}"
            )
        if divergence is not None:
            return self.replayed("diverged", divergence.state, divergence.message)
        if head == "SUCCEEDED":
            return self.replayed("ok", None, "replays as recorded: SUCCEEDED")
        same = (run.error, run.state) == (execution.error, execution.failed_state)
        recorded_as = (
            "" if same else f" (recorded {self.named(execution.error)} at `{execution.failed_state}`)"
        )
        return self.replayed(
            "ok", None, f"fails as recorded: {self.head_error} at `{run.state}`{recorded_as}"
        )

    def failed_as_recorded(self) -> bool:
        """Whether the recording failed the same way: a definition error at the same state."""
        execution = self.execution
        return (
            execution.run_status == "FAILED"
            and execution.failed_state == self.run.state
            and execution.error in DEFINITION_ERRORS
        )

    def frontier_state(self) -> str | None:
        if self.reached is not None:
            return self.run.visits[self.reached].name
        for visit in self.execution.visits:
            if visit.key in self.frontier:
                return visit.name
        return self.run.state

    def where_now(self) -> str:
        state = self.frontier_state()
        at = f" (state `{state}`)" if state else ""
        return f"replayed up to where the execution {self.cut}{at}"

    # -------------------------------------------------------------------------------- divergence

    def first_divergence(self) -> _Divergence | None:
        found = list(self.path_divergences())
        for point in self.run.pending:
            if not self.explained(point):
                found.append(self.pending_divergence(point, self.position(point)))
        return min(found, key=lambda d: d.position) if found else None

    def position(self, point: PendingTask) -> int:
        return self.positions.get((point.scope, point.state, point.visit), len(self.run.visits))

    def explained(self, point: PendingTask) -> bool:
        """A Task without outcome is expected where the recording ends (or past that point)."""
        if not self.cut:
            return False
        key = (point.scope, point.state, point.visit)
        return key in self.frontier or (self.reached is not None and self.reached <= self.position(point))

    def pending_divergence(self, point: PendingTask, position: int) -> _Divergence:
        execution = self.execution
        name = point.state
        attempts = execution.tasks.get((point.scope, name, point.visit))
        if name not in execution.entered:
            why = "which the recorded execution never ran (new or renamed state)"
            gone = self.replaced_state(position)
            if gone:
                why += f"; the recorded execution ran `{gone}` there, which head no longer has"
            message = f"reaches Task `{name}`, {why}"
        elif (recorded := self.recorded.get((point.scope, name, point.visit))) and recorded.kind != "Task":
            message = (
                f"reaches Task `{name}`, which was a {recorded.kind} state when the execution ran "
                "(no recorded result)"
            )
        elif attempts is None:
            iteration = f" in Map iteration {list(point.scope)}" if point.scope else ""
            message = (
                f"reaches Task `{name}` (visit {point.visit + 1}{iteration}), a visit the recorded execution "
                "did not make (a different branch or more loops)"
            )
        elif point.attempt >= len(attempts) and attempts:
            last = attempts[-1]
            after = f" after {self.named(last.error)}" if isinstance(last, TaskFailure) else ""
            message = (
                f"retries Task `{name}`{after} (attempt {point.attempt + 1}), "
                f"beyond the {len(attempts)} attempt(s) the recorded execution made"
            )
        else:
            failed = execution.failed_state == name and execution.error
            why = (
                f" (the recorded execution failed there with {self.named(execution.error)})" if failed else ""
            )
            message = f"reaches Task `{name}`, whose recorded visit has no outcome{why}"
        return _Divergence(position, name, message)

    def replaced_state(self, position: int) -> str | None:
        """The recorded next state that head no longer has, where head reached a new Task."""
        visits = self.run.visits
        previous = {v.next_visit: i for i, v in enumerate(visits) if v.next_visit is not None}
        index = previous.get(position)
        while index is not None and visits[index].name not in self.execution.entered:
            index = previous.get(index)
        if index is None:
            return None
        recorded = self.recorded.get(_key(visits[index]))
        if recorded and recorded.next and recorded.next not in self.names:
            return recorded.next
        return None

    def path_divergences(self) -> Iterator[_Divergence]:
        start = self.start_divergence()
        if start is not None:
            yield start
        for index, visit in enumerate(self.run.visits):
            recorded = self.recorded.get(_key(visit))
            if recorded is None or not recorded.exited or not visit.exited:
                continue
            head_next, known = self.effective_next(index)
            if not known or head_next == recorded.next:
                continue
            if recorded.next is None and self.cut:
                # Stopped right after this state, or the end of its branch: no telling which.
                continue
            immediate = visit.next_visit
            shown = self.run.visits[immediate].name if immediate is not None else None
            message = self.path_message(visit, recorded.next, shown, self.names)
            yield _Divergence(index, visit.name, message)

    def effective_next(self, index: int) -> tuple[str | None, bool]:
        """The next recorded-known state head goes to from visit `index`, skipping inserted states.

        The flag is false when that cannot be told: head reached a Task the recording never ran,
        which reports its own divergence ("new or renamed") — unless a Choice sent head there through
        other states: then the branch is the news.
        """
        visit = self.run.visits[index]
        if not visit.exited:
            return None, False
        return self.known_from(visit.next_visit, branch=visit.kind == "Choice")

    def known_from(self, chain: int | None, *, branch: bool = False) -> tuple[str | None, bool]:
        """The first recorded-known state from visit `chain` on, following inserted non-Task states."""
        visits = self.run.visits
        first = chain
        while chain is not None:
            visit = visits[chain]
            if visit.name in self.execution.entered:
                return visit.name, True
            if visit.kind == "Task":
                return (visit.name, True) if branch and chain != first else (None, False)
            if not visit.exited:
                # Head stopped in an inserted state (it failed there): that is where it went instead.
                return visit.name, True
            chain = visit.next_visit
        return None, True

    def start_divergence(self) -> _Divergence | None:
        """Head begins somewhere else than the recording (before any recorded state)."""
        recorded = next((v for v in self.execution.visits if not v.scope), None)
        if recorded is None or not self.run.visits:
            return None
        head, known = self.known_from(0)
        if not known or head == recorded.name:
            return None
        reached = f"reaches `{head}` first" if head else "ends without reaching any state it recorded"
        return _Divergence(
            0,
            self.run.visits[0].name,
            f"starts on another path: head {reached}, the recorded execution started at `{recorded.name}`",
        )

    @staticmethod
    def path_message(visit: Visit, recorded: str | None, head: str | None, names: set[str]) -> str:
        shown_head = f"`{head}`" if head else "the end of its branch"
        shown_recorded = f"`{recorded}`" if recorded else "the end of its branch"
        if visit.kind == "Choice":
            return (
                f"takes a different branch at Choice `{visit.name}`: recorded next {shown_recorded}, "
                f"head next {shown_head}"
            )
        if recorded and recorded not in names:
            return (
                f"goes from `{visit.name}` to {shown_head}: the recorded next state `{recorded}` "
                "no longer exists in head"
            )
        return (
            f"goes from `{visit.name}` to {shown_head} where the recorded execution went to {shown_recorded}"
        )


def _key(visit: Visit) -> VisitKey:
    return (visit.scope, visit.name, visit.ordinal)
