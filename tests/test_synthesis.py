"""Histories synthesized from the base code (bot/synthesize.py, bot/engines/synthesis.py, the Temporal
driver) on a real Temporal dev server, replayed on head by the product's runner.

Each case is a small order workflow whose interesting path is only reached through one kind of
exploration: a 30-day timer, a signal, an activity failure, a branch on an activity result, a
continue-as-new loop. The head breaks the path; the synthesized histories must reach it and fail,
labelled as synthesized, and a harmless head must replay cleanly (no false alarm).
Most checks use the session's dev server (`temporal.dev_server`); one starts its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

ACTIVITIES = """\
from dataclasses import dataclass

from temporalio import activity


@dataclass
class Quote:
    approved: bool
    amount: int


@activity.defn
async def reserve(order_id: str) -> str:
    return order_id


@activity.defn
async def quote(order_id: str) -> Quote:
    return Quote(True, 1)


@activity.defn
async def charge(order_id: str) -> None:
    return None


@activity.defn
async def refund(order_id: str) -> None:
    return None


@activity.defn
async def notify(order_id: str) -> None:
    return None


@activity.defn
async def ship(order_id: str) -> None:
    return None
"""

HEADER = """\
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from app.activities import charge, notify, quote, refund, reserve, ship

T = timedelta(seconds=30)
ONCE = RetryPolicy(maximum_attempts=1)
"""


def workflow(body: str, extra: str = "") -> dict[str, str]:
    text = (
        HEADER
        + "\n\n@workflow.defn\nclass OrderWorkflow:\n"
        + "    def __init__(self) -> None:\n        self.packed = False\n\n"
        + "    @workflow.signal\n    def packed_signal(self) -> None:\n        self.packed = True\n\n"
        + extra
        + "    @workflow.run\n    async def run(self, order_id: str) -> str:\n"
        + "".join(f"        {line}\n" for line in body.strip("\n").splitlines())
    )
    return {"app/__init__.py": "", "app/activities.py": ACTIVITIES, "app/workflows.py": text}


def act(name: str) -> str:
    return f"await workflow.execute_activity({name}, order_id, start_to_close_timeout=T, retry_policy=ONCE)"


SLEEP = "await workflow.sleep(timedelta(days=30))"
WAIT = "await workflow.wait_condition(lambda: self.packed)"
END = 'return "done"'


def check(
    tmp_path: Path,
    base: dict[str, str],
    head: dict[str, str],
    *,
    server: str | None,
    mode: str | None = None,
    histories: list[str] | None = None,
    run_pr_code: bool = True,
    cache: Path | None = None,
) -> Report:
    repo = make_repo(tmp_path / "repo", base, head)
    config = tmp_path / "inflight-guard.yml"
    # Verdicts are what these tests look at: the rollback recording (tests/test_rollback_proof.py) is off.
    settings = f"temporal:\n  dev_server: {server}\n" if server else "version: 1\n"
    config.write_text(settings + "synthesis:\n  rollback: false\n", encoding="utf-8")
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            head="HEAD",
            config=config,
            replay=ReplayOptions(sources=histories or [], cache=cache),
            synthesize=mode,
            run_pr_code=run_pr_code,
        )
    )


def rules(report: Report) -> list[str]:
    return sorted(f.rule for f in report.findings if not f.suppressed)


def synthesized_failures(report: Report) -> list[str]:
    return [r.history for r in report.replay if r.synthesized and r.failed]


# (case, base body, head body): the head inserts `notify` on a path only one exploration reaches.
REACHED = [
    (
        "after a 30-day timer",
        [act("reserve"), SLEEP, act("charge"), END],
        [act("reserve"), SLEEP, act("notify"), act("charge"), END],
    ),
    (
        "after a signal",
        [act("reserve"), WAIT, act("charge"), END],
        [act("reserve"), WAIT, act("notify"), act("charge"), END],
    ),
    (
        "in an except path",
        [
            act("reserve"),
            "try:",
            f"    {act('charge')}",
            "except Exception:",
            f"    {act('refund')}",
            f"    {END}",
            act("ship"),
            END,
        ],
        [
            act("reserve"),
            "try:",
            f"    {act('charge')}",
            "except Exception:",
            f"    {act('notify')}",
            f"    {act('refund')}",
            f"    {END}",
            act("ship"),
            END,
        ],
    ),
    (
        "behind an approved quote",
        ["q = " + act("quote"), "if q.approved:", f"    {act('charge')}", f"    {act('ship')}", END],
        [
            "q = " + act("quote"),
            "if q.approved:",
            f"    {act('charge')}",
            f"    {act('notify')}",
            f"    {act('ship')}",
            END,
        ],
    ),
]


@pytest.mark.parametrize(("case", "base", "head"), REACHED, ids=[c[0] for c in REACHED])
def test_synthesis_reaches_and_proves_the_break(
    case: str, base: list[str], head: list[str], server: str, tmp_path: Path
) -> None:
    report = check(tmp_path, workflow("\n".join(base)), workflow("\n".join(head)), server=server)
    failing = synthesized_failures(report)
    assert failing, (case, report.synthesis, [(r.history, r.outcome) for r in report.replay])
    assert all(h.startswith("synthesized from base: OrderWorkflow/") for h in failing)
    assert "TMP160" in rules(report)
    tmp160 = next(f for f in report.findings if f.rule == "TMP160")
    static = next(f for f in report.findings if f.rule == "TMP101")
    # Located on the static finding that explains it, and that finding says what synthesis showed.
    assert tmp160.location == static.location
    assert "synthesized from base fail replay here" in static.replay
    assert report.verdict.level.value == "breaking"
    # Synthesized results are not production evidence: no replay gate is satisfied by them.
    assert not any(g.kind == "replay" and g.status == "satisfied" for g in report.gates)
    assert report.synthesis is not None and report.synthesis.workflows[0].failed == len(failing)


def test_a_harmless_change_replays_cleanly(server: str, tmp_path: Path) -> None:
    """Logging and a query added: every synthesized wait point replays on head (no false alarm)."""
    base = [
        act("reserve"),
        "q = " + act("quote"),
        "if q.approved:",
        f"    {act('charge')}",
        WAIT,
        act("ship"),
        END,
    ]
    head = ['workflow.logger.info("start")', *base]
    query = "    @workflow.query\n    def status(self) -> bool:\n        return self.packed\n\n"
    cache = tmp_path / "cache"
    report = check(
        tmp_path, workflow("\n".join(base)), workflow("\n".join(head), query), server=server, cache=cache
    )
    assert report.synthesis is not None
    # hypothesis's Unicode tables (seconds of CPU to compute) are kept in the cache for the next run.
    assert list((cache / "hypothesis" / "unicode_data").rglob("*.json.gz")), sorted(cache.rglob("*"))
    [w] = report.synthesis.workflows
    assert w.histories >= 4 and w.failed == 0, report.synthesis
    assert {"activity reserve", "activity quote", "activity charge", "activity ship"} <= set(w.commands)
    assert {"minimal", "flipped", "signals"} <= set(w.variants)
    assert "TMP160" not in rules(report) and report.verdict.level.value != "breaking"
    assert all(r.outcome == "ok" for r in report.replay if r.synthesized)


def test_continue_as_new_loop_is_followed(server: str, tmp_path: Path) -> None:
    """A polling loop that continues as new: the next run's wait points are recorded too."""
    loop = [
        "for _ in range(3):",
        f"    {act('reserve')}",
        "    await workflow.sleep(timedelta(hours=1))",
        "workflow.continue_as_new(order_id)",
    ]
    head = [*loop[:2], f"    {act('notify')}", *loop[2:]]
    report = check(tmp_path, workflow("\n".join(loop)), workflow("\n".join(head)), server=server)
    assert synthesized_failures(report), report.synthesis
    assert report.synthesis is not None and report.synthesis.workflows[0].histories >= 3


def test_production_histories_come_first(server: str, tmp_path: Path) -> None:
    """`auto` leaves a workflow covered by production histories alone; `always` records it too."""
    base = workflow("\n".join([act("reserve"), act("charge"), END]))
    head = workflow("\n".join([act("reserve"), act("notify"), act("charge"), END]))
    first = check(tmp_path / "a", base, head, server=server, mode="always")
    # Production histories: what synthesis recorded, written out as exports a user would supply.
    exported = tmp_path / "exports"
    exported.mkdir()
    recorded = _record_with_real_worker(server, tmp_path / "a" / "repo", exported)
    auto = check(tmp_path / "b", base, head, server=server, histories=[str(recorded)])
    assert auto.synthesis is not None and not auto.synthesis.workflows
    assert any("production histories replayed" in s for s in auto.synthesis.skipped), auto.synthesis
    assert not any(r.synthesized for r in auto.replay)
    always = check(tmp_path / "c", base, head, server=server, mode="always", histories=[str(recorded)])
    assert any(r.synthesized for r in always.replay) and any(not r.synthesized for r in always.replay)
    assert {"TMP130", "TMP160"} <= set(rules(always))
    assert first.synthesis is not None and first.synthesis.workflows


def _record_with_real_worker(server: str, repo: Path, out: Path) -> Path:
    """An in-flight production-like history of the base: a real worker whose `charge` never returns."""
    script = r"""
import asyncio, os, sys, uuid
sys.path.insert(0, sys.argv[2])
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from app.workflows import OrderWorkflow

@activity.defn(name="reserve")
async def reserve(order_id: str) -> str:
    return order_id

@activity.defn(name="charge")
async def charge(order_id: str) -> None:
    await asyncio.sleep(3600)

async def main():
    client = await Client.connect(sys.argv[1])
    queue = f"prod-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[OrderWorkflow], activities=[reserve, charge]):
        handle = await client.start_workflow(OrderWorkflow.run, "A-1", id=f"o-{uuid.uuid4()}", task_queue=queue)
        for _ in range(100):
            history = await handle.fetch_history()
            if any(e.HasField("activity_task_scheduled_event_attributes")
                   and e.activity_task_scheduled_event_attributes.activity_type.name == "charge"
                   for e in history.events):
                break
            await asyncio.sleep(0.1)
        open(sys.argv[3], "w").write(history.to_json())
        await handle.terminate()

asyncio.run(main())
sys.stdout.flush()
os._exit(0)  # the SDK's client sometimes aborts at interpreter exit: leave without its hooks
"""
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
    target = out / "order-a1.json"
    run = subprocess.run(
        [sys.executable, "-c", script, server, str(repo), str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    subprocess.run(["git", "checkout", "-q", "-"], cwd=repo, check=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(target.read_text())["events"]
    return out


def test_off_and_static_only_jobs_do_not_synthesize(server: str, tmp_path: Path) -> None:
    base = workflow("\n".join([act("reserve"), act("charge"), END]))
    head = workflow("\n".join([act("reserve"), act("notify"), act("charge"), END]))
    off = check(tmp_path / "off", base, head, server=server, mode="off")
    assert off.synthesis is None and not off.replay
    static = check(tmp_path / "static", base, head, server=server, run_pr_code=False)
    assert static.synthesis is not None and not static.synthesis.workflows
    assert any("static only" in s for s in static.synthesis.skipped)
    assert "TMP101" in rules(static) and "TMP160" not in rules(static)


def test_no_server_fails_closed(tmp_path: Path) -> None:
    """Nothing can be recorded (nobody listens at the configured server): TMP161, the check errors."""
    base = workflow("\n".join([act("reserve"), act("charge"), END]))
    head = workflow('workflow.logger.info("x")\n' + "\n".join([act("reserve"), act("charge"), END]))
    report = check(tmp_path, base, head, server="127.0.0.1:9")
    assert "TMP161" in rules(report), [f.message for f in report.findings]
    assert report.verdict.level.value == "error"


def test_no_server_under_a_breaking_finding_is_said_not_escalated(tmp_path: Path) -> None:
    """Static analysis already blocks the workflow: the missing proof is said (TMP162), the verdict
    stays breaking (exit 1), not an error."""
    base = workflow("\n".join([act("reserve"), act("charge"), END]))
    head = workflow("\n".join([act("reserve"), act("notify"), act("charge"), END]))
    report = check(tmp_path, base, head, server="127.0.0.1:9")
    assert {"TMP101", "TMP162"} <= set(rules(report)) and "TMP161" not in rules(report)
    assert report.verdict.level.value == "breaking"


def test_cli_starts_its_own_dev_server(tmp_path: Path) -> None:
    """The default path a user gets: no server configured, the CLI starts `temporal server start-dev`."""
    base = workflow("\n".join([act("reserve"), WAIT, act("charge"), END]))
    head = workflow("\n".join([act("reserve"), WAIT, act("notify"), act("charge"), END]))
    repo = make_repo(tmp_path / "repo", base, head)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "check",
            "--repo",
            repo.working_dir,
            "--base",
            "main",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["synthesis"]["server"].startswith("127.0.0.1:")
    assert any(f["rule"] == "TMP160" for f in report["findings"])
    assert "synthesized from base:" in run.stderr
