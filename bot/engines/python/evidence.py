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
from bot.model import (
    Change,
    Definition,
    Finding,
    Location,
    ReplayResult,
    ReplaySummary,
    Severity,
    Synthesis,
)


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


def closed_only(
    findings: Sequence[Finding], results: Sequence[ReplayResult], synthesis: Synthesis | None = None
) -> list[Finding]:
    """Severity follows the proof: a breaking command-sequence finding is risky, as TMP131 is (closed
    executions replay only when queried or reset), when every in-flight history of its definition
    replayed cleanly (exported open ones, and those synthesized from base at each point an execution
    can wait), synthesis reached the command it names without a budget cutting the exploration short,
    and any replay failure it explains is a closed history."""
    from bot.engines.python.dialect import DIALECTS
    from bot.engines.python.outline import is_sequence

    by_finding: dict[str, list[Finding]] = {}
    for f in findings:
        if is_replay(f) and f.change is not None and f.change.details.get("explained_by"):
            by_finding.setdefault(str(f.change.details["explained_by"]), []).append(f)
    reached = {
        w.definition: set(w.commands) for w in (synthesis.workflows if synthesis else []) if not w.truncated
    }
    out: list[Finding] = []
    for f in findings:
        if not (
            f.severity == Severity.BREAKING
            and not f.gated
            and not f.suppressed
            and f.change is not None
            and f.change.engine in DIALECTS
            and is_sequence(f)
        ):
            out.append(f)
            continue
        failures = by_finding.get(where(f), [])
        in_flight = [
            r for r in results if r.definition == f.definition and (r.open or r.synthesized) and r.replayed
        ]
        closed = sum(int(x.change.details.get("histories", 0) or 0) for x in failures if x.change)
        command = f"{f.change.details.get('command', '')} {f.change.details.get('name', '')}"
        # Passing in-flight histories prove nothing about inputs they do not hold: synthesis must have
        # reached the command (it explores the values the code compares against), and what fails must
        # be closed histories only.
        closed_only_failures = all(
            x.change is not None
            and x.change.kind.endswith(".replay.failed")
            and not x.change.details.get("open")
            for x in failures
        )
        reached_it = any(r.synthesized for r in in_flight) and command in reached.get(f.definition, set())
        if not in_flight or any(r.failed for r in in_flight) or not (reached_it and closed_only_failures):
            out.append(f)
            continue
        by_closed = bool(failures)
        synthesized = sum(1 for r in in_flight if r.synthesized)
        proof = (
            f"only closed executions fail ({closed} histories)"
            if by_closed
            else f"synthesis from base reached `{command}`, and only closed executions hold it"
        )
        text = (
            f"severity risky, not breaking: {proof}; all {len(in_flight)} in-flight histories "
            f"({len(in_flight) - synthesized} exported, {synthesized} synthesized from base) replay cleanly on head"
        )
        # Settled with synthesis: its "stands on static analysis" note no longer holds.
        kept = [
            part for part in (f.replay or "").split("; ") if part and "stands on static analysis" not in part
        ]
        out.append(f.model_copy(update={"severity": Severity.RISKY, "replay": "; ".join([*kept, text])}))
    return out
