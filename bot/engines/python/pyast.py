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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from bot.model import Location, Suppression
from bot.repo import FileUnreadable, SourceTree, grep_importers

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
    constants: dict[str, ast.expr] = field(default_factory=dict)  # NAME = "x" / other_name
    star_sources: list[str] = field(default_factory=list)  # from x import *
    _lines: list[str] | None = field(default=None, repr=False)

    @property
    def package(self) -> str:
        parent = PurePosixPath(self.path).parent
        return "" if str(parent) == "." else str(parent).replace("/", ".")

    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines


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


TOO_DEEP = "nested too deeply to analyse (deeper than Python's recursion limit)"


def deepest_line(tree: ast.AST) -> int:
    """Return the line of the most deeply nested node of `tree` (1 if none has one); iterative."""
    best, best_depth = 1, -1
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        line = getattr(node, "lineno", None)
        if isinstance(line, int) and depth > best_depth:
            best, best_depth = line, depth
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return best


def parse_module(path: str, text: str) -> Module:
    """Return the parsed module, or raise `SourceError` with the offending line."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise SourceError(path, exc.lineno or 1, f"syntax error: {exc.msg}") from None
    except ValueError as exc:  # null bytes
        raise SourceError(path, 1, f"cannot parse: {exc}") from None
    except RecursionError:  # the parser knows no line: the file is too deep as a whole
        raise SourceError(path, 1, TOO_DEEP) from None
    mod = Module(path=path, tree=tree, text=text)
    for node in tree.body:
        bind_statement(mod, node)
    for inner in ast.walk(tree):  # imports inside functions make this file an importer too
        if isinstance(inner, ast.Import):
            mod.imported.update(a.name for a in inner.names)
        elif isinstance(inner, ast.ImportFrom):
            source = _absolute(mod, inner.level, inner.module)
            mod.imported.add(source)
            mod.imported.update(f"{source}.{a.name}" if source else a.name for a in inner.names)
    return mod


def bind_statement(mod: Module, node: ast.stmt) -> None:
    """Record the names a top-level statement binds in `mod` (imports, defs, constants)."""
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
            if alias.name == "*":
                mod.star_sources.append(source)
            else:
                mod.imports[alias.asname or alias.name] = f"{source}.{alias.name}" if source else alias.name
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        mod.defs[node.name] = node
    elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        simple = isinstance(node.value, ast.Constant | ast.Name | ast.Attribute)
        if simple and len(targets) == 1 and isinstance(targets[0], ast.Name):
            mod.constants[targets[0].id] = node.value
    elif isinstance(node, ast.If | ast.Try | ast.With):
        # `if TYPE_CHECKING:`, `try: import x except ImportError:` and
        # `with workflow.unsafe.imports_passed_through():` blocks still bind names.
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                bind_statement(mod, child)
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                for child in handler.body:
                    bind_statement(mod, child)


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
        self._roots_cache: dict[str, list[str]] = {}
        self._module_cache: dict[tuple[str, str], str | None] = {}
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

    def import_roots(self, near: str) -> list[str]:
        """Return the folders `near` could be imported from: its ancestors outside packages, and the
        repository root.

        Closest first, as the nearest source root wins for a service living in a monorepo. The root
        is a source root even when it holds an `__init__.py`: the checkout is what workers put on
        `sys.path` (its folder's name is no part of the code's imports).
        """
        roots = self._roots_cache.get(near)
        if roots is None:
            paths = self.tree.python_paths
            parts = near.split("/")[:-1]
            roots = []
            for depth in range(len(parts), -1, -1):
                folder = "/".join(parts[:depth])
                prefix = f"{folder}/" if folder else ""
                if not folder or f"{prefix}__init__.py" not in paths:  # inside a package, not a root
                    roots.append(prefix)
            if "src/" not in roots:
                roots.append("src/")
            self._roots_cache[near] = roots
        return roots

    def module_path(self, name: str, near: str) -> str | None:
        """Return the repo path of dotted module `name` as imported from file `near`."""
        if not name:
            return None
        key = (name, near.rpartition("/")[0])
        if key in self._module_cache:
            return self._module_cache[key]
        paths = self.tree.python_paths
        slashed = name.replace(".", "/")
        found = None
        for root in self.import_roots(near):
            for candidate in (f"{root}{slashed}.py", f"{root}{slashed}/__init__.py"):
                if candidate in paths:
                    found = candidate
                    break
            if found:
                break
        self._module_cache[key] = found
        return found

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
        imported = (local or {}).get(head) or mod.imports.get(head)
        if imported is not None:
            target = ".".join([imported, *rest])
            return self.localize(target, mod.path) or target
        if head in mod.defs or head in mod.constants:
            return f"{mod.path}::{'.'.join(parts)}"
        star = self.from_star(mod, head)
        if star is not None:
            return ".".join([star, *rest])
        return ".".join(parts)

    def from_star(self, mod: Module, name: str) -> str | None:
        """Return where `name` comes from when `mod` gets it through `from x import *`."""
        for source in mod.star_sources:
            found = self.localize(f"{source}.{name}", mod.path)
            if found and (self.lookup(found) is not None or self.constant(found) is not None):
                return found
        return None

    def constant(self, qualified: str) -> tuple[Module, ast.expr] | None:
        """Return (module, value) for a module-level `NAME = <name or literal>` binding."""
        if "::" not in qualified:
            return None
        path, _, attr = qualified.partition("::")
        if not attr or "." in attr:
            return None
        try:
            mod = self.module(path)
        except SourceError:
            return None
        value = mod.constants.get(attr)
        return (mod, value) if value is not None else None

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
        self, cls_mod: Module, cls: ast.ClassDef, name: str, *, skip_self: bool = False
    ) -> tuple[Module, FunctionNode] | None:
        """Return a method of `cls` or of its in-repo base classes (first match in MRO order)."""
        seen: set[int] = set()
        stack: list[tuple[Module, ast.ClassDef]] = [(cls_mod, cls)]
        while stack:
            mod, node = stack.pop(0)
            if id(node) in seen:
                continue
            seen.add(id(node))
            if not (skip_self and node is cls):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == name:
                        return mod, item
            stack.extend(self.base_classes(mod, node))
        return None

    def base_classes(self, mod: Module, cls: ast.ClassDef) -> list[tuple[Module, ast.ClassDef]]:
        """Return the in-repo classes `cls` inherits from (not itself: `class A(A)` re-binds)."""
        out = []
        for base in cls.bases:
            target = self.resolve(mod, base)
            found = self.lookup(target) if target else None
            if found and isinstance(found[1], ast.ClassDef) and not found[2] and found[1] is not cls:
                out.append((found[0], found[1]))
        return out


def affected_paths(projects: Sequence[Project], changed: Sequence[set[str]]) -> list[set[str]]:
    """Return, per tree, `changed` plus the files that import them, transitively.

    The cost follows the change: one `git grep` over all trees per level of importers,
    until no new importer appears (every file is looked at once at most).
    """
    results = [set(c) for c in changed]
    seen = [set(c) for c in changed]
    frontiers = [set(c) for c in changed]
    while True:
        names = {
            n
            for project, frontier in zip(projects, frontiers, strict=True)
            for p in frontier
            for n in project.module_names(p)
        }
        if not names:
            break
        hits = grep_importers([p.tree for p in projects], names)
        next_frontiers: list[set[str]] = []
        for i, project in enumerate(projects):
            fresh = hits[i] - seen[i]
            seen[i] |= fresh
            confirmed: set[str] = set()
            for path in sorted(fresh):
                try:
                    mod = project.module(path, report=False)
                except SourceError:
                    continue
                if project.imports_any(mod, frontiers[i]):
                    confirmed.add(path)
            results[i] |= confirmed
            next_frontiers.append(confirmed)
        frontiers = next_frontiers
        if not any(frontiers):
            break
    return results
