"""Synthesized in-flight executions for the Python SDK engines: record the BASE code on the engine
itself, then replay what was recorded on HEAD with the same runner as production histories.

The SDK-side work is the engine's driver script (`ReplayKit.synth_driver`), run in the user's
interpreter with the scrubbed environment replay uses, in a folder holding the base tree written
from git objects. Temporal's driver records on a real server (`bot.engines.temporal.devserver`); Cadence's
runs the SDK's own decision engine. Every history it writes is labelled `synthesized from base`.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.config import SynthesisConfig
from bot.engines.python.pool import find_python, scrubbed_env
from bot.engines.python.pyast import Project, SourceError
from bot.engines.python.replay import ReplayKit, _module_names, materialize, run_replay
from bot.errors import UserError
from bot.histories import ReplayOptions, default_cache
from bot.model import ReplayResult, ReplaySummary, SynthesizedWorkflow, WorkflowModel
from bot.repo import FileUnreadable, grep_paths

LABEL = "synthesized from base"
# What the driver may take beyond its recording budget: starting, importing, writing files.
SLACK_SECONDS = 90.0


class NoServer(Exception):
    """No server to record on can be had: the message says why, in one line."""


# `temporal.dev_server` (or None) → a context giving the address of a server to record on.
ServerFactory = Callable[[str | None], AbstractContextManager[str]]


@dataclass
class Recorded:
    """What one engine's synthesis recorded and what replaying it on head showed."""

    results: list[ReplayResult] = field(default_factory=list)
    summary: ReplaySummary = field(default_factory=ReplaySummary)
    workflows: list[SynthesizedWorkflow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: str | None = None  # why nothing could be recorded


class Servers:
    """The engines' recording servers for one check, started on first use (synthesis, then the
    rollback proof) and stopped when the check ends."""

    def __init__(self, configured: str | None) -> None:
        self.configured = configured
        self._stack = contextlib.ExitStack()
        self._started: dict[int, tuple[str | None, str | None]] = {}

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def get(self, factory: ServerFactory | None) -> tuple[str | None, str | None]:
        """(address, why there is none); (None, None) for an engine that records without a server."""
        if factory is None:
            return None, None
        key = id(factory)
        if key not in self._started:
            try:
                self._started[key] = (self._stack.enter_context(factory(self.configured)), None)
            except NoServer as exc:
                self._started[key] = (None, str(exc))
        return self._started[key]


MAX_HINTS = 6


def labels_file(kept: Path) -> Path:
    """Where the labels of histories kept in `kept` are written (beside it: the folder holds histories only)."""
    return kept.with_name(f"{kept.name}.labels.json")


def _constant(node: ast.expr, names: dict[str, ast.expr]) -> object:
    if isinstance(node, ast.Name | ast.Attribute):
        found = names.get(node.id if isinstance(node, ast.Name) else node.attr)
        return _constant(found, {}) if found is not None else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float):
        return None if isinstance(node.value, bool) else node.value
    return None


def literal_hints(modules: Sequence[ast.Module]) -> list[object]:
    """Values a workflow's code compares against (`x == "card"`, `total > LIMIT`, `s in ("a", "b")`,
    `s.startswith("vip")`):
    candidates that take the branches they guard. Numbers come with the next one up (for `>`)."""
    found: list[object] = []
    for tree in modules:
        names: dict[str, ast.expr] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
                if name:
                    names.setdefault(name, node.value)
            elif (
                isinstance(node, ast.AnnAssign)
                and node.value is not None
                and isinstance(node.target, ast.Name)
            ):
                names.setdefault(node.target.id, node.value)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("startswith", "endswith")
                and node.args
            ):
                # `key.startswith("again")`: the prefix itself takes the branch.
                first = node.args[0]
                for item in first.elts if isinstance(first, ast.Tuple) else [first]:
                    value = _constant(item, names)
                    if isinstance(value, str) and value:
                        found.append(value)
                continue
            if not isinstance(node, ast.Compare):
                continue
            for operand in [node.left, *node.comparators]:
                items = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                for item in items:
                    value = _constant(item, names)
                    if value is None or value == "":
                        continue
                    found.append(value)
                    if isinstance(value, int):
                        found.append(value + 1)
    return list(dict.fromkeys(found))[:MAX_HINTS]


def _driver_config(
    kit: ReplayKit, base: Project, head: Project, models: Sequence[WorkflowModel], root: Path
) -> dict[str, Any]:
    workflows: list[dict[str, Any]] = []
    hints: dict[str, list[object]] = {}
    paths: list[str] = []
    roots_of: set[str] = set()
    for model in models:
        names, roots = _module_names(base, model.path)
        roots_of.update(roots)
        workflows.append(
            {"type": model.id, "modules": names, "class": model.class_name, "file": str(root / model.path)}
        )
        paths.extend(str(root / r) for r in roots)
        # Read, never run: head's text says which values its new conditions test.
        trees: list[ast.Module] = []
        for project in (base, head):
            try:
                trees.append(project.module(model.path, report=False).tree)
            except (SourceError, FileUnreadable, KeyError):
                continue  # gone or unreadable on that side: the other side's values still help
        hints[model.id] = literal_hints(trees)
    # Activities named by string are registered where the workflow's own source root defines them:
    # only those modules are imported (not the rest of a monorepo), so the cost follows the change.
    activity_modules: list[str] = []
    for path in sorted(grep_paths(base.tree, kit.activity_mark)):
        names, found = _module_names(base, path)
        if names and any(r in roots_of for r in found):
            activity_modules.append(names[0])
    return {
        "paths": list(dict.fromkeys(paths)) or [str(root)],
        "workflows": workflows,
        "activity_modules": activity_modules,
        "hints": hints,
    }


def _run_driver(
    kit: ReplayKit, python: str, config: dict[str, Any], cwd: Path, seconds: float
) -> list[dict[str, Any]]:
    assert kit.synth_driver is not None
    config_file = cwd.parent / "synthesis.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.Popen(
        [python, str(kit.synth_driver), str(config_file)],
        cwd=cwd,
        env=scrubbed_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the SDK's logs may quote payloads: never shown
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=seconds + SLACK_SECONDS)
        late = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        late = True
    lines: list[dict[str, Any]] = []
    for raw in out.decode("utf-8", errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue  # user code printing to stdout: not ours to show
        if isinstance(line, dict) and "kind" in line:
            lines.append(line)
    if late:
        lines.append(
            {"kind": "error", "type": None, "message": "the driver did not finish within its budget"}
        )
    if proc.returncode not in (0, None) and not any(x.get("kind") == "done" for x in lines):
        lines.append({"kind": "error", "type": None, "message": f"the driver exited with {proc.returncode}"})
    return lines


def synthesize(
    kit: ReplayKit,
    base: Project,
    head: Project,
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]],
    targets: Sequence[str],
    settings: SynthesisConfig,
    options: ReplayOptions,
    address: str | None,
    keep: Path | None = None,
) -> Recorded:
    """Record executions of the base code of `targets` (definition ids) and replay them on head.

    `keep`: a folder to copy the recorded histories into (the outline proof replays them again).
    """
    recorded = Recorded()
    chosen = [(t, m) for t in targets if (m := pairs[t][0]) is not None]
    models = [m for _, m in chosen]
    if not models or kit.synth_driver is None:
        return recorded
    try:
        python, why = find_python(options.python, kit.sdk)
    except UserError as exc:
        recorded.failed = str(exc)
        return recorded
    with tempfile.TemporaryDirectory(prefix="inflight-guard-synthesis-") as scratch:
        root, out = Path(scratch) / "base", Path(scratch) / "histories"
        root.mkdir()
        out.mkdir()
        materialize(base.tree, root)
        config = _driver_config(kit, base, head, models, root)
        config.update(
            out=str(out),
            address=address,
            executions=settings.executions,
            histories=settings.histories,
            max_events=settings.max_events,
            seconds=settings.seconds,
            # Kept across runs (they cost seconds to compute), whether or not histories are cached.
            hypothesis_home=str((options.cache or default_cache()) / "hypothesis"),
        )
        lines = _run_driver(kit, python, config, root, settings.seconds)
        labels: dict[str, str] = {}
        types: dict[str, str] = {}
        reached: dict[str, dict[str, Any]] = {}
        for line in lines:
            kind = line.get("kind")
            if kind == "history" and isinstance(line.get("file"), str):
                path = str(Path(line["file"]).resolve())
                labels[path] = f"{LABEL}: {line.get('type')}/{line.get('variant')}@{line.get('event_id')}"
                types[path] = str(line.get("type"))
            elif kind == "reached":
                reached[str(line.get("type"))] = line
            elif kind == "error":
                who = f"{line['type']}: " if line.get("type") else ""
                recorded.errors.append(f"{who}{line.get('message', '')}")
            elif kind == "ready":
                for problem in line.get("import_errors", []):
                    recorded.errors.append(
                        f"{problem.get('type')}: base module {problem.get('module')} failed to import"
                    )
        if keep is not None and labels:
            kept: dict[str, str] = {}
            for path, name in labels.items():
                target = keep / Path(path).relative_to(out.resolve())
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                kept[str(target.resolve())] = name
            labels_file(keep).write_text(json.dumps(kept), encoding="utf-8")
        if not labels:
            recorded.failed = "; ".join(recorded.errors) or "the driver recorded no history"
        else:
            results, summary = run_replay(
                pairs,
                set(),
                base,
                head,
                replace(
                    options,
                    sources=[str(out)],
                    python=python,
                    accept=None,
                    wanted=None,
                    shard=None,
                    replay_all=False,
                    cache=None,
                    progress=None,
                ),
                kit,
            )
            for r in results:
                label = labels.get(str(Path(r.history).resolve()))
                if label is not None:
                    recorded.results.append(r.model_copy(update={"history": label, "synthesized": True}))
            recorded.summary = summary.model_copy(update={"interpreter": f"{python} ({why})"})
    by_type = {m.id: t for t, m in chosen}
    for model in models:
        line = reached.get(model.id, {})
        mine = [r for r in recorded.results if r.workflow_type == model.id]
        recorded.workflows.append(
            SynthesizedWorkflow(
                engine=kit.engine,
                workflow_type=model.id,
                definition=by_type.get(model.id),
                executions=int(line.get("executions", 0)),
                histories=len(mine),
                failed=sum(1 for r in mine if r.failed),
                commands=[str(c) for c in line.get("commands", [])],
                variants=[str(v) for v in line.get("variants", [])],
                truncated=bool(line.get("truncated", False)),
            )
        )
    return recorded
