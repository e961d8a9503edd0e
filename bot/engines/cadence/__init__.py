"""Cadence (cadence-python-client): collect workflows from both trees, diff them, plan, replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.cadence.diff import VOCABULARY
from bot.engines.cadence.extract import extract_module
from bot.engines.pyast import Project
from bot.engines.pyengine import PythonEngine
from bot.histories import ReplayOptions
from bot.model import Change, Definition, Finding, InFlight, Plan, ReplayResult, ReplaySummary, WorkflowModel


@dataclass
class CadenceContext:
    """What the plan and replay need: both projects and the paired models."""

    base: Project
    head: Project
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]]


class CadenceEngine(PythonEngine):
    name = "cadence"
    relevant = ("cadence",)
    own, foreign = "cadence", ("temporalio",)
    vocabulary = VOCABULARY

    def extract_module(self, project: Project, path: str) -> list[WorkflowModel]:
        return extract_module(project, path)

    def context(
        self,
        base: Project,
        head: Project,
        pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]],
    ) -> CadenceContext:
        return CadenceContext(base=base, head=head, pairs=pairs)

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.cadence.plan import build_plan

        context = analysis.context
        assert isinstance(context, CadenceContext)
        return build_plan(context, findings, config)

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        from bot.engines.temporal.replay import ReplayKit, run_replay

        context = analysis.context
        assert isinstance(context, CadenceContext)
        kit = ReplayKit(
            sdk="cadence",
            runner=Path(__file__).with_name("runner.py"),
            extract=extract_module,
            mentions=r"workflow",
        )
        return run_replay(context.pairs, set(), context.base, context.head, options, kit)

    def replay_changes(
        self,
        results: Sequence[ReplayResult],
        summary: ReplaySummary,
        definitions: Sequence[Definition],
        static: Sequence[Finding],
    ) -> list[Change]:
        from bot.engines.temporal.evidence import replay_changes

        return replay_changes(results, summary, definitions, static, engine=self.name)

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        # Cadence's frontend speaks gRPC/TChannel; no live count yet (drained: / --in-flight work).
        return {}
