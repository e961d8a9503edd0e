"""Cadence Python workflows (cadence-python-client), statically: the decisions each one makes, in order.

A workflow is a class with a `@workflow.run` method (from `cadence.workflow`), registered with
`@reg.workflow(name=...)` on a `cadence.worker.Registry`. The walk is the Temporal one
(bot/engines/python/pywalk.py): `CadenceWalker` knows which calls are Cadence decisions and reads
`workflow.get_version(change_id, min, max)` compared with a version as the version gate.
"""

from __future__ import annotations

import ast
import operator
import weakref

from bot.engines.python.extract import (
    CommandWalker,
    _const_str,
    _decorator_call,
    _is_none,
    _is_zero,
    _kwarg,
    build_model,
)
from bot.engines.python.pyast import DefNode, FunctionNode, Module, Project, SourceError, dotted
from bot.engines.python.pywalk import Ctx
from bot.model import CommandKind, WorkflowModel
from bot.repo import git_grep

WF = "cadence.workflow"
ACTIVITY_DEFN = "cadence.activity.defn"
# A line that may register an activity: `@reg.activity(...)`, `@activity.defn(...)`, `@defn`.
ACTIVITY_DECORATOR = r"^\s*@\s*([A-Za-z_][A-Za-z0-9_.]*\.)?(activity|defn)\b"
ACTIVITY_CALLS = {f"{WF}.execute_activity"}
CHILD_CALLS = {f"{WF}.execute_child_workflow", f"{WF}.start_child_workflow"}
TIMER_CALLS = {f"{WF}.sleep", "asyncio.sleep"}
DEFAULT_VERSION = -1
COMPARISONS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


class CadenceWalker(CommandWalker):
    """Records Cadence decisions (activities, timers, children, markers, ...) as it walks."""

    def ends_run(self, callee: str) -> bool:
        return callee == f"{WF}.continue_as_new"

    # --- the version gate -------------------------------------------------------------------
    def patch_call(self, test: ast.expr, ctx: Ctx) -> str | None:
        if isinstance(test, ast.Call) and self.resolve(ctx, test.func) == f"{WF}.get_version":
            return _const_str(test.args[0] if test.args else _kwarg(test, "change_id"))
        return None

    def _version_of(self, node: ast.expr, ctx: Ctx) -> str | None:
        """Return the change id when `node` is a `get_version` result (the call or a name bound to it)."""
        pid = self.patch_call(node, ctx)
        if pid:
            return pid
        if isinstance(node, ast.Name) and node.id in ctx.scope.patch_vars:
            return ctx.scope.patch_vars[node.id]
        parts = dotted(node)
        if parts and len(parts) == 2 and parts[0] == "self":
            return self.instance_patches.get(f"self.{parts[1]}")
        return None

    def _number(self, node: ast.expr, ctx: Ctx) -> int | None:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self._number(node.operand, ctx)
            return -inner if inner is not None else None
        if self.resolve(ctx, node) == f"{WF}.DEFAULT_VERSION":
            return DEFAULT_VERSION
        return None

    def gate_test(self, test: ast.expr, ctx: Ctx) -> tuple[str, bool] | None:
        """`get_version(...) == 1`, `v != DEFAULT_VERSION`, `v >= 1`, ...: which side is new.

        A test true for executions that recorded no version (DEFAULT_VERSION) guards the old
        path; one false for them guards the new path. A version tested for truth is no gate
        (DEFAULT_VERSION, -1, is true).
        """
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
            return None
        left, right = test.left, test.comparators[0]
        compare = COMPARISONS.get(type(test.ops[0]))
        pid, number = self._version_of(left, ctx), self._number(right, ctx)
        swapped = pid is None  # `DEFAULT_VERSION == v`: the version on the right
        if swapped:
            pid, number = self._version_of(right, ctx), self._number(left, ctx)
        if pid is None or number is None or compare is None:
            return None
        holds = compare(number, DEFAULT_VERSION) if swapped else compare(DEFAULT_VERSION, number)
        return pid, not holds

    # --- decisions --------------------------------------------------------------------------
    def on_bind(self, target: str, call: ast.Call, callee: str, ctx: Ctx) -> None:
        if callee == f"{WF}.start_child_workflow":
            ctx.scope.handles[target] = "child"

    def on_call(self, callee: str, node: ast.Call, ctx: Ctx) -> bool:
        first = node.args[0] if node.args else None
        if callee in ACTIVITY_CALLS or callee in CHILD_CALLS:
            child = callee in CHILD_CALLS
            ref = first or _kwarg(node, "workflow_type" if child else "activity")
            kind = CommandKind.CHILD_WORKFLOW if child else CommandKind.ACTIVITY
            for choice, branch, line in self.alternatives(ref, ctx):
                name, resolved = self._literal(branch, choice)
                if resolved and not child and name not in self.activity_defs:
                    found = registered_activity(self.project, name, ctx.module.path)
                    if found is not None:
                        self.activity_defs[name] = found
                self._emit(kind, name, node, branch, options=True, resolved=resolved, target=ref, line=line)
        elif callee in TIMER_CALLS:
            duration = first if first is not None else _kwarg(node, "duration") or _kwarg(node, "delay")
            if duration is not None and not _is_zero(duration) and not _is_none(duration):
                self._emit(CommandKind.TIMER, "timer", node, ctx, extra={"duration": ast.unparse(duration)})
        elif callee == f"{WF}.continue_as_new":
            self._emit(CommandKind.CONTINUE_AS_NEW, "continue_as_new", node, ctx, options=True)
            self.exit_taken("continue_as_new", node, ctx)
        elif callee == f"{WF}.upsert_search_attributes":
            self._emit(CommandKind.UPSERT_SEARCH_ATTRIBUTES, "search_attributes", node, ctx)
        elif callee == f"{WF}.signal_external_workflow":
            signal = node.args[1] if len(node.args) > 1 else _kwarg(node, "signal_name")
            self._emit(CommandKind.SIGNAL_EXTERNAL, _const_str(signal) or "?", node, ctx)
        elif callee == f"{WF}.side_effect":
            self._emit(CommandKind.SIDE_EFFECT, "side_effect", node, ctx)
        elif callee == f"{WF}.mutable_side_effect":
            self._emit(CommandKind.SIDE_EFFECT, _const_str(first) or "mutable_side_effect", node, ctx)
        elif callee == f"{WF}.get_version":
            pid = _const_str(first or _kwarg(node, "change_id"))
            if pid:
                low = node.args[1] if len(node.args) > 1 else _kwarg(node, "min_supported")
                floor = self._number(low, ctx) if low is not None else DEFAULT_VERSION
                # min_supported above DEFAULT_VERSION: histories without the marker are refused.
                raised = floor is not None and floor > DEFAULT_VERSION
                self._emit(CommandKind.DEPRECATE_PATCH if raised else CommandKind.PATCH, pid, node, ctx)
        elif self._activity_reference(node, ctx) or self._child_signal(node, ctx):
            return True
        else:
            return callee.startswith(f"{WF}.")
        return True

    def _literal(self, ctx: Ctx, ref: ast.expr | None) -> tuple[str, bool]:
        """Return (activity or workflow type, resolved?) for a type given by name."""
        if ref is None:
            return "?", False
        _, ref, _ = self.substitute(ctx, ref)
        literal = _const_str(ref)
        if literal is not None:
            return literal, True
        parts = dotted(ref)
        return (parts[-1] if parts else "<dynamic>"), False

    def _activity_reference(self, node: ast.Call, ctx: Ctx) -> bool:
        """`await charge.execute(...)` / `charge.with_options(...).execute(...)` on an activity definition."""
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr != "execute":
            return False
        receiver = func.value
        options: list[ast.keyword] = []
        if (
            isinstance(receiver, ast.Call)
            and isinstance(receiver.func, ast.Attribute)
            and receiver.func.attr == "with_options"
        ):
            options = list(receiver.keywords)
            receiver = receiver.func.value
        qualified = self.resolve(ctx, receiver)
        found = self.project.lookup(qualified) if qualified else None
        if not found or found[2] or not isinstance(found[1], ast.FunctionDef | ast.AsyncFunctionDef):
            return False
        def_mod, fn = found[0], found[1]
        name = _activity_name(self.project, def_mod, fn)
        if name is None:
            return False
        self.activity_defs.setdefault(name, (def_mod, fn))
        call = ast.Call(func=node.func, args=node.args, keywords=[*options, *node.keywords])
        ast.copy_location(call, node)
        call.end_lineno, call.end_col_offset = node.end_lineno, node.end_col_offset
        self._emit(CommandKind.ACTIVITY, name, call, ctx, options=True)
        return True

    def _child_signal(self, node: ast.Call, ctx: Ctx) -> bool:
        """`await child.signal("name", ...)` on a child started with `start_child_workflow`."""
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr != "signal":
            return False
        target = func.value
        if not (isinstance(target, ast.Name) and ctx.scope.handles.get(target.id) == "child"):
            return False
        self._emit(
            CommandKind.SIGNAL_EXTERNAL, _const_str(node.args[0] if node.args else None) or "?", node, ctx
        )
        return True


def _activity_name(project: Project, mod: Module, fn: DefNode) -> str | None:
    """Return the activity type of a function registered with `@reg.activity` or `@activity.defn`."""
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        parts = dotted(target)
        is_registry = parts is not None and len(parts) == 2 and parts[-1] == "activity"
        if is_registry or project.resolve(mod, target) == ACTIVITY_DEFN:
            named = _const_str(_kwarg(dec, "name")) if isinstance(dec, ast.Call) else None
            return named or fn.name
    return None


_REGISTERED: weakref.WeakKeyDictionary[Project, dict[str, list[tuple[Module, FunctionNode]]]] = (
    weakref.WeakKeyDictionary()
)


def registered_activity(project: Project, name: str, near: str) -> tuple[Module, FunctionNode] | None:
    """Return the function registered as activity type `name` (`@reg.activity(name=...)`,
    `@activity.defn(name=...)`, else its own name) for a workflow in file `near`.

    `execute_activity("charge", ...)` names the type only; its function may live in any file. Among
    several registrations of one name, the one closest to the workflow's folder; None if that is a tie.
    """
    index = _REGISTERED.get(project)
    if index is None:
        index = {}
        for path in sorted(git_grep([project.tree], [ACTIVITY_DECORATOR], "-E")[0]):
            try:
                mod = project.module(path, report=False)
            except SourceError:
                continue
            for node in mod.tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    registered = _activity_name(project, mod, node)
                    if registered is not None:
                        index.setdefault(registered, []).append((mod, node))
        _REGISTERED[project] = index
    found = index.get(name, [])
    if len(found) < 2:
        return found[0] if found else None
    folder = near.split("/")[:-1]

    def shared(mod: Module) -> int:
        parts = mod.path.split("/")[:-1]
        n = 0
        while n < min(len(parts), len(folder)) and parts[n] == folder[n]:
            n += 1
        return n

    ranked = sorted(found, key=lambda f: -shared(f[0]))
    return ranked[0] if shared(ranked[0][0]) > shared(ranked[1][0]) else None


def _registration(cls: ast.ClassDef) -> ast.expr | None:
    """Return the `@<registry>.workflow` / `@<registry>.workflow(name=...)` decorator, if any."""
    for dec in cls.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute) and target.attr == "workflow":
            return dec
    return None


def _has_run(project: Project, mod: Module, cls: ast.ClassDef) -> bool:
    return any(
        isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
        and _decorator_call(project, mod, item, f"{WF}.run")
        for item in cls.body
    )


def workflow_classes(project: Project, mod: Module) -> list[ast.ClassDef]:
    """Return the registered workflow classes (a `@workflow.run` method) at the top level of `mod`."""
    return [
        node
        for node in mod.tree.body
        if isinstance(node, ast.ClassDef) and _registration(node) is not None and _has_run(project, mod, node)
    ]


def extract_workflow(project: Project, mod: Module, cls: ast.ClassDef) -> WorkflowModel:
    """Return the normalized model of one registered Cadence workflow class."""
    dec = _registration(cls)
    name = cls.name
    if isinstance(dec, ast.Call):
        name = _const_str(_kwarg(dec, "name")) or name
    return build_model(
        project, mod, cls, engine="cadence", name=name, walker=CadenceWalker, wf=WF, inputs=True
    )


def extract_module(project: Project, path: str) -> list[WorkflowModel]:
    """Return the workflows defined in `path`; raises `SourceError` when it cannot be parsed."""
    mod = project.module(path)
    return [extract_workflow(project, mod, cls) for cls in workflow_classes(project, mod)]


__all__ = ["SourceError", "extract_module", "extract_workflow", "workflow_classes"]
