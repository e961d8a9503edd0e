"""Load DAG files with the user's own Airflow and print a normalized model of every DAG.

Run by inflight-guard as `PYTHON loader.py REQUEST.json` in the interpreter that has the user's
Airflow and providers, with a throwaway AIRFLOW_HOME and an unreachable database URL: DagBag parses
files without a database. Only this file's own standard-library imports and Airflow are used, so it
runs on any Python Airflow supports. The request names, per side (base, head), a materialized tree
and the DAG files to load; the answer (JSON) is written to the request's `out` path:

    {"airflow": "3.3.2", "python": "3.11.7", "startup": 2.1,
     "sides": {"base": {"dags": [...], "import_errors": [...], "seconds": 0.4},
               "head": {..., "unstable": {"dag_id": ["start_date"]}}}}

The model is the tool's own, not Airflow's serialized DAG: defaults are explicit, the callable's
code is hashed, and nothing of a DAG's runtime values (params values are hashed too) is printed.

With `"serve": true` in the request, the process stays up after the answer: it says `loaded` on its
standard output (what the DAG files print goes to standard error), then reads one JSON request per
line on its standard input, replays running DagRuns on Airflow's scheduler (`scheduler.answer`, in
this interpreter: Airflow is imported once for loading and replay), writes that answer to the
request's `out` and says `done` (or `failed: why`). It ends when its standard input closes, or after
`IDLE_SECONDS` without a request.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import re
import sys
import tempfile
import textwrap
import time
import traceback
import warnings
from datetime import datetime, timezone
from typing import Any

ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
HERE = os.path.dirname(os.path.abspath(__file__))
IDLE_SECONDS = 3600.0  # a served loader nobody asks any more ends by itself
STORM_SECONDS = 3.0  # time budget to count catchup runs per DAG


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=_plain)
    return hashlib.sha256(ADDRESS.sub("", text).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """A JSON-able stand-in for any value, stable across parses (no memory addresses)."""
    if isinstance(value, (set, frozenset, tuple)):
        return (
            sorted((_plain(v) for v in value), key=repr)
            if isinstance(value, (set, frozenset))
            else [_plain(v) for v in value]
        )
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if type(value).__name__.endswith("XComArg"):  # an upstream's output: a dependency, diffed as an edge
        return "<XComArg>"
    if callable(value) and hasattr(value, "__code__"):
        return "callable:" + _code_hash(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return ADDRESS.sub("", repr(value))


def _code_hash(fn: Any) -> str:
    """Hash of a callable's arguments and body (not its name or decorators): a renamed task keeps it."""
    fn = inspect.unwrap(fn)
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
        node = tree.body[0]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            basis = ast.dump(node.args) + "".join(ast.dump(s) for s in node.body)
        else:
            basis = ast.dump(node)
    except (OSError, TypeError, SyntaxError, IndexError, RecursionError):
        code = getattr(fn, "__code__", None)
        basis = repr(code.co_code) if code is not None else repr(fn)
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _callable(op: Any) -> Any:
    fn = getattr(op, "python_callable", None)
    if fn is None:
        partial = getattr(op, "partial_kwargs", None) or {}
        fn = partial.get("python_callable")
    return fn


def _line(fn: Any, path: str) -> int | None:
    try:
        fn = inspect.unwrap(fn)
        if os.path.realpath(inspect.getsourcefile(fn) or "") != os.path.realpath(path):
            return None
        return int(inspect.getsourcelines(fn)[1])
    except (OSError, TypeError):
        return None


def _expand(op: Any) -> tuple[bool, list[str], dict[str, int]]:
    """(mapped, expand keys, literal list lengths) of a task."""
    mapped = type(op).__name__.endswith("MappedOperator") or hasattr(op, "expand_input")
    if not mapped:
        return False, [], {}
    keys: dict[str, Any] = {}
    for attr in ("expand_input", "op_kwargs_expand_input"):
        value = getattr(getattr(op, attr, None), "value", None)
        if isinstance(value, dict):
            keys.update(value)
        elif isinstance(value, (list, tuple)):  # expand_kwargs(list of dicts)
            keys["<kwargs>"] = value
        elif value is not None:
            keys["<kwargs>"] = value
    lengths = {k: len(v) for k, v in keys.items() if isinstance(v, (list, tuple, dict))}
    return True, sorted(keys), lengths


def _assets(values: Any) -> list[str]:
    out = []
    for v in values or []:
        name = getattr(v, "uri", None) or getattr(v, "name", None) or getattr(v, "dataset_id", None)
        out.append(str(name) if name else _plain(v) if not callable(v) else type(v).__name__)
    return sorted(str(x) for x in out)


def _template_values(op: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    partial = getattr(op, "partial_kwargs", None) or {}
    for name in getattr(op, "template_fields", ()) or ():
        try:
            value = partial[name] if name in partial else getattr(op, name, None)
        except Exception:
            value = "<unreadable>"
        out[name] = _plain(value)
    return out


def _trigger_rule(op: Any) -> str:
    rule = getattr(op, "trigger_rule", "all_success")
    return str(getattr(rule, "value", rule))


def _tree_class(cls: type, root: str) -> tuple[str, str] | None:
    """(stable name, hash of its body without docstrings) of a class written in the tree's files.

    Airflow imports a DAG file under a module name made from its path (`unusual_prefix_<hash>_...`),
    which differs between the base and head copies: the file's path relative to the tree names it
    instead. A docstring is not behaviour: it is left out of the hash."""
    if not root:
        return None
    try:
        source = os.path.realpath(inspect.getsourcefile(cls) or "")
        rel = os.path.relpath(source, os.path.realpath(root))
        if rel.startswith(".."):
            return None
        node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError, RecursionError, ValueError):
        return None
    for n in ast.walk(node):
        if not isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not n.body:
            continue
        first = n.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            n.body = n.body[1:] or [ast.Pass()]
    basis = ast.dump(node) if isinstance(node, ast.ClassDef) else ""
    name = f"{rel.replace(os.sep, '/')}:{cls.__qualname__}"
    return name, hashlib.sha256(basis.encode()).hexdigest()[:16]


def task_model(op: Any, path: str, root: str = "") -> dict[str, Any]:
    mapped, keys, lengths = _expand(op)
    fn = _callable(op)
    group = getattr(op, "task_group", None)
    group_id = getattr(group, "group_id", None) if group is not None else None
    operator = getattr(op, "operator_name", None) or getattr(op, "task_type", None) or type(op).__name__
    cls = getattr(op, "operator_class", None) if mapped else type(op)  # mapped: the class it maps
    cls_name = (
        f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else str(cls or type(op).__name__)
    )
    own = _tree_class(cls, root) if isinstance(cls, type) and fn is None else None
    if own is not None:  # an operator class of the repository: its code is the task's code
        cls_name = own[0]
    if operator == "@task":  # TaskFlow: the decorator kind, e.g. @task, @task.bash
        operator = getattr(op, "custom_operator_name", None) or operator
    return {
        "task_id": op.task_id,
        "operator": str(operator),
        "operator_class": cls_name,
        "upstream": sorted(op.upstream_task_ids),
        "downstream": sorted(op.downstream_task_ids),
        "task_group": group_id,
        "trigger_rule": _trigger_rule(op),
        "retries": _int(getattr(op, "retries", 0)),
        "depends_on_past": bool(getattr(op, "depends_on_past", False)),
        "wait_for_downstream": bool(getattr(op, "wait_for_downstream", False)),
        "pool": str(getattr(op, "pool", "default_pool")),
        "queue": str(getattr(op, "queue", "default")),
        "outlets": _assets(getattr(op, "outlets", [])),
        "inlets": _assets(getattr(op, "inlets", [])),
        "mapped": mapped,
        "expand_keys": keys,
        "expand_lengths": lengths,
        "code_hash": _code_hash(fn) if fn is not None else own[1] if own is not None else "",
        "fields_hash": _digest(_template_values(op)),
        "line": _line(fn, path) if fn is not None else None,
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _core_timetable(dag: Any) -> Any:
    tt = dag.timetable
    if hasattr(tt, "next_dagrun_info"):
        return tt
    try:  # Airflow 3.x: the DAG holds the SDK timetable; the scheduler uses the core one
        from airflow.serialization.encoders import coerce_to_core_timetable

        return coerce_to_core_timetable(tt)
    except Exception:
        return None


def _schedule(dag: Any) -> tuple[str, str]:
    """(stable description of the timetable, human summary)."""
    tt = dag.timetable
    kind = f"{type(tt).__module__}.{type(tt).__qualname__}"
    data: Any
    try:
        from airflow.serialization.encoders import encode_timetable

        data = encode_timetable(tt)
    except Exception:
        try:
            data = {"__type": kind, "__var": tt.serialize()}
        except Exception:
            data = {"__type": kind, "__var": _plain(getattr(tt, "__dict__", {}))}
    core = _core_timetable(dag)
    summary = getattr(core, "summary", None) or getattr(tt, "summary", None) or type(tt).__name__
    return json.dumps(_plain(data), sort_keys=True), str(summary)


def count_runs(
    dag: Any, start: datetime | None, end: datetime | None, cap: int, after: Any = None
) -> tuple[int, bool]:
    """Runs the timetable creates for logical dates in [start, end): (count, complete); with `after`
    (the last run's data interval), the runs the scheduler creates after it."""
    tt = _core_timetable(dag)
    if tt is None or start is None or not getattr(tt, "can_be_scheduled", True):
        return 0, True
    try:
        from airflow.timetables.base import TimeRestriction
    except ImportError:
        return 0, False
    end = end or datetime.now(timezone.utc)
    # As the scheduler: no run after the DAG's end_date.
    restriction = TimeRestriction(earliest=start, latest=getattr(dag, "end_date", None), catchup=True)
    last = after
    count = 0
    began = time.monotonic()
    while count < cap:
        info = tt.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            return count, True
        when = getattr(info, "logical_date", None) or info.data_interval.start
        after = getattr(info, "run_after", None) or info.data_interval.end
        if when is None or after is None or after > datetime.now(timezone.utc) or when >= end:
            return count, True
        count += 1
        last = info.data_interval
        if time.monotonic() - began > STORM_SECONDS:
            return count, False
    return count, False


def dag_model(dag: Any, root: str) -> dict[str, Any]:
    path = os.path.realpath(dag.fileloc)
    schedule, summary = _schedule(dag)
    try:
        params = dag.params.dump()
    except Exception:
        params = dict(getattr(dag, "params", {}) or {})
    tasks = {t.task_id: task_model(t, path, root) for t in dag.tasks}
    start = getattr(dag, "start_date", None)
    end = getattr(dag, "end_date", None)
    model = {
        "dag_id": dag.dag_id,
        "path": os.path.relpath(path, root).replace(os.sep, "/"),
        "schedule": schedule,
        "schedule_summary": summary,
        "start_date": start.isoformat() if start else None,
        "end_date": end.isoformat() if end else None,
        "catchup": bool(getattr(dag, "catchup", False)),
        "max_active_runs": _int(getattr(dag, "max_active_runs", 0)),
        "max_active_tasks": _int(getattr(dag, "max_active_tasks", getattr(dag, "concurrency", 0))),
        "params": {k: _digest(v) for k, v in sorted(params.items())},
        "tags": sorted(str(t) for t in getattr(dag, "tags", None) or []),
        "disable_bundle_versioning": bool(getattr(dag, "disable_bundle_versioning", False)),
        "tasks": tasks,
    }
    # Lines are where a task is written, not what it is: moving code is not a change.
    shape = {k: v for k, v in model.items() if k != "path"}
    shape["tasks"] = {i: {k: v for k, v in t.items() if k != "line"} for i, t in tasks.items()}
    model["digest"] = _digest(shape)
    return model


_LINE = re.compile(r'File "([^"]+)", line (\d+)')
_SYNTAX = re.compile(r"\(([^(),]+), line (\d+)\)")


def _error_line(message: str, path: str) -> int:
    """The deepest line of the traceback in the DAG file itself (1 when it names none)."""
    line = 0
    real = os.path.realpath(path)
    for file, number in _LINE.findall(message):
        if os.path.realpath(file) == real:
            line = int(number)
    if not line:
        for file, number in _SYNTAX.findall(message):
            if os.path.basename(file) == os.path.basename(path):
                line = int(number)
    return line or 1


def _purge(root: str) -> None:
    """Forget modules imported from `root`: the other side's tree has modules of the same names."""
    prefix = os.path.realpath(root) + os.sep
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and os.path.realpath(file).startswith(prefix):
            del sys.modules[name]


def _bag_class() -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag


def serialize(dag: Any) -> Any:
    """Airflow's own JSON form of a DAG, what its scheduler reads from the metadata database (the
    replay on the scheduler, `scheduler.py`, deserializes it); an error text when it cannot be made."""
    from airflow.serialization import serialized_objects

    found = getattr(serialized_objects, "DagSerialization", None)  # Airflow 3
    serializer = found if found is not None else serialized_objects.SerializedDAG  # Airflow 2
    try:
        return json.loads(json.dumps(serializer.to_dict(dag), default=str))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]


def load(
    root: str,
    folder: str,
    files: list[str],
    storms: dict[str, Any] | None = None,
    serialized: dict[str, Any] | None = None,
    last: dict[str, list[str]] | None = None,
    ask: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parse `files` (relative to `root`) with a fresh DagBag: (models by dag_id, import errors).

    With `storms` (the base's models), also count the runs catchup would create; with `ask`, the last
    scheduled run of each DAG with catchup that base has too is asked for first (by the id Airflow
    loaded, however the file computes it), where `last` does not hold it.
    """
    DagBag = _bag_class()
    empty = tempfile.mkdtemp(prefix="inflight-guard-empty-")
    params = inspect.signature(DagBag.__init__).parameters
    extra = {"include_examples": False} if "include_examples" in params else {}
    # Airflow appends its DAG folder to sys.path (installed packages win over a DAG folder module
    # named like them). Without a configured folder, each loaded file's top folder stands for it.
    tops = [folder] if folder else sorted({rel.split("/")[0] for rel in files if "/" in rel})
    paths = [p for p in [*(os.path.join(root, t) for t in tops), root] if p not in sys.path]
    sys.path.extend(paths)
    try:
        bag = DagBag(dag_folder=empty, collect_dags=False, **extra)
        models: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for rel in files:
            path = os.path.join(root, rel)
            try:
                found = bag.process_file(path, only_if_updated=False, safe_mode=False)
            except SystemExit as exc:  # a DAG file that exits would end the loader
                errors.append({"path": rel, "line": 1, "message": f"the file calls sys.exit({exc.code!r})"})
                continue
            except Exception as exc:
                errors.append({"path": rel, "line": 1, "message": f"{type(exc).__name__}: {exc}"})
                continue
            for dag in found or []:
                try:
                    models[dag.dag_id] = dag_model(dag, root)
                    if serialized is not None:
                        serialized[dag.dag_id] = serialize(dag)
                except Exception as exc:
                    errors.append(
                        {"path": rel, "line": 1, "message": f"cannot read DAG {dag.dag_id}: {exc!r}"}
                    )
        for file, message in dict(bag.import_errors).items():
            full = file if os.path.isabs(file) else os.path.join(root, file)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            line = _error_line(str(message), full)
            errors.append({"path": rel, "line": line, "message": str(message).replace(root + os.sep, "")})
        if storms is not None:
            if ask is not None:
                wanted = sorted(
                    d.dag_id
                    for d in bag.dags.values()
                    if getattr(d, "catchup", False) and d.dag_id in storms and d.dag_id not in (last or {})
                )
                if wanted:
                    last = {**(last or {}), **ask(wanted)}
            counted = _storms(list(bag.dags.values()), storms, int(storms.get("<cap>", 100000)), last)
            for dag_id, entry in counted.items():
                if dag_id in models:
                    models[dag_id]["storm"] = entry
        return models, errors
    finally:
        for p in paths:
            if p in sys.path:
                sys.path.remove(p)
        _purge(root)


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        if key in ("digest",):
            continue
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out


def _write(path: str, data: dict[str, Any]) -> None:
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(partial, path)


def _scheduler() -> Any:
    """`scheduler.py` beside this file, under a name no DAG file's module can take."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_inflight_guard_scheduler", os.path.join(HERE, "scheduler.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(channel: Any) -> None:
    """Replay requests, one JSON line each on standard input, until it closes (see the module's text)."""
    import select

    scheduler = None
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], IDLE_SECONDS)
        if not ready:
            return
        line = sys.stdin.readline()
        if not line:
            return
        try:
            request = json.loads(line)
            scheduler = scheduler or _scheduler()
            _write(request["out"], scheduler.answer(request, in_process=True))
            channel.write("done\n")
        except Exception as exc:
            traceback.print_exc()
            channel.write(f"failed: {type(exc).__name__}: {exc}"[:300].replace("\n", " ") + "\n")
        channel.flush()


def _asker(channel: Any) -> Any:
    """Ask inflight-guard (which asks Airflow's REST API) for DAGs' last scheduled runs: `last IDS` on
    the channel, one JSON line back on standard input."""

    def ask(ids: list[str]) -> dict[str, list[str]]:
        channel.write("last " + json.dumps(ids) + "\n")
        channel.flush()
        line = sys.stdin.readline()
        found = json.loads(line) if line.strip() else {}
        return {str(k): [str(t) for t in v] for k, v in found.items() if isinstance(v, list) and len(v) == 2}

    return ask


def main() -> int:
    # The script's folder is not the DAGs' import path: `import model` in a DAG file is the user's.
    if sys.path and os.path.abspath(sys.path[0] or ".") == HERE:
        del sys.path[0]
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    channel = None
    if request.get("serve"):
        # Standard output is the channel to inflight-guard; whatever the DAG files print goes to stderr.
        channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)
    warnings.simplefilter("ignore")
    began = time.monotonic()
    import airflow

    answer: dict[str, Any] = {
        "airflow": str(airflow.__version__),
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "startup": round(time.monotonic() - began, 3),
        "sides": {},
    }
    _bag_class()
    answer["startup"] = round(time.monotonic() - began, 3)
    cap = int(request.get("storm_cap", 100000))
    base_models: dict[str, Any] = {}
    for side in request["sides"]:
        t0 = time.monotonic()
        head = side["name"] != "base"
        serialized: dict[str, Any] = {}
        models, errors = load(
            side["root"],
            side.get("folder", ""),
            side["files"],
            {**base_models, "<cap>": cap} if head else None,
            serialized,
            request.get("last_runs") or {},
            _asker(channel) if channel is not None and request.get("ask_last") else None,
        )
        out: dict[str, Any] = {
            "dags": list(models.values()),
            "import_errors": errors,
            "serialized": serialized,
        }
        if side.get("twice"):
            again, _ = load(side["root"], side.get("folder", ""), side["files"])
            out["unstable"] = {
                dag_id: [f for f in _differences(m, again[dag_id]) if not f.startswith("storm")]
                for dag_id, m in models.items()
                if dag_id in again and again[dag_id]["digest"] != m["digest"]
            }
        if not head:
            base_models = models
        out["seconds"] = round(time.monotonic() - t0, 3)
        answer["sides"][side["name"]] = out
    _write(request["out"], answer)
    if channel is not None:
        channel.write("loaded\n")
        channel.flush()
        serve(channel)
        # Every answer is written: end now, without the seconds Airflow's exit handlers take.
        sys.stderr.flush()
        os._exit(0)
    return 0


def _storms(
    dags: list[Any], base: dict[str, Any], cap: int, last: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Runs catchup would create per DAG with catchup on: from start_date (and before the base's);
    for a DAG with runs (`last`: its latest scheduled run's data interval end), from that run on,
    as the scheduler continues — and nothing before it."""
    out: dict[str, Any] = {}
    for dag in dags:
        if not getattr(dag, "catchup", False) or dag.start_date is None:
            continue
        try:
            interval = (last or {}).get(dag.dag_id)
            if interval:
                from airflow.timetables.base import DataInterval

                begins, since = (datetime.fromisoformat(t) for t in interval)
                total, complete = count_runs(
                    dag, dag.start_date, None, cap, DataInterval(start=begins, end=since)
                )
                out[dag.dag_id] = {
                    "runs": total,
                    "complete": complete,
                    "earlier": 0,
                    "earlier_complete": True,
                    "since": since.isoformat(),
                }
                continue
            total, complete = count_runs(dag, dag.start_date, None, cap)
            entry: dict[str, Any] = {"runs": total, "complete": complete}
            old = base.get(dag.dag_id)
            if old and old.get("start_date"):
                old_start = datetime.fromisoformat(old["start_date"])
                if old_start > dag.start_date:
                    earlier, done = count_runs(dag, dag.start_date, old_start, cap)
                    entry.update(earlier=earlier, earlier_complete=done)
        except Exception as exc:
            entry = {"error": f"{type(exc).__name__}: {exc}"}
        out[dag.dag_id] = entry
    return out


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(3)
