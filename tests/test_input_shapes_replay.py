"""Input-shape findings against the engine's own answer.

The base code shared by the `input_*` fixture cases runs on the real Temporal dev server: an order
starts with an `OrderInput`, gets a `set_address` update and an `approve` signal, charges and ships.
Its history replays on each case's head with `temporalio.worker.Replayer`, and the `charge` input
the base scheduled is decoded into head's class with the SDK's default converter, as a new worker
would decode a task scheduled before the deploy. Replay fails exactly where the static check
reports a breaking workflow-input finding; the scheduled task fails to decode exactly where it
reports a breaking activity-input finding.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES
from fixture_harness import check
from gitrepo import make_repo

CASES = FIXTURES / "temporal"
RECORDED_BASE = CASES / "input_run_field_renamed" / "base"
# Approval is a pydantic model there: client, worker and Replayer use the SDK's pydantic converter.
PYDANTIC_BASE = CASES / "input_pydantic_field_renamed" / "base"
PYDANTIC_CASES = ("input_pydantic_field_renamed", "input_pydantic_required_field_renamed")
SHARED_BASE = (
    "input_run_field_renamed",
    "input_run_field_removed",
    "input_run_field_retyped",
    "input_run_field_added_required",
    "input_run_field_added_optional",
    "input_nested_field_renamed",
    "input_signal_field_renamed",
    "input_update_field_removed",
    "input_activity_field_renamed",
    "input_fields_reordered",
    "input_class_moved_module",
    "input_default_value_changed",
    "input_field_type_widened",
)

RECORDER = r"""
import asyncio, os, sys, uuid
from pathlib import Path

sys.path.insert(0, sys.argv[2])
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from app.activities import charge, ship
from app.models import Address, AddressChange, Approval, OrderInput
from app.workflows import OrderWorkflow


async def main(address: str, out: Path) -> None:
    converter = pydantic_data_converter if sys.argv[4] == "pydantic" else DataConverter.default
    client = await Client.connect(address, data_converter=converter)
    queue = f"shapes-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[OrderWorkflow], activities=[charge, ship]):
        order = OrderInput("A-1001", "ana@example.com", 4200, Address("1 Quay St", "Lyon", "69002"))
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{uuid.uuid4()}", task_queue=queue)
        moved = AddressChange(Address("9 Rue Neuve", "Paris", "75001"), "customer moved")
        await handle.execute_update(OrderWorkflow.set_address, moved)
        await handle.signal(OrderWorkflow.approve, Approval(approver="ops-lead"))
        await handle.result()
        out.write_text((await handle.fetch_history()).to_json())


try:
    asyncio.run(main(sys.argv[1], Path(sys.argv[3])))
    code = 0
except BaseException as exc:
    print(f"recorder: {type(exc).__name__}: {exc}", file=sys.stderr)
    code = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""

REPLAYER = r"""
import asyncio, inspect, json, sys, typing
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from app.activities import charge
from app.workflows import OrderWorkflow


async def main() -> dict:
    converter = pydantic_data_converter if sys.argv[3] == "pydantic" else DataConverter.default
    history = WorkflowHistory.from_json("order", Path(sys.argv[2]).read_text())
    replayer = Replayer(workflows=[OrderWorkflow], data_converter=converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    failure = result.replay_failure
    scheduled = [
        e.activity_task_scheduled_event_attributes.input.payloads
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "charge"
    ]
    hint = typing.get_type_hints(charge)[next(iter(inspect.signature(charge).parameters))]
    try:
        converter.payload_converter.from_payloads(list(scheduled[0]), [hint])
        activity = None
    except Exception as exc:
        activity = f"{type(exc).__name__}: {exc}"
    return {
        "charges": len(scheduled),
        "replay": None if failure is None else f"{type(failure).__name__}: {failure} {failure.__cause__ or ''}",
        "activity": activity,
    }


print(json.dumps(asyncio.run(main())))
"""


def _record(server: str, base: Path, out: Path, converter: str) -> Path:
    run = subprocess.run(
        [sys.executable, "-c", RECORDER, server, str(base), str(out), converter],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture(scope="module")
def history(server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed execution of the shared base code, exported through the client API."""
    return _record(server, RECORDED_BASE, tmp_path_factory.mktemp("shapes") / "order.json", "default")


@pytest.fixture(scope="module")
def pydantic_history(server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same execution of the base whose signal input is a pydantic model."""
    return _record(server, PYDANTIC_BASE, tmp_path_factory.mktemp("shapes") / "order.json", "pydantic")


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def _engine(head: Path, history: Path, converter: str = "default") -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", REPLAYER, str(head), str(history), converter],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    answer: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.parametrize("case", SHARED_BASE)
def test_replay_agrees_with_the_static_verdict(case: str, history: Path, tmp_path: Path) -> None:
    _agree(case, RECORDED_BASE, history, tmp_path, "default")


@pytest.mark.parametrize("case", PYDANTIC_CASES)
def test_pydantic_replay_agrees_with_the_static_verdict(
    case: str, pydantic_history: Path, tmp_path: Path
) -> None:
    _agree(case, PYDANTIC_BASE, pydantic_history, tmp_path, "pydantic")


def _agree(case: str, recorded_base: Path, history: Path, tmp_path: Path, converter: str) -> None:
    folder = CASES / case
    assert _same_tree(folder / "base", recorded_base), f"{case}: base differs from the recorded code"
    repo = make_repo(tmp_path / "repo", folder / "base", folder / "head")
    report = check(Path(repo.working_dir), folder)
    breaking = [
        f.change for f in report.findings if not f.suppressed and f.change and f.severity.value == "breaking"
    ]
    targets = {str(c.details.get("target")) for c in breaking}
    handlers = {str(c.details.get("handler")) for c in breaking}

    truth = _engine(folder / "head", history, converter)
    assert truth["charges"] == 1
    assert (truth["replay"] is not None) == ("workflow" in targets), (case, truth, targets)
    assert (truth["activity"] is not None) == ("activity" in targets), (case, truth, targets)
    if "run" in handlers:  # the run input is decoded first, before any command is compared
        assert "Failed decoding arguments" in str(truth["replay"]), truth
    if "signal approve" in handlers:  # the SDK drops a signal it cannot decode; the replay diverges
        assert "NondeterminismError" in str(truth["replay"]), truth


def test_bases_replay_on_themselves(history: Path, pydantic_history: Path) -> None:
    assert _engine(RECORDED_BASE, history) == {"charges": 1, "replay": None, "activity": None}
    assert _engine(PYDANTIC_BASE, pydantic_history, "pydantic") == {
        "charges": 1,
        "replay": None,
        "activity": None,
    }
