"""Temporal (Python SDK): collect workflows from both trees, diff them, plan the rollout."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.python.pyengine import PythonEngine, context_of
from bot.engines.python.replay import ReplayKit
from bot.engines.temporal.devserver import dev_server
from bot.engines.temporal.extract import extract_module
from bot.engines.temporal.failure import explain_line
from bot.engines.temporal.vocabulary import VOCABULARY
from bot.histories import HistoryItem, Shard, live_source
from bot.model import Definition, Finding, InFlight, Plan

TEMPORAL = ReplayKit(
    sdk="temporalio",
    runner=Path(__file__).with_name("runner.py"),
    extract=extract_module,
    mentions=r"defn",  # what a workflow file must mention (a cheap grep before parsing)
    engine="temporal",
    explain=explain_line,
    synth_driver=Path(__file__).with_name("synth_driver.py"),
    server=dev_server,
)


class TemporalEngine(PythonEngine):
    name = "temporal"
    noun = "Temporal workflow"
    relevant = ("temporalio", "workflow")
    own, foreign = "temporalio", ("cadence",)
    vocabulary = VOCABULARY
    kit = TEMPORAL

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.temporal.plan import build_plan

        return build_plan(context_of(analysis), findings, config)

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        from bot.engines.temporal.inflight import live_figures

        if not address:
            return {}
        by_namespace: dict[str, dict[str, str]] = {}
        for d in definitions:
            if d.engine == self.name and d.status in ("changed", "removed"):
                namespace = config.for_path(d.path).temporal.namespace
                by_namespace.setdefault(namespace, {})[d.id] = d.id.split(" (", 1)[0]
        out: dict[str, InFlight] = {}
        for namespace, wanted in by_namespace.items():
            figures = live_figures(address, namespace, sorted(set(wanted.values())))
            out.update({def_id: figures[t] for def_id, t in wanted.items() if t in figures})
        return out


def _live_histories(spec: str, spool: Path, shard: Shard | None) -> Iterator[HistoryItem]:
    """A `temporal://` source's histories, exported from the server as they are read."""
    from bot.engines.temporal.export import live_histories

    return live_histories(spec, spool, shard)


live_source("temporal://", _live_histories)
