"""Temporal Python workflows, statically: which commands each one issues, in what order.

The walk (bot/engines/python/pywalk.py) starts at the `@workflow.run` method and at each
signal/update handler; `TemporalWalker` knows which calls are Temporal commands.
"""

from __future__ import annotations

import ast

from bot.engines.python.extract import (
    CommandWalker,
    _const_str,
    _decorator_call,
    _is_none,
    _is_zero,
    _kwarg,
    build_model,
)
from bot.engines.python.pyast import DefNode, Module, Project, SourceError, dotted
from bot.engines.python.pywalk import Ctx
from bot.model import (
    CommandKind,
    Handler,
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


# asyncio timeouts become Temporal timers: the SDK's event loop turns call_later into StartTimer.
ASYNCIO_TIMEOUT_CALLS = {"asyncio.wait_for", "asyncio.wait"}


ASYNCIO_TIMER_CONTEXTS = {"asyncio.timeout", "asyncio.timeout_at"}


EXTERNAL_HANDLE_CALLS = {f"{WF}.get_external_workflow_handle", f"{WF}.get_external_workflow_handle_for"}


HANDLER_SETTERS = {
    f"{WF}.set_signal_handler": "signal",
    f"{WF}.set_query_handler": "query",
    f"{WF}.set_update_handler": "update",
}


class TemporalWalker(CommandWalker):
    """Records Temporal commands (activities, timers, children, markers, ...) as it walks."""

    TARGET_KEYWORDS = frozenset({"activity", "workflow"})

    def ends_run(self, callee: str) -> bool:
        return callee == f"{WF}.continue_as_new"

    def patch_call(self, test: ast.expr, ctx: Ctx) -> str | None:
        if isinstance(test, ast.Call) and self.resolve(ctx, test.func) == f"{WF}.patched":
            return _const_str(test.args[0] if test.args else None)
        return None

    def on_bind(self, target: str, call: ast.Call, callee: str, ctx: Ctx) -> None:
        if callee in EXTERNAL_HANDLE_CALLS:
            ctx.scope.handles[target] = "external"
        elif callee == f"{WF}.start_child_workflow":
            ctx.scope.handles[target] = "child"

    def before_arguments(self, callee: str, node: ast.Call, ctx: Ctx) -> None:
        # asyncio.wait_for/wait start their timer before the awaited work issues anything.
        if callee in ASYNCIO_TIMEOUT_CALLS:
            timeout = _kwarg(node, "timeout") or (node.args[1] if len(node.args) > 1 else None)
            if timeout is not None and not (isinstance(timeout, ast.Constant) and timeout.value is None):
                self._emit(CommandKind.TIMER, "timer", node, ctx, extra={"duration": ast.unparse(timeout)})

    def on_call(self, callee: str, node: ast.Call, ctx: Ctx) -> bool:
        if self._handle_call(node, ctx):
            return True
        first = node.args[0] if node.args else None
        if callee in ACTIVITY_CALLS or callee in CHILD_CALLS:
            child = callee in CHILD_CALLS
            ref = first or _kwarg(node, "workflow" if child else "activity")
            kind = CommandKind.CHILD_WORKFLOW if child else ACTIVITY_CALLS[callee]
            for choice, branch, line in self.alternatives(ref, ctx):
                name, resolved = self.target_name(branch, choice, child=child)
                self._emit(kind, name, node, branch, options=True, resolved=resolved, target=ref, line=line)
        elif callee in TIMER_CALLS or callee in ASYNCIO_TIMER_CONTEXTS:
            duration = first if first is not None else _kwarg(node, "duration") or _kwarg(node, "delay")
            if duration is not None and not _is_zero(duration) and not _is_none(duration):
                self._emit(CommandKind.TIMER, "timer", node, ctx, extra={"duration": ast.unparse(duration)})
        elif callee in ASYNCIO_TIMEOUT_CALLS:
            return True  # its timer was recorded before the arguments
        elif callee == f"{WF}.wait_condition":
            timeout = _kwarg(node, "timeout") or (node.args[1] if len(node.args) > 1 else None)
            if timeout is not None and not _is_none(timeout):
                extra = {"timeout": ast.unparse(timeout)}
                self._emit(CommandKind.WAIT_CONDITION_TIMER, "wait_condition", node, ctx, extra=extra)
        elif callee == f"{WF}.continue_as_new":
            self._emit(CommandKind.CONTINUE_AS_NEW, "continue_as_new", node, ctx, options=True)
            self.exit_taken("continue_as_new", node, ctx)
        elif callee == f"{WF}.upsert_memo":
            self._emit(CommandKind.UPSERT_MEMO, "memo", node, ctx)
        elif callee == f"{WF}.upsert_search_attributes":
            self._emit(CommandKind.UPSERT_SEARCH_ATTRIBUTES, "search_attributes", node, ctx)
        elif callee in (f"{WF}.patched", f"{WF}.deprecate_patch"):
            pid = _const_str(first)
            if pid:
                marker = CommandKind.PATCH if callee.endswith(".patched") else CommandKind.DEPRECATE_PATCH
                self._emit(marker, pid, node, ctx)
        elif callee in HANDLER_SETTERS:
            handler = _const_str(first)
            if handler:
                role = HANDLER_SETTERS[callee]
                self.handlers.append(Handler(kind=role, name=handler, location=self.location(node, ctx)))
        else:
            return callee.startswith(f"{WF}.")
        return True

    def target_name(self, ctx: Ctx, ref: ast.expr | None, *, child: bool) -> tuple[str, bool]:
        """Return (activity or child-workflow type, resolved?) for the callable a command names."""
        if ref is None:
            return "?", False
        mod, ref, resolved = self.substitute(ctx, ref)
        literal = _const_str(ref)
        if literal is not None:
            return literal, True
        parts = dotted(ref)
        if not parts:
            return "<dynamic>", False
        if not resolved:
            return parts[-1], False
        qualified = self.resolve(ctx, ref) if mod is ctx.module else self.project.resolve(mod, ref)
        found = self.project.lookup(qualified) if qualified else None
        if child:
            return _child_name(self.project, found, parts), True
        name = _activity_name(self.project, found, parts)
        if found is not None:
            def_mod, node, rest = found
            if isinstance(node, ast.ClassDef):
                method = self.project.class_method(def_mod, node, rest[0] if rest else "__call__")
                if method is not None:
                    self.activity_defs.setdefault(name, method)
            elif not rest:
                self.activity_defs.setdefault(name, (def_mod, node))
        return name, True

    def _handle_call(self, node: ast.Call, ctx: Ctx) -> bool:
        """Record `.signal()` / `.cancel()` on an external or child workflow handle."""
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in ("signal", "cancel"):
            return False
        target = func.value
        is_handle = isinstance(target, ast.Name) and target.id in ctx.scope.handles
        if isinstance(target, ast.Call):
            is_handle = self.resolve(ctx, target.func) in EXTERNAL_HANDLE_CALLS
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


def _defined_name(project: Project, mod: Module, node: DefNode, decorator: str) -> str | None:
    dec = _decorator_call(project, mod, node, decorator)
    if isinstance(dec, ast.Call):
        return _const_str(_kwarg(dec, "name")) or (_const_str(dec.args[0]) if dec.args else None)
    return None


def _activity_name(
    project: Project, found: tuple[Module, DefNode, list[str]] | None, parts: list[str]
) -> str:
    """Return the activity type: `name=` of its `@activity.defn`, else the function/method/class name."""
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


def _child_name(project: Project, found: tuple[Module, DefNode, list[str]] | None, parts: list[str]) -> str:
    """Return the workflow type a child-workflow call starts: `name=` of its `@workflow.defn`, else the class."""
    if found and isinstance(found[1], ast.ClassDef):
        named = _defined_name(project, found[0], found[1], f"{WF}.defn")
        return named or found[1].name
    return parts[-2] if len(parts) >= 2 and parts[-1] == "run" else parts[-1]


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
    return build_model(
        project,
        mod,
        cls,
        engine="temporal",
        name=name,
        walker=TemporalWalker,
        wf=WF,
        dynamic=dynamic,
        behavior=behavior,
        inputs=True,
    )


def extract_module(project: Project, path: str) -> list[WorkflowModel]:
    """Return the workflows defined in `path`; raises `SourceError` when it cannot be parsed."""
    mod = project.module(path)
    return [extract_workflow(project, mod, cls) for cls in workflow_classes(project, mod)]


__all__ = ["SourceError", "extract_module", "extract_workflow", "workflow_classes"]
