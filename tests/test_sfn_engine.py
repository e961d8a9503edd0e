"""The Step Functions engine on bad input, through the real CLI, and with live counts from moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cli_support import invoke, run_process
from gitrepo import make_repo
from servers import moto_env, moto_server

from bot.engines.stepfunctions.extract import build_machine
from bot.engines.stepfunctions.model import StateMachine
from bot.engines.stepfunctions.source import DocumentError, load_json, load_yaml
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

FLOW: dict[str, Any] = {
    "StartAt": "Validate",
    "States": {
        "Validate": {"Type": "Pass", "Next": "Charge"},
        "Charge": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:charge:live"},
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def _flow(**changes: Any) -> str:
    data = json.loads(json.dumps(FLOW))
    data["States"]["Validate"].update(changes)
    return json.dumps(data, indent=2)


def parse_for_tests(text: str) -> StateMachine:
    return build_machine("sm", "sm.asl.json", load_json(text))


def _check(tmp_path: Path, base: dict[str, str], head: dict[str, str]) -> Report:
    repo = make_repo(tmp_path / "repo", base, head)
    return run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))


def test_invalid_json_head_is_an_error_with_its_line(tmp_path: Path) -> None:
    broken = _flow().replace('"Next": "Charge"', '"Next": "Charge",,')
    report = _check(tmp_path, {"sfn/orders.asl.json": _flow()}, {"sfn/orders.asl.json": broken})
    assert report.verdict.level.value == "error"
    [finding] = [f for f in report.findings if f.rule == "SFN001"]
    assert (
        finding.location is not None
        and finding.location.line
        == broken.splitlines().index(next(ln for ln in broken.splitlines() if ",," in ln)) + 1
    )
    assert "invalid JSON" in finding.message
    # Nothing else is claimed about a file that could not be read: no removed/added states.
    assert {f.rule for f in report.findings} == {"SFN001"}


def test_invalid_json_through_the_cli_is_one_report_not_a_traceback(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"orders.asl.json": _flow()}, {"orders.asl.json": "{"})
    run = run_process("check", "--repo", repo.working_dir, "--base", "main")
    assert run.exit_code == 2
    assert "Traceback" not in run.stderr + run.stdout
    assert "SFN001" in run.stdout


def test_yaml_with_cloudformation_tags_parses() -> None:
    doc = load_yaml(
        "Resources:\n  A:\n    Type: AWS::SNS::Topic\n    Properties:\n"
        "      Name: !Sub '${AWS::StackName}-x'\n      Arn: !GetAtt B.Arn\n      L: !Join ['', [a, !Ref C]]\n"
        "      I: !If [Cond, !Select [0, !GetAZs ''], !Ref AWS::NoValue]\n"
    )
    props = doc.data["Resources"]["A"]["Properties"]
    assert props["Name"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert props["Arn"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert props["L"] == {"Fn::Join": ["", ["a", {"Ref": "C"}]]}
    assert props["I"]["Fn::If"][1] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert doc.line(("Resources", "A", "Properties", "Arn")) == 6


def test_bad_yaml_names_its_line() -> None:
    with pytest.raises(DocumentError) as err:
        load_yaml("StartAt: A\nStates:\n  A: {Type: Pass\n  B: x\n")
    assert err.value.line in (3, 4)


def test_a_cycle_with_no_way_out_is_found_and_does_not_hang() -> None:
    machine = parse_for_tests(
        json.dumps(
            {
                "StartAt": "A",
                "States": {
                    "A": {"Type": "Pass", "Next": "B"},
                    "B": {"Type": "Pass", "Next": "A"},
                    "End": {"Type": "Succeed"},
                },
            },
            indent=1,
        )
    )
    codes = sorted(p.code for p in machine.problems)
    assert codes == ["NO_PATH_TO_END", "NO_PATH_TO_END", "UNREACHABLE_STATE"]


def test_a_loop_with_an_exit_is_valid() -> None:
    machine = parse_for_tests(
        json.dumps(
            {
                "StartAt": "Poll",
                "States": {
                    "Poll": {"Type": "Wait", "Seconds": 5, "Next": "Done?"},
                    "Done?": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "End"}],
                        "Default": "Poll",
                    },
                    "End": {"Type": "Succeed"},
                },
            }
        )
    )
    assert machine.problems == []


def test_duplicate_state_names_across_branches_are_reported() -> None:
    branch = {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}}
    machine = parse_for_tests(
        json.dumps(
            {
                "StartAt": "P",
                "States": {"P": {"Type": "Parallel", "Branches": [branch, branch], "End": True}},
            },
            indent=2,
        )
    )
    assert [p.code for p in machine.problems] == ["DUPLICATE_STATE_NAME"]


def test_a_5mb_definition_is_answered_clearly(tmp_path: Path) -> None:
    states: dict[str, Any] = {
        f"S{i}": {"Type": "Pass", "Result": {"pad": "x" * 200}, "Next": f"S{i + 1}"} for i in range(20000)
    }
    states["S20000"] = {"Type": "Succeed"}
    huge = json.dumps({"StartAt": "S0", "States": states}, indent=1)
    assert len(huge) > 5_000_000
    report = _check(tmp_path, {"big.asl.json": _flow()}, {"big.asl.json": huge})
    [finding] = [f for f in report.findings if f.rule == "SFN001"]
    assert "over the 1,000,000-byte limit" in finding.message
    assert report.verdict.level.value == "error"


def test_a_definition_over_1mib_is_invalid_when_the_limit_is_raised(tmp_path: Path) -> None:
    states: dict[str, Any] = {
        f"S{i}": {"Type": "Pass", "Result": {"pad": "x" * 200}, "Next": f"S{i + 1}"} for i in range(5000)
    }
    states["S5000"] = {"Type": "Succeed"}
    huge = json.dumps({"StartAt": "S0", "States": states}, indent=1)
    config = tmp_path / "config.yml"
    config.write_text("limits:\n  max_file_bytes: 10000000\n")
    repo = make_repo(tmp_path / "repo", {"big.asl.json": _flow()}, {"big.asl.json": huge})
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD", config=config))
    too_large = [f for f in report.findings if f.rule == "SFN002" and "accepts at most" in f.message]
    assert too_large and report.verdict.level.value == "breaking"


def test_unrelated_json_and_yaml_files_are_ignored(tmp_path: Path) -> None:
    report = _check(
        tmp_path,
        {"package.json": '{"name": "a"}', ".github/workflows/ci.yml": "on: push\njobs: {}\n"},
        {"package.json": '{"name": "b"', ".github/workflows/ci.yml": "on: [push\n"},
    )
    assert report.findings == [] and report.verdict.level.value == "safe"


# --- live counts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws_env(moto: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in moto_env(moto).items():
        monkeypatch.setenv(key, value)
    return moto


def test_live_counts_fill_the_in_flight_column_and_the_drain_window(aws_env: str, tmp_path: Path) -> None:
    client = boto3.client("stepfunctions")
    # Without execution enabled moto keeps executions RUNNING: what a long-lived execution looks like.
    arn = client.create_state_machine(
        name="orders", definition=_flow(), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    for i in range(3):
        client.start_execution(stateMachineArn=arn, name=f"run-{i}", input="{}")
    report = _check(
        tmp_path,
        {"sfn/orders.asl.json": _flow(), "sfn/other.asl.json": _flow()},
        {
            "sfn/orders.asl.json": _flow(Comment="x", Result={"a": 1}),
            "sfn/other.asl.json": _flow(Next="Done"),
        },
    )
    by_id = {d.id: d for d in report.definitions}
    assert by_id["orders"].in_flight.count == 3
    assert "ListExecutions: 3 RUNNING" in by_id["orders"].in_flight.source
    assert by_id["orders"].in_flight.oldest_start
    # A state machine AWS does not know keeps the unknown count.
    assert by_id["other"].in_flight.count is None


def test_live_counts_off_never_calls_aws(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yml"
    config.write_text("stepfunctions:\n  live_counts: 'off'\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a call would fail
    repo = make_repo(
        tmp_path / "repo", {"orders.asl.json": _flow()}, {"orders.asl.json": _flow(Result={"a": 1})}
    )
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD", config=config))
    assert report.definitions[0].in_flight.count is None
    assert not [n for n in report.notes if "live in-flight" in n]


def test_an_unreachable_aws_endpoint_is_a_note_not_a_failure(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    repo = make_repo(
        tmp_path / "repo", {"orders.asl.json": _flow()}, {"orders.asl.json": _flow(Result={"a": 1})}
    )
    run = invoke("check", "--repo", repo.working_dir, "--base", "main", "--format", "json")
    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    assert any("no live in-flight count" in n for n in report["notes"])
    # A definition-only change is safe for running executions (issue 18): the note does not change that.
    assert report["verdict"]["level"] == "safe"


@pytest.mark.parametrize("style", ["flow", "compact"])
def test_yaml_nested_past_what_libyaml_survives_is_an_error_finding(tmp_path: Path, style: str) -> None:
    # libyaml (the fast loader) crashes the process on ~30,000 levels; the check must answer instead.
    # (Nesting by indentation cannot get that deep within limits.max_file_bytes: it grows quadratically.)
    depth = 30_000
    if style == "flow":
        nested = "Result: " + "[" * depth + "]" * depth + "\n"
    else:
        nested = "Result:\n" + "- " * depth + "x\n"
    base = "StartAt: A\nStates:\n  A:\n    Type: Pass\n    End: true\n"
    report = _check(tmp_path, {"sm/flow.asl.yaml": base}, {"sm/flow.asl.yaml": base + nested})
    [finding] = [f for f in report.findings if f.rule == "SFN001"]
    assert finding.location is not None and finding.location.path == "sm/flow.asl.yaml"
    assert "nested too deeply" in finding.message, finding.message
    assert report.verdict.level.value == "error"
