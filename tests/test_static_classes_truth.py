"""Static verdicts on control flow and values in front of commands, against the engine's own answer.

Each case under tests/fixtures/temporal/<case>/ listed in TEMPORAL runs its BASE code on a real
Temporal dev server with a real worker whose activities are scripted (one dynamic activity answers
every activity type with the case's results, or fails it). Every point an execution can be in
flight is cut from the recorded history (after each WorkflowTaskCompleted and the command events
that follow it) and replayed on HEAD with `temporalio.worker.Replayer`, with the completed history
as well. The truth: the change is breaking iff some in-flight history fails. The static check of
the case (no histories supplied) must say breaking exactly then, and the case's expected.yaml must
agree. Each base also replays its own histories cleanly, or the cut would prove nothing.

Cadence cases (CADENCE) do the same on cadence-python-client's decision engine: histories recorded
by tests/cadence_recorder.py after each decision task, replayed by the replay runner's adapter.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from cadence_recorder import ActivityFailure, load_runner, record
from conftest import FIXTURES
from fixture_harness import apply_outline, check, explain
from gitrepo import make_repo
from test_cadence_fixtures import _definition

TEMPORAL_CASES = FIXTURES / "temporal"
CADENCE_CASES = FIXTURES / "cadence"

ORDER = {"order_id": "A-1001", "customer_email": "ana@example.com", "amount_cents": 4200}
FLAGGED = {**ORDER, "order_id": "A-1002", "flagged_for_fraud": True}
PAGES = [
    {
        "invoice_ids": [f"INV-{page}-{n}" for n in range(3)],
        "next_cursor": f"p{page + 1}" if page < 6 else None,
    }
    for page in range(1, 7)
]
FAIL = {"$fail": "declined by the gateway"}

# case -> the workflow type and the executions to record: their arguments and scripted activity
# results (a list is consumed in order, its last value repeats; {"$fail": ...} fails the activity).
TEMPORAL: dict[str, dict[str, Any]] = {
    "guard_return_added_before_charge": {
        "workflow": "OrderWorkflow",
        "runs": [
            {"args": [FLAGGED], "results": {"ship_order": "trk-1"}},
            {"args": [ORDER], "results": {"ship_order": "trk-2"}},
        ],
    },
    "guard_raise_added_after_last_command": {
        "workflow": "OrderWorkflow",
        "runs": [{"args": [ORDER], "results": {"ship_order": "trk-3"}}],
    },
    "guard_continue_added_in_item_loop": {
        "workflow": "ShipmentWorkflow",
        "runs": [
            {
                "args": [
                    {
                        "order_id": "A-2001",
                        "items": [
                            {"sku": "BOOK-1", "quantity": 1},
                            {"sku": "EBOOK-7", "quantity": 1, "digital": True},
                            {"sku": "MUG-3", "quantity": 2},
                        ],
                    }
                ],
                "results": {"create_label": ["label-1", "label-2", "label-3"]},
            }
        ],
    },
    "guard_break_added_after_deploy_in_loop": {
        "workflow": "RolloutWorkflow",
        "runs": [
            {
                "args": [{"version": "2.4.0", "regions": ["eu-west-1", "us-east-1", "ap-south-1"]}],
                "results": {
                    "deploy_region": [
                        {"region": "eu-west-1", "healthy": False},
                        {"region": "us-east-1", "healthy": True},
                        {"region": "ap-south-1", "healthy": True},
                    ]
                },
            }
        ],
    },
    "gather_split_into_sequential_awaits": {
        "workflow": "FulfillmentWorkflow",
        "runs": [
            {
                "args": [ORDER],
                "results": {"reserve_stock": "res-1", "authorize_payment": "auth-1", "ship_order": "trk-1"},
            }
        ],
    },
    "sequential_awaits_gathered": {
        "workflow": "CheckoutWorkflow",
        "runs": [
            {
                "args": [ORDER],
                "results": {"load_customer": "ana@example.com", "load_inventory": 3, "charge_card": "ch-1"},
            }
        ],
    },
    "saga_compensation_order_reversed": {
        "workflow": "TripBookingWorkflow",
        "runs": [
            {
                "args": [{"trip_id": "T-77", "traveller": "ana"}],
                "results": {
                    "book_flight": "fl-1",
                    "book_hotel": "ho-1",
                    "book_car": {"$fail": "no cars left"},
                },
            }
        ],
    },
    "approval_chain_order_reversed": {
        "workflow": "PurchaseApprovalWorkflow",
        "runs": [
            {
                "args": [
                    {
                        "request_id": "PR-9",
                        "amount_cents": 990000,
                        "approvers": ["team-lead", "director", "cfo"],
                    }
                ],
                "results": {"request_approval": True, "place_purchase_order": "po-9"},
            }
        ],
    },
    "continue_as_new_threshold_lowered": {
        "workflow": "InvoiceExportWorkflow",
        "runs": [{"args": [{"cursor": "start", "exported": 0}], "results": {"fetch_invoice_page": PAGES}}],
    },
    "continue_as_new_threshold_raised": {
        "workflow": "InvoiceExportWorkflow",
        "runs": [{"args": [{"cursor": "start", "exported": 0}], "results": {"fetch_invoice_page": PAGES}}],
    },
    "workflow_retry_attempts_lowered": {
        "workflow": "PaymentWorkflow",
        "runs": [
            {
                "args": [{"payment_id": "P-5", "amount_cents": 1999}],
                "results": {"capture_payment": [FAIL, FAIL, FAIL, "cap-5"]},
            }
        ],
    },
    "reminder_count_raised_loop_at_end": {
        "workflow": "InvoiceReminderWorkflow",
        "runs": [{"args": [{"invoice_id": "INV-42", "customer_email": "ana@example.com"}]}],
    },
    "constant_changed_that_steers_no_command": {
        "workflow": "LateFeeWorkflow",
        "runs": [
            {
                "args": [{"invoice_id": "INV-43", "customer_email": "ana@example.com"}],
                "results": {"charge_late_fee": "fee-43"},
            }
        ],
    },
    "status_check_limit_lowered_in_settings_module": {
        "workflow": "ParcelTrackingWorkflow",
        "runs": [
            {
                "args": ["TRK-100"],
                "results": {"check_parcel_status": ["in_transit"] * 4 + ["delivered"]},
            }
        ],
    },
    "literal_check_limit_lowered": {
        "workflow": "ParcelTrackingWorkflow",
        "runs": [
            {"args": ["TRK-200"], "results": {"check_parcel_status": ["in_transit"] * 3 + ["delivered"]}}
        ],
    },
    "refactor_literal_limit_moved_into_constant": {
        "workflow": "ParcelTrackingWorkflow",
        "runs": [
            {"args": ["TRK-201"], "results": {"check_parcel_status": ["in_transit"] * 2 + ["delivered"]}},
            {
                "args": ["TRK-202"],
                "results": {"check_parcel_status": "in_transit", "open_support_ticket": "t-1"},
            },
        ],
    },
    "export_batches_default_argument_lowered": {
        "workflow": "MonthlyReportWorkflow",
        "runs": [{"args": ["2026-11"], "results": {"publish_report": "https://reports.example.com/2026-11"}}],
    },
    "dispatch_branch_retargeted": {
        "workflow": "ShippingWorkflow",
        "runs": [
            {
                "args": [{**ORDER, "country": "DE"}],
                "results": {"ship_international": "intl-1", "charge_card": "ch"},
            },
            {"args": [{**ORDER, "express": True}], "results": {"ship_express": "exp-1", "charge_card": "ch"}},
            {"args": [ORDER], "results": {"ship_standard": "std-1", "charge_card": "ch"}},
        ],
    },
    "refactor_branch_calls_into_dispatch_variable": {
        "workflow": "ShippingWorkflow",
        "runs": [
            {
                "args": [{**ORDER, "country": "DE"}],
                "results": {"ship_international": "intl-1", "charge_card": "ch"},
            },
            {"args": [{**ORDER, "express": True}], "results": {"ship_express": "exp-1", "charge_card": "ch"}},
            {"args": [ORDER], "results": {"ship_standard": "std-1", "charge_card": "ch"}},
        ],
    },
    "refactor_installments_folded_into_range_loop": {
        "workflow": "LoanRepaymentWorkflow",
        "runs": [
            {
                "args": [{"loan_id": "L-3", "principal_cents": 500000}],
                "results": {"charge_installment": "inst"},
            }
        ],
    },
    "poll_loop_rewritten_as_while": {
        "workflow": "ReportExportWorkflow",
        "runs": [
            {
                "args": ["R-1"],
                "results": {"start_report_export": "job-1", "export_status": ["running", "done"]},
            },
            {"args": ["R-2"], "results": {"start_report_export": "job-2", "export_status": "running"}},
        ],
    },
    "refactor_calls_folded_into_gather_comprehension": {
        "workflow": "ReindexWorkflow",
        "runs": [{"args": ["products"], "results": {"rebuild_search_shard": [120, 80, 95, 110, 60]}}],
    },
}

RECORDER = r"""
import asyncio, importlib, json, os, sys, uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, sys.argv[2])
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

# Events a workflow task's commands write, and the ones that close the run.
CLOSING = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
}
COMMAND_EVENTS = CLOSING | {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_TIMER_CANCELED,
    EventType.EVENT_TYPE_MARKER_RECORDED,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
}


def in_flight(events):
    # After each completed workflow task and the commands it wrote: where an execution waits.
    out = []
    for i, event in enumerate(events):
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            continue
        end = i + 1
        while end < len(events) and events[end].event_type in COMMAND_EVENTS:
            end += 1
        if events[end - 1].event_type not in CLOSING:
            out.append(events[:end])
    return out


async def main() -> None:
    spec = json.loads(sys.argv[3])
    out = Path(sys.argv[4])
    client = await Client.connect(sys.argv[1])
    module = importlib.import_module("app.workflows")
    classes = [v for v in vars(module).values() if isinstance(v, type) and workflow._Definition.from_class(v)]
    written = []
    for n, run in enumerate(spec["runs"]):
        scripts = {k: list(v) if isinstance(v, list) else [v] for k, v in run.get("results", {}).items()}

        @activity.defn(dynamic=True)
        async def scripted(args: Sequence[RawValue]) -> Any:
            script = scripts.get(activity.info().activity_type, [None])
            value = script.pop(0) if len(script) > 1 else script[0]
            if isinstance(value, dict) and "$fail" in value:
                raise ApplicationError(value["$fail"], non_retryable=True)
            return value

        queue = f"truth-{uuid.uuid4()}"
        async with Worker(client, task_queue=queue, workflows=classes, activities=[scripted]):
            started = await client.start_workflow(
                spec["workflow"], args=run.get("args", []), id=f"truth-{n}-{uuid.uuid4()}", task_queue=queue
            )
            # This run, not the one it continues as.
            handle = client.get_workflow_handle(started.id, run_id=started.first_execution_run_id)
            try:
                await handle.result(follow_runs=False)
            except Exception:
                pass  # a failed or continued-as-new run is a history like any other
            history = await handle.fetch_history()
        events = list(history.events)
        for cut in in_flight(events):
            name = f"run{n}-at{len(cut)}.json"
            (out / name).write_text(WorkflowHistory(handle.id, cut).to_json())
            written.append({"file": name, "open": True})
        name = f"run{n}-complete.json"
        (out / name).write_text(history.to_json())
        written.append({"file": name, "open": False, "closed_by": EventType.Name(events[-1].event_type)})
    print(json.dumps(written))


try:
    asyncio.run(main())
    code = 0
except BaseException as exc:
    print(f"recorder: {type(exc).__name__}: {exc}", file=sys.stderr)
    code = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""

REPLAYER = r"""
import asyncio, importlib, json, logging, os, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
logging.disable(logging.CRITICAL)
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer


async def main() -> dict:
    module = importlib.import_module("app.workflows")
    classes = [v for v in vars(module).values() if isinstance(v, type) and workflow._Definition.from_class(v)]
    replayer = Replayer(workflows=classes)
    folder = Path(sys.argv[2])
    out = {}
    for name in json.loads(sys.argv[3]):
        history = WorkflowHistory.from_json("truth", (folder / name).read_text())
        failure = (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure
        out[name] = None if failure is None else f"{type(failure).__name__}: {failure}"[:240]
    return out


try:
    print(json.dumps(asyncio.run(main())))
    code = 0
except BaseException as exc:
    print(f"replayer: {type(exc).__name__}: {exc}", file=sys.stderr)
    code = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""


def _run(script: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _temporal_truth(server: str, case: str, out: Path) -> dict[str, Any]:
    """Record the case's base executions, replay every cut on head and on base itself."""
    folder = TEMPORAL_CASES / case
    out.mkdir(parents=True, exist_ok=True)
    written = _run(RECORDER, server, str(folder / "base"), json.dumps(TEMPORAL[case]), str(out))
    names = json.dumps([w["file"] for w in written])
    return {
        "folder": str(out),
        "histories": written,
        "head": _run(REPLAYER, str(folder / "head"), str(out), names),
        "base": _run(REPLAYER, str(folder / "base"), str(out), names),
    }


@pytest.fixture(scope="module")
def temporal_truth(server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The engine's answer for every case, recorded two at a time on the shared dev server."""
    root = tmp_path_factory.mktemp("truth")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(_temporal_truth, server, case, root / case) for case in TEMPORAL}
        return {case: future.result() for case, future in futures.items()}


def _static(folder: Path, tmp_path: Path) -> tuple[bool, str]:
    breaking, report, _ = _checked(folder, tmp_path)
    return breaking, report


def _checked(folder: Path, tmp_path: Path) -> tuple[bool, str, Path | None]:
    """Return (breaking?, the report explained, the head with the report's outline applied)."""
    repo = make_repo(tmp_path / "repo", folder / "base", folder / "head")
    report = check(Path(repo.working_dir), folder)
    outlined = None
    if report.plan.outline:
        apply_outline(repo, report, folder)
        outlined = Path(repo.working_dir)
    return report.verdict.level.value == "breaking", explain(report), outlined


def test_every_new_temporal_case_has_a_scenario() -> None:
    for case in TEMPORAL:
        assert (TEMPORAL_CASES / case / "expected.yaml").is_file(), case


@pytest.mark.parametrize("case", sorted(TEMPORAL))
def test_temporal_static_verdict_is_the_replay_truth(
    case: str, temporal_truth: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    truth = temporal_truth[case]
    histories = truth["histories"]
    in_flight = [h["file"] for h in histories if h["open"]]
    assert len(in_flight) >= 2, histories
    assert all(v is None for v in truth["base"].values()), ("base fails its own histories", truth["base"])
    failing = [name for name in in_flight if truth["head"][name] is not None]
    breaking = bool(failing)
    static_breaking, report, outlined = _checked(TEMPORAL_CASES / case, tmp_path)
    assert static_breaking == breaking, (case, failing or truth["head"], report)
    if outlined is not None:
        # The outline is proven the same way: every recorded history replays on the outlined head.
        replayed = _run(REPLAYER, str(outlined), str(truth["folder"]), json.dumps(in_flight))
        assert not [name for name, failure in replayed.items() if failure], (case, replayed)
    want = yaml.safe_load((TEMPORAL_CASES / case / "expected.yaml").read_text())
    assert (want["verdict"] == "breaking") == breaking, (case, want["verdict"], failing)
    if not breaking:
        # A risky finding that says closed executions no longer replay must be right about it too.
        closed = [h["file"] for h in histories if not h["open"]]
        closed_fail = any(truth["head"][name] is not None for name in closed)
        extends = {item["rule"] for item in want.get("findings", [])} & {"TMP102", "TMP149"}
        assert closed_fail == bool(extends), (case, truth["head"], want.get("findings"))


# --- Cadence ------------------------------------------------------------------------------------

RUNNER = load_runner()

# case -> the executions to record (arguments, scripted activity results: a list is consumed in
# order, its last value repeats) and the workflow type (default OrderWorkflow). `before`: the code
# the base replaced, whose executions the base still runs (a version gate's DEFAULT_VERSION side).
CADENCE: dict[str, dict[str, Any]] = {
    "guard_return_added_before_charge": {"runs": [{"args": ["o-1", True]}, {"args": ["o-2", False]}]},
    "dispatch_branch_retargeted": {
        "runs": [{"args": ["o-1", "DE"]}, {"args": ["o-2", "FR"]}, {"args": ["o-3", "US"]}]
    },
    "settlement_check_limit_lowered": {
        "workflow": "SettlementWorkflow",
        "runs": [{"args": ["b-7"], "results": {"check_settlement": ["pending"] * 3 + ["settled"]}}],
    },
    "gather_split_into_sequential_awaits": {"runs": [{"args": ["o-1"]}]},
    "sequential_awaits_gathered": {"runs": [{"args": ["o-1"]}]},
    "refactor_calls_folded_into_range_loop": {"workflow": "LoanWorkflow", "runs": [{"args": ["l-1"]}]},
    "version_min_raised_above_recorded": {"runs": [{"args": ["o-1"]}]},
    "saga_compensation_order_reversed": {
        "workflow": "TripWorkflow",
        "runs": [{"args": ["t-1"], "results": {"book_car": {"$fail": "no cars left"}}}],
    },
    "digest_days_raised_loop_at_end": {"workflow": "DigestWorkflow", "runs": [{"args": ["u-1"]}]},
    "version_min_raised": {"runs": [{"args": ["o-1"]}], "before": True},
    "version_min_raised_after_declared_drain": {"runs": [{"args": ["o-1"]}]},
}
CLOSING = {
    "workflow_execution_completed_event_attributes",
    "workflow_execution_failed_event_attributes",
    "workflow_execution_canceled_event_attributes",
    "workflow_execution_continued_as_new_event_attributes",
}


@pytest.fixture
def _quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)  # the SDK logs every failed decision task with a traceback
    yield
    logging.disable(logging.NOTSET)


def _scripted(results: dict[str, Any]) -> dict[str, Any]:
    """Fresh scripted results for one recording: lists are consumed in order."""
    out: dict[str, Any] = {}
    for name, value in results.items():
        if isinstance(value, dict) and "$fail" in value:
            out[name] = ActivityFailure(value["$fail"])
        elif isinstance(value, list):
            queue = list(value)
            out[name] = lambda queue=queue: queue.pop(0) if len(queue) > 1 else queue[0]
        else:
            out[name] = value
    return out


def _cadence_truth(case: str) -> dict[str, list[tuple[str, str]]]:
    """Record the base (and the code it replaced) after each decision task; replay on head and base."""
    folder = CADENCE_CASES / case
    scenario = CADENCE[case]
    type_name = scenario.get("workflow", "OrderWorkflow")
    head = _definition(folder / "head", type_name, f"truth_{case}_head")
    base = _definition(folder / "base", type_name, f"truth_{case}_base")
    sources = [("base", base)]
    if scenario.get("before"):
        sources.append(("before", _definition(folder / "before", type_name, f"truth_{case}_before")))
    out: dict[str, list[tuple[str, str]]] = {"open": [], "closed": [], "base": []}
    for tag, recorded in sources:
        for n, run in enumerate(scenario["runs"]):
            previous = -1
            for decisions in range(1, 64):
                history = record(
                    recorded, run["args"], results=_scripted(run.get("results", {})), decisions=decisions
                )
                if len(history.events) == previous:
                    break
                previous = len(history.events)
                name = f"{tag}-run{n}-after{decisions}"
                closed = history.events[-1].WhichOneof("attributes") in CLOSING
                out["closed" if closed else "open"].append((name, RUNNER.Adapter().replay(head, history)[0]))
                out["base"].append((name, RUNNER.Adapter().replay(base, history)[0]))
                if closed:
                    break
    return out


@pytest.mark.usefixtures("_quiet")
@pytest.mark.parametrize("case", sorted(CADENCE))
def test_cadence_static_verdict_is_the_replay_truth(case: str, tmp_path: Path) -> None:
    truth = _cadence_truth(case)
    assert len(truth["open"]) >= 2, truth
    assert all(outcome == "ok" for _, outcome in truth["base"]), (
        "base fails its own histories",
        truth["base"],
    )
    failing = [name for name, outcome in truth["open"] if outcome != "ok"]
    breaking = bool(failing)
    static_breaking, report = _static(CADENCE_CASES / case, tmp_path)
    want = yaml.safe_load((CADENCE_CASES / case / "expected.yaml").read_text())
    config = CADENCE_CASES / case / "config.yml"
    drained = config.exists() and yaml.safe_load(config.read_text()).get("drained")
    if drained:
        # Declared drained: nothing is in flight, and the finding must not block.
        assert not static_breaking and want["verdict"] != "breaking", report
        assert not breaking, failing
        return
    assert static_breaking == breaking, (case, failing or truth, report)
    assert (want["verdict"] == "breaking") == breaking, (case, want["verdict"], failing)
