"""Temporal (Python SDK): collect workflows from both trees, diff them, plan the rollout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.pyast import Project, SourceError, affected_paths, suppressions
from bot.engines.temporal.diff import VOCABULARY, diff_workflows
from bot.engines.temporal.extract import extract_module
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
    WorkflowModel,
)
from bot.repo import FileChange, FileUnreadable, SourceTree

RELEVANT = ("temporalio", "workflow")


@dataclass
class TemporalContext:
    """What the plan stage needs: both projects and the paired models."""

    base: Project
    head: Project
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]]


def _select(files: Sequence[FileChange]) -> tuple[set[str], set[str], dict[str, str]]:
    """Return the changed Python paths on each side, and renames (base path → head path)."""
    base: set[str] = set()
    head: set[str] = set()
    renames: dict[str, str] = {}
    for f in files:
        for path, side in ((f.base_path, base), (f.head_path, head)):
            if path and path.endswith(".py"):
                side.add(path)
        if f.base_path and f.head_path and f.base_path != f.head_path:
            renames[f.base_path] = f.head_path
    return base, head, renames


class TemporalEngine:
    name = "temporal"
    vocabulary = VOCABULARY

    def analyze(
        self, base: SourceTree, head: SourceTree, files: Sequence[FileChange], config: Config
    ) -> Analysis:
        base_project, head_project = Project(base), Project(head)
        # Every changed module counts (an activity's name may change anywhere); `paths` only
        # chooses which workflow files are judged.
        changed_base, changed_head, renames = _select(files)
        base_paths, head_paths = affected_paths([base_project, head_project], [changed_base, changed_head])
        # Compare the same files on both sides, following renames.
        back = {v: k for k, v in renames.items()}
        head_paths |= {renames.get(p, p) for p in base_paths if head.has(renames.get(p, p))}
        base_paths |= {back.get(p, p) for p in head_paths if base.has(back.get(p, p))}
        base_paths = {p for p in base_paths if config.paths.allows(p)}
        head_paths = {p for p in head_paths if config.paths.allows(p)}

        problems: list[Change] = []
        base_models = self._extract(base_project, base_paths, problems)
        head_models = self._extract(head_project, head_paths, problems)
        # A file unreadable on either side cannot be compared: its definitions would look
        # removed or added. The error finding speaks for them instead.
        unknown = {c.location.path for c in problems}
        unknown |= {renames.get(p, p) for p in unknown} | {back.get(p, p) for p in unknown}
        incomplete = {m.id for m in (*base_models, *head_models) if m.unreadable}
        base_models = [m for m in base_models if m.path not in unknown and m.id not in incomplete]
        head_models = [m for m in head_models if m.path not in unknown and m.id not in incomplete]
        changes, definitions, pairs = diff_workflows(base_models, head_models)
        for project in (base_project, head_project):
            for error in project.errors.values():
                problems.append(_invalid(error, project.side))
        unique = {(c.location.side, c.location.path): c for c in problems}
        found = [s for mod in head_project.loaded() for s in suppressions(mod.path, mod.text)]
        return Analysis(
            engine=self.name,
            changes=[*unique.values(), *changes],
            definitions=definitions,
            suppressions=found,
            context=TemporalContext(base=base_project, head=head_project, pairs=pairs),
        )

    def _extract(self, project: Project, paths: set[str], problems: list[Change]) -> list[WorkflowModel]:
        models: list[WorkflowModel] = []
        for path in sorted(paths):
            if project.tree.is_symlink(path):
                continue  # its target is a file of its own
            try:
                text = project.tree.read(path)
            except FileUnreadable as exc:
                if project.tree.mentions(path, RELEVANT):
                    problems.append(_invalid(SourceError(path, 1, exc.reason), project.side))
                continue
            if not any(word in text for word in RELEVANT):
                continue
            try:
                models.extend(extract_module(project, path))
            except SourceError as exc:
                problems.append(_invalid(exc, project.side))
        return models

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.temporal.plan import build_plan

        context = analysis.context
        assert isinstance(context, TemporalContext)
        return build_plan(context, findings, config)

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        from bot.engines.temporal.replay import run_replay

        context = analysis.context
        assert isinstance(context, TemporalContext)
        pinned = {d.id for d in analysis.definitions if d.pinned}
        return run_replay(context.pairs, pinned, context.base, context.head, options)

    def replay_changes(
        self,
        results: Sequence[ReplayResult],
        summary: ReplaySummary,
        definitions: Sequence[Definition],
        static: Sequence[Finding],
    ) -> list[Change]:
        from bot.engines.temporal.evidence import replay_changes

        return replay_changes(results, summary, definitions, static)

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        from bot.engines.temporal.inflight import live_figures

        if not address:
            return {}
        wanted = {
            d.id: d.id.split(" (", 1)[0]
            for d in definitions
            if d.engine == self.name and d.status in ("changed", "removed")
        }
        figures = live_figures(address, config.temporal.namespace, sorted(set(wanted.values())))
        return {def_id: figures[t] for def_id, t in wanted.items() if t in figures}


def _invalid(error: SourceError, side: str) -> Change:
    prefix = "" if side == "head" else "base version: "
    return Change(
        kind="temporal.source.invalid",
        engine="temporal",
        definition="",
        location=Location(path=error.path, line=error.line, side=side),
        details={"message": f"{prefix}{error.path}:{error.line}: {error.message}"},
    )
