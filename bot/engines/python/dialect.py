"""What differs between the Python workflow SDKs that share one extractor, diff and outline.

Temporal's `workflow.patched(id)` and Cadence's `workflow.get_version(id, DEFAULT_VERSION, 1)`
are the same idea: a version gate recorded as a marker. The command model, the sequence
alignment and the outline are shared; the dialect says how each SDK spells things.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def _parse(annotation: str) -> ast.expr | None:
    try:
        return ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None


def _members(node: ast.expr) -> list[ast.expr]:
    """The members of a union annotation (itself when it is none)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _members(node.left) + _members(node.right)
    return [node]


def union_holds(before: str, after: str) -> bool:
    """Whether `after` is a union that still holds every type `before` allowed (`str` → `str | None`)."""
    old, new = _parse(before), _parse(after)
    if old is None or new is None:
        return before == after
    return {ast.unparse(m) for m in _members(old)} <= {ast.unparse(m) for m in _members(new)}


# What msgspec's `convert` (cadence-python-client's DefaultDataConverter) reads a recorded value
# into, besides its own type (measured with 0.4.1, see docs/cadence.md): a type → the types whose
# recorded values it also accepts.
_MSGSPEC_ACCEPTS: dict[str, frozenset[str]] = {
    "float": frozenset({"int"}),
    "Decimal": frozenset({"int", "float"}),
    "decimal.Decimal": frozenset({"int", "float"}),
    # these are recorded as JSON strings
    "str": frozenset(
        {
            "datetime", "datetime.datetime", "date", "datetime.date", "time", "datetime.time",
            "UUID", "uuid.UUID", "Decimal", "decimal.Decimal",
        }
    ),
}  # fmt: skip
# Recorded as a JSON array, read back into any of them.
_MSGSPEC_ARRAYS = frozenset(
    {
        "list",
        "tuple",
        "set",
        "frozenset",
        "collections.abc.Sequence",
        "collections.abc.MutableSequence",
        "collections.abc.Set",
        "collections.abc.MutableSet",
        "collections.abc.Collection",
    }
)
_MSGSPEC_OBJECTS = frozenset({"dict", "collections.abc.Mapping", "collections.abc.MutableMapping"})


def msgspec_decodes(before: str, after: str) -> bool:
    """Whether every value recorded as `before` converts into `after` with msgspec (strict mode):
    unions hold their members, `int` goes into `float`, arrays into any array type, element by element."""
    old, new = _parse(before), _parse(after)
    if old is None or new is None:
        return before == after
    return _msgspec_fits(old, new)


def _msgspec_fits(old: ast.expr, new: ast.expr) -> bool:
    targets = _members(new)
    return all(any(_msgspec_member(m, t) for t in targets) for m in _members(old))


def _msgspec_member(old: ast.expr, new: ast.expr) -> bool:
    if ast.unparse(old) == ast.unparse(new):
        return True
    if not isinstance(old, ast.Subscript) or not isinstance(new, ast.Subscript):
        return ast.unparse(old) in _MSGSPEC_ACCEPTS.get(ast.unparse(new), frozenset())
    kinds = ast.unparse(old.value), ast.unparse(new.value)
    old_args, new_args = _arguments(old), _arguments(new)
    if kinds[0] in _MSGSPEC_ARRAYS and kinds[1] in _MSGSPEC_ARRAYS:
        # homogeneous arrays only: `tuple[int, str]` is positional
        if len(old_args) != 1 or len(new_args) != 1:
            return False
        return _msgspec_fits(old_args[0], new_args[0])
    if kinds[0] in _MSGSPEC_OBJECTS and kinds[1] in _MSGSPEC_OBJECTS and len(old_args) == len(new_args) == 2:
        return _msgspec_fits(old_args[0], new_args[0]) and _msgspec_fits(old_args[1], new_args[1])
    return False


def _arguments(node: ast.Subscript) -> list[ast.expr]:
    """`list[X]` → [X]; `tuple[X, ...]` → [X]; `dict[K, V]` → [K, V]."""
    items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    if len(items) == 2 and isinstance(items[1], ast.Constant) and items[1].value is Ellipsis:
        return items[:1]
    return items


@dataclass(frozen=True)
class Dialect:
    engine: str
    workflow_module: str  # the SDK module workflow code imports as `workflow`
    import_line: str
    decorator: str  # regex of the class decorator that names the workflow type; group 2 is "("
    # Relative change kinds the shared diff emits → this engine's names for them.
    renames: Mapping[str, str] = field(default_factory=dict)
    # (pattern, replacement) fixes for non-deterministic calls the outline may apply.
    fixes: tuple[tuple[str, str], ...] = ()
    # Whether data recorded with a field of type `before` still decodes into type `after`.
    decodes: Callable[[str, str], bool] = union_holds

    def kind(self, relative: str) -> str:
        """Return the full change kind for a relative one (`command.inserted` → `temporal.command.inserted`)."""
        return f"{self.engine}.{self.renames.get(relative, relative)}"

    def relative(self, kind: str) -> str:
        """Return the shared name of a full change kind (inverse of `kind`)."""
        tail = kind.split(".", 1)[1] if "." in kind else kind
        back = {v: k for k, v in self.renames.items()}
        return back.get(tail, tail)

    def gate(self, alias: str, pid: str, *, new: bool) -> str:
        """Return the `if` test that is true on the new (or old) side of gate `pid`."""
        call = json.dumps(pid)
        if self.engine == "cadence":
            version = f"{alias}.get_version({call}, {alias}.DEFAULT_VERSION, 1)"
            return f"{version} == 1" if new else f"{version} == {alias}.DEFAULT_VERSION"
        return f"{alias}.patched({call})" if new else f"not {alias}.patched({call})"

    def gate_text(self, pid: str) -> str:
        """How the gate reads in a report sentence."""
        if self.engine == "cadence":
            return f'workflow.get_version("{pid}", workflow.DEFAULT_VERSION, 1)'
        return f'workflow.patched("{pid}")'


TEMPORAL = Dialect(
    engine="temporal",
    workflow_module="temporalio.workflow",
    import_line="from temporalio import workflow",
    decorator=r"@(\w+\.)?defn\b(\()?",
    fixes=(
        (r"\b(?:datetime\.)?datetime\.(?:now|utcnow)\(\s*\)", "workflow.now()"),
        (
            r"\b(?:datetime\.)?datetime\.now\(\s*(?:tz=)?(?:timezone|datetime\.timezone)\.utc\s*\)",
            "workflow.now()",
        ),
        (r"\btime\.time\(\s*\)", "workflow.time()"),
        (r"\btime\.time_ns\(\s*\)", "workflow.time_ns()"),
        (r"\buuid\.uuid4\(\s*\)", "workflow.uuid4()"),
        (r"\brandom\.(\w+)\(", r"workflow.random().\1("),
    ),
)
CADENCE = Dialect(
    engine="cadence",
    workflow_module="cadence.workflow",
    import_line="from cadence import workflow",
    decorator=r"@(\w+\.)?workflow\b(\()?",
    renames={
        "patch.added": "version.added",
        "patch.deprecated": "version.min_raised",
        "patch.removed": "version.removed",
    },
    decodes=msgspec_decodes,
)
DIALECTS = {d.engine: d for d in (TEMPORAL, CADENCE)}


def dialect(engine: str) -> Dialect:
    return DIALECTS[engine]
