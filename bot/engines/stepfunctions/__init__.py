"""AWS Step Functions (ASL): collect state machines from both trees, diff them, replay executions.

State machines live in `*.asl.json` / `*.asl.yaml`, in any JSON/YAML file that is one
(`StartAt` + `States`), and in CloudFormation / SAM templates. A running Standard execution
keeps the definition it started with, so definition changes are judged for the NEXT
executions (and for redrive); what a Task calls by an unqualified reference is judged for the
running ones.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.stepfunctions.diff import VOCABULARY, diff_machines
from bot.engines.stepfunctions.extract import SFN_TYPES, NotAnalysable, extract_file, looks_relevant
from bot.engines.stepfunctions.model import StateMachine
from bot.histories import ReplayOptions
from bot.model import (
    Change,
    Definition,
    Finding,
    InFlight,
    Location,
    Plan,
    ReplayResult,
    ReplaySummary,
    Suppression,
)
from bot.repo import FileChange, FileUnreadable, SourceTree, git_grep

EXTENSIONS = (".json", ".yaml", ".yml", ".template")
SUPPRESSION = re.compile(r"inflight-guard:\s*ignore\[([^\]]*)\]\s*(.*)")


@dataclass
class Side:
    """What one tree holds: its state machines and its templates' resources by path."""

    machines: list[StateMachine] = field(default_factory=list)
    resources: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # template path → Resources
    texts: dict[str, str] = field(default_factory=dict)  # path → text of every file read


@dataclass
class StepFunctionsContext:
    base: Side
    head: Side
    pairs: dict[str, tuple[StateMachine | None, StateMachine | None]]
    names: dict[str, str] = field(default_factory=dict)  # definition id → deployed name (config)


def _templates(tree: SourceTree) -> set[str]:
    """Paths of the tree's files that declare a state machine resource (one `git grep`)."""
    return git_grep([tree], [re.escape(t) for t in SFN_TYPES], "-E", paths=[f"*{e}" for e in EXTENSIONS])[0]


class StepFunctionsEngine:
    name = "stepfunctions"
    noun = "Step Functions state machine"
    # A running execution keeps its definition: one the change leaves alone replays the same on head.
    replays_all = False
    vocabulary = VOCABULARY

    def analyze(
        self, base: SourceTree, head: SourceTree, files: Sequence[FileChange], config: Config
    ) -> Analysis:
        changed = {p for f in files for p in (f.base_path, f.head_path) if p}
        candidates = {p for p in changed if p.endswith(EXTENSIONS)}
        if not candidates and not changed:
            return Analysis(engine=self.name)
        problems: list[Change] = []
        sides: list[Side] = []
        for tree in (base, head):
            paths = (candidates | _templates(tree)) if changed else set()
            paths = {p for p in paths if config.paths.allows(p)}
            # A file that held a state machine in base must still read as one in head.
            strict = {x for m in sides[0].machines for x in (m.path, m.source) if x} if sides else set()
            sides.append(self._collect(tree, paths, problems, strict))
        base_side, head_side = sides
        # A file unreadable on either side cannot be compared: the error finding speaks for it.
        unknown = {c.location.path for c in problems}
        for side in sides:
            side.machines = [m for m in side.machines if m.path not in unknown and m.source not in unknown]
        targets = _changed_targets(base_side, head_side, changed)
        relevant = [m for m in base_side.machines if _touched(m, changed)]
        relevant_head = [m for m in head_side.machines if _touched(m, changed) or _calls(m, targets)]
        ids = {m.id for m in relevant} | {m.id for m in relevant_head}
        base_models = [m for m in base_side.machines if m.id in ids]
        head_models = [m for m in head_side.machines if m.id in ids]
        changes, definitions = diff_machines(base_models, head_models, targets)
        found: list[Suppression] = []
        for m in head_models:
            found += _suppressions(m)
        pairs = {
            i: (
                next((m for m in base_models if m.id == i), None),
                next((m for m in head_models if m.id == i), None),
            )
            for i in sorted(ids)
        }
        return Analysis(
            engine=self.name,
            changes=[*problems, *changes],
            definitions=definitions,
            suppressions=found,
            context=StepFunctionsContext(
                base=base_side, head=head_side, pairs=pairs, names=dict(config.stepfunctions.names)
            ),
        )

    def _collect(self, tree: SourceTree, paths: set[str], problems: list[Change], strict: set[str]) -> Side:
        side = Side()
        loaded: set[str] = set()
        found: list[StateMachine] = []

        def read(path: str) -> str | None:
            try:
                side.texts[path] = tree.read(path)
            except FileUnreadable:
                return None
            return side.texts[path]

        for path in sorted(paths):
            try:
                text = tree.read(path)
            except FileUnreadable as exc:
                if "not present" not in exc.reason and tree.mentions(path, ("StartAt", *SFN_TYPES)):
                    problems.append(_unreadable(path, 1, exc.reason, tree.side))
                continue
            if not looks_relevant(text) and path not in strict:
                continue
            side.texts[path] = text
            try:
                found_here = extract_file(path, text, read, strict=path in strict)
            except NotAnalysable as exc:
                problems.append(_unreadable(path, exc.line, exc.message, tree.side))
                continue
            except RecursionError:
                problems.append(_unreadable(path, 1, "nested too deeply to read", tree.side))
                continue
            loaded |= found_here.loaded
            found += found_here.machines
            if found_here.resources is not None:
                side.resources[path] = found_here.resources
        # A file a template loads with DefinitionUri is that template's machine, not one of its own.
        side.machines = [m for m in found if m.template or m.path not in loaded]
        seen: dict[str, int] = {}
        for m in side.machines:
            seen[m.id] = seen.get(m.id, 0) + 1
        for m in side.machines:
            if seen[m.id] > 1:
                m.id = f"{m.id} ({m.path})"
        return side

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.stepfunctions.plan import build_plan

        context = analysis.context
        if not isinstance(context, StepFunctionsContext):
            return Plan()
        return build_plan(context, findings, analysis.definitions, config)

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        from bot.engines.stepfunctions.replay import run_replay

        context = analysis.context
        if not isinstance(context, StepFunctionsContext):
            # No state machine was read: every execution is named as one the change does not touch.
            return run_replay({}, options)
        return run_replay(context.pairs, options, context.names)

    def replay_changes(
        self,
        results: Sequence[ReplayResult],
        summary: ReplaySummary,
        definitions: Sequence[Definition],
        static: Sequence[Finding],
    ) -> list[Change]:
        from bot.engines.stepfunctions.evidence import replay_changes

        return replay_changes(results, summary, definitions, static)

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        from bot.engines.stepfunctions.inflight import credentials_available, live_figures

        mine = [
            d
            for d in definitions
            if d.engine == self.name and d.status in ("changed", "removed", "unchanged")
        ]
        if not mine or config.stepfunctions.live_counts == "off" or not credentials_available():
            return {}
        names = {d.id: config.stepfunctions.names.get(d.id, d.id) for d in mine}
        figures = live_figures(sorted(set(names.values())), config.stepfunctions.region)
        return {def_id: figures[n] for def_id, n in names.items() if n in figures}


def _touched(m: StateMachine, changed: set[str]) -> bool:
    return m.path in changed or (m.source is not None and m.source in changed)


def _calls(m: StateMachine, targets: set[str]) -> bool:
    return any(r.target in targets for refs in m.references.values() for r in refs if not r.qualified)


def _changed_targets(base: Side, head: Side, changed: set[str]) -> set[str]:
    """Template resources (functions, state machines) this change alters: what unpinned calls reach."""
    out: set[str] = set()
    for path, resources in head.resources.items():
        before = base.resources.get(path, {})
        folder = posixpath.dirname(path)
        for logical, resource in resources.items():
            if not isinstance(resource, Mapping):
                continue
            if logical in before and before[logical] != resource:
                out.add(str(logical))
            props = resource.get("Properties")
            code = props.get("CodeUri") if isinstance(props, Mapping) else None
            if isinstance(code, str) and not code.startswith("s3://"):
                root = posixpath.normpath(posixpath.join(folder, code))
                prefix = "" if root == "." else root.rstrip("/") + "/"
                if any(p.startswith(prefix) or p == root for p in changed):
                    out.add(str(logical))
    base_by = {m.resource or m.id: m for m in base.machines}
    for m in head.machines:
        old = base_by.get(m.resource or m.id)
        if old is not None and old.digest != m.digest:
            out.add(m.resource or m.id)
    return out


def _suppressions(m: StateMachine) -> list[Suppression]:
    """`"Comment": "inflight-guard: ignore[SFN104] reason"` on a state covers that state's lines."""
    out: list[Suppression] = []
    path = m.source or m.path
    for s in m.states.values():
        comment = s.body.get("Comment")
        if not isinstance(comment, str):
            continue
        match = SUPPRESSION.search(comment)
        if match:
            ids = tuple(i.strip() for i in match.group(1).split(",") if i.strip())
            out.append(
                Suppression(
                    rules=ids,
                    reason=match.group(2).strip(),
                    location=Location(path=path, line=s.line, end_line=s.end_line),
                )
            )
    return out


def _unreadable(path: str, line: int, message: str, side: str) -> Change:
    prefix = "" if side == "head" else "base version: "
    return Change(
        kind="sfn.definition.invalid",
        engine="stepfunctions",
        definition="",
        location=Location(path=path, line=line, side="head" if side == "head" else "base"),
        details={"code": "UNREADABLE", "message": f"{prefix}{path}:{line}: {message}", "parse": True},
    )
