"""Diff: pair state machines and their states between base and head, and emit `sfn.*` facts.

States pair by name; a state removed and one added with the same type and body is a rename,
and transitions that only follow a rename are not changes. Nested states (Parallel branches,
Map processors) pair like any other: names are unique across a whole machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.engines.stepfunctions.model import (
    PATH_FIELDS,
    Reference,
    State,
    StateMachine,
    dicts,
    without_comments,
)
from bot.model import Change, Definition, Location, Scalar

VOCABULARY: dict[str, str] = {
    "sfn.definition.invalid": "The head definition is invalid (or unparseable): AWS would refuse to deploy it.",
    "sfn.definition.elsewhere": "A state machine of a changed template loads its definition from S3: not compared.",
    "sfn.definition.broken_before": "A file the change reaches is unreadable in base and head alike: "
    "not this change's doing.",
    "sfn.state.added": "A state was added (or replaced by one of another type).",
    "sfn.state.removed": "A state was removed (or replaced by one of another type).",
    "sfn.state.renamed": "A state has a new name but the same type and body.",
    "sfn.state.changed": "Another field of a state changed (Wait time, Pass Result, Fail Error/Cause, Map batching...).",
    "sfn.transition.changed": "A state's Next, End or Choice Default goes somewhere else.",
    "sfn.startat.changed": "The machine, a Parallel branch or a Map processor starts at another state.",
    "sfn.choice.rule_changed": "A Choice state's rules changed (conditions, order or targets).",
    "sfn.choice.default_removed": "A Choice state lost its Default: an input no rule matches now fails.",
    "sfn.retry.removed": "An error a Task retried is no longer retried.",
    "sfn.retry.changed": "A retrier changed (attempts, interval, backoff, jitter).",
    "sfn.catch.removed": "An error a state caught is no longer caught.",
    "sfn.catch.changed": "A catcher goes elsewhere or keeps the error elsewhere.",
    "sfn.task.resource_changed": "A Task calls another resource (ARN, function or child state machine).",
    "sfn.task.parameters_changed": "A Task sends other parameters (Parameters / Arguments).",
    "sfn.path.changed": "A data path changed (InputPath, OutputPath, ResultPath, ResultSelector, ItemsPath, "
    "ItemSelector, Items, Output, Assign, QueryLanguage).",
    "sfn.map.concurrency_changed": "A Map state's MaxConcurrency changed.",
    "sfn.timeout.changed": "A TimeoutSeconds or HeartbeatSeconds changed (of a state or the machine).",
    "sfn.reference.unpinned": "A Task calls something not pinned with the definition: a Lambda by unqualified "
    "ARN or name, a child state machine by unqualified ARN, an activity, or a `.waitForTaskToken` callback.",
    "sfn.replay.failed": "Recorded executions fail on the head definition (a runtime error or another terminal status).",
    "sfn.replay.diverged": "Recorded executions take another path on the head definition (a new or renamed Task).",
    "sfn.replay.source_failed": "A history source failed part-way: replay evidence is incomplete.",
}

STRUCTURAL = {"Type", "Next", "End", "Default", "Choices", "Retry", "Catch", "Comment", "Branches"}
STRUCTURAL |= {"ItemProcessor", "Iterator", "Resource", "Parameters", "Arguments", "MaxConcurrency"}
STRUCTURAL |= {"MaxConcurrencyPath", "TimeoutSeconds", "HeartbeatSeconds", "TimeoutSecondsPath"}
STRUCTURAL |= {"HeartbeatSecondsPath", "QueryLanguage", *PATH_FIELDS}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _body(s: State) -> dict[str, Any]:
    return {k: v for k, v in s.body.items() if k != "Comment"}


class _Differ:
    def __init__(
        self,
        base: StateMachine | None,
        head: StateMachine | None,
        changed_targets: set[str],
        replaced: Mapping[str, str],
    ) -> None:
        self.base, self.head = base, head
        self.changed_targets = changed_targets
        self.replaced = replaced
        self.changes: list[Change] = []
        self.renames: dict[str, str] = {}  # base name → head name
        machine = head or base
        assert machine is not None
        self.id = machine.id
        # Only an alias that exists in base routes this deploy gradually: a new alias's first
        # deploy has no previous version to keep traffic on.
        self.gated = bool(
            head
            and head.alias
            and head.alias.gradual
            and base
            and base.alias
            and base.alias.name == head.alias.name
        )
        self.alias = head.alias.describe() if head and head.alias else ""

    def emit(
        self, kind: str, at: State | None, at_field: str | None, side: str = "head", **details: Scalar
    ) -> None:
        machine = self.head if side == "head" else self.base
        assert machine is not None
        path = machine.source or machine.path
        if at is None:  # a top-level field (StartAt, TimeoutSeconds), else the machine
            line = machine.top_lines.get(at_field or "", machine.line)
        else:
            line = at.field_line(at_field) if at_field else at.line
        if details.get("fix_path") and isinstance(details.get("line"), int):
            # A reference given through DefinitionSubstitutions is fixed there: point at it.
            path, line = str(details["fix_path"]), int(str(details["line"]))
        extra: dict[str, Scalar] = {"state": at.name if at else ""}
        # A state machine alias does not pin what its Tasks call.
        gated = self.gated and kind != "sfn.reference.unpinned"
        if gated:
            extra["alias"] = self.alias
        self.changes.append(
            Change(
                kind=kind,
                engine="stepfunctions",
                definition=self.id,
                location=Location(path=path, line=line, side="head" if side == "head" else "base"),
                gated=gated,
                details={**extra, **details},
            )
        )

    # --- pairing ----------------------------------------------------------------------

    def run(self) -> list[Change]:
        base, head = self.base, self.head
        if base is None or head is None or base.digest == head.digest:
            if head is not None:
                self.references(base, head)
            return self.changes
        removed = [s for n, s in base.states.items() if n not in head.states]
        added = [s for n, s in head.states.items() if n not in base.states]
        for old in removed:
            match = next(
                (
                    a
                    for a in added
                    if a.type == old.type and a.scope == old.scope and _same(_body(a), _body(old))
                ),
                None,
            )
            if match is None:  # a body may differ only in where it goes next, itself renamed
                match = next((a for a in added if a.type == old.type and _same(_body(a), _body(old))), None)
            if match is not None:
                self.renames[old.name] = match.name
                added.remove(match)
        for old_name, new_name in self.renames.items():
            self.emit("sfn.state.renamed", head.states[new_name], None, old=old_name, name=new_name)
        for old in removed:
            if old.name not in self.renames:
                self.emit("sfn.state.removed", old, None, side="base", name=old.name, type=old.type)
        for new in added:
            self.emit("sfn.state.added", new, None, name=new.name, type=new.type)
        self.starts(base, head)
        for name, new in head.states.items():
            paired = base.states.get(name)
            if paired is None:
                was = next((b for b, h in self.renames.items() if h == name), None)
                paired = base.states.get(was) if was else None
            if paired is None:
                continue
            self.pair(paired, new)
        if not _same(base.definition.get("TimeoutSeconds"), head.definition.get("TimeoutSeconds")):
            self.timeout(
                None,
                "TimeoutSeconds",
                base.definition.get("TimeoutSeconds"),
                head.definition.get("TimeoutSeconds"),
            )
        self.references(base, head)
        return self.changes

    def pair(self, old: State, new: State) -> None:
        if old.type != new.type:
            self.emit(
                "sfn.state.removed", old, None, side="base", name=old.name, type=old.type, replaced=True
            )
            self.emit("sfn.state.added", new, None, name=new.name, type=new.type, replaced=True)
        else:
            self.state(old, new)

    def follow(self, name: Any) -> Any:
        return self.renames.get(name, name) if isinstance(name, str) else name

    def starts(self, base: StateMachine, head: StateMachine) -> None:
        head_starts = head.starts()
        for scope, start in base.starts().items():
            new = head_starts.get(scope)
            if new is not None and self.follow(start) != new:
                state = (
                    head.states.get(scope.split("/")[-3] if "/Branches/" in scope else scope.split("/")[-2])
                    if scope
                    else None
                )
                label = f"StartAt of `{scope}`" if scope else "StartAt"
                self.emit(
                    "sfn.startat.changed",
                    state,
                    None if state else "StartAt",
                    scope=scope or "(machine)",
                    state=label,
                    **{"from": start, "to": new},
                )

    # --- one state --------------------------------------------------------------------

    def state(self, old: State, new: State) -> None:
        ob, nb = old.body, new.body
        for key in ("Next", "End"):
            before = self.follow(ob.get(key))
            if not _same(before, nb.get(key)):
                self.emit(
                    "sfn.transition.changed",
                    new,
                    key if key in nb else None,
                    field=key,
                    **{
                        "from": _text(ob.get("Next", "End" if ob.get("End") else "")),
                        "to": _text(nb.get("Next", "End" if nb.get("End") else "")),
                    },
                )
                break
        if new.type == "Choice":
            self.choice(old, new)
        self.retry(old, new)
        self.catch(old, new)
        if new.type == "Task":
            self.task(old, new)
        elif new.type in ("Pass", "Map") and not _same(ob.get("Parameters"), nb.get("Parameters")):
            kind = "sfn.path.changed" if new.type == "Map" else "sfn.state.changed"
            self.emit(kind, new, "Parameters", field="Parameters")
        for key in (*PATH_FIELDS, "QueryLanguage"):
            if not _same(ob.get(key), nb.get(key)):
                self.emit("sfn.path.changed", new, key if key in nb else None, field=key)
        for key in ("MaxConcurrency", "MaxConcurrencyPath"):
            if not _same(ob.get(key), nb.get(key)):
                self.emit(
                    "sfn.map.concurrency_changed",
                    new,
                    key if key in nb else None,
                    field=key,
                    **{"from": _text(ob.get(key)), "to": _text(nb.get(key))},
                )
        for key in ("TimeoutSeconds", "HeartbeatSeconds", "TimeoutSecondsPath", "HeartbeatSecondsPath"):
            if not _same(ob.get(key), nb.get(key)):
                self.timeout(new, key, ob.get(key), nb.get(key))
        others = sorted(
            k
            for k in {*ob, *nb}
            if k not in STRUCTURAL and k not in ("Parameters",) and not _same(ob.get(k), nb.get(k))
        )
        if others:
            self.emit(
                "sfn.state.changed", new, others[0] if others[0] in nb else None, fields=", ".join(others)
            )

    def timeout(self, state: State | None, key: str, before: Any, after: Any) -> None:
        number = (int, float)
        shorter = isinstance(after, number) and (
            before is None or (isinstance(before, number) and after < before)
        )
        self.emit(
            "sfn.timeout.changed",
            state,
            key if state is None or key in state.body else None,
            field=key,
            shorter=bool(shorter),
            state_note=f" state `{state.name}`" if state else "",
            **{"from": _text(before), "to": _text(after)},
        )

    def choice(self, old: State, new: State) -> None:
        ob, nb = old.body, new.body
        # A rule's Comment is documentation: it routes nothing.
        plain_old = without_comments({"States": {"c": ob}})["States"]["c"]
        plain_new = without_comments({"States": {"c": nb}})["States"]["c"]
        rules_before = [self._followed(r) for r in dicts(plain_old.get("Choices"))]
        if not _same(rules_before, dicts(plain_new.get("Choices"))):
            self.emit(
                "sfn.choice.rule_changed",
                new,
                "Choices",
                rules_before=len(rules_before),
                rules_after=len(dicts(nb.get("Choices"))),
            )
        if "Default" in ob and "Default" not in nb:
            self.emit("sfn.choice.default_removed", new, None, was=_text(ob["Default"]))
        elif "Default" in ob and self.follow(ob["Default"]) != nb.get("Default"):
            self.emit(
                "sfn.transition.changed",
                new,
                "Default",
                field="Default",
                **{"from": _text(ob["Default"]), "to": _text(nb.get("Default"))},
            )

    def _followed(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.follow(v) if k == "Next" else v for k, v in rule.items()}

    def retry(self, old: State, new: State) -> None:
        before, after = _retriers(old), _retriers(new)
        gone = sorted(e for e in before if e not in after)
        if gone:
            self.emit(
                "sfn.retry.removed", new, "Retry" if "Retry" in new.body else None, errors=", ".join(gone)
            )
        changed = sorted(e for e in before if e in after and before[e] != after[e])
        if changed:
            fewer = any(after[e]["MaxAttempts"] < before[e]["MaxAttempts"] for e in changed)
            self.emit("sfn.retry.changed", new, "Retry", errors=", ".join(changed), fewer_attempts=fewer)

    def catch(self, old: State, new: State) -> None:
        before, after = _catchers(old, self.follow), _catchers(new, lambda x: x)
        gone = sorted(e for e in before if e not in after)
        if gone:
            self.emit(
                "sfn.catch.removed", new, "Catch" if "Catch" in new.body else None, errors=", ".join(gone)
            )
        changed = sorted(e for e in before if e in after and not _same(before[e], after[e]))
        if changed:
            self.emit("sfn.catch.changed", new, "Catch", errors=", ".join(changed))

    def task(self, old: State, new: State) -> None:
        ob, nb = old.body, new.body
        container = "Parameters" if "Parameters" in nb or "Parameters" in ob else "Arguments"
        op, np = ob.get(container), nb.get(container)
        op = op if isinstance(op, Mapping) else {}
        np = np if isinstance(np, Mapping) else {}
        targets = ("FunctionName", "StateMachineArn")
        if not _same(ob.get("Resource"), nb.get("Resource")):
            self.emit(
                "sfn.task.resource_changed",
                new,
                "Resource",
                field="Resource",
                **{"from": _text(ob.get("Resource")), "to": _text(nb.get("Resource"))},
            )
        for key in targets:
            if not _same(op.get(key), np.get(key)):
                self.emit(
                    "sfn.task.resource_changed",
                    new,
                    f"{container}.{key}",
                    field=f"{container}.{key}",
                    **{"from": _text(op.get(key)), "to": _text(np.get(key))},
                )
        rest_old = {k: v for k, v in op.items() if k not in targets}
        rest_new = {k: v for k, v in np.items() if k not in targets}
        if not _same(rest_old, rest_new):
            self.emit(
                "sfn.task.parameters_changed", new, container if container in nb else None, field=container
            )
        callback = any(str(b.get("Resource", "")).endswith(".waitForTaskToken") for b in (ob, nb))
        if callback:
            # The contract with the worker is the message it gets and the reply it sends. ResultPath
            # (and OutputPath) only decide where that reply lands in this execution's own data.
            moved = [k for k in ("ResultSelector", "Output", "Resource") if not _same(ob.get(k), nb.get(k))]
            if not _same(rest_old, rest_new) or moved:
                self.emit(
                    "sfn.reference.unpinned",
                    new,
                    container if container in nb else "Resource",
                    reference="callback",
                    target="",
                    target_changed=True,
                    fields=", ".join(([container] if not _same(rest_old, rest_new) else []) + moved),
                )

    # --- what Tasks call ----------------------------------------------------------------

    def references(self, base: StateMachine | None, head: StateMachine) -> None:
        """Running executions run the BASE definition: what its unpinned Tasks call and this change
        alters reaches them (SFN120). A reference the head adds unpinned is a risk for later (SFN121)."""
        base_refs = base.references if base else {}
        for name, refs in sorted(base_refs.items()):
            new_name = self.renames.get(name, name)
            for ref in refs:
                if ref.kind not in ("lambda", "state_machine") or (ref.qualified and not ref.alias):
                    continue
                if ref.key is None or ref.key not in self.changed_targets:
                    continue
                now = next((r for r in head.references.get(new_name, []) if r.field == ref.field), None)
                state = head.states.get(new_name)
                if state is not None and now is not None:
                    self._unpinned(state, now, True, running=ref)
                else:
                    assert base is not None
                    self._unpinned(base.states[name], ref, True, side="base")
        for name, refs in sorted(head.references.items()):
            state = head.states[name]
            old_name = next((b for b, h in self.renames.items() if h == name), name)
            before = {(r.kind, r.text) for r in base_refs.get(old_name, [])}
            for ref in refs:
                if ref.kind not in ("lambda", "state_machine") or ref.qualified:
                    continue
                if (ref.kind, ref.text) not in before:
                    self._unpinned(state, ref, False)
        if base is None:
            return
        # An activity the base calls and the head no longer does (or that CloudFormation replaces):
        # old executions still schedule it.
        head_activities = {r.text for refs in head.references.values() for r in refs if r.kind == "activity"}
        for name, refs in sorted(base.references.items()):
            for ref in refs:
                if ref.kind != "activity":
                    continue
                replaced = self.replaced.get(ref.key or "")
                if ref.text in head_activities and replaced is None:
                    continue
                new_name = self.renames.get(name, name)
                target = head.states.get(new_name)
                side = "head" if target is not None else "base"
                if replaced is not None:
                    change = f"CloudFormation replaces it: {replaced}"
                else:
                    change = "the head definition no longer calls it" + ("" if target else " (state removed)")
                self.emit(
                    "sfn.reference.unpinned",
                    target or base.states[name],
                    "Resource" if target else None,
                    side=side,
                    reference="activity",
                    target=ref.text,
                    target_changed=replaced is not None,
                    change=change,
                )

    def _unpinned(
        self,
        state: State,
        ref: Reference,
        changed: bool,
        side: str = "head",
        running: Reference | None = None,
    ) -> None:
        was = running or ref
        self.emit(
            "sfn.reference.unpinned",
            state,
            ref.field,
            side=side,
            reference=ref.kind,
            target=was.text,
            resource=ref.target or "",
            target_changed=changed,
            field=ref.field,
            line=ref.fix_line or ref.line,
            fix_path=ref.fix_path or "",
            # Pinned in head already: only a deploy before this one protects running executions.
            pinned_in_head=ref.qualified and not ref.alias,
            via_alias=was.alias,
        )


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _retriers(s: State) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in dicts(s.body.get("Retry")):
        spec = {
            "MaxAttempts": r.get("MaxAttempts", 3) if isinstance(r.get("MaxAttempts", 3), int) else 3,
            "rest": json.dumps(
                {k: v for k, v in r.items() if k not in ("ErrorEquals", "MaxAttempts", "Comment")},
                sort_keys=True,
            ),
        }
        for error in r.get("ErrorEquals") or []:
            out.setdefault(str(error), spec)
    return {e: spec for e, spec in out.items() if spec["MaxAttempts"] != 0}


def _catchers(s: State, follow: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in dicts(s.body.get("Catch")):
        spec = {
            k: follow(v) if k == "Next" else v for k, v in c.items() if k not in ("ErrorEquals", "Comment")
        }
        for error in c.get("ErrorEquals") or []:
            out.setdefault(str(error), spec)
    return out


def diff_machines(
    base: Sequence[StateMachine],
    head: Sequence[StateMachine],
    changed_targets: set[str],
    replaced: Mapping[str, str] | None = None,
) -> tuple[list[Change], list[Definition]]:
    """Return the facts and the definitions (with status) for machines found on either side."""
    base_by, head_by = {m.id: m for m in base}, {m.id: m for m in head}
    changes: list[Change] = []
    definitions: list[Definition] = []
    for sm_id in sorted({*base_by, *head_by}):
        b, h = base_by.get(sm_id), head_by.get(sm_id)
        facts = _Differ(b, h, changed_targets, replaced or {}).run()
        if h is not None:
            facts = [*_invalid(h, b), *facts]
        if b is None:
            status = "added"
        elif h is None:
            status = "removed"
        else:
            status = "changed" if b.digest != h.digest else "unchanged"
        if status == "unchanged" and not facts:
            continue
        m = h or b
        assert m is not None
        definitions.append(
            Definition(
                engine="stepfunctions",
                id=sm_id,
                path=m.path,
                status=status,
                line=m.line,
                versioning_behavior=m.alias.describe() if m.alias else None,
                pinned=True,
            )
        )
        changes.extend(facts)
    return changes, definitions


def _invalid(machine: StateMachine, before: StateMachine | None = None) -> list[Change]:
    path = machine.source or machine.path
    # A definition base could not read either (the same way) is not this change's error: a note.
    unread_before = {p.message for p in (before.problems if before else []) if p.code == "INVALID_JSON"}
    return [
        Change(
            kind="sfn.definition.broken_before"
            if p.code == "INVALID_JSON" and p.message in unread_before
            else "sfn.definition.invalid",
            engine="stepfunctions",
            definition=machine.id,
            location=Location(path=path, line=p.line),
            details={
                "code": p.code,
                "message": f"{path}:{p.line}: {p.message}" if p.message in unread_before else p.message,
                "parse": p.code == "INVALID_JSON",
            },
        )
        for p in machine.problems
    ]
