"""Replay real executions recorded in moto (LocalStack's ASL interpreter) through base and head definitions.

One moto server for the module records every base execution once and exports it with boto3, as a
user would; each test then reads those exports and replays them through a head definition.
moto stubs JSONata and does not resolve variable references (`$x` in Parameters fails with a
TypeError, in a Choice it never matches), so JSONata and variables are covered by the interpreter's
unit tests instead; here variables are only assigned.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any
from unittest.mock import ANY

import pytest
from servers import moto_server
from sfn_moto import FAIL, LAMBDA, OVERSIZE_ERROR, MotoStepFunctions

from bot.engines.stepfunctions.history import Execution, load_execution
from bot.engines.stepfunctions.interpreter import TaskFailure, TaskSuccess, run_definition
from bot.engines.stepfunctions.intrinsics import json_equal
from bot.engines.stepfunctions.replayer import (
    Replayed,
    execution_context,
    execution_oracle,
    replay_execution,
)

ORDERS: dict[str, Any] = {
    "Comment": "Orders: charge, pack, ship",
    "StartAt": "Validate",
    "States": {
        "Validate": {
            "Type": "Pass",
            "Parameters": {
                "orderId.$": "$.orderId",
                "amount.$": "$.amount",
                "express.$": "$.express",
                "items.$": "$.items",
                "key.$": "States.Format('order-{}', $.orderId)",
            },
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.express", "BooleanEquals": True, "Next": "Ship"},
                {"Variable": "$.amount", "NumericGreaterThan": 1000, "Next": "Reject"},
            ],
            "Default": "WaitABit",
        },
        "WaitABit": {"Type": "Wait", "Seconds": 0, "Next": "Reserve"},
        "Reserve": {
            "Type": "Task",
            "Resource": LAMBDA,
            "Parameters": {"orderId.$": "$.orderId", "items.$": "$.items"},
            "ResultPath": "$.reservation",
            "Retry": [
                {"ErrorEquals": [OVERSIZE_ERROR], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}
            ],
            "Next": "Charge",
        },
        "Charge": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "charge",
                "Payload": {"orderId.$": "$.orderId", "amount.$": "$.amount"},
            },
            "ResultSelector": {"receipt.$": "$.Payload.receipt", "status.$": "$.StatusCode"},
            "ResultPath": "$.charge",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Refund"}],
            "Next": "Pack",
        },
        "Pack": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {
                "sku.$": "$$.Map.Item.Value",
                "n.$": "$$.Map.Item.Index",
                "order.$": "$.orderId",
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Label",
                "States": {"Label": {"Type": "Task", "Resource": LAMBDA, "End": True}},
            },
            "ResultPath": "$.labels",
            "Next": "Ship",
        },
        "Ship": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Notify",
                    "States": {
                        "Notify": {
                            "Type": "Task",
                            "Resource": LAMBDA,
                            "ResultSelector": {"order.$": "$.orderId"},
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "Stamp",
                    "States": {"Stamp": {"Type": "Pass", "Result": {"stamped": True}, "End": True}},
                },
            ],
            # Not `$[0].order`: moto 5.2.5 answers a list there (its fix for moto#7825), AWS the value.
            "ResultSelector": {"notified.$": "$[0]", "stamp.$": "$[1]"},
            "ResultPath": "$.shipped",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed", "OutputPath": "$.shipped"},
        "Refund": {
            "Type": "Pass",
            "Result": {"refunded": True},
            "ResultPath": "$.refund",
            "Next": "Cancelled",
        },
        "Cancelled": {"Type": "Succeed"},
        "Reject": {"Type": "Fail", "Error": "Order.Rejected", "Cause": "amount over the limit"},
    },
}

FANOUT: dict[str, Any] = {
    "StartAt": "Setup",
    "States": {
        "Setup": {"Type": "Pass", "Assign": {"threshold.$": "$.threshold"}, "Next": "Batches"},
        "Batches": {
            "Type": "Map",
            "ItemsPath": "$.batches",
            "ItemSelector": {"rows.$": "$$.Map.Item.Value", "batch.$": "$$.Map.Item.Index"},
            "ItemProcessor": {
                "StartAt": "Rows",
                "States": {
                    "Rows": {
                        "Type": "Map",
                        "ItemsPath": "$.rows",
                        "ItemProcessor": {
                            "StartAt": "Check",
                            "States": {
                                "Check": {
                                    "Type": "Choice",
                                    "Choices": [{"Variable": "$", "NumericGreaterThan": 10, "Next": "Big"}],
                                    "Default": "Small",
                                },
                                "Big": {"Type": "Task", "Resource": LAMBDA, "End": True},
                                "Small": {"Type": "Pass", "Result": "small", "End": True},
                            },
                        },
                        "ResultPath": "$.rowResults",
                        "Next": "Sides",
                    },
                    "Sides": {
                        "Type": "Parallel",
                        "Branches": [
                            {
                                "StartAt": "Left",
                                "States": {"Left": {"Type": "Task", "Resource": LAMBDA, "End": True}},
                            },
                            {
                                "StartAt": "Right",
                                "States": {"Right": {"Type": "Pass", "Result": "r", "End": True}},
                            },
                        ],
                        "ResultPath": "$.sides",
                        "End": True,
                    },
                },
            },
            "ResultPath": "$.out",
            "Next": "Final",
        },
        "Final": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.threshold", "NumericGreaterThan": 100, "Next": "Huge"}],
            "Default": "Fine",
        },
        "Fine": {"Type": "Succeed"},
        "Huge": {"Type": "Succeed"},
    },
}

BLOCKED: dict[str, Any] = {
    "StartAt": "Prep",
    "States": {
        "Prep": {"Type": "Pass", "Result": {"ready": True}, "ResultPath": "$.prep", "Next": "Approve"},
        "Approve": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "approve",
                "Payload": {"token.$": "$$.Task.Token", "order.$": "$.orderId"},
            },
            "ResultPath": "$.approval",
            "Next": "Hold",
        },
        "Hold": {"Type": "Wait", "Seconds": 300, "Next": "Finish"},
        "Finish": {"Type": "Succeed"},
    },
}

RESERVED = {"reservation": "rsv-1"}
PAID = {"receipt": "r-1"}
#: name: (input, the Lambda results in call order; FAIL makes that call fail)
ORDER_RUNS: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "standard": ({"orderId": "o1", "amount": 5, "express": False, "items": ["a", "b"]}, [RESERVED, PAID]),
    "express": ({"orderId": "o2", "amount": 7, "express": True, "items": ["c"]}, []),
    "transient": ({"orderId": "o3", "amount": 9, "express": False, "items": ["d"]}, [FAIL, RESERVED, PAID]),
    "declined": ({"orderId": "o4", "amount": 11, "express": False, "items": ["e"]}, [RESERVED, FAIL]),
    "rejected": ({"orderId": "o5", "amount": 5000, "express": False, "items": []}, []),
    "no-items": ({"orderId": "o6", "amount": 3, "express": False, "items": []}, [RESERVED, PAID]),
}
FANOUT_RUNS: dict[str, dict[str, Any]] = {
    "wide": {"threshold": 5, "batches": [[1, 20], [30]]},
    "hollow": {"threshold": 500, "batches": [[], [3]]},
    "empty": {"threshold": 500, "batches": []},
}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoStepFunctions]:
    with moto_server() as url:
        yield MotoStepFunctions(url)


@pytest.fixture(scope="module")
def exports(moto: MotoStepFunctions) -> dict[str, dict[str, Any]]:
    """Every base execution, recorded in moto and exported with boto3."""
    recorded: dict[str, dict[str, Any]] = {}
    orders = moto.create("Orders", ORDERS)
    for name, (data, script) in ORDER_RUNS.items():
        recorded[f"orders/{name}"] = moto.record(orders, data, script=script, name=name)
    fanout = moto.create("Fanout", FANOUT)
    for name, data in FANOUT_RUNS.items():
        recorded[f"fanout/{name}"] = moto.record(fanout, data, name=name)
    blocked = moto.create("Blocked", BLOCKED)
    execution = moto.start(blocked, {"orderId": "o7"}, "waiting")
    moto.wait(execution, until="TaskSubmitted")
    recorded["blocked/at-task"] = moto.export(execution)
    scheduled = next(e for e in recorded["blocked/at-task"]["events"] if e["type"] == "TaskScheduled")
    token = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Payload"]["token"]
    moto.sfn.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
    moto.wait(execution, until="WaitStateEntered")
    recorded["blocked/at-wait"] = moto.export(execution)
    moto.sfn.stop_execution(executionArn=execution, error="Ops.Stop", cause="stopped by a test")
    moto.wait(execution)
    recorded["blocked/stopped"] = moto.export(execution)
    return recorded


BASES = {"orders": ORDERS, "fanout": FANOUT, "blocked": BLOCKED}
EXPECTED_STATUS = {
    "orders/standard": "SUCCEEDED",
    "orders/express": "SUCCEEDED",
    "orders/transient": "SUCCEEDED",
    "orders/declined": "SUCCEEDED",
    "orders/rejected": "FAILED",
    "orders/no-items": "SUCCEEDED",
    "fanout/wide": "SUCCEEDED",
    "fanout/hollow": "SUCCEEDED",
    "fanout/empty": "SUCCEEDED",
    "blocked/at-task": "RUNNING",
    "blocked/at-wait": "RUNNING",
    "blocked/stopped": "ABORTED",
}


def execution(exports: dict[str, dict[str, Any]], name: str) -> Execution:
    return load_execution(copy.deepcopy(exports[name]), f"{name}.json")


def replay(head: dict[str, Any], exports: dict[str, dict[str, Any]], name: str) -> Replayed:
    base = BASES[name.split("/")[0]]  # as `check` does: error names the base declares may be shown
    return replay_execution(copy.deepcopy(head), execution(exports, name), base=base)


def edited(base: dict[str, Any], change: Any) -> dict[str, Any]:
    head = copy.deepcopy(base)
    change(head["States"])
    return head


# ------------------------------------------------------------------------------------ base == head


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_replaying_the_recorded_definition_is_ok_and_matches_moto_state_by_state(
    exports: dict[str, dict[str, Any]], name: str
) -> None:
    recorded = execution(exports, name)
    assert recorded.status == EXPECTED_STATUS[name]
    assert recorded.skip_reason is None
    base = BASES[name.split("/")[0]]
    replayed = replay_execution(copy.deepcopy(base), recorded)
    assert replayed.outcome == "ok", replayed.message
    run = run_definition(
        base, recorded.input, execution_oracle(recorded), context=execution_context(recorded)
    )
    head = {(v.scope, v.name, v.ordinal): v for v in run.visits}
    compared = 0
    for visit in recorded.visits:
        assert visit.key in head, f"head never ran {visit.key}"
        if visit.exited:
            assert head[visit.key].exited, visit.key
            assert json_equal(head[visit.key].output, visit.output), visit.key
            compared += 1
    if not recorded.open and recorded.status != "ABORTED":
        assert set(head) == {v.key for v in recorded.visits}
    assert compared >= {"orders": 2, "fanout": 3, "blocked": 1}[name.split("/")[0]]


def test_recordings_cover_map_scopes_retries_and_catches(exports: dict[str, dict[str, Any]]) -> None:
    wide = execution(exports, "fanout/wide")
    assert set(wide.tasks) == {
        ((0, 1), "Big", 0),
        ((1, 0), "Big", 0),
        ((0,), "Left", 0),
        ((1,), "Left", 0),
    }
    transient = execution(exports, "orders/transient")
    assert transient.tasks[((), "Reserve", 0)] == (TaskFailure(OVERSIZE_ERROR, ANY), TaskSuccess(RESERVED))
    assert transient.tasks[((), "Charge", 0)] == (TaskSuccess({"StatusCode": 200, "Payload": PAID}),)
    declined = execution(exports, "orders/declined")
    assert declined.tasks[((), "Charge", 0)] == (TaskFailure(OVERSIZE_ERROR, ANY),)
    assert [v.name for v in declined.visits][-3:] == ["Charge", "Refund", "Cancelled"]
    assert declined.visits[-3].next == "Refund"
    rejected = execution(exports, "orders/rejected")
    assert (rejected.error, rejected.failed_state) == ("Order.Rejected", "Reject")
    assert execution(exports, "blocked/at-task").open


def test_export_shapes_read_the_same(exports: dict[str, dict[str, Any]]) -> None:
    export = exports["orders/standard"]
    whole = execution(exports, "orders/standard")
    events = export["events"]
    pages = [{"events": events[i : i + 7]} for i in range(0, len(events), 7)]
    pages[0].update({k: v for k, v in export.items() if k != "events"})
    repeated = [*pages, {"events": events[3:12]}]
    bare = {"events": list(reversed(events))}
    for variant in (pages, repeated, bare):
        read = load_execution(copy.deepcopy(variant), "variant.json")
        assert (read.tasks, read.visits, read.events) == (whole.tasks, whole.visits, whole.events)
    assert whole.state_machine == "Orders" and whole.execution_name == "standard"
    assert load_execution(bare, "bare.json").state_machine is None


# ---------------------------------------------------------------------------------- heads that pass


def insert_audit(states: dict[str, Any]) -> None:
    states["Validate"]["Next"] = "Audit"
    states["Audit"] = {"Type": "Pass", "Comment": "new, changes nothing", "Next": "Route"}


def unrelated_changes(states: dict[str, Any]) -> None:
    states["Reserve"]["Retry"][0]["MaxAttempts"] = 5
    states["Charge"]["TimeoutSeconds"] = 30
    states["Charge"]["Comment"] = "now with a timeout"
    states["WaitABit"]["Seconds"] = 5
    states["Refund"]["Result"] = {"refunded": True, "reason": "declined"}


@pytest.mark.parametrize("change", [insert_audit, unrelated_changes])
def test_heads_that_keep_the_behaviour_replay_ok(exports: dict[str, dict[str, Any]], change: Any) -> None:
    head = edited(ORDERS, change)
    for name in ORDER_RUNS:
        replayed = replay(head, exports, f"orders/{name}")
        assert replayed.outcome == "ok", (name, replayed.message)
        assert replayed.steps > 0


# ---------------------------------------------------------------------------------- heads that fail


def test_a_path_that_no_longer_resolves_is_an_error(exports: dict[str, dict[str, Any]]) -> None:
    head = edited(ORDERS, lambda s: s["Validate"]["Parameters"].update({"customer.$": "$.customer"}))
    for name in ORDER_RUNS:
        replayed = replay(head, exports, f"orders/{name}")
        assert (replayed.outcome, replayed.state) == ("error", "Validate")
        assert replayed.message == (
            "head fails with `States.Runtime` at `Validate`: the JSONPath `$.customer` specified for the field "
            "`customer.$` could not be found in the input"
        )


def test_removing_the_retry_a_recorded_transient_failure_needed_is_an_error(
    exports: dict[str, dict[str, Any]],
) -> None:
    head = edited(ORDERS, lambda s: s["Reserve"].pop("Retry"))
    outcomes = {name: replay(head, exports, f"orders/{name}") for name in ORDER_RUNS}
    assert (outcomes["transient"].outcome, outcomes["transient"].state) == ("error", "Reserve")
    assert outcomes["transient"].message == (
        f"terminal status changes: recorded SUCCEEDED, head FAILED (`{OVERSIZE_ERROR}` at `Reserve`)"
    )
    assert {name: r.outcome for name, r in outcomes.items() if name != "transient"} == dict.fromkeys(
        ["standard", "express", "declined", "rejected", "no-items"], "ok"
    )


def test_without_retry_a_caught_failure_takes_the_catch_path_and_diverges(
    exports: dict[str, dict[str, Any]],
) -> None:
    def move_retry(states: dict[str, Any]) -> None:
        states["Charge"]["Retry"] = states["Reserve"].pop("Retry")
        states["Reserve"]["Catch"] = [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Refund"}
        ]

    replayed = replay(edited(ORDERS, move_retry), exports, "orders/transient")
    assert (replayed.outcome, replayed.state) == ("diverged", "Reserve")
    assert replayed.message == "goes from `Reserve` to `Refund` where the recorded execution went to `Charge`"
    # The declined charge is retried now: beyond what was recorded.
    declined = replay(edited(ORDERS, move_retry), exports, "orders/declined")
    assert (declined.outcome, declined.state) == ("diverged", "Charge")
    assert declined.message == (
        f"retries Task `Charge` after `{OVERSIZE_ERROR}` (attempt 2), beyond the 1 attempt(s) the recorded "
        "execution made"
    )


def test_removing_a_catch_is_an_error(exports: dict[str, dict[str, Any]]) -> None:
    head = edited(ORDERS, lambda s: s["Charge"].pop("Catch"))
    replayed = replay(head, exports, "orders/declined")
    assert (replayed.outcome, replayed.state) == ("error", "Charge")
    assert replayed.message == (
        f"terminal status changes: recorded SUCCEEDED, head FAILED (`{OVERSIZE_ERROR}` at `Charge`)"
    )
    assert replay(head, exports, "orders/standard").outcome == "ok"


def test_a_choice_without_default_and_no_match_is_an_error(exports: dict[str, dict[str, Any]]) -> None:
    head = edited(ORDERS, lambda s: s["Route"].pop("Default"))
    outcomes = {name: replay(head, exports, f"orders/{name}") for name in ORDER_RUNS}
    for name in ("standard", "transient", "declined", "no-items"):
        assert (outcomes[name].outcome, outcomes[name].state) == ("error", "Route"), name
        assert outcomes[name].message.startswith("head fails with `States.NoChoiceMatched` at `Route`")
    assert outcomes["express"].outcome == outcomes["rejected"].outcome == "ok"


def test_a_recorded_failure_that_now_succeeds_is_a_terminal_status_change(
    exports: dict[str, dict[str, Any]],
) -> None:
    head = edited(ORDERS, lambda s: s.update({"Reject": {"Type": "Succeed"}}))
    replayed = replay(head, exports, "orders/rejected")
    assert replayed.outcome == "error"
    assert replayed.message == "terminal status changes: recorded FAILED, head SUCCEEDED"
    assert replayed.state == "Reject"


def test_a_map_item_selector_path_that_no_longer_resolves_is_an_error(
    exports: dict[str, dict[str, Any]],
) -> None:
    head = edited(FANOUT, lambda s: s["Batches"]["ItemSelector"].update({"region.$": "$.region"}))
    replayed = replay(head, exports, "fanout/wide")
    assert (replayed.outcome, replayed.state) == ("error", "Batches")
    assert "`$.region`" in replayed.message
    # No items, no ItemSelector evaluated: the same head is fine for that execution.
    assert replay(head, exports, "fanout/empty").outcome == "ok"
    assert replay(head, exports, "fanout/hollow").outcome == "error"


# ------------------------------------------------------------------------------ heads that diverge


def add_fraud_check(states: dict[str, Any]) -> None:
    states["WaitABit"]["Next"] = "FraudCheck"
    states["FraudCheck"] = {"Type": "Task", "Resource": LAMBDA, "ResultPath": "$.fraud", "Next": "Reserve"}


def test_a_new_task_diverges(exports: dict[str, dict[str, Any]]) -> None:
    head = edited(ORDERS, add_fraud_check)
    for name in ("standard", "transient", "declined", "no-items"):
        replayed = replay(head, exports, f"orders/{name}")
        assert (replayed.outcome, replayed.state) == ("diverged", "FraudCheck")
        assert replayed.message == (
            "reaches Task `FraudCheck`, which the recorded execution never ran (new or renamed state)"
        )
    assert replay(head, exports, "orders/express").outcome == "ok"


def test_a_renamed_task_diverges(exports: dict[str, dict[str, Any]]) -> None:
    head = json.loads(json.dumps(ORDERS).replace('"Charge"', '"ChargeV2"'))
    replayed = replay(head, exports, "orders/standard")
    assert (replayed.outcome, replayed.state) == ("diverged", "ChargeV2")
    assert replayed.message == (
        "reaches Task `ChargeV2`, which the recorded execution never ran (new or renamed state); "
        "the recorded execution ran `Charge` there, which head no longer has"
    )


def test_a_different_branch_diverges(exports: dict[str, dict[str, Any]]) -> None:
    head = edited(ORDERS, lambda s: s["Route"]["Choices"][0].update({"Next": "WaitABit"}))
    replayed = replay(head, exports, "orders/express")
    assert (replayed.outcome, replayed.state) == ("diverged", "Route")
    assert replayed.message == (
        "takes a different branch at Choice `Route`: recorded next `Ship`, head next `WaitABit`"
    )


def test_a_new_task_inside_a_nested_map_diverges(exports: dict[str, dict[str, Any]]) -> None:
    def audit_rows(states: dict[str, Any]) -> None:
        inner = states["Batches"]["ItemProcessor"]["States"]["Rows"]["ItemProcessor"]["States"]
        inner["Small"] = {"Type": "Task", "Resource": LAMBDA, "End": True}

    replayed = replay(edited(FANOUT, audit_rows), exports, "fanout/wide")
    assert (replayed.outcome, replayed.state) == ("diverged", "Small")
    assert (
        replayed.message
        == "reaches Task `Small`, which was a Pass state when the execution ran (no recorded result)"
    )

    def add_task_in_rows(states: dict[str, Any]) -> None:
        inner = states["Batches"]["ItemProcessor"]["States"]["Rows"]["ItemProcessor"]["States"]
        inner["Small"]["Next"] = inner["Small"].pop("End") and "Count"
        inner["Count"] = {"Type": "Task", "Resource": LAMBDA, "End": True}

    added = replay(edited(FANOUT, add_task_in_rows), exports, "fanout/hollow")
    assert (added.outcome, added.state) == ("diverged", "Count")
    assert (
        added.message == "reaches Task `Count`, which the recorded execution never ran (new or renamed state)"
    )


# ---------------------------------------------------------------------------------- skips and RUNNING


def test_histories_that_cannot_be_replayed_faithfully_are_skipped(exports: dict[str, dict[str, Any]]) -> None:
    truncated = copy.deepcopy(exports["orders/standard"])
    target = next(e for e in truncated["events"] if e["type"] == "TaskSucceeded")
    target["taskSucceededEventDetails"]["outputDetails"]["truncated"] = True
    express = copy.deepcopy(exports["orders/standard"])
    express["executionArn"] = express["executionArn"].replace(":execution:", ":express:")
    no_data = copy.deepcopy(exports["orders/standard"])
    no_data.pop("input")
    for event in no_data["events"]:
        for details in event.values():
            if isinstance(details, dict):
                details.pop("input", None)
                details.pop("output", None)
    expected = {
        "truncated": f"execution data truncated at event {target['id']}",
        "express": "Express executions have no history; their events are only in CloudWatch Logs",
        "no-data": "exported without execution data (includeExecutionData=false): no input or results to replay",
    }
    for label, data in (("truncated", truncated), ("express", express), ("no-data", no_data)):
        replayed = replay_execution(copy.deepcopy(ORDERS), load_execution(data, label))
        assert (replayed.outcome, replayed.message, replayed.steps) == ("skipped", expected[label], 0)


def test_a_running_execution_replays_up_to_where_it_is(exports: dict[str, dict[str, Any]]) -> None:
    at_task = replay(BLOCKED, exports, "blocked/at-task")
    assert (at_task.outcome, at_task.state) == ("ok", "Approve")
    assert at_task.message == "replayed up to where the execution is now (state `Approve`)"
    at_wait = replay(BLOCKED, exports, "blocked/at-wait")
    assert at_wait.message.startswith("replayed up to where the execution is now (state `Hold`)")
    stopped = replay(BLOCKED, exports, "blocked/stopped")
    assert (stopped.outcome, stopped.state) == ("ok", "Hold")
    assert stopped.message.startswith("replayed up to where the execution was stopped (state `Hold`)")

    # Past the point the execution is at, a new Task has no record yet and that is expected.
    def add_task_after_hold(states: dict[str, Any]) -> None:
        states["Hold"]["Next"] = "Invoice"
        states["Invoice"] = {"Type": "Task", "Resource": LAMBDA, "Next": "Finish"}

    assert replay(edited(BLOCKED, add_task_after_hold), exports, "blocked/at-wait").outcome == "ok"
    broken = replay(
        edited(BLOCKED, lambda s: s["Prep"].update({"InputPath": "$.missing"})), exports, "blocked/at-task"
    )
    assert (broken.outcome, broken.state) == ("error", "Prep")

    def fail_before_approval(states: dict[str, Any]) -> None:
        states["Prep"]["Next"] = "Closed"
        states["Closed"] = {"Type": "Fail", "Error": "Orders.Closed"}

    closed = replay(edited(BLOCKED, fail_before_approval), exports, "blocked/at-task")
    assert (closed.outcome, closed.state) == ("error", "Closed")
    assert closed.message == (
        "head fails with `Orders.Closed` at `Closed` before reaching `Approve`, where the recorded execution "
        "is now (after it goes from `Prep` to `Closed` where the recorded execution went to `Approve`)"
    )
    renamed = json.loads(json.dumps(BLOCKED).replace('"Approve"', '"Approval"'))
    moved = replay(renamed, exports, "blocked/at-task")
    assert (moved.outcome, moved.state) == ("diverged", "Approval")


def test_a_history_cut_after_a_task_was_entered_replays_up_to_that_task(
    exports: dict[str, dict[str, Any]],
) -> None:
    cut = copy.deepcopy(exports["orders/standard"])
    entered = [e for e in cut["events"] if e["type"] == "TaskStateEntered"][1]
    cut["events"] = [e for e in cut["events"] if e["id"] <= entered["id"]]
    for key in ("status", "stopDate", "output", "outputDetails"):
        cut.pop(key, None)
    recorded = load_execution(cut, "cut.json")
    assert (recorded.status, recorded.open, recorded.closed) == ("RUNNING", True, None)
    replayed = replay_execution(copy.deepcopy(ORDERS), recorded)
    assert (replayed.outcome, replayed.state) == ("ok", "Charge")
    assert replayed.message == "replayed up to where the execution is now (state `Charge`)"
    assert replay_execution(edited(ORDERS, add_fraud_check), recorded).outcome == "diverged"
