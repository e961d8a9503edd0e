"""Temporal Python workflows, statically: which commands each one issues, in what order.

The walk starts at the `@workflow.run` method (and each signal/update handler), follows
calls into `self` methods, module functions and nested functions inside the repository,
and records every history-producing call with the version gate it sits behind.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace

from bot.engines.pyast import DefNode, FunctionNode, Module, Project, SourceError, dotted
from bot.model import (
    Command,
    CommandKind,
    Handler,
    Location,
    NondeterministicCall,
    Parameter,
    PatchGate,
    Statement,
    WorkflowModel,
)

WF = "temporalio.workflow"
ACT = "temporalio.activity"

# The function, method and class forms all take the activity as their first argument.
ACTIVITY_CALLS: dict[str, CommandKind] = {}
for _verb in ("execute", "start"):
    for _form in ("", "_method", "_class"):
        ACTIVITY_CALLS[f"{WF}.{_verb}_activity{_form}"] = CommandKind.ACTIVITY
        ACTIVITY_CALLS[f"{WF}.{_verb}_local_activity{_form}"] = CommandKind.LOCAL_ACTIVITY
CHILD_CALLS = {f"{WF}.execute_child_workflow", f"{WF}.start_child_workflow"}
TIMER_CALLS = {f"{WF}.sleep", "asyncio.sleep"}
EXTERNAL_HANDLE_CALLS = {f"{WF}.get_external_workflow_handle", f"{WF}.get_external_workflow_handle_for"}
HANDLER_SETTERS = {
    f"{WF}.set_signal_handler": "signal",
    f"{WF}.set_query_handler": "query",
    f"{WF}.set_update_handler": "update",
}

NONDETERMINISTIC_CALLS = {
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.datetime.today",
    "datetime.date.today",
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.monotonic_ns",
    "time.perf_counter",
    "time.perf_counter_ns",
    "time.sleep",
    "uuid.uuid1",
    "uuid.uuid4",
    "os.getenv",
    "os.urandom",
    "os.environ.get",
    "open",
}
NONDETERMINISTIC_PREFIXES = (
    "random.",
    "secrets.",
    "requests.",
    "httpx.",
    "aiohttp.",
    "urllib.request.",
    "socket.",
    "threading.",
    "subprocess.",
)
NONDETERMINISTIC_NAMES = {"os.environ"}


def _const_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _kwarg(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _decorator_call(project: Project, mod: Module, node: DefNode, qualified: str) -> ast.Call | bool:
    """Return the decorator call (or True for a bare decorator) matching `qualified`, else False."""
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if project.resolve(mod, target) == qualified:
            return dec if isinstance(dec, ast.Call) else True
    return False


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise | ast.Continue | ast.Break)


@dataclass
class Scope:
    """Names bound inside one function that change what later calls mean."""

    functions: dict[str, FunctionNode] = field(default_factory=dict)
    handles: dict[str, str] = field(default_factory=dict)  # variable -> "external" | "child"
    patch_vars: dict[str, str] = field(default_factory=dict)  # variable -> patch id


@dataclass(frozen=True)
class Ctx:
    module: Module
    cls: tuple[Module, ast.ClassDef] | None
    function: str
    via: tuple[str, ...]
    scope: Scope
    statement: Statement | None = None
    gate: PatchGate | None = None
    conditional: bool = False
    in_loop: bool = False


class FlowWalker:
    """Walks workflow code in evaluation order and records commands and hazards."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.commands: list[Command] = []
        self.nondeterminism: list[NondeterministicCall] = []
        self.handlers: list[Handler] = []
        self._active: set[int] = set()

    # --- entry ------------------------------------------------------------------------
    def walk_function(self, mod: Module, fn: FunctionNode, ctx: Ctx) -> None:
        if id(fn) in self._active:  # recursion: the first pass already recorded the pattern
            return
        self._active.add(id(fn))
        try:
            self.block(fn.body, replace(ctx, module=mod, function=fn.name, scope=Scope()))
        finally:
            self._active.discard(id(fn))

    # --- statements ----------------------------------------------------------------------
    def block(self, body: list[ast.stmt], ctx: Ctx) -> None:
        for stmt in body:
            here = Statement(
                line=stmt.lineno,
                end_line=stmt.end_lineno or stmt.lineno,
                indent=stmt.col_offset,
                function=ctx.function,
            )
            after = self.stmt(stmt, replace(ctx, statement=here))
            if after is not None:
                ctx = replace(ctx, gate=after)

    def stmt(self, node: ast.stmt, ctx: Ctx) -> PatchGate | None:
        """Walk one statement; return the gate that applies to the rest of its block, if any."""
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            ctx.scope.functions[node.name] = node
            return None
        if isinstance(node, ast.ClassDef):
            return None
        if isinstance(node, ast.If):
            return self.if_stmt(node, ctx)
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            if isinstance(node, ast.While):
                self.expr(node.test, ctx)
            else:
                self.expr(node.iter, ctx)
            self.block(node.body, replace(ctx, in_loop=True))
            self.block(node.orelse, replace(ctx, conditional=True))
            return None
        if isinstance(node, ast.Try | ast.TryStar):
            self.block(node.body, ctx)
            for handler in node.handlers:
                self.block(handler.body, replace(ctx, conditional=True))
            self.block(node.orelse, ctx)
            self.block(node.finalbody, ctx)
            return None
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr, ctx)
            self.block(node.body, ctx)
            return None
        if isinstance(node, ast.Match):
            self.expr(node.subject, ctx)
            for case in node.cases:
                self.block(case.body, replace(ctx, conditional=True))
            return None
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            value = node.value
            if value is not None:
                self.expr(value, ctx)
                targets: list[ast.expr] = (
                    list(node.targets) if isinstance(node, ast.Assign) else [node.target]
                )
                self._bind(targets, value, ctx)
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, ctx)
        return None

    def _bind(self, targets: list[ast.expr], value: ast.expr, ctx: Ctx) -> None:
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            return
        inner = value.value if isinstance(value, ast.Await) else value
        if not isinstance(inner, ast.Call):
            return
        callee = self.project.resolve(ctx.module, inner.func)
        for name in names:
            if callee in EXTERNAL_HANDLE_CALLS:
                ctx.scope.handles[name] = "external"
            elif callee == f"{WF}.start_child_workflow":
                ctx.scope.handles[name] = "child"
            elif callee == f"{WF}.patched" and _const_str(inner.args[0] if inner.args else None):
                ctx.scope.patch_vars[name] = str(_const_str(inner.args[0]))

    def _patch_test(self, test: ast.expr, ctx: Ctx) -> tuple[str, bool, bool] | None:
        """Return (patch id, positive, exact) when `test` is a `patched()` check."""
        positive = True
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test, positive = test.operand, False
        if isinstance(test, ast.Call) and self.project.resolve(ctx.module, test.func) == f"{WF}.patched":
            pid = _const_str(test.args[0] if test.args else None)
            return (pid, positive, True) if pid else None
        if isinstance(test, ast.Name) and test.id in ctx.scope.patch_vars:
            return ctx.scope.patch_vars[test.id], positive, True
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) and positive:
            for value in test.values:
                found = self._patch_test(value, ctx)
                if found and found[1]:
                    return found[0], True, False
        return None

    def if_stmt(self, node: ast.If, ctx: Ctx) -> PatchGate | None:
        self.expr(node.test, ctx)  # records the patch marker itself
        found = self._patch_test(node.test, ctx)
        if not found:
            self.block(node.body, replace(ctx, conditional=True))
            self.block(node.orelse, replace(ctx, conditional=True))
            return None
        pid, positive, exact = found
        new, old = PatchGate(patch_id=pid, branch="new"), PatchGate(patch_id=pid, branch="old")
        body_gate, else_gate = (new, old) if positive else (old, new)
        if not exact:
            self.block(node.body, replace(ctx, gate=new, conditional=True))
            self.block(node.orelse, replace(ctx, conditional=True))
            return None
        self.block(node.body, replace(ctx, gate=body_gate))
        self.block(node.orelse, replace(ctx, gate=else_gate))
        if _terminates(node.body) and not node.orelse:
            return else_gate
        if node.orelse and _terminates(node.orelse) and not _terminates(node.body):
            return body_gate
        return None

    # --- expressions ---------------------------------------------------------------------
    def expr(self, node: ast.expr, ctx: Ctx) -> None:
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.Call):
            self.call(node, ctx)
            return
        if isinstance(node, ast.Attribute):
            qualified = self.project.resolve(ctx.module, node)
            if qualified in NONDETERMINISTIC_NAMES:
                self._hazard(qualified, node, ctx)
                return
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            for gen in node.generators:
                self.expr(gen.iter, replace(ctx, in_loop=True))
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for part in parts:
                self.expr(part, replace(ctx, in_loop=True))
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, ctx)

    def call(self, node: ast.Call, ctx: Ctx) -> None:
        self.expr(node.func, ctx)
        for arg in node.args:
            self.expr(arg, ctx)
        for kw in node.keywords:
            self.expr(kw.value, ctx)
        parts = dotted(node.func)
        if parts and parts[0] in ctx.scope.functions and len(parts) == 1:
            fn = ctx.scope.functions[parts[0]]
            self.walk_function(ctx.module, fn, replace(ctx, via=(*ctx.via, fn.name)))
            return
        if parts and parts[0] == "self" and len(parts) == 2 and ctx.cls:
            found = self.project.class_method(ctx.cls[0], ctx.cls[1], parts[1])
            if found:
                self.walk_function(found[0], found[1], replace(ctx, via=(*ctx.via, parts[1])))
            return
        if self._handle_call(node, ctx):
            return
        callee = self.project.resolve(ctx.module, node.func)
        if callee is None:
            return
        if self._command(callee, node, ctx):
            return
        if callee in NONDETERMINISTIC_CALLS or callee.startswith(NONDETERMINISTIC_PREFIXES):
            if callee != "open" or "open" not in ctx.module.defs:
                self._hazard(callee, node, ctx)
            return
        self._follow(callee, ctx)

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

    def _handle_call(self, node: ast.Call, ctx: Ctx) -> bool:
        """Record `.signal()` / `.cancel()` on an external or child workflow handle."""
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in ("signal", "cancel"):
            return False
        target = func.value
        is_handle = isinstance(target, ast.Name) and target.id in ctx.scope.handles
        if isinstance(target, ast.Call):
            is_handle = self.project.resolve(ctx.module, target.func) in EXTERNAL_HANDLE_CALLS
        if not is_handle:
            return False
        if func.attr == "cancel":
            self._emit(CommandKind.CANCEL_EXTERNAL, "cancel", node, ctx)
        else:
            first = node.args[0] if node.args else None
            parts = dotted(first) if first is not None else None
            name = _const_str(first) or (parts[-1] if parts else "?")
            self._emit(CommandKind.SIGNAL_EXTERNAL, name, node, ctx)
        return True

    def _command(self, callee: str, node: ast.Call, ctx: Ctx) -> bool:
        first = node.args[0] if node.args else None
        if callee in ACTIVITY_CALLS:
            self._emit(
                ACTIVITY_CALLS[callee],
                activity_name(self.project, ctx.module, first),
                node,
                ctx,
                options=True,
            )
        elif callee in CHILD_CALLS:
            self._emit(
                CommandKind.CHILD_WORKFLOW,
                child_name(self.project, ctx.module, first),
                node,
                ctx,
                options=True,
            )
        elif callee in TIMER_CALLS:
            duration = first if first is not None else _kwarg(node, "duration")
            opts = {"duration": ast.unparse(duration)} if duration is not None else {}
            self._emit(CommandKind.TIMER, "timer", node, ctx, extra=opts)
        elif callee == f"{WF}.wait_condition":
            timeout = _kwarg(node, "timeout") or (node.args[1] if len(node.args) > 1 else None)
            if timeout is not None and not (isinstance(timeout, ast.Constant) and timeout.value is None):
                extra = {"timeout": ast.unparse(timeout)}
                self._emit(CommandKind.WAIT_CONDITION_TIMER, "wait_condition", node, ctx, extra=extra)
        elif callee == f"{WF}.continue_as_new":
            self._emit(CommandKind.CONTINUE_AS_NEW, "continue_as_new", node, ctx, options=True)
        elif callee == f"{WF}.upsert_memo":
            self._emit(CommandKind.UPSERT_MEMO, "memo", node, ctx)
        elif callee == f"{WF}.upsert_search_attributes":
            self._emit(CommandKind.UPSERT_SEARCH_ATTRIBUTES, "search_attributes", node, ctx)
        elif callee in (f"{WF}.patched", f"{WF}.deprecate_patch"):
            pid = _const_str(first)
            if pid:
                kind = CommandKind.PATCH if callee.endswith(".patched") else CommandKind.DEPRECATE_PATCH
                self._emit(kind, pid, node, ctx)
        elif callee in HANDLER_SETTERS:
            name = _const_str(first)
            if name:
                loc = Location(path=ctx.module.path, line=node.lineno, side=self._side)
                self.handlers.append(Handler(kind=HANDLER_SETTERS[callee], name=name, location=loc))
        else:
            return callee.startswith(f"{WF}.")
        return True

    @property
    def _side(self) -> str:
        return self.project.side

    def _location(self, node: ast.expr, ctx: Ctx) -> Location:
        return Location(
            path=ctx.module.path,
            line=node.lineno,
            end_line=node.end_lineno,
            side=self._side,
        )

    def _emit(
        self,
        kind: CommandKind,
        name: str,
        node: ast.Call,
        ctx: Ctx,
        *,
        options: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        opts: dict[str, str] = dict(extra or {})
        if options:
            # Keyword options only: positional arguments are values, not replayed, and renaming
            # the local variable they come from must stay quiet.
            for kw in node.keywords:
                opts[kw.arg or "**"] = ast.unparse(kw.value)
        statement = ctx.statement or Statement(
            line=node.lineno,
            end_line=node.end_lineno or node.lineno,
            indent=node.col_offset,
            function=ctx.function,
        )
        self.commands.append(
            Command(
                kind=kind,
                name=name,
                location=self._location(node, ctx),
                statement=statement,
                gate=ctx.gate,
                via=ctx.via,
                options=opts,
                conditional=ctx.conditional,
                in_loop=ctx.in_loop,
            )
        )

    def _hazard(self, call: str, node: ast.expr, ctx: Ctx) -> None:
        self.nondeterminism.append(
            NondeterministicCall(call=call, location=self._location(node, ctx), via=ctx.via)
        )


def _defined_name(project: Project, mod: Module, node: DefNode, decorator: str) -> str | None:
    dec = _decorator_call(project, mod, node, decorator)
    if isinstance(dec, ast.Call):
        return _const_str(_kwarg(dec, "name")) or (_const_str(dec.args[0]) if dec.args else None)
    return None


def activity_name(project: Project, mod: Module, ref: ast.expr | None) -> str:
    """Return the activity type a call schedules: `name=` of its `@activity.defn`, else its name."""
    if ref is None:
        return "?"
    literal = _const_str(ref)
    if literal is not None:
        return literal
    parts = dotted(ref)
    if not parts:
        return "<dynamic>"
    qualified = project.resolve(mod, ref)
    found = project.lookup(qualified) if qualified else None
    if found:
        def_mod, node, rest = found
        if isinstance(node, ast.ClassDef):
            method_name = rest[0] if rest else "__call__"
            method = project.class_method(def_mod, node, method_name)
            if method:
                named = _defined_name(project, method[0], method[1], f"{ACT}.defn")
                if named:
                    return named
            return method_name if rest else node.name
        named = _defined_name(project, def_mod, node, f"{ACT}.defn")
        if named:
            return named
    return parts[-1]


def child_name(project: Project, mod: Module, ref: ast.expr | None) -> str:
    """Return the workflow type a child-workflow call starts."""
    if ref is None:
        return "?"
    literal = _const_str(ref)
    if literal is not None:
        return literal
    parts = dotted(ref)
    if not parts:
        return "<dynamic>"
    qualified = project.resolve(mod, ref)
    found = project.lookup(qualified) if qualified else None
    if found and isinstance(found[1], ast.ClassDef):
        named = _defined_name(project, found[0], found[1], f"{WF}.defn")
        return named or found[1].name
    return parts[-2] if len(parts) >= 2 and parts[-1] == "run" else parts[-1]


def _parameters(fn: FunctionNode) -> tuple[tuple[Parameter, ...], str | None]:
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    defaults_from = len(positional) - len(args.defaults)
    params: list[Parameter] = []
    for i, arg in enumerate(positional):
        if i == 0 and arg.arg in ("self", "cls"):
            continue
        ann = ast.unparse(arg.annotation) if arg.annotation else None
        params.append(Parameter(name=arg.arg, annotation=ann, has_default=i >= defaults_from))
    if args.vararg:
        params.append(Parameter(name=f"*{args.vararg.arg}", has_default=True))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        ann = ast.unparse(arg.annotation) if arg.annotation else None
        params.append(Parameter(name=arg.arg, annotation=ann, has_default=default is not None))
    returns = ast.unparse(fn.returns) if fn.returns else None
    return tuple(params), returns


def workflow_classes(project: Project, mod: Module) -> list[ast.ClassDef]:
    """Return the `@workflow.defn` classes defined at the top level of `mod`."""
    return [
        node
        for node in mod.tree.body
        if isinstance(node, ast.ClassDef) and _decorator_call(project, mod, node, f"{WF}.defn")
    ]


def extract_workflow(project: Project, mod: Module, cls: ast.ClassDef) -> WorkflowModel:
    """Return the normalized model of one `@workflow.defn` class."""
    dec = _decorator_call(project, mod, cls, f"{WF}.defn")
    name, dynamic, behavior = cls.name, False, None
    if isinstance(dec, ast.Call):
        name = _const_str(_kwarg(dec, "name")) or name
        dyn = _kwarg(dec, "dynamic")
        dynamic = isinstance(dyn, ast.Constant) and dyn.value is True
        vb = _kwarg(dec, "versioning_behavior")
        if vb is not None:
            parts = dotted(vb)
            behavior = parts[-1] if parts else ast.unparse(vb)
    if dynamic:
        name = "<dynamic>"

    sequences: dict[str, tuple[Command, ...]] = {}
    hazards: list[NondeterministicCall] = []
    handlers: list[Handler] = []
    parameters: tuple[Parameter, ...] = ()
    returns: str | None = None
    run_location: Location | None = None
    hits_before = len(project.error_hits)
    methods = _workflow_methods(project, mod, cls)
    for role, handler_name, method_mod, method in methods:
        walker = FlowWalker(project)
        ctx = Ctx(module=method_mod, cls=(mod, cls), function=method.name, via=(method.name,), scope=Scope())
        walker.walk_function(method_mod, method, ctx)
        hazards.extend(walker.nondeterminism)
        handlers.extend(walker.handlers)
        if role == "run":
            parameters, returns = _parameters(method)
            run_location = Location(path=method_mod.path, line=method.lineno, side=project.side)
            sequences["run"] = tuple(walker.commands)
        elif role in ("signal", "update", "query"):
            loc = Location(
                path=method_mod.path,
                line=_first_line(method),
                end_line=method.end_lineno,
                side=project.side,
            )
            handlers.append(Handler(kind=role, name=handler_name, location=loc))
            if walker.commands and role != "query":
                sequences[f"{role}:{handler_name}"] = tuple(walker.commands)
    unique_hazards = {(h.call, h.location.path, h.location.line): h for h in hazards}
    return WorkflowModel(
        engine="temporal",
        id=name,
        class_name=cls.name,
        path=mod.path,
        location=Location(path=mod.path, line=cls.lineno, end_line=cls.end_lineno, side=project.side),
        dynamic=dynamic,
        versioning_behavior=behavior,
        parameters=parameters,
        return_annotation=returns,
        handlers=tuple(sorted(handlers, key=lambda h: (h.kind, h.name))),
        sequences=sequences,
        nondeterminism=tuple(unique_hazards.values()),
        source_span=(_first_line(cls), cls.end_lineno or cls.lineno),
        run_location=run_location,
        unreadable=tuple(sorted(set(project.error_hits[hits_before:]))),
    )


def _first_line(node: DefNode) -> int:
    """Return the line a definition starts on, decorators included."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _workflow_methods(
    project: Project, mod: Module, cls: ast.ClassDef
) -> list[tuple[str, str, Module, FunctionNode]]:
    """Return (role, handler name, module, method) for run, init and each handler of `cls`."""
    out: list[tuple[str, str, Module, FunctionNode]] = []
    seen: set[str] = set()
    classes: list[tuple[Module, ast.ClassDef]] = [(mod, cls)]
    i = 0
    while i < len(classes):
        cmod, cnode = classes[i]
        i += 1
        for base in cnode.bases:
            target = project.resolve(cmod, base)
            found = project.lookup(target) if target else None
            if found and isinstance(found[1], ast.ClassDef) and not found[2]:
                classes.append((found[0], found[1]))
        for item in cnode.body:
            if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) or item.name in seen:
                continue
            role = _role(project, cmod, item)
            if role is None:
                continue
            seen.add(item.name)
            handler_name = item.name
            if role in ("signal", "query", "update"):
                dec = _decorator_call(project, cmod, item, f"{WF}.{role}")
                if isinstance(dec, ast.Call):
                    dyn = _kwarg(dec, "dynamic")
                    if isinstance(dyn, ast.Constant) and dyn.value is True:
                        handler_name = "<dynamic>"
                    else:
                        handler_name = _const_str(_kwarg(dec, "name")) or handler_name
            out.append((role, handler_name, cmod, item))
    return out


def _role(project: Project, mod: Module, fn: FunctionNode) -> str | None:
    for role in ("run", "signal", "query", "update"):
        if _decorator_call(project, mod, fn, f"{WF}.{role}"):
            return role
    if fn.name == "__init__":
        return "init"
    return None


def extract_module(project: Project, path: str) -> list[WorkflowModel]:
    """Return the workflows defined in `path`; raises `SourceError` when it cannot be parsed."""
    mod = project.module(path)
    return [extract_workflow(project, mod, cls) for cls in workflow_classes(project, mod)]


__all__ = ["SourceError", "extract_module", "extract_workflow", "workflow_classes"]
