"""Temporal (Python SDK): collect workflows from both trees, diff them, plan the rollout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.pyast import Project
from bot.engines.pyengine import PythonEngine
from bot.engines.temporal.diff import VOCABULARY
from bot.engines.temporal.extract import extract_module
from bot.histories import ReplayOptions
from bot.model import (
    Change,
    Definition,
    Finding,
    InFlight,
    Plan,
    ReplayResult,
    ReplaySummary,
    WorkflowModel,
)


@dataclass
class TemporalContext:
    """What the plan stage needs: both projects and the paired models."""

    base: Project
    head: Project
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]]


class TemporalEngine(PythonEngine):
    name = "temporal"
    relevant = ("temporalio", "workflow")
    own, foreign = "temporalio", ("cadence",)
    vocabulary = VOCABULARY

    def extract_module(self, project: Project, path: str) -> list[WorkflowModel]:
        return extract_module(project, path)

    def context(
        self,
        base: Project,
        head: Project,
        pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]],
    ) -> TemporalContext:
        return TemporalContext(base=base, head=head, pairs=pairs)

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
