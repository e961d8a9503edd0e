"""Gates each breaking change still needs, and the verdict that decides the check."""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import Config
from bot.engines.python.dialect import dialect
from bot.evidence import is_replay
from bot.model import Definition, Finding, Gate, Plan, ReplayResult, Severity, Verdict, VerdictLevel

# Step Functions definition changes whose risk is what recorded inputs do on the new definition (a
# path that no longer resolves, an error no longer retried or caught, no Choice matching): replay of
# those inputs through the head definition settles them. (A shortened timeout it does not.)
REPLAY_SETTLES = (
    "sfn.path.changed",
    "sfn.task.parameters_changed",
    "sfn.choice.default_removed",
    "sfn.retry.removed",
    "sfn.retry.changed",
    "sfn.catch.removed",
)


def replayed_clean(f: Finding) -> bool:
    """True for a risky definition-only Step Functions change that recorded executions replay cleanly."""
    return (
        f.change is not None
        and f.change.engine == "stepfunctions"
        and f.change.kind in REPLAY_SETTLES
        and f.replay.endswith("replay cleanly through the head definition")
    )


def _needs_gates(f: Finding) -> bool:
    return (
        not f.suppressed
        and f.definition is not None
        and (f.gate != "none" or f.severity == Severity.BREAKING)
    )


def _in_flight_possible(d: Definition | None) -> bool:
    return d is None or d.in_flight.count != 0


def blocking(findings: Sequence[Finding], definitions: Sequence[Definition]) -> list[Finding]:
    """Return the breaking findings that block the merge (live executions, or all executions)."""
    by_id = {d.id: d for d in definitions}
    return [
        f
        for f in findings
        if not f.suppressed
        and f.severity == Severity.BREAKING
        and (f.scope == "all_executions" or _in_flight_possible(by_id.get(f.definition or "")))
    ]


def build_gates(
    findings: Sequence[Finding],
    definitions: Sequence[Definition],
    plan: Plan,
    histories: Sequence[str],
    replay: Sequence[ReplayResult],
) -> list[Gate]:
    """Return version-gate, replay and drain gates for each definition that needs them."""
    by_id = {d.id: d for d in definitions}
    grouped: dict[str, list[Finding]] = {}
    for f in findings:
        if _needs_gates(f):
            grouped.setdefault(str(f.definition), []).append(f)
    gates: list[Gate] = []
    for def_id, fs in sorted(grouped.items()):
        d = by_id.get(def_id)
        if d is not None and d.status == "added":
            # Nothing in flight ran a definition this change adds: a version gate or a replay proof for
            # it could never be unmet (nor met, for replay), so none is listed.
            continue
        drained = d is not None and d.in_flight.count == 0
        version_related = [
            f
            for f in fs
            if (
                not is_replay(f)
                and f.gate in ("patch", "get-version", "new-type", "worker-versioning", "version-alias")
            )
            # A Step Functions replay failure is fixed in the definition, not by a version gate.
            or (f.severity == Severity.BREAKING and not (f.change and f.change.kind == "sfn.replay.failed"))
        ]
        gate = _version_gate(def_id, version_related, drained, d) if version_related else None
        if gate is not None:
            gates.append(gate)
        gates.append(_replay_gate(def_id, histories, replay))
        # No back-out gate: it could never be unmet. The rollback section says, from replay, whether a
        # revert is safe.
        drains = [f for f in fs if f.gate == "drain"]
        if drains:
            gates.append(
                Gate(
                    kind="drain",
                    definition=def_id,
                    status="satisfied" if drained else "pending",
                    evidence=(
                        f"declared drained ({d.in_flight.source})"
                        if drained and d
                        else "confirm with the runbook's count query that it prints 0 ("
                        + ", ".join(sorted({f.rule for f in drains}))
                        + ")"
                    ),
                )
            )
    return gates


def _version_gate(def_id: str, fs: Sequence[Finding], drained: bool, d: Definition | None) -> Gate | None:
    if fs and all(f.gate == "version-alias" for f in fs):
        return _alias_gate(def_id, fs, d)
    if drained and d is not None:
        return Gate(kind="version_gate", definition=def_id, status="satisfied", evidence=d.in_flight.source)
    ungated = [f for f in fs if not f.gated and f.severity == Severity.BREAKING]
    if ungated:
        where = "; ".join(f"{f.rule} at {f.location}" for f in ungated[:5])
        more = f" (+{len(ungated) - 5} more)" if len(ungated) > 5 else ""
        return Gate(
            kind="version_gate", definition=def_id, status="missing", evidence=f"ungated: {where}{more}"
        )
    gated = [f for f in fs if f.gated and f.change is not None]
    engine = next((f.change.engine for f in gated if f.change), "temporal")
    ids = sorted(
        {str(f.change.details["patch_id"]) for f in gated if f.change and f.change.details.get("patch_id")}
    )
    if ids:
        return Gate(
            kind="version_gate",
            definition=def_id,
            status="satisfied",
            evidence="behind " + ", ".join(dialect(engine).gate_text(i) for i in ids),
        )
    pinned = [f for f in fs if f.gate == "worker-versioning"]
    if pinned:
        return Gate(
            kind="version_gate",
            definition=def_id,
            status="satisfied",
            evidence="versioning_behavior=PINNED declared; confirm workers run with use_worker_versioning=True",
        )
    # Nothing breaking and nothing gated: a gate that could not be unmet is not listed.
    return None


def _alias_gate(def_id: str, fs: Sequence[Finding], d: Definition | None) -> Gate:
    """Step Functions: new executions reach the change through a published version and an alias."""
    gated = [f for f in fs if f.gated and f.change is not None]
    if gated and len(gated) == len(fs):
        alias = next(
            (str(f.change.details["alias"]) for f in gated if f.change and f.change.details.get("alias")), ""
        )
        return Gate(
            kind="version_gate", definition=def_id, status="satisfied", evidence=f"rolled out through {alias}"
        )
    rules = ", ".join(sorted({f.rule for f in fs}))
    return Gate(
        kind="version_gate",
        definition=def_id,
        status="missing",
        evidence=f"no alias with a CANARY/LINEAR DeploymentPreference routes new executions ({rules})",
    )


def _replay_gate(def_id: str, histories: Sequence[str], replay: Sequence[ReplayResult]) -> Gate:
    mine = [r for r in replay if r.definition == def_id]
    failed = [r for r in mine if r.failed]
    passed = [r for r in mine if r.outcome == "ok"]
    if failed:
        open_failed = sum(1 for r in failed if r.open)
        return Gate(
            kind="replay",
            definition=def_id,
            status="missing",
            evidence=f"{len(failed)} of {len(mine)} histories fail ({open_failed} in flight)",
        )
    if passed:
        open_ok = sum(1 for r in passed if r.open)
        return Gate(
            kind="replay",
            definition=def_id,
            status="satisfied",
            evidence=f"{len(passed)} histories replay cleanly ({open_ok} in flight)",
        )
    if mine:
        evidence = f"{len(mine)} histories not replayed: {mine[0].message}"
    elif histories:
        evidence = f"no history of `{def_id}` in the supplied sources ({', '.join(histories)})"
    else:
        evidence = "no histories supplied (pass --histories DIR with exported histories of open executions)"
    return Gate(kind="replay", definition=def_id, status="pending", evidence=evidence)


def decide(
    findings: Sequence[Finding], definitions: Sequence[Definition], gates: Sequence[Gate], config: Config
) -> Verdict:
    """Return the verdict: error (fail closed), breaking, safe_with_gates or safe."""
    active = [f for f in findings if not f.suppressed]
    errors = [f for f in active if f.severity == Severity.ERROR]
    blockers = blocking(findings, definitions)
    # Replay that could not run or finish always fails closed, whatever `on_error` says.
    if errors and (config.on_error == "fail" or any(is_replay(f) for f in errors)):
        reasons = [f"could not decide: {f.message}" for f in errors]
        reasons += [_reason(f) for f in blockers]
        return Verdict(level=VerdictLevel.ERROR, reasons=reasons)
    undecided = [f"not analysed (on_error: pass): {f.message}" for f in errors]
    if blockers:
        return Verdict(level=VerdictLevel.BREAKING, reasons=[_reason(f) for f in blockers] + undecided)
    open_gates = [g for g in gates if g.status != "satisfied"]
    settled = [f for f in active if f.severity == Severity.RISKY and replayed_clean(f)]
    risky = [f for f in active if f.severity == Severity.RISKY and f not in settled]
    if open_gates or risky or any(f.severity == Severity.BREAKING for f in active):
        reasons = [
            f"{g.kind.replace('_', ' ')} for `{g.definition}`: {g.evidence}" for g in open_gates
        ] + undecided
        reasons += [_reason(f) for f in risky]
        reasons += [
            f"{_reason(f)} (no execution in flight)"
            for f in active
            if f.severity == Severity.BREAKING and f not in blockers
        ]
        return Verdict(level=VerdictLevel.SAFE_WITH_GATES, reasons=reasons)
    changed = [d for d in definitions if d.status != "unchanged"]
    suppressed = [f for f in findings if f.suppressed]
    notes = [
        f"{len(suppressed)} finding(s) suppressed inline: {', '.join(sorted({f.rule for f in suppressed}))}"
    ]
    if not changed:
        return Verdict(level=VerdictLevel.SAFE, reasons=["no workflow definition changed", *undecided])
    reasons = [f"{len(changed)} definition(s) changed; no change affects executions in flight"]
    reasons += [f"{f.rule} {f.title} in `{f.definition}`: {f.replay}" for f in settled]
    return Verdict(level=VerdictLevel.SAFE, reasons=reasons + (notes if suppressed else []) + undecided)


def _reason(f: Finding) -> str:
    where = f" at {f.location}" if f.location else ""
    subject = f" in `{f.definition}`" if f.definition else ""
    return f"{f.rule} {f.title}{subject}{where}"
