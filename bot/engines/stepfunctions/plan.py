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
from bot.engines.stepfunctions.refs import called_name
from bot.model import Definition, Finding, Plan, Severity

if TYPE_CHECKING:
    from bot.engines.stepfunctions import StepFunctionsContext
    from bot.engines.stepfunctions.model import StateMachine

ALIAS = "live"
VERSION = "Version"  # the outline's `AWS::Lambda::Version` of a plain function `Fn` is `FnVersion`


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


def _preference_edit(lines: list[str], at: int) -> list[str] | None:
    """A SAM `AutoPublishAlias` line without a DeploymentPreference gets the outline's CANARY one."""
    if not 0 <= at < len(lines) or not lines[at].strip().startswith("AutoPublishAlias:"):
        return None
    pad = " " * _indent(lines[at])
    added = [
        f"{pad}DeploymentPreference:",
        f"{pad}  Type: CANARY",
        f"{pad}  Percentage: 10",
        f"{pad}  Interval: 10",
    ]
    return [*lines[: at + 1], *added, *lines[at + 1 :]]


def _resource_line(lines: list[str], logical: str) -> int | None:
    """0-based index of the line declaring template resource `logical`."""
    return next((i for i, ln in enumerate(lines) if ln.strip() == f"{logical}:" and _indent(ln) <= 4), None)


def _auto_alias(lines: list[str], at: int) -> list[str] | None:
    """A SAM function without AutoPublishAlias gets one (what `!Ref X.Alias` / `.Version` need)."""
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


def _pin_version(line: str, resource: str) -> str | None:
    """Return `line` with a SAM function reference pinned to the version its deploy publishes.

    `!Ref Fn.Version` is immutable: an execution started on this definition keeps calling that
    code, whatever later deploys publish. (`!Ref Fn.Alias` moves with every code deploy.)
    """
    for text in (
        f"!GetAtt {resource}.Arn",
        f"${{{resource}.Arn}}",
        f"!Ref {resource}.Alias",
        f"!Ref {resource}",
    ):
        if text in line:
            return line.replace(
                text, f"!Ref {resource}.Version" if text.startswith("!") else f"${{{resource}.Version}}"
            )
    return None


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


def _shift(m: StateMachine) -> str:
    """How the alias shifts traffic: the template's own DeploymentPreference, else the outline's."""
    if m.alias is not None and m.alias.gradual:
        pct = f"{m.alias.percentage}%" if m.alias.percentage else "a share"
        mins = f"{m.alias.interval} min" if m.alias.interval else "the interval"
        if m.alias.deployment == "LINEAR":
            return f"LINEAR {pct} more every {mins} until 100%"
        return f"CANARY {pct} for {mins}, then 100%"
    return "CANARY 10% for 10 min, then 100%"


def _sam_function(lines: list[str], resource: str) -> bool:
    at = _resource_line(lines, resource)
    if at is None:
        return False
    return any("AWS::Serverless::Function" in ln for ln in lines[at : _block_end(lines, at)])


def _plain_function(lines: list[str], resource: str) -> bool:
    """Whether template resource `resource` is a plain CloudFormation `AWS::Lambda::Function`."""
    at = _resource_line(lines, resource)
    if at is None:
        return False
    return any(ln.strip() == "Type: AWS::Lambda::Function" for ln in lines[at : _block_end(lines, at)])


def _named_function(resources: Mapping[str, object], target: str) -> str | None:
    """The logical id of the plain `AWS::Lambda::Function` whose `FunctionName` the literal `target`
    (an ARN or a name, unqualified) calls."""
    name = called_name("lambda", target)
    for logical, resource in resources.items():
        if not isinstance(resource, Mapping) or resource.get("Type") != "AWS::Lambda::Function":
            continue
        props = resource.get("Properties")
        if isinstance(props, Mapping) and name and props.get("FunctionName") == name:
            return str(logical)
    return None


def _pin_plain(line: str, target: str, resource: str) -> tuple[str, bool] | None:
    """Return `line` with a plain function's reference pinned to the outline's `AWS::Lambda::Version`
    (its `Ref` is the version's ARN), and whether the pin needs a DefinitionSubstitutions entry
    (a literal inside the definition has no intrinsic function to call)."""
    version = f"{resource}{VERSION}"
    for text, pinned in (
        (f"!GetAtt {resource}.Arn", f"!Ref {version}"),
        (f"${{{resource}.Arn}}", f"${{{version}}}"),
        (f"!Ref {resource}", f"!Ref {version}"),
        (f"${{{resource}}}", f"${{{version}}}"),
    ):
        if text in line:
            return line.replace(text, pinned), False
    if target and target in line and "$" not in target and "!" not in target:
        return line.replace(target, f"${{{version}Arn}}"), True
    return None


def _alias_version(ctx: StepFunctionsContext, template: str, resource: str) -> str | None:
    """For an `AWS::Lambda::Alias` `resource`: the `AWS::Lambda::Version` it routes to in base, '' when
    that is no version resource of the template (a literal number, a parameter); None for any other
    resource."""
    head = ctx.head.resources.get(template, {}).get(resource)
    if not isinstance(head, Mapping) or head.get("Type") != "AWS::Lambda::Alias":
        return None
    old = ctx.base.resources.get(template, {}).get(resource)
    props = old.get("Properties") if isinstance(old, Mapping) else None
    version = props.get("FunctionVersion") if isinstance(props, Mapping) else None
    att = version.get("Fn::GetAtt") if isinstance(version, Mapping) else None
    if isinstance(att, str):
        att = att.split(".", 1)
    if not (isinstance(att, list) and len(att) == 2 and att[1] == "Version"):
        return ""
    target = ctx.head.resources.get(template, {}).get(str(att[0]))
    if isinstance(target, Mapping) and target.get("Type") == "AWS::Lambda::Version":
        return str(att[0])
    return ""


def _pin_alias(line: str, alias: str, version: str) -> str | None:
    """`line` calling the Lambda alias `alias` through `Ref`, calling the version resource instead."""
    if not version:
        return None
    for text, pinned in ((f"!Ref {alias}", f"!Ref {version}"), (f"${{{alias}}}", f"${{{version}}}")):
        if text in line:
            return line.replace(text, pinned)
    return None


def _function_to_alias(target: str) -> str | None:
    """What `aws lambda --function-name` takes for the function the literal `target` calls: its
    unqualified ARN (the region and account it names), else its name."""
    name = called_name("lambda", target)
    if not name:
        return None
    if target.startswith("arn:"):
        return ":".join(target.split(":")[:7])
    return name


def _publishes_alias(ctx: StepFunctionsContext, function: str) -> bool:
    """Whether a template of head deploys `function` with SAM's `AutoPublishAlias: ALIAS`."""
    name = called_name("lambda", function)
    for resources in ctx.head.resources.values():
        for resource in resources.values():
            props = resource.get("Properties") if isinstance(resource, Mapping) else None
            if (
                isinstance(props, Mapping)
                and props.get("FunctionName") == name
                and props.get("AutoPublishAlias") == ALIAS
            ):
                return True
    return False


def _version_resource(lines: list[str], at: int, resource: str) -> list[str] | None:
    """An `AWS::Lambda::Version` of the plain function declared at `lines[at]`, inserted before it."""
    version = f"{resource}{VERSION}"
    if _resource_line(lines, version) is not None or not 0 <= at < len(lines):
        return None
    pad = " " * _indent(lines[at])
    added = [
        f"{pad}{version}:",
        f"{pad}  Type: AWS::Lambda::Version",
        f"{pad}  # Kept when a later deploy replaces it: executions started on it still call it.",
        f"{pad}  DeletionPolicy: Retain",
        f"{pad}  UpdateReplacePolicy: Retain",
        f"{pad}  Properties:",
        f"{pad}    FunctionName: !Ref {resource}",
        "",
    ]
    return [*lines[:at], *added, *lines[at:]]


def _substitution(lines: list[str], at: int, resource: str) -> list[str] | None:
    """The state machine declared at `lines[at]` with a DefinitionSubstitutions entry naming the
    outline's version of `resource` (added to its own entries, or as the first property)."""
    if not 0 <= at < len(lines):
        return None
    end = _block_end(lines, at)
    props = next((i for i in range(at, end) if lines[i].strip() == "Properties:"), None)
    if props is None:
        return None
    version = f"{resource}{VERSION}"
    entry = f"{version}Arn: !Ref {version}"
    if any(ln.strip() == entry for ln in lines[props:end]):
        return None
    inner = " " * (_indent(lines[props]) + 2)
    subs = next(
        (i for i in range(props, end) if lines[i].startswith(f"{inner}DefinitionSubstitutions:")), None
    )
    if subs is not None and lines[subs].strip() == "DefinitionSubstitutions:":
        step = " " * max(2, _indent(lines[subs + 1]) - len(inner)) if subs + 1 < end else "  "
        return [*lines[: subs + 1], f"{inner}{step}{entry}", *lines[subs + 1 :]]
    if subs is not None:
        return None  # a flow mapping on one line: the runbook says what to add
    return [*lines[: props + 1], f"{inner}DefinitionSubstitutions:", f"{inner}  {entry}", *lines[props + 1 :]]


def _diff(path: str, before: list[str], after: list[str]) -> str:
    return "".join(
        difflib.unified_diff(
            [ln + "\n" for ln in before], [ln + "\n" for ln in after], f"a/{path}", f"b/{path}", n=2
        )
    )


def _plain_target(
    ctx: StepFunctionsContext,
    template: str,
    edits: dict[str, list[str]],
    originals: dict[str, list[str]],
    resource: str,
    target: str,
) -> str | None:
    """The logical id of the plain `AWS::Lambda::Function` in the state machine's own template that
    a reference calls (by logical id, or by its literal `FunctionName`); None for anything else."""
    if not template or template.endswith(".json"):
        return None  # the outline edits YAML templates
    if template not in originals:
        originals[template] = ctx.head.texts.get(template, "").splitlines()
        edits[template] = list(originals[template])
    logical = resource or _named_function(ctx.head.resources.get(template, {}), target)
    return logical if logical and _plain_function(edits[template], logical) else None


def build_plan(
    ctx: StepFunctionsContext, findings: Sequence[Finding], definitions: Sequence[Definition], config: Config
) -> Plan:
    """Return the outline and the runbooks for the state machines whose findings need gates."""
    # Every changed definition gets the plan: a gated rollout for what needs one, a recommended one
    # (version + alias with a canary, for NEW executions) for a definition-only change.
    active = [f for f in findings if not f.suppressed and f.definition]
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
    preferences: list[StateMachine] = []  # SAM AutoPublishAlias without a DeploymentPreference
    functions: set[tuple[str, str]] = set()  # (template, function) that must publish an alias
    expand: list[Finding] = []  # running executions call a changed target unpinned
    versions: set[tuple[str, str]] = set()  # (template, plain function) that gets an AWS::Lambda::Version
    aliased: set[str] = set()  # functions outside the templates the outline pins to `ALIAS` by literal
    moved: set[tuple[str, str]] = set()  # (Lambda alias this change moves, the version it routed to)
    substitutions: set[tuple[str, int, str]] = set()  # (template, state machine line, function)
    for def_id, fs in sorted(by_def.items()):
        m = head.get(def_id)
        name = ctx.names.get(def_id, def_id)
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
        base_m = ctx.pairs.get(def_id, (None, None))[0]
        first = base_m is None or base_m.alias is None  # no version/alias in base: a first migration
        required = any(f.gate != "none" or f.severity in (Severity.BREAKING, Severity.ERROR) for f in fs)
        if m.alias is None:
            inserts.append(m)
        elif not m.alias.gradual and m.alias.path == path:
            preferences.append(m)
        for f in fs:
            if f.change is None or f.change.kind != "sfn.reference.unpinned":
                continue
            if f.change.details.get("reference") not in ("lambda", "state_machine"):
                continue  # activities and callbacks have no version to pin: the drain step covers them
            if f.change.details.get("target_changed") is True:
                expand.append(f)
            details: Mapping[str, object] = f.change.details
            line_no = int(str(details.get("line") or (f.location.line if f.location else 0)))
            file = str(details.get("fix_path") or "") or (f.location.path if f.location else path)
            if file not in originals:
                originals[file] = ctx.head.texts.get(file, "").splitlines()
                edits[file] = list(originals[file])
            rows = edits[file]
            resource = str(details.get("resource", ""))
            if 0 < line_no <= len(rows) and f.location is not None and f.location.side != "base":
                fixed = None
                if details.get("reference") == "lambda" and resource and _sam_function(rows, resource):
                    fixed = _pin_version(rows[line_no - 1], resource)
                template = m.template or ""
                routed = _alias_version(ctx, template, resource) if resource else None
                if fixed is None and details.get("reference") == "lambda" and routed is not None:
                    pinned_line = _pin_alias(rows[line_no - 1], resource, routed)
                    if pinned_line is not None:
                        rows[line_no - 1] = pinned_line
                        moved.add((resource, routed))
                        continue
                if fixed is None and routed is not None:
                    runbook.append(
                        f"Point {file}:{line_no} at the version `{resource}` routes to in base (not the "
                        "alias, which this change moves), in a deploy before this one."
                    )
                    continue
                plain = _plain_target(
                    ctx, template, edits, originals, resource, str(details.get("target", ""))
                )
                if fixed is None and details.get("reference") == "lambda" and plain:
                    pinned = _pin_plain(rows[line_no - 1], str(details.get("target", "")), plain)
                    if pinned is not None:
                        rows[line_no - 1], substituted = pinned
                        versions.add((template, plain))
                        if substituted:
                            substitutions.add((template, m.line - 1, plain))
                        continue
                if fixed is None:
                    fixed = _qualify(rows[line_no - 1], str(details.get("target", "")), resource)
                if fixed is not None:
                    rows[line_no - 1] = fixed
                    if (".Alias" in fixed or ".Version" in fixed) and resource:
                        functions.add((file, resource))
                    elif details.get("reference") == "lambda" and not resource:
                        called = _function_to_alias(str(details.get("target", "")))
                        if called and not _publishes_alias(ctx, called):
                            aliased.add(called)
                else:
                    runbook.append(
                        f"Qualify `{details.get('target')}` at {file}:{line_no} with a version or alias "
                        f"(e.g. `:{ALIAS}`), so running executions keep calling the code they started with."
                    )
        alias = m.alias.name if m.alias else ALIAS
        alias_arn = f"{arn}:{alias}"
        outlined = m.alias is None and bool(m.template) and not str(m.template).endswith(".json")
        how = (
            f"already routed by {m.alias.describe()} ({m.alias.path}:{m.alias.line})"
            + (
                ""
                if m.alias.gradual or m.alias.path != path
                else "; the outline adds a CANARY DeploymentPreference"
            )
            if m.alias
            else "add the alias and DeploymentPreference in the outline"
            if outlined
            else f"`aws stepfunctions update-state-machine --state-machine-arn {arn} --definition "
            f"file://{m.path} --publish`"
        )
        shift = _shift(m)
        lead = "" if required else "Recommended, not required (running executions keep their definition): "
        runbook.append(f"{lead}Publish the head definition of `{def_id}` as a new version: {how}.")
        if m.alias is None and not outlined:
            runbook.append(
                f"Create `{alias}` on it: `aws stepfunctions create-state-machine-alias --name {alias} "
                "--routing-configuration stateMachineVersionArn=<the stateMachineVersionArn it printed>,weight=100`."
            )
        runbook += [
            f"Start executions on the alias ARN `{alias_arn}` (callers on the unqualified ARN get the new "
            "definition at once, with no canary and no rollback target).",
            f"Shift `{alias}` gradually ({shift}), with alarms on the new version's "
            "ExecutionsFailed / ExecutionsTimedOut.",
        ]
        if any(f.gate == "drain" for f in fs) or any(
            f.change
            and f.change.kind in ("sfn.task.resource_changed", "sfn.reference.unpinned", "sfn.state.removed")
            for f in fs
        ):
            if first:
                # Before a first migration every execution runs on the unqualified ARN: none has a version.
                count = (
                    f"`aws stepfunctions list-executions --state-machine-arn {arn} --status-filter RUNNING "
                    "--query 'length(executions[?!stateMachineVersionArn])'`"
                )
            else:
                count = (
                    "`aws stepfunctions list-executions --state-machine-arn <the version ARN the alias routed to "
                    "before this deploy> --status-filter RUNNING --query 'length(executions)'`"
                )
            runbook.append(
                "Keep what the old definition calls (Lambda versions, activities and their workers, child state "
                f"machines) until the executions started before this deploy drain: {count} prints 0."
            )
        if first and m.template and not m.source:
            # An inline definition goes back with its template.
            rollback.append(
                f"`{alias}` has no earlier version on a first migration: deploy the base commit's "
                f"`{m.template}` again (`git show <base commit>:{m.template}`); its definition becomes a new "
                f"version and `{alias}` moves to it."
            )
        elif first:
            # A first migration has no earlier version for the alias to go back to: publish base's.
            source = m.source or m.path
            rollback.append(
                f"`{alias}` has no earlier version on a first migration: publish the base definition "
                f"(`git show <base commit>:{source} > previous-{def_id}.asl.json`, then "
                f"`aws stepfunctions update-state-machine --state-machine-arn {arn} --definition "
                f"file://previous-{def_id}.asl.json --publish`) and point `{alias}` at it: "
                f"`aws stepfunctions update-state-machine-alias --state-machine-alias-arn {alias_arn} "
                "--routing-configuration stateMachineVersionArn=<the stateMachineVersionArn it printed>,weight=100`"
                + (" (or roll the stack back)." if m.template else ".")
            )
        else:
            rollback.append(
                f"Point `{alias}` back at the previous version: `aws stepfunctions update-state-machine-alias "
                f"--state-machine-alias-arn {alias_arn} --routing-configuration "
                "stateMachineVersionArn=<the version ARN the alias routed to before this deploy>,weight=100` "
                "(a DeploymentPreference alarm does it for you)."
            )
        rollback.append(
            "Executions already started on the new version keep running on it: keep what it calls alive until "
            "`aws stepfunctions list-executions --state-machine-arn <the version ARN this deploy published> "
            "--status-filter RUNNING --query 'length(executions)'` prints 0."
        )
        if any(f.change and f.change.kind == "sfn.reference.unpinned" for f in fs):
            rollback.append(
                "Moving the alias back does not roll back what unqualified references call: redeploy the previous "
                "Lambda/child code as well, or qualify the references first (outline)."
            )
        canary += [
            f"`{alias}` routes new `{def_id}` executions to the new version gradually ({shift}); "
            "watch its ExecutionsFailed before the shift completes.",
            f"Replay the canary's executions: `inflight-guard export stepfunctions --state-machine-arn "
            f"{arn}:<new version> --status SUCCEEDED --status FAILED --limit 200 --out canary/` then "
            "`inflight-guard check --histories canary/`.",
        ]
    if expand:
        where = ", ".join(sorted({f"`{f.change.details.get('target')}`" for f in expand if f.change}))
        runbook[:0] = [
            f"Expand/contract: running executions call {where} unpinned, and this change alters what they call. "
            "Merging the pin and the change in one deploy does not protect them (they keep the definition they "
            "started with, and it calls the new code). Deploy 1: the outline's pin (a published version) with "
            "the target as it is in base; executions started from then on call that version. Deploy 2: the "
            "target's change, once the executions started before deploy 1 drain (the drain step below).",
        ]
    first_steps = [
        f"The outline pins `{function}` to its alias `{ALIAS}`, which no template here creates. Before "
        f"deploying it, give `{ALIAS}` the code running now if the function has no such alias: `aws lambda "
        f"publish-version --function-name {function}`, then `aws lambda create-alias --function-name "
        f"{function} --name {ALIAS} --function-version <the Version it printed>`; `aws lambda get-alias "
        f"--function-name {function} --name {ALIAS}` shows the version it routes to. Move `{ALIAS}` only "
        "once the executions started before the move have drained."
        for function in sorted(aliased)
    ]
    runbook[1 if expand else 0 : 1 if expand else 0] = first_steps
    if moved:
        names = ", ".join(f"`{alias}` to `{version}`" for alias, version in sorted(moved))
        runbook.insert(
            1 if expand else 0,
            f"This change moves the Lambda alias the definition calls: the outline pins the definition to the "
            f"version the alias routes to in base ({names}), so executions started from deploy 1 on keep "
            "that code while the alias moves in deploy 2. Point the definition back at the alias in a later "
            "deploy: executions started before it keep the version they were started on.",
        )
    if versions:
        names = ", ".join(f"`{logical}{VERSION}`" for _, logical in sorted(versions))
        runbook.insert(
            1 if expand else 0,
            f"The outline publishes {names} (`AWS::Lambda::Version`) and points the definition at it. "
            "CloudFormation publishes such a version once, when it creates the resource: a later code change "
            "reaches nobody until a new version resource is deployed (e.g. `"
            f"{sorted(versions)[0][1]}{VERSION}2`, the definition pointed at it, in deploy 2). The old one is "
            "retained (`DeletionPolicy: Retain`): executions started on it keep calling it; delete it once they "
            "drain.",
        )
    # Insertions last, bottom-up in each file: the line numbers above stay true.
    steps: list[tuple[str, int, Callable[[list[str]], list[str] | None]]] = []
    for m in inserts:
        steps.append((m.template or m.path, m.line - 1, partial(_alias_edit, m)))
    for m in preferences:
        assert m.alias is not None
        steps.append((m.alias.path, m.alias.line - 1, partial(_preference_edit, at=m.alias.line - 1)))
    for file, resource in functions:
        at = _resource_line(edits[file], resource)
        if at is not None:
            steps.append((file, at, partial(_auto_alias, at=at)))
    for file, logical in versions:
        at = _resource_line(edits[file], logical)
        if at is not None:
            steps.append((file, at, partial(_version_resource, at=at, resource=logical)))
    for file, at, logical in substitutions:
        steps.append((file, at, partial(_substitution, at=at, resource=logical)))
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
