"""Step Functions templates as users write them (issue 18): list-form `!Sub` definitions keep their
lines, an S3 definition is named as not compared, the plan's canary figures are the template's, and
CDK / Terraform placeholders in a standalone definition are judged as what they name.
Real git repositories, the real pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixture_harness import explain
from gitrepo import make_repo

from bot.model import Report
from bot.pipeline import CheckOptions, run_check

SUB_SHORT = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  FlowStateMachine:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      RoleArn: arn:aws:iam::123456789012:role/flows
      DefinitionString: !Sub
        - |
          {
            "Comment": "${Note}",
            "StartAt": "Settle",
            "States": {
              "Settle": {
                "Type": "Wait",
                "Seconds": 60,
                "Next": "Done"
              },
              "Done": {"Type": "Succeed"}
            }
          }
        - Note: settles orders
"""
# The same definition in long form: `Fn::Sub:` with a list.
SUB_LONG = "".join(
    line if not line.startswith("        ") else "  " + line
    for line in SUB_SHORT.replace(
        "DefinitionString: !Sub\n", "DefinitionString:\n        Fn::Sub:\n"
    ).splitlines(keepends=True)
).replace("          Fn::Sub:", "        Fn::Sub:")


def _check(tmp_path: Path, base: dict[str, str], head: dict[str, str]) -> Report:
    repo = make_repo(tmp_path / "repo", base, head)
    return run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))


@pytest.mark.parametrize("form", ["short", "long"])
def test_list_form_sub_definition_keeps_its_lines(tmp_path: Path, form: str) -> None:
    base = SUB_SHORT if form == "short" else SUB_LONG
    head = base.replace('"Seconds": 60', '"Seconds": 300')
    report = _check(tmp_path, {"template.yaml": base}, {"template.yaml": head})
    [finding] = [f for f in report.findings if f.rule == "SFN118"]
    want = next(i for i, ln in enumerate(head.splitlines(), 1) if '"Seconds": 300' in ln)
    assert finding.location is not None and finding.location.line == want, explain(report)
    assert report.verdict.level.value == "safe", explain(report)


def test_a_definition_in_s3_is_named_as_not_compared(tmp_path: Path) -> None:
    template = (
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Orders:\n    Type: AWS::Serverless::StateMachine\n"
        "    Properties:\n      DefinitionUri: s3://flows-bucket/orders-v1.asl.json\n"
    )
    head = template.replace("orders-v1", "orders-v2")
    report = _check(tmp_path, {"template.yaml": template}, {"template.yaml": head})
    [note] = [f for f in report.findings if f.rule == "SFN004"]
    assert note.location is not None and (note.location.path, note.location.line) == ("template.yaml", 6)
    assert "s3://flows-bucket/orders-v2.asl.json" in note.message
    assert note.severity.value == "info" and report.verdict.level.value == "safe", explain(report)


CANARY = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  OrderStateMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      AutoPublishAlias: live
      DeploymentPreference:
        Type: CANARY
        Percentage: 25
        Interval: 15
      Definition:
        StartAt: Settle
        States:
          Settle:
            Type: Wait
            Seconds: 60
            End: true
"""


def test_the_plan_shifts_traffic_with_the_template_s_own_canary_figures(tmp_path: Path) -> None:
    report = _check(
        tmp_path, {"template.yaml": CANARY}, {"template.yaml": CANARY.replace("Seconds: 60", "Seconds: 90")}
    )
    text = "\n".join([*report.plan.runbook, *report.plan.canary])
    assert "CANARY 25% for 15 min" in text, text
    assert "10%" not in text and "10 min" not in text, text
    # The alias exists in base with a gradual preference: the change reaches new executions through it.
    assert [f.gated for f in report.findings if f.rule == "SFN118"] == [True], explain(report)


def _standalone(function: str) -> str:
    return json.dumps(
        {
            "StartAt": "Charge",
            "States": {
                "Charge": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function, "Payload.$": "$"},
                    "End": True,
                }
            },
        },
        indent=2,
    )


@pytest.mark.parametrize(
    ("placeholder", "rules"),
    [
        ("${charge_function_arn}", ["SFN112", "SFN121"]),  # Terraform aws_lambda_function.x.arn
        ("${ChargeFunctionAliasArn}", ["SFN112"]),  # an alias ARN: pinned
        ("${charge_qualified_arn}", ["SFN112"]),  # Terraform qualified_arn: a version
    ],
)
def test_placeholders_in_a_standalone_definition_are_judged_by_what_they_name(
    tmp_path: Path, placeholder: str, rules: list[str]
) -> None:
    base = _standalone("arn:aws:lambda:us-east-1:123456789012:function:charge:live")
    report = _check(
        tmp_path, {"flows/charge.asl.json": base}, {"flows/charge.asl.json": _standalone(placeholder)}
    )
    assert sorted(f.rule for f in report.findings) == rules, explain(report)
    if "SFN121" in rules:
        [finding] = [f for f in report.findings if f.rule == "SFN121"]
        line = next(i for i, ln in enumerate(_standalone(placeholder).splitlines(), 1) if placeholder in ln)
        assert finding.location is not None and finding.location.line == line


def test_an_alias_without_a_preference_gets_one_and_then_gates_the_change(tmp_path: Path) -> None:
    base = CANARY.replace(
        "      DeploymentPreference:\n        Type: CANARY\n        Percentage: 25\n        Interval: 15\n",
        "",
    )
    head = base.replace("Seconds: 60", "Seconds: 90")
    report = _check(tmp_path / "one", {"template.yaml": base}, {"template.yaml": head})
    assert [f.gated for f in report.findings if f.rule == "SFN118"] == [False], explain(report)
    assert "+      DeploymentPreference:" in report.plan.outline, report.plan.outline
    assert "CANARY 10% for 10 min" in "\n".join(report.plan.runbook)
    # Deploy 1: the outline alone on base; deploy 2: this change. The alias now routes it gradually.
    repo = make_repo(tmp_path / "two", {"template.yaml": base}, {"template.yaml": base})
    patch = tmp_path / "outline.patch"
    patch.write_text(report.plan.outline)
    repo.git.apply(str(patch))
    pinned = (Path(repo.working_dir) / "template.yaml").read_text()
    again = _check(
        tmp_path / "three",
        {"template.yaml": pinned},
        {"template.yaml": pinned.replace("Seconds: 60", "Seconds: 90")},
    )
    assert [f.gated for f in again.findings if f.rule == "SFN118"] == [True], explain(again)
