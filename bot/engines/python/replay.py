"""Replay exported histories against the HEAD code, in the user's interpreter.

The head tree is materialized in a temporary folder; runners (runner.py) import its
workflow modules there and replay each history, sandboxed as in production. Each raw
result is classified here against both trees: a type the head no longer defines is a
failure (its executions would find no code), an unchanged type is skipped unless
`replay_all`, a PINNED one is skipped with the reason. A failure's SDK text is read for its
code and facts (failure.py), written to `--replay-log` when asked, and dropped here.
"""

from __future__ import annotations

import functools
import itertools
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.engines.python.failure import Explained, Names, declared_names
from bot.engines.python.pool import Pool, RunnerSetup, find_python
from bot.engines.python.pyast import Project, SourceError
from bot.errors import UserError
from bot.histories import HistoryItem, ReplayOptions, SourceStats, iter_histories
from bot.model import ImportProblem, ReplayResult, ReplaySummary, WorkflowModel
from bot.repo import FileUnreadable, SourceTree, grep_paths

PINNED_REASON = (
    "versioning_behavior=PINNED: its executions stay on the build that started them "
    "(confirm the workers run with use_worker_versioning=True)"
)


# (outcome, runner line, the failure's text, what may be named) → code and sentence.
Explain = Callable[[str, dict[str, Any], str | None, Names], Explained]


@dataclass(frozen=True)
class ReplayKit:
    """What one Python SDK's replay needs: its module, its runner script, its extractor, and how its
    failures read."""

    sdk: str
    runner: Path
    extract: Callable[[Project, str], list[WorkflowModel]]
    mentions: str  # what a workflow file must mention (a cheap grep before parsing)
    engine: str
    explain: Explain
    # Synthesis: the driver script recording base executions (None: the engine has none), whether it
    # records on a server, and what an activity module mentions.
    synth_driver: Path | None = None
    server: Callable[[str | None], AbstractContextManager[str]] | None = None
    activity_mark: str = r"activity\.defn"


@dataclass
class _Definitions:
    """What each workflow type is on each side, and which types this run replays."""

    replay: dict[str, WorkflowModel] = field(default_factory=dict)
    definition: dict[str, str] = field(default_factory=dict)  # type → definition id in the report
    pinned: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    names: dict[str, frozenset[str]] = field(default_factory=dict)  # type → names its code declares
    # Every type of each tree: read only when a history names a type this run does not replay (the
    # whole repository is walked then, so a check's cost grows with the change, not the repository).
    trees: tuple[Project, Project] | None = None
    kit: ReplayKit | None = None

    @functools.cached_property
    def base_types(self) -> set[str]:
        assert self.trees is not None and self.kit is not None
        return {m.id for m in inventory(self.trees[0], self.kit)}

    @functools.cached_property
    def head_types(self) -> set[str]:
        assert self.trees is not None and self.kit is not None
        return {m.id for m in inventory(self.trees[1], self.kit)}


def inventory(project: Project, kit: ReplayKit) -> list[WorkflowModel]:
    """Every workflow definition in a tree (only files that mention `kit.mentions` are parsed)."""
    models: list[WorkflowModel] = []
    for path in sorted(grep_paths(project.tree, kit.mentions)):
        if project.tree.is_symlink(path):
            continue
        try:
            models.extend(kit.extract(project, path))
        except (SourceError, FileUnreadable):
            continue
    return models


def _plan_targets(
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]],
    pinned: set[str],
    base: Project,
    head: Project,
    replay_all: bool,
    kit: ReplayKit,
) -> _Definitions:
    out = _Definitions(trees=(base, head), kit=kit)
    for def_id, (old, new) in pairs.items():
        model = new or old
        assert model is not None
        out.definition.setdefault(model.id, def_id)
        for side in (old, new):
            if side is not None:
                out.names[side.id] = out.names.get(side.id, frozenset()) | declared_names(side)
        if def_id in pinned:
            out.pinned.add(model.id)
            continue
        if new is not None:
            if new.id in out.replay and out.replay[new.id].path != new.path:
                out.notes.append(
                    f"workflow type `{new.id}` is defined in {out.replay[new.id].path} and {new.path}: "
                    f"its histories were replayed against {out.replay[new.id].path}"
                )
                continue
            out.replay.setdefault(new.id, new)
    if replay_all:
        for model in inventory(head, kit):
            if model.id not in out.replay and model.id not in out.pinned:
                out.replay[model.id] = model
                out.definition.setdefault(model.id, model.id)
                out.names[model.id] = out.names.get(model.id, frozenset()) | declared_names(model)
    return out


def _module_names(project: Project, path: str) -> tuple[list[str], list[str]]:
    """Return (dotted names to try, import roots) for a head file, nearest source root first."""
    names: list[str] = []
    roots: list[str] = []
    # The repository root last: a checkout whose root holds an `__init__.py` still imports from it.
    for root in dict.fromkeys([*project.import_roots(path), ""]):
        if not path.startswith(root):
            continue
        parts = path[len(root) : -3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.append(".".join(parts))
            roots.append(root)
    return names, roots


def materialize(tree: SourceTree, dest: Path) -> None:
    """Write the tree's files (from git objects, never the work tree) under `dest`."""
    proc = subprocess.Popen(
        ["git", "archive", "--format=tar", tree.sha],
        cwd=tree.repo.working_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
        archive.extractall(dest, filter=_inside)
    _, errors = proc.communicate()
    if proc.returncode != 0:
        raise UserError(
            f"could not materialize head {tree.sha[:12]}: {errors.decode(errors='replace').strip()}"
        )


def _inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """Extract what stays inside the folder; skip links that point out of it (absolute or `..`)."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None


def run_replay(
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]],
    pinned: set[str],
    base: Project,
    head: Project,
    options: ReplayOptions,
    kit: ReplayKit,
) -> tuple[list[ReplayResult], ReplaySummary]:
    """Replay every history of the sources; return one result per history and a summary."""
    started = time.perf_counter()
    results: list[ReplayResult] = []
    stats = SourceStats()
    with tempfile.TemporaryDirectory(prefix="inflight-guard-replay-") as scratch:
        head_dir = Path(scratch) / "head"
        spool = Path(scratch) / "spool"
        spool.mkdir()
        head_dir.mkdir()
        sources = iter_histories(options, spool, stats)
        first = next(sources, None)
        if first is None:
            # No history of this engine: no interpreter to find, no head to write, nothing to say
            # beyond what the sources held.
            summary = ReplaySummary(
                shards=[str(options.shard)] if options.shard else [],
                seconds=round(time.perf_counter() - started, 2),
                source_errors=stats.errors,
                notes=_source_notes(stats),
            )
            return [], summary
        items = itertools.chain([first], sources)
        plan = _plan_targets(pairs, pinned, base, head, options.replay_all, kit)
        python, why = find_python(options.python, kit.sdk)
        materialize(head.tree, head_dir)
        workflows: list[dict[str, Any]] = []
        paths: list[str] = []
        for type_name, model in sorted(plan.replay.items()):
            names, roots = _module_names(head, model.path)
            workflows.append(
                {
                    "type": type_name,
                    "modules": names,
                    "class": model.class_name,
                    "file": str(head_dir / model.path),
                }
            )
            paths.extend(str(head_dir / r) for r in roots)
        config = {
            "paths": list(dict.fromkeys(paths)) or [str(head_dir)],
            "workflows": workflows,
            "replay": sorted(plan.replay),
            "cache": str(options.cache) if options.cache else None,
        }
        setup = RunnerSetup(
            python=python,
            config=config,
            cwd=str(head_dir),
            timeout=options.timeout,
            jobs=options.jobs,
            runner=kit.runner,
        )

        def emit(item: HistoryItem, raw: dict[str, Any]) -> None:
            item.release()
            # The failure's SDK text: read for facts, logged redacted when asked, then gone.
            text, logged = raw.pop("text", None), raw.pop("raw", None)
            result = classify(item.name, raw, plan, text, kit, head_dir)
            if options.log is not None and result.failed:
                options.log.write(kit.engine, result, logged)
            results.append(result)
            if options.progress is not None:
                options.progress(result)

        pool_stats = Pool(setup, items, emit).run()
    ready = pool_stats.ready
    import_errors = [
        ImportProblem(
            workflow_type=e["type"],
            module=e["module"],
            path=_relative(e.get("path"), head_dir),
            line=e.get("line"),
            message=e.get("message", ""),
        )
        for e in ready.get("import_errors", [])
    ]
    results.sort(key=lambda r: r.history)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    notes = [*plan.notes, *_source_notes(stats)]
    summary = ReplaySummary(
        interpreter=f"{python} ({why})",
        sdk=str(ready.get("sdk", "")),
        python=str(ready.get("python", "")),
        jobs=options.jobs,
        shards=[str(options.shard)] if options.shard else [],
        seconds=round(time.perf_counter() - started, 2),
        counts=counts,
        import_errors=import_errors,
        source_errors=stats.errors,
        runner_error=pool_stats.fatal,
        notes=notes,
    )
    return results, summary


def _source_notes(stats: SourceStats) -> list[str]:
    """What the sources held beyond histories: empty sources, files that are no history export."""
    notes = [f"history source {s} holds no history files" for s in stats.empty]
    if stats.ignored:
        shown = ", ".join(stats.ignored[:5]) + (
            f" (+{len(stats.ignored) - 5} more)" if len(stats.ignored) > 5 else ""
        )
        notes.append(f"{len(stats.ignored)} files ignored (not .json, .binpb or .pb): {shown}")
    return notes


def _relative(path: str | None, root: Path) -> str | None:
    if not path:
        return None
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


def classify(
    name: str,
    raw: dict[str, Any],
    plan: _Definitions,
    text: str | None,
    kit: ReplayKit,
    head: Path | None,
) -> ReplayResult:
    """Turn one runner line into a result, judging types the runner did not replay.

    A failure the runner read (it names the exception) is told from facts: `text`, the SDK's own
    words, is only read here.
    """
    type_name = raw.get("type")
    outcome = str(raw.get("outcome", "error"))
    message = str(raw.get("message", ""))
    code: str | None = None
    if outcome in ("nondeterminism", "error") and "exception" in raw:
        names = Names(plan.names.get(str(type_name), frozenset()), head)
        explained = kit.explain(outcome, raw, text, names)
        code, message = explained.code, explained.message
    definition = plan.definition.get(type_name) if type_name else None
    if outcome == "unmatched":
        if type_name in plan.pinned:
            outcome, message = "skipped", PINNED_REASON
        elif type_name in plan.replay:
            # Registered but not loaded: its head module failed to import (one finding says why).
            outcome, message = "skipped", "not replayed: the head code of this type failed to import"
        elif type_name in plan.base_types and type_name not in plan.head_types:
            outcome = "error"
            message = f"no definition of `{type_name}` in head: its executions would find no code"
            definition = definition or type_name
        elif type_name in plan.head_types:
            outcome = "skipped"
            message = "not affected by this change (pass --replay-all to replay it)"
            definition = None
        else:
            message = f"no definition of `{type_name}` on either side"
            definition = None
    closed = raw.get("closed")
    return ReplayResult(
        history=name,
        definition=definition,
        outcome=outcome,
        event_id=raw.get("event_id"),
        message=message,
        code=code,
        duration_ms=raw.get("duration_ms"),
        workflow_type=type_name,
        run_id=raw.get("run_id"),
        open=None if type_name is None else closed is None,
        events=raw.get("events"),
        event=raw.get("event"),
        started=raw.get("start"),
        closed=raw.get("end"),
        task_queue=raw.get("task_queue"),
        waits_until=raw.get("waits_until"),
        waits_on=raw.get("waits_on"),
    )
