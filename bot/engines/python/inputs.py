"""The shape of the data a workflow receives: fields of the dataclasses and pydantic models its
run method, signal and update handlers and the activities it calls take as parameters.

In-flight executions recorded their inputs (and scheduled activity tasks hold theirs) in the old
shape; the SDK decodes them into the new classes on replay and on the new workers.
"""

from __future__ import annotations

import ast

from bot.engines.python.annotations import normalize_annotation
from bot.engines.python.pyast import FunctionNode, Module, Project, dotted
from bot.model import InputField, InputShape, Location

MAX_DEPTH = 6
DATACLASS_DECORATORS = {"dataclasses.dataclass", "pydantic.dataclasses.dataclass"}
# msgspec's Struct is what cadence-python-client's own converter (msgspec) encodes natively.
MODEL_BASES = {"pydantic.BaseModel", "pydantic.main.BaseModel", "msgspec.Struct"}


def parameter_shapes(project: Project, mod: Module, fn: FunctionNode, handler: str) -> list[InputShape]:
    """Return the shape of each parameter of `fn` whose annotation is a data class in the repository."""
    args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    if args and args[0].arg in ("self", "cls"):
        args = args[1:]
    out: list[InputShape] = []
    for position, arg in enumerate(args):
        if arg.annotation is None:
            continue
        found = data_class(project, mod, arg.annotation)
        if found is None:
            continue
        cls_mod, cls = found
        fields = _fields(project, cls_mod, cls, prefix="", stack=(id(cls),))
        out.append(
            InputShape(
                handler=handler,
                position=position,
                class_name=cls.name,
                fields=tuple(fields),
                closed=_closed(project, cls_mod, cls, 0) is True,
            )
        )
    return out


def _unquoted(expr: ast.expr) -> ast.expr | None:
    """The annotation itself, a string annotation (`"Order"`) parsed; None when it does not parse."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        try:
            return ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            return None
    return expr


def data_class(project: Project, mod: Module, expr: ast.expr) -> tuple[Module, ast.ClassDef] | None:
    """Return the in-repo dataclass or pydantic model an annotation names (also `X | None`, `"X"`)."""
    parsed = _unquoted(expr)
    if parsed is None:
        return None
    expr = parsed
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return data_class(project, mod, expr.left) or data_class(project, mod, expr.right)
    if isinstance(expr, ast.Subscript) and dotted(expr.value) in (["Optional"], ["typing", "Optional"]):
        return data_class(project, mod, expr.slice)
    if dotted(expr) is None:
        return None
    qualified = project.resolve(mod, expr)
    found = project.lookup(qualified) if qualified else None
    if found is None or not isinstance(found[1], ast.ClassDef) or found[2]:
        return None
    cls_mod, cls = found[0], found[1]
    return (cls_mod, cls) if _is_data_class(project, cls_mod, cls, 0) else None


def _is_data_class(project: Project, mod: Module, cls: ast.ClassDef, depth: int) -> bool:
    for dec in cls.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if project.resolve(mod, target) in DATACLASS_DECORATORS:
            return True
    if any(project.resolve(mod, base) in MODEL_BASES for base in cls.bases):
        return True
    return depth < MAX_DEPTH and any(
        _is_data_class(project, bmod, bcls, depth + 1) for bmod, bcls in project.base_classes(mod, cls)
    )


def _fields(
    project: Project, mod: Module, cls: ast.ClassDef, *, prefix: str, stack: tuple[int, ...]
) -> list[InputField]:
    """Return the fields of `cls` (inherited ones first), nested data classes flattened by dotted path."""
    own: dict[str, list[InputField]] = {}
    for bmod, bcls in reversed(project.base_classes(mod, cls)):
        if id(bcls) not in stack and len(stack) < MAX_DEPTH:
            for f in _fields(project, bmod, bcls, prefix=prefix, stack=(*stack, id(bcls))):
                own.setdefault(f.path.removeprefix(prefix).split(".")[0], []).append(f)
    for item in cls.body:
        if not isinstance(item, ast.AnnAssign) or not isinstance(item.target, ast.Name):
            continue
        annotation = _unquoted(item.annotation) or item.annotation
        outer = annotation.value if isinstance(annotation, ast.Subscript) else annotation
        if (dotted(outer) or [""])[-1] in NOT_FIELDS or _not_in_init(item.value):
            continue
        # A pydantic field keeps its wire name in `alias`: renaming the attribute does not change it.
        name = _alias(item.value) or item.target.id
        path = f"{prefix}{name}"
        inner = _element_class(project, mod, item.annotation)
        nested = inner is not None and id(inner[1]) not in stack and len(stack) < MAX_DEPTH
        fields = [
            InputField(
                path=path,
                annotation=normalize_annotation(annotation),
                has_default=_has_default(item.value),
                nested=nested,
                closed=nested and inner is not None and _closed(project, inner[0], inner[1], 0) is True,
                location=Location(path=mod.path, line=item.lineno, side=project.side),
            )
        ]
        if nested and inner is not None:
            fields += _fields(project, inner[0], inner[1], prefix=f"{path}.", stack=(*stack, id(inner[1])))
        own[name] = fields  # a redefinition in a subclass replaces the inherited field
    return [f for group in own.values() for f in group]


NOT_FIELDS = {"ClassVar", "InitVar", "KW_ONLY"}  # not part of what is serialized


def _keyword(value: ast.expr | None, name: str) -> ast.expr | None:
    """The keyword argument `name` of a `field(...)` / `Field(...)` call, if the value is one."""
    if isinstance(value, ast.Call) and (dotted(value.func) or [""])[-1] in ("field", "Field"):
        return next((k.value for k in value.keywords if k.arg == name), None)
    return None


def _not_in_init(value: ast.expr | None) -> bool:
    """`field(init=False)`: computed by the class, never part of the input."""
    init = _keyword(value, "init")
    return isinstance(init, ast.Constant) and init.value is False


def _alias(value: ast.expr | None) -> str | None:
    # pydantic's `Field(alias=...)`, msgspec's `field(name=...)`
    alias = _keyword(value, "alias") or _keyword(value, "name")
    return alias.value if isinstance(alias, ast.Constant) and isinstance(alias.value, str) else None


def _closed(project: Project, mod: Module, cls: ast.ClassDef, depth: int) -> bool | None:
    """Whether a class refuses fields it does not know: pydantic's `extra="forbid"` (class keyword,
    `model_config`, `class Config`), msgspec's `forbid_unknown_fields=True`; inherited. None: not said.

    Data recorded with a field the class no longer has then fails to decode instead of dropping it.
    """
    for kw in cls.keywords:
        if kw.arg in ("extra", "forbid_unknown_fields"):
            return _forbids(kw.value)
    for item in cls.body:
        if isinstance(item, ast.Assign | ast.AnnAssign):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            if any(isinstance(t, ast.Name) and t.id == "model_config" for t in targets):
                extra = _config_extra(item.value)
                if extra is not None:
                    return _forbids(extra)
        elif isinstance(item, ast.ClassDef) and item.name == "Config":
            for setting in item.body:
                if isinstance(setting, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "extra" for t in setting.targets
                ):
                    return _forbids(setting.value)
    if depth >= MAX_DEPTH:
        return None
    for bmod, bcls in project.base_classes(mod, cls):
        found = _closed(project, bmod, bcls, depth + 1)
        if found is not None:
            return found
    return None


def _config_extra(value: ast.expr | None) -> ast.expr | None:
    """The `extra` setting of `ConfigDict(extra=...)` or `{"extra": ...}`."""
    if isinstance(value, ast.Call):
        return next((k.value for k in value.keywords if k.arg == "extra"), None)
    if isinstance(value, ast.Dict):
        for key, item in zip(value.keys, value.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "extra":
                return item
    return None


def _forbids(value: ast.expr) -> bool:
    """`True`, `"forbid"`, `Extra.forbid`."""
    if isinstance(value, ast.Constant):
        return value.value is True or value.value == "forbid"
    return (dotted(value) or [""])[-1] == "forbid"


def _element_class(project: Project, mod: Module, expr: ast.expr) -> tuple[Module, ast.ClassDef] | None:
    """Return the data class a field holds, directly or inside `list[...]`, `X | None`, `dict[str, X]`."""
    parsed = _unquoted(expr)
    if parsed is None:
        return None
    expr = parsed
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return _element_class(project, mod, expr.left) or _element_class(project, mod, expr.right)
    if isinstance(expr, ast.Subscript):
        kind = (dotted(expr.value) or [""])[-1]
        if kind == "Literal":  # its strings are values, not forward references
            return None
        items = list(expr.slice.elts) if isinstance(expr.slice, ast.Tuple) else [expr.slice]
        if kind == "Annotated":
            items = items[:1]
        for item in items:
            found = _element_class(project, mod, item)
            if found is not None:
                return found
        return None
    return data_class(project, mod, expr)


def _has_default(value: ast.expr | None) -> bool:
    """Return whether a field assignment gives a default (`= x`, `field(default=...)`, `Field(...)`)."""
    if value is None:
        return False
    if isinstance(value, ast.Call) and (dotted(value.func) or [""])[-1] in ("field", "Field"):
        names = {kw.arg for kw in value.keywords}
        if names & {"default", "default_factory"}:
            return True
        first = value.args[0] if value.args else None
        # pydantic's Field(...) (Ellipsis) is required
        return first is not None and not (isinstance(first, ast.Constant) and first.value is Ellipsis)
    return True
