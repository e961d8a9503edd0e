"""Benchmark: Step Functions replay throughput of the in-process ASL interpreter.

Records real executions of a 30-state definition (a Map of 5 states, a Parallel of two branches,
Choices, Retry, Catch, intrinsic functions) in moto, exports them with boto3 as a user would, and
writes COUNT history files. Recording COUNT executions in moto is done only when the first few
show it fits in about 60 s; otherwise the recorded ones are replicated with distinct execution names
and inputs (every value of the order id rewritten, so every file has its own bytes). Then it times:

- parsing: `json.load` + `load_execution` of every file,
- replaying: `replay_execution` of every parsed execution through the same definition, twice (the
  first pass also compiles every JSONPath once: jsonpath-ng builds its parser then), and through a
  head that inserts a Pass state (a change every execution replays `ok` through),

and prints executions replayed per second and how the cost splits between parsing and replaying.
No target: figures only.

    python bench/sfn_replay.py               # 500 histories
    python bench/sfn_replay.py --count 2000  # more
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import moto_server  # noqa: E402
from sfn_moto import FAIL, LAMBDA, OVERSIZE_ERROR, MotoStepFunctions  # noqa: E402

from bot.engines.stepfunctions.history import Execution, load_execution  # noqa: E402
from bot.engines.stepfunctions.replayer import replay_execution  # noqa: E402

RECORD_FIRST = 8
RECORD_BUDGET_S = 60.0


def task(next_state: str | None, **fields: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": LAMBDA, **fields}
    state.update({"Next": next_state} if next_state else {"End": True})
    return state


DEFINITION: dict[str, Any] = {
    "Comment": "Bench: 30 states, a Map of 5, a Parallel of 2 branches",
    "StartAt": "Start",
    "States": {
        "Start": {
            "Type": "Pass",
            "Parameters": {"order.$": "$.order", "lines.$": "$.lines", "amount.$": "$.amount"},
            "Next": "Normalize",
        },
        "Normalize": {
            "Type": "Pass",
            "Parameters": {
                "key.$": "States.Format('order-{}', $.order)",
                "count.$": "States.ArrayLength($.lines)",
            },
            "ResultPath": "$.meta",
            "Next": "Classify",
        },
        "Classify": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.amount", "NumericGreaterThan": 100, "Next": "Large"}],
            "Default": "Small",
        },
        "Large": {"Type": "Pass", "Result": "large", "ResultPath": "$.tier", "Next": "Score"},
        "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.tier", "Next": "Score"},
        "Score": task(
            "CheckScore",
            Parameters={"order.$": "$.order", "tier.$": "$.tier"},
            ResultSelector={"tier.$": "$.tier"},
            ResultPath="$.score",
            Retry=[
                {"ErrorEquals": [OVERSIZE_ERROR], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}
            ],
        ),
        "CheckScore": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.score.tier", "IsPresent": True, "Next": "Enrich"}],
            "Default": "Reject",
        },
        "Enrich": {
            "Type": "Pass",
            "Parameters": {
                "hash.$": "States.Hash($.order, 'SHA-256')",
                "parts.$": "States.StringSplit($.order, '-')",
            },
            "ResultPath": "$.enriched",
            "Next": "Settle",
        },
        "Settle": {"Type": "Wait", "Seconds": 0, "Next": "Lines"},
        "Lines": {
            "Type": "Map",
            "ItemsPath": "$.lines",
            "ItemSelector": {"line.$": "$$.Map.Item.Value", "n.$": "$$.Map.Item.Index", "order.$": "$.order"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "PriceLine",
                "States": {
                    "PriceLine": {
                        "Type": "Pass",
                        "Parameters": {"qty.$": "$.line.qty", "n.$": "$.n"},
                        "Next": "TaxLine",
                    },
                    "TaxLine": task("LineKind", ResultPath="$.tax"),
                    "LineKind": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.qty", "NumericGreaterThan": 1, "Next": "Bulk"}],
                        "Default": "Single",
                    },
                    "Bulk": {"Type": "Pass", "Result": "bulk", "ResultPath": "$.kind", "End": True},
                    "Single": {"Type": "Pass", "Result": "single", "ResultPath": "$.kind", "End": True},
                },
            },
            "ResultSelector": {"kinds.$": "$[*].kind"},
            "ResultPath": "$.priced",
            "Next": "Totals",
        },
        "Totals": {
            "Type": "Pass",
            "Parameters": {
                "lines.$": "States.ArrayLength($.priced.kinds)",
                "kinds.$": "States.ArrayUnique($.priced.kinds)",
            },
            "ResultPath": "$.totals",
            "Next": "Fan",
        },
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Notify",
                    "States": {
                        "Notify": task("NotifyDone", ResultSelector={"order.$": "$.order"}),
                        "NotifyDone": {"Type": "Pass", "End": True},
                    },
                },
                {
                    "StartAt": "Ledger",
                    "States": {
                        "Ledger": {
                            "Type": "Pass",
                            "Parameters": {"amount.$": "$.amount"},
                            "Next": "LedgerCheck",
                        },
                        "LedgerCheck": {
                            "Type": "Choice",
                            "Choices": [
                                {"Variable": "$.amount", "NumericGreaterThanEquals": 0, "Next": "LedgerOk"}
                            ],
                            "Default": "LedgerBad",
                        },
                        "LedgerOk": {"Type": "Succeed"},
                        "LedgerBad": {"Type": "Fail", "Error": "Ledger.Negative"},
                    },
                },
            ],
            "ResultSelector": {"notified.$": "$[0]", "ledger.$": "$[1]"},
            "ResultPath": "$.fan",
            "Next": "Persist",
        },
        "Persist": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "persist",
                "Payload": {"order.$": "$.order", "totals.$": "$.totals"},
            },
            "ResultSelector": {"code.$": "$.StatusCode"},
            "ResultPath": "$.persisted",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "PersistFailed"}],
            "Next": "Audit",
        },
        "PersistFailed": {"Type": "Pass", "Result": True, "ResultPath": "$.degraded", "Next": "Audit"},
        "Audit": {
            "Type": "Pass",
            "Parameters": {"order.$": "$.order", "tier.$": "$.tier"},
            "ResultPath": "$.audit",
            "Next": "Archive",
        },
        "Archive": {"Type": "Pass", "Next": "Finish"},
        "Finish": {"Type": "Pass", "OutputPath": "$.totals", "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "Reject": {"Type": "Fail", "Error": "Order.Unscored"},
    },
}


def state_count(definition: dict[str, Any]) -> int:
    total = 0
    for state in definition["States"].values():
        total += 1
        for branch in state.get("Branches", []):
            total += state_count(branch)
        if "ItemProcessor" in state:
            total += state_count(state["ItemProcessor"])
    return total


def sample_input(n: int) -> tuple[dict[str, Any], list[Any]]:
    """Input number `n` and its Lambda script (the first call, Score, fails on every fourth)."""
    lines = [{"sku": f"sku-{n}-{i}", "qty": 1 + (i * n) % 3} for i in range(1 + n % 6)]
    data = {"order": f"bench-{n:05d}", "amount": 20 + (n * 37) % 200, "lines": lines}
    return data, ([FAIL] if n % 4 == 3 else [])


def record(moto: MotoStepFunctions, count: int, out: Path) -> tuple[list[Path], str]:
    machine = moto.create("BenchOrders", DEFINITION)
    started = time.perf_counter()
    exports: list[dict[str, Any]] = []
    for n in range(min(count, RECORD_FIRST)):
        data, script = sample_input(n)
        exports.append(moto.record(machine, data, script=script, name=f"bench-{n:05d}"))
    first = time.perf_counter() - started
    estimate = first / len(exports) * count
    if estimate <= RECORD_BUDGET_S:
        for n in range(len(exports), count):
            data, script = sample_input(n)
            exports.append(moto.record(machine, data, script=script, name=f"bench-{n:05d}"))
        how = f"recorded all {count} executions in moto ({time.perf_counter() - started:.1f} s)"
    else:
        recorded = len(exports)
        for n in range(recorded, count):
            source = exports[n % recorded]
            text = json.dumps(source).replace(f"bench-{n % recorded:05d}", f"bench-{n:05d}")
            exports.append(json.loads(text))
        how = (
            f"recorded {recorded} executions in moto ({first:.1f} s; {count} would take ~{estimate:.0f} s), "
            f"replicated to {count} with distinct names and inputs"
        )
    paths = []
    for n, export in enumerate(exports):
        path = out / f"bench-{n:05d}.json"
        path.write_text(json.dumps(export), encoding="utf-8")
        paths.append(path)
    return paths, how


def parse_all(paths: list[Path]) -> tuple[list[Execution], float, float]:
    """Every file read with `json.load` and `load_execution`; the seconds each took in total."""
    executions = []
    json_s = read_s = 0.0
    for path in paths:
        started = time.perf_counter()
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
        loaded = time.perf_counter()
        executions.append(load_execution(data, path.name))
        json_s += loaded - started
        read_s += time.perf_counter() - loaded
    return executions, json_s, read_s


def replay_all(definition: dict[str, Any], executions: list[Execution]) -> tuple[Counter[str], int, float]:
    started = time.perf_counter()
    outcomes: Counter[str] = Counter()
    steps = 0
    for execution in executions:
        replayed = replay_execution(definition, execution)
        outcomes[replayed.outcome] += 1
        steps += replayed.steps
    return outcomes, steps, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="history files to replay (default 500)")
    args = parser.parse_args()
    head = copy.deepcopy(DEFINITION)
    head["States"]["Archive"]["Next"] = "Stamp"
    head["States"]["Stamp"] = {"Type": "Pass", "Comment": "inserted by the head", "Next": "Finish"}

    with tempfile.TemporaryDirectory(prefix="sfn-bench-") as scratch:
        with moto_server() as url:
            paths, how = record(MotoStepFunctions(url), args.count, Path(scratch))
        size = sum(path.stat().st_size for path in paths)
        events = 0
        executions, json_s, read_s = parse_all(paths)
        parse_s = json_s + read_s
        events = sum(execution.events for execution in executions)
        _, _, cold_s = replay_all(DEFINITION, executions)
        base_outcomes, steps, replay_s = replay_all(DEFINITION, executions)
        head_outcomes, _, head_s = replay_all(head, executions)

    count = len(executions)
    total = parse_s + replay_s
    print(f"definition: {state_count(DEFINITION)} states (Map of 5, Parallel of 2 branches)")
    print(f"histories:  {how}")
    print(f"            {count} files, {size / 1e6:.1f} MB, {events / count:.0f} events each")
    print(f"            {steps / count:.0f} state transitions replayed per history")
    print(f"outcomes:   base {dict(base_outcomes)}, head with an inserted Pass {dict(head_outcomes)}")
    rows = [
        ("parse:", parse_s, "json.load + load_execution"),
        ("", json_s, "of which json.load"),
        ("", read_s, "of which load_execution"),
        ("replay:", cold_s, "replay_execution, base, first pass"),
        ("", replay_s, "replay_execution, base"),
        ("", head_s, "replay_execution, head"),
    ]
    for label, seconds, what in rows:
        print(f"{label:<11} {seconds:.3f} s  ({seconds / count * 1000:.2f} ms per history)  {what}")
    print(f"throughput: {count / replay_s:,.0f} executions replayed/s (replay only)")
    print(f"            {count / total:,.0f} executions/s parse + replay")
    print(f"split:      parse {parse_s / total:.0%}, replay {replay_s / total:.0%}")


if __name__ == "__main__":
    main()
