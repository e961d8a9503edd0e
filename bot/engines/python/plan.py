"""The rollout plan every Python-SDK engine composes: each definition's outline edits, runbook,
rollback and canary, joined. Each engine's plan.py says its steps, guardrails and commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from bot.engines.python import outline
from bot.engines.python.pyast import SourceError
from bot.engines.python.pyengine import PythonContext
from bot.model import Finding, Plan, Severity, WorkflowModel
from bot.plan import join_steps


def compose(
    ctx: PythonContext,
    findings: Sequence[Finding],
    engine: str,
    strategy: str,
    guardrails: Sequence[tuple[str, tuple[str, ...]]],
    part: Callable[[str, list[Finding]], DefinitionPlan],
) -> Plan:
    """One engine's plan: each definition's part (outline edits, runbook, rollback, canary), joined.

    `guardrails` pairs each rule of thumb with the kinds of change (without the engine) it is about:
    the plan keeps those whose kind is present. Steps the definitions share are said once."""
    active = [f for f in findings if not f.suppressed and f.change is not None and f.change.engine == engine]
    needs = [f for f in active if f.gate != "none" or f.severity == Severity.BREAKING]
    if not needs:
        return Plan(strategy=strategy)
    by_def: dict[str, list[Finding]] = {}
    for f in needs:
        by_def.setdefault(f.definition or "", []).append(f)
    edits: list[outline.Edit] = []
    runbook: list[list[str]] = []
    rollback: list[list[str]] = []
    canary: list[list[str]] = []
    notes: list[str] = []
    unsound: list[str] = []
    windows: dict[str, str] = {}
    for def_id, fs in sorted(by_def.items()):
        plan = part(def_id, fs)
        try:
            edits += plan.edits()
        except SourceError as exc:
            notes.append(f"no outline for `{def_id}`: {exc}")
        if plan.unsound:
            unsound.append(f"`{def_id}`: {plan.unsound}")
        runbook.append(plan.runbook())
        rollback.append(plan.rollback())
        windows[def_id] = plan.revert_window()
        canary.append(plan.canary())
    diff, failed = outline.render(ctx.head, edits)
    notes += [f"could not build a clean outline for `{path}`: apply the gate by hand" for path in failed]
    return Plan(
        strategy=strategy,
        definitions=sorted(by_def),
        outline="" if unsound else diff,
        outline_withheld=f"the outline is not shown: {'; '.join(unsound)}" if unsound else "",
        runbook=[*notes, *join_steps(runbook)],
        rollback=join_steps(rollback),
        canary=join_steps(canary),
        guardrails=[text for text, kinds in guardrails if _present(kinds, active)],
        revert_windows={d: w for d, w in windows.items() if w},
    )


def _present(kinds: Sequence[str], findings: Sequence[Finding]) -> bool:
    tails = {tail(f.change.kind) for f in findings if f.change}
    return any(t == k or t.startswith(k + ".") for t in tails for k in kinds)


def revert_replay(def_id: str, base_sha: str) -> str:
    """The canary step that proves a revert on real executions: the canary's histories replayed on base."""
    return (
        f"`{def_id}`: replay the same histories on the base build too, from a checkout of the canary build: "
        f"`inflight-guard check --rollback --base {base_sha[:12]} --histories histories/`; a failure there "
        "means a revert would strand those executions (roll forward instead)."
    )


def tail(kind: str) -> str:
    """`temporal.patch.removed` → `patch.removed`: the kind without its engine."""
    return kind.split(".", 1)[1]


def path_of(ctx: PythonContext, def_id: str) -> str | None:
    """The file a definition lives in (head's, else base's): what its per-path config section matches."""
    base, head = ctx.pairs.get(def_id, (None, None))
    model = head or base
    return model.path if model is not None else None


class DefinitionPlan:
    """What one Python workflow definition needs; engines add their runbook, rollback and canary."""

    def __init__(self, ctx: PythonContext, strategy: str, def_id: str, findings: Sequence[Finding]) -> None:
        self.ctx = ctx
        self.strategy = strategy
        self.def_id = def_id
        self.base, self.head = ctx.pairs.get(def_id, (None, None))
        self.findings = findings
        self.kinds = {tail(f.change.kind) for f in findings if f.change}
        self.blocking = [f for f in findings if not f.gated and f.severity == Severity.BREAKING]
        self.sequence = [f for f in findings if outline.is_sequence(f)]
        existing = [
            str(f.change.details["patch_id"])
            for f in findings
            if f.change and f.change.details.get("patch_id")
        ]
        self.gated_in_code = any(f.gated for f in self.sequence)
        if existing:
            self.pid = existing[0]
        elif self.head is not None:
            self.pid = outline.patch_id(self.head, self.blocking or findings)
        else:
            self.pid = outline.kebab(def_id)
        self._edits: list[outline.Edit] | None = None
        self.unsound = ""

    def edits(self) -> list[outline.Edit]:
        """The outline's edits; none when no right gate can be written (`unsound` says why)."""
        if self._edits is None:
            try:
                self._edits = (
                    []
                    if self.head is None
                    else code_edits(self.ctx, self.base, self.head, self.blocking, self.pid, self.strategy)
                )
            except outline.Unsound as exc:
                self.unsound, self._edits = str(exc), []
        return self._edits

    def _gates_sequence(self) -> bool:
        return (
            any(f.severity == Severity.BREAKING and not f.gated for f in self.sequence) or self.gated_in_code
        )

    def runbook(self) -> list[str]:
        raise NotImplementedError

    def rollback(self) -> list[str]:
        """Steps that do not claim a revert is safe or not: the rollback proof says that, by replay."""
        raise NotImplementedError

    def revert_window(self) -> str:
        """The command that shows a plain revert is still safe, and what it counts ("" when none)."""
        raise NotImplementedError

    def canary(self) -> list[str]:
        raise NotImplementedError


def code_edits(
    ctx: PythonContext,
    base_model: WorkflowModel | None,
    head_model: WorkflowModel,
    ungated: Sequence[Finding],
    pid: str,
    strategy: str,
) -> list[outline.Edit]:
    """The outline's edits for one definition: a version gate around each ungated difference
    (`patch` / `version`), the PINNED declaration (`worker-versioning`), or a new type (`new-type`)."""
    head, base = ctx.head, ctx.base
    by_kind: dict[str, list[Finding]] = {}
    for f in ungated:
        if f.change:
            by_kind.setdefault(tail(f.change.kind), []).append(f)
    edits = outline.nondeterminism_edits(head, by_kind.get("nondeterminism.added", []))
    if base_model is None:
        return edits
    if "workflow.renamed" in by_kind:
        fix = outline.decorator_edit(head, head_model, name=json.dumps(base_model.id))
        return [*edits, fix] if fix else edits
    removed_signals = {
        str(f.change.details.get("name"))
        for f in by_kind.get("handler.removed", [])
        if f.change and f.severity == Severity.BREAKING
    }
    if removed_signals:
        edits += outline.restore_handler_edits(base, head_model, base_model, removed_signals)
    sequences = {
        str(f.change.details.get("sequence", "run")) for f in ungated if f.change and outline.is_sequence(f)
    }
    if not sequences:
        return edits
    if strategy in ("patch", "version"):
        conditions = {
            f.change.location.line for f in by_kind.get("command.condition_changed", []) if f.change
        }
        edits += outline.sequence_edits(base, head, base_model, head_model, pid, sequences, conditions)
    elif strategy == "worker-versioning":
        fix = outline.decorator_edit(head, head_model, versioning_behavior="VersioningBehavior.PINNED")
        imp = outline.import_edit(
            head, head_model.path, "from temporalio.common import VersioningBehavior", "VersioningBehavior"
        )
        edits += [e for e in (fix, imp) if e]
    else:
        edits += outline.new_type_edits(base, head, base_model, head_model)
    return edits
