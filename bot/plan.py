"""The rollout plan: each engine plans its own definitions; this joins them into one."""

from __future__ import annotations

import re
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


PREFIX = re.compile(r"^((?:`[^`]+`, )*`[^`]+`): (.*)$", re.S)


def join_steps(per_definition: Sequence[Sequence[str]]) -> list[str]:
    """Steps of several definitions as one list, the n-th steps together (all definitions ship in one
    build: merge, deploy and watch happen once, in order). A step two definitions share word for word
    (after their "`Name`: " prefix) is said once, naming both; the n-th steps that differ only in the
    middle (a name, a patch id) are one step listing each definition's part."""
    width = max((len(s) for s in per_definition), default=0)
    owners: dict[str, list[str]] = {}
    order: list[str | list[tuple[list[str], str]]] = []
    for i in range(width):
        phase: list[tuple[list[str], str]] = []
        for steps in per_definition:
            if i >= len(steps):
                continue
            m = PREFIX.match(steps[i])
            names, text = (m.group(1).split(", "), m.group(2)) if m else ([], steps[i])
            if text in owners:
                owners[text] += [n for n in names if n not in owners[text]]
                continue
            owners[text] = names
            phase.append((names, text))
        if len(phase) > 1 and all(names for names, _ in phase) and _shape(phase) is not None:
            order.append(phase)
        else:
            order += [text for _, text in phase]
    out: list[str] = []
    for item in order:
        if isinstance(item, str):
            names = owners[item]
            out.append(f"{', '.join(names)}: {item}" if names else item)
        else:
            out.append(_grouped(item))
    return out


def _boundaries(text: str) -> list[int]:
    """Positions outside code spans where a shared part may end or begin (before a space or a code span)."""
    ticks = 0
    points = [0]
    for i, ch in enumerate(text):
        if ch == "`":
            if ticks % 2 == 0:
                points.append(i)
            ticks += 1
            if ticks % 2 == 0:
                points.append(i + 1)
        elif ch == " " and ticks % 2 == 0:
            points += [i, i + 1]
    points.append(len(text))
    return sorted(set(points))


def _shape(phase: Sequence[tuple[list[str], str]]) -> tuple[int, int] | None:
    """(prefix, suffix) lengths the texts share at boundaries, leaving each text a middle with whole
    code spans and parentheses; None when they share too little to be one step."""
    texts = [t for _, t in phase]
    first = texts[0]
    common = len(_common_prefix(texts))
    rev = len(_common_prefix([t[::-1] for t in texts]))
    shortest = min(len(t) for t in texts)
    bounds = _boundaries(first)
    for pre in sorted((b for b in bounds if b <= common), reverse=True):
        for suf in sorted(
            (len(first) - b for b in bounds if len(first) - b <= min(rev, shortest - pre)), reverse=True
        ):
            middles = [t[pre : len(t) - suf] for t in texts]
            if all(_balanced(m) for m in middles):
                return (pre, suf) if pre + suf >= 24 and all(m.strip() for m in middles) else None
    return None


def _common_prefix(texts: Sequence[str]) -> str:
    first = texts[0]
    n = 0
    while n < len(first) and all(n < len(t) and t[n] == first[n] for t in texts):
        n += 1
    return first[:n]


def _balanced(text: str) -> bool:
    return text.count("`") % 2 == 0 and text.count("(") == text.count(")")


def _grouped(phase: Sequence[tuple[list[str], str]]) -> str:
    shape = _shape(phase)
    assert shape is not None
    pre, suf = shape
    texts = [t for _, t in phase]
    names = [n for ns, _ in phase for n in ns]
    parts = []
    for ns, t in phase:
        middle = t[pre : len(t) - suf].strip()
        stop = middle[-1] if middle[-1:] in ",.;" else ""
        parts.append(f"{middle[: len(middle) - len(stop)]} (for {', '.join(ns)}){stop}")
    middles = " ".join(parts) if all(p.endswith((",", ".", ";")) for p in parts[:-1]) else "; ".join(parts)
    first = texts[0]
    head = first[:pre]
    tail_ = first[len(first) - suf :] if suf else ""
    sep_head = "" if not head or head.endswith(" ") else " "
    sep_tail = "" if not tail_ or tail_.startswith((" ", ",", ".", ";", ":")) else " "
    return f"{', '.join(names)}: {head}{sep_head}{middles}{sep_tail}{tail_}"
