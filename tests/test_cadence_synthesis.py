"""Synthesized in-flight Cadence histories: the BASE code on the SDK's decision engine, replayed on head.

bot/engines/cadence/synth_driver.py runs as the product runs it (a subprocess in this interpreter,
the base tree as its working directory), and its histories are replayed by bot/engines/cadence/
runner.py, the product's Cadence runner, through its line protocol. Truth: every synthesized
history replays on the base it came from; a head that changes a command in front of a point the
base reached fails at least one of them; a head that only appends after the last command, or
gates its change with get_version, fails none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, ROOT

DRIVER = ROOT / "bot" / "engines" / "cadence" / "synth_driver.py"
RUNNER = ROOT / "bot" / "engines" / "cadence" / "runner.py"
CASES = FIXTURES / "cadence"
ORDER = {"type": "OrderWorkflow", "module": "orders.workflows", "class": "OrderWorkflow"}

ACTIVITIES = """from dataclasses import dataclass

from cadence.worker import Registry

reg = Registry()


@dataclass
class Charge:
    charge_id: str
    approved: bool
    amount_cents: int


@reg.activity(name="charge")
async def charge(account: str) -> Charge:
    return Charge(account, True, 100)


@reg.activity(name="refund")
async def refund(charge_id: str) -> None:
    return None


@reg.activity(name="ship")
async def ship(account: str) -> str:
    return account
"""
# A saga: a charge the customer approves by signal when it is not approved outright, a shipment
# refunded when it fails, and a two-day wait for express orders.
BILLING = """from datetime import timedelta

from cadence import workflow
from cadence.error import ActivityFailure
from cadence.worker import Registry

from billing.activities import charge, refund, ship

reg = Registry()
TIMEOUT = timedelta(minutes=5)


@reg.workflow(name="BillingWorkflow")
class BillingWorkflow:
    def __init__(self) -> None:
        self.approved = False

    @workflow.signal(name="approve")
    def approve(self, by: str) -> None:
        self.approved = True

    @workflow.run
    async def run(self, account: str, express: bool) -> str:
        result = await charge.execute(account)
        if not result.approved:
            await workflow.wait_condition(lambda: self.approved)
        try:
            shipped = await ship.execute(account)
        except ActivityFailure:
            await refund.execute(result.charge_id)
            return "refunded"
        if express:
            await workflow.sleep(timedelta(days=2))
        return shipped
"""
NOTIFY = (
    '            await workflow.execute_activity("notify", str, account, schedule_to_close_timeout=TIMEOUT)\n'
)
BILLING_HEADS = {
    # Reached only when ship fails: the compensation gains a step in front of refund.
    "compensation_changed": BILLING.replace(
        "            await refund.execute", NOTIFY + "            await refund.execute"
    ),
    # Reached only with a flipped input: express orders notify before their wait.
    "express_branch_changed": BILLING.replace(
        "            await workflow.sleep(timedelta(days=2))",
        NOTIFY + "            await workflow.sleep(timedelta(days=2))",
    ),
    # Reached only while the workflow waits on the approval signal.
    "approval_wait_changed": BILLING.replace(
        "            await workflow.wait_condition(lambda: self.approved)",
        NOTIFY + "            await workflow.wait_condition(lambda: self.approved)",
    ),
}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _billing(root: Path, workflows: str = BILLING) -> Path:
    files = {
        "billing/__init__.py": "",
        "billing/activities.py": ACTIVITIES,
        "billing/workflows.py": workflows,
    }
    return _tree(root, files)


BILLING_WF = {"type": "BillingWorkflow", "module": "billing.workflows", "class": "BillingWorkflow"}


def _entry(root: Path, wf: dict[str, str]) -> dict[str, Any]:
    file = root / (wf["module"].replace(".", "/") + ".py")
    return {"type": wf["type"], "modules": [wf["module"]], "class": wf["class"], "file": str(file)}


def synthesize(
    base: Path,
    out: Path,
    workflows: list[dict[str, str]],
    *,
    python: str | Path = sys.executable,
    **budget: Any,
) -> tuple[int, list[dict[str, Any]], str]:
    """Run the driver on `base` as the product does; (exit code, its JSON lines, stderr)."""
    config = {
        "paths": [str(base)],
        "workflows": [_entry(base, wf) for wf in workflows],
        "out": str(out),
        "address": None,
        **budget,
    }
    path = out.parent / f"{out.name}.config.json"
    path.write_text(json.dumps(config))
    run = subprocess.run(
        [str(python), str(DRIVER), str(path)],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    # Nothing is written into the folder it runs in (the user's checkout, here a fixture).
    assert not (base / ".hypothesis").exists(), "the driver wrote hypothesis's tables into its folder"
    return run.returncode, [json.loads(line) for line in run.stdout.splitlines()], run.stderr


def replay(tree: Path, wf: dict[str, str], histories: list[str]) -> dict[str, str]:
    """Replay histories on the workflow in `tree` with the product's runner: {file: outcome}."""
    config = {"paths": [str(tree)], "workflows": [_entry(tree, wf)], "replay": [wf["type"]], "cache": None}
    jobs = [json.dumps(config)] + [
        json.dumps({"i": i, "path": p, "name": p}) for i, p in enumerate(histories)
    ]
    run = subprocess.run(
        [sys.executable, str(RUNNER)],
        input="\n".join(jobs) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines[0]["kind"] == "ready" and not lines[0]["import_errors"], run.stdout + run.stderr
    results = {histories[r["i"]]: r["outcome"] for r in lines if r["kind"] == "result"}
    assert len(results) == len(histories), run.stdout + run.stderr
    return results


def _kinds(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["kind"] == kind]


def _synthesized(tmp_path: Path, base: Path, wf: dict[str, str], **budget: Any) -> list[dict[str, Any]]:
    code, lines, stderr = synthesize(base, tmp_path / "out", [wf], **budget)
    assert code == 0, stderr
    assert lines[0]["kind"] == "ready" and lines[-1] == {"kind": "done"}
    assert not _kinds(lines, "error"), lines
    return lines


@pytest.fixture(scope="module")
def billing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The billing base and what the driver synthesized from it (once for the module)."""
    root = tmp_path_factory.mktemp("billing")
    base = _billing(root / "base")
    code, lines, stderr = synthesize(base, root / "out", [BILLING_WF])
    assert code == 0, stderr
    assert not _kinds(lines, "error"), lines
    return base, lines


# --- what is written ---------------------------------------------------------------------------
def test_a_history_at_every_point_the_execution_waits(tmp_path: Path) -> None:
    base = CASES / "activity_appended_at_end" / "base"  # charge, a one-hour timer, ship
    lines = _synthesized(tmp_path, base, ORDER)
    assert lines[0]["sdk"].startswith("cadence-python-client ") and lines[0]["python"]
    histories = _kinds(lines, "history")
    minimal = [(h["point"], h["event_id"]) for h in histories if h["variant"] == "minimal"]
    assert minimal == [("activity charge", 5), ("timer", 11), ("activity ship", 16)]
    for h in histories:
        path = Path(h["file"])
        assert path.is_absolute() and path.parent == tmp_path / "out" / "OrderWorkflow"
        assert path.name == f"{h['variant'].replace(' ', '-').replace('#', '-')}@{h['event_id']}.json"
        assert h["open"] is True and h["type"] == "OrderWorkflow"
        events = json.loads(path.read_text())["events"]
        assert int(events[-1]["eventId"]) == h["event_id"] == len(events)
        assert not any(key.startswith("workflowExecutionCompleted") for e in events for key in e)
        assert (
            events[0]["workflowExecutionStartedEventAttributes"]["identity"] == "inflight-guard synthesized"
        )
    # Identical prefixes are kept once: no two histories hold the same sequence of events.
    shapes = [
        tuple(
            next(k for k in e if k.endswith("Attributes"))
            for e in json.loads(Path(h["file"]).read_text())["events"]
        )
        for h in histories
    ]
    assert len(shapes) == len(set(shapes))
    (reached,) = _kinds(lines, "reached")
    assert reached["commands"] == ["activity charge", "activity ship", "timer"]
    assert reached["variants"][:2] == ["minimal", "flipped"] and "fail charge#1" in reached["variants"]
    assert reached["executions"] == len(reached["variants"]) and reached["truncated"] is False


def test_branches_failures_and_signals_are_explored(billing: tuple[Path, list[dict[str, Any]]]) -> None:
    _, lines = billing
    points = {(h["variant"], h["point"]) for h in _kinds(lines, "history")}
    assert ("minimal", "signal") in points  # a minimal charge is not approved: it waits for the signal
    assert ("flipped", "timer") in points  # a flipped input is an express order
    assert any(v.endswith("fail ship#1") and p == "activity refund" for v, p in points)  # the compensation
    assert any(v == "signals" and p == "activity ship" for v, p in points)  # approved by the signal
    (reached,) = _kinds(lines, "reached")
    assert reached["commands"] == ["activity charge", "activity refund", "activity ship", "timer"]


# --- replay truth --------------------------------------------------------------------------------
REPLAYED = [
    "activities_reordered",
    "activity_removed",
    "activity_inserted_mid_sequence",
    "activity_by_reference_inserted",
    "timer_added",
    "child_workflow_inserted",
    "signal_handler_removed",
    "version_removed_while_recorded",
]


@pytest.mark.parametrize("case", REPLAYED)
def test_synthesized_histories_replay_on_their_own_base(case: str, tmp_path: Path) -> None:
    base = CASES / case / "base"
    files = [h["file"] for h in _kinds(_synthesized(tmp_path, base, ORDER), "history")]
    assert files
    assert set(replay(base, ORDER, files).values()) == {"ok"}


def test_billing_histories_replay_on_their_own_base(billing: tuple[Path, list[dict[str, Any]]]) -> None:
    base, lines = billing
    files = [h["file"] for h in _kinds(lines, "history")]
    assert len(files) >= 6
    assert set(replay(base, BILLING_WF, files).values()) == {"ok"}


@pytest.mark.parametrize(
    "case",
    [
        "activities_reordered",
        "activity_removed",
        "activity_inserted_mid_sequence",
        "activity_by_reference_inserted",
        "timer_added",
        "timer_removed",
        "child_workflow_inserted",
        "activity_type_changed",
    ],
)
def test_a_command_changed_before_a_reached_wait_fails_replay(case: str, tmp_path: Path) -> None:
    files = [h["file"] for h in _kinds(_synthesized(tmp_path, CASES / case / "base", ORDER), "history")]
    outcomes = replay(CASES / case / "head", ORDER, files)
    assert "nondeterminism" in outcomes.values(), outcomes
    assert set(outcomes.values()) <= {"ok", "nondeterminism"}


@pytest.mark.parametrize("case", ["activity_appended_at_end", "activity_inserted_gated"])
def test_an_append_after_the_last_command_or_a_gated_change_fails_none(case: str, tmp_path: Path) -> None:
    files = [h["file"] for h in _kinds(_synthesized(tmp_path, CASES / case / "base", ORDER), "history")]
    assert len(files) >= 3
    assert set(replay(CASES / case / "head", ORDER, files).values()) == {"ok"}


@pytest.mark.parametrize("head", sorted(BILLING_HEADS))
def test_a_change_on_an_explored_path_fails_replay(
    head: str, billing: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Each change sits on a path only one variant reaches: failure, flipped input, the signal wait."""
    _, lines = billing
    tree = _billing(tmp_path / head, BILLING_HEADS[head])
    outcomes = replay(tree, BILLING_WF, [h["file"] for h in _kinds(lines, "history")])
    failing = {h["variant"] for h in _kinds(lines, "history") if outcomes[h["file"]] == "nondeterminism"}
    assert failing, outcomes
    assert "minimal" not in failing or head == "approval_wait_changed"


FULFILMENT = """import asyncio
from dataclasses import dataclass
from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
TIMEOUT = timedelta(minutes=5)


@dataclass
class Parcel:
    weight_grams: int
    fragile: bool


@reg.workflow(name="PackWorkflow")
class PackWorkflow:
    @workflow.run
    async def run(self, order_id: str) -> Parcel:
        return Parcel(100, False)


@reg.workflow(name="FulfilmentWorkflow")
class FulfilmentWorkflow:
    @workflow.run
    async def run(self, order_id: str) -> str:
        parcel = await workflow.execute_child_workflow(
            "PackWorkflow", Parcel, order_id, execution_start_to_close_timeout=timedelta(hours=1)
        )
        if parcel.fragile:
            await workflow.execute_activity("insure", str, order_id, schedule_to_close_timeout=TIMEOUT)
        await asyncio.gather(
            workflow.execute_activity("label", str, order_id, schedule_to_close_timeout=TIMEOUT),
            workflow.execute_activity("invoice", str, order_id, schedule_to_close_timeout=TIMEOUT),
        )
        return order_id
"""
FULFILMENT_WF = {"type": "FulfilmentWorkflow", "module": "shop.workflows", "class": "FulfilmentWorkflow"}


def test_children_and_concurrent_activities_are_waits_too(tmp_path: Path) -> None:
    base = _tree(tmp_path / "base", {"shop/__init__.py": "", "shop/workflows.py": FULFILMENT})
    lines = _synthesized(tmp_path, base, FULFILMENT_WF)
    points = [(h["variant"], h["point"]) for h in _kinds(lines, "history")]
    assert ("minimal", "child PackWorkflow") in points
    assert ("minimal", "activity label, activity invoice") in points
    assert ("flipped", "activity insure") in points  # the child's declared Parcel, flipped: fragile
    (reached,) = _kinds(lines, "reached")
    assert reached["commands"] == [
        "activity insure",
        "activity invoice",
        "activity label",
        "child PackWorkflow",
    ]
    files = [h["file"] for h in _kinds(lines, "history")]
    assert set(replay(base, FULFILMENT_WF, files).values()) == {"ok"}
    # Deterministic: the same base gives the same files, byte for byte.
    (tmp_path / "again").mkdir()
    again = _kinds(_synthesized(tmp_path / "again", base, FULFILMENT_WF), "history")
    assert [Path(h["file"]).read_bytes() for h in again] == [Path(f).read_bytes() for f in files]
    # The two concurrent activities swapped: an execution waiting on both no longer matches.
    swapped = (
        FULFILMENT.replace('("label"', '("@"').replace('("invoice"', '("label"').replace('("@"', '("invoice"')
    )
    head = _tree(tmp_path / "head", {"shop/__init__.py": "", "shop/workflows.py": swapped})
    assert swapped != FULFILMENT
    assert "nondeterminism" in replay(head, FULFILMENT_WF, files).values()


# --- budgets -------------------------------------------------------------------------------------
POLLING = """from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()


@reg.activity(name="status")
async def status(job: str) -> bool:
    return True


@reg.workflow(name="PollWorkflow")
class PollWorkflow:
    @workflow.run
    async def run(self, job: str) -> str:
        while not await status.execute(job):
            await workflow.sleep(timedelta(minutes=10))
        return job
"""
POLL_WF = {"type": "PollWorkflow", "module": "polling.workflows", "class": "PollWorkflow"}


def test_budgets_cut_exploration_and_say_so(tmp_path: Path) -> None:
    base = _tree(tmp_path / "base", {"polling/__init__.py": "", "polling/workflows.py": POLLING})
    lines = _synthesized(tmp_path, base, POLL_WF, executions=2, histories=5, max_events=120)
    histories = _kinds(lines, "history")
    (reached,) = _kinds(lines, "reached")
    assert reached["executions"] == 2 and reached["variants"] == ["minimal", "flipped"]
    assert reached["truncated"] is True  # the minimal poll never ends, and failures were left out
    assert len(histories) == 5
    minimal = [h["event_id"] for h in histories if h["variant"] == "minimal"]
    assert minimal[0] == 5 and max(minimal) <= 120 + 10  # first and last wait kept, spread between
    assert minimal == sorted(minimal) and len(minimal) >= 3
    assert set(replay(base, POLL_WF, [h["file"] for h in histories]).values()) == {"ok"}


# --- bad input -----------------------------------------------------------------------------------
BROKEN = "import missing_dependency_of_the_base\n"
OPAQUE = """from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
print("importing handles")  # the protocol owns stdout: this goes to stderr


class Handle:
    def __init__(self, raw):
        self.raw = raw


@reg.activity(name="open_handle")
async def open_handle(name: str) -> Handle:
    return Handle(name)


@reg.workflow(name="HandleWorkflow")
class HandleWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.execute_activity("reserve", str, name, schedule_to_close_timeout=timedelta(minutes=1))
        handle = await open_handle.execute(name)
        return str(handle.raw)
"""


def test_bad_input_is_an_error_line_and_the_rest_is_written(tmp_path: Path) -> None:
    base = _tree(
        tmp_path / "base",
        {
            "broken/__init__.py": "",
            "broken/workflows.py": BROKEN,
            "handles/__init__.py": "",
            "handles/workflows.py": OPAQUE,
        },
    )
    broken = {"type": "BrokenWorkflow", "module": "broken.workflows", "class": "BrokenWorkflow"}
    handles = {"type": "HandleWorkflow", "module": "handles.workflows", "class": "HandleWorkflow"}
    code, lines, stderr = synthesize(base, tmp_path / "out", [broken, handles, ORDER])
    assert code == 0 and lines[-1] == {"kind": "done"}
    assert "importing handles" in stderr
    errors = {(e["type"], e["message"]) for e in _kinds(lines, "error")}
    assert any(t == "BrokenWorkflow" and "missing_dependency_of_the_base" in m for t, m in errors), errors
    assert any(t == "HandleWorkflow" and "cannot build Handle" in m for t, m in errors), errors
    assert any(t == "OrderWorkflow" and "ModuleNotFoundError" in m for t, m in errors), errors
    reached = {r["type"]: r for r in _kinds(lines, "reached")}
    assert reached["BrokenWorkflow"]["executions"] == 0 and reached["OrderWorkflow"]["executions"] == 0
    written = [h for h in _kinds(lines, "history") if h["type"] == "HandleWorkflow"]
    assert {h["point"] for h in written} == {"activity reserve", "activity open_handle"}
    assert set(replay(base, handles, [h["file"] for h in written]).values()) == {"ok"}


def test_an_interpreter_that_cannot_synthesize_is_one_line_and_exit_2(tmp_path: Path) -> None:
    base = CASES / "activity_removed" / "base"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    code, lines, _ = synthesize(base, tmp_path / "out", [ORDER], python=tmp_path / "bare" / "bin" / "python")
    assert code == 2
    assert [line["kind"] for line in lines] == ["error"]
    assert "cadence-python-client" in lines[0]["message"] and "not supported" in lines[0]["message"]
    # This interpreter with hypothesis made unimportable (a None entry in sys.modules).
    shim = tmp_path / "nohypothesis.py"
    shim.write_text(
        "import runpy, sys\nsys.modules['hypothesis'] = None\nsys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"paths": [str(base)], "workflows": [_entry(base, ORDER)], "out": str(tmp_path / "o")})
    )
    run = subprocess.run(
        [sys.executable, str(shim), str(DRIVER), str(config)],
        cwd=base,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (line,) = [json.loads(x) for x in run.stdout.splitlines()]
    assert line["kind"] == "error" and "needs hypothesis" in line["message"]
    assert not (tmp_path / "o").exists()
    # A config it cannot use: one line, exit 2, nothing written.
    for text in ("{", json.dumps({"workflows": [], "out": str(tmp_path / "o"), "executions": "many"})):
        config.write_text(text)
        run = subprocess.run(
            [sys.executable, str(DRIVER), str(config)], cwd=base, capture_output=True, text=True, check=False
        )
        (line,) = [json.loads(x) for x in run.stdout.splitlines()]
        assert run.returncode == 2 and line["kind"] == "error" and "config" in line["message"], line
    assert not (tmp_path / "o").exists()
    shutil.rmtree(tmp_path / "bare")
