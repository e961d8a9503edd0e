"""Stage 4 for every engine at once: give each history to the engine that exported it, replay, and
name every history no engine replayed, with the reason.

An engine replays when the change alters one of its definitions, or with `--replay-all` when its
replay covers the definitions the change leaves alone (`Engine.replays_all`). Every history the
sources hold ends up as one result line: the engine's own, or a `skipped` one made here for a
history whose engine did not run. Supplied histories are never dropped silently.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.engines.base import Analysis
from bot.engines.registry import engines
from bot.histories import (
    HistoryItem,
    ReplayOptions,
    SourceStats,
    history_engine,
    iter_histories,
    sources_of,
)
from bot.model import ReplayResult, ReplaySummary


@dataclass
class Replayed:
    """Every history's result, one summary, and which engine gave what (for the engines' findings)."""

    results: list[ReplayResult]
    summary: ReplaySummary
    summaries: dict[str, ReplaySummary] = field(default_factory=dict)  # engine → its own, in order
    engine_of: dict[str, str] = field(default_factory=dict)  # history → the engine that replayed it


class Routing:
    """Which engine takes each history: read once and remembered by name, so an engine does not
    download what another one took, and what no running engine took is known."""

    def __init__(self, running: Sequence[str]) -> None:
        self.running = list(running)
        self.found: dict[str, str | None] = {}  # history name → the engine whose export it is
        self.keys: dict[str, str] = {}  # history name → the file it is (two names, one file: once)

    def owner(self, name: str) -> str | None:
        found = self.found[name]
        if found in self.running:
            return found
        # A file no engine recognises goes to the first one, which reports it as unreadable.
        return self.running[0] if found is None and self.running else None

    def accept(self, engine: str | None) -> Callable[[HistoryItem], bool]:
        """The `accept` of `engine`; with None, only learn whose each history is."""

        def take(item: HistoryItem) -> bool:
            if item.name not in self.found:
                self.found[item.name] = history_engine(item.path)
                self.keys[item.name] = item.name if item.temporary else str(Path(item.path).resolve())
            return engine is not None and self.owner(item.name) == engine

        return take

    def wanted(self, engine: str) -> Callable[[str], bool]:
        return lambda name: name not in self.found or self.owner(name) == engine

    def untaken(self) -> dict[str, str | None]:
        """History name → the engine whose export it is, for the histories no running engine took."""
        out: dict[str, str | None] = {}
        keys: set[str] = set()
        for name in sorted(self.found):
            if self.owner(name) is None and self.keys[name] not in keys:
                keys.add(self.keys[name])
                out[name] = self.found[name]
        return out


def replay(analyses: Sequence[Analysis], options: ReplayOptions) -> Replayed:
    """Replay with every engine that has something to replay; name every history nobody replayed."""
    registry = engines()
    inspected = [a.engine for a in analyses if a.definitions]
    running = [
        a.engine for a in analyses if a.definitions or (options.replay_all and registry[a.engine].replays_all)
    ]
    routing = Routing(running)
    results: list[ReplayResult] = []
    summaries: dict[str, ReplaySummary] = {}
    engine_of: dict[str, str] = {}
    for engine in running:
        analysis = next(a for a in analyses if a.engine == engine)
        mine, summary = registry[engine].replay(
            analysis,
            replace(
                options,
                sources=sources_of(engine, options.sources),
                accept=routing.accept(engine),
                wanted=routing.wanted(engine),
            ),
        )
        results.extend(mine)
        summaries[engine] = summary
        engine_of.update((r.history, engine) for r in mine)
    listed = None if running else _list(options, routing)
    untaken = routing.untaken()
    for name, exporter in untaken.items():
        if exporter is None:
            message = "not replayed: this change alters no workflow definition (and no engine reads the file)"
        else:
            hint = " (pass --replay-all)" if registry[exporter].replays_all and not options.replay_all else ""
            message = f"not replayed: this change alters no {registry[exporter].noun}{hint}"
        results.append(ReplayResult(history=name, definition=None, outcome="skipped", message=message))
    results.sort(key=lambda r: r.history)
    summary = _join([*summaries.values(), *([listed] if listed else [])])
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    notes = list(summary.notes)
    if results and not any(r.replayed for r in results):
        if not inspected:
            hint = "" if options.replay_all else " (pass --replay-all)"
            notes.append(f"no definition changed: {len(results)} histories not replayed{hint}")
        else:
            shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            notes.append(f"none of the {len(results)} histories was replayed ({shown}): each result says why")
    summary = summary.model_copy(update={"counts": counts, "notes": notes})
    return Replayed(results=results, summary=summary, summaries=summaries, engine_of=engine_of)


def _list(options: ReplayOptions, routing: Routing) -> ReplaySummary:
    """Read the sources only to learn whose each history is (no engine runs): what they held."""
    stats = SourceStats()
    with tempfile.TemporaryDirectory(prefix="inflight-guard-histories-") as spool:
        for _ in iter_histories(replace(options, accept=routing.accept(None)), Path(spool), stats):
            pass  # `accept(None)` takes nothing: iterating is the reading
    return ReplaySummary(
        shards=[str(options.shard)] if options.shard else [],
        source_errors=stats.errors,
        notes=[f"history source {s} holds no history files" for s in stats.empty],
    )


def _join(summaries: Sequence[ReplaySummary]) -> ReplaySummary:
    """One summary for the report: the engines' counts added, their problems and notes kept."""
    if not summaries:
        return ReplaySummary()
    first = next((s for s in summaries if s.interpreter), summaries[0])
    counts: dict[str, int] = {}
    for s in summaries:
        for k, v in s.counts.items():
            counts[k] = counts.get(k, 0) + v
    return first.model_copy(
        update={
            "shards": list(dict.fromkeys(x for s in summaries for x in s.shards)),
            "seconds": round(sum(s.seconds for s in summaries), 2),
            "counts": counts,
            "import_errors": [e for s in summaries for e in s.import_errors],
            "source_errors": list(dict.fromkeys(e for s in summaries for e in s.source_errors)),
            "runner_error": next((s.runner_error for s in summaries if s.runner_error), None),
            "notes": list(dict.fromkeys(n for s in summaries for n in s.notes)),
        }
    )
