"""Stage 4b: histories synthesized from the base code, for the workflows of the files the change
reaches (their own file, or a module they import) that production histories do not cover
(`synthesis.mode: auto`), or for all of them (`always`).

Production histories come first; synthesis fills the gaps. Synthesized results keep their label
(`synthesized from base: …`) everywhere and never count towards the production replay gate or the
in-flight figures; their failures are their own locked rule (`*.replay.synthesized_failed`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.python.synthesis import Servers
from bot.engines.registry import engines
from bot.evidence import is_replay, where
from bot.histories import ReplayOptions
from bot.model import Change, Definition, Finding, Location, ReplayResult, Severity, Synthesis


@dataclass
class Synthesized:
    results: list[ReplayResult] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    synthesis: Synthesis | None = None
    # engine → the folder holding the histories it recorded (kept for the outline proof)
    histories: dict[str, Path] = field(default_factory=dict)


def _targets(
    analysis: Analysis, production: Sequence[ReplayResult], mode: str, skipped: list[str]
) -> list[str]:
    out: list[str] = []
    # Every definition of a file the change reaches (its own, or a module it imports: a constant, a
    # helper), not only those static analysis saw change: a change it cannot see is what replay is for.
    for d in analysis.definitions:
        if d.status not in ("changed", "unchanged"):
            continue
        if d.pinned:
            skipped.append(f"{d.id}: pinned (open executions stay on the build that started them)")
            continue
        covered = sum(1 for r in production if r.definition == d.id and r.replayed and not r.synthesized)
        if mode == "auto" and covered:
            skipped.append(f"{d.id}: {covered} production histories replayed")
            continue
        out.append(d.id)
    return out


@contextlib.contextmanager
def _own(servers: Servers | None, configured: str | None) -> Iterator[Servers]:
    if servers is not None:
        yield servers
        return
    with Servers(configured) as mine:
        yield mine


def synthesize_gaps(
    analyses: Sequence[Analysis],
    definitions: Sequence[Definition],
    static: Sequence[Finding],
    production: Sequence[ReplayResult],
    config: Config,
    options: ReplayOptions,
    run_pr_code: bool,
    keep: Path | None = None,
    servers: Servers | None = None,
) -> Synthesized:
    """Record, replay and judge synthesized histories for every Python SDK engine with changes
    (`keep`: a folder the recorded histories are copied into, one subfolder per engine)."""
    settings = config.synthesis
    registry = engines()
    skipped: list[str] = []
    work: list[tuple[Analysis, Any, list[str]]] = []
    for a in analyses:
        engine = registry[a.engine]
        kit = getattr(engine, "kit", None)
        if kit is None or getattr(kit, "synth_driver", None) is None or not hasattr(engine, "synthesize"):
            continue
        targets = _targets(a, production, settings.mode, skipped)
        if targets:
            work.append((a, engine, targets))
    if settings.mode == "off" or not (work or skipped):
        return Synthesized()
    synthesis = Synthesis(mode=settings.mode, skipped=skipped)
    if not run_pr_code:
        names = ", ".join(t for _, _, ts in work for t in ts)
        return Synthesized(
            synthesis=synthesis.model_copy(
                update={
                    "skipped": [*skipped, *([f"{names}: static only (no code runs here)"] if names else [])]
                }
            )
        )
    started = time.perf_counter()
    out = Synthesized()
    factory = next((e.kit.server for _, e, _ in work if e.kit.server is not None), None)
    with _own(servers, config.temporal.dev_server) as running:
        address, no_server = running.get(factory)
        for analysis, engine, targets in work:
            first = next(d for d in definitions if d.id == targets[0])
            mine = [f for f in static if f.change and f.change.engine == analysis.engine]
            if engine.kit.server is not None and address is None:
                out.changes.append(_failed(analysis.engine, targets, first, no_server or "no server", mine))
                continue
            kept = None if keep is None else keep / analysis.engine
            recorded = engine.synthesize(analysis, targets, settings, options, address, kept)
            if kept is not None and kept.is_dir():
                out.histories[analysis.engine] = kept
            synthesis = synthesis.model_copy(
                update={
                    "workflows": [*synthesis.workflows, *recorded.workflows],
                    "errors": [*synthesis.errors, *recorded.errors],
                }
            )
            if recorded.failed is not None:
                out.changes.append(_failed(analysis.engine, targets, first, recorded.failed, mine))
                continue
            out.results.extend(recorded.results)
            known = {
                (f.change.kind, f.change.definition, f.change.location) for f in mine if f.change is not None
            }
            for change in engine.replay_changes(recorded.results, recorded.summary, definitions, mine):
                if change.kind.endswith(".replay.failed"):
                    change = change.model_copy(
                        update={"kind": change.kind.replace(".failed", ".synthesized_failed")}
                    )
                elif (change.kind, change.definition, change.location) in known:
                    continue  # the head import error production replay already reported
                out.changes.append(change)
    out.synthesis = synthesis.model_copy(
        update={
            "server": "" if address is None else address,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return out


def _failed(
    engine: str, targets: Sequence[str], first: Definition, message: str, static: Sequence[Finding]
) -> Change:
    # Static findings that already block every target: the gate is closed without synthesis.
    blocked = all(
        any(
            f.definition == t and f.severity == Severity.BREAKING and not f.suppressed and not f.gated
            for f in static
        )
        for t in targets
    )
    return Change(
        kind=f"{engine}.replay.synthesis_failed",
        engine=engine,
        definition=first.id,
        location=Location(path=first.path, line=first.line or 1),
        details={
            "workflows": ", ".join(f"`{t}`" for t in targets),
            "message": message.rstrip("."),
            "blocked": blocked,
        },
    )


def annotate_synthesized(findings: Sequence[Finding], synthesis: Synthesis | None) -> list[Finding]:
    """Say beside each static finding of a synthesized workflow what its synthesized histories showed."""
    if synthesis is None or not synthesis.workflows:
        return list(findings)
    by_definition = {w.definition: w for w in synthesis.workflows if w.definition}
    failing: dict[str, int] = {}
    for f in findings:
        if f.change is not None and f.change.kind.endswith(".replay.synthesized_failed"):
            by = f.change.details.get("explained_by")
            if by:
                failing[str(by)] = failing.get(str(by), 0) + int(f.change.details.get("histories", 0) or 0)
    out: list[Finding] = []
    for f in findings:
        w = by_definition.get(f.definition or "")
        if w is None or f.change is None or is_replay(f) or f.severity.rank < 2:
            out.append(f)
            continue
        n = failing.get(where(f), 0)
        if n:
            text = f"{n} in-flight executions synthesized from base fail replay here"
        else:
            text = (
                f"{w.histories} in-flight histories synthesized from base ({w.executions} executions) "
                "replay cleanly on head: synthesis did not reach a failing path, this finding stands on "
                "static analysis"
            )
        joined = f"{f.replay}; {text}" if f.replay else text
        out.append(f.model_copy(update={"replay": joined}))
    return out
