"""Type annotations spelled one way, so modernising type hints is not a signature change."""

from __future__ import annotations

import ast

_TYPING_BUILTINS = {
    "List": "list",
    "Dict": "dict",
    "Tuple": "tuple",
    "Set": "set",
    "FrozenSet": "frozenset",
    "Type": "type",
    "Sequence": "collections.abc.Sequence",
    "Mapping": "collections.abc.Mapping",
}


class _Normalize(ast.NodeTransformer):
    """Spell equivalent annotations one way: List[int] → list[int], Optional[X] → X | None."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        if isinstance(node.value, ast.Name) and node.value.id in ("typing", "t"):
            return self.visit(ast.Name(id=node.attr, ctx=ast.Load()))  # type: ignore[no-any-return]
        return node

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return ast.Name(id=_TYPING_BUILTINS.get(node.id, node.id), ctx=ast.Load())

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        base = self.visit(node.value)
        inner = self.visit(node.slice)
        if isinstance(base, ast.Name) and base.id in ("Optional", "Union"):
            members = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            if base.id == "Optional":
                members = [*members, ast.Constant(value=None)]
            return _union(members)
        return ast.Subscript(value=base, slice=inner, ctx=ast.Load())

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        if isinstance(node.op, ast.BitOr):
            return _union([self.visit(node.left), self.visit(node.right)])
        return node


def _union(members: list[ast.expr]) -> ast.expr:
    flat: list[ast.expr] = []
    for m in members:
        flat += _union_members(m)
    unique = sorted({ast.unparse(m): m for m in flat}.items())
    out: ast.expr = unique[0][1]
    for _, m in unique[1:]:
        out = ast.BinOp(left=out, op=ast.BitOr(), right=m)
    return out


def _union_members(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_members(node.left) + _union_members(node.right)
    return [node]


def normalize_annotation(node: ast.expr) -> str:
    """Return one spelling for equivalent annotations, so modernising type hints stays quiet."""
    try:
        return ast.unparse(_Normalize().visit(ast.parse(ast.unparse(node), mode="eval").body))
    except (SyntaxError, ValueError, IndexError):
        return ast.unparse(node)
