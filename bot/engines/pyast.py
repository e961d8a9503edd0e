"""Python source as the extractors see it: parsed modules, imports resolved inside the repo.

Names are resolved to one of two forms:
- in the repository: ``"<path>::<Name>[.<attr>...]"``, e.g. ``"app/activities.py::charge"``;
- outside it: the dotted import path, e.g. ``"temporalio.workflow.execute_activity"``.
Shared by every engine whose definitions are Python code (Temporal, Cadence, Airflow fallback).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from bot.model import Location, Suppression
from bot.repo import FileUnreadable, SourceTree

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
DefNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef

SUPPRESSION = re.compile(r"#\s*inflight-guard:\s*ignore\[([^\]]*)\]\s*(.*)$")


class SourceError(Exception):
    """A file that cannot be analysed, with the line to point at."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass
class Module:
    """One parsed Python file and the names it binds at top level."""

    path: str
    tree: ast.Module
    text: str
    imports: dict[str, str] = field(default_factory=dict)
    imported: set[str] = field(default_factory=set)
    defs: dict[str, DefNode] = field(default_factory=dict)

    @property
    def package(self) -> str:
        parent = PurePosixPath(self.path).parent
        return "" if str(parent) == "." else str(parent).replace("/", ".")

    def lines(self) -> list[str]:
        return self.text.splitlines()


def _absolute(module: Module, level: int, name: str | None) -> str:
    """Return the dotted module a (possibly relative) `from` import names."""
    if level == 0:
        return name or ""
    parts = module.package.split(".") if module.package else []
    keep = len(parts) - (level - 1)
    base = parts[: max(keep, 0)]
    if name:
        base = [*base, *name.split(".")]
    return ".".join(base)


def parse_module(path: str, text: str) -> Module:
    """Return the parsed module, or raise `SourceError` with the offending line."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise SourceError(path, exc.lineno or 1, f"syntax error: {exc.msg}") from None
    except ValueError as exc:  # null bytes
        raise SourceError(path, 1, f"cannot parse: {exc}") from None
    mod = Module(path=path, tree=tree, text=text)
    for node in tree.body:
        _bind(mod, node)
    return mod


def _bind(mod: Module, node: ast.stmt) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            mod.imported.add(alias.name)
            if alias.asname:
                mod.imports[alias.asname] = alias.name
            else:
                top = alias.name.split(".", 1)[0]
                mod.imports[top] = top
    elif isinstance(node, ast.ImportFrom):
        source = _absolute(mod, node.level, node.module)
        mod.imported.add(source)
        for alias in node.names:
            mod.imported.add(f"{source}.{alias.name}" if source else alias.name)
            if alias.name != "*":
                mod.imports[alias.asname or alias.name] = f"{source}.{alias.name}" if source else alias.name
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        mod.defs[node.name] = node
    elif isinstance(node, ast.If | ast.Try | ast.With):
        # `if TYPE_CHECKING:`, `try: import x except ImportError:` and
        # `with workflow.unsafe.imports_passed_through():` blocks still bind names.
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                _bind(mod, child)
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                for child in handler.body:
                    _bind(mod, child)


def dotted(expr: ast.expr) -> list[str] | None:
    """Return ``a.b.c`` as ``["a", "b", "c"]``, or None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        parts.append(expr.id)
        return parts[::-1]
    return None


def suppressions(path: str, text: str) -> list[Suppression]:
    """Return the inline suppression comments of a file (a reason may be empty)."""
    found: list[Suppression] = []

    def add(line: int, comment: str) -> None:
        m = SUPPRESSION.search(comment)
        if m:
            ids = tuple(i.strip() for i in m.group(1).split(",") if i.strip())
            found.append(
                Suppression(rules=ids, reason=m.group(2).strip(), location=Location(path=path, line=line))
            )

    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                add(tok.start[0], tok.string)
    except (tokenize.TokenError, SyntaxError):
        for number, line in enumerate(text.splitlines(), start=1):
            if "#" in line:
                add(number, line[line.index("#") :])
    return found


class Project:
    """The Python modules of one tree, parsed on demand and resolved across files."""

    def __init__(self, tree: SourceTree) -> None:
        self.tree = tree
        self._modules: dict[str, Module | SourceError] = {}
        self._suffix_index: dict[str, list[str]] | None = None
        self.errors: dict[str, SourceError] = {}
        self.error_hits: list[str] = []  # every failed reported load, in order

    @property
    def side(self) -> str:
        return self.tree.side

    def module(self, path: str, *, report: bool = True) -> Module:
        """Return the parsed module at `path`, or raise `SourceError` (kept in `errors` if `report`)."""
        cached = self._modules.get(path)
        if cached is None:
            try:
                cached = parse_module(path, self.tree.read(path))
            except FileUnreadable as exc:
                cached = SourceError(path, 1, exc.reason)
            except SourceError as exc:
                cached = exc
            self._modules[path] = cached
        if isinstance(cached, SourceError):
            if report:
                self.errors[path] = cached
                self.error_hits.append(path)
            raise cached
        return cached

    def loaded(self) -> list[Module]:
        """Return every module parsed so far."""
        return [m for m in self._modules.values() if isinstance(m, Module)]

    def _index(self) -> dict[str, list[str]]:
        if self._suffix_index is None:
            index: dict[str, list[str]] = {}
            for path in self.tree.python_paths:
                parts = path[:-3].split("/")
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                for k in range(1, len(parts) + 1):
                    index.setdefault(".".join(parts[-k:]), []).append(path)
            self._suffix_index = index
        return self._suffix_index

    def module_path(self, name: str, near: str) -> str | None:
        """Return the repo path of dotted module `name` as imported from file `near`."""
        if not name:
            return None
        candidates = [p for p in self._index().get(name, ()) if self._importable_as(p, name)]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        # Prefer an exact path from the root, then the one closest to the importer.
        slashed = name.replace(".", "/")
        for exact in (f"{slashed}.py", f"{slashed}/__init__.py"):
            if exact in candidates:
                return exact
        return max(candidates, key=lambda p: len(_common_prefix(p, near)))

    def _importable_as(self, path: str, name: str) -> bool:
        """True when `path` can be imported as `name`: the folder above it is not a package."""
        depth = name.count(".") + 1 + (1 if path.endswith("/__init__.py") else 0)
        prefix = path.split("/")[:-depth]
        return not prefix or f"{'/'.join(prefix)}/__init__.py" not in self.tree.python_paths

    def imports_any(self, mod: Module, paths: set[str]) -> bool:
        """True when `mod` imports one of the repo files `paths`."""
        return any(self.module_path(name, mod.path) in paths for name in mod.imported)

    def module_names(self, path: str) -> set[str]:
        """Return the dotted names other files could use to import `path` (every suffix)."""
        parts = path[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        return {".".join(parts[-k:]) for k in range(1, len(parts) + 1)}

    def resolve(self, mod: Module, expr: ast.expr, local: dict[str, str] | None = None) -> str | None:
        """Return the qualified name `expr` refers to from module `mod` (see module docstring)."""
        parts = dotted(expr)
        if not parts:
            return None
        head, rest = parts[0], parts[1:]
        if local and head in local:
            return ".".join([local[head], *rest])
        if head in mod.imports:
            target = mod.imports[head]
            return self.localize(".".join([target, *rest]), mod.path) or ".".join([target, *rest])
        if head in mod.defs:
            return f"{mod.path}::{'.'.join(parts)}"
        return ".".join(parts)

    def localize(self, name: str, near: str, depth: int = 0) -> str | None:
        """Map dotted `name` to ``path::attr`` when its module lives in the repo."""
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            path = self.module_path(".".join(parts[:i]), near)
            if path is None:
                continue
            attrs = parts[i:]
            if not attrs:
                return f"{path}::"
            return self._follow(path, attrs, depth) or f"{path}::{'.'.join(attrs)}"
        return None

    def _follow(self, path: str, attrs: list[str], depth: int) -> str | None:
        """Follow re-exports (`from .impl import x` in a package) to where `x` is defined."""
        if depth > 8:
            return None
        try:
            mod = self.module(path)
        except SourceError:
            return None
        first = attrs[0]
        if first in mod.defs:
            return f"{path}::{'.'.join(attrs)}"
        if first in mod.imports:
            target = ".".join([mod.imports[first], *attrs[1:]])
            return self.localize(target, path, depth + 1)
        return None

    def lookup(self, qualified: str) -> tuple[Module, DefNode, list[str]] | None:
        """Return (module, top-level def, remaining attrs) for a ``path::Name.attr`` name."""
        if "::" not in qualified:
            return None
        path, _, attr = qualified.partition("::")
        if not attr:
            return None
        try:
            mod = self.module(path)
        except SourceError:
            return None
        first, *rest = attr.split(".")
        node = mod.defs.get(first)
        if node is None:
            return None
        return mod, node, rest

    def class_method(
        self, cls_mod: Module, cls: ast.ClassDef, name: str
    ) -> tuple[Module, FunctionNode] | None:
        """Return a method of `cls` or of its in-repo base classes (first match in MRO order)."""
        seen: set[int] = set()
        stack: list[tuple[Module, ast.ClassDef]] = [(cls_mod, cls)]
        while stack:
            mod, node = stack.pop(0)
            if id(node) in seen:
                continue
            seen.add(id(node))
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == name:
                    return mod, item
            for base in node.bases:
                target = self.resolve(mod, base)
                found = self.lookup(target) if target else None
                if found and isinstance(found[1], ast.ClassDef) and not found[2]:
                    stack.append((found[0], found[1]))
        return None


def _common_prefix(a: str, b: str) -> str:
    out = []
    for x, y in zip(a.split("/"), b.split("/"), strict=False):
        if x != y:
            break
        out.append(x)
    return "/".join(out)


def affected_paths(project: Project, changed: set[str], max_depth: int = 4) -> set[str]:
    """Return `changed` plus the files that import them, transitively (cost follows the change)."""
    seen = set(changed)
    frontier = set(changed)
    for _ in range(max_depth):
        names = {n for p in frontier for n in project.module_names(p)}
        hits = project.tree.grep_importers(names) - seen
        seen |= hits
        confirmed: set[str] = set()
        for path in sorted(hits):
            try:
                mod = project.module(path, report=False)
            except SourceError:
                continue
            if project.imports_any(mod, frontier):
                confirmed.add(path)
        if not confirmed:
            break
        frontier = confirmed
        changed = changed | confirmed
    return set(changed)
