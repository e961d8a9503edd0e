"""Base vs head Temporal workflows → typed `Change` facts from a closed vocabulary.

Pairing happens once, here (by workflow type; a class renamed with `name=` kept is the
same workflow). Command sequences are aligned with a longest-matching-block alignment so
an insertion is one insertion, not a cascade; a command that appears on both sides at
different positions is a reorder.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.model import Change, Command, CommandKind, Definition, Location, Scalar, WorkflowModel

VOCABULARY: dict[str, str] = {
    "temporal.workflow.added": "A workflow type exists in head but not in base.",
    "temporal.workflow.removed": "A workflow type exists in base but not in head.",
    "temporal.workflow.renamed": "A workflow's type name changed (class renamed without `name=`, or `name=` changed) while its body stayed the same.",
    "temporal.command.inserted": "A command (activity, local activity, child workflow, upsert, continue-as-new, external signal/cancel) was inserted into a command sequence. `details.at_end` is true when nothing recorded in base follows it.",
    "temporal.command.removed": "A command was removed from a command sequence.",
    "temporal.command.reordered": "A command kept its type but moved relative to the other commands.",
    "temporal.command.type_changed": "A command kept its kind but now targets another type (activity type, child workflow type, signal name).",
    "temporal.command.kind_changed": "A command changed kind at the same position (activity → local activity, activity → child workflow, ...).",
    "temporal.command.options_changed": "A command kept its place and type; its arguments or options (timeouts, retry policy, task queue, timer duration) changed.",
    "temporal.timer.added": "A timer (`workflow.sleep`, `asyncio.sleep`, or `wait_condition` with a timeout) was added.",
    "temporal.timer.removed": "A timer was removed.",
    "temporal.patch.added": "A `workflow.patched(id)` call was added (a new version gate).",
    "temporal.patch.deprecated": "A `workflow.patched(id)` call became `workflow.deprecate_patch(id)`.",
    "temporal.patch.removed": "A `patched(id)` or `deprecate_patch(id)` call was removed; `details.previously` says which.",
    "temporal.handler.added": "A signal, query or update handler was added.",
    "temporal.handler.removed": "A signal, query or update handler was removed; `details.handler_kind` says which.",
    "temporal.nondeterminism.added": "Workflow code gained a non-deterministic call (wall clock, randomness, environment, I/O, threads).",
    "temporal.signature.changed": "The run method's parameters changed incompatibly (removed, retyped, reordered, or added without default).",
    "temporal.signature.extended": "The run method gained a parameter with a default value.",
    "temporal.versioning_behavior.changed": "`@workflow.defn(versioning_behavior=...)` changed.",
    "temporal.source.invalid": "A file could not be analysed (syntax error, not UTF-8, too large).",
}

TIMER_KINDS = {CommandKind.TIMER, CommandKind.WAIT_CONDITION_TIMER}
MARKER_KINDS = {CommandKind.PATCH, CommandKind.DEPRECATE_PATCH}


@dataclass
class Hunk:
    """One region where base and head command sequences differ."""

    base: list[Command] = field(default_factory=list)
    head: list[Command] = field(default_factory=list)
    base_start: int = 0
    head_start: int = 0
    before: Command | None = None  # the head command aligned just before the hunk
    after: Command | None = None  # the head command aligned just after the hunk


def steps(seq: Sequence[Command]) -> list[Command]:
    """Return the commands that are compared in order (patch markers are compared as sets)."""
    return [c for c in seq if c.kind not in MARKER_KINDS]


def align(base: Sequence[Command], head: Sequence[Command]) -> list[Hunk]:
    """Return the differing regions of two command sequences."""
    b, h = steps(base), steps(head)
    matcher = difflib.SequenceMatcher(None, [c.key for c in b], [c.key for c in h], autojunk=False)
    hunks: list[Hunk] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        hunks.append(
            Hunk(
                base=b[i1:i2],
                head=h[j1:j2],
                base_start=i1,
                head_start=j1,
                before=h[j1 - 1] if j1 > 0 else None,
                after=h[j2] if j2 < len(h) else None,
            )
        )
    return hunks


def equal_pairs(base: Sequence[Command], head: Sequence[Command]) -> list[tuple[Command, Command]]:
    b, h = steps(base), steps(head)
    matcher = difflib.SequenceMatcher(None, [c.key for c in b], [c.key for c in h], autojunk=False)
    pairs: list[tuple[Command, Command]] = []
    for block in matcher.get_matching_blocks():
        pairs.extend((b[block.a + k], h[block.b + k]) for k in range(block.size))
    return pairs


class _Emitter:
    def __init__(self, base: WorkflowModel | None, head: WorkflowModel | None) -> None:
        model = head or base
        assert model is not None
        self.definition = model.id
        self.base = base
        self.head = head
        self.changes: list[Change] = []

    def add(self, kind: str, location: Location, *, gated: bool = False, **details: Scalar) -> None:
        self.changes.append(
            Change(
                kind=kind,
                engine="temporal",
                definition=self.definition,
                location=location,
                gated=gated,
                details={k: v for k, v in details.items() if v is not None},
            )
        )


def _describe(cmd: Command) -> dict[str, Scalar]:
    return {
        "command": cmd.kind.value,
        "name": cmd.name,
        "function": cmd.statement.function,
        "in_loop": cmd.in_loop or None,
        "conditional": cmd.conditional or None,
        "patch_id": cmd.gate.patch_id if cmd.gate else None,
        "duration": cmd.options.get("duration"),
        "timeout": cmd.options.get("timeout"),
    }


def _anchor(hunk: Hunk, head: WorkflowModel) -> Location:
    """Return where a removed command would have been, on the head side."""
    near = hunk.after or hunk.before
    return near.location if near else head.location


def split_paths(
    base_model: WorkflowModel, head_model: WorkflowModel, head: Sequence[Command]
) -> tuple[list[Command], list[Command], set[str]]:
    """Return (old path, new path, patch ids added in head) of a head command sequence.

    The old path is what executions started before this change replay: every `patched()`
    added here is False for them. The new path is what new executions run.
    """
    added = {pid for pid, kind in head_model.patches().items() if pid not in base_model.patches()}

    def branch(c: Command) -> str | None:
        return c.gate.branch if c.gate is not None and c.gate.patch_id in added else None

    old_path = [c for c in head if branch(c) != "new"]
    new_path = [c for c in head if branch(c) != "old"]
    return old_path, new_path, added


def _sequence_changes(em: _Emitter, key: str, base: Sequence[Command], head: Sequence[Command]) -> None:
    assert em.base is not None and em.head is not None
    old_path, new_path, added = split_paths(em.base, em.head, head)

    def guarded(c: Command) -> bool:
        return c.gate is not None and c.gate.patch_id in added and c.gate.branch == "new"

    kept_for_old = {
        c.key for c in head if c.gate is not None and c.gate.patch_id in added and c.gate.branch == "old"
    }
    # What executions already in flight replay: any difference here is ungated.
    _compare(em, key, base, old_path, guarded=None, kept_for_old=set())
    # What the new gate guards: only the differences it covers are reported, as gated.
    _compare(em, key, base, new_path, guarded=guarded, kept_for_old=kept_for_old)


def _compare(
    em: _Emitter,
    key: str,
    base: Sequence[Command],
    head: Sequence[Command],
    *,
    guarded: Callable[[Command], bool] | None,
    kept_for_old: set[tuple[str, str]],
) -> None:
    assert em.head is not None
    head_model = em.head
    head_patches = head_model.patches()
    # The old branch of a patch that head deprecates or drops goes away by design; the
    # patch.deprecated / patch.removed fact carries that risk.
    retired = {
        c.gate.patch_id
        for c in base
        if c.gate is not None and head_patches.get(c.gate.patch_id) != CommandKind.PATCH
    }
    gated_mode = guarded is not None

    def report(cmd: Command) -> bool:
        return guarded is None or guarded(cmd)

    base_steps = steps(base)
    hunks = align(base, head)
    removed: list[tuple[Hunk, Command]] = [(hk, c) for hk in hunks for c in hk.base]
    inserted: list[tuple[Hunk, Command]] = [(hk, c) for hk in hunks for c in hk.head]

    # A command that vanished in one place and appeared in another moved.
    for hk, cmd in list(inserted):
        match = next((r for r in removed if r[1].key == cmd.key), None)
        if match is None:
            continue
        removed.remove(match)
        inserted.remove((hk, cmd))
        if report(cmd):
            em.add(
                "temporal.command.reordered",
                cmd.location,
                gated=gated_mode,
                sequence=key,
                verb="moved",
                base_line=match[1].location.line,
                **_describe(cmd),
            )

    # Within one hunk, what remains on both sides at the same offset was replaced.
    for hk in hunks:
        olds = [c for h2, c in removed if h2 is hk]
        news = [c for h2, c in inserted if h2 is hk]
        for old, new in zip(olds, news, strict=False):
            removed.remove((hk, old))
            inserted.remove((hk, new))
            if old.kind in TIMER_KINDS and new.kind in TIMER_KINDS:
                continue  # a sleep became a wait_condition timeout: same timer command
            if not report(new):
                continue
            kind = (
                "temporal.command.type_changed" if old.kind == new.kind else "temporal.command.kind_changed"
            )
            em.add(
                kind,
                new.location,
                gated=gated_mode,
                sequence=key,
                verb="replaced" if old.kind == new.kind else "changed kind",
                base_command=old.kind.value,
                base_name=old.name,
                base_line=old.location.line,
                **_describe(new),
            )

    for hk, cmd in inserted:
        if not report(cmd):
            continue
        at_end = hk.base_start >= len(base_steps) and not cmd.in_loop
        kind = "temporal.timer.added" if cmd.kind in TIMER_KINDS else "temporal.command.inserted"
        em.add(
            kind,
            cmd.location,
            gated=gated_mode,
            sequence=key,
            at_end=at_end,
            verb="inserted",
            **_describe(cmd),
        )

    for hk, cmd in removed:
        if gated_mode:
            if cmd.key not in kept_for_old:
                continue
        elif cmd.gate is not None and cmd.gate.branch == "old" and cmd.gate.patch_id in retired:
            continue  # retiring a patch's old branch: the patch.deprecated/removed fact covers it
        kind = "temporal.timer.removed" if cmd.kind in TIMER_KINDS else "temporal.command.removed"
        em.add(
            kind,
            _anchor(hk, head_model),
            gated=gated_mode,
            sequence=key,
            verb="removed",
            base_line=cmd.location.line,
            base_path=cmd.location.path,
            **_describe(cmd),
        )

    for old, new in equal_pairs(base, head):
        if not report(new):
            continue
        changed = sorted(
            k for k in set(old.options) | set(new.options) if old.options.get(k) != new.options.get(k)
        )
        if changed:
            em.add(
                "temporal.command.options_changed",
                new.location,
                gated=gated_mode,
                sequence=key,
                options=", ".join(changed),
                **_describe(new),
            )


def _patch_changes(em: _Emitter) -> None:
    assert em.base is not None and em.head is not None
    before, after = em.base.patches(), em.head.patches()
    where = {c.name: c.location for seq in em.head.sequences.values() for c in seq if c.kind in MARKER_KINDS}
    for pid, kind in after.items():
        if pid not in before:
            if kind == CommandKind.PATCH:
                em.add("temporal.patch.added", where[pid], gated=True, patch_id=pid)
        elif before[pid] == CommandKind.PATCH and kind == CommandKind.DEPRECATE_PATCH:
            em.add("temporal.patch.deprecated", where[pid], patch_id=pid)
    for pid, kind in before.items():
        if pid not in after:
            em.add(
                "temporal.patch.removed",
                _patch_anchor(em.base, em.head, pid),
                patch_id=pid,
                previously="patched" if kind == CommandKind.PATCH else "deprecated",
            )


def _run_line(model: WorkflowModel) -> Location:
    return model.run_location or model.location


def _patch_anchor(base: WorkflowModel, head: WorkflowModel, pid: str) -> Location:
    """Return where a removed patch call stood, in head: at the command that followed it."""
    for key, seq in base.sequences.items():
        marker = next((i for i, c in enumerate(seq) if c.kind in MARKER_KINDS and c.name == pid), None)
        if marker is None:
            continue
        following = [c.key for c in seq[marker + 1 :] if c.kind not in MARKER_KINDS]
        for c in head.sequences.get(key, ()):
            if following and c.key == following[0]:
                return c.location
    return _run_line(head)


def _signature_changes(em: _Emitter) -> None:
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
    if em.base.return_annotation != em.head.return_annotation:
        problems.append(f"return type: {em.base.return_annotation} → {em.head.return_annotation}")
    if problems:
        em.add("temporal.signature.changed", _run_line(em.head), problems="; ".join(problems))
    elif added:
        em.add("temporal.signature.extended", _run_line(em.head), parameters=", ".join(p.name for p in added))


def _handler_changes(em: _Emitter) -> None:
    assert em.base is not None and em.head is not None
    old = {(h.kind, h.name): h for h in em.base.handlers}
    new = {(h.kind, h.name): h for h in em.head.handlers}
    for key, handler in old.items():
        if key not in new:
            em.add(
                "temporal.handler.removed",
                em.head.location,
                handler_kind=handler.kind,
                name=handler.name,
                base_line=handler.location.line,
            )
    for key, handler in new.items():
        if key not in old:
            em.add("temporal.handler.added", handler.location, handler_kind=handler.kind, name=handler.name)


def _nondeterminism_changes(em: _Emitter) -> None:
    assert em.head is not None
    seen: Counter[tuple[str, tuple[str, ...]]] = Counter()
    if em.base is not None:
        seen.update((n.call, n.via) for n in em.base.nondeterminism)
    for call in em.head.nondeterminism:
        key = (call.call, call.via)
        if seen[key] > 0:
            seen[key] -= 1
            continue
        em.add(
            "temporal.nondeterminism.added",
            call.location,
            call=call.call,
            function=call.via[-1] if call.via else None,
        )


def _has_handler(model: WorkflowModel, key: str) -> bool:
    kind, _, name = key.partition(":")
    return any(h.kind == kind and h.name == name for h in model.handlers)


def diff_pair(base: WorkflowModel, head: WorkflowModel) -> list[Change]:
    """Return the changes between two versions of one workflow."""
    em = _Emitter(base, head)
    if base.versioning_behavior != head.versioning_behavior:
        em.add(
            "temporal.versioning_behavior.changed",
            head.location,
            before=base.versioning_behavior or "unspecified",
            after=head.versioning_behavior or "unspecified",
        )
    _signature_changes(em)
    _handler_changes(em)
    for key in list(dict.fromkeys([*base.sequences, *head.sequences])):
        if key != "run" and not (_has_handler(base, key) and _has_handler(head, key)):
            continue  # a handler added or removed is reported as such, not command by command
        _sequence_changes(em, key, base.sequences.get(key, ()), head.sequences.get(key, ()))
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
    """Return (paired, base only, head only): by type name, then renamed types by similarity."""
    head_by_id = {m.id: m for m in head}
    pairs: list[tuple[WorkflowModel, WorkflowModel]] = []
    base_only: list[WorkflowModel] = []
    for m in base:
        if m.id in head_by_id:
            pairs.append((m, head_by_id.pop(m.id)))
        else:
            base_only.append(m)
    head_only = list(head_by_id.values())
    return pairs, base_only, head_only


def diff_workflows(
    base: Sequence[WorkflowModel], head: Sequence[WorkflowModel]
) -> tuple[list[Change], list[Definition], dict[str, tuple[WorkflowModel | None, WorkflowModel | None]]]:
    """Return the changes, the definitions with their status, and the pairs by definition id."""
    pairs, base_only, head_only = pair(base, head)
    changes: list[Change] = []
    definitions: list[Definition] = []
    paired: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]] = {}

    for old in list(base_only):
        twin = next((new for new in head_only if _similar(old, new)), None)
        if twin is None:
            continue
        base_only.remove(old)
        head_only.remove(twin)
        em = _Emitter(old, twin)
        em.add("temporal.workflow.renamed", twin.location, before=old.id, after=twin.id)
        changes.extend(em.changes)
        definitions.append(_definition(twin, "changed"))
        paired[twin.id] = (old, twin)

    for old, new in pairs:
        found = diff_pair(old, new)
        changes.extend(found)
        definitions.append(_definition(new, "changed" if found else "unchanged"))
        paired[new.id] = (old, new)
    for old in base_only:
        em = _Emitter(old, None)
        em.add("temporal.workflow.removed", old.location, class_name=old.class_name)
        changes.extend(em.changes)
        definitions.append(_definition(old, "removed"))
        paired[old.id] = (old, None)
    for new in head_only:
        em = _Emitter(None, new)
        em.add("temporal.workflow.added", new.location, class_name=new.class_name)
        _nondeterminism_changes(em)
        changes.extend(em.changes)
        definitions.append(_definition(new, "added"))
        paired[new.id] = (None, new)
    definitions.sort(key=lambda d: (d.path, d.id))
    return changes, definitions, paired


def _definition(model: WorkflowModel, status: str) -> Definition:
    return Definition(
        engine="temporal",
        id=model.id,
        path=model.path,
        status=status,
        line=model.location.line,
        versioning_behavior=model.versioning_behavior,
    )
