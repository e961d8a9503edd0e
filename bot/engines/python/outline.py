"""The versioning-code outline: edits to the head files, rendered as one unified diff.

Each edit puts old and new behaviour side by side behind a version gate, e.g.

    if workflow.patched("order-workflow-fraud-check"):
        <the head statements>
    else:
        <the base statements>

The same shape covers insertions (no `else`), removals (`if not workflow.patched(...)`),
replacements and reorders (two hunks, one per position).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from bot.engines.python.dialect import TEMPORAL, Dialect, dialect
from bot.engines.python.pyast import Project, SourceError
from bot.engines.python.sequence import align, equal_pairs, new_exits, split_paths
from bot.model import Command, Finding, Location, Statement, WorkflowModel

SEQUENCE_RULES = {
    "command.condition_changed",
    "command.unresolved",
    "command.inserted",
    "command.removed",
    "command.reordered",
    "command.type_changed",
    "command.kind_changed",
    "timer.added",
    "timer.removed",
    "exit.added",
}


def is_sequence(f: Finding) -> bool:
    """True for a finding about a command sequence (any engine sharing this outline)."""
    return f.change is not None and dialect(f.change.engine).relative(f.change.kind) in SEQUENCE_RULES


class Unsound(Exception):
    """No gate this generator can write is right here: the message says why, in one sentence."""


@dataclass(frozen=True)
class Edit:
    """Replace head lines [start, end] (1-based, inclusive; end = start - 1 inserts) with `lines`."""

    path: str
    start: int
    end: int
    lines: tuple[str, ...]
    reason: str


def kebab(text: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", text)
    return re.sub(r"[^a-z0-9]+", "-", spaced.lower()).strip("-") or "change"


def patch_id(model: WorkflowModel, findings: Sequence[Finding]) -> str:
    """Return a readable, stable change id for the version gate of one definition."""
    names = [str(f.change.details.get("name")) for f in findings if f.change and f.change.details.get("name")]
    suffix = kebab(names[0]) if names else "change"
    return f"{kebab(model.id)}-{suffix}"


def _indent(lines: Sequence[str], prefix: str) -> list[str]:
    return [f"{prefix}{line}" if line.strip() else "" for line in lines]


def _text(project: Project, path: str, start: int, end: int) -> list[str]:
    lines = project.module(path).lines()
    return textwrap.dedent("\n".join(lines[start - 1 : end])).splitlines()


def _units(commands: Sequence[Command], *, top: bool = False) -> tuple[Statement, ...] | None:
    """Return the statements to wrap so that every command of `commands` is inside them.

    They are siblings in one block: the first level where the commands' statement stacks
    part (or the statement they all share). None when the commands are in different
    functions or files. `top` wraps at the function body's level.
    """
    if not commands:
        return ()
    first = commands[0]
    if any(
        c.location.path != first.location.path or c.statement.function != first.statement.function
        for c in commands
    ):
        return None
    stacks = [c.statements for c in commands]
    depth = 0 if top else min(len(s) for s in stacks)
    for d in range(depth):
        if len({s[d] for s in stacks}) > 1:
            depth = d
            break
    level = depth if all(len(s) > depth for s in stacks) else depth - 1
    level = max(level, 0)
    return tuple(sorted({s[level] for s in stacks}, key=lambda st: st.line))


def _assigned(text: list[str]) -> set[str]:
    try:
        tree = ast.parse("\n".join(text))
    except (SyntaxError, RecursionError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign | ast.AugAssign)
            else []
        )
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def workflow_alias(project: Project, path: str, sdk: Dialect = TEMPORAL) -> str | None:
    mod = project.module(path)
    for name, target in mod.imports.items():
        if target == sdk.workflow_module:
            return name
    return None


def _gate_alias(head: Project, path: str, edits: list[Edit], sdk: Dialect) -> str:
    alias = workflow_alias(head, path, sdk)
    if alias is None:
        alias = "workflow"
        added = import_edit(head, path, sdk.import_line, alias)
        if added:
            edits.append(added)
    return alias


def sequence_edits(
    base: Project,
    head: Project,
    base_model: WorkflowModel,
    head_model: WorkflowModel,
    pid: str,
    keys: set[str],
    conditions: set[int] | None = None,
) -> list[Edit]:
    """Return `if patched(): <head> else: <base>` edits for the ungated differences of sequences.

    `conditions` holds the head lines of commands whose conditions changed: those are wrapped
    at the function's top level, where both shapes of the surrounding code differ.
    """
    edits: list[Edit] = []
    for key in sorted(keys):
        base_seq = base_model.sequences.get(key, ())
        replayed, _, _ = split_paths(base_model, head_model, head_model.sequences.get(key, ()))
        partner = {id(new): old for old, new in equal_pairs(base_seq, replayed)}
        regions: list[tuple[list[Command], list[Command], Command | None, Command | None, bool]] = []
        hunks = align(base_seq, replayed)
        # A command that moved is still run by the old path (the hunk at its old place keeps it).
        moved = {c.key for h in hunks for c in h.base} & {c.key for h in hunks for c in h.head}
        for hunk in hunks:
            new = [c for c in hunk.head if c.gate is None]
            old = [c for c in hunk.base if c.gate is None]
            if new or old:
                regions.append((new, old, hunk.after, hunk.before, False))
        for c in replayed:
            if conditions and c.location.line in conditions and id(c) in partner and c.gate is None:
                regions.append(([c], [partner[id(c)]], None, None, True))
        sdk = dialect(head_model.engine)
        for new, old, after, before, top in regions:
            edits += _region_edit(
                base, head, replayed, partner, new, old, after, before, pid, top, sdk, moved
            )
        for exit_, _, replaced in new_exits(equal_pairs(base_seq, replayed)):
            if not replaced:
                edits += _exit_edit(head, exit_.location, pid, sdk)
    return edits


def _exit_edit(head: Project, where: Location, pid: str, sdk: Dialect) -> list[Edit]:
    """Return an edit putting a new `if <test>: return` (or continue, break, raise) under the gate,
    so executions whose history predates it never take it."""
    try:
        mod = head.module(where.path)
    except SourceError:
        return []
    guard = next((n for n in ast.walk(mod.tree) if isinstance(n, ast.If) and n.lineno == where.line), None)
    if guard is None or guard.orelse or guard.end_lineno is None:
        return []  # an exit in an else branch, or not under an `if`: no clean edit
    lines = mod.lines()[guard.lineno - 1 : guard.end_lineno]
    pad = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
    edits: list[Edit] = []
    alias = _gate_alias(head, where.path, edits, sdk)
    body = [
        f"{pad}if {sdk.gate(alias, pid, new=True)}:",
        *_indent(_text(head, where.path, guard.lineno, guard.end_lineno), pad + "    "),
    ]
    edits.append(Edit(where.path, guard.lineno, guard.end_lineno, tuple(body), "gate the exit"))
    return edits


def _region_edit(
    base: Project,
    head: Project,
    replayed: Sequence[Command],
    partner: dict[int, Command],
    new: list[Command],
    old: list[Command],
    after: Command | None,
    before: Command | None,
    pid: str,
    top: bool,
    sdk: Dialect,
    moved: set[tuple[str, str]],
) -> list[Edit]:
    edits: list[Edit] = []
    units = _units(new, top=top)
    if units is None:
        return []
    if units:
        path = new[0].location.path
        start, end = units[0].line, max(u.end_line for u in units)
        # Commands sharing the wrapped statements (a gather, a loop) stay on the old path too.
        inside = [c for c in replayed if c.location.path == path and start <= c.location.line <= end]
        old = [*old, *(partner[id(c)] for c in inside if id(c) in partner and partner[id(c)] not in old)]
    old_units = _units(old, top=top) if old else ()
    if old_units is None:
        return []
    old_text = (
        _text(base, old[0].location.path, old_units[0].line, max(u.end_line for u in old_units))
        if old_units
        else []
    )
    if units:
        pad = " " * units[0].indent
        new_text = _text(head, path, start, end)
        alias = _gate_alias(head, path, edits, sdk)
        body = [f"{pad}if {sdk.gate(alias, pid, new=True)}:", *_indent(new_text, pad + "    ")]
        # Names the new path assigns and the old path does not: None there (unless the command
        # moved, and the old path assigns them at its old place).
        missing = (
            [] if any(c.key in moved for c in new) else sorted(_assigned(new_text) - _assigned(old_text))
        )
        if old_text == new_text and any(c.key not in moved for c in new):
            # The statements read the same on both sides: a name changed elsewhere (`name=` of the
            # activity's definition, a constant). Two identical branches would gate nothing.
            raise Unsound(
                f"the statements around `{new[0].name}` read the same in base and head (what changed is "
                "elsewhere: an activity's `name=`, a constant, a loop's list), so a gate there would hold "
                "two identical branches; keep the old type registered (a second definition with the old "
                "`name=`) or gate the statement that changed by hand"
            )
        if old_text or missing:
            body.append(f"{pad}else:")
            body += _indent(old_text, pad + "    ")
            body += [
                f"{pad}    {name} = None  # not computed by executions started before this change"
                for name in missing
            ]
        edits.append(Edit(path, start, end, tuple(body), f"gate {new[0].name}"))
        return edits
    if not old_text or not old_units:
        return edits
    place = _restore_point(base, old, old_units[0], before, after, partner)
    if place is None:
        return edits  # no neighbour in the removed command's block: no outline beats a wrong one
    anchor, at, indent = place
    pad = " " * indent
    alias = _gate_alias(head, anchor.location.path, edits, sdk)
    body = [f"{pad}if {sdk.gate(alias, pid, new=False)}:", *_indent(old_text, pad + "    ")]
    edits.append(Edit(anchor.location.path, at, at - 1, tuple(body), f"keep {old[0].name}"))
    return edits


def _block(project: Project, path: str, line: int) -> tuple[int, str, int] | None:
    """Return which statement list holds the statement starting at `line`: (owner line, field, handler)."""
    try:
        tree = project.module(path).tree
    except SourceError:
        return None
    for node in ast.walk(tree):
        lists: list[tuple[str, int, list[ast.stmt]]] = [
            (name, 0, value)
            for name in ("body", "orelse", "finalbody")
            if isinstance(value := getattr(node, name, None), list)
        ]
        lists += [("handler", i, h.body) for i, h in enumerate(getattr(node, "handlers", []) or [])]
        for name, index, stmts in lists:
            if any(isinstance(st, ast.stmt) and st.lineno == line for st in stmts):
                return (getattr(node, "lineno", 0), name, index)
    return None


def _restore_point(
    base: Project,
    old: Sequence[Command],
    unit: Statement,
    before: Command | None,
    after: Command | None,
    partner: dict[int, Command],
) -> tuple[Command, int, int] | None:
    """Where a removed command goes back in head: beside a neighbour that was in the same block in
    base (an `except` handler, a `finally`, a loop body), as (neighbour, head line, indent)."""
    stack = old[0].statements
    depth = next((d for d, st in enumerate(stack) if st == unit), len(stack) - 1)
    path = old[0].location.path
    home = _block(base, path, unit.line)
    if home is None:
        return None
    for neighbour, follows in ((before, True), (after, False)):
        mate = partner.get(id(neighbour)) if neighbour is not None else None
        if neighbour is None or mate is None or len(mate.statements) <= depth:
            continue
        if len(neighbour.statements) <= depth or mate.location.path != path:
            continue
        if _block(base, path, mate.statements[depth].line) != home:
            continue
        there = neighbour.statements[depth]
        return neighbour, (there.end_line + 1 if follows else there.line), there.indent
    return None


def restore_handler_edits(
    base: Project, head_model: WorkflowModel, base_model: WorkflowModel, names: set[str]
) -> list[Edit]:
    """Return edits that put removed handlers back at the end of the head class."""
    edits: list[Edit] = []
    for handler in base_model.handlers:
        if handler.name not in names or handler.location.path != base_model.path:
            continue
        lines = base.module(handler.location.path).lines()
        text = textwrap.dedent(
            "\n".join(lines[handler.location.line - 1 : handler.location.end_line or handler.location.line])
        )
        at = head_model.source_span[1] + 1
        body = ["", *_indent(text.splitlines(), "    ")]
        edits.append(Edit(head_model.path, at, at - 1, tuple(body), f"keep handler {handler.name}"))
    return edits


def nondeterminism_edits(head: Project, findings: Sequence[Finding]) -> list[Edit]:
    edits: list[Edit] = []
    for f in findings:
        if f.location is None or f.change is None:
            continue
        line = head.module(f.location.path).lines()[f.location.line - 1]
        sdk = dialect(f.change.engine)
        fixed = line
        for pattern, replacement in sdk.fixes:
            fixed = re.sub(pattern, replacement, fixed)
        if fixed == line:
            continue
        # The replacement calls the SDK's `workflow` module: a helper module may not import it.
        alias = workflow_alias(head, f.location.path, sdk)
        if alias is None:
            added = import_edit(head, f.location.path, sdk.import_line, "workflow")
            if added is not None and added not in edits:
                edits.append(added)
        elif alias != "workflow":
            fixed = re.sub(r"\bworkflow\.", f"{alias}.", fixed)
        edits.append(Edit(f.location.path, f.location.line, f.location.line, (fixed,), "deterministic API"))
    return edits


def decorator_edit(head: Project, model: WorkflowModel, **kwargs: str) -> Edit | None:
    """Return an edit setting keyword arguments on the class's `@workflow.defn` decorator."""
    lines = head.module(model.path).lines()
    for number in range(model.source_span[0], model.location.line + 1):
        line = lines[number - 1]
        m = re.search(dialect(model.engine).decorator, line)
        if not m:
            continue
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        if m.group(2):
            fixed = line
            for key, value in kwargs.items():
                if re.search(rf"\b{key}\s*=", fixed):
                    fixed = re.sub(rf"\b{key}\s*=\s*(\"[^\"]*\"|'[^']*'|[\w.]+)", f"{key}={value}", fixed)
                else:
                    fixed = fixed.replace(m.group(0), f"{m.group(0)}{key}={value}, ", 1)
            fixed = fixed.replace(", )", ")")
        else:
            fixed = line.replace(m.group(0), f"{m.group(0)}({args})", 1)
        return Edit(model.path, number, number, (fixed,), "decorator")
    return None


def import_edit(head: Project, path: str, statement: str, name: str) -> Edit | None:
    """Return an edit adding `statement` after the module's imports, unless `name` is bound."""
    mod = head.module(path)
    if name in mod.imports:
        return None
    last = 0
    for node in mod.tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            last = node.end_lineno or node.lineno
        elif last:
            break
    return Edit(path, last + 1, last, (statement,), "import")


def new_type_edits(
    base: Project, head: Project, base_model: WorkflowModel, head_model: WorkflowModel
) -> list[Edit]:
    """Return edits keeping the base class as the old type and the head class as `<Type>V2`."""
    new_id = f"{head_model.id}V2"
    base_lines = base.module(base_model.path).lines()
    old = base_lines[base_model.source_span[0] - 1 : base_model.source_span[1]]
    head_lines = head.module(head_model.path).lines()
    new = list(head_lines[head_model.source_span[0] - 1 : head_model.source_span[1]])
    offset = head_model.location.line - head_model.source_span[0]
    new[offset] = re.sub(
        rf"\bclass\s+{re.escape(head_model.class_name)}\b", f"class {head_model.class_name}V2", new[offset]
    )
    renamed = decorator_edit(head, head_model, name=json.dumps(new_id))
    if renamed is not None:
        new[renamed.start - head_model.source_span[0]] = renamed.lines[0]
    body = [*old, "", "", *new]
    return [
        Edit(head_model.path, head_model.source_span[0], head_model.source_span[1], tuple(body), "new type")
    ]


def render(head: Project, edits: Sequence[Edit]) -> tuple[str, list[str]]:
    """Return (unified diff of all edits, paths whose edits could not be applied cleanly)."""
    by_path: dict[str, list[Edit]] = {}
    for e in edits:
        by_path.setdefault(e.path, []).append(e)
    chunks: list[str] = []
    failed: list[str] = []
    for path in sorted(by_path):
        try:
            original = head.module(path).lines()
        except SourceError:
            failed.append(path)
            continue
        lines = list(original)
        applied_until = 10**9
        for e in sorted(by_path[path], key=lambda e: (e.start, e.end), reverse=True):
            if e.end >= applied_until:  # overlaps an edit already applied below it
                continue
            lines[e.start - 1 : e.end] = list(e.lines)
            applied_until = e.start
        new_text = "\n".join(lines) + "\n"
        try:
            ast.parse(new_text)
        except (SyntaxError, RecursionError):
            failed.append(path)
            continue
        diff = difflib.unified_diff(
            [f"{line}\n" for line in original],
            [f"{line}\n" for line in lines],
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
        chunks.append("".join(diff))
    return "".join(chunks), failed
