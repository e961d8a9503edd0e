"""What every Python-SDK engine shares: find changed workflow modules, extract, pair and diff them,
replay their histories in the user's interpreter, and turn what replay proved into facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Config, SynthesisConfig
from bot.engines.base import Analysis
from bot.engines.python.diff import diff_workflows
from bot.engines.python.pyast import (
    TOO_DEEP,
    Project,
    SourceError,
    affected_paths,
    deepest_line,
    suppressions,
)
from bot.engines.python.replay import ReplayKit, run_replay
from bot.histories import ReplayOptions
from bot.model import (
    Change,
    Definition,
    Finding,
    Location,
    Picture,
    ReplayResult,
    ReplaySummary,
    WorkflowModel,
)
from bot.repo import FileChange, FileUnreadable, SourceTree

if TYPE_CHECKING:
    from bot.engines.python.synthesis import Recorded


@dataclass
class PythonContext:
    """What the plan and replay stages need: both projects and the paired models."""

    base: Project
    head: Project
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]]


def context_of(analysis: Analysis) -> PythonContext:
    context = analysis.context
    assert isinstance(context, PythonContext)
    return context


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


class PythonEngine:
    """An engine whose workflows are Python classes walked by `bot.engines.python.pywalk`."""

    name = ""
    noun = ""
    # `--replay-all` replays every workflow class of head (inventory of the head tree).
    replays_all = True
    # Words a module must mention to be worth parsing (cheap text test before `ast`).
    relevant: tuple[str, ...] = ()
    # A module that mentions another SDK (`foreign`) and not this one (`own`) belongs to that SDK's engine.
    own: str = ""
    foreign: tuple[str, ...] = ()
    # The SDK module, its replay runner and the extractor of its workflow classes.
    kit: ReplayKit

    def extract_module(self, project: Project, path: str) -> list[WorkflowModel]:
        return self.kit.extract(project, path)

    def pictures(self, analysis: Analysis) -> list[Picture]:
        from bot.engines.python.picture import pictures

        if not isinstance(analysis.context, PythonContext):
            return []
        return pictures(self.name, analysis.context.pairs, analysis.definitions)

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        context = context_of(analysis)
        pinned = {d.id for d in analysis.definitions if d.pinned}
        return run_replay(context.pairs, pinned, context.base, context.head, options, self.kit)

    def synthesize(
        self,
        analysis: Analysis,
        targets: Sequence[str],
        settings: SynthesisConfig,
        options: ReplayOptions,
        address: str | None,
        keep: Path | None = None,
    ) -> Recorded:
        """Record in-flight executions of the base code of `targets` and replay them on head
        (`keep`: where to copy the recorded histories)."""
        from bot.engines.python.synthesis import synthesize

        context = context_of(analysis)
        return synthesize(
            self.kit, context.base, context.head, context.pairs, targets, settings, options, address, keep
        )

    def replay_changes(
        self,
        results: Sequence[ReplayResult],
        summary: ReplaySummary,
        definitions: Sequence[Definition],
        static: Sequence[Finding],
    ) -> list[Change]:
        from bot.engines.python.evidence import replay_changes

        return replay_changes(results, summary, definitions, static, engine=self.name)

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
                problems.append(_invalid(self.name, error, project.side))
        unique = {(c.location.side, c.location.path): c for c in problems}
        found = [s for mod in head_project.loaded() for s in suppressions(mod.path, mod.text)]
        return Analysis(
            engine=self.name,
            changes=[*unique.values(), *changes],
            definitions=definitions,
            suppressions=found,
            context=PythonContext(base=base_project, head=head_project, pairs=pairs),
        )

    def _extract(self, project: Project, paths: set[str], problems: list[Change]) -> list[WorkflowModel]:
        models: list[WorkflowModel] = []
        for path in sorted(paths):
            if project.tree.is_symlink(path):
                continue  # its target is a file of its own
            try:
                text = project.tree.read(path)
            except FileUnreadable as exc:
                if project.tree.mentions(path, self.relevant):
                    problems.append(_invalid(self.name, SourceError(path, 1, exc.reason), project.side))
                continue
            if not any(word in text for word in self.relevant):
                continue
            if self.own not in text and any(word in text for word in self.foreign):
                continue
            try:
                models.extend(self.extract_module(project, path))
            except SourceError as exc:
                problems.append(_invalid(self.name, exc, project.side))
            except RecursionError:  # an expression deeper than the walker's stack: not analysable
                problems.append(_invalid(self.name, _too_deep(project, path), project.side))
        return models


def _too_deep(project: Project, path: str) -> SourceError:
    """The error for a file whose walk ran out of stack, at its most deeply nested line."""
    try:
        line = deepest_line(project.module(path, report=False).tree)
    except SourceError:
        line = 1
    return SourceError(path, line, TOO_DEEP)


def _invalid(engine: str, error: SourceError, side: str) -> Change:
    prefix = "" if side == "head" else "base version: "
    return Change(
        kind=f"{engine}.source.invalid",
        engine=engine,
        definition="",
        location=Location(path=error.path, line=error.line, side=side),
        details={"message": f"{prefix}{error.path}:{error.line}: {error.message}"},
    )
