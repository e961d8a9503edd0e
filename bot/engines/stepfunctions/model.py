"""The Step Functions engine's own model of a state machine, with a line for every state and field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STATE_TYPES = ("Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
PATH_FIELDS = (
    "InputPath",
    "OutputPath",
    "ResultPath",
    "ResultSelector",
    "ItemsPath",
    "ItemSelector",
    "Items",
    "Output",
    "Assign",
)


@dataclass(frozen=True)
class State:
    """One state, wherever it is nested; `scope` names the Parallel branch / Map that holds it."""

    name: str
    type: str
    body: Mapping[str, Any]
    line: int
    end_line: int
    fields: Mapping[str, int]  # field name → line
    scope: str  # "" at top level, else "Outer/Branches/0", "Loop/ItemProcessor"
    language: str  # JSONPath | JSONata (the state's own, else the machine's)
    key: tuple[str | int, ...] = ()  # where it is in the definition: ("States", "Outer", "Branches", 0, ...)

    def field_line(self, name: str) -> int:
        return self.fields.get(name, self.line)

    def transitions(self) -> list[tuple[str, str]]:
        """(field, target) of every state this one can go to next: Next, Default, Choices, Catch."""
        out = [(key, self.body[key]) for key in ("Next", "Default") if isinstance(self.body.get(key), str)]
        for field_name in ("Choices", "Catch"):
            out += [
                (field_name, r["Next"])
                for r in dicts(self.body.get(field_name))
                if isinstance(r.get("Next"), str)
            ]
        return out

    @property
    def next_states(self) -> list[str]:
        return [target for _, target in self.transitions()]

    @property
    def terminal(self) -> bool:
        return self.type in ("Succeed", "Fail") or self.body.get("End") is True


@dataclass(frozen=True)
class Problem:
    """Something that makes the definition invalid (AWS would refuse it) at a line."""

    code: str
    line: int
    message: str


@dataclass(frozen=True)
class Reference:
    """What a Task calls, resolved as far as the repository tells.

    `kind`: lambda | state_machine | activity | service; `qualified` is False when the call goes
    to whatever the target is at call time ($LATEST / the latest revision); `target` is the
    template resource the reference resolves to, when it is in this repository.
    """

    kind: str
    text: str
    qualified: bool
    field: str
    line: int
    target: str | None = None
    fix_line: int | None = None  # where the qualifier goes: the substitution, when one is used
    fix_path: str | None = None
    alias: bool = False  # qualified by an alias: it moves when the target is deployed
    key: str | None = None  # "template#logical id" of the target in this repository (one stack's ids)


@dataclass(frozen=True)
class Alias:
    """An alias (or SAM AutoPublishAlias) routing executions to published versions."""

    name: str
    line: int
    path: str
    deployment: str | None = None  # CANARY | LINEAR | ALL_AT_ONCE
    percentage: str | None = None
    interval: str | None = None
    alarms: int = 0

    @property
    def gradual(self) -> bool:
        return self.deployment in ("CANARY", "LINEAR")

    def describe(self) -> str:
        if not self.deployment:
            return f"alias `{self.name}` (no DeploymentPreference)"
        extra = ", ".join(
            x
            for x in (
                f"{self.percentage}%" if self.percentage else "",
                f"every {self.interval} min" if self.interval else "",
                f"{self.alarms} alarm(s)" if self.alarms else "",
            )
            if x
        )
        return f"alias `{self.name}` with DeploymentPreference {self.deployment}" + (
            f" ({extra})" if extra else ""
        )


@dataclass
class StateMachine:
    """One state machine found in one tree."""

    id: str
    path: str
    line: int
    definition: Mapping[str, Any]
    states: dict[str, State] = field(default_factory=dict)
    start_lines: dict[str, int] = field(default_factory=dict)  # scope → line of its StartAt
    scope_names: dict[str, set[str]] = field(default_factory=dict)  # scope → its States' names
    top_lines: dict[str, int] = field(default_factory=dict)  # top-level key → line
    type: str = "STANDARD"
    language: str = "JSONPath"
    resource: str | None = None  # the template's logical id
    template: str | None = None  # the template's path
    source: str | None = None  # the file holding the ASL, when it is not `path`
    problems: list[Problem] = field(default_factory=list)
    references: dict[str, list[Reference]] = field(default_factory=dict)  # state → what it calls
    alias: Alias | None = None
    digest: str = ""
    meaning: str = ""  # digest without Comments: what executions started on it run

    @property
    def start_at(self) -> str:
        value = self.definition.get("StartAt")
        return value if isinstance(value, str) else ""

    def starts(self) -> dict[str, str]:
        """scope → StartAt, for the machine and every branch and Map processor."""
        out = {"": self.start_at}
        for s in self.states.values():
            for scope, sub in nested(s):
                if isinstance(sub.get("StartAt"), str):
                    out[scope] = sub["StartAt"]
        return out


def without_comments(definition: Any) -> Any:
    """The ASL structure with the Comment of the machine, its states, rules, retriers and catchers
    dropped (a Comment inside Parameters is payload and stays)."""
    if not isinstance(definition, Mapping):
        return definition
    out = {k: v for k, v in definition.items() if k != "Comment"}
    states = out.get("States")
    if isinstance(states, Mapping):
        out["States"] = {name: _state_without_comments(body) for name, body in states.items()}
    return out


def _state_without_comments(body: Any) -> Any:
    if not isinstance(body, Mapping):
        return body
    out = {k: v for k, v in body.items() if k != "Comment"}
    for key in ("Choices", "Retry", "Catch"):
        if isinstance(out.get(key), list):
            out[key] = [_rule_without_comments(r) for r in out[key]]
    if isinstance(out.get("Branches"), list):
        out["Branches"] = [without_comments(b) for b in out["Branches"]]
    for key in ("ItemProcessor", "Iterator"):
        if isinstance(out.get(key), Mapping):
            out[key] = without_comments(out[key])
    return out


def _rule_without_comments(rule: Any) -> Any:
    if not isinstance(rule, Mapping):
        return rule
    out = {k: v for k, v in rule.items() if k != "Comment"}
    for key in ("And", "Or"):
        if isinstance(out.get(key), list):
            out[key] = [_rule_without_comments(r) for r in out[key]]
    if isinstance(out.get("Not"), Mapping):
        out["Not"] = _rule_without_comments(out["Not"])
    return out


def dicts(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list (Retry, Catch, Choices, Branches), ignoring anything else."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def nested(state: State) -> list[tuple[str, Mapping[str, Any]]]:
    """Return (scope, sub-machine) for each Parallel branch and Map processor of `state`."""
    body = state.body
    prefix = f"{state.scope}/{state.name}" if state.scope else state.name
    out: list[tuple[str, Mapping[str, Any]]] = []
    if state.type == "Parallel":
        for k, branch in enumerate(dicts(body.get("Branches"))):
            out.append((f"{prefix}/Branches/{k}", branch))
    elif state.type == "Map":
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(body.get(key), Mapping):
                out.append((f"{prefix}/{key}", body[key]))
    return out
