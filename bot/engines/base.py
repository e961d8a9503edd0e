"""The Engine protocol every engine folder implements, and the `Analysis` it hands between stages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bot.config import Config
from bot.histories import ReplayOptions
from bot.model import (
    Change,
    Definition,
    Finding,
    InFlight,
    Picture,
    Plan,
    ReplayResult,
    ReplaySummary,
    Suppression,
)
from bot.repo import FileChange, SourceTree


@dataclass
class Analysis:
    """What collect + diff found for one engine; `context` is engine-private, for its plan."""

    engine: str
    changes: list[Change] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    suppressions: list[Suppression] = field(default_factory=list)
    context: Any = None


class Engine(Protocol):
    """One workflow engine: how to find its definitions, diff them and plan a rollout."""

    @property
    def name(self) -> str:
        """The engine's name, the prefix of its change kinds."""
        ...

    @property
    def vocabulary(self) -> Mapping[str, str]:
        """Change kind → meaning: the closed vocabulary its diff emits."""
        ...

    @property
    def noun(self) -> str:
        """What one of its definitions is called in a report: `Temporal workflow`, `Airflow DAG`."""
        ...

    @property
    def replays_all(self) -> bool:
        """True when `--replay-all` makes `replay` replay the definitions the change leaves alone too."""
        ...

    def analyze(
        self, base: SourceTree, head: SourceTree, files: Sequence[FileChange], config: Config
    ) -> Analysis:
        """Return the definitions found in both trees and the changes between them."""
        ...

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        """Return the versioning outline and runbooks for the findings that need gates."""
        ...

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        """Replay the histories of `options.sources` against the head code of this engine: one result
        for every history it takes, `skipped` (or `unmatched`) with the reason when it does not replay it."""
        ...

    def replay_changes(
        self,
        results: Sequence[ReplayResult],
        summary: ReplaySummary,
        definitions: Sequence[Definition],
        static: Sequence[Finding],
    ) -> list[Change]:
        """Return the change facts replay proved (failures, import errors), explained by `static`."""
        ...

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        """Return live in-flight figures per definition id from the engine's server."""
        ...


@runtime_checkable
class ReadsDeployment(Protocol):
    """An engine that reads how the deployment runs (e.g. Airflow's bundle pinning) from the exported
    histories the check was given, before it diffs."""

    def read_deployment_from(self, sources: Sequence[str], max_bytes: int) -> None: ...


@runtime_checkable
class Draws(Protocol):
    """An engine that draws each changed definition (base and head overlaid) from its diff's models."""

    def pictures(self, analysis: Analysis) -> list[Picture]: ...
