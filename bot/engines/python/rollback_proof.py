"""The rollback proof: whether the base build can take over executions the new build has run.

A rollback, and every old worker still polling during a rolling deploy, replays histories the NEW
build recorded on the BASE code. So the new code (head, or head with the shown outline applied) is
recorded on the engine by the same synthesis that records the base for the verdict, with the sides
swapped, and each history is replayed on base with the check's own runner. The rollback section
says "a plain revert is safe" only when every one of them replays; else it says "roll forward",
names the history and event that failed, and states the mixed-fleet window from the same replay.
Where nothing could be recorded or replayed, it says the rollback is not proven and how to prove it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.python.outline import is_sequence
from bot.engines.python.outline_proof import Withheld, outlined_commit
from bot.engines.python.pyengine import PythonEngine, context_of
from bot.engines.python.synthesis import LABEL, Servers
from bot.histories import ReplayOptions
from bot.model import Finding, Plan, ReplayResult
from bot.plan import join_steps
from bot.repo import SourceTree, changed_files

# Strategies whose new build replays the old one's histories on the same workflow type: the others
# keep new executions away from the base code (a pinned build, a new type).
SAME_TYPE = {"patch", "version"}


@dataclass
class Evidence:
    """What the new build's histories of one definition did on base."""

    replayed: int = 0
    failures: list[ReplayResult] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # changed commands the recording never reached


@dataclass
class Outcome:
    shipped: str  # "head" or "head with the outline"
    evidence: dict[str, Evidence] = field(default_factory=dict)
    why_not: str = ""  # why nothing was proven


def prove_rollback(
    plan: Plan,
    engine: PythonEngine,
    analysis: Analysis,
    config: Config,
    options: ReplayOptions,
    findings: Sequence[Finding],
    *,
    run_code: bool,
    servers: Servers | None,
) -> Plan:
    """`plan` with a rollback verdict per definition, backed by replaying the new build's histories
    on base (or saying plainly that it could not be)."""
    if not plan.definitions or plan.strategy not in SAME_TYPE:
        return plan
    outcome = _record(plan, engine, analysis, config, options, run_code, servers, _wanted(findings))
    context = context_of(analysis)
    lines = _sentences(plan, outcome, engine.name, context.base.tree.sha, context.head.tree.sha)
    # One sentence per definition; those that differ only in names and commands are said once.
    joined = join_steps([[line] for line in lines])
    return plan.model_copy(
        update={"rollback": [*plan.rollback, *joined], "rollback_proof": _summary(outcome)}
    )


def _record(
    plan: Plan,
    engine: PythonEngine,
    analysis: Analysis,
    config: Config,
    options: ReplayOptions,
    run_code: bool,
    servers: Servers | None,
    wanted: dict[str, set[str]],
) -> Outcome:
    shipped = "head with the outline" if plan.outline else "head"
    outcome = Outcome(shipped=shipped)
    if not run_code:
        outcome.why_not = "a static-only job runs no code"
        return outcome
    if config.synthesis.mode == "off":
        outcome.why_not = "synthesis is off"
        return outcome
    if not config.synthesis.rollback:
        outcome.why_not = "recording the new build is off (`synthesis.rollback: false`)"
        return outcome
    if servers is None:
        outcome.why_not = "no engine to record on"
        return outcome
    kit = engine.kit
    address, no_server = servers.get(kit.server)
    if kit.server is not None and address is None:
        outcome.why_not = f"no server to record on ({no_server or 'none'})"
        return outcome
    context = context_of(analysis)
    base_tree, head_tree = context.base.tree, context.head.tree
    with tempfile.TemporaryDirectory(prefix="inflight-guard-rollback-") as scratch:
        if plan.outline:
            try:
                repo, sha = outlined_commit(head_tree, plan.outline, Path(scratch))
            except Withheld as exc:
                outcome.why_not = f"the outline could not be applied ({exc})"
                return outcome
            new = SourceTree(repo, repo.commit(sha), "base", max_file_bytes=head_tree.max_file_bytes)
            old = SourceTree(
                repo, repo.commit(base_tree.sha), "head", max_file_bytes=base_tree.max_file_bytes
            )
        else:
            new = SourceTree(
                head_tree.repo, head_tree.commit, "base", max_file_bytes=head_tree.max_file_bytes
            )
            old = SourceTree(
                base_tree.repo, base_tree.commit, "head", max_file_bytes=base_tree.max_file_bytes
            )
        # The sides swapped: the new build is recorded, base replays.
        swapped = engine.analyze(new, old, changed_files(new.commit, old.commit), config)
        targets = [
            d.id
            for d in swapped.definitions
            if d.id in plan.definitions and d.status in ("changed", "unchanged")
        ]
        if not targets:
            outcome.why_not = "none of its workflows exists on both sides"
            return outcome
        recorded = engine.synthesize(swapped, targets, config.synthesis, options, address)
    if recorded.failed is not None:
        outcome.why_not = f"nothing could be recorded ({recorded.failed.rstrip('.')})"
        return outcome
    if recorded.summary.runner_error:
        outcome.why_not = f"the base build could not replay them ({recorded.summary.runner_error})"
        return outcome
    problems = recorded.summary.import_errors
    for d in targets:
        mine = [r for r in recorded.results if r.definition == d]
        workflow = next((w for w in recorded.workflows if w.definition == d), None)
        reached = set(workflow.commands) if workflow else set()
        evidence = Evidence(
            replayed=sum(1 for r in mine if r.replayed),
            failures=[r for r in mine if r.failed],
            variants=workflow.variants if workflow else [],
            missed=sorted(wanted.get(d, set()) - reached),
        )
        if problems and not evidence.replayed:
            # The base code could not even load the workflow: every history fails on it.
            evidence.failures = mine or evidence.failures
        outcome.evidence[d] = evidence
    return outcome


def _wanted(findings: Sequence[Finding]) -> dict[str, set[str]]:
    """Per definition, the commands the new build issues where the change is: a recording that never
    reached them proves nothing about a revert."""
    out: dict[str, set[str]] = {}
    for f in findings:
        if (
            f.change is None
            or f.suppressed
            or not is_sequence(f)
            or f.change.details.get("change") == "removed"
        ):
            continue
        command, name = f.change.details.get("command"), f.change.details.get("name")
        if command and name:
            out.setdefault(f.definition or "", set()).add(f"{command} {name}")
    return out


def _summary(outcome: Outcome) -> str:
    if outcome.why_not:
        return f"not proven: {outcome.why_not}"
    replayed = sum(e.replayed for e in outcome.evidence.values())
    failed = sum(len(e.failures) for e in outcome.evidence.values())
    missed = sorted(d for d, e in outcome.evidence.items() if e.missed and not e.failures)
    return (
        f"{replayed} in-flight histories recorded on {outcome.shipped} (synthesized) replayed on the base build: "
        f"{failed} failed"
        + (f"; not proven for {', '.join(missed)} (the changed step was not reached)" if missed else "")
    )


def _task(engine: str) -> str:
    return "decision task" if engine == "cadence" else "workflow task"


def _fleet_fix(engine: str) -> str:
    if engine == "cadence":
        return (
            "finish the rollout quickly (stop the old workers as soon as the new ones poll), or route new "
            "executions to a new task list served only by the new build"
        )
    return (
        "finish the rollout quickly (stop the old workers as soon as the new ones poll), or ramp with Worker "
        "Versioning (`temporal.strategy: worker-versioning`: pinned executions stay on the build that started them)"
    )


def _prove_command(shipped: str, base_sha: str, head_sha: str) -> str:
    if shipped == "head":
        cmd = f"inflight-guard check --rollback --base {base_sha[:12]} --head {head_sha[:12]} --synthesize always"
        return f"`{cmd}` (it records this build's executions and replays them on base; exit 1 when base cannot take them over)"
    cmd = f"inflight-guard check --rollback --base {base_sha[:12]} --synthesize always"
    return (
        f"commit the outline, then `{cmd}` (it records the outlined build's executions and replays them on base; "
        "exit 1 when base cannot take them over)"
    )


def _sentences(plan: Plan, outcome: Outcome, engine: str, base_sha: str, head_sha: str) -> list[str]:
    lines: list[str] = []
    for d in plan.definitions:
        window = plan.revert_windows.get(d, "")
        evidence = outcome.evidence.get(d)
        if outcome.why_not or evidence is None or not (evidence.replayed or evidence.failures):
            why = outcome.why_not or "no history of it was recorded on the new build"
            text = f"`{d}`: rollback NOT proven ({why}): treat a revert to the base build as unsafe once the new build has run executions"
            text += f"; it is safe while {window}" if window else ""
            lines.append(
                f"{text}. Prove it before reverting: {_prove_command(outcome.shipped, base_sha, head_sha)}."
            )
            continue
        if not evidence.failures and evidence.missed:
            shown = ", ".join(f"`{m}`" for m in evidence.missed)
            text = (
                f"`{d}`: rollback NOT proven (the {evidence.replayed} histories recorded on {outcome.shipped} replay "
                f"on base, but none reached {shown}, where the change is): treat a revert to the base build as "
                "unsafe once the new build has run executions"
            )
            text += f"; it is safe while {window}" if window else ""
            lines.append(
                f"{text}. Prove it before reverting: {_prove_command(outcome.shipped, base_sha, head_sha)}."
            )
            continue
        if not evidence.failures:
            variants = f" ({', '.join(evidence.variants)})" if evidence.variants else ""
            lines.append(
                f"`{d}`: a plain revert is safe: all {evidence.replayed} in-flight histories recorded on "
                f"{outcome.shipped}{variants} replay cleanly on the base build, so old workers in a rolling "
                "deploy take them too."
            )
            continue
        first = evidence.failures[0]
        # Recorded on the new build, replayed on base: say it in those words.
        label = first.history.replace(LABEL, "recorded on the new build", 1)
        message = first.message.replace("the head ", "the base code ").rstrip(".")
        at = f" at event {first.event_id}" if first.event_id else ""
        at += f" ({first.event})" if first.event else ""
        total = evidence.replayed + len(evidence.failures)
        lines += [
            f"`{d}`: do not roll back to the base build once the new build has run executions: "
            f"{len(evidence.failures)} of {total} in-flight histories recorded on {outcome.shipped} fail on "
            f"it ({label}{at}: {message}). Roll forward instead: keep the new build's "
            "version gates and make the new branch do what the base code did, then deploy."
            + (f" A plain revert is safe only while {window}." if window else ""),
            f"`{d}`: during the rollout, old workers fail the {_task(engine)} of every such execution the same "
            f"way; it is retried until a new worker takes it (stuck, not failed). To keep that window short, "
            f"{_fleet_fix(engine)}.",
        ]
    return lines
