"""Walking Python workflow code in evaluation order: the machinery every Python engine shares.

`FlowWalker` starts at one method and follows calls into `self` methods (and inherited ones,
and `super()`), nested functions and module functions inside the repository. It tracks what a
step depends on: the version gate around it, the conditions it runs under (`guard`), the
statements holding it (for edits), simple aliases (`act = charge`, loops over literal lists,
which it unrolls), and imports made inside functions. An engine subclasses it and says which
calls are commands (`on_call`) and which tests are version gates (`patch_test`).

It also tracks what decides whether, how often and in which order a step runs, by value
(`Steer`: loop bounds, thresholds, flags, iteration order, with constants resolved to what
they hold), the early exits an execution can take before a step (`Exit`), every target a
variable may name (`fn = a` / `elif: fn = b`), and which steps share a workflow task (no
await between them: `asyncio.gather`, tasks started before awaiting). Loops and
comprehensions over small literal or constant ranges are unrolled like literal lists.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field, replace

from bot.engines.python.pyast import FunctionNode, Module, Project, dotted
from bot.model import Exit, ExitKind, Location, NondeterministicCall, PatchGate, Role, Statement, Steer

MAX_UNROLL = 32
GUARD_TEXT = 120
MASK = "#"  # a value in a steer's key: what changes by value, not by shape
# Calls whose awaitable arguments start together: their first commands share a workflow task.
SPAWN_CALLS = frozenset(
    {"asyncio.gather", "asyncio.wait", "asyncio.create_task", "asyncio.ensure_future", "asyncio.as_completed"}
)
# The ways to walk a collection backwards; `sorted(x)` keeps its own order.
REVERSERS = frozenset({"reversed"})
# x OP C: does a larger C make the test true for more values of x?
GROWS: dict[type[ast.cmpop], bool] = {ast.Lt: True, ast.LtE: True, ast.Gt: False, ast.GtE: False}
FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.Gt,
    ast.LtE: ast.GtE,
    ast.Gt: ast.Lt,
    ast.GtE: ast.LtE,
}
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
Held = int | float | str | bool  # what a constant can hold


@dataclass
class Scope:
    """Names bound inside one function that change what later calls mean."""

    functions: dict[str, FunctionNode] = field(default_factory=dict)
    aliases: dict[str, ast.expr] = field(default_factory=dict)  # x = charge / for x in [a, b]
    imports: dict[str, str] = field(default_factory=dict)  # imports inside the function
    handles: dict[str, str] = field(default_factory=dict)  # variable -> handle kind (engine-defined)
    patch_vars: dict[str, str] = field(default_factory=dict)  # variable -> patch id
    values: dict[str, Value] = field(default_factory=dict)  # parameter / unrolled item -> constant
    locals: frozenset[str] = frozenset()  # names the function assigns: not module constants
    # variable -> every assignment that may reach a use: `if a: fn = x elif b: fn = y`
    choices: dict[str, list[Choice]] = field(default_factory=dict)


@dataclass(frozen=True)
class Value:
    """A constant an expression holds: its value, the constant's name and where it is written."""

    value: Held
    name: str | None = None
    location: Location | None = None


@dataclass(frozen=True)
class Choice:
    """One assignment of a variable that names a command's target, and the conditions it runs under."""

    expr: ast.expr
    guard: tuple[str, ...]
    templates: tuple[str, ...]
    shapes: tuple[str, ...]
    steers: tuple[Steer, ...]
    line: int
    statements: tuple[Statement, ...]  # the assignment's: a version gate goes around it
    gate: PatchGate | None


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
    templates: tuple[str, ...] = ()  # each guard entry with its values masked
    shapes: tuple[str, ...] = ()  # ... and its local names too: what an exit's test looks like
    guard_lines: tuple[int, ...] = ()  # the line of each guard entry's if / for / while
    steers: tuple[Steer, ...] = ()
    exits: tuple[Exit, ...] = ()
    fn_guard: int = 0  # where the current function's own conditions start in `guard`
    items: tuple[tuple[str, frozenset[str]], ...] = ()  # order steer key -> the loop's variables

    def guarded(
        self,
        text: str,
        *,
        loop: bool = False,
        template: str | None = None,
        shape: str | None = None,
        line: int = 0,
        steers: tuple[Steer, ...] = (),
    ) -> Ctx:
        short = text if len(text) <= GUARD_TEXT else text[: GUARD_TEXT - 1] + "…"
        index = len(self.guard)
        template = template if template is not None else short
        return replace(
            self,
            guard=(*self.guard, short),
            in_loop=self.in_loop or loop,
            templates=(*self.templates, template),
            shapes=(*self.shapes, shape if shape is not None else template),
            guard_lines=(*self.guard_lines, line),
            steers=(*self.steers, *(replace_steer(s, guard_index=index) for s in steers)),
        )


def replace_steer(steer: Steer, **update: object) -> Steer:
    return steer.model_copy(update=update)


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise | ast.Continue | ast.Break)


def iteration_order(node: ast.expr) -> tuple[ast.expr, bool]:
    """Return (the collection, reversed?) of a loop's iterable: `reversed(x)`, `x[::-1]` and
    `sorted(x, reverse=True)` walk `x` (or `sorted(x)`) backwards."""
    backwards = False
    for _ in range(4):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in REVERSERS
            and len(node.args) == 1
        ):
            node, backwards = node.args[0], not backwards
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Slice)
            and node.slice.lower is None
            and node.slice.upper is None
            and isinstance(node.slice.step, ast.UnaryOp)
            and isinstance(node.slice.step.op, ast.USub)
            and isinstance(node.slice.step.operand, ast.Constant)
            and node.slice.step.operand.value == 1
        ):
            node, backwards = node.value, not backwards
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "sorted"
            and any(kw.arg == "reverse" for kw in node.keywords)
        ):
            flag = next(kw.value for kw in node.keywords if kw.arg == "reverse")
            if not (isinstance(flag, ast.Constant) and isinstance(flag.value, bool)):
                break
            kept = [kw for kw in node.keywords if kw.arg != "reverse"]
            node = ast.Call(func=node.func, args=node.args, keywords=kept)
            backwards = backwards != flag.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("list", "tuple")
        ):
            if len(node.args) != 1:
                break
            node = node.args[0]
        else:
            break
    return node, backwards


def _names(node: ast.AST | None) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} if node is not None else set()


def _assigned_names(fn: FunctionNode) -> frozenset[str]:
    """Return the names a function binds (assignments, loop targets, `with ... as`): its locals."""
    out: set[str] = set()
    stack: list[ast.AST] = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        stack.extend(ast.iter_child_nodes(node))
    return frozenset(out)


def _waits(body: list[ast.stmt]) -> bool:
    """Whether a block awaits anything (outside the functions it defines)."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return False


def _leaves(body: list[ast.stmt]) -> bool:
    """Whether a loop body can leave the loop early (`break`, `return`, `raise`): its number of
    iterations then depends on what happens at run time."""
    stack: list[tuple[ast.AST, bool]] = [(stmt, False) for stmt in body]
    while stack:
        node, nested = stack.pop()
        if isinstance(node, ast.Return | ast.Raise) or (isinstance(node, ast.Break) and not nested):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        inner = nested or isinstance(node, ast.For | ast.AsyncFor | ast.While)
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))
    return False


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _arithmetic(op: ast.operator, a: int | float, b: int | float) -> int | float | None:
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b
    if not b:
        return None
    return a // b if isinstance(op, ast.FloorDiv) else a % b


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
        # A `return` in the method the walk starts at ends the run (the run method, not a handler).
        self.run_method = False
        self.batch = 0  # the workflow task the next command is issued in
        self._batches = 0
        self._exits: list[Exit] = []  # exits taken so far whose reach is not over yet
        self._exit_steers: dict[str, tuple[Steer, ...]] = {}
        self._exit_nodes: dict[str, list[int]] = {}
        self._class_constants: dict[tuple[int, str], Value | None] = {}
        self._followed: set[int] = set()  # calls whose function body was walked
        self._try_depth = 0
        self._spawning = False

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

    def ends_run(self, callee: str) -> bool:
        """True when calling `callee` ends the run (the engine's continue-as-new)."""
        return False

    def emitted(self) -> int:
        """Return how many commands were recorded so far."""
        return 0

    def reach(self, since: int, exits: list[Exit]) -> None:
        """Add `exits` to the commands recorded since `since` (a loop's next iteration passes them)."""

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

    # --- values ---------------------------------------------------------------------------
    def constant_of(self, node: ast.expr, ctx: Ctx) -> Value | None:
        """Return the constant `node` holds: a literal, a module constant, a class attribute, a
        parameter's default or constant argument; None when it is decided at run time."""
        if isinstance(node, ast.Constant):
            literal = node.value
            return Value(literal) if isinstance(literal, int | float | str | bool) else None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Not):
            inner = self.constant_of(node.operand, ctx)
            if inner is None:
                return None
            if isinstance(node.op, ast.Not):
                return Value(not inner.value, inner.name, inner.location)
            value = inner.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return Value(-value, inner.name, inner.location)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ARITHMETIC):
            left, right = self.constant_of(node.left, ctx), self.constant_of(node.right, ctx)
            if left is None or right is None:
                return None
            a, b = left.value, right.value
            if isinstance(a, bool | str) or isinstance(b, bool | str):
                return None
            result = _arithmetic(node.op, a, b)
            named = left if left.name else right
            return Value(result, named.name, named.location) if result is not None else None
        if isinstance(node, ast.Name):
            if node.id in ctx.scope.values:
                return ctx.scope.values[node.id]
            if node.id in ctx.scope.locals:
                alias = ctx.scope.aliases.get(node.id)
                # `limit = MAX_PAGES` follows the constant; `attempt = 0` is a counter.
                if isinstance(alias, ast.Name | ast.Attribute) and alias is not node:
                    return self.constant_of(alias, replace(ctx, scope=replace(ctx.scope, locals=frozenset())))
                return None
            return self._module_constant(ctx.module, node.id, ctx.scope.imports, node.id)
        if isinstance(node, ast.Attribute):
            parts = dotted(node)
            if not parts:
                return None
            if parts[0] in ("self", "cls") and len(parts) == 2 and ctx.cls is not None:
                return self._class_constant(ctx.cls[0], ctx.cls[1], parts[1])
            if len(parts) == 2 and ctx.cls is not None and parts[0] == ctx.cls[1].name:
                return self._class_constant(ctx.cls[0], ctx.cls[1], parts[1])
            qualified = self.resolve(ctx, node)
            found = self.project.constant(qualified) if qualified else None
            if found is not None:
                return self._value_in(found[0], found[1], ".".join(parts), 0)
        return None

    def _module_constant(self, mod: Module, name: str, local: dict[str, str], shown: str) -> Value | None:
        if name in mod.constants:
            return self._value_in(mod, mod.constants[name], shown, 0)
        if name in mod.imports or name in local:
            qualified = self.project.resolve(mod, ast.Name(id=name), local=local)
            found = self.project.constant(qualified) if qualified else None
            if found is not None:
                return self._value_in(found[0], found[1], shown, 0)
        return None

    def _value_in(self, mod: Module, expr: ast.expr, shown: str, depth: int) -> Value | None:
        """Return the literal a module-level binding ends at; located where the literal is written."""
        if depth > 8:
            return None
        if isinstance(expr, ast.Constant):
            if not isinstance(expr.value, int | float | str | bool):
                return None
            where = Location(path=mod.path, line=expr.lineno, end_line=expr.end_lineno, side=self.side)
            return Value(expr.value, shown, where)
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub):
            inner = self._value_in(mod, expr.operand, shown, depth + 1)
            value = inner.value if inner is not None else None
            if inner is None or isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return Value(-value, shown, inner.location)
        if isinstance(expr, ast.Name) and expr.id in mod.constants:
            return self._value_in(mod, mod.constants[expr.id], shown, depth + 1)
        if isinstance(expr, ast.Name | ast.Attribute):
            qualified = self.project.resolve(mod, expr)
            found = self.project.constant(qualified) if qualified else None
            if found is not None:
                return self._value_in(found[0], found[1], shown, depth + 1)
        return None

    def _class_constant(self, mod: Module, cls: ast.ClassDef, attr: str) -> Value | None:
        """Return a class attribute's constant (`LIMIT = 50` in the class body, or a base class's),
        unless a method assigns `self.<attr>`."""
        key = (id(cls), attr)
        if key not in self._class_constants:
            self._class_constants[key] = self._find_class_constant(mod, cls, attr)
        return self._class_constants[key]

    def _find_class_constant(self, mod: Module, cls: ast.ClassDef, attr: str) -> Value | None:
        classes: list[tuple[Module, ast.ClassDef]] = [(mod, cls)]
        seen: set[int] = set()
        i = 0
        while i < len(classes):
            cmod, node = classes[i]
            i += 1
            if id(node) in seen:
                continue
            seen.add(id(node))
            for sub in ast.walk(node):
                targets: list[ast.expr] = []
                if isinstance(sub, ast.Assign):
                    targets = list(sub.targets)
                elif isinstance(sub, ast.AugAssign | ast.AnnAssign):
                    targets = [sub.target]
                for t in targets:
                    if (
                        isinstance(t, ast.Attribute)
                        and t.attr == attr
                        and isinstance(t.value, ast.Name)
                        and t.value.id == "self"
                    ):
                        return None
            classes.extend(self.project.base_classes(cmod, node))
        for cmod, node in classes:
            for item in node.body:
                value: ast.expr | None = None
                if isinstance(item, ast.Assign) and len(item.targets) == 1:
                    target = item.targets[0]
                    if isinstance(target, ast.Name) and target.id == attr:
                        value = item.value
                elif (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and item.target.id == attr
                ):
                    value = item.value
                if value is not None:
                    return self._value_in(cmod, value, f"{node.name}.{attr}", 0)
        return None

    def evaluate(self, node: ast.expr, ctx: Ctx) -> tuple[str, str, list[Value]]:
        """Return (value, template, constants) of an expression: constants resolved to what they hold,
        or masked (numbers and named constants), so base and head pair by shape and compare by value."""
        value, template, _, found = self._evaluate(node, ctx)
        return value, template, found

    def shape_of(self, node: ast.expr, ctx: Ctx) -> str:
        """Return an expression with its values and its local names masked (renaming a local keeps it)."""
        return self._evaluate(node, ctx)[2]

    def _evaluate(self, node: ast.expr, ctx: Ctx) -> tuple[str, str, str, list[Value]]:
        found: list[Value] = []
        walker = self
        local = ctx.scope.locals - {"self", "cls"}

        class Resolve(ast.NodeTransformer):
            def __init__(self, mask: bool, locals_too: bool = False) -> None:
                self.mask = mask
                self.locals_too = locals_too

            def _named(self, node: ast.Name | ast.Attribute) -> ast.AST:
                held = walker.constant_of(node, ctx)
                if held is None:
                    if self.locals_too and isinstance(node, ast.Name) and node.id in local:
                        return ast.Name(id="_")
                    return self.generic_visit(node)
                if not self.mask:
                    found.append(held)
                return ast.Name(id=MASK) if self.mask else ast.Constant(value=held.value)

            def visit_Name(self, node: ast.Name) -> ast.AST:
                return self._named(node)

            def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
                return self._named(node)

            def visit_Constant(self, node: ast.Constant) -> ast.AST:
                literal = node.value
                if isinstance(literal, int | float) and not isinstance(literal, bool):
                    if not self.mask:
                        found.append(Value(literal))
                    return ast.Name(id=MASK) if self.mask else node
                return node

            def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
                return node

        value = ast.unparse(Resolve(mask=False).visit(copy.deepcopy(node)))
        template = ast.unparse(Resolve(mask=True).visit(copy.deepcopy(node)))
        shape = ast.unparse(Resolve(mask=True, locals_too=True).visit(copy.deepcopy(node)))
        return value, template, shape, found

    def steer_of(
        self, test: ast.expr, ctx: Ctx, role: Role, *, line: int, prefix: str, invert: bool = False
    ) -> tuple[str, Steer | None]:
        """Return (template, steer) of a condition; a steer only when the test holds a constant."""
        value, template, found = self.evaluate(test, ctx)
        template = f"{prefix}{template}"
        if not found:
            return template, None
        number: float | None = None
        grows: bool | None = None
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in GROWS:
            op = type(test.ops[0])
            left, right = self.constant_of(test.left, ctx), self.constant_of(test.comparators[0], ctx)
            if right is not None and left is None and _number(right.value) is not None:
                number, grows = _number(right.value), GROWS[op]
            elif left is not None and right is None and _number(left.value) is not None:
                number, grows = _number(left.value), GROWS[FLIPPED[op]]
        elif isinstance(test, ast.Name | ast.Attribute) or (
            isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
        ):
            held = self.constant_of(test, ctx)
            if held is not None and isinstance(held.value, bool):  # a flag: True runs the branch
                number, grows = float(held.value), True
        if grows is not None and invert:
            grows = not grows
        named = next((v for v in found if v.location is not None), None)
        where = (
            named.location
            if named and named.location
            else Location(path=ctx.module.path, line=line, side=self.side)
        )
        steer = Steer(
            key=f"{ctx.function}:{template}",
            role=role,
            value=f"{prefix}{value}",
            number=number,
            grows=grows,
            line=line,
            location=where,
            name=named.name if named else None,
        )
        return template, steer

    def range_of(self, node: ast.expr, ctx: Ctx) -> tuple[range, list[Value]] | None:
        """Return the range a `range(...)` call with constant arguments walks, and its constants."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"):
            return None
        if node.keywords or not 1 <= len(node.args) <= 3 or "range" in ctx.module.defs:
            return None
        held = [self.constant_of(a, ctx) for a in node.args]
        found = [h for h in held if h is not None]
        numbers = [h.value for h in found if isinstance(h.value, int) and not isinstance(h.value, bool)]
        if len(numbers) != len(node.args):
            return None
        try:
            return range(*numbers), found
        except ValueError:
            return None

    def loop_steers(
        self, node: ast.For | ast.AsyncFor | ast.comprehension, ctx: Ctx, line: int
    ) -> tuple[str, tuple[Steer, ...], frozenset[str]]:
        """Return (template of the loop header, its steers, the loop variables) of a `for`."""
        target = ast.unparse(node.target)
        collection, backwards = iteration_order(node.iter)
        _, masked, _, _ = self._evaluate(collection, ctx)
        template = f"for {target} in {masked}"
        key = f"{ctx.function}:{template}"
        where = Location(path=ctx.module.path, line=line, side=self.side)
        steers = [
            Steer(
                key=f"{key}:order",
                role="order",
                value="reversed" if backwards else "forward",
                line=line,
                location=where,
            )
        ]
        walked = self.range_of(collection, ctx)
        if walked is not None:
            span, held = walked
            named = next((v for v in held if v.location is not None), None)
            steers.append(
                Steer(
                    key=key,
                    role="loop",
                    value=repr(span),
                    number=float(len(span)),
                    grows=True,
                    line=line,
                    location=named.location if named and named.location else where,
                    name=named.name if named else None,
                )
            )
        return template, tuple(steers), frozenset(_names(node.target))

    def unroll(
        self, node: ast.expr, ctx: Ctx, body: list[ast.stmt] | None = None
    ) -> list[tuple[ast.expr, Value | None]] | None:
        """Return the items of a small literal collection, constant tuple or constant range a loop
        walks (in the order it walks them), each with the constant it is; None when they are not
        known. A constant tuple or range whose loop `body` can leave early is not unrolled: how many
        iterations run is decided at run time (a literal list always was)."""
        collection, backwards = iteration_order(node)
        items: list[tuple[ast.expr, Value | None]] | None = None
        fixed = body is None or not _leaves(body)
        literal = collection if isinstance(collection, ast.List | ast.Tuple) else None
        if literal is None and fixed:
            literal = self._sequence_constant(collection, ctx)
        if literal is not None:
            elts = literal.elts
            if len(elts) <= MAX_UNROLL and all(
                isinstance(e, ast.Name | ast.Attribute | ast.Constant) for e in elts
            ):
                items = [(e, self.constant_of(e, ctx) if isinstance(e, ast.Constant) else None) for e in elts]
        elif fixed:
            walked = self.range_of(collection, ctx)
            if walked is not None and len(walked[0]) <= MAX_UNROLL:
                items = []
                for k in walked[0]:
                    item = ast.Constant(value=k)
                    ast.copy_location(item, collection)
                    items.append((item, Value(k)))
        if items is None:
            return None
        return items[::-1] if backwards else items

    def _sequence_constant(self, node: ast.expr, ctx: Ctx) -> ast.List | ast.Tuple | None:
        """Return the literal tuple or list a module constant of this file (or a class attribute)
        names: `STAGES = (extract, transform, load)`."""
        body: list[ast.stmt] = []
        if isinstance(node, ast.Name) and node.id not in ctx.scope.locals:
            body = ctx.module.tree.body
            name = node.id
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
            and ctx.cls is not None
            and ctx.cls[0] is ctx.module
        ):
            body, name = ctx.cls[1].body, node.attr
        found: ast.List | ast.Tuple | None = None
        for stmt in body:
            targets = (
                stmt.targets
                if isinstance(stmt, ast.Assign)
                else [stmt.target]
                if isinstance(stmt, ast.AnnAssign)
                else []
            )
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
                found = value if isinstance(value, ast.List | ast.Tuple) else None
        return found

    # --- early exits ----------------------------------------------------------------------
    def exit_taken(self, kind: ExitKind, node: ast.stmt | ast.expr, ctx: Ctx) -> None:
        """Record an early exit: the commands after it (and, in a loop, the next iterations) are
        skipped by executions that take it."""
        if ctx.gate is not None or (kind == "raise" and self._try_depth):
            return  # a version gate's branch, or an exception the function may catch itself
        own = slice(ctx.fn_guard, len(ctx.guard))
        test = " / ".join(ctx.guard[own])
        # Paired by what the conditions look like, values and local names masked (renaming a local
        # keeps the exit), and by which such exit of the function it is.
        shape = f"{ctx.function}:{kind}:{' / '.join(ctx.shapes[own])}"
        nth = self._exit_nodes.setdefault(shape, [])
        if id(node) not in nth:
            nth.append(id(node))
        key = f"{shape}#{nth.index(id(node)) + 1}"
        line = ctx.guard_lines[-1] if ctx.guard[own] and ctx.guard_lines[-1] else node.lineno
        # The whole statement that holds it (the `if`), so an outline can gate it.
        end = next((st.end_line for st in ctx.statements if st.line == line), node.end_lineno)
        exit_ = Exit(
            kind=kind,
            key=key,
            test=test,
            location=Location(path=ctx.module.path, line=line, end_line=end, side=self.side),
        )
        role: Role = "ends_loop" if kind == "break" else "skips" if kind == "continue" else "ends_run"
        if kind == "return" and not (self.run_method and len(ctx.via) == 1):
            role = "skips"  # a helper returns to its caller, which goes on
        # The conditions that decide whether the exit is taken (not the loops around it).
        own_steers = [
            s
            for s in ctx.steers
            if s.guard_index is not None and s.guard_index >= ctx.fn_guard and s.role not in ("loop", "order")
        ]
        self._exit_steers[key] = tuple(replace_steer(s, role=role, guard_index=None) for s in own_steers)
        self._exits.append(exit_)

    def with_exits(self, ctx: Ctx, exits: list[Exit]) -> Ctx:
        known = {e.key for e in ctx.exits}
        fresh = []
        for e in exits:
            if e.key not in known:
                known.add(e.key)
                fresh.append(e)
        return replace(ctx, exits=(*ctx.exits, *fresh)) if fresh else ctx

    def exit_steers(self, exits: tuple[Exit, ...]) -> tuple[Steer, ...]:
        return tuple(s for e in exits for s in self._exit_steers.get(e.key, ()))

    def _loop_done(self, mark: int, first: int) -> None:
        """A loop's body was walked: exits that skip the next iterations reach every command of it;
        `break` and `continue` end with the loop."""
        inner = self._exits[mark:]
        self.reach(first, [e for e in inner if e.kind != "continue"])
        self._exits[mark:] = [e for e in inner if e.kind not in ("break", "continue")]

    def _next_batch(self) -> None:
        self._batches += 1
        self.batch = self._batches

    # --- entry ----------------------------------------------------------------------------
    def walk_function(
        self, mod: Module, fn: FunctionNode, ctx: Ctx, call: ast.Call | None = None, caller: Ctx | None = None
    ) -> None:
        if id(fn) in self._active:  # recursion: the first pass already recorded the pattern
            return
        self._active.add(id(fn))
        mark = len(self._exits)
        try:
            params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)}
            scope = Scope(locals=_assigned_names(fn) | params)
            inner = replace(
                ctx, module=mod, function=fn.name, scope=scope, statements=(), fn_guard=len(ctx.guard)
            )
            scope.values.update(self._parameters(fn, inner, call, caller))
            self.block(fn.body, inner)
        finally:
            self._active.discard(id(fn))
            # A return ends this function only: its caller goes on.
            self._exits[mark:] = [e for e in self._exits[mark:] if e.kind != "return"]

    def _parameters(
        self, fn: FunctionNode, ctx: Ctx, call: ast.Call | None, caller: Ctx | None
    ) -> dict[str, Value]:
        """Return the parameters that hold a constant: a constant argument, else a constant default."""
        args = fn.args
        positional = [*args.posonlyargs, *args.args]
        if positional and positional[0].arg in ("self", "cls"):
            positional = positional[1:]
        defaults = dict(
            zip(
                [a.arg for a in positional][len(positional) - len(args.defaults) :],
                args.defaults,
                strict=True,
            )
        )
        defaults.update(
            {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
        )
        passed: dict[str, ast.expr] = {}
        if call is not None:
            if any(isinstance(a, ast.Starred) for a in call.args) or any(
                kw.arg is None for kw in call.keywords
            ):
                return {}
            passed.update({p.arg: a for p, a in zip(positional, call.args, strict=False)})
            passed.update({kw.arg: kw.value for kw in call.keywords if kw.arg})
        out: dict[str, Value] = {}
        for name in [a.arg for a in positional] + [a.arg for a in args.kwonlyargs]:
            if name in passed:
                held = self.constant_of(passed[name], caller) if caller is not None else None
            elif name in defaults:
                held = self.constant_of(defaults[name], ctx)
                if held is not None and held.location is None:
                    default = defaults[name]
                    where = Location(
                        path=ctx.module.path, line=default.lineno, end_line=default.end_lineno, side=self.side
                    )
                    held = Value(held.value, name, where)
            else:
                held = None
            if held is not None:
                out[name] = held
        return out

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
            mark = len(self._exits)
            after = self.stmt(stmt, replace(ctx, statements=(*outer, here)))
            if after is not None:
                ctx = replace(ctx, gate=after)
            if len(self._exits) > mark:  # the rest of the block runs only when no exit was taken
                ctx = self.with_exits(ctx, self._exits[mark:])

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
            text = ast.unparse(node.test)
            template, steer = self.steer_of(node.test, ctx, "loop", line=node.lineno, prefix="while ")
            mark, first = len(self._exits), self.emitted()
            body = ctx.guarded(
                f"while {text}",
                loop=True,
                template=template,
                shape=f"while {self.shape_of(node.test, ctx)}",
                line=node.lineno,
                steers=(steer,) if steer else (),
            )
            self.block(node.body, body)
            self._loop_done(mark, first)
            after = ctx.guarded(
                f"while-else {text}",
                template=f"while-else {template.removeprefix('while ')}",
                line=node.lineno,
            )
            self.block(node.orelse, after)
        elif isinstance(node, ast.Try | ast.TryStar):
            self._try_depth += bool(node.handlers)
            try:
                self.block(node.body, ctx)
            finally:
                self._try_depth -= bool(node.handlers)
            for handler in node.handlers:
                caught = ast.unparse(handler.type) if handler.type else ""
                self.block(handler.body, ctx.guarded(f"except {caught}".strip(), line=handler.lineno))
            self.block(node.orelse, ctx.guarded("try-else", line=node.lineno))
            self.block(node.finalbody, ctx)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr, ctx)
            self.block(node.body, ctx)
        elif isinstance(node, ast.Match):
            self.expr(node.subject, ctx)
            for case in node.cases:
                self.block(
                    case.body, ctx.guarded(f"case {ast.unparse(case.pattern)}", line=case.pattern.lineno)
                )
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
            exits: dict[type[ast.stmt], ExitKind] = {
                ast.Return: "return",
                ast.Raise: "raise",
                ast.Break: "break",
                ast.Continue: "continue",
            }
            if type(node) in exits:
                self.exit_taken(exits[type(node)], node, ctx)
        return None

    def for_stmt(self, node: ast.For | ast.AsyncFor, ctx: Ctx) -> None:
        items = (
            self.unroll(node.iter, ctx, node.body)
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name)
            else None
        )
        if items is not None and isinstance(node.target, ast.Name):
            # `for act in [reserve, charge]:` / `for i in range(1, 4):` issue the same commands as
            # writing them out; the bound and the order stay visible as steers.
            _, steers, _ = self.loop_steers(node, ctx, node.lineno)
            unrolled = replace(ctx, steers=(*ctx.steers, *steers))
            mark, first = len(self._exits), self.emitted()
            for item, held in items:
                ctx.scope.aliases[node.target.id] = item
                if held is not None:
                    ctx.scope.values[node.target.id] = held
                else:
                    ctx.scope.values.pop(node.target.id, None)
                self.block(node.body, unrolled)
                # The next iteration runs only when this one took no exit.
                unrolled = self.with_exits(unrolled, [e for e in self._exits[mark:] if e.kind != "continue"])
            ctx.scope.values.pop(node.target.id, None)
            self._loop_done(mark, first)
            # Without a `break` the else block always runs, after the last iteration.
            self.block(node.orelse, ctx.guarded("for-else", line=node.lineno) if _leaves(node.body) else ctx)
            return
        self.expr(node.iter, ctx)
        template, steers, names = self.loop_steers(node, ctx, node.lineno)
        order = next(s.key for s in steers if s.role == "order")
        body = ctx.guarded(
            f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}",
            loop=True,
            template=template,
            shape=f"for _ in {self.shape_of(iteration_order(node.iter)[0], ctx)}",
            line=node.lineno,
            steers=steers,
        )
        body = replace(body, items=(*body.items, (order, names)))
        mark, first = len(self._exits), self.emitted()
        self.block(node.body, body)
        self._loop_done(mark, first)
        self.block(node.orelse, ctx.guarded("for-else", line=node.lineno))

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
                    self._choose(name, inner, ctx, inner.lineno)
                elif isinstance(inner, ast.IfExp) and all(
                    isinstance(e, ast.Name | ast.Attribute | ast.Constant) for e in (inner.body, inner.orelse)
                ):
                    # `fn = a if x else b`: both are possible targets.
                    test = ast.unparse(inner.test)
                    ctx.scope.aliases[name] = inner.orelse
                    self._choose(name, inner.body, ctx.guarded(f"if {test}", line=inner.lineno), inner.lineno)
                    branch = ctx.guarded(f"else of if {test}", line=inner.lineno)
                    self._choose(name, inner.orelse, branch, inner.lineno, keep=True)
                else:
                    ctx.scope.aliases.pop(name, None)
                    ctx.scope.choices.pop(name, None)
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

    def _choose(self, name: str, value: ast.expr, ctx: Ctx, line: int, *, keep: bool = False) -> None:
        """Record one assignment of `name`; it replaces those it runs on every path of."""
        kept = ctx.scope.choices.get(name, [])
        if not keep:
            # An assignment under conditions G replaces earlier ones made under G or deeper.
            kept = [c for c in kept if c.guard[: len(ctx.guard)] != ctx.guard]
        ctx.scope.choices[name] = [
            *kept,
            Choice(
                expr=value,
                guard=ctx.guard,
                templates=ctx.templates,
                shapes=ctx.shapes,
                steers=ctx.steers,
                line=line,
                statements=ctx.statements,
                gate=ctx.gate,
            ),
        ]

    def alternatives(self, ref: ast.expr | None, ctx: Ctx) -> list[tuple[ast.expr | None, Ctx, int | None]]:
        """Return each target a command's reference may name: (expression, conditions, assignment line).

        `if x: fn = a elif y: fn = b else: fn = c` then `execute_activity(fn)` is three possible
        commands, each under its branch's conditions and located at its assignment.
        """
        if not isinstance(ref, ast.Name):
            return [(ref, ctx, None)]
        choices = ctx.scope.choices.get(ref.id, [])
        if len(choices) < 2:
            return [(ref, ctx, None)]
        out: list[tuple[ast.expr | None, Ctx, int | None]] = []
        for choice in choices:
            shared = 0
            while (
                shared < min(len(choice.guard), len(ctx.guard)) and choice.guard[shared] == ctx.guard[shared]
            ):
                shared += 1
            extra = choice.guard[shared:]
            moved = len(ctx.guard) - shared
            steers = tuple(
                replace_steer(s, guard_index=s.guard_index + moved)
                for s in choice.steers
                if s.guard_index is not None and s.guard_index >= shared
            )
            branch = replace(
                ctx,
                statements=choice.statements or ctx.statements,
                gate=choice.gate or ctx.gate,
                guard=(*ctx.guard, *extra),
                templates=(*ctx.templates, *choice.templates[shared:]),
                shapes=(*ctx.shapes, *choice.shapes[shared:]),
                guard_lines=(*ctx.guard_lines, *([choice.line] * len(extra))),
                steers=(*ctx.steers, *steers),
            )
            out.append((choice.expr, branch, choice.line))
        return out

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

    def branch_role(self, body: list[ast.stmt], ctx: Ctx) -> Role:
        """Return what taking a branch does to the rest of the run: ends it, ends the loop, skips
        the iteration, or only runs the branch's own commands."""
        last = body[-1] if body else None
        if isinstance(last, ast.Break):
            return "ends_loop"
        if isinstance(last, ast.Continue):
            return "skips"
        if _waits(body):
            return "branch"  # an execution can be in flight inside it, past commands it issued
        if isinstance(last, ast.Raise):
            return "ends_run"
        if isinstance(last, ast.Return) and self.run_method and len(ctx.via) == 1:
            return "ends_run"
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    callee = self.resolve(ctx, node.func)
                    if callee and self.ends_run(callee):
                        return "ends_run"
        return "branch"

    def if_stmt(self, node: ast.If, ctx: Ctx) -> PatchGate | None:
        self.expr(node.test, ctx)  # records the patch marker itself
        found = self.patch_test(node.test, ctx)
        test = ast.unparse(node.test)
        if not found:
            # The commands of a branch that ends the run are its last: no execution in flight issued them.
            role: Role = "ends_run" if self.branch_role(node.body, ctx) == "ends_run" else "branch"
            other_role: Role = "ends_run" if self.branch_role(node.orelse, ctx) == "ends_run" else "branch"
            template, steer = self.steer_of(node.test, ctx, role, line=node.lineno, prefix="if ")
            _, other = self.steer_of(
                node.test, ctx, other_role, line=node.lineno, prefix="else of if ", invert=True
            )
            shape = self.shape_of(node.test, ctx)
            self.block(
                node.body,
                ctx.guarded(
                    f"if {test}",
                    template=template,
                    shape=f"if {shape}",
                    line=node.lineno,
                    steers=(steer,) if steer else (),
                ),
            )
            self.block(
                node.orelse,
                ctx.guarded(
                    f"else of if {test}",
                    template=f"else of {template}",
                    shape=f"else of if {shape}",
                    line=node.lineno,
                    steers=(other,) if other else (),
                ),
            )
            return None
        pid, positive, exact, others = found
        new, old = PatchGate(patch_id=pid, branch="new"), PatchGate(patch_id=pid, branch="old")
        body_gate, else_gate = (new, old) if positive else (old, new)
        if not exact:
            self.block(node.body, replace(ctx.guarded(f"if {others}", line=node.lineno), gate=new))
            self.block(node.orelse, ctx.guarded(f"else of if {test}", line=node.lineno))
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
        if isinstance(node, ast.Await):
            self.expr(node.value, ctx)
            # Awaiting a command (or anything the workflow waits on) ends the workflow task; awaiting
            # a helper coroutine does only where the helper itself waits.
            if not (isinstance(node.value, ast.Call) and id(node.value) in self._followed):
                self._next_batch()
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
            self.comprehension(node, ctx)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, ctx)

    def comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, ctx: Ctx
    ) -> None:
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        gen = node.generators[0]
        items = (
            self.unroll(gen.iter, ctx)
            if len(node.generators) == 1 and not gen.ifs and isinstance(gen.target, ast.Name)
            else None
        )
        if items is not None and isinstance(gen.target, ast.Name):
            # `[charge(i) for i in range(1, 6)]` issues what `charge(1), ..., charge(5)` does.
            _, steers, _ = self.loop_steers(gen, ctx, gen.iter.lineno)
            inner = replace(ctx, steers=(*ctx.steers, *steers))
            spawning, start = self._spawning, self.batch
            self._spawning = False
            last = self.batch
            name = gen.target.id
            # The comprehension's variable is its own: the function's binding of the name comes back.
            outer_alias, outer_value = ctx.scope.aliases.get(name), ctx.scope.values.get(name)
            for item, held in items:
                ctx.scope.aliases[name] = item
                if held is not None:
                    ctx.scope.values[name] = held
                else:
                    ctx.scope.values.pop(name, None)
                if spawning:  # each element is a task of the gather: they start together
                    self.batch = start
                for part in parts:
                    self.expr(part, inner)
                last = max(last, self.batch)
            ctx.scope.aliases.pop(name, None)
            ctx.scope.values.pop(name, None)
            if outer_alias is not None:
                ctx.scope.aliases[name] = outer_alias
            if outer_value is not None:
                ctx.scope.values[name] = outer_value
            self.batch = start if spawning else last
            self._spawning = spawning
            return
        for g in node.generators:
            self.expr(g.iter, ctx)
        text = "; ".join(f"for {ast.unparse(g.target)} in {ast.unparse(g.iter)}" for g in node.generators)
        template_parts: list[str] = []
        steers_all: list[Steer] = []
        names_all: list[tuple[str, frozenset[str]]] = []
        for g in node.generators:
            template, steers, names = self.loop_steers(g, ctx, g.iter.lineno)
            template_parts.append(template)
            steers_all.extend(steers)
            names_all.append((next(s.key for s in steers if s.role == "order"), names))
        inner = ctx.guarded(
            text, loop=True, template="; ".join(template_parts), line=node.lineno, steers=tuple(steers_all)
        )
        inner = replace(inner, items=(*inner.items, *names_all))
        for part in parts:
            self.expr(part, inner)

    def call(self, node: ast.Call, ctx: Ctx) -> None:
        callee = self.resolve(ctx, node.func)
        if callee:
            self.before_arguments(callee, node, ctx)
        self.expr(node.func, ctx)
        spawn = callee in SPAWN_CALLS
        start, outer = self.batch, self._spawning
        for arg in [*node.args, *(kw.value for kw in node.keywords)]:
            if spawn:  # each awaitable passed runs as its own task: they start together
                self.batch = start
            self._spawning = spawn
            self.expr(arg, ctx)
        self._spawning = outer
        if spawn:
            self.batch = start
        if self._follow_local(node, ctx):
            return
        # Method calls on call results (`get_handle(...).signal(...)`) have no dotted name.
        if self.on_call(callee or "", node, ctx) or callee is None:
            return
        if callee in self.NONDETERMINISTIC_CALLS or callee.startswith(self.NONDETERMINISTIC_PREFIXES):
            if callee != "open" or "open" not in ctx.module.defs:
                self.hazard(callee, node, ctx)
            return
        if self._follow(callee, ctx, node):
            self._followed.add(id(node))

    def _follow_local(self, node: ast.Call, ctx: Ctx) -> bool:
        """Follow nested functions, `self.method()` and `super().method()`; True when handled."""
        func = node.func
        parts = dotted(func)
        if parts and len(parts) == 1 and parts[0] in ctx.scope.functions:
            fn = ctx.scope.functions[parts[0]]
            self.walk_function(ctx.module, fn, replace(ctx, via=(*ctx.via, fn.name)), node, ctx)
            self._followed.add(id(node))
            return True
        if parts and parts[0] == "self" and len(parts) == 2 and ctx.cls:
            found = self.project.class_method(ctx.cls[0], ctx.cls[1], parts[1])
            if found:
                self.walk_function(found[0], found[1], replace(ctx, via=(*ctx.via, parts[1])), node, ctx)
                self._followed.add(id(node))
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
                self.walk_function(
                    found[0], found[1], replace(ctx, via=(*ctx.via, f"super().{func.attr}")), node, ctx
                )
                self._followed.add(id(node))
            return True
        return False

    def _follow(self, callee: str, ctx: Ctx, call: ast.Call | None = None) -> bool:
        found = self.project.lookup(callee)
        if not found:
            return False
        mod, node, rest = found
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not rest:
            self.walk_function(mod, node, replace(ctx, cls=None, via=(*ctx.via, node.name)), call, ctx)
            return True
        if isinstance(node, ast.ClassDef) and len(rest) == 1:
            method = self.project.class_method(mod, node, rest[0])
            if method:
                self.walk_function(
                    method[0], method[1], replace(ctx, cls=(mod, node), via=(*ctx.via, rest[0])), call, ctx
                )
                return True
        return False
