"""Walking Python workflow code in evaluation order: the machinery every Python engine shares.

`FlowWalker` starts at one method and follows calls into `self` methods (and inherited ones,
and `super()`), nested functions and module functions inside the repository. It tracks what a
step depends on: the version gate around it, the conditions it runs under (`guard`), the
statements holding it (for edits), simple aliases (`act = charge`, loops over literal lists,
which it unrolls), and imports made inside functions. An engine subclasses it and says which
calls are commands (`on_call`) and which tests are version gates (`patch_test`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace

from bot.engines.python.pyast import FunctionNode, Module, Project, dotted
from bot.model import Location, NondeterministicCall, PatchGate, Statement

MAX_UNROLL = 32
GUARD_TEXT = 120


@dataclass
class Scope:
    """Names bound inside one function that change what later calls mean."""

    functions: dict[str, FunctionNode] = field(default_factory=dict)
    aliases: dict[str, ast.expr] = field(default_factory=dict)  # x = charge / for x in [a, b]
    imports: dict[str, str] = field(default_factory=dict)  # imports inside the function
    handles: dict[str, str] = field(default_factory=dict)  # variable -> handle kind (engine-defined)
    patch_vars: dict[str, str] = field(default_factory=dict)  # variable -> patch id


@dataclass(frozen=True)
class Ctx:
    module: Module
    cls: tuple[Module, ast.ClassDef] | None
    function: str
    via: tuple[str, ...]
    scope: Scope
    statements: tuple[Statement, ...] = ()
    gate: PatchGate | None = None
    guard: tuple[str, ...] = ()
    in_loop: bool = False

    def guarded(self, text: str, *, loop: bool = False) -> Ctx:
        short = text if len(text) <= GUARD_TEXT else text[: GUARD_TEXT - 1] + "…"
        return replace(self, guard=(*self.guard, short), in_loop=self.in_loop or loop)


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise | ast.Continue | ast.Break)


def _unrollable(node: ast.For | ast.AsyncFor) -> list[ast.expr] | None:
    if (
        isinstance(node, ast.For)
        and isinstance(node.target, ast.Name)
        and isinstance(node.iter, ast.List | ast.Tuple)
    ):
        items = node.iter.elts
        if len(items) <= MAX_UNROLL and all(
            isinstance(e, ast.Name | ast.Attribute | ast.Constant) for e in items
        ):
            return list(items)
    return None


class FlowWalker:
    """Walks workflow code in evaluation order; subclasses record the engine's commands."""

    NONDETERMINISTIC_CALLS: frozenset[str] = frozenset()
    NONDETERMINISTIC_PREFIXES: tuple[str, ...] = ()
    NONDETERMINISTIC_NAMES: frozenset[str] = frozenset()

    def __init__(self, project: Project, instance_patches: dict[str, str] | None = None) -> None:
        self.project = project
        self.hazards: list[NondeterministicCall] = []
        self.instance_patches = instance_patches if instance_patches is not None else {}
        self._active: set[int] = set()

    # --- hooks ----------------------------------------------------------------------------
    def on_call(self, callee: str, node: ast.Call, ctx: Ctx) -> bool:
        """Record `node` if it is a command of the engine; return True when it was handled."""
        return False

    def before_arguments(self, callee: str, node: ast.Call, ctx: Ctx) -> None:
        """Called before a call's arguments are evaluated (for commands issued first)."""

    def on_bind(self, target: str, call: ast.Call, callee: str, ctx: Ctx) -> None:
        """Called for `target = <call>` (target is `x` or `self.x`)."""

    def patch_call(self, test: ast.expr, ctx: Ctx) -> str | None:
        """Return the patch id when `test` is the engine's version-gate call."""
        return None

    # --- helpers --------------------------------------------------------------------------
    @property
    def side(self) -> str:
        return self.project.side

    def resolve(self, ctx: Ctx, expr: ast.expr) -> str | None:
        return self.project.resolve(ctx.module, expr, local=ctx.scope.imports)

    def location(self, node: ast.expr | ast.stmt, ctx: Ctx) -> Location:
        return Location(path=ctx.module.path, line=node.lineno, end_line=node.end_lineno, side=self.side)

    def statements_of(self, node: ast.expr, ctx: Ctx) -> tuple[Statement, ...]:
        if ctx.statements:
            return ctx.statements
        line = Statement(
            line=node.lineno,
            end_line=node.end_lineno or node.lineno,
            indent=node.col_offset,
            function=ctx.function,
        )
        return (line,)

    def substitute(self, ctx: Ctx, ref: ast.expr) -> tuple[Module, ast.expr, bool]:
        """Follow aliases and constants: return (module, expression, resolved?) for `ref`."""
        mod = ctx.module
        for _ in range(8):
            if isinstance(ref, ast.Name):
                if ref.id in ctx.scope.aliases and mod is ctx.module:
                    ref = ctx.scope.aliases[ref.id]
                    continue
                if ref.id in mod.constants:
                    ref = mod.constants[ref.id]
                    continue
                known = ref.id in mod.defs or ref.id in mod.imports or ref.id in ctx.scope.imports
                if not known:
                    star = self.project.from_star(mod, ref.id)
                    if star is None:
                        return mod, ref, False
                qualified = self.resolve(ctx, ref) if mod is ctx.module else self.project.resolve(mod, ref)
                found = self.project.constant(qualified) if qualified else None
                if found is not None:
                    mod, ref = found
                    continue
            elif isinstance(ref, ast.Attribute):
                parts = dotted(ref)
                if parts and parts[0] == "self":
                    return mod, ref, False
            return mod, ref, True
        return mod, ref, False

    def hazard(self, call: str, node: ast.expr, ctx: Ctx) -> None:
        lines = ctx.module.lines()
        text = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
        self.hazards.append(
            NondeterministicCall(call=call, location=self.location(node, ctx), via=ctx.via, text=text)
        )

    # --- entry ----------------------------------------------------------------------------
    def walk_function(self, mod: Module, fn: FunctionNode, ctx: Ctx) -> None:
        if id(fn) in self._active:  # recursion: the first pass already recorded the pattern
            return
        self._active.add(id(fn))
        try:
            self.block(fn.body, replace(ctx, module=mod, function=fn.name, scope=Scope(), statements=()))
        finally:
            self._active.discard(id(fn))

    # --- statements -----------------------------------------------------------------------
    def block(self, body: list[ast.stmt], ctx: Ctx) -> None:
        outer = ctx.statements
        for stmt in body:
            here = Statement(
                line=stmt.lineno,
                end_line=stmt.end_lineno or stmt.lineno,
                indent=stmt.col_offset,
                function=ctx.function,
            )
            after = self.stmt(stmt, replace(ctx, statements=(*outer, here)))
            if after is not None:
                ctx = replace(ctx, gate=after)

    def stmt(self, node: ast.stmt, ctx: Ctx) -> PatchGate | None:
        """Walk one statement; return the gate that applies to the rest of its block, if any."""
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            ctx.scope.functions[node.name] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            self._local_import(node, ctx)
        elif isinstance(node, ast.If):
            return self.if_stmt(node, ctx)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.for_stmt(node, ctx)
        elif isinstance(node, ast.While):
            self.expr(node.test, ctx)
            self.block(node.body, ctx.guarded(f"while {ast.unparse(node.test)}", loop=True))
            self.block(node.orelse, ctx.guarded(f"while-else {ast.unparse(node.test)}"))
        elif isinstance(node, ast.Try | ast.TryStar):
            self.block(node.body, ctx)
            for handler in node.handlers:
                caught = ast.unparse(handler.type) if handler.type else ""
                self.block(handler.body, ctx.guarded(f"except {caught}".strip()))
            self.block(node.orelse, ctx.guarded("try-else"))
            self.block(node.finalbody, ctx)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr, ctx)
            self.block(node.body, ctx)
        elif isinstance(node, ast.Match):
            self.expr(node.subject, ctx)
            for case in node.cases:
                self.block(case.body, ctx.guarded(f"case {ast.unparse(case.pattern)}"))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            if node.value is not None:
                self.expr(node.value, ctx)
                targets: list[ast.expr] = (
                    list(node.targets) if isinstance(node, ast.Assign) else [node.target]
                )
                self._bind(targets, node.value, ctx)
        elif not isinstance(node, ast.ClassDef):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, ctx)
        return None

    def for_stmt(self, node: ast.For | ast.AsyncFor, ctx: Ctx) -> None:
        items = _unrollable(node)
        if items is not None and isinstance(node.target, ast.Name):
            # `for act in [reserve, charge]:` issues the same commands as writing them out.
            for item in items:
                ctx.scope.aliases[node.target.id] = item
                self.block(node.body, ctx)
            return
        self.expr(node.iter, ctx)
        self.block(
            node.body, ctx.guarded(f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}", loop=True)
        )
        self.block(node.orelse, ctx.guarded("for-else"))

    def _local_import(self, node: ast.Import | ast.ImportFrom, ctx: Ctx) -> None:
        probe = Module(path=ctx.module.path, tree=ast.Module(body=[node], type_ignores=[]), text="")
        from bot.engines.python.pyast import bind_statement

        bind_statement(probe, node)
        ctx.scope.imports.update(probe.imports)

    def _bind(self, targets: list[ast.expr], value: ast.expr, ctx: Ctx) -> None:
        inner = value.value if isinstance(value, ast.Await) else value
        for target in targets:
            if isinstance(target, ast.Name):
                name = target.id
                if isinstance(inner, ast.Name | ast.Attribute | ast.Constant):
                    ctx.scope.aliases[name] = inner
                else:
                    ctx.scope.aliases.pop(name, None)
            elif (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                name = f"self.{target.attr}"
            else:
                continue
            if isinstance(inner, ast.Call):
                callee = self.resolve(ctx, inner.func)
                if callee:
                    pid = self.patch_call(inner, ctx)
                    if pid and name.startswith("self."):
                        self.instance_patches[name] = pid
                    elif pid:
                        ctx.scope.patch_vars[name] = pid
                    self.on_bind(name, inner, callee, ctx)

    def gate_test(self, test: ast.expr, ctx: Ctx) -> tuple[str, bool] | None:
        """Return (patch id, positive) when `test` on its own checks a version gate."""
        positive = True
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test, positive = test.operand, False
        pid = self.patch_call(test, ctx)
        if not pid and isinstance(test, ast.Name):
            pid = ctx.scope.patch_vars.get(test.id)
        parts = dotted(test)
        if not pid and parts and len(parts) == 2 and parts[0] == "self":
            pid = self.instance_patches.get(f"self.{parts[1]}")
        return (pid, positive) if pid else None

    def patch_test(self, test: ast.expr, ctx: Ctx) -> tuple[str, bool, bool, str] | None:
        """Return (patch id, positive, exact, other conditions) when `test` checks a version gate."""
        found = self.gate_test(test, ctx)
        if found:
            return found[0], found[1], True, ""
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
            for value in test.values:
                part = self.gate_test(value, ctx)
                if part and part[1]:
                    others = [ast.unparse(v) for v in test.values if v is not value]
                    return part[0], True, False, " and ".join(others)
        return None

    def if_stmt(self, node: ast.If, ctx: Ctx) -> PatchGate | None:
        self.expr(node.test, ctx)  # records the patch marker itself
        found = self.patch_test(node.test, ctx)
        test = ast.unparse(node.test)
        if not found:
            self.block(node.body, ctx.guarded(f"if {test}"))
            self.block(node.orelse, ctx.guarded(f"else of if {test}"))
            return None
        pid, positive, exact, others = found
        new, old = PatchGate(patch_id=pid, branch="new"), PatchGate(patch_id=pid, branch="old")
        body_gate, else_gate = (new, old) if positive else (old, new)
        if not exact:
            self.block(node.body, replace(ctx.guarded(f"if {others}"), gate=new))
            self.block(node.orelse, ctx.guarded(f"else of if {test}"))
            return None
        self.block(node.body, replace(ctx, gate=body_gate))
        self.block(node.orelse, replace(ctx, gate=else_gate))
        if _terminates(node.body) and not node.orelse:
            return else_gate
        if node.orelse and _terminates(node.orelse) and not _terminates(node.body):
            return body_gate
        return None

    # --- expressions ----------------------------------------------------------------------
    def expr(self, node: ast.expr, ctx: Ctx) -> None:
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.Call):
            self.call(node, ctx)
            return
        if isinstance(node, ast.Attribute):
            qualified = self.resolve(ctx, node)
            if qualified in self.NONDETERMINISTIC_NAMES:
                self.hazard(qualified, node, ctx)
                return
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            for gen in node.generators:
                self.expr(gen.iter, ctx)
            text = "; ".join(f"for {ast.unparse(g.target)} in {ast.unparse(g.iter)}" for g in node.generators)
            inner = ctx.guarded(text, loop=True)
            for part in [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]:
                self.expr(part, inner)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, ctx)

    def call(self, node: ast.Call, ctx: Ctx) -> None:
        callee = self.resolve(ctx, node.func)
        if callee:
            self.before_arguments(callee, node, ctx)
        self.expr(node.func, ctx)
        for arg in node.args:
            self.expr(arg, ctx)
        for kw in node.keywords:
            self.expr(kw.value, ctx)
        if self._follow_local(node, ctx):
            return
        # Method calls on call results (`get_handle(...).signal(...)`) have no dotted name.
        if self.on_call(callee or "", node, ctx) or callee is None:
            return
        if callee in self.NONDETERMINISTIC_CALLS or callee.startswith(self.NONDETERMINISTIC_PREFIXES):
            if callee != "open" or "open" not in ctx.module.defs:
                self.hazard(callee, node, ctx)
            return
        self._follow(callee, ctx)

    def _follow_local(self, node: ast.Call, ctx: Ctx) -> bool:
        """Follow nested functions, `self.method()` and `super().method()`; True when handled."""
        func = node.func
        parts = dotted(func)
        if parts and len(parts) == 1 and parts[0] in ctx.scope.functions:
            fn = ctx.scope.functions[parts[0]]
            self.walk_function(ctx.module, fn, replace(ctx, via=(*ctx.via, fn.name)))
            return True
        if parts and parts[0] == "self" and len(parts) == 2 and ctx.cls:
            found = self.project.class_method(ctx.cls[0], ctx.cls[1], parts[1])
            if found:
                self.walk_function(found[0], found[1], replace(ctx, via=(*ctx.via, parts[1])))
            return True
        is_super = (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "super"
        )
        if is_super and ctx.cls and isinstance(func, ast.Attribute):
            found = self.project.class_method(ctx.cls[0], ctx.cls[1], func.attr, skip_self=True)
            if found:
                self.walk_function(found[0], found[1], replace(ctx, via=(*ctx.via, f"super().{func.attr}")))
            return True
        return False

    def _follow(self, callee: str, ctx: Ctx) -> None:
        found = self.project.lookup(callee)
        if not found:
            return
        mod, node, rest = found
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not rest:
            self.walk_function(mod, node, replace(ctx, cls=None, via=(*ctx.via, node.name)))
        elif isinstance(node, ast.ClassDef) and len(rest) == 1:
            method = self.project.class_method(mod, node, rest[0])
            if method:
                self.walk_function(
                    method[0], method[1], replace(ctx, cls=(mod, node), via=(*ctx.via, rest[0]))
                )
