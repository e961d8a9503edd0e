"""The rollout plan: each engine plans its own definitions; this joins them into one."""

from __future__ import annotations

from collections.abc import Sequence

from bot.model import Plan


def merge(plans: Sequence[Plan]) -> Plan:
    """Return one plan holding every engine's outline and steps, in engine order."""
    used = [p for p in plans if p.outline or p.runbook or p.rollback or p.canary]
    if not used:
        return plans[0] if plans else Plan()
    guardrails: list[str] = []
    for p in used:
        guardrails += [g for g in p.guardrails if g not in guardrails]
    return Plan(
        strategy=", ".join(dict.fromkeys(p.strategy for p in used)),
        definitions=[d for p in used for d in p.definitions],
        outline="".join(p.outline for p in used),
        runbook=[s for p in used for s in p.runbook],
        rollback=[s for p in used for s in p.rollback],
        canary=[s for p in used for s in p.canary],
        guardrails=guardrails,
    )
