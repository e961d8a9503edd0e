"""Cadence (cadence-python-client): collect workflows from both trees, diff them, plan, replay."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.cadence.extract import extract_module
from bot.engines.cadence.failure import explain_line
from bot.engines.cadence.vocabulary import VOCABULARY
from bot.engines.python.pyengine import PythonEngine, context_of
from bot.engines.python.replay import ReplayKit
from bot.model import Definition, Finding, InFlight, Plan


class CadenceEngine(PythonEngine):
    name = "cadence"
    noun = "Cadence workflow"
    relevant = ("cadence",)
    own, foreign = "cadence", ("temporalio",)
    vocabulary = VOCABULARY
    kit = ReplayKit(
        sdk="cadence",
        runner=Path(__file__).with_name("runner.py"),
        extract=extract_module,
        mentions=r"workflow",
        engine="cadence",
        explain=explain_line,
        synth_driver=Path(__file__).with_name("synth_driver.py"),
    )

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.cadence.plan import build_plan

        return build_plan(context_of(analysis), findings, config)

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        # Cadence's frontend speaks gRPC/TChannel: no live count (use `drained:` or histories).
        return {}
