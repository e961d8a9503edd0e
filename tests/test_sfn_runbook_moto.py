"""Every `aws stepfunctions` command the Step Functions plan prints runs, with the real AWS CLI,
against moto in server mode, with executions RUNNING there as the scenario has them.

Each scenario is a real git repository checked by the pipeline; the commands are read out of the
Plan (backticked `aws ...` and `git show ...` spans of the runbook and rollback, in order). Values
only an operator knows come from the scenario (the base commit, a version ARN a previous command
printed); a placeholder left for a value the scenario knows fails the test.

The `aws lambda` commands (publish-version, create-alias, get-alias: giving a function outside the
templates the alias the outline pins it to) run the same way, on a function created in moto.

Not run here, because moto (5.x) does not support them: `StartExecution` on an alias or version
ARN (the runbook's "start executions on the alias" has no command), `PublishStateMachineVersion`
and `ListStateMachineVersions` (answer 500), and any `aws lambda` command on a function moto does
not hold (a real account's). The plan prints none of the middle two.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from gitrepo import make_repo
from servers import moto_env, moto_server

from bot.model import Report
from bot.pipeline import CheckOptions, run_check

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/flows"
COMMAND = re.compile(r"`((?:aws|git show) [^`]+)`")
PLACEHOLDER = re.compile(r"<[^>]+>")

FUNCTIONS = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  ChargeFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: charge-card
      CodeUri: charge/
      Handler: app.handler
      Runtime: python3.12
"""


def _flow(wait: int = 3600) -> str:
    return json.dumps(
        {
            "StartAt": "Charge",
            "States": {
                "Charge": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:charge-card"},
                    "Next": "Settle",
                },
                "Settle": {"Type": "Wait", "Seconds": wait, "End": True},
            },
        },
        indent=2,
    )


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


def _aws(url: str, command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **moto_env(url), "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _commands(report: Report) -> list[str]:
    return [c for line in [*report.plan.runbook, *report.plan.rollback] for c in COMMAND.findall(line)]


def _run_all(url: str, report: Report, cwd: Path, known: dict[str, str]) -> dict[str, str]:
    """Run every command in order; return command → its output. `known`: placeholder → value."""
    outputs: dict[str, str] = {}
    published = ""  # the last version a command printed
    deployed = ""  # the first: the one the runbook's deploy published
    function_version = ""  # the last Lambda version `aws lambda publish-version` printed
    for raw in _commands(report):
        command = raw.replace("REGION", REGION).replace("ACCOUNT", ACCOUNT)
        values = {
            "<the stateMachineVersionArn it printed>": published,
            "<the version ARN this deploy published>": deployed,
            "<the Version it printed>": function_version,
            **known,
        }
        for placeholder, value in values.items():
            command = command.replace(placeholder, value)
        assert not PLACEHOLDER.search(command.replace("->", "")), f"placeholder left: {command}"
        done = _aws(url, command, cwd)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        outputs[raw] = done.stdout.strip()
        if '"stateMachineVersionArn"' in done.stdout:
            published = json.loads(done.stdout)["stateMachineVersionArn"]
            deployed = deployed or published
        if command.startswith("aws lambda publish-version"):
            function_version = json.loads(done.stdout)["Version"]
    return outputs


def test_first_migration_runbook_runs_and_counts_the_executions_it_must_wait_for(
    moto: str, tmp_path: Path
) -> None:
    base = {"flows/charge.asl.json": _flow(), "functions/template.yaml": FUNCTIONS}
    code = "def handler(event, context):\n    return {'receipt': event['id']}\n"
    repo = make_repo(tmp_path / "repo", base, {**base, "functions/charge/app.py": code})
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))
    assert [f.rule for f in report.findings] == ["SFN120"], report.findings
    sfn = boto3.client("stepfunctions", endpoint_url=moto, region_name=REGION, **_keys())
    arn = sfn.create_state_machine(name="charge", definition=_flow(), roleArn=ROLE)["stateMachineArn"]
    _create_function(moto, "charge-card")
    for _ in range(2):  # started before the deploy, on the unqualified ARN: what the drain waits for
        sfn.start_execution(stateMachineArn=arn)
    base_sha = repo.commit("main").hexsha
    outputs = _run_all(moto, report, Path(repo.working_dir), {"<base commit>": base_sha})
    drain = [out for command, out in outputs.items() if "executions[?!stateMachineVersionArn]" in command]
    assert drain == ["2"], outputs
    # The runbook published the head definition and created the alias the rollback moves.
    alias = sfn.describe_state_machine_alias(stateMachineAliasArn=f"{arn}:live")
    assert alias["routingConfiguration"][0]["stateMachineVersionArn"].startswith(f"{arn}:")
    assert any(command.startswith("git show") for command in outputs), outputs
    # The function the outline pins to `live` got it, on the version published before deploy 1.
    shown = [
        json.loads(out) for command, out in outputs.items() if command.startswith("aws lambda get-alias")
    ]
    published = [
        json.loads(out)["Version"] for command, out in outputs.items() if "publish-version" in command
    ]
    assert [(a["Name"], a["FunctionVersion"]) for a in shown] == [("live", published[0])], outputs


def test_rollback_with_an_alias_in_base_runs(moto: str, tmp_path: Path) -> None:
    case = Path(__file__).parent / "fixtures" / "stepfunctions" / "sam_canary_alias_gates_definition_change"
    repo = make_repo(tmp_path / "repo", case / "base", case / "head")
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))
    sfn = boto3.client("stepfunctions", endpoint_url=moto, region_name=REGION, **_keys())
    arn = sfn.create_state_machine(name="OrderStateMachine", definition=_flow(), roleArn=ROLE)[
        "stateMachineArn"
    ]
    before = sfn.update_state_machine(stateMachineArn=arn, definition=_flow(60), publish=True)
    version = before["stateMachineVersionArn"]
    sfn.create_state_machine_alias(
        name="live", routingConfiguration=[{"stateMachineVersionArn": version, "weight": 100}]
    )
    after = sfn.update_state_machine(stateMachineArn=arn, definition=_flow(30), publish=True)
    known = {
        "<the version ARN the alias routed to before this deploy>": version,
        "<the version ARN this deploy published>": after["stateMachineVersionArn"],
    }
    outputs = _run_all(moto, report, Path(repo.working_dir), known)
    assert outputs, report.plan.runbook
    alias = sfn.describe_state_machine_alias(stateMachineAliasArn=f"{arn}:live")
    assert alias["routingConfiguration"] == [{"stateMachineVersionArn": version, "weight": 100}]


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _create_function(url: str, name: str) -> None:
    """A Lambda function in moto (never invoked: moto runs no code here)."""
    iam = boto3.client("iam", endpoint_url=url, region_name=REGION, **_keys())
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName=f"{name}-role")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    boto3.client("lambda", endpoint_url=url, region_name=REGION, **_keys()).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
    )
