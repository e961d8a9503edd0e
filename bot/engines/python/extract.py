"""Python workflows, statically: the walk every Python-SDK engine shares.

`CommandWalker` (a `FlowWalker`, bot/engines/python/pywalk.py) records an SDK's commands and
handlers as it walks; each engine's walker says which calls are commands. `build_model` walks the
run method and each handler of a workflow class into its `WorkflowModel`.
"""

from __future__ import annotations

import ast
import copy
import hashlib
from collections.abc import Callable

from bot.engines.python.annotations import normalize_annotation
from bot.engines.python.inputs import parameter_shapes
from bot.engines.python.pyast import DefNode, FunctionNode, Module, Project
from bot.engines.python.pywalk import Ctx, FlowWalker, Scope, replace_steer
from bot.model import (
    Command,
    CommandKind,
    Exit,
    Handler,
    InputShape,
    Location,
    NondeterministicCall,
    Parameter,
    Steer,
    WorkflowModel,
)

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


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


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


def _is_zero(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, int | float) and node.value <= 0


class CommandWalker(FlowWalker):
    """A walker that records an SDK's commands and handlers; engines say which calls are commands."""

    NONDETERMINISTIC_CALLS = frozenset(NONDETERMINISTIC_CALLS)
    NONDETERMINISTIC_PREFIXES = NONDETERMINISTIC_PREFIXES
    NONDETERMINISTIC_NAMES = frozenset(NONDETERMINISTIC_NAMES)
    # Keywords that name the command's target, not one of its options.
    TARGET_KEYWORDS: frozenset[str] = frozenset()

    def __init__(self, project: Project, instance_patches: dict[str, str] | None = None) -> None:
        super().__init__(project, instance_patches)
        self.commands: list[Command] = []
        self.handlers: list[Handler] = []
        # activity type → the function that implements it, for the shape of its input
        self.activity_defs: dict[str, tuple[Module, FunctionNode]] = {}

    def _emit(
        self,
        kind: CommandKind,
        name: str,
        node: ast.Call,
        ctx: Ctx,
        *,
        options: bool = False,
        extra: dict[str, str] | None = None,
        resolved: bool = True,
        target: ast.expr | None = None,
        line: int | None = None,
    ) -> None:
        """Record one command; `target` is the expression naming its type, `line` the assignment
        that chose it (a target picked through a variable)."""
        opts: dict[str, str] = dict(extra or {})
        if options:
            # Keyword options only: positional arguments are values, not replayed, and renaming
            # the local variable they come from must stay quiet.
            for kw in node.keywords:
                if kw.arg not in self.TARGET_KEYWORDS:
                    opts[kw.arg or "**"] = self._option_text(kw.value, ctx)
        location = self.location(node, ctx)
        if line is not None:
            location = Location(path=ctx.module.path, line=line, side=self.side)
        self.commands.append(
            Command(
                kind=kind,
                name=name,
                location=location,
                statements=self.statements_of(node, ctx),
                gate=ctx.gate,
                via=ctx.via,
                options=opts,
                guard=ctx.guard,
                in_loop=ctx.in_loop,
                resolved=resolved,
                steers=self._steers(node, target, ctx),
                exits=ctx.exits,
                batch=self.batch,
            )
        )

    def _option_text(self, value: ast.expr, ctx: Ctx) -> str:
        """Return an option as written, with an unrolled loop's item (or a literal argument) in place
        of its variable: `args=[loan, n]` in `for n in range(1, 3)` reads `args=[loan, 1]`, `[loan, 2]`."""
        literal = {k for k, v in ctx.scope.values.items() if v.name is None}
        if not literal or not (_names_in(value) & literal):
            return ast.unparse(value)

        class Items(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.AST:
                held = ctx.scope.values.get(node.id)
                return ast.Constant(value=held.value) if node.id in literal and held is not None else node

        return ast.unparse(Items().visit(copy.deepcopy(value)))

    def _steers(self, node: ast.Call, target: ast.expr | None, ctx: Ctx) -> tuple[Steer, ...]:
        """Return the command's steers; an iteration order says what of the command varies per item."""
        loops = dict(ctx.items)
        if not loops:
            return (*ctx.steers, *self.exit_steers(ctx.exits))
        target_names = self._expanded(target, ctx)
        others = [a for a in node.args if a is not target] + [
            k.value for k in node.keywords if k.value is not target
        ]
        arg_names: set[str] = set()
        for arg in others:
            arg_names |= self._expanded(arg, ctx)
        out: list[Steer] = []
        for steer in ctx.steers:
            names = loops.get(steer.key)
            if steer.role == "order" and names is not None:
                per_item = "type" if names & target_names else "args" if names & arg_names else None
                steer = replace_steer(steer, per_item=per_item)
            out.append(steer)
        return (*out, *self.exit_steers(ctx.exits))

    def _expanded(self, node: ast.expr | None, ctx: Ctx) -> set[str]:
        """Return the names an expression reads, through the simple aliases it uses."""
        names: set[str] = set()
        todo = [node] if node is not None else []
        seen = 0
        while todo and seen < 16:
            seen += 1
            current = todo.pop()
            for name in {n.id for n in ast.walk(current) if isinstance(n, ast.Name)}:
                if name not in names:
                    names.add(name)
                    alias = ctx.scope.aliases.get(name)
                    if alias is not None:
                        todo.append(alias)
        return names

    def emitted(self) -> int:
        return len(self.commands)

    def reach(self, since: int, exits: list[Exit]) -> None:
        for i in range(since, len(self.commands)):
            command = self.commands[i]
            known = {e.key for e in command.exits}
            fresh = tuple(e for e in exits if e.key not in known)
            if fresh:
                self.commands[i] = command.model_copy(
                    update={
                        "exits": (*command.exits, *fresh),
                        "steers": (*command.steers, *self.exit_steers(fresh)),
                    }
                )


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _parameters(fn: FunctionNode) -> tuple[Parameter, ...]:
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    defaults_from = len(positional) - len(args.defaults)
    params: list[Parameter] = []
    for i, arg in enumerate(positional):
        if i == 0 and arg.arg in ("self", "cls"):
            continue
        ann = normalize_annotation(arg.annotation) if arg.annotation else None
        params.append(Parameter(name=arg.arg, annotation=ann, has_default=i >= defaults_from))
    if args.vararg:
        params.append(Parameter(name=f"*{args.vararg.arg}", has_default=True))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        ann = normalize_annotation(arg.annotation) if arg.annotation else None
        params.append(Parameter(name=arg.arg, annotation=ann, has_default=default is not None))
    return tuple(params)


def build_model(
    project: Project,
    mod: Module,
    cls: ast.ClassDef,
    *,
    engine: str,
    name: str,
    walker: Callable[[Project, dict[str, str]], CommandWalker],
    wf: str,
    dynamic: bool = False,
    behavior: str | None = None,
    inputs: bool = False,
) -> WorkflowModel:
    """Walk the run method and each handler of a workflow class; return its normalized model."""
    sequences: dict[str, tuple[Command, ...]] = {}
    hazards: list[NondeterministicCall] = []
    handlers: list[Handler] = []
    parameters: tuple[Parameter, ...] = ()
    run_location: Location | None = None
    shapes: list[InputShape] = []
    activities: dict[str, tuple[Module, FunctionNode]] = {}
    hits_before = len(project.error_hits)
    methods = _workflow_methods(project, mod, cls, wf)
    instance_patches: dict[str, str] = {}  # self.x = workflow.patched(...), shared by all methods
    for role, handler_name, method_mod, method in sorted(methods, key=lambda m: m[0] != "run"):
        walking = walker(project, instance_patches)
        walking.run_method = role == "run"
        ctx = Ctx(module=method_mod, cls=(mod, cls), function=method.name, via=(method.name,), scope=Scope())
        walking.walk_function(method_mod, method, ctx)
        hazards.extend(walking.hazards)
        handlers.extend(walking.handlers)
        for activity, found in walking.activity_defs.items():
            activities.setdefault(activity, found)
        if inputs and role in ("run", "signal", "update"):
            label = "run" if role == "run" else f"{role} {handler_name}"
            shapes.extend(parameter_shapes(project, method_mod, method, label))
        if role == "run":
            parameters = _parameters(method)
            run_location = Location(path=method_mod.path, line=method.lineno, side=project.side)
            sequences["run"] = tuple(walking.commands)
        elif role in ("signal", "update", "query"):
            loc = Location(
                path=method_mod.path,
                line=_first_line(method),
                end_line=method.end_lineno,
                side=project.side,
            )
            handlers.append(Handler(kind=role, name=handler_name, location=loc))
            if walking.commands and role != "query":
                sequences[f"{role}:{handler_name}"] = tuple(walking.commands)
    for activity in sorted(activities):
        act_mod, act_fn = activities[activity]
        shapes.extend(parameter_shapes(project, act_mod, act_fn, f"activity {activity}"))
    unique_hazards = {(h.call, h.location.path, h.location.line): h for h in hazards}
    return WorkflowModel(
        engine=engine,
        id=name,
        class_name=cls.name,
        path=mod.path,
        location=Location(path=mod.path, line=cls.lineno, side=project.side),
        dynamic=dynamic,
        versioning_behavior=behavior,
        parameters=parameters,
        handlers=tuple(sorted(handlers, key=lambda h: (h.kind, h.name))),
        sequences=sequences,
        nondeterminism=tuple(unique_hazards.values()),
        source_span=(_first_line(cls), cls.end_lineno or cls.lineno),
        run_location=run_location,
        digest=hashlib.sha256(ast.dump(cls).encode()).hexdigest()[:16],
        unreadable=tuple(sorted(set(project.error_hits[hits_before:]))),
        inputs=tuple(shapes),
    )


def _first_line(node: DefNode) -> int:
    """Return the line a definition starts on, decorators included."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _workflow_methods(
    project: Project, mod: Module, cls: ast.ClassDef, wf: str
) -> list[tuple[str, str, Module, FunctionNode]]:
    """Return (role, handler name, module, method) for run, init and each handler of `cls`."""
    out: list[tuple[str, str, Module, FunctionNode]] = []
    seen: set[str] = set()
    classes: list[tuple[Module, ast.ClassDef]] = [(mod, cls)]
    visited: set[int] = set()
    i = 0
    while i < len(classes):
        cmod, cnode = classes[i]
        i += 1
        if id(cnode) in visited:
            continue
        visited.add(id(cnode))
        classes.extend(project.base_classes(cmod, cnode))
        for item in cnode.body:
            if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) or item.name in seen:
                continue
            role = _role(project, cmod, item, wf)
            if role is None:
                continue
            seen.add(item.name)
            handler_name = item.name
            if role in ("signal", "query", "update"):
                dec = _decorator_call(project, cmod, item, f"{wf}.{role}")
                if isinstance(dec, ast.Call):
                    dyn = _kwarg(dec, "dynamic")
                    if isinstance(dyn, ast.Constant) and dyn.value is True:
                        handler_name = "<dynamic>"
                    else:
                        named = _kwarg(dec, "name") or (dec.args[0] if dec.args else None)
                        handler_name = _const_str(named) or handler_name
            out.append((role, handler_name, cmod, item))
    return out


def _role(project: Project, mod: Module, fn: FunctionNode, wf: str) -> str | None:
    for role in ("run", "signal", "query", "update"):
        if _decorator_call(project, mod, fn, f"{wf}.{role}"):
            return role
    if fn.name == "__init__":
        return "init"
    return None
