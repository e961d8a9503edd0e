"""A repository of many Step Functions apps, written as a user's monorepo is: the same logical ids
in every app's template, functions called by literal name across stacks, and one template that was
already broken before any pull request. Shared by tests/test_sfn_monorepo.py and bench/sfn_monorepo.py.
"""

from __future__ import annotations

import json

PARENT_CHILD = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: {app}

Resources:
  ChargeFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {app}-charge
      CodeUri: functions/charge/
      Handler: app.handler
      Runtime: python3.12

  ChildStateMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachines/child.asl.json
      DefinitionSubstitutions:
        ChargeFunctionArn: !GetAtt ChargeFunction.Arn

  ParentStateMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        Comment: {app} parent
        StartAt: Route
        States:
          Route:
            Type: Choice
            Choices:
              - Variable: $.kind
                StringEquals: express
                Comment: {rule_comment}
                Next: RunChild
            Default: Done
          RunChild:
            Type: Task
            Resource: arn:aws:states:::states:startExecution.sync:2
            Parameters:
              StateMachineArn: !GetAtt ChildStateMachine.Arn
              Input.$: $
            Next: Done
          Done:
            Type: Succeed
"""


def child_asl(comment: str = "charges the card", wait: int = 5) -> str:
    return json.dumps(
        {
            "Comment": comment,
            "StartAt": "Charge",
            "States": {
                "Charge": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "${ChargeFunctionArn}", "Payload.$": "$"},
                    "Next": "Settle",
                },
                "Settle": {"Type": "Wait", "Seconds": wait, "End": True},
            },
        },
        indent=2,
    )


def caller_asl(function: str) -> str:
    """A standalone definition (deployed by other tooling) calling a function by literal ARN."""
    return json.dumps(
        {
            "StartAt": "Charge",
            "States": {
                "Charge": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
                        "Payload.$": "$",
                    },
                    "End": True,
                }
            },
        },
        indent=2,
    )


ACTIVITY = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  ReviewActivity:
    Type: AWS::StepFunctions::Activity
    Properties:
      Name: {name}
  ReviewStateMachine:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      Definition:
        StartAt: Review
        States:
          Review:
            Type: Task
            Resource: !Ref ReviewActivity
            TimeoutSeconds: 3600
            End: true
"""

BROKEN = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  BrokenStateMachine:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      Definition: {StartAt: A, States: {A: {Type: Pass, End: true}
"""


def app_files(app: str, *, rule_comment: str = "fast path", child: str | None = None) -> dict[str, str]:
    """One app's files: its template, its child definition, and its function's code."""
    return {
        f"{app}/template.yaml": PARENT_CHILD.format(app=app, rule_comment=rule_comment),
        f"{app}/statemachines/child.asl.json": child or child_asl(),
        f"{app}/functions/charge/app.py": "def handler(event, context):\n    return {'charged': True}\n",
    }


def monorepo(apps: int) -> dict[str, str]:
    """`apps` apps with colliding logical ids, an activity app, a literal-ARN caller, a broken one."""
    files: dict[str, str] = {}
    for i in range(apps):
        files.update(app_files(f"app{i:04d}"))
    files["review/template.yaml"] = ACTIVITY.format(name="review-v1")
    files["billing/flows/charge.asl.json"] = caller_asl("app0000-charge")
    files["legacy/template.yaml"] = BROKEN
    files["legacy/README.md"] = "Legacy app.\n"
    return files
