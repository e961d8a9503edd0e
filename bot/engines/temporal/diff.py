"""Base vs head Temporal workflows → typed `Change` facts from a closed vocabulary.

Pairing happens once, here (by workflow type; a class renamed with `name=` kept is the
same workflow). Command sequences are aligned with a longest-matching-block alignment so
an insertion is one insertion, not a cascade; a command that appears on both sides at
different positions is a reorder.
"""

from __future__ import annotations

import difflib
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
    "temporal.command.condition_changed": "A command kept its place and type but now runs under other conditions (an `if`, a loop, an `except`). `details.structural` is true when it moved between conditional and unconditional code, or into or out of a loop.",
    "temporal.command.unresolved": "A command in a changed region whose target (activity or child-workflow type) cannot be determined statically; `details.change` says what the change would be.",
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
    def __init__(self, base: WorkflowModel | None, head: WorkflowModel | None, definition: str = "") -> None:
        model = head or base
        assert model is not None
        self.definition = definition or model.id
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
    return near.location if near else _run_line(head)


def _kind(kind: str, *commands: Command) -> str:
    """Return `kind`, or `command.unresolved` when a command's target is not known statically."""
    return "temporal.command.unresolved" if any(not c.resolved for c in commands) else kind


def _change(kind: str) -> str:
    return kind.rsplit(".", 1)[-1].replace("_", " ")


def _guard_text(cmd: Command) -> str:
    text = " / ".join(cmd.guard) or "unconditional"
    return f"{text} (in a loop)" if cmd.in_loop and "for " not in text and "while " not in text else text


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
        c.key: c.gate.patch_id
        for c in head
        if c.gate is not None and c.gate.patch_id in added and c.gate.branch == "old"
    }
    # What executions already in flight replay: any difference here is ungated.
    _compare(em, key, base, old_path, guarded=None, kept_for_old={})
    # What the new gate guards: only the differences it covers are reported, as gated.
    _compare(em, key, base, new_path, guarded=guarded, kept_for_old=kept_for_old)


def _compare(
    em: _Emitter,
    key: str,
    base: Sequence[Command],
    head: Sequence[Command],
    *,
    guarded: Callable[[Command], bool] | None,
    kept_for_old: dict[tuple[str, str], str],
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
                _kind("temporal.command.reordered", cmd),
                cmd.location,
                change="moved",
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
                _kind(kind, old, new),
                new.location,
                change=_change(kind),
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
        # Only the run method has an end executions reach in order; handlers run at any time.
        at_end = key == "run" and hk.base_start >= len(base_steps) and not cmd.in_loop
        kind = "temporal.timer.added" if cmd.kind in TIMER_KINDS else "temporal.command.inserted"
        em.add(
            _kind(kind, cmd),
            cmd.location,
            change=_change(kind),
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
        details = _describe(cmd)
        if gated_mode:
            details["patch_id"] = kept_for_old[cmd.key]
        em.add(
            _kind(kind, cmd),
            _anchor(hk, head_model),
            change=_change(kind),
            gated=gated_mode,
            sequence=key,
            verb="removed",
            base_line=cmd.location.line,
            base_path=cmd.location.path,
            **details,
        )

    for old, new in equal_pairs(base, head):
        if not report(new):
            continue
        if old.guard != new.guard or old.in_loop != new.in_loop:
            em.add(
                "temporal.command.condition_changed",
                new.location,
                gated=gated_mode,
                sequence=key,
                verb="moved under other conditions",
                before=_guard_text(old),
                after=_guard_text(new),
                structural=bool(old.guard) != bool(new.guard) or old.in_loop != new.in_loop,
                **_describe(new),
            )
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
    where: dict[str, Location] = {}
    for seq in em.head.sequences.values():
        for c in seq:
            if c.kind in MARKER_KINDS:
                where.setdefault(c.name, c.location)  # the first call is where the gate starts
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
    old = [(n.call, n.via, n.text) for n in em.base.nondeterminism] if em.base is not None else []
    new = [(n.call, n.via, n.text) for n in em.head.nondeterminism]
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag in ("insert", "replace"):
            for call in em.head.nondeterminism[j1:j2]:
                em.add(
                    "temporal.nondeterminism.added",
                    call.location,
                    call=call.call,
                    function=call.via[-1] if call.via else None,
                )


def _has_handler(model: WorkflowModel, key: str) -> bool:
    kind, _, name = key.partition(":")
    return any(h.kind == kind and h.name == name for h in model.handlers)


def diff_pair(base: WorkflowModel, head: WorkflowModel, definition: str = "") -> list[Change]:
    """Return the changes between two versions of one workflow."""
    em = _Emitter(base, head, definition)
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
        em = _Emitter(old, twin, name(twin))
        em.add("temporal.workflow.renamed", twin.location, before=old.id, after=twin.id)
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
        em = _Emitter(old, None, name(old))
        em.add("temporal.workflow.removed", old.location, class_name=old.class_name)
        changes.extend(em.changes)
        definitions.append(_definition(name(old), old, "removed", old))
        paired[name(old)] = (old, None)
    for new in head_only:
        em = _Emitter(None, new, name(new))
        em.add("temporal.workflow.added", new.location, class_name=new.class_name)
        _nondeterminism_changes(em)
        changes.extend(em.changes)
        definitions.append(_definition(name(new), new, "added", None))
        paired[name(new)] = (None, new)
    definitions.sort(key=lambda d: (d.path, d.id))
    return changes, definitions, paired


def _definition(name: str, model: WorkflowModel, status: str, base: WorkflowModel | None) -> Definition:
    behaviors = {model.versioning_behavior} | ({base.versioning_behavior} if base is not None else set())
    return Definition(
        engine="temporal",
        id=name,
        path=model.path,
        status=status,
        line=model.location.line,
        versioning_behavior=model.versioning_behavior,
        # Pinned only when it was already pinned: executions started before the change are
        # unversioned or auto-upgrade and will replay the new code.
        pinned=behaviors == {"PINNED"},
    )
