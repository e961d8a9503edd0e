"""The Step Functions rollout plan: publish a version, shift an alias, drain, roll back, canary.

The outline is a patch to the user's own template: SAM gets `AutoPublishAlias` and a
`DeploymentPreference`; CloudFormation gets a `StateMachineVersion` and a `StateMachineAlias`;
an unqualified Lambda reference gets its qualifier on the exact line. A standalone ASL file
(deployed by other tooling) gets the AWS CLI steps instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from bot.config import Config
from bot.model import Definition, Finding, Plan, Severity

if TYPE_CHECKING:
    from bot.engines.stepfunctions import StepFunctionsContext
    from bot.engines.stepfunctions.model import StateMachine

ALIAS = "live"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int) -> int:
    """Index after the YAML block whose key is on `lines[start]`."""
    base = _indent(lines[start])
    i = start + 1
    while i < len(lines) and (
        not lines[i].strip() or _indent(lines[i]) > base or lines[i].lstrip().startswith("#")
    ):
        i += 1
    while i > start + 1 and not lines[i - 1].strip():
        i -= 1
    return i


def _alias_edit(m: StateMachine, lines: list[str]) -> list[str] | None:
    """Return the template's lines with an alias + DeploymentPreference added for `m`."""
    if m.template is None or m.template.endswith(".json") or not 0 < m.line <= len(lines):
        return None
    start = m.line - 1
    end = _block_end(lines, start)
    pad = " " * _indent(lines[start])
    step = " " * max(2, _indent(lines[start + 1]) - _indent(lines[start]) if start + 1 < len(lines) else 2)
    kind = next(
        (ln.split(":", 1)[1].strip() for ln in lines[start:end] if ln.strip().startswith("Type:")), ""
    )
    logical = m.resource or m.id
    if kind == "AWS::Serverless::StateMachine":
        props = next((i for i in range(start, end) if lines[i].strip() == "Properties:"), None)
        if props is None:
            return None
        inner = pad + step * 2
        added = [
            f"{inner}AutoPublishAlias: {ALIAS}",
            f"{inner}DeploymentPreference:",
            f"{inner}{step}Type: CANARY",
            f"{inner}{step}Percentage: 10",
            f"{inner}{step}Interval: 10",
            f"{inner}{step}# Alarms: [!Ref {logical}NewVersionFailures]  # roll back automatically",
        ]
        return [*lines[: props + 1], *added, *lines[props + 1 :]]
    added = [
        f"{pad}{logical}Version:",
        f"{pad}{step}Type: AWS::StepFunctions::StateMachineVersion",
        f"{pad}{step}Properties:",
        f"{pad}{step * 2}StateMachineArn: !Ref {logical}",
        f"{pad}{step * 2}StateMachineRevisionId: !GetAtt {logical}.StateMachineRevisionId",
        f"{pad}{logical}Alias:",
        f"{pad}{step}Type: AWS::StepFunctions::StateMachineAlias",
        f"{pad}{step}Properties:",
        f"{pad}{step * 2}Name: {ALIAS}",
        f"{pad}{step * 2}DeploymentPreference:",
        f"{pad}{step * 3}StateMachineVersionArn: !Ref {logical}Version",
        f"{pad}{step * 3}Type: CANARY",
        f"{pad}{step * 3}Percentage: 10",
        f"{pad}{step * 3}Interval: 10",
        f"{pad}{step * 3}# Alarms: [!Ref {logical}NewVersionFailures]  # roll back automatically",
    ]
    return [*lines[:end], *added, *lines[end:]]


def _resource_line(lines: list[str], logical: str) -> int | None:
    """0-based index of the line declaring template resource `logical`."""
    return next((i for i, ln in enumerate(lines) if ln.strip() == f"{logical}:" and _indent(ln) <= 4), None)


def _auto_alias(lines: list[str], at: int) -> list[str] | None:
    """A SAM function without AutoPublishAlias gets one (what `!Ref X.Alias` needs)."""
    end = _block_end(lines, at)
    block = lines[at:end]
    if not any("AWS::Serverless::Function" in ln for ln in block) or any(
        "AutoPublishAlias" in ln for ln in block
    ):
        return None
    props = next((i for i in range(at, end) if lines[i].strip() == "Properties:"), None)
    if props is None:
        return None
    pad = " " * (_indent(lines[props]) + 2)
    return [*lines[: props + 1], f"{pad}AutoPublishAlias: {ALIAS}", *lines[props + 1 :]]


def _qualify(line: str, target: str, resource: str) -> str | None:
    """Return `line` with the unqualified reference `target` pinned to the alias."""
    if not target:
        return None
    if target.endswith(":$LATEST") and target in line:
        return line.replace(target, target.removesuffix("$LATEST") + ALIAS)
    if target in line:
        if target.startswith("arn:aws:lambda:") or (
            ":" not in target and "$" not in target and "!" not in target
        ):
            return line.replace(target, f"{target}:{ALIAS}")
        if target.startswith("arn:aws:states:") and ":stateMachine:" in target:
            return line.replace(target, f"{target}:{ALIAS}")
    if resource:
        for text in (f"!GetAtt {resource}.Arn", f"${{{resource}.Arn}}", f"!Ref {resource}"):
            if text in line:
                return line.replace(
                    text, f"!Ref {resource}.Alias" if text.startswith("!") else f"${{{resource}.Alias}}"
                )
    return None


def _diff(path: str, before: list[str], after: list[str]) -> str:
    return "".join(
        difflib.unified_diff(
            [ln + "\n" for ln in before], [ln + "\n" for ln in after], f"a/{path}", f"b/{path}", n=2
        )
    )


def build_plan(
    ctx: StepFunctionsContext, findings: Sequence[Finding], definitions: Sequence[Definition], config: Config
) -> Plan:
    """Return the outline and the runbooks for the state machines whose findings need gates."""
    active = [
        f
        for f in findings
        if not f.suppressed and f.definition and (f.gate != "none" or f.severity != Severity.INFO)
    ]
    if not active:
        return Plan(strategy="version-alias")
    by_def: dict[str, list[Finding]] = {}
    for f in active:
        by_def.setdefault(str(f.definition), []).append(f)
    head = {m.id: m for m in ctx.head.machines}
    edits: dict[str, list[str]] = {}
    originals: dict[str, list[str]] = {}
    runbook: list[str] = []
    rollback: list[str] = []
    canary: list[str] = []
    planned: list[str] = []
    inserts: list[StateMachine] = []
    functions: set[tuple[str, str]] = set()  # (template, function) that must publish an alias
    for def_id, fs in sorted(by_def.items()):
        m = head.get(def_id)
        name = config.stepfunctions.names.get(def_id, def_id)
        arn = f"arn:aws:states:REGION:ACCOUNT:stateMachine:{name}"
        if m is None:  # removed: nothing new to roll out
            runbook.append(
                f"`{def_id}` is removed: delete it only after its RUNNING executions end "
                f"(`aws stepfunctions list-executions --state-machine-arn {arn} --status-filter RUNNING`)."
            )
            continue
        planned.append(def_id)
        path = m.template or m.path
        if path not in originals:
            originals[path] = ctx.head.texts.get(path, "").splitlines()
            edits[path] = list(originals[path])
        gradual = m.alias is not None and m.alias.gradual
        if not gradual and any(f.gate == "version-alias" for f in fs):
            inserts.append(m)
        for f in fs:
            if f.change is None or f.change.kind != "sfn.reference.unpinned":
                continue
            if f.change.details.get("reference") not in ("lambda", "state_machine"):
                continue  # activities and callbacks have no version to pin: the drain step covers them
            details: Mapping[str, object] = f.change.details
            line_no = int(str(details.get("line") or (f.location.line if f.location else 0)))
            file = str(details.get("fix_path") or "") or (f.location.path if f.location else path)
            if file not in originals:
                originals[file] = ctx.head.texts.get(file, "").splitlines()
                edits[file] = list(originals[file])
            rows = edits[file]
            if 0 < line_no <= len(rows):
                fixed = _qualify(
                    rows[line_no - 1], str(details.get("target", "")), str(details.get("resource", ""))
                )
                if fixed is not None:
                    rows[line_no - 1] = fixed
                    resource = str(details.get("resource", ""))
                    if "Alias" in fixed and resource:
                        functions.add((file, resource))
                else:
                    runbook.append(
                        f"Qualify `{details.get('target')}` at {file}:{line_no} with a version or alias "
                        f"(e.g. `:{ALIAS}`), so running executions keep calling the code they started with."
                    )
        alias = m.alias.name if m.alias else ALIAS
        alias_arn = f"{arn}:{alias}"
        how = (
            f"already routed by {m.alias.describe()} ({m.alias.path}:{m.alias.line})"
            if gradual and m.alias
            else "add the alias and DeploymentPreference in the outline"
            if m.template and not m.template.endswith(".json")
            else f"`aws stepfunctions update-state-machine --state-machine-arn {arn} --definition file://{m.path} --publish`"
        )
        runbook += [
            f"Publish the head definition of `{def_id}` as a new version: {how}.",
            f"Start executions on the alias ARN `{alias_arn}` (callers on the unqualified ARN get the new "
            "definition at once, with no canary and no rollback target).",
            f"Shift `{alias}` gradually (CANARY 10% for 10 min, then 100%), with alarms on the new version's "
            "ExecutionsFailed / ExecutionsTimedOut.",
        ]
        if any(f.gate == "drain" for f in fs) or any(
            f.change
            and f.change.kind in ("sfn.task.resource_changed", "sfn.reference.unpinned", "sfn.state.removed")
            for f in fs
        ):
            runbook.append(
                "Keep what the old version calls (Lambda versions, activities and their workers, child state machines) "
                "until its RUNNING executions drain: `aws stepfunctions list-executions --state-machine-arn "
                "<old version ARN> --status-filter RUNNING --query 'length(executions)'` prints 0."
            )
        rollback += [
            f"Point `{alias}` back at the previous version: `aws stepfunctions update-state-machine-alias "
            f"--state-machine-alias-arn {alias_arn} --routing-configuration "
            "stateMachineVersionArn=<previous version ARN>,weight=100` (a DeploymentPreference alarm does it for you).",
            "Executions already started on the new version keep running on it: keep what it calls alive until "
            "`list-executions --state-machine-arn <new version ARN> --status-filter RUNNING` is empty.",
        ]
        if any(f.change and f.change.kind == "sfn.reference.unpinned" for f in fs):
            rollback.append(
                "Moving the alias back does not roll back what unqualified references call: redeploy the previous "
                "Lambda/child code as well, or qualify the references first (outline)."
            )
        canary += [
            f"`{alias}` routes 10% of new `{def_id}` executions to the new version (DeploymentPreference CANARY); "
            "watch its ExecutionsFailed before the shift completes.",
            f"Replay the canary's executions: `inflight-guard export stepfunctions --state-machine-arn "
            f"{arn}:<new version> --status SUCCEEDED --status FAILED --limit 200 --out canary/` then "
            "`inflight-guard check --histories canary/`.",
        ]
    # Insertions last, bottom-up in each file: the line numbers above stay true.
    steps: list[tuple[str, int, Callable[[list[str]], list[str] | None]]] = []
    for m in inserts:
        steps.append((m.template or m.path, m.line - 1, partial(_alias_edit, m)))
    for file, resource in functions:
        at = _resource_line(edits[file], resource)
        if at is not None:
            steps.append((file, at, partial(_auto_alias, at=at)))
    for file, _, edit in sorted(steps, key=lambda step: (step[0], -step[1])):
        changed = edit(edits[file])
        if changed is not None:
            edits[file] = changed
    outline = "".join(
        _diff(path, originals[path], rows) for path, rows in sorted(edits.items()) if rows != originals[path]
    )
    return Plan(
        strategy="version-alias",
        definitions=planned,
        outline=outline,
        runbook=runbook,
        rollback=rollback,
        canary=canary,
        guardrails=[
            "Start Step Functions executions on an alias ARN, never the unqualified state machine ARN."
        ]
        if planned
        else [],
    )
