"""What a Task calls, and whether the call is pinned to a version.

A definition is pinned to the execution that started with it, but what its Tasks call is not:
a Lambda called by an unqualified ARN or name runs `$LATEST` at call time, a nested
`states:startExecution` on an unqualified ARN runs the child's latest revision, an activity
runs whatever workers poll it. References are resolved through `DefinitionSubstitutions`,
`${Logical.Arn}` in `Fn::Sub`, and `!Ref`/`!GetAtt` to resources of the same template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from bot.engines.stepfunctions.model import Reference, State

LAMBDA_TYPES = ("AWS::Lambda::Function", "AWS::Serverless::Function")
LAMBDA_PINNED_TYPES = ("AWS::Lambda::Alias", "AWS::Lambda::Version")
SM_TYPES = ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")
SM_PINNED_TYPES = ("AWS::StepFunctions::StateMachineAlias", "AWS::StepFunctions::StateMachineVersion")
_LAMBDA_ARN = re.compile(r"^arn:aws[\w-]*:lambda:[^:]*:[^:]*:function:([^:]+)(?::(.+))?$")
_SM_ARN = re.compile(r"^arn:aws[\w-]*:states:[^:]*:[^:]*:stateMachine:([^:]+)(?::(.+))?$")
_ACTIVITY_ARN = re.compile(r"^arn:aws[\w-]*:states:[^:]*:[^:]*:activity:(.+)$")
_SUB = re.compile(r"^\$\{([^}]+)\}$")
_QUALIFIED_NAME = re.compile(r"alias|version|qualified", re.IGNORECASE)


class Resolved(NamedTuple):
    """A resolved Resource / FunctionName value; `alias`: qualified by an alias (it moves on deploy)."""

    kind: str
    text: str
    qualified: bool
    target: str | None
    alias: bool = False


def called_name(kind: str, text: str) -> str | None:
    """The function, state machine or activity name a literal ARN or bare function name calls."""
    if kind == "lambda":
        if lm := _LAMBDA_ARN.match(text):
            return lm.group(1)
        if not text.startswith("arn:") and "$" not in text and "!" not in text:
            parts = text.split(":")
            return parts[2] if len(parts) >= 3 and parts[1] == "function" else parts[0]
    if kind == "state_machine" and (sm := _SM_ARN.match(text)):
        return sm.group(1)
    if kind == "activity" and (am := _ACTIVITY_ARN.match(text)):
        return am.group(1)
    return None


def references(state: State, subs: Mapping[str, Any], resources: Mapping[str, Any]) -> list[Reference]:
    """Return what the Task `state` calls (Lambda functions, child state machines, activities)."""
    resource = state.body.get("Resource")
    out: list[Reference] = []
    line = state.field_line("Resource")
    resolved = _resolve(resource, subs, resources)
    if resolved is None:
        return out
    kind, text, qualified, target, alias = resolved
    if kind == "integration":
        integration = text
        params = state.body.get("Parameters", state.body.get("Arguments"))
        params = params if isinstance(params, Mapping) else {}
        container = "Parameters" if "Parameters" in state.body else "Arguments"
        if integration.startswith("arn:aws:states:::lambda:invoke"):
            value = params.get("FunctionName")
            found = _resolve(value, subs, resources, function_name=True, placeholder="lambda")
            if found is not None:
                out.append(
                    Reference(
                        "lambda",
                        found.text,
                        found.qualified,
                        f"{container}.FunctionName",
                        state.field_line(f"{container}.FunctionName"),
                        found.target,
                        alias=found.alias,
                    )
                )
        elif integration.startswith("arn:aws:states:::states:startExecution"):
            value = params.get("StateMachineArn")
            found = _resolve(value, subs, resources, placeholder="state_machine")
            if found is not None and found.kind == "state_machine":
                out.append(
                    Reference(
                        "state_machine",
                        found.text,
                        found.qualified,
                        f"{container}.StateMachineArn",
                        state.field_line(f"{container}.StateMachineArn"),
                        found.target,
                        alias=found.alias,
                    )
                )
        return out
    out.append(Reference(kind, text, qualified, "Resource", line, target, alias=alias))
    return out


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        if "Ref" in value:
            return f"!Ref {value['Ref']}"
        att = value.get("Fn::GetAtt")
        if isinstance(att, list):
            return "!GetAtt " + ".".join(str(a) for a in att)
        if isinstance(value.get("Fn::Sub"), str):
            return f"!Sub {value['Fn::Sub']}"
    return str(value)


def _resolve(
    value: Any,
    subs: Mapping[str, Any],
    resources: Mapping[str, Any],
    *,
    function_name: bool = False,
    depth: int = 0,
    placeholder: str | None = None,
) -> Resolved | None:
    """Return (kind, text, qualified, template resource, alias) for a Resource / FunctionName value."""
    if depth > 4 or value is None:
        return None
    if isinstance(value, Mapping):
        return _resolve_intrinsic(value, subs, resources, function_name=function_name, depth=depth)
    if not isinstance(value, str):
        return None
    m = _SUB.match(value)
    if m:
        name = m.group(1)
        if not subs and not resources and placeholder is not None:
            # A standalone definition filled in by CDK / Terraform / a deploy script: the name is all
            # there is. `aws_lambda_function.x.arn` is unqualified; an alias or version says so.
            qualified = bool(_QUALIFIED_NAME.search(name)) and "unqualified" not in name.lower()
            return Resolved(placeholder, value, qualified, None, qualified and "version" not in name.lower())
        if name in subs:
            found = _resolve(subs[name], subs, resources, function_name=function_name, depth=depth + 1)
            return found._replace(text=value) if found else None
        logical, _, attr = name.partition(".")
        if logical in resources:
            intrinsic: Mapping[str, Any] = {"Fn::GetAtt": [logical, attr]} if attr else {"Ref": logical}
            found = _resolve(intrinsic, subs, resources, function_name=function_name, depth=depth + 1)
            return found._replace(text=value) if found else None
        return None
    if value.startswith("arn:aws:states:::"):
        return Resolved("integration", value, True, None) if not function_name else None
    if lm := _LAMBDA_ARN.match(value):
        return Resolved("lambda", value, _qualified(lm.group(2)), None, _is_alias(lm.group(2)))
    if sm := _SM_ARN.match(value):
        return Resolved("state_machine", value, sm.group(2) is not None, None, _is_alias(sm.group(2)))
    if _ACTIVITY_ARN.match(value):
        return Resolved("activity", value, True, None)
    if function_name and not value.startswith("arn:") and "$" not in value:
        # A bare name or "ACCOUNT:function:NAME", optionally ":QUALIFIER".
        parts = value.split(":")
        qualifier = parts[-1] if len(parts) in (2, 4) else None
        return Resolved("lambda", value, _qualified(qualifier), None, _is_alias(qualifier))
    return None


def _qualified(qualifier: str | None) -> bool:
    return bool(qualifier) and qualifier != "$LATEST"


def _is_alias(qualifier: str | None) -> bool:
    """A qualifier that names an alias (it can be moved), not a published version number."""
    return _qualified(qualifier) and not str(qualifier).isdigit()


def _resolve_intrinsic(
    value: Mapping[str, Any],
    subs: Mapping[str, Any],
    resources: Mapping[str, Any],
    *,
    function_name: bool,
    depth: int,
) -> Resolved | None:
    text = _show(value)
    if "Ref" in value and isinstance(value["Ref"], str):
        logical = value["Ref"]
        if logical.endswith((".Alias", ".Version")):  # SAM AutoPublishAlias outputs
            # `.Alias` moves to the new version in the deploy that changes the code; `.Version` does not.
            return Resolved("lambda", text, True, logical.rsplit(".", 1)[0], logical.endswith(".Alias"))
        rtype = _type(resources, logical)
        if rtype in LAMBDA_TYPES:
            return Resolved("lambda", text, False, logical)
        if rtype == "AWS::Lambda::Alias":
            # Qualified, but it moves in the deploy that changes its FunctionVersion or RoutingConfig.
            return Resolved("lambda", text, True, logical, True)
        if rtype in LAMBDA_PINNED_TYPES:
            return Resolved("lambda", text, True, logical)
        if rtype in SM_TYPES:
            return Resolved("state_machine", text, False, logical)
        if rtype in SM_PINNED_TYPES:
            return Resolved("state_machine", text, True, logical)
        if rtype == "AWS::StepFunctions::Activity":
            return Resolved("activity", text, True, logical)
        return None
    att = value.get("Fn::GetAtt")
    if isinstance(att, list) and att and isinstance(att[0], str):
        rtype = _type(resources, att[0])
        if rtype in LAMBDA_TYPES:
            return Resolved("lambda", text, False, att[0])
        if rtype in SM_TYPES:
            return Resolved("state_machine", text, False, att[0])
        if rtype == "AWS::StepFunctions::Activity":
            return Resolved("activity", text, True, att[0])
        return None
    sub = value.get("Fn::Sub")
    if isinstance(sub, list) and sub and isinstance(sub[0], str):
        sub = sub[0]
    if isinstance(sub, str):
        found = _resolve(sub, subs, resources, function_name=function_name, depth=depth + 1)
        if found is not None:
            return found._replace(text=text)
        # "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:${ChargeFunction}"
        concrete = re.sub(r"\$\{([^}]+)\}", "X", sub)
        for pattern, kind in ((_LAMBDA_ARN, "lambda"), (_SM_ARN, "state_machine")):
            m = pattern.match(concrete)
            if m:
                names = [
                    n.split(".")[0] for n in re.findall(r"\$\{([^}]+)\}", sub) if n.split(".")[0] in resources
                ]
                qualified = m.group(2) is not None and (kind != "lambda" or _qualified(m.group(2)))
                alias = qualified and _is_alias(m.group(2))
                return Resolved(kind, text, qualified, names[0] if names else None, alias)
    return None


def _type(resources: Mapping[str, Any], logical: str) -> str | None:
    r = resources.get(logical)
    return r.get("Type") if isinstance(r, Mapping) and isinstance(r.get("Type"), str) else None
