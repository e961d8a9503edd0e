"""The layering of `bot/`, read from the code's own imports (every `import`, function-local and
type-only ones included): Temporal and Cadence share `bot/engines/python/` and never each other,
the shared layer and the Engine protocol know no engine, and no modules import each other in a loop."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

BOT = ROOT / "bot"
# Cycles outside bot.engines that are known and not yet broken, each a sorted tuple of modules.
# None today: a new one fails the test until it is broken (or, if it must stay, listed here with why).
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(BOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "demo" in parts:  # example user code, not the tool's
            continue
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The bot modules `name` imports, with the packages an import runs on the way (a submodule's own
    packages excepted: they are being imported already)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            while target:
                if target != name and not name.startswith(target + "."):
                    found.add(target)
                target = target.rpartition(".")[0]
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _offenders(importer: str, *imported: str) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _inside(name, importer)
        for target in targets
        if any(_inside(target, p) for p in imported)
    )


def test_the_graph_is_read() -> None:
    assert "bot.engines.python.pyengine" in GRAPH["bot.engines.temporal"]
    assert "bot.engines.python.extract" in GRAPH["bot.engines.cadence.extract"]
    assert "bot.engines.temporal" in GRAPH["bot.engines.registry"]  # a function-local import


def test_temporal_and_cadence_never_import_each_other() -> None:
    assert _offenders("bot.engines.cadence", "bot.engines.temporal") == []
    assert _offenders("bot.engines.temporal", "bot.engines.cadence") == []


def test_the_python_layer_imports_no_engine() -> None:
    engines = [f"bot.engines.{e}" for e in ("temporal", "cadence", "stepfunctions", "airflow")]
    assert _offenders("bot.engines.python", *engines, "bot.engines.registry") == []


def test_base_and_histories_import_no_engine() -> None:
    engines = [f"bot.engines.{e}" for e in ("temporal", "cadence", "stepfunctions", "airflow", "python")]
    assert _offenders("bot.engines.base", *engines, "bot.engines.registry") == []
    assert _offenders("bot.histories", "bot.engines") == []


def test_no_engine_imports_the_registry() -> None:
    assert _offenders("bot.engines", "bot.engines.registry") == []


def test_python_runners_load_only_the_shared_runner_by_path() -> None:
    """The runners are scripts run by path in the user's interpreter: they load their shared helpers
    by path, from python/runner.py, never another engine's runner."""
    for engine in ("temporal", "cadence"):
        tree = ast.parse((BOT / "engines" / engine / "runner.py").read_text(encoding="utf-8"))
        folders = {
            node.args[-2].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and ast.unparse(node.func) == "os.path.join"
            and len(node.args) >= 2
            and isinstance(node.args[-1], ast.Constant)
            and node.args[-1].value == "runner.py"
            and isinstance(node.args[-2], ast.Constant)
        }
        assert folders == {"python"}, engine


def _cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(tuple(sorted(component)))
    return found


def test_cycles_are_found() -> None:
    looped = {**GRAPH, "bot.errors": {*GRAPH["bot.errors"], "bot.histories"}}  # histories imports errors
    assert any({"bot.errors", "bot.histories"} <= set(cycle) for cycle in _cycles(looped))


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    assert [c for c in cycles if any(_inside(m, "bot.engines") for m in c)] == []
    assert cycles == KNOWN_CYCLES
