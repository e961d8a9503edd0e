"""The Temporal rollout plan: outline, drain/cutover runbook, rollback, canary, guardrails."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.config import Config
from bot.engines.pyast import SourceError
from bot.engines.temporal import outline
from bot.model import Finding, Plan, Severity, WorkflowModel

if TYPE_CHECKING:
    from bot.engines.temporal import TemporalContext

GUARDRAILS = [
    "Never insert, remove or reorder activities, child workflows, timers, upserts or external signals on a "
    "path that open executions have not passed, unless behind `workflow.patched()`.",
    "Never change an activity or child-workflow type in place (the function called, or `@activity.defn(name=...)`).",
    'Never change a workflow\'s type name: renaming the class needs `@workflow.defn(name="<old name>")`.',
    "Never remove a signal handler while open executions may still be sent that signal.",
    "Never remove `workflow.patched(id)` while histories hold its marker: `deprecate_patch` first, remove after drain.",
    "Never call datetime.now/time.time/random/uuid4/os.environ or do I/O in workflow code: use "
    "`workflow.now()`, `workflow.random()`, `workflow.uuid4()` or an activity.",
    "Never change the run method's parameter types in place: add optional parameters, or a new workflow type.",
]


def _q(text: str) -> str:
    return text.replace("'", "'\\''")


def build_plan(ctx: TemporalContext, findings: Sequence[Finding], config: Config) -> Plan:
    """Return the plan for the findings that need gates (empty when none does)."""
    tconf = config.temporal
    active = [
        f for f in findings if not f.suppressed and f.change is not None and f.change.engine == "temporal"
    ]
    needs = [f for f in active if f.gate != "none" or f.severity == Severity.BREAKING]
    if not needs:
        return Plan(strategy=tconf.strategy)
    ns = tconf.namespace
    tq = tconf.task_queue or "<task-queue>"
    edits: list[outline.Edit] = []
    runbook: list[str] = []
    rollback: list[str] = []
    canary: list[str] = []
    notes: list[str] = []
    by_def: dict[str, list[Finding]] = {}
    for f in needs:
        by_def.setdefault(f.definition or "", []).append(f)

    for def_id, fs in sorted(by_def.items()):
        base_model, head_model = ctx.pairs.get(def_id, (None, None))
        ungated = [f for f in fs if not f.gated and f.severity in (Severity.BREAKING, Severity.RISKY)]
        gated = [f for f in fs if f.gated]
        kinds = {f.change.kind for f in fs if f.change}
        wf = f'WorkflowType="{def_id}"'
        running = (
            f"temporal workflow count --namespace {ns} --query '{_q(wf)} AND ExecutionStatus=\"Running\"'"
        )
        if head_model is None:
            runbook.append(
                f"`{def_id}` is removed: keep it registered until `{running}` prints 0, then remove it "
                f"(or declare it in `drained:` in the config)."
            )
            rollback.append(
                f"`{def_id}`: redeploying the base build brings the type back; nothing is orphaned."
            )
            continue
        pid = outline.patch_id(head_model, ungated or fs)
        for f in gated:
            if f.change and f.change.details.get("patch_id"):
                pid = str(f.change.details["patch_id"])
                break
        try:
            edits.extend(_edits(ctx, base_model, head_model, ungated, pid, tconf.strategy))
        except SourceError as exc:
            notes.append(f"no outline for `{def_id}`: {exc}")
        marker = f'TemporalChangeVersion="{pid}"'
        if tconf.strategy == "patch":
            runbook += _patch_runbook(def_id, pid, ns, tq, wf, marker, kinds)
            rollback += _patch_rollback(def_id, pid, ns, wf, marker, bool(ungated))
        elif tconf.strategy == "worker-versioning":
            runbook += _versioning_runbook(def_id, tconf.deployment_name or "<deployment>", ns)
            rollback += [
                f"`{def_id}`: roll back by setting the previous build current again "
                "(`temporal worker deployment set-current-version --build-id <previous-build>`); pinned executions "
                "of the new build keep running on it, so keep its workers until they drain."
            ]
        else:
            runbook += _new_type_runbook(def_id, running, tq)
            rollback += [
                f"`{def_id}V2` executions need the V2 code: roll back by pointing starters at `{def_id}` again, "
                f'and keep the V2 workers until `temporal workflow count --query \'WorkflowType="{def_id}V2" AND '
                'ExecutionStatus="Running"\'` prints 0.'
            ]
        canary += _canary(def_id, pid, ns, tq, tconf.strategy, tconf.deployment_name)

    diff, failed = outline.render(ctx.head, edits)
    for path in failed:
        notes.append(
            f"could not build a clean outline for `{path}`: apply the gate by hand at the lines above"
        )
    return Plan(
        strategy=tconf.strategy,
        outline=diff,
        runbook=[*notes, *runbook],
        rollback=rollback,
        canary=canary,
        guardrails=GUARDRAILS,
    )


def _edits(
    ctx: TemporalContext,
    base_model: WorkflowModel | None,
    head_model: WorkflowModel,
    ungated: Sequence[Finding],
    pid: str,
    strategy: str,
) -> list[outline.Edit]:
    head, base = ctx.head, ctx.base
    kinds = {f.change.kind for f in ungated if f.change}
    edits: list[outline.Edit] = []
    hazards = [f for f in ungated if f.change and f.change.kind == "temporal.nondeterminism.added"]
    edits += outline.nondeterminism_edits(head, hazards)
    if base_model is None:
        return edits
    if "temporal.workflow.renamed" in kinds:
        fix = outline.decorator_edit(head, head_model, name=repr(base_model.id))
        return [*edits, fix] if fix else edits
    removed_signals = {
        str(f.change.details.get("name"))
        for f in ungated
        if f.change and f.change.kind == "temporal.handler.removed" and f.severity == Severity.BREAKING
    }
    if removed_signals:
        edits += outline.restore_handler_edits(base, head_model, base_model, removed_signals)
    sequences = {
        str(f.change.details.get("sequence", "run"))
        for f in ungated
        if f.change and f.change.kind in outline.SEQUENCE_RULES
    }
    if not sequences:
        return edits
    if strategy == "patch":
        edits += outline.sequence_edits(base, head, base_model, head_model, pid, sequences)
    elif strategy == "worker-versioning":
        fix = outline.decorator_edit(head, head_model, versioning_behavior="VersioningBehavior.PINNED")
        imp = outline.import_edit(
            head, head_model.path, "from temporalio.common import VersioningBehavior", "VersioningBehavior"
        )
        edits += [e for e in (fix, imp) if e]
    else:
        edits += outline.new_type_edits(base, head, base_model, head_model)
    return edits


def _patch_runbook(
    def_id: str, pid: str, ns: str, tq: str, wf: str, marker: str, kinds: set[str]
) -> list[str]:
    deprecating = kinds & {"temporal.patch.deprecated", "temporal.patch.removed"}
    if deprecating:
        return [
            f"`{def_id}`: before merging, check no execution that predates the gate is open: "
            f'`temporal workflow count --namespace {ns} --query \'{_q(wf)} AND ExecutionStatus="Running" AND '
            f'StartTime < "<when the patch was first deployed>"\'` must print 0.',
            f"`{def_id}`: remove a `deprecate_patch` call only when `temporal workflow count --namespace {ns} --query "
            f"'{_q(wf)} AND {_q(marker)} AND ExecutionStatus=\"Running\"'` prints 0 and the namespace retention period "
            "has passed.",
        ]
    return [
        f'`{def_id}`: merge with the `workflow.patched("{pid}")` gate from the outline. Executions that started '
        "before it replay the old branch; new ones record the marker and take the new branch.",
        f"`{def_id}`: deploy the build to every worker polling `{tq}` (a rolling deploy is fine: both builds "
        "can replay both kinds of history once the gate is in).",
        f"`{def_id}`: check new executions take the new branch: `temporal workflow list --namespace {ns} "
        f"--query '{_q(wf)} AND {_q(marker)}'`.",
        f"`{def_id}`: watch the pre-patch executions drain: `temporal workflow count --namespace {ns} --query "
        f'\'{_q(wf)} AND ExecutionStatus="Running" AND StartTime < "<deploy time, RFC 3339>"\'` until it prints 0.',
        f'`{def_id}`: after the drain and the namespace retention period, replace `workflow.patched("{pid}")` '
        f'with `workflow.deprecate_patch("{pid}")`, delete the old branch, and deploy.',
        f'`{def_id}`: remove the `deprecate_patch("{pid}")` call once `temporal workflow count --namespace {ns} '
        f"--query '{_q(wf)} AND {_q(marker)} AND ExecutionStatus=\"Running\"'` prints 0 and retention has passed.",
    ]


def _patch_rollback(def_id: str, pid: str, ns: str, wf: str, marker: str, ungated: bool) -> list[str]:
    steps = [
        f"`{def_id}`: do not roll back to the base build once this one has run: executions started under it "
        f"recorded the `{pid}` marker and ran the new steps, and the base code fails them with a nondeterminism error.",
        f'`{def_id}`: roll forward instead: keep `workflow.patched("{pid}")` and make its branch do what the '
        "base code did, then deploy. Every execution keeps replaying.",
        f"`{def_id}`: a plain revert is safe only while `temporal workflow count --namespace {ns} --query "
        f"'{_q(wf)} AND {_q(marker)}'` prints 0 (no execution has recorded the marker yet).",
    ]
    if ungated:
        steps.append(
            f"`{def_id}`: if this change ships without the gate, executions past the change fail their workflow task "
            "(TMPRL1100) and stay stuck, not failed: redeploy the base build to unstick them, then apply the gate."
        )
    return steps


def _versioning_runbook(def_id: str, deployment: str, ns: str) -> list[str]:
    return [
        f"`{def_id}`: declare `@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)` (see the outline) and "
        f'run workers with `WorkerDeploymentConfig(version=WorkerDeploymentVersion("{deployment}", build_id), '
        "use_worker_versioning=True)`.",
        f"`{def_id}`: deploy the new build beside the current one; ramp it: `temporal worker deployment "
        f"set-ramping-version --namespace {ns} --deployment-name {deployment} --build-id <new-build> --percentage 5`.",
        f"`{def_id}`: when the canary is clean, make it current: `temporal worker deployment set-current-version "
        f"--namespace {ns} --deployment-name {deployment} --build-id <new-build>`.",
        f"`{def_id}`: keep the old build's workers until `temporal worker deployment describe-version --namespace {ns} "
        f"--deployment-name {deployment} --build-id <old-build>` reports it drained.",
    ]


def _new_type_runbook(def_id: str, running: str, tq: str) -> list[str]:
    return [
        f"`{def_id}`: register `{def_id}V2` (head code) beside `{def_id}` (base code) on the `{tq}` workers (outline).",
        f"`{def_id}`: switch every starter (clients, schedules, parent workflows) to `{def_id}V2`.",
        f"`{def_id}`: keep `{def_id}` registered until `{running}` prints 0, then delete it.",
    ]


def _canary(def_id: str, pid: str, ns: str, tq: str, strategy: str, deployment: str | None) -> list[str]:
    if strategy == "worker-versioning":
        route = (
            f"ramp 5% of new `{def_id}` executions to the new build (`set-ramping-version ... --percentage 5` on "
            f"deployment `{deployment or '<deployment>'}`)"
        )
    else:
        route = f"run the new build on a canary task queue (`{tq}-canary`) and start a share of new `{def_id}` executions there"
    return [
        f"`{def_id}`: {route}.",
        f"`{def_id}`: export canary and in-flight production histories: `temporal workflow show --namespace {ns} "
        "-w <workflow-id> -o json > histories/<workflow-id>.json`.",
        f"`{def_id}`: replay them against the next build before fleet rollout: "
        "`inflight-guard check --histories histories/`.",
        f"`{def_id}`: promote when replay is clean and the canary shows no failed workflow tasks.",
    ]
