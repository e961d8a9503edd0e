"""The rollout plan: each engine plans its own definitions; this joins them into one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.evidence import human_seconds
from bot.model import Definition, Finding, Plan, Severity


def merge(plans: Sequence[Plan]) -> Plan:
    """Return one plan holding every engine's outline and steps, in engine order."""
    used = [p for p in plans if p.outline or p.outline_withheld or p.runbook or p.rollback or p.canary]
    if not used:
        return plans[0] if plans else Plan()
    guardrails: list[str] = []
    for p in used:
        guardrails += [g for g in p.guardrails if g not in guardrails]
    return Plan(
        strategy=", ".join(dict.fromkeys(p.strategy for p in used)),
        definitions=[d for p in used for d in p.definitions],
        outline="".join(p.outline for p in used),
        outline_proof="; ".join(p.outline_proof for p in used if p.outline_proof),
        outline_withheld="; ".join(p.outline_withheld for p in used if p.outline_withheld),
        runbook=[s for p in used for s in p.runbook],
        rollback=[s for p in used for s in p.rollback],
        rollback_proof="; ".join(p.rollback_proof for p in used if p.rollback_proof),
        canary=[s for p in used for s in p.canary],
        guardrails=guardrails,
        revert_windows={d: w for p in used for d, w in p.revert_windows.items()},
    )


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def drain_steps(plan: Plan, findings: Sequence[Finding], definitions: Sequence[Definition]) -> Plan:
    """Put the measured drain window first in the runbook, for each definition a finding gates."""
    gated = {f.definition for f in findings if not f.suppressed and f.severity == Severity.BREAKING}
    steps: list[str] = []
    for d in definitions:
        figures = d.in_flight
        if d.id not in gated or d.status == "added":
            continue
        parts: list[str] = []
        if figures.count is not None and figures.source != "unknown":
            parts.append(f"{figures.count} running — {figures.source}")
        if figures.oldest_start:
            parts.append(f"oldest started {figures.oldest_start}")
        if figures.waits_until:
            # What open executions wait on bounds the drain better than how long closed ones took.
            what = figures.waits_on or "step"
            parts.append(
                f"the open histories wait on {'an' if what[0] in 'aeiou' else 'a'} {what} due by {figures.waits_until} "
                f"(latest of {figures.waits_from}): expect the pre-change executions to drain after that, "
                "not before"
            )
        elif figures.run_p95_seconds is not None:
            parts.append(
                f"closed runs took p50 {human_seconds(figures.run_p50_seconds or 0)}, "
                f"p95 {human_seconds(figures.run_p95_seconds)} ({figures.durations_from})"
            )
            start = _parse_time(figures.oldest_start) if figures.oldest_start else None
            if start is not None:
                until = start + timedelta(seconds=figures.run_p95_seconds)
                parts.append(
                    f"expect the pre-change executions to drain by about {until:%Y-%m-%d %H:%M} UTC "
                    "(from closed runs: no open history says what it waits on)"
                )
        if parts and (
            figures.oldest_start
            or figures.run_p95_seconds is not None
            or figures.count
            or figures.waits_until
        ):
            steps.append(f"Drain window for `{d.id}`: " + "; ".join(parts) + ".")
    if not steps:
        return plan
    return plan.model_copy(update={"runbook": [*steps, *plan.runbook]})
