"""What replay proved: failures become change facts, explained by the static change behind them.

Failures are grouped by definition, outcome and message (a thousand histories failing the
same way are one finding with a count). Each group is attributed to the static finding
that explains it: the one whose change names a type the failure names, else the first
breaking one of that definition. Static findings get a line saying what replay showed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.evidence import examples, is_replay, source_failures, where
from bot.model import Change, Definition, Finding, Location, ReplayResult, ReplaySummary, Severity


def _names(text: str) -> set[str]:
    return set(re.findall(r"['`\"]([^'`\"]+)['`\"]", text))


def _explain(group: Sequence[ReplayResult], static: Sequence[Finding]) -> Finding | None:
    """Return the static finding that explains a group of failures, if one does."""
    candidates = [
        f
        for f in static
        if f.change is not None
        and not f.suppressed
        and f.severity in (Severity.BREAKING, Severity.RISKY)
        and not is_replay(f)
    ]
    if not candidates:
        return None
    first = group[0]
    named = _names(first.message) | ({first.event.split(" ", 1)[-1]} if first.event else set())
    named.discard("")

    def values(f: Finding) -> set[str]:
        assert f.change is not None
        return {str(v) for v in f.change.details.values() if isinstance(v, str)}

    by_name = [f for f in candidates if values(f) & named]
    if "no definition of" in first.message:
        by_name = [
            f for f in candidates if f.change and f.change.kind.split(".")[-1] in ("removed", "renamed")
        ] or by_name
    elif "patch" in first.message.lower() or "version" in first.message.lower():
        by_name = [
            f for f in candidates if f.change and (".patch." in f.change.kind or ".version." in f.change.kind)
        ] or by_name
    pool = by_name or [f for f in candidates if f.severity == Severity.BREAKING] or candidates
    return sorted(pool, key=lambda f: (-f.severity.rank, f.location.line if f.location else 0))[0]


def replay_changes(
    results: Sequence[ReplayResult],
    summary: ReplaySummary,
    definitions: Sequence[Definition],
    static: Sequence[Finding],
    engine: str = "temporal",
) -> list[Change]:
    """Return one change per group of failing histories and per head module that failed to import."""
    by_id = {d.id: d for d in definitions}
    groups: dict[tuple[str, str, str], list[ReplayResult]] = {}
    for r in results:
        if r.failed and r.definition:
            groups.setdefault((r.definition, r.outcome, r.message), []).append(r)
    changes: list[Change] = []
    # A failure that names no definition (a runner that died before it read the history's type)
    # is still a failure: the tool cannot call the change safe.
    nameless: dict[tuple[str, str], list[ReplayResult]] = {}
    for r in results:
        if r.failed and not r.definition:
            nameless.setdefault((r.outcome, r.message), []).append(r)
    for (outcome, message), group in sorted(nameless.items()):
        changes.append(
            Change(
                kind=f"{engine}.replay.unattributed",
                engine=engine,
                definition="",
                location=Location(path=group[0].history, line=1),
                details={
                    "histories": len(group),
                    "outcome": outcome,
                    "message": message,
                    "examples": examples(group),
                },
            )
        )
    for (def_id, outcome, message), group in sorted(groups.items()):
        mine = [f for f in static if f.definition == def_id]
        explained = _explain(group, mine)
        d = by_id.get(def_id)
        if explained is not None and explained.location is not None:
            location = explained.location
        elif d is not None:
            location = Location(
                path=d.path, line=d.line or 1, side="base" if d.status == "removed" else "head"
            )
        else:
            location = Location(path="", line=1)
        open_count = sum(1 for r in group if r.open)
        first = group[0]
        at = f" (`{first.code}`)" if first.code and first.code not in message else ""
        at += f" at event {first.event_id}" if first.event_id else ""
        at += f" ({first.event})" if first.event else ""
        changes.append(
            Change(
                kind=f"{engine}.replay.timeout" if outcome == "timeout" else f"{engine}.replay.failed",
                engine=engine,
                definition=def_id,
                location=location,
                details={
                    "histories": len(group),
                    "in_flight": open_count,
                    "open": open_count > 0,
                    "outcome": outcome,
                    "message": message,
                    "at": at,
                    "examples": examples(group),
                    "explained": f" Explained by {where(explained)}." if explained else "",
                    "explained_by": where(explained) if explained else None,
                },
            )
        )
    changes += source_failures(summary.source_errors, f"{engine}.replay.source_failed", engine)
    if summary.runner_error:
        changes.append(
            Change(
                kind=f"{engine}.replay.runner_failed",
                engine=engine,
                definition="",
                location=Location(path=summary.interpreter.split(" (", 1)[0] or "python", line=1),
                details={"message": summary.runner_error},
            )
        )
    for problem in summary.import_errors:
        def_id = next((d.id for d in definitions if d.id == problem.workflow_type), problem.workflow_type)
        d = by_id.get(def_id)
        path = problem.path or (d.path if d else problem.module)
        changes.append(
            Change(
                kind=f"{engine}.replay.import_failed",
                engine=engine,
                definition=def_id,
                location=Location(path=path, line=problem.line or 1),
                details={
                    "module": problem.module,
                    "message": problem.message.rstrip("."),
                    "type": problem.workflow_type,
                },
            )
        )
    return changes
