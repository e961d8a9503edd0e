"""The Cadence rollout plan: `get_version` outline, drain/cutover runbook, rollback, canary, guardrails.

The outline is the shared one (bot/engines/python/outline.py) in the Cadence dialect:

    if workflow.get_version("order-workflow-fraud-check", workflow.DEFAULT_VERSION, 1) == 1:
        <the head statements>
    else:
        <the base statements>
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from bot.config import CadenceConfig, Config
from bot.engines.python.plan import DefinitionPlan, compose, path_of, revert_replay, tail
from bot.engines.python.pyengine import PythonContext
from bot.model import Finding, Plan

# Each rule of thumb, with the kinds of change (without the engine) it is about: the comment shows it
# only when such a change is present.
GUARDRAILS = [
    (
        "Never insert, remove or reorder activities, child workflows, timers, side effects, upserts or external "
        "signals on a path open executions have not passed, unless behind `workflow.get_version()`.",
        ("command", "timer", "exit", "loop", "value", "replay"),
    ),
    (
        "Never change an activity or child-workflow type in place (the name passed to `execute_activity`, or "
        "`@reg.activity(name=...)`).",
        ("command.type_changed", "command.kind_changed"),
    ),
    (
        'Never change a workflow\'s registered type: renaming the class needs `@reg.workflow(name="<old name>")`.',
        ("workflow.renamed", "workflow.removed"),
    ),
    (
        "Never raise `get_version`'s `min_supported` above `DEFAULT_VERSION`, or remove the call, while "
        "executions that predate it are open.",
        ("version.min_raised", "version.removed"),
    ),
    (
        "Never read the clock, randomness, the environment or do I/O in workflow code: use an activity or "
        "`workflow.side_effect`.",
        ("nondeterminism",),
    ),
    (
        "Never change the run method's parameter types in place: add optional parameters, or a new workflow type.",
        ("signature", "input"),
    ),
]
OPEN = "CloseTime = missing"
LIFECYCLE = {"version.min_raised", "version.removed"}
GATE_DEPLOYED = "GATE_DEPLOYED_AT"
DEPLOYED = "DEPLOYED_AT"
NOW = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
VISIBILITY = (
    "Counting commands below (`workflow count`, `workflow list --query`) need advanced visibility "
    "(Elasticsearch or Pinot) on the cluster; with basic visibility, count open executions of the type with "
    "`cadence --do {domain} workflow list --open --workflow_type {type}` instead."
)
# Input changes whose old values no longer decode into the new class (when a finding blocks).
INPUT_KINDS = {
    "input.field_renamed",
    "input.field_retyped",
    "input.field_added_required",
    "input.field_removed",
}


def literal(value: str) -> str:
    """`value` as a visibility-query string literal, ready for a double-quoted shell word."""
    quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    for ch in ("\\", '"', "$", "`"):
        quoted = quoted.replace(ch, "\\" + ch)
    return quoted


def started_before(variable: str) -> str:
    """A StartTime bound on a time held in a shell variable (quoted: Cadence parses it as a string)."""
    return f"StartTime < '${{{variable}:?export {variable} first}}'"


def started_since(variable: str) -> str:
    """Executions started at or after the time held in a shell variable."""
    return f"StartTime >= '${{{variable}:?export {variable} first}}'"


def build_plan(ctx: PythonContext, findings: Sequence[Finding], config: Config) -> Plan:
    """Return the plan for the findings that need gates (empty when none does)."""
    conf = config.cadence
    plan = compose(
        ctx,
        findings,
        "cadence",
        conf.strategy,
        GUARDRAILS,
        lambda def_id, fs: _DefinitionPlan(ctx, config.for_path(path_of(ctx, def_id)).cadence, def_id, fs),
    )
    steps = [*plan.runbook, *plan.rollback]
    if any("workflow count" in s or "workflow list --query" in s for s in steps):
        first = plan.definitions[0] if plan.definitions else ""
        domain = config.for_path(path_of(ctx, first)).cadence.domain if first else conf.domain
        note = VISIBILITY.format(domain=shlex.quote(domain), type=first)
        plan = plan.model_copy(update={"runbook": [note, *plan.runbook]})
    return plan


class _DefinitionPlan(DefinitionPlan):
    """The steps one workflow type needs, composed from the kinds of its findings."""

    def __init__(
        self, ctx: PythonContext, conf: CadenceConfig, def_id: str, findings: Sequence[Finding]
    ) -> None:
        super().__init__(ctx, conf.strategy, def_id, findings)
        self.conf = conf
        # What fails decision tasks if shipped as is (a dropped signal handler does not, nor an activity
        # input that no longer decodes: its activity tasks fail instead).
        self.stuck = [
            f
            for f in self.blocking
            if f.change
            and not f.change.kind.endswith(".handler.removed")
            and f.change.details.get("target") != "activity"
        ]
        self.domain = conf.domain
        self.tl = conf.task_list or "<task-list>"
        self.marker = f"CadenceChangeVersion={literal(self.pid + '-1')}"
        self.wf = f"WorkflowType={literal(def_id)}"

    def count(self, *conditions: str) -> str:
        query = " AND ".join([self.wf, *conditions])
        return f'`cadence --do {shlex.quote(self.domain)} workflow count --query "{query}"`'

    def runbook(self) -> list[str]:
        d, running = self.def_id, self.count(OPEN)
        if self.head is None:
            return [
                f"`{d}` is removed: keep it registered on the workers until {running} prints 0, then remove it "
                "(or declare it in `drained:` in the config)."
            ]
        steps: list[str] = []
        if self._gates_sequence():
            if self.conf.strategy == "new-type":
                steps += [
                    f"`{d}`: register `{d}V2` (head code) beside `{d}` (base code) on the `{self.tl}` workers (outline).",
                    f"`{d}`: switch every starter (clients, cron schedules, parent workflows) to `{d}V2`.",
                    f"`{d}`: keep `{d}` registered until {running} prints 0, then delete it.",
                ]
            else:
                steps += self._version_steps()
        elif self.kinds & {"command.inserted", "timer.added"}:
            steps.append(
                f"`{d}`: the new step comes after everything open executions recorded: deploy as usual; they "
                "run it when they get there. Closed executions no longer replay (queries and resets on them fail)."
            )
        if "version.min_raised" in self.kinds:
            steps.append(
                f"`{d}`: before merging, check no execution that predates the gate is open: "
                f"{self.count(OPEN, started_before(GATE_DEPLOYED))} must print 0 (`{GATE_DEPLOYED}`: when the "
                "build with the `get_version` gate finished rolling out); the SDK refuses their histories "
                "(version DEFAULT_VERSION is outside the supported range)."
            )
        if "version.removed" in self.kinds:
            steps.append(
                f"`{d}`: before merging, check the path this change drops is not open: executions that recorded "
                f"the marker ({self.count(self.marker, OPEN)}) and those that predate it must each be 0 for the "
                "branch you removed."
            )
        if "handler.removed" in self.kinds:
            steps.append(
                f"`{d}`: keep the removed handler (the outline restores it) until {running} prints 0 for executions "
                "started before this deploy; signals sent to them are otherwise dropped."
            )
        if "nondeterminism.added" in self.kinds:
            steps.append(
                f"`{d}`: move the non-deterministic call into an activity or `workflow.side_effect` behind a "
                "`get_version` gate before merging: replays compute another value than the one recorded."
            )
        if "workflow.renamed" in self.kinds:
            steps.append(
                f"`{d}`: keep the old type name with `@reg.workflow(name=...)` (outline), or register the new "
                "type beside the old one until the old one's executions drain."
            )
        if "signature.changed" in self.kinds:
            steps.append(
                f"`{d}`: make the run signature accept old inputs (new parameters with defaults), or start new "
                f"executions on a new workflow type and keep `{d}` until {running} prints 0."
            )
        if self._input_targets("workflow"):
            steps.append(
                f"`{d}`: make the input classes accept the old shape (keep old field names and types, give new "
                "fields defaults): the SDK decodes run and signal inputs before any workflow code runs, so a "
                f"`get_version` gate cannot help. Or start new executions on a new workflow type and keep `{d}` "
                f"until {running} prints 0."
            )
        if self._input_targets("activity"):
            steps.append(
                f"`{d}`: keep the old fields of the activity input (add new ones with defaults) until "
                f"{self.count(OPEN, started_before(DEPLOYED))} prints 0 (when the rollout is done: "
                f"`export {DEPLOYED}={NOW}`): activity tasks those executions scheduled carry the old shape. Or "
                "register the new input under a new activity name beside the old one."
            )
        return steps

    def _input_targets(self, target: str) -> bool:
        """Whether a blocking finding says old `target` inputs (workflow or activity) no longer decode."""
        return any(
            f.change is not None
            and tail(f.change.kind) in INPUT_KINDS
            and f.change.details.get("target") == target
            for f in self.blocking
        )

    def _version_steps(self) -> list[str]:
        d, pid = self.def_id, self.pid
        where = "already in the code" if self.gated_in_code and not self.edits() else "from the outline"
        tagged = f"{self.wf} AND {self.marker}"
        return [
            f'`{d}`: merge with the `workflow.get_version("{pid}", workflow.DEFAULT_VERSION, 1)` gate ({where}). '
            "Executions that started before it replay with DEFAULT_VERSION and take the old branch; new ones record "
            "a Version marker and take the new branch.",
            f"`{d}`: deploy to every worker polling `{self.tl}` and finish the rollout quickly: while old workers "
            "still poll, they take decision tasks of executions the new build advanced (the rollback section "
            "says, from replay, whether they fail them).",
            f"`{d}`: when the rollout is done, note the time (the drain query below reads it): "
            f"`export {GATE_DEPLOYED}={NOW}`.",
            f"`{d}`: check new executions take the new branch: `cadence --do {shlex.quote(self.domain)} workflow "
            f'list --query "{tagged}"`.',
            f"`{d}`: watch the pre-gate executions drain: "
            f"{self.count(OPEN, started_before(GATE_DEPLOYED))} until it prints 0.",
            f'`{d}`: after the drain and the domain\'s retention period, raise the gate to `get_version("{pid}", 1, 1)` '
            "and delete the old branch, in a later change.",
        ]

    def rollback(self) -> list[str]:
        d = self.def_id
        if self.head is None:
            return [f"`{d}`: redeploying the base build brings the type back; nothing is orphaned."]
        steps: list[str] = []
        if self._gates_sequence() and self.conf.strategy == "new-type":
            steps.append(
                f"`{d}V2` executions need the V2 code: roll back by pointing starters at `{d}` again, and keep the "
                f"V2 workers until `cadence --do {shlex.quote(self.domain)} workflow count --query "
                f'"WorkflowType={literal(d + "V2")} AND {OPEN}"` prints 0.'
            )
        if self.stuck:
            steps.append(
                f"`{d}`: if this change ships as it is, executions past the change fail their decision task with a "
                "nondeterminism error and stay stuck (not failed): redeploying the base build unsticks those it "
                "started (their histories are its own); fix forward for the rest."
            )
        return steps

    def revert_window(self) -> str:
        if self.head is None or self.conf.strategy != "version":
            return ""
        if self._gates_sequence():
            return f"{self.count(self.marker)} prints 0 (no execution has recorded the `{self.pid}` Version marker)"
        return (
            f"{self.count(OPEN, started_since(DEPLOYED))} prints 0 (`{DEPLOYED}`: when this build's rollout "
            "finished; no execution started on it, though it does not count older executions it has advanced)"
        )

    def canary(self) -> list[str]:
        if self.head is None:
            return []
        d = self.def_id
        return [
            f"`{d}`: run the new build on a canary task list (`{self.tl}-canary`) and start a share of new `{d}` "
            "executions there.",
            f"`{d}`: export canary and in-flight production histories, one per workflow id and run id: "
            f"`mkdir -p histories && cadence --do {shlex.quote(self.domain)} workflow show --wid "
            '"${WORKFLOW_ID:?export WORKFLOW_ID first}" --rid "${RUN_ID:?export RUN_ID first}" '
            '--of "histories/$WORKFLOW_ID.json"`.',
            f"`{d}`: replay them against the next build before fleet rollout: `inflight-guard check --histories histories/`.",
            revert_replay(d, self.ctx.base.tree.sha),
            f"`{d}`: promote when replay is clean and the canary shows no failed decision tasks.",
        ]
