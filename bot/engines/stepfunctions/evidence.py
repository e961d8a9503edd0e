"""What replay showed for state machines: failures and divergences become facts, tied to a state.

Results are grouped by definition, outcome and message. A group is explained by the static
finding on the state the replay stopped at, else by the first risky-or-worse finding of
that definition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.evidence import examples, explaining, explanation, source_failures
from bot.model import Change, Definition, Finding, Location, ReplayResult, ReplaySummary

_STATE = re.compile(r"^state (\S+) \((.+):(\d+)\)$")


def replay_changes(
    results: Sequence[ReplayResult],
    summary: ReplaySummary,
    definitions: Sequence[Definition],
    static: Sequence[Finding],
) -> list[Change]:
    """Return one fact per group of failing (or diverging) executions, and per failed source."""
    by_id = {d.id: d for d in definitions if d.engine == "stepfunctions"}
    groups: dict[tuple[str, str, str, str], list[ReplayResult]] = {}
    for r in results:
        if r.definition in by_id and r.outcome in ("error", "diverged"):
            groups.setdefault((str(r.definition), r.outcome, r.message, r.event or ""), []).append(r)
    changes: list[Change] = []
    for (def_id, outcome, message, event), group in sorted(groups.items()):
        m = _STATE.match(event)
        state = m.group(1) if m else None
        mine = [f for f in static if f.definition == def_id]
        explained = explaining(mine, "state", state)
        d = by_id[def_id]
        if m:
            location = Location(path=m.group(2), line=int(m.group(3)))
        elif explained is not None and explained.location is not None:
            location = explained.location
        else:
            location = Location(path=d.path, line=d.line or 1)
        open_count = sum(1 for r in group if r.open)
        changes.append(
            Change(
                kind="sfn.replay.failed" if outcome == "error" else "sfn.replay.diverged",
                engine="stepfunctions",
                definition=def_id,
                location=location,
                details={
                    "histories": len(group),
                    "in_flight": open_count,
                    "open": open_count > 0,
                    "outcome": outcome,
                    "message": message,
                    "state": state or "",
                    "at": f" at state `{state}`" if state else "",
                    "examples": examples(group),
                    **explanation(explained),
                },
            )
        )
    changes += source_failures(summary.source_errors, "sfn.replay.source_failed", "stepfunctions")
    return changes
