"""Collect: find state machines in a file (ASL JSON/YAML, CloudFormation and SAM templates).

Every state, at any depth (Parallel branches, Map `ItemProcessor`/`Iterator`), keeps the line
of its name and of each field. The head is validated as AWS would on deploy: missing
transition targets, unreachable states, no terminal state, duplicate names, states that
can never end; each problem is kept with its line.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.engines.stepfunctions.model import (
    STATE_TYPES,
    Alias,
    Problem,
    Reference,
    State,
    StateMachine,
    dicts,
    without_comments,
)
from bot.engines.stepfunctions.refs import references
from bot.engines.stepfunctions.source import (
    Document,
    DocumentError,
    load_document,
    load_json,
    scalar_start_line,
)
from bot.engines.stepfunctions.source import Path as KeyPath

SFN_TYPES = ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")
MAX_DEFINITION_BYTES = 1_048_576  # Step Functions' limit on a definition
NEEDS_NEXT = ("Task", "Pass", "Wait", "Parallel", "Map")

Reader = Callable[[str], str | None]


class NotAnalysable(Exception):
    """The file cannot be read as a state machine: `line` and `message` say where and why."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def definition_id(path: str) -> str:
    """The name of a standalone definition: the file stem without `.asl`."""
    name = posixpath.basename(path)
    for suffix in (".json", ".yaml", ".yml"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".asl")


def looks_relevant(text: str) -> bool:
    return '"StartAt"' in text or "StartAt:" in text or any(t in text for t in SFN_TYPES)


def is_state_machine(data: Any) -> bool:
    return isinstance(data, Mapping) and isinstance(data.get("States"), Mapping) and "StartAt" in data


@dataclass
class Extracted:
    """What one file holds: its state machines, the files its template loads definitions from, and
    the template's resources (what Task references resolve to)."""

    machines: list[StateMachine] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)
    resources: Mapping[str, Any] | None = None
    elsewhere: list[tuple[str, int, str]] = field(default_factory=list)  # (logical id, line, S3 location)


def extract_file(path: str, text: str, read: Reader, strict: bool = False) -> Extracted:
    """Return the state machines in `path` and what its template (if it is one) refers to.

    Raises `NotAnalysable` when the file looks like a state machine or template (or, `strict`,
    was one on the other side) but cannot be parsed.
    """
    try:
        doc = load_document(text, path)
    except DocumentError as exc:
        if strict or looks_relevant(text):
            raise NotAnalysable(exc.line, exc.message) from None
        return Extracted()
    if strict and not is_state_machine(doc.data) and not isinstance(doc.data, Mapping):
        raise NotAnalysable(1, f"was a state machine; now a {type(doc.data).__name__}, not an ASL definition")
    if is_state_machine(doc.data):
        machine = build_machine(definition_id(path), path, doc)
        if len(text.encode()) > MAX_DEFINITION_BYTES:
            machine.problems.append(
                Problem(
                    "DEFINITION_TOO_LARGE",
                    1,
                    f"the definition is {len(text.encode()):,} bytes; Step Functions accepts at most "
                    f"{MAX_DEFINITION_BYTES:,}",
                )
            )
        return Extracted(machines=[machine])
    if isinstance(doc.data, Mapping) and isinstance(doc.data.get("Resources"), Mapping):
        machines, loaded = _template(path, text, doc, read)
        return Extracted(machines, loaded, doc.data["Resources"], _in_s3(doc))
    return Extracted()


# --- templates ----------------------------------------------------------------------------


def _template(path: str, text: str, doc: Document, read: Reader) -> tuple[list[StateMachine], set[str]]:
    resources: Mapping[str, Any] = doc.data["Resources"]
    machines: list[StateMachine] = []
    loaded: set[str] = set()
    for logical, resource in resources.items():
        if not isinstance(resource, Mapping) or resource.get("Type") not in SFN_TYPES:
            continue
        props = resource.get("Properties")
        props = props if isinstance(props, Mapping) else {}
        at: KeyPath = ("Resources", logical, "Properties")
        name = props.get("StateMachineName", props.get("Name"))
        sm_id = name if isinstance(name, str) and "${" not in name else str(logical)
        line = doc.line(("Resources", logical))
        substitutions = props.get("DefinitionSubstitutions")
        subs: Mapping[str, Any] = substitutions if isinstance(substitutions, Mapping) else {}
        try:
            found = _definition(path, text, doc, at, props, read)
        except NotAnalysable as exc:
            machine = StateMachine(id=sm_id, path=path, line=exc.line, definition={})
            machine.problems.append(Problem("INVALID_JSON", exc.line, exc.message))
            machine.resource, machine.template = str(logical), path
            machines.append(machine)
            continue
        if found is None:
            continue
        sub_doc, source = found
        if source:
            loaded.add(source)
        machine = build_machine(sm_id, path, sub_doc, source=source)
        machine.line = line
        machine.resource, machine.template = str(logical), path
        kind = props.get("StateMachineType", props.get("Type"))
        if isinstance(kind, str):
            machine.type = kind.upper()
        machine.alias = _alias(path, doc, str(logical), resource)
        sub_lines = {str(k): doc.line((*at, "DefinitionSubstitutions", k)) for k in subs}
        machine.references = {
            s.name: [_fix_at(r, sub_lines, path) for r in references(s, subs, resources)]
            for s in machine.states.values()
            if s.type == "Task"
        }
        machines.append(machine)
    return machines, loaded


def _in_s3(doc: Document) -> list[tuple[str, int, str]]:
    """State machines whose definition is an S3 object: nothing in the repository to compare."""
    out: list[tuple[str, int, str]] = []
    for logical, resource in doc.data["Resources"].items():
        if not isinstance(resource, Mapping) or resource.get("Type") not in SFN_TYPES:
            continue
        props = resource.get("Properties")
        props = props if isinstance(props, Mapping) else {}
        for key in ("DefinitionUri", "DefinitionS3Location"):
            uri = props.get(key)
            if isinstance(uri, Mapping) and "Bucket" in uri:
                uri = f"s3://{uri.get('Bucket')}/{uri.get('Key')}"
            if isinstance(uri, str) and uri.startswith("s3://"):
                line = doc.line(("Resources", logical, "Properties", key))
                out.append((str(logical), line, uri))
    return out


def _fix_at(ref: Reference, sub_lines: Mapping[str, int], template: str) -> Reference:
    """A reference through `${Key}` is fixed where DefinitionSubstitutions gives Key its value."""
    m = re.fullmatch(r"\$\{([^}]+)\}", ref.text)
    if m and m.group(1) in sub_lines:
        return replace(ref, fix_line=sub_lines[m.group(1)], fix_path=template)
    return ref


def _definition(
    path: str, text: str, doc: Document, at: KeyPath, props: Mapping[str, Any], read: Reader
) -> tuple[Document, str | None] | None:
    """Return the definition of a template resource as a document with template lines."""
    if isinstance(props.get("Definition"), Mapping):
        return doc.sub((*at, "Definition")), None
    raw = props.get("DefinitionString")
    if raw is not None:
        body = _string_of(raw)
        if body is None:
            line = doc.line((*at, "DefinitionString"))
            raise NotAnalysable(line, "DefinitionString is built by an intrinsic the tool cannot read")
        start = scalar_start_line(text, _string_line(doc, (*at, "DefinitionString"), raw))
        try:
            sub = load_json(_placeholders(body))
        except DocumentError as exc:
            raise NotAnalysable(start + exc.line, f"DefinitionString: {exc.message}") from None
        sub.offset = start
        return sub, None
    uri = props.get("DefinitionUri")
    if isinstance(uri, str) and not uri.startswith("s3://"):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), uri))
        content = read(target)
        if content is None:
            line = doc.line((*at, "DefinitionUri"))
            raise NotAnalysable(line, f"DefinitionUri {uri}: {target} is not in the repository")
        try:
            return load_document(content, target), target
        except DocumentError as exc:
            raise NotAnalysable(exc.line, f"{target}: {exc.message}") from None
    return None  # an S3 location: nothing in the repository to compare


def _string_line(doc: Document, at: KeyPath, raw: Any) -> int:
    """The line where the DefinitionString's text starts: in list-form `!Sub [text, {vars}]` (or
    `Fn::Sub:` with a list) that is the list's first item, not the key's line."""
    if isinstance(raw, Mapping) and isinstance(raw.get("Fn::Sub"), list):
        for path in ((*at, "Fn::Sub", 0), (*at, 0)):  # long form; short-form tag (no key of its own)
            if path in doc.lines:
                return doc.line(path)
    return doc.line(at)


def _string_of(raw: Any) -> str | None:
    """The text of a DefinitionString: a plain string, `Fn::Sub`, or `Fn::Join` of strings."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Mapping) and "Fn::Sub" in raw:
        value = raw["Fn::Sub"]
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[0]
        return value if isinstance(value, str) else None
    if isinstance(raw, Mapping) and "Fn::Join" in raw:
        value = raw["Fn::Join"]
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            parts = value[1]
            if isinstance(parts, list):
                return value[0].join(p if isinstance(p, str) else "${ref}" for p in parts)
    return None


_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


def _placeholders(body: str) -> str:
    """Keep `${X}` inside strings; outside strings (a number) it becomes 0 so the JSON parses."""
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(body):
        c = body[i]
        if in_string:
            if c == "\\":
                out.append(body[i : i + 2])
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "$" and (m := _PLACEHOLDER.match(body, i)):
            out.append("0")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _alias(path: str, doc: Document, logical: str, resource: Mapping[str, Any]) -> Alias | None:
    """The alias that routes this state machine's executions, with its DeploymentPreference."""
    props = resource.get("Properties") if isinstance(resource.get("Properties"), Mapping) else {}
    assert isinstance(props, Mapping)
    if resource.get("Type") == "AWS::Serverless::StateMachine" and isinstance(
        props.get("AutoPublishAlias"), str
    ):
        pref = props.get("DeploymentPreference")
        line = doc.line(("Resources", logical, "Properties", "AutoPublishAlias"))
        return _with_preference(Alias(name=props["AutoPublishAlias"], line=line, path=path), pref)
    resources: Mapping[str, Any] = doc.data["Resources"]
    versions = {
        name
        for name, r in resources.items()
        if isinstance(r, Mapping)
        and r.get("Type") == "AWS::StepFunctions::StateMachineVersion"
        and _refers(r.get("Properties", {}).get("StateMachineArn"), logical)
    }
    for name, r in resources.items():
        if not isinstance(r, Mapping) or r.get("Type") != "AWS::StepFunctions::StateMachineAlias":
            continue
        aprops = r.get("Properties") if isinstance(r.get("Properties"), Mapping) else {}
        assert isinstance(aprops, Mapping)
        pref = aprops.get("DeploymentPreference")
        targets = [pref.get("StateMachineVersionArn")] if isinstance(pref, Mapping) else []
        targets += [c.get("StateMachineVersionArn") for c in dicts(aprops.get("RoutingConfiguration"))]
        if any(_refers(t, logical) or any(_refers(t, v) for v in versions) for t in targets):
            alias_name = aprops.get("Name") if isinstance(aprops.get("Name"), str) else name
            line = doc.line(("Resources", name))
            return _with_preference(Alias(name=str(alias_name), line=line, path=path), pref)
    return None


def _with_preference(alias: Alias, pref: Any) -> Alias:
    if not isinstance(pref, Mapping):
        return alias
    kind = pref.get("Type")
    alarms = pref.get("Alarms")
    return Alias(
        name=alias.name,
        line=alias.line,
        path=alias.path,
        deployment=str(kind).upper() if isinstance(kind, str) else None,
        percentage=str(pref["Percentage"]) if "Percentage" in pref else None,
        interval=str(pref["Interval"]) if "Interval" in pref else None,
        alarms=len(alarms) if isinstance(alarms, list) else 0,
    )


def _refers(value: Any, logical: str) -> bool:
    """True when a template value is `!Ref logical` / `!GetAtt logical.X` / `${logical}`."""
    if isinstance(value, Mapping):
        if value.get("Ref") == logical:
            return True
        att = value.get("Fn::GetAtt")
        if isinstance(att, list) and att and att[0] == logical:
            return True
        sub = value.get("Fn::Sub")
        if isinstance(sub, str):
            return bool(re.search(rf"\$\{{{re.escape(logical)}(\.[A-Za-z]+)?\}}", sub))
    return False


# --- the state machine --------------------------------------------------------------------


def build_machine(sm_id: str, path: str, doc: Document, source: str | None = None) -> StateMachine:
    """Return the model of the definition in `doc` (its lines relative to `path` or `source`)."""
    data = doc.data if isinstance(doc.data, Mapping) else {}
    digest = _digest(data)
    language = str(data.get("QueryLanguage") or "JSONPath")
    machine = StateMachine(
        id=sm_id,
        path=path,
        line=doc.line((), 1),
        definition=data,
        language=language,
        digest=digest,
        meaning=_digest(without_comments(data)),
        source=source,
    )
    machine.top_lines = {str(k): doc.line((str(k),)) for k in data}
    spans: dict[KeyPath, list[int]] = {}
    _collect(machine, doc, (), "", language, spans)
    # A state ends where the last line under it is.
    by_key = {s.key: s.name for s in machine.states.values()}
    for key, line in doc.lines.items():
        for n in range(len(key), 0, -1):
            owner = by_key.get(key[:n])
            if owner is not None:
                spans.setdefault(key[:n], []).append(line + doc.offset)
                break
    for key, name in by_key.items():
        s = machine.states.get(name)
        if s is not None and spans.get(key):
            machine.states[name] = State(**{**s.__dict__, "end_line": max(spans[key])})
    machine.problems.extend(validate(machine, doc))
    machine.references = {s.name: references(s, {}, {}) for s in machine.states.values() if s.type == "Task"}
    return machine


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _collect(
    machine: StateMachine,
    doc: Document,
    at: KeyPath,
    scope: str,
    language: str,
    spans: dict[KeyPath, list[int]],
) -> None:
    sub: Any = doc.data
    for part in at:
        sub = sub[part]
    if not isinstance(sub, Mapping):
        return
    own = sub.get("QueryLanguage")
    language = own if isinstance(own, str) else language
    machine.start_lines[scope] = doc.line((*at, "StartAt"), doc.line(at, 1))
    states = sub.get("States")
    if not isinstance(states, Mapping):
        return
    machine.scope_names[scope] = {str(n) for n in states}
    for name, body in states.items():
        key: KeyPath = (*at, "States", str(name))
        line = doc.line(key)
        if not isinstance(body, Mapping):
            body = {}
        fields = {str(k): doc.line((*key, k)) for k in body}
        for container in ("Parameters", "Arguments"):
            if isinstance(body.get(container), Mapping):
                fields.update({f"{container}.{k}": doc.line((*key, container, k)) for k in body[container]})
        state_language = body.get("QueryLanguage") if isinstance(body.get("QueryLanguage"), str) else language
        state = State(
            name=str(name),
            type=str(body.get("Type", "")),
            body=body,
            line=line,
            end_line=line,
            fields=fields,
            scope=scope,
            language=str(state_language),
            key=key,
        )
        if name in machine.states:
            machine.problems.append(
                Problem(
                    "DUPLICATE_STATE_NAME",
                    line,
                    f"state `{name}` is defined twice (state names are unique per machine)",
                )
            )
            continue
        machine.states[str(name)] = state
        prefix = f"{scope}/{name}" if scope else str(name)
        if state.type == "Parallel":
            for k, _ in enumerate(body.get("Branches") or []):
                _collect(
                    machine, doc, (*key, "Branches", k), f"{prefix}/Branches/{k}", str(state_language), spans
                )
        elif state.type == "Map":
            for field_name in ("ItemProcessor", "Iterator"):
                if isinstance(body.get(field_name), Mapping):
                    _collect(
                        machine, doc, (*key, field_name), f"{prefix}/{field_name}", str(state_language), spans
                    )


# --- validation ---------------------------------------------------------------------------


def validate(machine: StateMachine, doc: Document) -> list[Problem]:
    """Return what makes the definition invalid, each with its line."""
    problems: list[Problem] = []
    for key, line in doc.duplicates:
        if len(key) >= 2 and key[-2] == "States":
            problems.append(
                Problem("DUPLICATE_STATE_NAME", line + doc.offset, f"state `{key[-1]}` is given twice")
            )
        else:
            problems.append(Problem("DUPLICATE_KEY", line + doc.offset, f"key `{key[-1]}` is given twice"))
    scopes: dict[str, list[State]] = {}
    for s in machine.states.values():
        scopes.setdefault(s.scope, []).append(s)
    starts = {"": machine.definition.get("StartAt")}
    for s in machine.states.values():
        prefix = f"{s.scope}/{s.name}" if s.scope else s.name
        if s.type == "Parallel":
            branches = s.body.get("Branches")
            if not isinstance(branches, list) or not branches:
                problems.append(
                    Problem("MISSING_BRANCHES", s.line, f"Parallel state `{s.name}` has no Branches")
                )
            for k, b in enumerate(branches or []):
                starts[f"{prefix}/Branches/{k}"] = b.get("StartAt") if isinstance(b, Mapping) else None
                scopes.setdefault(f"{prefix}/Branches/{k}", [])
        elif s.type == "Map":
            processor = next(
                (f for f in ("ItemProcessor", "Iterator") if isinstance(s.body.get(f), Mapping)), None
            )
            if processor is None:
                problems.append(
                    Problem("MISSING_ITEM_PROCESSOR", s.line, f"Map state `{s.name}` has no ItemProcessor")
                )
            else:
                starts[f"{prefix}/{processor}"] = s.body[processor].get("StartAt")
                scopes.setdefault(f"{prefix}/{processor}", [])
    for scope, members in scopes.items():
        names = machine.scope_names.get(scope, set())
        where = f" in `{scope}`" if scope else ""
        start = starts.get(scope)
        start_line = machine.start_lines.get(scope, machine.line)
        if not isinstance(start, str):
            problems.append(Problem("MISSING_START_AT", start_line, f"no StartAt{where}"))
        elif start not in names:
            problems.append(
                Problem("MISSING_TRANSITION_TARGET", start_line, f"StartAt `{start}` names no state{where}")
            )
        if not names:
            problems.append(Problem("MISSING_STATES", start_line, f"no States{where}"))
            continue
        if not members:  # every name of this scope is a duplicate of another scope's: reported
            continue
        problems += _state_problems(members, names)
        if len(members) == len(names):  # a duplicate elsewhere leaves this scope incomplete: no graph claims
            problems += _graph_problems(members, start if isinstance(start, str) else None, where)
    return sorted(problems, key=lambda p: (p.line, p.code))


def _state_problems(members: list[State], names: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for s in members:
        if s.type not in STATE_TYPES:
            problems.append(
                Problem(
                    "INVALID_STATE_TYPE",
                    s.field_line("Type"),
                    f"state `{s.name}` has Type {s.type or 'missing'}",
                )
            )
            continue
        if s.type in NEEDS_NEXT:
            has_next, has_end = "Next" in s.body, s.body.get("End") is True
            if not has_next and not has_end:
                problems.append(Problem("MISSING_NEXT", s.line, f"state `{s.name}` has neither Next nor End"))
            elif has_next and has_end:
                problems.append(
                    Problem("NEXT_AND_END", s.field_line("End"), f"state `{s.name}` has both Next and End")
                )
        if s.type == "Task" and "Resource" not in s.body:
            problems.append(Problem("MISSING_RESOURCE", s.line, f"Task `{s.name}` has no Resource"))
        if s.type == "Choice" and not dicts(s.body.get("Choices")):
            problems.append(Problem("MISSING_CHOICES", s.line, f"Choice `{s.name}` has no Choices"))
        for field_name, target in s.transitions():
            if target not in names:
                problems.append(
                    Problem(
                        "MISSING_TRANSITION_TARGET",
                        s.field_line(field_name),
                        f"state `{s.name}` goes to `{target}` ({field_name}), which is not a state of its scope",
                    )
                )
        retry = dicts(s.body.get("Retry"))
        for k, r in enumerate(retry[:-1]):
            if "States.ALL" in (r.get("ErrorEquals") or []):
                problems.append(
                    Problem(
                        "STATES_ALL_NOT_LAST",
                        s.field_line("Retry"),
                        f"`{s.name}`: Retry #{k + 1} uses States.ALL but is not last",
                    )
                )
    return problems


def _graph_problems(members: list[State], start: str | None, where: str) -> list[Problem]:
    by_name = {s.name: s for s in members}
    problems: list[Problem] = []
    if not any(s.terminal for s in members):
        first = min(members, key=lambda s: s.line)
        problems.append(
            Problem(
                "NO_TERMINAL_STATE", first.line, f"no state ends the execution{where} (End, Succeed or Fail)"
            )
        )
        return problems
    if start in by_name:
        seen = {start}
        todo = [start]
        while todo:
            for nxt in by_name[todo.pop()].next_states:
                if nxt in by_name and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for s in members:
            if s.name not in seen:
                problems.append(
                    Problem("UNREACHABLE_STATE", s.line, f"state `{s.name}` can never be reached{where}")
                )
    # States from which no end is reachable: an execution that gets there loops forever.
    # A state going to a missing target is reported as such, not again as a loop.
    ends = {s.name for s in members if s.terminal or any(n not in by_name for n in s.next_states)}
    back: dict[str, set[str]] = {}
    for s in members:
        for nxt in s.next_states:
            back.setdefault(nxt, set()).add(s.name)
    can_end = set(ends)
    todo = list(ends)
    while todo:
        for prev in back.get(todo.pop(), ()):
            if prev not in can_end:
                can_end.add(prev)
                todo.append(prev)
    for s in members:
        if s.name not in can_end and s.type in STATE_TYPES and (s.next_states or s.type == "Choice"):
            problems.append(
                Problem(
                    "NO_PATH_TO_END",
                    s.line,
                    f"state `{s.name}` can never reach an end: it loops forever{where}",
                )
            )
    return problems
