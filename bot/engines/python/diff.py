"""Base vs head Python workflows (Temporal, Cadence) → typed `Change` facts from a closed vocabulary.

Pairing happens once, here (by workflow type and file; a class renamed with `name=` kept
is the same workflow); command sequences are compared in `sequence.py`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from bot.engines.python.dialect import dialect
from bot.engines.python.sequence import MARKER_KINDS, run_line, sequence_changes, steps
from bot.model import (
    Change,
    CommandKind,
    Definition,
    InputField,
    InputShape,
    Location,
    Scalar,
    WorkflowModel,
)


class Emitter:
    def __init__(self, base: WorkflowModel | None, head: WorkflowModel | None, definition: str = "") -> None:
        model = head or base
        assert model is not None
        self.definition = definition or model.id
        self.dialect = dialect(model.engine)
        self.base = base
        self.head = head
        self.changes: list[Change] = []

    def add(self, kind: str, location: Location, *, gated: bool = False, **details: Scalar) -> None:
        self.changes.append(
            Change(
                kind=self.dialect.kind(kind),
                engine=self.dialect.engine,
                definition=self.definition,
                location=location,
                gated=gated,
                details={k: v for k, v in details.items() if v is not None},
            )
        )


def _patch_changes(em: Emitter) -> None:
    assert em.base is not None and em.head is not None
    before, after = em.base.patches(), em.head.patches()
    where: dict[str, Location] = {}
    for seq in em.head.sequences.values():
        for c in seq:
            if c.kind in MARKER_KINDS:
                where.setdefault(c.name, c.location)  # the first call is where the gate starts
    for pid, kind in after.items():
        if pid not in before:
            if kind == CommandKind.PATCH:
                em.add("patch.added", where[pid], gated=True, patch_id=pid)
        elif before[pid] == CommandKind.PATCH and kind == CommandKind.DEPRECATE_PATCH:
            em.add("patch.deprecated", where[pid], patch_id=pid)
    for pid, kind in before.items():
        if pid not in after:
            em.add(
                "patch.removed",
                _patch_anchor(em.base, em.head, pid),
                patch_id=pid,
                previously="patched" if kind == CommandKind.PATCH else "deprecated",
            )


def _patch_anchor(base: WorkflowModel, head: WorkflowModel, pid: str) -> Location:
    """Return where a removed patch call stood, in head: at the command that followed it."""
    for key, seq in base.sequences.items():
        marker = next((i for i, c in enumerate(seq) if c.kind in MARKER_KINDS and c.name == pid), None)
        if marker is None:
            continue
        following = [c.key for c in seq[marker + 1 :] if c.kind not in MARKER_KINDS]
        for wanted in following:  # the first of them that head still has (a branch may be gone)
            for c in head.sequences.get(key, ()):
                if c.key == wanted:
                    return c.location
    return run_line(head)


def _signature_changes(em: Emitter) -> None:
    assert em.base is not None and em.head is not None
    old = {p.name: p for p in em.base.parameters}
    new = {p.name: p for p in em.head.parameters}
    old_order = [p.name for p in em.base.parameters]
    new_order = [p.name for p in em.head.parameters]
    problems: list[str] = []
    for name, param in old.items():
        if name not in new:
            problems.append(f"parameter `{name}` removed")
        elif param.annotation != new[name].annotation:
            problems.append(f"parameter `{name}`: {param.annotation} → {new[name].annotation}")
    added = [p for p in em.head.parameters if p.name not in old]
    problems.extend(f"parameter `{p.name}` added without a default" for p in added if not p.has_default)
    common_old = [n for n in old_order if n in new]
    common_new = [n for n in new_order if n in old]
    if common_old != common_new:
        problems.append("parameters reordered")
    if problems:
        em.add("signature.changed", run_line(em.head), problems="; ".join(problems))
    elif added:
        em.add("signature.extended", run_line(em.head), parameters=", ".join(p.name for p in added))


def _input_changes(em: Emitter) -> None:
    """Compare the fields of each input class, paired by handler and parameter position."""
    assert em.base is not None and em.head is not None
    old = {(s.handler, s.position): s for s in em.base.inputs}
    for shape in em.head.inputs:
        before = old.get((shape.handler, shape.position))
        if before is not None:
            _shape_changes(em, before, shape)


def _shape_changes(em: Emitter, base: InputShape, head: InputShape) -> None:
    old = {f.path: f for f in base.fields}
    new = {f.path: f for f in head.fields}
    target = "activity" if head.handler.startswith("activity ") else "workflow"

    def parent(path: str) -> str:
        return path.rpartition(".")[0]

    def closed(path: str) -> bool:
        """Whether head's class holding the field at `path` refuses fields it does not know."""
        holder = new.get(parent(path))
        return head.closed if "." not in path else holder is not None and holder.closed

    def add(
        kind: str, where: InputField, *, field: str, annotation: str | None = None, before: str | None = None
    ) -> None:
        # Old values decode when the converter can ignore what it no longer knows and default
        # what it misses: a removed field, a field added or renamed with a default. A class that
        # refuses unknown fields fails on the name it no longer has.
        if kind == "field_retyped":
            decodes = before is not None and em.dialect.decodes(before, where.annotation)
        elif kind == "field_removed":
            decodes = not closed(where.path)
        else:
            # a renamed field's old name is one the class no longer knows
            decodes = where.has_default and not (kind == "field_renamed" and before and closed(before))
        em.add(
            f"input.{kind}",
            where.location,
            handler=head.handler,
            class_name=head.class_name,
            target=target,
            field=field,
            annotation=annotation,
            before=before,
            after=where.annotation if kind == "field_retyped" else (where.path if before else None),
            old_values_decode=decodes,
        )

    # Only the top of a removed or added subtree is reported: its nested fields go with it.
    removed = [f for p, f in old.items() if p not in new and parent(p) not in old.keys() - new.keys()]
    added = [f for p, f in new.items() if p not in old and parent(p) not in new.keys() - old.keys()]
    for gone in list(removed):
        twin = next(
            (f for f in added if parent(f.path) == parent(gone.path) and f.annotation == gone.annotation),
            None,
        )
        if twin is not None:
            removed.remove(gone)
            added.remove(twin)
            add(
                "field_renamed",
                twin,
                field=twin.path,
                before=gone.path,
                annotation=twin.annotation,
            )
    for gone in removed:
        add("field_removed", gone, field=gone.path, annotation=gone.annotation)
    for path, field in new.items():
        was = old.get(path)
        # A nested class compares field by field; its own name is not part of the data.
        if was is not None and was.annotation != field.annotation and not (was.nested and field.nested):
            add("field_retyped", field, field=path, before=was.annotation)
    for field in added:
        kind = "field_added_optional" if field.has_default else "field_added_required"
        add(kind, field, field=field.path, annotation=field.annotation)


def _handler_changes(em: Emitter) -> None:
    assert em.base is not None and em.head is not None
    old = {(h.kind, h.name): h for h in em.base.handlers}
    new = {(h.kind, h.name): h for h in em.head.handlers}
    for key, handler in old.items():
        if key not in new:
            em.add(
                "handler.removed",
                em.head.location,
                handler_kind=handler.kind,
                name=handler.name,
                base_line=handler.location.line,
            )
    for key, handler in new.items():
        if key not in old:
            em.add("handler.added", handler.location, handler_kind=handler.kind, name=handler.name)


def _nondeterminism_changes(em: Emitter) -> None:
    assert em.head is not None
    old = [(n.call, n.via, n.text) for n in em.base.nondeterminism] if em.base is not None else []
    new = [(n.call, n.via, n.text) for n in em.head.nondeterminism]
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag in ("insert", "replace"):
            for call in em.head.nondeterminism[j1:j2]:
                em.add(
                    "nondeterminism.added",
                    call.location,
                    call=call.call,
                    function=call.via[-1] if call.via else None,
                )


def _has_handler(model: WorkflowModel, key: str) -> bool:
    kind, _, name = key.partition(":")
    return any(h.kind == kind and h.name == name for h in model.handlers)


def diff_pair(base: WorkflowModel, head: WorkflowModel, definition: str = "") -> list[Change]:
    """Return the changes between two versions of one workflow."""
    em = Emitter(base, head, definition)
    if base.versioning_behavior != head.versioning_behavior:
        em.add(
            "versioning_behavior.changed",
            head.location,
            before=base.versioning_behavior or "unspecified",
            after=head.versioning_behavior or "unspecified",
        )
    _signature_changes(em)
    _input_changes(em)
    _handler_changes(em)
    for key in list(dict.fromkeys([*base.sequences, *head.sequences])):
        if key != "run" and not (_has_handler(base, key) and _has_handler(head, key)):
            continue  # a handler added or removed is reported as such, not command by command
        sequence_changes(em, key, base.sequences.get(key, ()), head.sequences.get(key, ()))
    _patch_changes(em)
    _nondeterminism_changes(em)
    return em.changes


def _similar(a: WorkflowModel, b: WorkflowModel) -> bool:
    keys_a = [c.key for c in steps(a.commands)]
    keys_b = [c.key for c in steps(b.commands)]
    if a.class_name == b.class_name and a.path == b.path:
        return True
    if not keys_a and not keys_b:
        return a.path == b.path and a.handlers == b.handlers
    return difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False).ratio() >= 0.8


def pair(
    base: Sequence[WorkflowModel], head: Sequence[WorkflowModel]
) -> tuple[list[tuple[WorkflowModel, WorkflowModel]], list[WorkflowModel], list[WorkflowModel]]:
    """Return (paired, base only, head only): by type name and file, then by type name alone.

    Two services in one repository may both define `OrderWorkflow`; each is compared with the
    one in the same file. A type that moved to another file is paired by name when that name
    is unique on both sides.
    """
    pairs: list[tuple[WorkflowModel, WorkflowModel]] = []
    head_left = list(head)
    base_only: list[WorkflowModel] = []
    for m in base:
        twin = next((h for h in head_left if h.id == m.id and h.path == m.path), None)
        if twin is not None:
            pairs.append((m, twin))
            head_left.remove(twin)
        else:
            base_only.append(m)
    for m in list(base_only):
        same_base = [b for b in base_only if b.id == m.id]
        same_head = [h for h in head_left if h.id == m.id]
        if len(same_base) == 1 and len(same_head) == 1:
            pairs.append((m, same_head[0]))
            base_only.remove(m)
            head_left.remove(same_head[0])
    return pairs, base_only, head_left


def _names(base: Sequence[WorkflowModel], head: Sequence[WorkflowModel]) -> Callable[[WorkflowModel], str]:
    """Return how a definition is named in the report: its type, plus its file when the type repeats."""
    repeated = {
        m.id for side in (base, head) for m in side if sum(1 for other in side if other.id == m.id) > 1
    }

    def name(model: WorkflowModel) -> str:
        return f"{model.id} ({model.path})" if model.id in repeated else model.id

    return name


def diff_workflows(
    base: Sequence[WorkflowModel], head: Sequence[WorkflowModel]
) -> tuple[list[Change], list[Definition], dict[str, tuple[WorkflowModel | None, WorkflowModel | None]]]:
    """Return the changes, the definitions with their status, and the pairs by definition name."""
    pairs, base_only, head_only = pair(base, head)
    name = _names(base, head)
    changes: list[Change] = []
    definitions: list[Definition] = []
    paired: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]] = {}

    for old in list(base_only):
        twin = next((new for new in head_only if _similar(old, new)), None)
        if twin is None:
            continue
        base_only.remove(old)
        head_only.remove(twin)
        em = Emitter(old, twin, name(twin))
        em.add("workflow.renamed", twin.location, before=old.id, after=twin.id)
        changes.extend(em.changes)
        definitions.append(_definition(name(twin), twin, "changed", old))
        paired[name(twin)] = (old, twin)

    for old, new in pairs:
        found = diff_pair(old, new, name(new))
        changes.extend(found)
        status = "changed" if found or old.digest != new.digest else "unchanged"
        definitions.append(_definition(name(new), new, status, old))
        paired[name(new)] = (old, new)
    for old in base_only:
        em = Emitter(old, None, name(old))
        em.add("workflow.removed", old.location, class_name=old.class_name)
        changes.extend(em.changes)
        definitions.append(_definition(name(old), old, "removed", old))
        paired[name(old)] = (old, None)
    for new in head_only:
        em = Emitter(None, new, name(new))
        em.add("workflow.added", new.location, class_name=new.class_name)
        _nondeterminism_changes(em)
        changes.extend(em.changes)
        definitions.append(_definition(name(new), new, "added", None))
        paired[name(new)] = (None, new)
    definitions.sort(key=lambda d: (d.path, d.id))
    return changes, definitions, paired


def _definition(name: str, model: WorkflowModel, status: str, base: WorkflowModel | None) -> Definition:
    behaviors = {model.versioning_behavior} | ({base.versioning_behavior} if base is not None else set())
    return Definition(
        engine=model.engine,
        id=name,
        path=model.path,
        status=status,
        line=model.location.line,
        versioning_behavior=model.versioning_behavior,
        # Pinned only when it was already pinned: executions started before the change are
        # unversioned or auto-upgrade and will replay the new code.
        pinned=behaviors == {"PINNED"},
    )
