"""Command sequences, base vs head: alignment, the old and new paths of a patch, and their facts.

Sequences are aligned with a longest-matching-block alignment so an insertion is one insertion,
not a cascade; a command that appears on both sides at different positions is a reorder.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.model import Command, CommandKind, Exit, Location, Scalar, Steer, WorkflowModel


class Emitter(Protocol):
    """Where the facts go: the diff's `Emitter` (diff.py), which imports this module."""

    base: WorkflowModel | None
    head: WorkflowModel | None

    def add(self, kind: str, location: Location, *, gated: bool = False, **details: Scalar) -> None: ...


TIMER_KINDS = {CommandKind.TIMER, CommandKind.WAIT_CONDITION_TIMER}
MARKER_KINDS = {CommandKind.PATCH, CommandKind.DEPRECATE_PATCH}


@dataclass
class Hunk:
    """One region where base and head command sequences differ."""

    base: list[Command] = field(default_factory=list)
    head: list[Command] = field(default_factory=list)
    base_start: int = 0
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
    return near.location if near else run_line(head)


def _kind(kind: str, *commands: Command) -> str:
    """Return `kind`, or `command.unresolved` when a command's target is not known statically."""
    return "command.unresolved" if any(not c.resolved for c in commands) else kind


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


def sequence_changes(em: Emitter, key: str, base: Sequence[Command], head: Sequence[Command]) -> None:
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
    em: Emitter,
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
    pairs = equal_pairs(base, head)
    steered = _steer_changes(pairs)
    # Iterations a changed bound adds or drops, and an unrolled loop walked the other way, are
    # the steer's fact, not insertions, removals or moves of their own; which iterations pair up
    # is then a guess, so their arguments are not compared either.
    explained = _by_steer(steered, base, head)
    realigned = {
        k
        for k, found in steered.items()
        if any(s.guard_index is None and s.role in ("loop", "order") for s, *_ in found)
    }
    removed = [(hk, c) for hk, c in removed if not explained(c, base)]
    inserted = [(hk, c) for hk, c in inserted if not explained(c, head)]

    # A command that vanished in one place and appeared in another moved.
    for hk, cmd in list(inserted):
        match = next((r for r in removed if r[1].key == cmd.key), None)
        if match is None:
            continue
        removed.remove(match)
        inserted.remove((hk, cmd))
        if report(cmd):
            em.add(
                _kind("command.reordered", cmd),
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
            kind = "command.type_changed" if old.kind == new.kind else "command.kind_changed"
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
        kind = "timer.added" if cmd.kind in TIMER_KINDS else "command.inserted"
        em.add(
            _kind(kind, cmd),
            cmd.location,
            change=_change(kind),
            gated=gated_mode,
            sequence=key,
            at_end=at_end,
            verb="inserted",
            # Where it went, by its neighbours: the same call inserted elsewhere is another change.
            follows=hk.before.name if hk.before else None,
            precedes=hk.after.name if hk.after else None,
            **_describe(cmd),
        )

    for hk, cmd in removed:
        if gated_mode:
            if cmd.key not in kept_for_old:
                continue
        elif (
            cmd.gate is not None
            and cmd.gate.patch_id in retired
            and (cmd.gate.branch == "old" or cmd.gate.patch_id not in head_patches)
        ):
            # Retiring a patch's old branch, or dropping the gate with either branch: the
            # patch.deprecated / patch.removed fact covers it.
            continue
        kind = "timer.removed" if cmd.kind in TIMER_KINDS else "command.removed"
        details = _describe(cmd)
        if gated_mode:
            details["patch_id"] = kept_for_old[cmd.key]
        em.add(
            # What replaced it names its type at run time: it may still be this one.
            _kind(kind, cmd, *hk.head),
            _anchor(hk, head_model),
            change=_change(kind),
            gated=gated_mode,
            sequence=key,
            verb="removed",
            base_line=cmd.location.line,
            base_path=cmd.location.path,
            **details,
        )

    _steer_facts(em, key, steered, steps(head), report, gated_mode)
    _exit_facts(em, key, pairs, report, gated_mode)
    _batch_facts(em, key, pairs, report, gated_mode)
    for old, new in pairs:
        if not report(new):
            continue
        if _guards_differ(old, new):
            em.add(
                "command.condition_changed",
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
        if changed and not any(s.key in realigned for s in new.steers):
            em.add(
                "command.options_changed",
                new.location,
                gated=gated_mode,
                sequence=key,
                options=", ".join(changed),
                **_describe(new),
            )


def run_line(model: WorkflowModel) -> Location:
    """Return the run method's line, the anchor for facts without a better place."""
    return model.run_location or model.location


# --- values, exits and workflow tasks ------------------------------------------------------


def _guards_differ(old: Command, new: Command) -> bool:
    """Whether the conditions differ in shape; a value a steer compares, or an iteration order, is
    the steer's fact (`value.changed`, `loop.order_changed`)."""
    if old.in_loop != new.in_loop or len(old.guard) != len(new.guard):
        return True
    for i, (a, b) in enumerate(zip(old.guard, new.guard, strict=True)):
        if a == b:
            continue
        keys_a = {s.key for s in old.steers if s.guard_index == i}
        keys_b = {s.key for s in new.steers if s.guard_index == i}
        if not keys_a or keys_a != keys_b:
            return True
    return False


Instance = tuple[Steer, Steer, Command, Command]


def _steer_changes(pairs: Sequence[tuple[Command, Command]]) -> dict[str, list[Instance]]:
    """Return, per steer key, where its value differs on commands both sides issue."""
    out: dict[str, list[Instance]] = {}
    for old, new in pairs:
        before = {(s.key, s.role): s for s in old.steers}
        for steer in new.steers:
            was = before.get((steer.key, steer.role))
            if was is not None and was.value != steer.value:
                out.setdefault(steer.key, []).append((was, steer, old, new))
    return out


def _by_steer(
    changed: dict[str, list[Instance]], base: Sequence[Command], head: Sequence[Command]
) -> Callable[[Command, Sequence[Command]], bool]:
    """Return a test: is this unmatched command one of the iterations of a changed unrolled loop?"""
    unrolled = {
        k
        for k, found in changed.items()
        if any(s.guard_index is None and s.role in ("loop", "order") for s, *_ in found)
    }

    def test(cmd: Command, side: Sequence[Command]) -> bool:
        others = base if side is head else head
        for s in cmd.steers:
            if s.key in unrolled and any(
                cmd.key == c.key and any(t.key == s.key for t in c.steers) for c in others
            ):
                return True
        return False

    return test


def _effect(old: Steer, new: Steer) -> str:
    """Whether the executions reaching the steer now issue more or fewer commands than before."""
    if old.number is None or new.number is None or new.grows is None or old.grows != new.grows:
        return "unknown"
    if old.number == new.number:
        return "same"
    taken_more = (new.number > old.number) == new.grows
    if new.role in ("loop", "branch"):
        return "more" if taken_more else "fewer"
    return "fewer" if taken_more else "more"  # an exit taken more often skips more commands


def _follows(key: str, sequence: str, steer: Steer, head: Sequence[Command]) -> bool:
    """Whether commands follow the ones the steer decides: executions may be past them."""
    if steer.role == "ends_run":
        return False
    if sequence != "run":
        return True  # handlers run at any time
    last = max((i for i, c in enumerate(head) if any(s.key == key for s in c.steers)), default=-1)
    return any(not any(s.key == key for s in c.steers) for c in head[last + 1 :])


def _steer_facts(
    em: Emitter,
    sequence: str,
    changed: dict[str, list[Instance]],
    head: Sequence[Command],
    report: Callable[[Command], bool],
    gated: bool,
) -> None:
    for key, found in changed.items():
        found = [f for f in found if report(f[3])]
        if not found:
            continue
        old, new, _, cmd = found[0]
        if new.role == "order":
            per_item = {s.per_item for _, s, _, _ in found}
            walked = {c.key for c in head if any(s.key == key for s in c.steers)}
            if new.guard_index is None and len(walked) > 1:
                per_item.add("type")  # an unrolled loop over different commands
            elif new.guard_index is None:
                per_item.add("args")
            strongest = "type" if "type" in per_item else "args" if "args" in per_item else None
            if strongest is None:
                continue  # every item issues the same command with the same arguments
            em.add(
                "loop.order_changed",
                Location(path=cmd.location.path, line=new.line, side=cmd.location.side),
                gated=gated,
                sequence=sequence,
                before=old.value,
                after=new.value,
                per_item=strongest,
                verb="runs in a loop that walks the other way",
                **_describe(cmd),
            )
            continue
        effects = {_effect(o, n) for o, n, _, _ in found} - {"same"}
        if not effects:
            continue
        follows = any(_follows(key, sequence, n, head) for _, n, _, _ in found)
        effect = "fewer" if "fewer" in effects else "unknown" if "unknown" in effects else "more"
        em.add(
            "value.changed",
            new.location,
            gated=gated,
            sequence=sequence,
            constant=new.name or "a literal",
            before=old.value,
            after=new.value,
            role=new.role,
            effect=effect,
            follows=follows,
            changes_recorded=effect != "more" or follows,
            test_line=new.line,
            verb="runs more often: a value deciding it changed"
            if effect == "more"
            else "is decided by a changed value",
            **_describe(cmd),
        )


def new_exits(pairs: Sequence[tuple[Command, Command]]) -> list[tuple[Exit, Command, bool]]:
    """Return the early exits head puts in front of commands both sides issue: (exit, the first
    command it precedes, replaced?).

    Exits pair by the shape of their conditions; one that pairs with none is new, unless the
    command was already behind as many exits of that kind (the conditions of one were edited:
    `replaced`).
    """
    found: dict[str, tuple[Exit, Command, bool]] = {}
    for old, new in pairs:
        before = {e.key for e in old.exits}
        for exit_ in new.exits:
            if exit_.key in before:
                continue
            replaced = sum(e.kind == exit_.kind for e in new.exits) <= sum(
                e.kind == exit_.kind for e in old.exits
            )
            if exit_.key in found:
                first, cmd, was = found[exit_.key]
                found[exit_.key] = (first, cmd, was and replaced)
            else:
                found[exit_.key] = (exit_, new, replaced)
    return list(found.values())


def _exit_facts(
    em: Emitter,
    sequence: str,
    pairs: Sequence[tuple[Command, Command]],
    report: Callable[[Command], bool],
    gated: bool,
) -> None:
    """An early exit now precedes commands base executions issued: those that take it skip them."""
    for exit_, cmd, replaced in new_exits([(old, new) for old, new in pairs if report(new)]):
        em.add(
            "exit.added",
            exit_.location,
            gated=gated,
            sequence=sequence,
            exit=exit_.kind,
            test=exit_.test or "always",
            replaced=replaced,
            verb=f"can be skipped by a new `{exit_.kind}`",
            **_describe(cmd),
        )


def _exclusive(a: Command, b: Command) -> bool:
    """Whether two commands sit in different branches of one `if` (an execution issues one of them)."""
    for x, y in zip(a.guard, b.guard, strict=False):
        if x != y:
            return x == f"else of {y}" or y == f"else of {x}"
    return False


def _batch_facts(
    em: Emitter,
    sequence: str,
    pairs: Sequence[tuple[Command, Command]],
    report: Callable[[Command], bool],
    gated: bool,
) -> None:
    """Commands issued in one workflow task now wait for each other (`split`), or the reverse."""
    for (o1, n1), (o2, n2) in itertools.pairwise(pairs):
        if _exclusive(o1, o2) or _exclusive(n1, n2):
            continue  # one branch or the other: never both in a history
        together_before, together_now = o1.batch == o2.batch, n1.batch == n2.batch
        if together_before == together_now or not report(n2):
            continue
        em.add(
            "command.batch_changed",
            n2.location,
            gated=gated,
            sequence=sequence,
            split=together_before,
            previous=n1.name,
            verb=f"is awaited apart from `{n1.name}`" if together_before else f"is issued with `{n1.name}`",
            **_describe(n2),
        )
