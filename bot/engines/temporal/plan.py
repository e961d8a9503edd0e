"""The Temporal rollout plan: outline, drain/cutover runbook, rollback, canary, guardrails."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from bot.config import Config, TemporalConfig
from bot.engines.python.plan import DefinitionPlan, compose, path_of, revert_replay, tail
from bot.engines.python.pyengine import PythonContext
from bot.model import Finding, Plan

# Each rule of thumb, with the kinds of change (without the engine) it is about: the comment shows it
# only when such a change is present.
SEQUENCE = ("command", "timer", "exit", "loop", "value", "replay")
GUARDRAILS = [
    (
        "Never insert, remove or reorder activities, child workflows, timers, upserts or external signals on a "
        "path that open executions have not passed, unless behind `workflow.patched()`.",
        SEQUENCE,
    ),
    (
        "Never change an activity or child-workflow type in place (the function called, or "
        "`@activity.defn(name=...)`).",
        ("command.type_changed", "command.kind_changed"),
    ),
    (
        'Never change a workflow\'s type name: renaming the class needs `@workflow.defn(name="<old name>")`.',
        ("workflow.renamed", "workflow.removed"),
    ),
    (
        "Never remove a signal handler while open executions may still be sent that signal.",
        ("handler.removed",),
    ),
    (
        "Never remove `workflow.patched(id)` while histories hold its marker: `deprecate_patch` first, remove "
        "after drain.",
        ("patch.removed", "patch.deprecated"),
    ),
    (
        "Never call datetime.now/time.time/random/uuid4/os.environ or do I/O in workflow code: use "
        "`workflow.now()`, `workflow.random()`, `workflow.uuid4()` or an activity.",
        ("nondeterminism",),
    ),
    (
        "Never change the run method's parameter types in place: add optional parameters, or a new workflow type.",
        ("signature", "input"),
    ),
]


LIFECYCLE = {"patch.deprecated", "patch.removed"}
RUNNING = "ExecutionStatus='Running'"
NO_MARKER = "TemporalChangeVersion IS NULL"
# Times only the operator knows, as shell variables: a copied command that still lacks one stops
# with the variable's name instead of sending the server a query it cannot parse.
PATCH_DEPLOYED = "PATCH_DEPLOYED_AT"
DEPRECATE_DEPLOYED = "DEPRECATE_DEPLOYED_AT"
DEPLOYED = "DEPLOYED_AT"
PINNED_DEPLOYED = "PINNED_DEPLOYED_AT"
NOW = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ZERO = "`Total: 0`"


def literal(value: str) -> str:
    """`value` as a visibility-query string literal, ready for a double-quoted shell word."""
    quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    for ch in ("\\", '"', "$", "`"):
        quoted = quoted.replace(ch, "\\" + ch)
    return quoted


def started(op: str, variable: str) -> str:
    """A StartTime bound on a time held in a shell variable: the shell stops with a hint when it is unset."""
    return f"StartTime {op} '${{{variable}:?export {variable} first}}'"


def note_time(variable: str) -> str:
    """The command that records now as `variable` (RFC 3339, UTC), as later queries read it."""
    return f"`export {variable}={NOW}`"


def query(*conditions: str) -> str:
    return '"' + " AND ".join(conditions) + '"'


def count(ns: str, *conditions: str) -> str:
    return f"`temporal workflow count --namespace {shlex.quote(ns)} --query {query(*conditions)}`"


def listing(ns: str, *conditions: str) -> str:
    return f"`temporal workflow list --namespace {shlex.quote(ns)} --query {query(*conditions)}`"


def deployment_command(verb: str, ns: str, deployment: str | None, build: str, *extra: str) -> str:
    """`temporal worker deployment <verb>` for one version; `build` is a shell variable's name."""
    parts = [
        "temporal worker deployment",
        verb,
        "--namespace",
        shlex.quote(ns),
        "--deployment-name",
        shlex.quote(deployment) if deployment else variable("DEPLOYMENT_NAME"),
        "--build-id",
        variable(build),
        *extra,
    ]
    return "`" + " ".join(parts) + "`"


# Input changes whose old values no longer decode into the new class.
INPUT_BREAKS = {"input.field_renamed", "input.field_retyped", "input.field_added_required"}


def build_plan(ctx: PythonContext, findings: Sequence[Finding], config: Config) -> Plan:
    """Return the plan for the findings that need gates (empty when none does)."""
    conf = config.temporal
    return compose(
        ctx,
        findings,
        "temporal",
        conf.strategy,
        GUARDRAILS,
        lambda def_id, fs: _DefinitionPlan(ctx, config.for_path(path_of(ctx, def_id)).temporal, def_id, fs),
    )


class _DefinitionPlan(DefinitionPlan):
    """The steps one definition needs, composed from the kinds of its findings."""

    def __init__(
        self, ctx: PythonContext, conf: TemporalConfig, def_id: str, findings: Sequence[Finding]
    ) -> None:
        super().__init__(ctx, conf.strategy, def_id, findings)
        self.conf = conf
        self.ns = self.conf.namespace
        self.tq = self.conf.task_queue or "<task-queue>"
        self.wf = f"WorkflowType={literal(def_id)}"
        self.marker = f"TemporalChangeVersion={literal(self.pid)}"
        self.pinned = bool(
            self.base
            and self.head
            and {self.base.versioning_behavior, self.head.versioning_behavior} == {"PINNED"}
        )

    def count(self, *conditions: str) -> str:
        return count(self.ns, self.wf, *conditions)

    def runbook(self) -> list[str]:
        d = self.def_id
        running = self.count(RUNNING)
        if self.head is None:
            return [
                f"`{d}` is removed: keep it registered until {running} prints {ZERO}, then remove it "
                "(or declare it in `drained:` in the config)."
            ]
        steps: list[str] = []
        if self._gates_sequence():
            if self.conf.strategy == "worker-versioning":
                steps += _versioning_runbook(d, self.conf.deployment_name, self.ns, pinned=self.pinned)
            elif self.conf.strategy == "new-type":
                steps += _new_type_runbook(d, running, self.tq)
            else:
                steps += self._patch_steps()
        elif "command.inserted" in self.kinds or "timer.added" in self.kinds:
            steps.append(
                f"`{d}`: the new step comes after everything open executions recorded: deploy as usual; "
                "they run it when they get there. Closed executions no longer replay (queries on them fail)."
            )
        if self.kinds & LIFECYCLE:
            steps += self._lifecycle_steps()
        if "handler.removed" in self.kinds:
            steps.append(
                f"`{d}`: keep the removed handler (the outline restores it) until "
                f"{self.count(RUNNING, started('<', DEPLOYED))} prints {ZERO} (executions started before this "
                f"deploy; when the rollout is done: {note_time(DEPLOYED)}); remove it in a later change."
            )
        if "nondeterminism.added" in self.kinds:
            steps.append(
                f"`{d}`: apply the outline's deterministic replacements (or move the call into an activity) "
                "before merging: the sandbox fails the workflow task at these calls."
            )
        if "workflow.renamed" in self.kinds:
            steps.append(
                f"`{d}`: keep the old type name with `@workflow.defn(name=...)` (outline), or register the "
                "new type beside the old one until the old one's executions drain."
            )
        if "signature.changed" in self.kinds:
            steps.append(
                f"`{d}`: make the run signature accept old inputs (new parameters with defaults), or start "
                f"new executions on a new workflow type and keep `{d}` until {running} prints {ZERO}."
            )
        if self._input_targets("workflow"):
            steps.append(
                f"`{d}`: make the input classes accept the old shape (keep old field names and types, give new "
                "fields defaults): inputs are decoded before any workflow code runs, so a `patched()` gate cannot "
                f"help. Or start new executions on a new workflow type and keep `{d}` until {running} prints "
                f"{ZERO}."
            )
        if self._input_targets("activity"):
            steps.append(
                f"`{d}`: keep the old fields of the activity input (add new ones with defaults) until "
                f"{self.count(RUNNING, started('<', DEPLOYED))} prints {ZERO} (when the rollout is done: "
                f"{note_time(DEPLOYED)}): tasks those executions scheduled carry the old shape. Or register the "
                "new input under a new activity name beside the old one."
            )
        if (
            any(f.gate == "worker-versioning" for f in self.findings)
            and self.conf.strategy != "worker-versioning"
        ):
            steps += _versioning_runbook(d, self.conf.deployment_name, self.ns, pinned=True)
        return steps

    def _patch_steps(self) -> list[str]:
        d, pid = self.def_id, self.pid
        where = "already in the code" if self.gated_in_code and not self.edits() else "from the outline"
        return [
            f'`{d}`: merge with the `workflow.patched("{pid}")` gate ({where}). Executions that passed the gate '
            "before it replay the old branch; executions that reach it on the new build record the marker and "
            "take the new branch.",
            f"`{d}`: deploy the build to every worker polling `{self.tq}` and finish the rollout quickly: while "
            "old workers still poll, they take workflow tasks of executions the new build advanced (the "
            "rollback section says, from replay, whether they fail them).",
            f"`{d}`: when the rollout is done, note the time (the drain query below reads it): "
            f"{note_time(PATCH_DEPLOYED)}.",
            f"`{d}`: check new executions take the new branch: {listing(self.ns, self.wf, self.marker)}.",
            f"`{d}`: watch the executions that passed the gate point before the patch drain: "
            f"{self.count(RUNNING, NO_MARKER, started('<', PATCH_DEPLOYED))} until it prints {ZERO}.",
            f'`{d}`: after the drain and the namespace retention period, replace `workflow.patched("{pid}")` '
            f'with `workflow.deprecate_patch("{pid}")`, delete the old branch, deploy, and note the time: '
            f"{note_time(DEPRECATE_DEPLOYED)}.",
            f'`{d}`: remove the `deprecate_patch("{pid}")` call once '
            f"{self.count(self.marker, RUNNING, started('<', DEPRECATE_DEPLOYED))} prints {ZERO} (executions "
            "that recorded the marker under `patched()`; `deprecate_patch` records the same search attribute, "
            "so without the StartTime bound the count never drops under live traffic) and retention has passed.",
        ]

    def _lifecycle_steps(self) -> list[str]:
        d = self.def_id
        steps = []
        if "patch.deprecated" in self.kinds:
            steps.append(
                f"`{d}`: before merging, check no execution that passed the gate point before the patch is open: "
                f"{self.count(RUNNING, NO_MARKER, started('<', PATCH_DEPLOYED))} must print {ZERO} "
                f"(`{PATCH_DEPLOYED}`: when the build that added `patched()` finished rolling out)."
            )
        removed = {
            str(f.change.details.get("previously"))
            for f in self.findings
            if f.change and f.change.kind.endswith("patch.removed")
        }
        if "deprecated" in removed:
            steps.append(
                f"`{d}`: before merging, check no open execution recorded the marker under `patched()`: "
                f"{self.count(self.marker, RUNNING, started('<', DEPRECATE_DEPLOYED))} must print {ZERO} "
                f"(`{DEPRECATE_DEPLOYED}`: when the `deprecate_patch` build finished rolling out; executions it "
                "started record the same search attribute and replay without the call), and wait out the "
                "namespace retention period if closed executions are queried."
            )
        if "patched" in removed:
            steps.append(
                f"`{d}`: before merging, check no open execution recorded the marker: "
                f"{self.count(self.marker, RUNNING)} must print {ZERO}, and wait out the namespace "
                "retention period if closed executions are queried."
            )
        return steps

    def _input_targets(self, target: str) -> bool:
        """Whether a blocking finding says old `target` inputs (workflow or activity) no longer decode."""
        return any(
            f.change is not None
            and tail(f.change.kind) in INPUT_BREAKS
            and f.change.details.get("target") == target
            for f in self.blocking
        )

    def rollback(self) -> list[str]:
        d = self.def_id
        if self.head is None:
            return [f"`{d}`: redeploying the base build brings the type back; nothing is orphaned."]
        steps: list[str] = []
        if self._gates_sequence():
            if self.conf.strategy == "worker-versioning":
                steps.append(
                    f"`{d}`: roll back by making the previous build current again "
                    f"({deployment_command('set-current-version', self.ns, self.conf.deployment_name, 'OLD_BUILD_ID')}); "
                    "pinned executions of the new build keep running on it, so keep its workers until they drain."
                )
            elif self.conf.strategy == "new-type":
                steps.append(
                    f"`{d}V2` executions need the V2 code: roll back by pointing starters at `{d}` again, and keep "
                    f"the V2 workers until {count(self.ns, 'WorkflowType=' + literal(d + 'V2'), RUNNING)} "
                    f"prints {ZERO}."
                )
        # An activity input that no longer decodes fails activity tasks, not workflow tasks.
        if any(not (f.change and f.change.details.get("target") == "activity") for f in self.blocking):
            steps.append(
                f"`{d}`: if this change ships as it is, executions past the change fail their workflow task "
                "(TMPRL1100) and stay stuck, not failed: redeploying the base build unsticks those it started "
                "(their histories are its own); fix forward for the rest."
            )
        return steps

    def revert_window(self) -> str:
        if self.head is None or self.conf.strategy != "patch":
            return ""
        if self._gates_sequence():
            return (
                f"{self.count(self.marker)} prints {ZERO} (no execution has recorded the `{self.pid}` marker)"
            )
        return (
            f"{self.count(RUNNING, started('>=', DEPLOYED))} prints {ZERO} (`{DEPLOYED}`: when this build's "
            "rollout finished; no execution started on it, though it does not count older executions it has advanced)"
        )

    def canary(self) -> list[str]:
        if self.head is None:
            return []
        return _canary(
            self.def_id,
            self.ns,
            self.conf.task_queue,
            self.conf.strategy,
            self.conf.deployment_name,
            self.ctx.base.tree.sha,
        )


def variable(name: str) -> str:
    """A value only the operator knows, as a shell variable that stops the command while unset."""
    return f'"${{{name}:?export {name} first}}"'


def _versioning_runbook(def_id: str, deployment: str | None, ns: str, *, pinned: bool) -> list[str]:
    steps = []
    if not pinned:
        steps += [
            f"`{def_id}`: ship the PINNED declaration (outline) and the worker deployment config in an earlier, "
            "separate deploy, without this change: executions already open are unversioned and would replay "
            f"this change. When it is rolled out: {note_time(PINNED_DEPLOYED)}.",
            f"`{def_id}`: merge this change only when no unversioned execution is open "
            f"({count(ns, f'WorkflowType={literal(def_id)}', RUNNING, started('<', PINNED_DEPLOYED))} prints "
            f"{ZERO}), or keep unversioned workers on the old build until they drain.",
        ]
    return [
        *steps,
        f"`{def_id}`: run workers with `WorkerDeploymentConfig(version=WorkerDeploymentVersion("
        f"{json.dumps(deployment or '<deployment name>')}, build_id), use_worker_versioning=True)` so PINNED "
        "executions stay on the build that started them; give the commands below both build ids: "
        "`export OLD_BUILD_ID=<current build id> NEW_BUILD_ID=<new build id>`"
        + ("" if deployment else " and the deployment: `export DEPLOYMENT_NAME=<deployment name>`")
        + ".",
        f"`{def_id}`: deploy the new build beside the current one and ramp it: "
        f"{deployment_command('set-ramping-version', ns, deployment, 'NEW_BUILD_ID', '--percentage', '5')}.",
        f"`{def_id}`: when the canary is clean, make it current: "
        f"{deployment_command('set-current-version', ns, deployment, 'NEW_BUILD_ID')}.",
        f"`{def_id}`: keep the old build's workers until "
        f"{deployment_command('describe-version', ns, deployment, 'OLD_BUILD_ID')} reports its drainage status "
        "`drained`.",
    ]


def _new_type_runbook(def_id: str, running: str, tq: str) -> list[str]:
    return [
        f"`{def_id}`: register `{def_id}V2` (head code) beside `{def_id}` (base code) on the `{tq}` workers (outline).",
        f"`{def_id}`: switch every starter (clients, schedules, parent workflows) to `{def_id}V2`.",
        f"`{def_id}`: keep `{def_id}` registered until {running} prints {ZERO}, then delete it.",
    ]


def _canary(
    def_id: str, ns: str, tq: str | None, strategy: str, deployment: str | None, base_sha: str
) -> list[str]:
    wf = f"WorkflowType={literal(def_id)}"
    if strategy == "worker-versioning":
        route = (
            f"ramp 5% of new `{def_id}` executions to the new build (`set-ramping-version ... --percentage 5` on "
            f"deployment `{deployment or '<deployment name>'}`)"
        )
        name = literal(deployment)[1:-1] if deployment else "${DEPLOYMENT_NAME:?export DEPLOYMENT_NAME first}"
        version = f"'{name}:${{NEW_BUILD_ID:?export NEW_BUILD_ID first}}'"
        canaries = listing(ns, wf, f"TemporalWorkerDeploymentVersion={version}")
    else:
        queue = f"{tq}-canary" if tq else "<task-queue>-canary"
        route = (
            f"run the new build on a canary task queue (`{queue}`) and start a share of new `{def_id}` "
            "executions there"
        )
        where = literal(queue) if tq else "'${CANARY_TASK_QUEUE:?export CANARY_TASK_QUEUE first}'"
        canaries = listing(ns, wf, f"TaskQueue={where}")
    return [
        f"`{def_id}`: {route}.",
        f"`{def_id}`: find the canary executions: {canaries}.",
        f"`{def_id}`: export canary and in-flight production histories, one per workflow id: "
        f"`mkdir -p histories && temporal workflow show --namespace {shlex.quote(ns)} -w "
        '"${WORKFLOW_ID:?export WORKFLOW_ID first}" -o json > "histories/$WORKFLOW_ID.json"`.',
        f"`{def_id}`: replay them against the next build before fleet rollout: "
        "`inflight-guard check --histories histories/`.",
        revert_replay(def_id, base_sha),
        f"`{def_id}`: promote when replay is clean and the canary shows no failed workflow tasks.",
    ]
