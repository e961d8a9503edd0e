"""The outline proof (bot/engines/python/outline_proof.py) on realistic workflows, on a real dev server.

Each case records in-flight and closed histories of its BASE code on the session's dev server (its own
recorder, not the product's), hands them to the check as production histories, and lets synthesis
record more. The check either shows an outline (and says how it was proven) or withholds it (and
says why). A shown outline is then checked here on its own: `git apply` to head, and every recorded
base history replayed on the outlined head with `temporalio.worker.Replayer`, in a fresh process.
Never a shown outline the engine rejects.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from gitrepo import make_repo
from truth_recorder import in_flight_prefixes

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check
from bot.report.render import markdown

ACTIVITIES = """\
from temporalio import activity
from temporalio.exceptions import ApplicationError


@activity.defn
async def reserve(order_id: str) -> str:
    return order_id


@activity.defn
async def charge(order_id: str) -> str:
    if order_id.startswith("declined"):
        raise ApplicationError("card declined", non_retryable=True)
    return "charged"


@activity.defn
async def fraud_check(order_id: str) -> bool:
    return True


@activity.defn
async def refund(order_id: str) -> None:
    return None


@activity.defn
async def release(order_id: str) -> None:
    return None


@activity.defn
async def ship(order_id: str) -> str:
    return "shipped"


@activity.defn
async def poll_status(job_id: str) -> str:
    return "done" if job_id.startswith("done") else "pending"


@activity.defn
async def report_progress(job_id: str) -> None:
    return None
"""

HEADER = """\
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from app.activities import (
        charge,
        fraud_check,
        poll_status,
        refund,
        release,
        report_progress,
        reserve,
        ship,
    )

T = timedelta(seconds=10)
ONCE = RetryPolicy(maximum_attempts=1)
"""


def files(cls: str, body: str) -> dict[str, str]:
    text = (
        HEADER
        + f"\n\n@workflow.defn\nclass {cls}:\n    @workflow.run\n    async def run(self, key: str) -> str:\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)
        + "\n"
    )
    return {"app/__init__.py": "", "app/activities.py": ACTIVITIES, "app/workflows.py": text}


def act(name: str, arg: str = "key") -> str:
    return f"await workflow.execute_activity({name}, {arg}, start_to_close_timeout=T, retry_policy=ONCE)"


ORDER_BASE = f"""
{act("reserve")}
{act("charge")}
return {act("ship")}
"""
# A fraud check inserted between reserve and charge.
ORDER_HEAD = f"""
{act("reserve")}
ok = {act("fraud_check")}
if not ok:
    return "rejected"
{act("charge")}
return {act("ship")}
"""

SAGA_BASE = f"""
{act("reserve")}
try:
    {act("charge")}
except ActivityError:
    {act("release")}
    {act("refund")}
    return "compensated"
await workflow.sleep(timedelta(days=30))
return {act("ship")}
"""
# The refund compensation dropped from the except handler.
SAGA_HEAD = f"""
{act("reserve")}
try:
    {act("charge")}
except ActivityError:
    {act("release")}
    return "compensated"
await workflow.sleep(timedelta(days=30))
return {act("ship")}
"""

POLL_BASE = f"""
for _ in range(3):
    status = {act("poll_status")}
    if status == "done":
        return status
    await workflow.sleep(timedelta(milliseconds=20))
workflow.continue_as_new(key)
"""
# The pause between polls swapped for a progress report.
POLL_HEAD = f"""
for _ in range(3):
    status = {act("poll_status")}
    if status == "done":
        return status
    {act("report_progress")}
workflow.continue_as_new(key)
"""

TIMER_BASE = f"""
{act("reserve")}
return {act("ship")}
"""
# A 30-day cooling-off timer added before shipping.
TIMER_HEAD = f"""
{act("reserve")}
await workflow.sleep(timedelta(days=30))
return {act("ship")}
"""

FINALLY_BASE = f"""
try:
    {act("charge")}
finally:
    {act("release")}
    {act("report_progress")}
return {act("ship")}
"""
# The progress report dropped from the `finally` block.
FINALLY_HEAD = f"""
try:
    {act("charge")}
finally:
    {act("release")}
return {act("ship")}
"""

LOOP_BASE = f"""
for _ in range(2):
    {act("reserve")}
    {act("fraud_check")}
return {act("ship")}
"""
# The fraud check dropped from inside the loop.
LOOP_HEAD = f"""
for _ in range(2):
    {act("reserve")}
return {act("ship")}
"""

RENAMED_BASE = f"""
{act("reserve")}
return {act("charge")}
"""
# The `charge` activity function renamed `capture` (its activity type changes with it).
RENAMED_HEAD = f"""
{act("reserve")}
return {act("capture")}
"""

CHILD = """

@workflow.defn
class {name}:
    @workflow.run
    async def run(self, key: str) -> str:
        return key
"""
CHILD_BASE = f"""
{act("reserve")}
return await workflow.execute_child_workflow(Invoice.run, key, id=key + "-invoice")
"""
# The child workflow class renamed `InvoiceV2` (without `name=`: its type changes).
CHILD_HEAD = f"""
{act("reserve")}
return await workflow.execute_child_workflow(InvoiceV2.run, key, id=key + "-invoice")
"""

CAN_BASE = f"""
{act("reserve")}
if key.startswith("again"):
    await workflow.sleep(timedelta(days=1))
    workflow.continue_as_new("done-" + key)
return {act("ship")}
"""
# A progress report added before the pause that precedes the continue-as-new (open executions wait
# on the pause; one added after it, where nothing waits, needs no gate).
CAN_HEAD = f"""
{act("reserve")}
if key.startswith("again"):
    {act("report_progress")}
    await workflow.sleep(timedelta(days=1))
    workflow.continue_as_new("done-" + key)
return {act("ship")}
"""

CASES = {
    "order": ("OrderWorkflow", ORDER_BASE, ORDER_HEAD, ["o-1", "o-2"]),
    "refund_saga": ("RefundSaga", SAGA_BASE, SAGA_HEAD, ["ok-1", "declined-1"]),
    "polling_loop": ("JobPoller", POLL_BASE, POLL_HEAD, ["pending-1", "done-1"]),
    "timer": ("ShipmentWorkflow", TIMER_BASE, TIMER_HEAD, ["s-1"]),
    "finally_removed": ("SettleWorkflow", FINALLY_BASE, FINALLY_HEAD, ["ok-1", "declined-1"]),
    "loop_removed": ("BatchWorkflow", LOOP_BASE, LOOP_HEAD, ["b-1"]),
    "activity_renamed": ("ChargeWorkflow", RENAMED_BASE, RENAMED_HEAD, ["c-1"]),
    "child_renamed": ("BillingWorkflow", CHILD_BASE, CHILD_HEAD, ["i-1"]),
    "continue_as_new": ("RepeatWorkflow", CAN_BASE, CAN_HEAD, ["again-1", "once-1"]),
}


def trees(case: str) -> tuple[str, dict[str, str], dict[str, str], list[str]]:
    """A case's workflow class, base and head trees, and the inputs its recorder starts."""
    cls, base_body, head_body, inputs = CASES[case]
    base, head = files(cls, base_body), files(cls, head_body)
    if case == "activity_renamed":
        head["app/activities.py"] = ACTIVITIES.replace("async def charge(", "async def capture(")
        head["app/workflows.py"] = head["app/workflows.py"].replace("        charge,\n", "        capture,\n")
    if case == "child_renamed":
        base["app/workflows.py"] += CHILD.format(name="Invoice")
        head["app/workflows.py"] += CHILD.format(name="InvoiceV2")
    return cls, base, head, inputs


# Every case here has an outline the engine accepts: insertions, a timer, a compensation removed from
# an `except` handler (restored in that handler), a timer swapped for an activity in a loop.
SHOWN = {"order", "timer", "refund_saga", "polling_loop"}

RECORDER = """\
import asyncio, json, sys, uuid
sys.path.insert(0, sys.argv[1])
from temporalio.client import Client
from temporalio.worker import Worker
import app.activities as acts
import app.workflows as wfs

async def main(address, cls, inputs, out):
    client = await Client.connect(address)
    queue = "proof-" + uuid.uuid4().hex[:8]
    activities = [v for v in vars(acts).values() if hasattr(v, "__temporal_activity_definition")]
    async with Worker(client, task_queue=queue, workflows=[getattr(wfs, cls)], activities=activities):
        for key in inputs:
            handle = await client.start_workflow(cls, key, id=f"{cls}-{key}-{queue}", task_queue=queue)
            try:
                await asyncio.wait_for(handle.result(follow_runs=False), 3)
            except BaseException:
                pass  # still running (a 30-day timer), failed, or continued as new
            # The run started here, not the one it continued as (its history may be one event long).
            history = await client.get_workflow_handle(handle.id, run_id=handle.result_run_id).fetch_history()
            with open(f"{out}/{cls}-{key}.json", "w") as f:
                f.write(history.to_json())
    print("ok", flush=True)

import os
asyncio.run(main(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]))
sys.stdout.flush()
os._exit(0)
"""

REPLAYER = """\
import asyncio, glob, json, os, sys
sys.path.insert(0, sys.argv[1])
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
import app.workflows as wfs

async def main(cls, folder):
    failures = []
    count = 0
    for path in sorted(glob.glob(f"{folder}/*.json")):
        history = WorkflowHistory.from_json(os.path.basename(path), open(path).read())
        result = await Replayer(workflows=[getattr(wfs, cls)]).replay_workflow(
            history, raise_on_replay_failure=False
        )
        count += 1
        if result.replay_failure is not None:
            failures.append(f"{os.path.basename(path)}: {result.replay_failure}")
    print(json.dumps({"replayed": count, "failures": failures}), flush=True)

asyncio.run(main(sys.argv[2], sys.argv[3]))
sys.stdout.flush()
os._exit(0)
"""


def write(root: Path, tree: dict[str, str]) -> Path:
    for rel, text in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def record(tmp: Path, server: str, cls: str, base: dict[str, str], inputs: list[str]) -> Path:
    """Histories of the base code, recorded on the dev server by this test's own worker."""
    code, out = write(tmp / "base-code", base), tmp / "histories"
    out.mkdir()
    script = tmp / "recorder.py"
    script.write_text(RECORDER, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(code), server, cls, json.dumps(inputs), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    assert len(list(out.glob("*.json"))) == len(inputs)
    return out


def replay_on(code: Path, cls: str, histories: Path, tmp: Path) -> dict[str, object]:
    script = tmp / "replayer.py"
    script.write_text(REPLAYER, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(code), cls, str(histories)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert line.startswith("{"), proc.stderr[-2000:]
    result: dict[str, object] = json.loads(line)
    return result


def check(tmp: Path, base: dict[str, str], head: dict[str, str], server: str, histories: Path) -> Report:
    repo = make_repo(tmp / "repo", base, head)
    config = tmp / "inflight-guard.yml"
    config.write_text(f"temporal:\n  dev_server: {server}\n", encoding="utf-8")
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            head="HEAD",
            config=config,
            replay=ReplayOptions(sources=[str(histories)], cache=None, jobs=1),
            synthesize="always",
        )
    )


def apply(tmp: Path, head: dict[str, str], outline: str) -> Path:
    """Head with the outline applied by `git apply`, in a folder of its own."""
    repo = make_repo(tmp / "outlined", head, head)
    root = Path(repo.working_dir)
    (root / ".outline.patch").write_text(outline, encoding="utf-8")
    repo.git.apply(str(root / ".outline.patch"))
    (root / ".outline.patch").unlink()
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_outline_is_proven_or_withheld(case: str, tmp_path: Path, server: str) -> None:
    cls, base, head, inputs = trees(case)
    histories = record(tmp_path, server, cls, base, inputs)

    # The head as written breaks these histories: the outline is needed.
    plain = replay_on(write(tmp_path / "head-code", head), cls, histories, tmp_path)
    assert plain["failures"], f"{case}: head alone replays every base history; the case tests nothing"

    report = check(tmp_path, base, head, server, histories)
    plan = report.plan
    assert bool(plan.outline) != bool(plan.outline_withheld), plan
    if case in SHOWN:
        assert plan.outline, plan.outline_withheld
    comment = markdown(report)
    if plan.outline_withheld:
        assert "not shown" in plan.outline_withheld
        assert "withheld" in comment
        return
    # Shown: the report says how it was proven, with the production and synthesized replays.
    assert plan.outline_proof.startswith("proven: ")
    assert "compile" in plan.outline_proof and "no undefined names" in plan.outline_proof
    assert f"{len(inputs)} production" in plan.outline_proof, plan.outline_proof
    assert "static verdict on the outlined head: not breaking" in plan.outline_proof
    assert plan.outline_proof in " ".join(comment.split()).replace("\\", "")
    # And independently: applied with git, every recorded base history replays on it.
    outlined = apply(tmp_path, head, plan.outline)
    got = replay_on(outlined, cls, histories, tmp_path)
    assert got == {"replayed": len(inputs), "failures": []}, plan.outline

    # The other direction (the rollback): the outlined build's own executions, recorded here and cut
    # at every in-flight point, replayed on base. The rollback section must say what they show.
    shipped = {rel: (outlined / rel).read_text(encoding="utf-8") for rel in head}
    failures = in_flight_failures(tmp_path / "rollback", server, cls, shipped, base, inputs)
    said = " ".join(s for s in plan.rollback if s.startswith(f"`{cls}`"))
    assert "recorded on head with the outline" in said, said
    if failures:
        assert "do not roll back to the base build" in said and "plain revert is safe:" not in said, (
            failures,
            said,
        )
        assert "recorded on the new build" in said and "synthesized from base" not in said, said
        assert "old workers fail the workflow task" in said, said
    else:
        assert "a plain revert is safe: all" in said, said
    assert plan.rollback_proof in " ".join(comment.split())


def in_flight_failures(
    tmp: Path, server: str, cls: str, shipped: dict[str, str], base: dict[str, str], inputs: list[str]
) -> list[str]:
    """Executions of `shipped` recorded by this test's own worker, cut at every point one can be in
    flight (tests/truth_recorder.py), replayed on `base` by the Replayer: the failures."""
    tmp.mkdir(parents=True, exist_ok=True)
    histories = record(tmp, server, cls, shipped, inputs)
    cuts = tmp / "in-flight"
    cuts.mkdir()
    for path in sorted(histories.glob("*.json")):
        for i, prefix in enumerate(in_flight_prefixes(json.loads(path.read_text(encoding="utf-8")))):
            (cuts / f"{path.stem}@{i}.json").write_text(json.dumps(prefix), encoding="utf-8")
    got = replay_on(write(tmp / "base-for-replay", base), cls, cuts, tmp)
    assert got["replayed"] == len(list(cuts.glob("*.json"))) > 0, got
    failures = got["failures"]
    assert isinstance(failures, list)
    return [str(f) for f in failures]


def static_check(
    tmp: Path, base: dict[str, str], head: dict[str, str], *, run_pr_code: bool = True
) -> Report:
    repo = make_repo(tmp / "repo", base, head)
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir), base="main", head="HEAD", synthesize="off", run_pr_code=run_pr_code
        )
    )


def test_without_histories_the_proof_says_nothing_was_replayed(tmp_path: Path) -> None:
    cls, base_body, head_body, _ = CASES["order"]
    plan = static_check(tmp_path, files(cls, base_body), files(cls, head_body)).plan
    assert plan.outline and not plan.outline_withheld
    assert "no histories to replay" in plan.outline_proof
    assert "static verdict on the outlined head: not breaking" in plan.outline_proof


def test_a_static_only_job_proves_without_running_code(tmp_path: Path) -> None:
    cls, base_body, head_body, _ = CASES["refund_saga"]
    plan = static_check(tmp_path, files(cls, base_body), files(cls, head_body), run_pr_code=False).plan
    assert plan.outline
    assert "not replayed on it (static-only job" in plan.outline_proof
    # The compensation goes back into the handler it was removed from, not after the try statement.
    assert '            if not workflow.patched("refund-saga-refund"):' in plan.outline


def test_an_activity_name_rename_is_withheld_not_gated_with_identical_branches(tmp_path: Path) -> None:
    cls, body, _, _ = CASES["order"]
    base = files(cls, body)
    head = {
        **base,
        "app/activities.py": ACTIVITIES.replace(
            "@activity.defn\nasync def charge", '@activity.defn(name="charge-card")\nasync def charge'
        ),
    }
    report = static_check(tmp_path, base, head)
    assert report.verdict.level.value == "breaking"
    assert not report.plan.outline
    assert "two identical branches" in report.plan.outline_withheld
    assert "withheld" in markdown(report)


def test_the_drain_window_is_what_open_histories_wait_on(tmp_path: Path, server: str) -> None:
    """An execution in flight on a 30-day timer: the runbook's drain window is that timer's fire time
    (its TimerStarted event's time plus its duration, read here from the recorded history), with the
    sample it comes from, not a guess from closed runs."""
    cls, base, head, _ = trees("refund_saga")
    histories = record(tmp_path, server, cls, base, ["ok-1"])  # charged: now sleeping 30 days
    events = json.loads((histories / f"{cls}-ok-1.json").read_text(encoding="utf-8"))["events"]
    [timer] = [e for e in events if e["eventType"] == "EVENT_TYPE_TIMER_STARTED"]
    assert not any(e["eventType"] == "EVENT_TYPE_TIMER_FIRED" for e in events)
    started = datetime.fromisoformat(timer["eventTime"].replace("Z", "+00:00"))
    seconds = float(timer["timerStartedEventAttributes"]["startToFireTimeout"].rstrip("s"))
    due = (started + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M")
    report = check(tmp_path, base, head, server, histories)
    [window] = [s for s in report.plan.runbook if s.startswith(f"Drain window for `{cls}`")]
    assert f"wait on a timer due by {due}" in window, window
    assert "1 of 1 open histories supplied" in window, window
