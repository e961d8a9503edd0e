"""Semantics of the ASL interpreter, the history reader and the replay verdicts, on hand-made data."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import pytest

from bot.engines.stepfunctions.history import HistoryUnreadable, epoch, load_execution
from bot.engines.stepfunctions.interpreter import (
    Run,
    ScriptedOracle,
    TaskFailure,
    TaskOutcome,
    TaskSuccess,
    run_definition,
)
from bot.engines.stepfunctions.replayer import replay_execution

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:work"
SECRET = "s3cr3t-payload-7781"


def machine(states: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states, **top}


def run(
    definition: dict[str, Any], data: Any = None, results: dict[str, list[TaskOutcome]] | None = None
) -> Run:
    return run_definition(definition, {} if data is None else data, ScriptedOracle(results or {}))


def ok(value: Any) -> TaskSuccess:
    return TaskSuccess(value)


def names(result: Run) -> list[str]:
    return [visit.name for visit in result.visits]


# ------------------------------------------------------------------------------------------- Choice


def choice(rule: dict[str, Any]) -> dict[str, Any]:
    return machine(
        {
            "C": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Succeed"},
        }
    )


DATA = {
    "s": "banana",
    "t": "cherry",
    "n": 5,
    "f": 5.0,
    "b": True,
    "nil": None,
    "ts": "2024-03-14T01:59:00Z",
    "ts2": "2024-03-14T02:59:00+01:00",
    "later": "2024-03-15T00:00:00.123456789Z",
    "file": "log-2024.txt",
    "star": "a*b",
    "slash": "a\\b",
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.s", "StringEquals": "banana"}, True),
        ({"Variable": "$.s", "StringEquals": "apple"}, False),
        ({"Variable": "$.n", "StringEquals": "5"}, False),
        ({"Variable": "$.s", "StringLessThan": "cherry"}, True),
        ({"Variable": "$.s", "StringGreaterThan": "cherry"}, False),
        ({"Variable": "$.s", "StringLessThanEquals": "banana"}, True),
        ({"Variable": "$.t", "StringGreaterThanEquals": "cherry"}, True),
        ({"Variable": "$.s", "StringEqualsPath": "$.t"}, False),
        ({"Variable": "$.s", "StringLessThanPath": "$.t"}, True),
        ({"Variable": "$.file", "StringMatches": "log-*.txt"}, True),
        ({"Variable": "$.file", "StringMatches": "log-*.csv"}, False),
        ({"Variable": "$.star", "StringMatches": "a\\*b"}, True),
        ({"Variable": "$.file", "StringMatches": "log\\*"}, False),
        ({"Variable": "$.slash", "StringMatches": "a\\\\b"}, True),
        ({"Variable": "$.n", "NumericEquals": 5}, True),
        ({"Variable": "$.f", "NumericEquals": 5}, True),
        ({"Variable": "$.b", "NumericEquals": 1}, False),
        ({"Variable": "$.n", "NumericLessThan": 5}, False),
        ({"Variable": "$.n", "NumericGreaterThan": 4.5}, True),
        ({"Variable": "$.n", "NumericLessThanEquals": 5}, True),
        ({"Variable": "$.n", "NumericGreaterThanEquals": 6}, False),
        ({"Variable": "$.n", "NumericEqualsPath": "$.f"}, True),
        ({"Variable": "$.n", "NumericLessThanPath": "$.f"}, False),
        ({"Variable": "$.s", "NumericEquals": 5}, False),
        ({"Variable": "$.b", "BooleanEquals": True}, True),
        ({"Variable": "$.n", "BooleanEquals": True}, False),
        ({"Variable": "$.b", "BooleanEqualsPath": "$.b"}, True),
        ({"Variable": "$.ts", "TimestampEquals": "2024-03-14T01:59:00Z"}, True),
        ({"Variable": "$.ts", "TimestampEqualsPath": "$.ts2"}, True),
        ({"Variable": "$.ts", "TimestampLessThan": "2024-03-14T01:59:00.5Z"}, True),
        ({"Variable": "$.later", "TimestampGreaterThanPath": "$.ts"}, True),
        ({"Variable": "$.ts", "TimestampLessThanEqualsPath": "$.ts2"}, True),
        ({"Variable": "$.ts", "TimestampGreaterThanEquals": "2025-01-01T00:00:00Z"}, False),
        ({"Variable": "$.s", "TimestampEquals": "2024-03-14T01:59:00Z"}, False),
        ({"Variable": "$.nil", "IsNull": True}, True),
        ({"Variable": "$.n", "IsNull": True}, False),
        ({"Variable": "$.absent", "IsPresent": False}, True),
        ({"Variable": "$.nil", "IsPresent": True}, True),
        ({"Variable": "$.f", "IsNumeric": True}, True),
        ({"Variable": "$.b", "IsNumeric": True}, False),
        ({"Variable": "$.s", "IsString": True}, True),
        ({"Variable": "$.b", "IsBoolean": True}, True),
        ({"Variable": "$.later", "IsTimestamp": True}, True),
        ({"Variable": "$.s", "IsTimestamp": True}, False),
        (
            {"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.b", "BooleanEquals": False}]},
            False,
        ),
        ({"Or": [{"Variable": "$.n", "NumericEquals": 1}, {"Variable": "$.b", "BooleanEquals": True}]}, True),
        ({"Not": {"Variable": "$.s", "StringEquals": "banana"}}, False),
        (
            {
                "And": [
                    {"Not": {"Variable": "$.absent", "IsPresent": True}},
                    {
                        "Or": [
                            {"Variable": "$.s", "StringMatches": "ban*"},
                            {"Variable": "$.n", "NumericEquals": 0},
                        ]
                    },
                ]
            },
            True,
        ),
    ],
)
def test_choice_operators(rule: dict[str, Any], expected: bool) -> None:
    result = run(choice(rule), DATA)
    assert result.status == "SUCCEEDED", result.message
    assert names(result) == ["C", "Yes" if expected else "No"]
    assert result.output == DATA


def test_choice_on_a_missing_variable_is_a_runtime_error_naming_the_path() -> None:
    result = run(choice({"Variable": "$.absent", "StringEquals": "x"}), DATA)
    assert (result.status, result.error, result.state) == ("FAILED", "States.Runtime", "C")
    assert result.definition_error
    assert "$.absent" in result.message


def test_choice_without_match_or_default_fails_with_no_choice_matched() -> None:
    definition = choice({"Variable": "$.n", "NumericEquals": 1})
    del definition["States"]["C"]["Default"]
    result = run(definition, DATA)
    assert (result.status, result.error, result.state) == ("FAILED", "States.NoChoiceMatched", "C")


def test_choice_reads_workflow_variables_and_applies_input_and_output_path() -> None:
    definition = machine(
        {
            "Set": {"Type": "Pass", "Assign": {"limit": 3}, "Next": "C"},
            "C": {
                "Type": "Choice",
                "InputPath": "$.order",
                "OutputPath": "$.id",
                "Choices": [{"Variable": "$.qty", "NumericGreaterThanPath": "$limit", "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Succeed"},
            "Small": {"Type": "Succeed"},
        }
    )
    result = run(definition, {"order": {"id": "o1", "qty": 5}})
    assert names(result) == ["Set", "C", "Big"]
    assert result.output == "o1"


# ------------------------------------------------------------------------------------- intrinsics


def intrinsic(expression: str, data: Any = None) -> Run:
    definition = machine({"P": {"Type": "Pass", "Parameters": {"r.$": expression}, "End": True}})
    return run(definition, data if data is not None else {"name": "Ann", "age": 30, "flag": True})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("States.Format('Hello {}, you are {}', $.name, $.age)", "Hello Ann, you are 30"),
        ("States.Format('\\{literal\\} {} \\'q\\'', $.name)", "{literal} Ann 'q'"),
        ("States.Format('{} {}', $.flag, States.ArrayLength(States.Array(1, 2)))", "true 2"),
        ("States.StringToJson('{\"a\": [1, 2]}')", {"a": [1, 2]}),
        ("States.JsonToString(States.Array($.name, $.age))", '["Ann",30]'),
        ("States.Array(1, 'two', $.flag, States.Array(3), null)", [1, "two", True, [3], None]),
        ("States.ArrayPartition(States.ArrayRange(1, 5, 1), 2)", [[1, 2], [3, 4], [5]]),
        ("States.ArrayContains(States.Array(1, 2), 2)", True),
        ("States.ArrayContains(States.Array(1, 2), true)", False),
        ("States.ArrayRange(1, 9, 2)", [1, 3, 5, 7, 9]),
        ("States.ArrayRange(5, 1, -2)", [5, 3, 1]),
        ("States.ArrayGetItem(States.Array('a', 'b'), 1)", "b"),
        ("States.ArrayLength(States.Array())", 0),
        ("States.ArrayUnique(States.Array(1, 2, 1, '1', true, 1.0))", [1, 2, "1", True]),
        ("States.Base64Encode('Data to encode')", "RGF0YSB0byBlbmNvZGU="),
        ("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "Data to encode"),
        ("States.Hash('input data', 'SHA-1')", hashlib.sha1(b"input data").hexdigest()),
        ("States.Hash($.name, 'MD5')", hashlib.md5(b"Ann").hexdigest()),
        (
            'States.JsonMerge(States.StringToJson(\'{"a":1,"b":{"x":1}}\'), States.StringToJson(\'{"b":{"y":2}}\'), false)',
            {"a": 1, "b": {"y": 2}},
        ),
        ("States.MathAdd($.age, -31)", -1),
        ("States.StringSplit('a,b;;c', ',;')", ["a", "b", "c"]),
        ("$.age", 30),
    ],
)
def test_intrinsic_functions(expression: str, expected: Any) -> None:
    result = intrinsic(expression)
    assert result.status == "SUCCEEDED", result.message
    assert result.output == {"r": expected}
    assert type(result.output["r"]) is type(expected)


def test_random_and_uuid_are_deterministic_and_well_formed() -> None:
    first = intrinsic("States.Array(States.MathRandom(1, 10), States.UUID(), States.MathRandom(0, 1000, 7))")
    second = intrinsic("States.Array(States.MathRandom(1, 10), States.UUID(), States.MathRandom(0, 1000, 7))")
    assert first.output == second.output
    number, uuid, seeded = first.output["r"]
    assert 1 <= number < 10 and 0 <= seeded < 1000
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("States.ArrayGetItem(States.Array(1), 4)", "index is out of range"),
        ("States.ArrayRange(1, 5000, 1)", "more than 1,000"),
        ("States.Format('{} {}', $.name)", "more `{}` placeholders"),
        ("States.Format('{}', $.name, $.age)", "more arguments"),
        ("States.Nope(1)", "unknown intrinsic function `States.Nope`"),
        ("States.StringToJson($.name)", "not JSON text"),
        ("States.Hash($.name, 'CRC32')", "algorithm must be one of"),
        ("States.JsonMerge($.a, $.a, true)", "shallow merge"),
        ("States.Format('unterminated)", "unterminated string"),
        ("States.ArrayLength($.missing)", "$.missing"),
    ],
)
def test_intrinsic_failures_are_runtime_errors_that_name_the_function_not_the_data(
    expression: str, reason: str
) -> None:
    result = intrinsic(expression, {"name": SECRET, "age": 1, "a": {"k": SECRET}})
    assert (result.status, result.error, result.state) == ("FAILED", "States.Runtime", "P")
    assert reason in result.message
    assert SECRET not in result.message


# ------------------------------------------------------------------------------------------- paths


def test_input_path_parameters_result_selector_result_path_and_output_path() -> None:
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": LAMBDA,
                "InputPath": "$.order",
                "Parameters": {
                    "id.$": "$.id",
                    "static": 1,
                    "nested": {"qty.$": "$.qty"},
                    "list": [{"x.$": "$.id"}],
                },
                "ResultSelector": {"receipt.$": "$.Payload.receipt", "code.$": "$.StatusCode"},
                "ResultPath": "$.order.charge",
                "OutputPath": "$.order",
                "End": True,
            }
        }
    )
    oracle = ScriptedOracle({"T": [ok({"StatusCode": 200, "Payload": {"receipt": "r-1"}})]})
    result = run_definition(definition, {"order": {"id": "o1", "qty": 2}, "other": 1}, oracle)
    assert result.status == "SUCCEEDED", result.message
    assert oracle.calls[0][4] == {"id": "o1", "static": 1, "nested": {"qty": 2}, "list": [{"x": "o1"}]}
    assert result.output == {"id": "o1", "qty": 2, "charge": {"receipt": "r-1", "code": 200}}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"ResultPath": None}, {"a": 1}),
        ({"ResultPath": "$.r"}, {"a": 1, "r": {"x": 1}}),
        ({"ResultPath": "$.deep.er"}, {"a": 1, "deep": {"er": {"x": 1}}}),
        ({"ResultPath": "$"}, {"x": 1}),
        ({"OutputPath": None}, {}),
        ({"InputPath": None, "ResultPath": "$.r"}, {"a": 1, "r": {"x": 1}}),
        ({"InputPath": None, "Parameters": {"in.$": "$"}}, {"in": {}}),
    ],
)
def test_null_and_merging_paths(fields: dict[str, Any], expected: Any) -> None:
    state = {"Type": "Pass", "Result": {"x": 1}, "End": True, **fields}
    if "Parameters" in fields:
        del state["Result"]
    result = run(machine({"P": state}), {"a": 1})
    assert result.status == "SUCCEEDED", result.message
    assert result.output == expected


def test_result_path_into_a_non_object_is_a_catchable_result_path_failure() -> None:
    state = {"Type": "Task", "Resource": LAMBDA, "ResultPath": "$.a.b", "End": True}
    result = run(machine({"T": state}), {"a": "text"}, {"T": [ok(1)]})
    assert (result.status, result.error) == ("FAILED", "States.ResultPathMatchFailure")
    state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Done"}]
    caught = run(machine({"T": state, "Done": {"Type": "Succeed"}}), {"a": "text"}, {"T": [ok(1)]})
    assert caught.status == "SUCCEEDED"
    assert caught.output["err"]["Error"] == "States.ResultPathMatchFailure"


def test_indefinite_paths_select_arrays() -> None:
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Parameters": {
                    "ids.$": "$.items[*].id",
                    "big.$": "$.items[?(@.n > 1)].id",
                    "first.$": "$.items[0].id",
                },
                "End": True,
            }
        }
    )
    result = run(definition, {"items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}]})
    assert result.output == {"ids": ["a", "b"], "big": ["b"], "first": "a"}


def test_output_path_that_does_not_resolve_names_the_field() -> None:
    result = run(machine({"P": {"Type": "Pass", "OutputPath": "$.nope", "End": True}}), {"a": SECRET})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "OutputPath" in result.message and "$.nope" in result.message
    assert SECRET not in result.message


def test_context_object() -> None:
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Parameters": {
                    "input.$": "$$.Execution.Input",
                    "name.$": "$$.Execution.Name",
                    "state.$": "$$.State.Name",
                    "machine.$": "$$.StateMachine.Name",
                    "start.$": "$$.Execution.StartTime",
                },
                "End": True,
            }
        }
    )
    result = run(definition, {"a": 1})
    assert result.output == {
        "input": {"a": 1},
        "name": "replay",
        "state": "P",
        "machine": "StateMachine",
        "start": "1970-01-01T00:00:00.000Z",
    }


# -------------------------------------------------------------------------------------- Retry/Catch


def task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": LAMBDA, "End": True, **fields}


def test_retry_asks_for_each_attempt_with_the_retry_count_in_context() -> None:
    definition = machine(
        {
            "T": task(
                Parameters={"try.$": "$$.State.RetryCount"},
                Retry=[{"ErrorEquals": ["MyApp.Transient"], "MaxAttempts": 2, "IntervalSeconds": 300}],
            )
        }
    )
    oracle = ScriptedOracle(
        {"T": [TaskFailure("MyApp.Transient"), TaskFailure("MyApp.Transient"), ok("done")]}
    )
    started = time.monotonic()
    result = run_definition(definition, {}, oracle)
    assert time.monotonic() - started < 1
    assert (result.status, result.output) == ("SUCCEEDED", "done")
    assert [(call[3], call[4]) for call in oracle.calls] == [
        (0, {"try": 0}),
        (1, {"try": 1}),
        (2, {"try": 2}),
    ]


def test_max_attempts_zero_never_retries_and_default_is_three() -> None:
    never = machine({"T": task(Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}])})
    oracle = ScriptedOracle({"T": [TaskFailure("E"), ok(1)]})
    assert run_definition(never, {}, oracle).error == "E"
    assert len(oracle.calls) == 1
    default = machine({"T": task(Retry=[{"ErrorEquals": ["States.ALL"]}])})
    oracle = ScriptedOracle({"T": [TaskFailure("E")] * 4 + [ok(1)]})
    assert run_definition(default, {}, oracle).status == "FAILED"
    assert len(oracle.calls) == 4


def test_the_first_matching_retrier_decides_even_when_used_up() -> None:
    definition = machine(
        {
            "T": task(
                Retry=[
                    {"ErrorEquals": ["MyApp.Transient"], "MaxAttempts": 1},
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5},
                ]
            )
        }
    )
    oracle = ScriptedOracle({"T": [TaskFailure("MyApp.Transient")] * 3 + [ok(1)]})
    result = run_definition(definition, {}, oracle)
    assert (result.status, result.error, len(oracle.calls)) == ("FAILED", "MyApp.Transient", 2)


@pytest.mark.parametrize(
    ("error", "pattern", "matches"),
    [
        ("MyApp.Error", "States.TaskFailed", True),
        ("States.Timeout", "States.TaskFailed", False),
        ("States.HeartbeatTimeout", "States.TaskFailed", False),
        ("States.HeartbeatTimeout", "States.Timeout", True),
        ("States.Timeout", "States.ALL", True),
        ("MyApp.Error", "MyApp.Other", False),
    ],
)
def test_error_name_matching(error: str, pattern: str, matches: bool) -> None:
    definition = machine(
        {"T": task(Catch=[{"ErrorEquals": [pattern], "Next": "C"}]), "C": {"Type": "Succeed"}}
    )
    result = run(definition, {}, {"T": [TaskFailure(error)]})
    assert (result.status == "SUCCEEDED") is matches
    assert result.error == (None if matches else error)


def test_states_all_does_not_catch_runtime_errors() -> None:
    definition = machine(
        {
            "T": task(
                Parameters={"x.$": "$.missing"},
                Retry=[{"ErrorEquals": ["States.ALL"]}],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "C"}],
            ),
            "C": {"Type": "Succeed"},
        }
    )
    oracle = ScriptedOracle({"T": [ok(1)]})
    result = run_definition(definition, {}, oracle)
    assert (result.status, result.error, oracle.calls) == ("FAILED", "States.Runtime", [])


def test_first_matching_catcher_wins_and_its_output_skips_output_path() -> None:
    definition = machine(
        {
            "T": task(
                OutputPath="$.never",
                Catch=[
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["MyApp.Error", "Other2"], "ResultPath": "$.error", "Next": "Right"},
                    {"ErrorEquals": ["States.ALL"], "Next": "Wrong"},
                ],
            ),
            "Wrong": {"Type": "Fail"},
            "Right": {"Type": "Succeed"},
        }
    )
    result = run(definition, {"order": 1}, {"T": [TaskFailure("MyApp.Error", "boom")]})
    assert names(result) == ["T", "Right"]
    assert result.output == {"order": 1, "error": {"Error": "MyApp.Error", "Cause": "boom"}}


# -------------------------------------------------------------------------------------- Map, Parallel


def test_map_with_item_selector_context_and_scopes() -> None:
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {
                    "value.$": "$$.Map.Item.Value",
                    "index.$": "$$.Map.Item.Index",
                    "tag.$": "$.tag",
                },
                "ItemProcessor": {"StartAt": "T", "States": {"T": task()}},
                "ResultPath": "$.results",
                "End": True,
            }
        }
    )
    oracle = ScriptedOracle({"T": [ok("r0"), ok("r1")]})
    result = run_definition(definition, {"items": ["a", "b"], "tag": "x"}, oracle)
    assert result.output == {"items": ["a", "b"], "tag": "x", "results": ["r0", "r1"]}
    assert [(c[1], c[2], c[4]) for c in oracle.calls] == [
        ((0,), 0, {"value": "a", "index": 0, "tag": "x"}),
        ((1,), 0, {"value": "b", "index": 1, "tag": "x"}),
    ]


def test_legacy_iterator_with_parameters_and_nested_map_scopes() -> None:
    inner = {
        "Type": "Map",
        "ItemsPath": "$.row",
        "Iterator": {"StartAt": "T", "States": {"T": task()}},
        "End": True,
    }
    definition = machine(
        {
            "Outer": {
                "Type": "Map",
                "ItemsPath": "$",
                "Parameters": {"row.$": "$$.Map.Item.Value"},
                "Iterator": {"StartAt": "Inner", "States": {"Inner": inner}},
                "End": True,
            }
        }
    )
    oracle = ScriptedOracle({"T": [ok(1), ok(2), ok(3)]})
    result = run_definition(definition, [[10, 20], [30]], oracle)
    assert result.output == [[1, 2], [3]]
    assert [(c[1], c[4]) for c in oracle.calls] == [((0, 0), 10), ((0, 1), 20), ((1, 0), 30)]


def test_map_iteration_failure_fails_the_map_and_can_be_caught() -> None:
    processor = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "F"}],
                "Default": "S",
            },
            "F": {"Type": "Fail", "Error": "Item.Bad", "Cause": SECRET},
            "S": {"Type": "Succeed"},
        },
    }
    definition = machine({"M": {"Type": "Map", "ItemProcessor": processor, "End": True}})
    failed = run(definition, [1, 2, 3])
    assert (failed.status, failed.error, failed.state) == ("FAILED", "Item.Bad", "F")
    assert names(failed) == ["M", "C", "S", "C", "F"]
    assert SECRET not in failed.message
    definition["States"]["M"]["Catch"] = [{"ErrorEquals": ["States.BranchFailed"], "Next": "After"}]
    definition["States"]["M"].pop("End")
    definition["States"]["M"]["Next"] = "Never"
    definition["States"]["After"] = {"Type": "Succeed"}
    caught = run(definition, [1, 2, 3])
    assert caught.status == "SUCCEEDED"
    assert caught.output == {"Error": "Item.Bad", "Cause": SECRET}


def test_map_items_must_be_an_array_and_item_reader_is_unsupported() -> None:
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.x",
                "ItemProcessor": {"StartAt": "S", "States": {"S": {"Type": "Succeed"}}},
                "End": True,
            }
        }
    )
    result = run(definition, {"x": {"not": "array"}})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "ItemsPath `$.x`" in result.message
    definition["States"]["M"]["ItemReader"] = {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {}}
    unsupported = run(definition, {"x": []})
    assert (unsupported.status, unsupported.state) == ("UNSUPPORTED", "M")
    assert "ItemReader" in unsupported.message


def test_distributed_map_tolerated_failures() -> None:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "T",
        "States": {"T": task()},
    }
    definition = machine(
        {"M": {"Type": "Map", "ItemProcessor": processor, "ToleratedFailureCount": 1, "End": True}}
    )
    result = run(definition, [1, 2, 3], {"T": [ok("a"), TaskFailure("E", "c"), ok("b")]})
    assert result.status == "SUCCEEDED"
    assert result.output == ["a", {"Error": "E", "Cause": "c"}, "b"]
    over = run(definition, [1, 2, 3], {"T": [TaskFailure("E"), TaskFailure("E"), ok("b")]})
    assert (over.status, over.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")


def test_parallel_outputs_branch_results_and_fails_with_the_branch_error() -> None:
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "Parameters": {"v.$": "$.v"},
                "Branches": [
                    {"StartAt": "A", "States": {"A": task()}},
                    {"StartAt": "B", "States": {"B": {"Type": "Pass", "InputPath": "$.v", "End": True}}},
                ],
                "ResultSelector": {"first.$": "$[0]", "second.$": "$[1]"},
                "End": True,
            }
        }
    )
    result = run(definition, {"v": 7, "w": 1}, {"A": [ok("a")]})
    assert result.output == {"first": "a", "second": 7}
    failed = run(definition, {"v": 7}, {"A": [TaskFailure("Branch.Boom", SECRET)]})
    assert (failed.status, failed.error, failed.state) == ("FAILED", "Branch.Boom", "A")
    pending = run(definition, {"v": 7})
    assert (pending.status, pending.state) == ("PENDING", "A")
    assert [(p.state, p.visit, p.attempt) for p in pending.pending] == [("A", 0, 0)]


# --------------------------------------------------------------------------------------- variables


def test_variables_assign_reference_and_swap_with_old_values() -> None:
    definition = machine(
        {
            "Set": {"Type": "Pass", "Assign": {"a": 1, "b.$": "$.b", "obj": {"k.$": "$.b"}}, "Next": "Swap"},
            "Swap": {"Type": "Pass", "Assign": {"a.$": "$b", "b.$": "$a"}, "Next": "Read"},
            "Read": {"Type": "Pass", "Parameters": {"a.$": "$a", "b.$": "$b", "k.$": "$obj.k"}, "End": True},
        }
    )
    assert run(definition, {"b": 2}).output == {"a": 2, "b": 1, "k": 2}


def test_task_assign_sees_the_raw_result() -> None:
    definition = machine(
        {
            "T": task(
                Assign={"raw.$": "$.Payload"},
                ResultSelector={"s.$": "$.StatusCode"},
                Next="R",
                End=False,
            ),
            "R": {"Type": "Pass", "Parameters": {"raw.$": "$raw", "out.$": "$"}, "End": True},
        }
    )
    del definition["States"]["T"]["End"]
    result = run(definition, {}, {"T": [ok({"StatusCode": 200, "Payload": {"p": 1}})]})
    assert result.output == {"raw": {"p": 1}, "out": {"s": 200}}


def test_inner_scopes_read_outer_variables_but_cannot_assign_them_or_leak() -> None:
    reading = machine(
        {
            "Set": {"Type": "Pass", "Assign": {"rate": 2}, "Next": "M"},
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "I",
                    "States": {
                        "I": {
                            "Type": "Pass",
                            "Assign": {"local": 1},
                            "Parameters": {"r.$": "$rate"},
                            "End": True,
                        }
                    },
                },
                "Next": "After",
            },
            "After": {"Type": "Pass", "Parameters": {"l.$": "$local"}, "End": True},
        }
    )
    leaked = run(reading, [1, 2])
    assert names(leaked) == ["Set", "M", "I", "I", "After"]
    assert (leaked.status, leaked.error, leaked.state) == ("FAILED", "States.Runtime", "After")
    assert "`$local` is not defined" in leaked.message
    reading["States"]["M"]["ItemProcessor"]["States"]["I"]["Assign"] = {"rate": 3}
    assigning = run(reading, [1])
    assert (assigning.error, assigning.state) == ("States.Runtime", "I")
    assert "outer scope" in assigning.message


# ----------------------------------------------------------------------------------------- JSONata


def test_jsonata_pass_task_and_variables() -> None:
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Assign": {"total": "{% $sum($states.input.items.price) %}"},
                "Output": {"n": "{% $count($states.input.items) %}", "missing": "{% $states.input.nope %}"},
                "Next": "T",
            },
            "T": {
                "Type": "Task",
                "Resource": LAMBDA,
                "Arguments": {
                    "total": "{% $total %}",
                    "n": "{% $states.input.n %}",
                    "who": "{% $states.context.Execution.Name %}",
                },
                "Output": "{% $merge([$states.input, {'charged': $states.result.ok}]) %}",
                "Assign": {"last": "{% $states.result %}"},
                "End": True,
            },
        },
        QueryLanguage="JSONata",
    )
    oracle = ScriptedOracle({"T": [ok({"ok": True})]})
    result = run_definition(definition, {"items": [{"price": 2}, {"price": 3.5}]}, oracle)
    assert result.status == "SUCCEEDED", result.message
    assert oracle.calls[0][4] == {"total": 5.5, "n": 2, "who": "replay"}
    assert result.output == {"n": 2, "charged": True}


def test_jsonata_choice_catch_map_and_aws_functions() -> None:
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [
                    {
                        "Condition": "{% $states.input.n > 1 %}",
                        "Next": "M",
                        "Output": "{% $states.input.list %}",
                    }
                ],
                "Default": "Never",
            },
            "M": {
                "Type": "Map",
                "QueryLanguage": "JSONata",
                "Items": "{% $states.input %}",
                "ItemSelector": {
                    "v": "{% $states.context.Map.Item.Value %}",
                    "i": "{% $states.context.Map.Item.Index %}",
                },
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": True}},
                },
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "Output": {"error": "{% $states.errorOutput.Error %}", "in": "{% $states.input %}"},
                        "Assign": {"failed": True},
                        "Next": "After",
                    }
                ],
                "Next": "After",
            },
            "After": {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": {
                    "caught": "{% $states.input %}",
                    "failed": "{% $failed %}",
                    "parts": "{% $partition([1,2,3], 2) %}",
                    "range": "{% $range(0, 4, 2) %}",
                    "hash": "{% $hash('abc', 'SHA-256') %}",
                    "parsed": "{% $parse('{\"a\": [1]}') %}",
                },
                "End": True,
            },
            "Never": {"Type": "Fail"},
        }
    )
    oracle = ScriptedOracle({"T": [ok(1), TaskFailure("Item.Failed")]})
    result = run_definition(definition, {"n": 2, "list": ["x", "y"]}, oracle)
    assert result.status == "SUCCEEDED", result.message
    assert [c[4] for c in oracle.calls] == [{"v": "x", "i": 0}, {"v": "y", "i": 1}]
    assert result.output == {
        "caught": {"error": "Item.Failed", "in": ["x", "y"]},
        "failed": True,
        "parts": [[1, 2], [3]],
        "range": [0, 2, 4],
        "hash": hashlib.sha256(b"abc").hexdigest(),
        "parsed": {"a": [1]},
    }


@pytest.mark.parametrize(
    "state",
    [
        {"Type": "Pass", "Output": "{% $number($states.input.s) %}", "End": True},
        {"Type": "Pass", "Output": "{% $states.input.nothing %}", "End": True},
        {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.s %}", "Next": "X"}]},
        {"Type": "Wait", "Seconds": "{% $states.input.s %}", "End": True},
        {"Type": "Pass", "Output": "{% $states.input.( %}", "End": True},
    ],
)
def test_jsonata_failures_are_query_evaluation_errors_without_data(state: dict[str, Any]) -> None:
    result = run(machine({"S": state, "X": {"Type": "Succeed"}}, QueryLanguage="JSONata"), {"s": SECRET})
    assert (result.status, result.error, result.state) == ("FAILED", "States.QueryEvaluationError", "S")
    assert result.definition_error
    assert SECRET not in result.message


def test_jsonata_errors_are_catchable() -> None:
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": LAMBDA,
                "Output": "{% $error('nope') %}",
                "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "C"}],
                "End": True,
            },
            "C": {"Type": "Succeed"},
        },
        QueryLanguage="JSONata",
    )
    result = run(definition, {}, {"T": [ok(1)]})
    assert names(result) == ["T", "C"]


# -------------------------------------------------------------------------------- Wait, Fail, budget


def test_wait_never_sleeps_and_checks_its_fields() -> None:
    started = time.monotonic()
    waited = run(
        machine(
            {
                "W": {"Type": "Wait", "Seconds": 99999999, "Next": "X"},
                "X": {"Type": "Wait", "Timestamp": "2999-01-01T00:00:00Z", "End": True},
            }
        ),
        {"a": 1},
    )
    assert waited.output == {"a": 1}
    assert time.monotonic() - started < 1
    for field, value, data in [
        ("SecondsPath", "$.s", {"s": "ten"}),
        ("SecondsPath", "$.nope", {}),
        ("TimestampPath", "$.t", {"t": "yesterday"}),
        ("Seconds", -1, {}),
    ]:
        result = run(machine({"W": {"Type": "Wait", field: value, "End": True}}), data)
        assert (result.status, result.error, result.state) == ("FAILED", "States.Runtime", "W"), field


def test_fail_state_error_and_cause_paths_and_messages_without_cause() -> None:
    static = run(machine({"F": {"Type": "Fail", "Error": "Order.Rejected", "Cause": SECRET}}))
    assert (static.status, static.error, static.cause, static.state) == (
        "FAILED",
        "Order.Rejected",
        SECRET,
        "F",
    )
    assert SECRET not in static.message
    dynamic = run(
        machine({"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('because {}', $.c)"}}),
        {"e": "Dyn.Error", "c": SECRET},
    )
    assert (dynamic.error, dynamic.cause) == ("Dyn.Error", f"because {SECRET}")
    assert SECRET not in dynamic.message


def test_a_choice_loop_exceeds_the_step_budget() -> None:
    loop = machine(
        {
            "A": {"Type": "Pass", "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "A"}],
                "Default": "D",
            },
            "D": {"Type": "Succeed"},
        }
    )
    result = run_definition(loop, {"go": True}, ScriptedOracle({}), max_steps=500)
    assert (result.status, result.steps) == ("BUDGET_EXCEEDED", 501)
    assert "500 state transitions" in result.message
    assert run_definition(loop, {"go": True}, ScriptedOracle({})).status == "BUDGET_EXCEEDED"
    assert run(loop, {"go": False}).status == "SUCCEEDED"


def test_a_missing_next_state_is_an_invalid_definition() -> None:
    result = run(machine({"A": {"Type": "Pass", "Next": "Gone"}}))
    assert (result.status, result.state) == ("INVALID", "Gone")
    assert "`A` names state `Gone`, which does not exist" in result.message


# ------------------------------------------------------------------------------- history and replay


def history(steps: list[tuple[str, dict[str, Any]]], **top: Any) -> dict[str, Any]:
    """A hand-made export: events chained one after the other, `*EventDetails` named after the type."""
    events = []
    for number, (kind, details) in enumerate(steps, start=1):
        key = {
            "ExecutionStarted": "executionStartedEventDetails",
            "ExecutionSucceeded": "executionSucceededEventDetails",
            "ExecutionFailed": "executionFailedEventDetails",
            "TaskSucceeded": "taskSucceededEventDetails",
            "TaskFailed": "taskFailedEventDetails",
            "TaskScheduled": "taskScheduledEventDetails",
        }.get(kind, "stateEnteredEventDetails" if kind.endswith("Entered") else "stateExitedEventDetails")
        event = {
            "id": number,
            "previousEventId": number - 1,
            "type": kind,
            "timestamp": 1_700_000_000 + number,
        }
        if details:
            event[key] = details
        events.append(event)
    return {"events": events, **top}


def entered(name: str, data: Any, kind: str = "Pass") -> tuple[str, dict[str, Any]]:
    return (f"{kind}StateEntered", {"name": name, "input": json.dumps(data)})


def exited(name: str, data: Any, kind: str = "Pass") -> tuple[str, dict[str, Any]]:
    return (f"{kind}StateExited", {"name": name, "output": json.dumps(data)})


ORDER = {"id": "o1", "note": SECRET}
CHARGE_DEF = machine(
    {
        "Charge": task(
            Retry=[{"ErrorEquals": ["MyApp.Transient"], "MaxAttempts": 2}], Next="Done", End=False
        ),
        "Done": {"Type": "Succeed"},
    }
)
del CHARGE_DEF["States"]["Charge"]["End"]


def charge_history(*, transient: bool = True, final: str = "ok") -> dict[str, Any]:
    steps: list[tuple[str, dict[str, Any]]] = [
        ("ExecutionStarted", {"input": json.dumps(ORDER)}),
        entered("Charge", ORDER, "Task"),
        ("TaskScheduled", {"resource": "invoke"}),
    ]
    if transient:
        steps += [("TaskFailed", {"error": "MyApp.Transient", "cause": SECRET}), ("TaskScheduled", {})]
    if final == "ok":
        steps += [
            ("TaskSucceeded", {"output": json.dumps({"paid": SECRET})}),
            exited("Charge", {"paid": SECRET}, "Task"),
            entered("Done", {"paid": SECRET}, "Succeed"),
            exited("Done", {"paid": SECRET}, "Succeed"),
            ("ExecutionSucceeded", {"output": json.dumps({"paid": SECRET})}),
        ]
    return history(
        steps,
        executionArn="arn:aws:states:us-east-1:123456789012:execution:Orders-AbCdEf123456:run-1",
        stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:Orders-AbCdEf123456:3",
    )


def test_history_reads_identity_status_attempts_and_visits() -> None:
    execution = load_execution(charge_history(), "orders/run-1.json")
    assert (execution.state_machine, execution.execution_name) == ("Orders-AbCdEf123456", "run-1")
    assert (execution.status, execution.open, execution.events, execution.skip_reason) == (
        "SUCCEEDED",
        False,
        10,
        None,
    )
    assert execution.input == ORDER
    assert execution.started == 1_700_000_001 and execution.closed == 1_700_000_010
    assert execution.tasks == {
        ((), "Charge", 0): (TaskFailure("MyApp.Transient", SECRET), TaskSuccess({"paid": SECRET}))
    }
    assert [(v.name, v.next, v.exited) for v in execution.visits] == [
        ("Charge", "Done", True),
        ("Done", None, True),
    ]
    assert execution.entered == {"Charge", "Done"}


def test_history_pages_are_merged_deduplicated_and_sorted() -> None:
    export = charge_history()
    events = export["events"]
    pages = [
        {"events": list(reversed(events[5:]))},
        {"events": events[:6], "executionArn": export["executionArn"]},
    ]
    merged = load_execution(pages, "pages.json")
    whole = load_execution(export, "whole.json")
    assert merged.tasks == whole.tasks and merged.events == whole.events == 10
    assert merged.execution_name == "run-1"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"executions": []}, "not a Step Functions history: no `events`"),
        ({"events": {}}, "`events` is not a list"),
        ({"events": [{"id": 1, "type": "ExecutionStarted"}, {"id": 7}]}, "event 7 has no type"),
        ({"events": [{"type": "ExecutionStarted"}]}, "event at position 0 has no numeric id"),
        ("text", "not a JSON object"),
        ({"events": []}, "`events` is empty"),
    ],
)
def test_unreadable_histories(data: Any, message: str) -> None:
    with pytest.raises(HistoryUnreadable, match=re.escape(message)):
        load_execution(data, "bad.json")


def test_skip_reasons() -> None:
    partial = charge_history()
    partial["events"] = partial["events"][3:]
    assert load_execution(partial, "p").skip_reason == "history starts at event 4 (a page is missing)"
    express = charge_history()
    express["executionArn"] = "arn:aws:states:us-east-1:1:express:Orders:run-1:abc"
    assert (load_execution(express, "e").skip_reason or "").startswith("Express executions have no history")
    assert load_execution(express, "e").state_machine == "Orders-AbCdEf123456"
    truncated = charge_history()
    truncated["events"][5]["taskSucceededEventDetails"]["outputDetails"] = {"truncated": True}
    assert load_execution(truncated, "t").skip_reason == "execution data truncated at event 6"
    no_data = charge_history()
    for event in no_data["events"]:
        for details in event.values():
            if isinstance(details, dict):
                details.pop("input", None)
                details.pop("output", None)
    assert "includeExecutionData=false" in (load_execution(no_data, "n").skip_reason or "")
    replayed = replay_execution(CHARGE_DEF, load_execution(truncated, "t"))
    assert (replayed.outcome, replayed.message) == ("skipped", "execution data truncated at event 6")


def test_redriven_history_replays_its_first_run() -> None:
    export = charge_history(transient=False, final="none")
    export["events"] += [
        {"id": 4, "previousEventId": 3, "type": "TaskFailed", "taskFailedEventDetails": {"error": "Fatal"}},
        {
            "id": 5,
            "previousEventId": 4,
            "type": "ExecutionFailed",
            "executionFailedEventDetails": {"error": "Fatal"},
        },
        {
            "id": 6,
            "previousEventId": 5,
            "type": "ExecutionRedriven",
            "executionRedrivenEventDetails": {"redriveCount": 1},
        },
        {
            "id": 7,
            "previousEventId": 6,
            "type": "TaskStateEntered",
            "stateEnteredEventDetails": {"name": "Charge", "input": "{}"},
        },
    ]
    execution = load_execution(export, "redrive")
    assert (execution.status, execution.run_status, execution.redriven) == ("RUNNING", "FAILED", True)
    assert execution.tasks == {((), "Charge", 0): (TaskFailure("Fatal"),)}
    assert (execution.error, execution.failed_state) == ("Fatal", "Charge")
    assert replay_execution(CHARGE_DEF, execution).outcome == "ok"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24 23:38:34.335000+00:00", 1795563514.335),
        ("2026-11-24T23:38:34.335Z", 1795563514.335),
        (1795563514.335, 1795563514.335),
        (1795563514335, 1795563514.335),
    ],
)
def test_timestamps(value: Any, expected: float) -> None:
    assert epoch(value) == pytest.approx(expected)


def test_replay_verdicts_on_a_retried_task() -> None:
    execution = load_execution(charge_history(), "h")
    assert replay_execution(CHARGE_DEF, execution).outcome == "ok"
    no_retry = json.loads(json.dumps(CHARGE_DEF))
    del no_retry["States"]["Charge"]["Retry"]
    removed = replay_execution(no_retry, execution, base=CHARGE_DEF)
    assert (removed.outcome, removed.state, removed.code) == ("error", "Charge", "MyApp.Transient")
    assert (
        removed.message
        == "terminal status changes: recorded SUCCEEDED, head FAILED (`MyApp.Transient` at `Charge`)"
    )
    # A recorded error name that neither definition declares may be data: it is not shown, only logged.
    alone = replay_execution(no_retry, execution)
    assert (alone.message, alone.code) == (
        "terminal status changes: recorded SUCCEEDED, head FAILED (an error the definitions do not name at `Charge`)",
        None,
    )
    assert alone.detail == removed.message
    renamed = json.loads(json.dumps(CHARGE_DEF).replace('"Charge"', '"ChargeV2"'))
    moved = replay_execution(renamed, execution)
    assert (moved.outcome, moved.state) == ("diverged", "ChargeV2")
    assert moved.message.startswith(
        "reaches Task `ChargeV2`, which the recorded execution never ran (new or renamed state)"
    )
    running = charge_history(final="none")
    pending = replay_execution(CHARGE_DEF, load_execution(running, "r"))
    assert (pending.outcome, pending.state) == ("ok", "Charge")
    assert pending.message == "replayed up to where the execution is now (state `Charge`)"


def test_no_message_carries_payload_values() -> None:
    execution = load_execution(charge_history(), "h")
    retry = {"Retry": [{"ErrorEquals": ["MyApp.Transient"], "MaxAttempts": 2}]}
    heads = [
        CHARGE_DEF,
        machine({"Charge": task(Parameters={"x.$": "$.missing"})}),
        machine({"Charge": task(Parameters={"x.$": "States.ArrayGetItem(States.Array($.note), 3)"})}),
        machine({"Charge": task(ResultSelector={"x.$": "$.nope"}, **retry)}),
        machine({"Charge": task(Next="Extra", End=False, **retry), "Extra": task()}),
        machine({"Charge": {"Type": "Fail", "CausePath": "$.note", "ErrorPath": "$.note"}}),
        machine(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.note", "StringEquals": "x", "Next": "Charge"}],
                },
                "Charge": task(),
            }
        ),
        machine(
            {"Charge": task(Output="{% $states.input.note & $error($states.input.note) %}", **retry)},
            QueryLanguage="JSONata",
        ),
        machine(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.note", "StringEquals": SECRET, "Next": "Other"}],
                    "Default": "Charge",
                },
                "Other": {"Type": "Succeed"},
                "Charge": task(),
            }
        ),
    ]
    replays = [replay_execution(head, execution) for head in heads]
    assert [r.outcome for r in replays] == [
        "ok",
        *["error"] * 3,
        "diverged",
        "error",
        "error",
        "error",
        "diverged",
    ]
    runs = [
        run_definition(
            head, execution.input, ScriptedOracle({"Charge": [TaskFailure("E", SECRET), ok(SECRET)]})
        )
        for head in heads
    ]
    messages = [r.message for r in replays] + [r.message for r in runs]
    assert replays[5].message == (
        "terminal status changes: recorded SUCCEEDED, head FAILED (the Error computed by `Charge` at `Charge`)"
    )
    assert replays[8].message == (
        "starts on another path: head ends without reaching any state it recorded, "
        "the recorded execution started at `Charge`"
    )
    assert len(set(messages)) > 10
    assert all(SECRET not in message for message in messages)
