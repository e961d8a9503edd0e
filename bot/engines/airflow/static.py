"""Static (`ast`) reading of DAG files: the fallback when Airflow is not importable, and line maps.

It understands the common shapes — `with DAG(...)`, `@dag`, classic operators with a literal
`task_id`, TaskFlow `@task` functions and their calls (`.override(task_id=)`, `.expand()`,
`.partial().expand()`), `with TaskGroup(...)`, `@task_group`, `>>`/`<<` on tasks and lists,
`chain()`, `set_upstream/set_downstream`, data dependencies between TaskFlow calls, decorator
settings (`@task(retries=...)`), helper functions a DAG body calls to build tasks, and `@asset`.
Its known gaps (docs/airflow.md): tasks made in loops or comprehensions, computed ids (f-strings
with variables, ids from config), DAGs built by factory functions, operators wrapped by helpers,
`default_args` not written as a literal dict, and Airflow's catchup default (taken as False).
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field

from bot.engines.airflow.model import Dag, Task
from bot.engines.python.pyast import TOO_DEEP, deepest_line

NOW_CALLS = {"now", "utcnow", "today"}
TASK_SETTINGS = {"trigger_rule", "retries", "pool", "queue", "depends_on_past", "wait_for_downstream"}
IGNORED_FIELDS = {"task_id", "dag", "outlets", "inlets", *TASK_SETTINGS}


def code_hash(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """Same basis as the Airflow loader: the arguments and body, not the name or decorators."""
    basis = ast.dump(node.args) + "".join(ast.dump(s) for s in node.body)
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _name(node: ast.AST) -> str:
    """Dotted name of a callee: `DAG`, `models.DAG`, `task.bash`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _name(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def _const(node: ast.AST | None) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute) and _name(node.value).endswith("TriggerRule"):
        return node.attr.lower()
    return None


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _datetime(node: ast.AST | None) -> str | None:
    """ISO text of a literal `datetime(2024, 1, 1)` / `pendulum.datetime(...)`; None otherwise."""
    if not isinstance(node, ast.Call) or not _name(node.func).endswith("datetime"):
        return None
    args = [_const(a) for a in node.args[:6]]
    ints = [a for a in args if isinstance(a, int)]
    if not args or len(ints) != len(args):
        return None
    year, month, day, hour, minute, second = [*[*ints, 1, 1][:3], *ints[3:], 0, 0, 0][:6]
    try:
        from datetime import UTC, datetime

        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).isoformat()
    except (TypeError, ValueError):
        return None


def _calls_now(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in NOW_CALLS
        for n in ast.walk(node)
    )


@dataclass
class _Factory:
    """A TaskFlow function: calling it in a DAG makes a task."""

    name: str
    task_id: str
    operator: str
    code: str
    line: int
    group: bool = False  # @task_group
    node: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    settings: dict[str, object] = field(default_factory=dict)


@dataclass
class _Scope:
    dag: Dag
    prefix: str = ""
    defaults: dict[str, object] = field(default_factory=dict)


class _Reader:
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.dags: dict[str, Dag] = {}
        self.factories: dict[str, _Factory] = {}
        self.values: dict[str, list[str]] = {}  # variable → task ids (per DAG, last assignment wins)
        self.dag_vars: dict[str, Dag] = {}
        self.lines: dict[str, int] = {}  # task id (unprefixed too) → first line: a fallback
        self.dag_task_lines: dict[tuple[str, str], int] = {}  # (dag id, task id) → line
        self.constants: dict[str, ast.expr] = {}  # module-level name → the call it is bound to
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}  # module-level helpers
        self.following: set[str] = set()  # helpers being followed (no recursion)
        self.helper_calls: dict[str, int] = {}  # dag id → line of its body's first helper call

    # --- DAG and task creation ------------------------------------------------------------

    def _segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.dump(node)

    def _new_dag(self, call: ast.Call, default_id: str | None, line: int) -> Dag | None:
        first = call.args[0] if call.args else _kw(call, "dag_id")
        dag_id = _const(first) if first is not None else default_id
        if not isinstance(dag_id, str):
            return None
        schedule = _kw(call, "schedule") or _kw(call, "schedule_interval") or _kw(call, "timetable")
        catchup = _const(_kw(call, "catchup"))
        params = _kw(call, "params")
        param_digests: dict[str, str] = {}
        if isinstance(params, ast.Dict):
            for k, v in zip(params.keys, params.values, strict=False):
                if isinstance(k, ast.Constant):
                    param_digests[str(k.value)] = _digest(self._segment(v))
        tags = _kw(call, "tags")
        defaults: dict[str, object] = {}
        default_args = _kw(call, "default_args")
        start = _kw(call, "start_date")
        if isinstance(default_args, ast.Dict):
            for k, v in zip(default_args.keys, default_args.values, strict=False):
                if isinstance(k, ast.Constant) and k.value in TASK_SETTINGS:
                    defaults[str(k.value)] = _const(v)
                if isinstance(k, ast.Constant) and k.value == "start_date" and start is None:
                    start = v
        unstable = tuple(
            name
            for name in ("start_date", "end_date", "params", "default_args")
            if (n := _kw(call, name)) is not None and _calls_now(n)
        )
        dag = Dag(
            dag_id=dag_id,
            path=self.path,
            line=line,
            schedule=self._segment(schedule) if schedule is not None else "",
            schedule_summary=self._segment(schedule) if schedule is not None else "",
            start_date=_datetime(start),
            catchup=catchup is True,
            max_active_runs=int(_const(_kw(call, "max_active_runs")) or 0),  # type: ignore[call-overload]
            params=param_digests,
            tags=tuple(sorted(str(_const(e)) for e in tags.elts)) if isinstance(tags, ast.List) else (),
            disable_bundle_versioning=_const(_kw(call, "disable_bundle_versioning")) is True,
            unstable=unstable,
            static=True,
        )
        self.dags[dag_id] = dag
        self._defaults[dag_id] = defaults
        return dag

    _defaults: dict[str, dict[str, object]]

    def _add_task(
        self,
        scope: _Scope,
        task_id: str,
        operator: str,
        line: int,
        call: ast.Call | None,
        code: str = "",
        extra: dict[str, object] | None = None,
    ) -> str:
        full = f"{scope.prefix}{task_id}"
        base = full
        n = 0
        while full in scope.dag.tasks:  # Airflow's own suffix for a TaskFlow function called again
            n += 1
            full = f"{base}__{n}"
        settings = {**self._defaults.get(scope.dag.dag_id, {}), **(extra or {})}
        fields: dict[str, str] = {}
        outlets: tuple[str, ...] = ()
        inlets: tuple[str, ...] = ()
        if call is not None:
            for k in call.keywords:
                if k.arg in TASK_SETTINGS:
                    settings[k.arg] = _const(k.value)
                elif k.arg == "outlets":
                    outlets = tuple(sorted(self._asset(e) for e in _elements(k.value)))
                elif k.arg == "inlets":
                    inlets = tuple(sorted(self._asset(e) for e in _elements(k.value)))
                elif k.arg and k.arg not in IGNORED_FIELDS:
                    fields[k.arg] = self._segment(k.value)
        retries = settings.get("retries")
        scope.dag.tasks[full] = Task(
            task_id=full,
            operator=operator,
            operator_class=operator,
            task_group=scope.prefix.rstrip(".") or None,
            trigger_rule=str(settings.get("trigger_rule") or "all_success"),
            retries=retries if isinstance(retries, int) else 0,
            depends_on_past=settings.get("depends_on_past") is True,
            wait_for_downstream=settings.get("wait_for_downstream") is True,
            pool=str(settings.get("pool") or "default_pool"),
            queue=str(settings.get("queue") or "default"),
            outlets=outlets,
            inlets=inlets,
            code_hash=code,
            fields_hash=_digest(fields) if not code else "",
            line=line,
        )
        self.dag_task_lines.setdefault((scope.dag.dag_id, full), line)
        self.lines.setdefault(full, line)
        self.lines.setdefault(task_id, line)
        return full

    def _asset(self, node: ast.AST) -> str:
        """`Asset("s3://b/k")`, `Dataset(...)` or a module-level name bound to one: its URI."""
        if isinstance(node, ast.Name) and node.id in self.constants:
            node = self.constants[node.id]
        if isinstance(node, ast.Call) and node.args and isinstance(_const(node.args[0]), str):
            return str(_const(node.args[0]))
        uri = _const(_kw(node, "uri") or _kw(node, "name")) if isinstance(node, ast.Call) else None
        return str(uri) if isinstance(uri, str) else self._segment(node)

    def _edge(self, dag: Dag, up: list[str], down: list[str]) -> None:
        for u in up:
            for d in down:
                if u in dag.tasks and d in dag.tasks and u != d:
                    a, b = dag.tasks[u], dag.tasks[d]
                    if d not in a.downstream:
                        a.downstream = (*a.downstream, d)
                    if u not in b.upstream:
                        b.upstream = (*b.upstream, u)

    # --- expressions ------------------------------------------------------------------------

    def value(self, node: ast.AST, scope: _Scope | None) -> list[str]:
        """Task ids an expression stands for (creating the tasks it makes)."""
        if isinstance(node, ast.Name):
            return list(self.values.get(node.id, []))
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [t for e in node.elts for t in self.value(e, scope)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift | ast.LShift):
            left, right = self.value(node.left, scope), self.value(node.right, scope)
            if scope is not None:
                up, down = (left, right) if isinstance(node.op, ast.RShift) else (right, left)
                self._edge(scope.dag, up, down)
            return right
        if isinstance(node, ast.Subscript | ast.Attribute) and not isinstance(node, ast.Call):
            return self.value(node.value, scope) if isinstance(node, ast.Subscript) else []
        if isinstance(node, ast.Call):
            return self._call(node, scope)
        return []

    def _call(self, call: ast.Call, scope: _Scope | None) -> list[str]:
        callee = _name(call.func)
        last = callee.rsplit(".", 1)[-1]
        if scope is None:
            for a in [*call.args, *(k.value for k in call.keywords)]:
                self.value(a, None)
            return []
        if last in ("chain",):
            items = [self.value(a, scope) for a in call.args]
            for up, down in itertools.pairwise(items):
                self._edge(scope.dag, up, down)
            return items[-1] if items else []
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("set_downstream", "set_upstream"):
            me = self.value(call.func.value, scope)
            other = [t for a in call.args for t in self.value(a, scope)]
            if call.func.attr == "set_downstream":
                self._edge(scope.dag, me, other)
            else:
                self._edge(scope.dag, other, me)
            return me
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("expand", "expand_kwargs"):
            made = self._call_target(call.func.value, scope, call)
            for task_id in made:
                task = scope.dag.tasks[task_id]
                task.mapped = True
                keys = [k.arg for k in call.keywords if k.arg] or ["<kwargs>"]
                task.expand_keys = tuple(sorted(keys))
                task.expand_lengths = {
                    k.arg: len(k.value.elts)
                    for k in call.keywords
                    if k.arg and isinstance(k.value, ast.List | ast.Tuple)
                }
                for k in call.keywords:
                    self._edge(scope.dag, self.value(k.value, scope), [task_id])
            return made
        return self._call_target(call, scope, None)

    def _call_target(self, node: ast.AST, scope: _Scope, expand: ast.Call | None) -> list[str]:
        """A call making a task: an operator (`task_id=`), a TaskFlow function, `.partial()`."""
        if not isinstance(node, ast.Call):
            target = self.factories.get(_name(node)) if isinstance(node, ast.Name | ast.Attribute) else None
            if target is not None and expand is not None and not target.group:  # `fn.expand(x=...)`
                return [
                    self._add_task(
                        scope,
                        target.task_id,
                        target.operator,
                        target.line,
                        None,
                        target.code,
                        target.settings,
                    )
                ]
            if isinstance(node, ast.Call | ast.Attribute) and _name(node).endswith(".override"):
                return []
            return self.value(node, scope)
        call = node
        func = call.func
        override_id: str | None = None
        overrides: dict[str, object] = {}
        if (
            isinstance(func, ast.Call)
            and isinstance(func.func, ast.Attribute)
            and func.func.attr == "override"
        ):
            value = _const(_kw(func, "task_id"))
            override_id = value if isinstance(value, str) else None
            overrides = _settings(func)
            func = func.func.value
        if isinstance(func, ast.Attribute) and func.attr == "partial":
            inner = func.value
            name = _name(inner)
            factory = self.factories.get(name)
            if factory is not None:
                return [
                    self._add_task(
                        scope,
                        factory.task_id,
                        factory.operator,
                        factory.line,
                        call,
                        factory.code,
                        factory.settings,
                    )
                ]
            task_id = _const(_kw(call, "task_id"))
            if isinstance(task_id, str):
                return [self._add_task(scope, task_id, name.rsplit(".", 1)[-1], call.lineno, call)]
            return []
        name = _name(func)
        factory = self.factories.get(name)
        if factory is not None:
            upstream = [
                t for a in [*call.args, *(k.value for k in call.keywords)] for t in self.value(a, scope)
            ]
            if factory.group and factory.node is not None:
                prefix = f"{scope.prefix}{factory.task_id}."
                group = _Scope(scope.dag, prefix, scope.defaults)
                before = set(scope.dag.tasks)
                self._body(factory.node.body, group)
                made = [t for t in scope.dag.tasks if t not in before]
                roots = [t for t in made if not set(scope.dag.tasks[t].upstream) & set(made)]
                leaves = [t for t in made if not set(scope.dag.tasks[t].downstream) & set(made)]
                self._edge(scope.dag, upstream, roots)
                return leaves
            task_id = self._add_task(
                scope,
                override_id or factory.task_id,
                factory.operator,
                factory.line,
                None,
                factory.code,
                {**factory.settings, **overrides},
            )
            self._edge(scope.dag, upstream, [task_id])
            return [task_id]
        helper = self.functions.get(name)
        if helper is not None and name not in self.following:  # `make_tasks(dag)`: a task factory
            self.helper_calls.setdefault(scope.dag.dag_id, call.lineno)
            for a in [*call.args, *(k.value for k in call.keywords)]:
                self.value(a, scope)
            self.following.add(name)
            before = set(scope.dag.tasks)
            try:
                self._body(helper.body, scope)
            finally:
                self.following.discard(name)
            made = [t for t in scope.dag.tasks if t not in before]
            return [t for t in made if not set(scope.dag.tasks[t].downstream) & set(made)]
        task_id = _const(_kw(call, "task_id"))
        for a in call.args:
            self.value(a, scope)
        if isinstance(task_id, str):
            return [self._add_task(scope, task_id, name.rsplit(".", 1)[-1], call.lineno, call)]
        return []

    # --- statements ---------------------------------------------------------------------------

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope | None) -> None:
        for deco in node.decorator_list:
            callee = _name(deco)
            call = deco if isinstance(deco, ast.Call) else None
            if callee == "dag" or callee.endswith(".dag"):
                dag = self._new_dag(call or ast.Call(func=deco, args=[], keywords=[]), node.name, node.lineno)
                if dag is not None:
                    self._body(node.body, _Scope(dag))
                return
            if callee == "asset" or callee.endswith(".asset"):  # Airflow 3: a DAG of one task, the function
                call = call or ast.Call(func=deco, args=[], keywords=[])
                name = _const(_kw(call, "name"))
                dag_id = name if isinstance(name, str) else node.name
                dag = self._new_dag(
                    ast.Call(func=call.func, args=[], keywords=call.keywords), dag_id, node.lineno
                )
                if dag is not None:
                    self._add_task(
                        _Scope(dag), dag_id, "_AssetMainOperator", node.lineno, None, code_hash(node)
                    )
                return
            if callee == "task_group" or callee.endswith(".task_group"):
                group_id = _const(_kw(call, "group_id")) if call else None
                self.factories[node.name] = _Factory(
                    node.name, str(group_id or node.name), "@task_group", "", node.lineno, True, node
                )
                return
            if callee == "task" or callee.startswith("task.") or callee.endswith(".task"):
                task_id = _const(_kw(call, "task_id")) if call else None
                operator = "@" + (callee if callee.startswith("task") else "task")
                self.factories[node.name] = _Factory(
                    node.name,
                    str(task_id or node.name),
                    operator,
                    code_hash(node),
                    node.lineno,
                    settings=_settings(call) if call is not None else {},
                )
                self.lines.setdefault(str(task_id or node.name), node.lineno)
                return
        if scope is None and not node.decorator_list:
            self.functions[node.name] = node  # a helper: followed when a DAG's body calls it
        if scope is not None:
            self._body(node.body, scope)

    def _with(self, node: ast.With, scope: _Scope | None) -> None:
        for item in node.items:
            expr = item.context_expr
            if not isinstance(expr, ast.Call):
                continue
            callee = _name(expr.func).rsplit(".", 1)[-1]
            if callee == "DAG":
                dag = self._new_dag(expr, None, node.lineno)
                if dag is None:
                    continue
                if isinstance(item.optional_vars, ast.Name):
                    self.dag_vars[item.optional_vars.id] = dag
                self._body(node.body, _Scope(dag))
                return
            if callee == "TaskGroup" and scope is not None:
                gid = _const(expr.args[0] if expr.args else _kw(expr, "group_id"))
                if isinstance(gid, str):
                    self._body(node.body, _Scope(scope.dag, f"{scope.prefix}{gid}.", scope.defaults))
                    return
        self._body(node.body, scope)

    def _body(self, body: list[ast.stmt], scope: _Scope | None) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self._function(stmt, scope)
            elif isinstance(stmt, ast.With):
                self._with(stmt, scope)
            elif isinstance(stmt, ast.Assign):
                value = stmt.value
                if scope is None and isinstance(value, ast.Call):
                    for t in stmt.targets:
                        if isinstance(t, ast.Name):
                            self.constants[t.id] = value
                if isinstance(value, ast.Call) and _name(value.func).rsplit(".", 1)[-1] == "DAG":
                    dag = self._new_dag(value, None, stmt.lineno)
                    if dag is not None:
                        for t in stmt.targets:
                            if isinstance(t, ast.Name):
                                self.dag_vars[t.id] = dag
                    continue
                ids = self.value(value, scope or self._scope_of(value))
                for t in stmt.targets:
                    if isinstance(t, ast.Name):
                        self.values[t.id] = ids
            elif isinstance(stmt, ast.Expr):
                self.value(stmt.value, scope or self._scope_of(stmt.value))
            elif isinstance(stmt, ast.If | ast.Try):
                self._body(stmt.body, scope)
                self._body(getattr(stmt, "orelse", []), scope)
            elif isinstance(stmt, ast.Return) and stmt.value is not None and scope is not None:
                self.value(stmt.value, scope)

    def _scope_of(self, node: ast.AST) -> _Scope | None:
        """A task made outside `with DAG` but with `dag=x`."""
        for n in ast.walk(node):
            if isinstance(n, ast.Call):
                ref = _kw(n, "dag")
                if isinstance(ref, ast.Name) and ref.id in self.dag_vars:
                    return _Scope(self.dag_vars[ref.id])
        if self.dag_vars and isinstance(node, ast.BinOp):
            return _Scope(next(iter(self.dag_vars.values())))
        return None


def _settings(call: ast.Call) -> dict[str, object]:
    """Task settings written as keywords: `@task(retries=2, trigger_rule="all_done")`, `.override(...)`."""
    return {k.arg: _const(k.value) for k in call.keywords if k.arg in TASK_SETTINGS}


def _elements(node: ast.AST) -> list[ast.expr]:
    return list(node.elts) if isinstance(node, ast.List | ast.Tuple) else [node]  # type: ignore[list-item]


@dataclass
class StaticFile:
    dags: dict[str, Dag]
    lines: dict[str, int]  # task id → line of its first definition in the file
    dag_lines: dict[str, int]
    error: tuple[int, str] | None = None
    task_lines: dict[tuple[str, str], int] = field(default_factory=dict)  # (dag id, task id) → line
    # `task_id=` of every call, as a pattern (an f-string's values match anything) → the call's line
    id_patterns: list[tuple[re.Pattern[str], int]] = field(default_factory=list)
    helper_calls: dict[str, int] = field(default_factory=dict)  # dag id → its first helper call
    functions: dict[str, int] = field(default_factory=dict)  # decorated function name → first line

    def line_of_id(self, task_id: str) -> int | None:
        """The line of the one call whose `task_id=` can make `task_id` (a loop's f-string too)."""
        lines = {line for pattern, line in self.id_patterns if pattern.fullmatch(task_id)}
        return lines.pop() if len(lines) == 1 else None


def _id_patterns(tree: ast.AST) -> list[tuple[re.Pattern[str], int]]:
    out: list[tuple[re.Pattern[str], int]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        value = _kw(node, "task_id")
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            out.append((re.compile(re.escape(value.value)), node.lineno))
        elif isinstance(value, ast.JoinedStr):
            parts = [
                re.escape(p.value) if isinstance(p, ast.Constant) and isinstance(p.value, str) else ".+?"
                for p in value.values
            ]
            out.append((re.compile("".join(parts)), node.lineno))
    return out


def _decorated(tree: ast.Module) -> dict[str, int]:
    """Decorated module-level functions (`@asset def raw_orders()`): name → the line of its `def`."""
    return {
        n.name: n.lineno
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.decorator_list
    }


def read_file(path: str, text: str) -> StaticFile:
    """Read one DAG file statically: its DAGs (fallback) and the lines of its tasks (both modes)."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        return StaticFile({}, {}, {}, (exc.lineno or 1, f"SyntaxError: {exc.msg}"))
    except RecursionError:
        return StaticFile({}, {}, {}, (1, f"RecursionError: {TOO_DEEP}"))
    reader = _Reader(path, text)
    reader._defaults = {}
    try:
        reader._body(tree.body, None)
    except RecursionError:
        return StaticFile({}, {}, {}, (deepest_line(tree), f"RecursionError: {TOO_DEEP}"))
    for dag in reader.dags.values():
        for task in dag.tasks.values():
            task.upstream = tuple(sorted(task.upstream))
            task.downstream = tuple(sorted(task.downstream))
    return StaticFile(
        reader.dags,
        reader.lines,
        {d.dag_id: d.line for d in reader.dags.values()},
        None,
        reader.dag_task_lines,
        _id_patterns(tree),
        reader.helper_calls,
        _decorated(tree),
    )
