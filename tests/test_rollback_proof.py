"""The rollback proof (bot/engines/python/rollback_proof.py) against the engine's own answer.

For each case the check is run as a user runs it (synthesis on, the session's dev server). Then this
test records executions of the code the change ships (head, or head with the shown outline applied by
`git apply`) with its OWN worker, and replays them on the base code with `temporalio.worker.Replayer`
in a fresh process. The rollback section must agree with that replay: "a plain revert is safe" only
when every such history replays on base, "do not roll back" when one fails. The commands the section
and the canary plan print to prove a revert are run too, as printed.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import git
from gitrepo import make_repo
from test_outline_proof import CASES, act, files, in_flight_failures, record, replay_on, write

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check
from bot.policy import Rule, builtin_packs

# A signal handler removed while executions may wait for it: gated by a drain, no code outline.
APPROVAL = """\
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.activities import reserve, ship

T = timedelta(seconds=10)


@workflow.defn
class ApprovalWorkflow:
    def __init__(self) -> None:
        self.approved = False
        self.cancelled = False

    @workflow.signal
    def approve(self) -> None:
        self.approved = True
{cancel}
    @workflow.run
    async def run(self, key: str) -> str:
        await workflow.execute_activity(reserve, key, start_to_close_timeout=T)
        await workflow.wait_condition(lambda: self.approved or self.cancelled, timeout=timedelta(days=1))
        if self.cancelled:
            return "cancelled"
        return await workflow.execute_activity(ship, key, start_to_close_timeout=T)
"""
CANCEL = """
    @workflow.signal
    def cancel(self) -> None:
        self.cancelled = True
"""


def approval(with_cancel: bool) -> dict[str, str]:
    tree = files("OrderWorkflow", "return key")
    tree["app/workflows.py"] = APPROVAL.format(cancel=CANCEL if with_cancel else "")
    return tree


def check(repo: git.Repo, server: str | None, tmp: Path, synthesize: str = "always") -> Report:
    config = tmp / "inflight-guard.yml"
    config.write_text(f"temporal:\n  dev_server: {server}\n" if server else "version: 1\n", encoding="utf-8")
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            head="HEAD",
            config=config,
            replay=ReplayOptions(cache=None, jobs=1),
            synthesize=synthesize,
        )
    )


INPUTS = ["r-1", "declined-2", "done-3"]


def engine_says(tmp: Path, server: str, cls: str, shipped: dict[str, str], base: dict[str, str]) -> list[str]:
    """The Replayer's failures on base for the shipped code's in-flight points (recorded under
    `tmp/shipped`, cut into `tmp/shipped/in-flight`)."""
    return in_flight_failures(tmp / "shipped", server, cls, shipped, base, INPUTS)


def outlined(tmp: Path, head: dict[str, str], outline: str) -> dict[str, str]:
    root = tmp / "outlined-tree"
    repo = make_repo(root, head, head)
    (root / ".outline.patch").write_text(outline, encoding="utf-8")
    repo.git.apply(str(root / ".outline.patch"))
    return {rel: (root / rel).read_text(encoding="utf-8") for rel in head}


def about(report: Report, cls: str) -> str:
    return " ".join(s for s in report.plan.rollback if s.startswith(f"`{cls}`"))


def run_printed(command: str, cwd: Path, histories: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run an `inflight-guard ...` command exactly as printed (the tool's console script is `python -m bot`)."""
    argv = shlex.split(command)
    assert argv[0] == "inflight-guard", command
    if histories is not None:
        argv = [str(histories) if a == "histories/" else a for a in argv]
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_canary_revert_check_runs_as_printed(tmp_path: Path, server: str) -> None:
    """The canary step that replays canary histories on base, run as printed on histories this test
    recorded on the outlined build: it fails exactly the ones the Replayer fails."""
    cls, base_body, head_body, _ = CASES["order"]
    base, head = files(cls, base_body), files(cls, head_body)
    repo = make_repo(tmp_path / "repo", base, head)
    report = check(repo, server, tmp_path)
    assert report.plan.outline, report.plan.outline_withheld
    failures = engine_says(tmp_path, server, cls, outlined(tmp_path, head, report.plan.outline), base)
    step = next(s for s in report.plan.canary if "replay the same histories on the base build" in s)
    command = next(c for c in re.findall(r"`([^`]+)`", step) if c.startswith("inflight-guard"))
    (Path(repo.working_dir) / ".outline.patch").write_text(report.plan.outline, encoding="utf-8")
    repo.git.apply(".outline.patch")
    (Path(repo.working_dir) / ".outline.patch").unlink()
    repo.git.add(A=True)
    repo.index.commit("the versioning outline")
    proc = run_printed(
        command + " --synthesize off --format json",
        Path(repo.working_dir),
        tmp_path / "shipped" / "in-flight",
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    replayed = Report.model_validate_json(proc.stdout).replay
    assert len(replayed) == len(list((tmp_path / "shipped" / "in-flight").glob("*.json")))
    assert sum(1 for r in replayed if r.failed) == len(failures), [r.message for r in replayed if r.failed]
    assert failures  # a marker the base code does not call: this case is a failing revert


def test_a_dropped_signal_handler_reverts_safely_as_the_replay_shows(tmp_path: Path, server: str) -> None:
    base, head = approval(True), approval(False)
    repo = make_repo(tmp_path / "repo", base, head)
    report = check(repo, server, tmp_path)
    assert report.verdict.level.value == "breaking"  # the drain gate of the removed handler
    failures = engine_says(tmp_path, server, "ApprovalWorkflow", head, base)
    assert failures == []
    said = about(report, "ApprovalWorkflow")
    assert "a plain revert is safe: all" in said and "recorded on head" in said, said
    assert "do not roll back" not in said, said


def test_unproven_rollback_says_so_and_its_proof_command_runs(tmp_path: Path, server: str) -> None:
    cls, base_body, head_body, _ = CASES["order"]
    base, head = files(cls, base_body), files(cls, head_body)
    # The printed command reads its config from the base branch, as a user's repository holds it.
    config = {".github/inflight-guard.yml": f"temporal:\n  dev_server: {server}\n"}
    repo = make_repo(tmp_path / "repo", {**base, **config}, {**head, **config})
    report = check(repo, server, tmp_path, synthesize="off")
    said = about(report, cls)
    assert "rollback NOT proven (synthesis is off" in said, said
    assert "treat a revert to the base build as unsafe" in said and "a plain revert is safe:" not in said
    assert report.plan.rollback_proof.startswith("not proven: synthesis is off")
    # The proof command, as printed (the outline committed first, as it says), with this session's server.
    command = re.findall(r"commit the outline, then `([^`]+)`", said)[0]
    (Path(repo.working_dir) / "o.patch").write_text(report.plan.outline, encoding="utf-8")
    repo.git.apply("o.patch")
    (Path(repo.working_dir) / "o.patch").unlink()
    repo.git.add(A=True)
    repo.index.commit("the versioning outline")
    proc = run_printed(command + " --format json", Path(repo.working_dir))
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    swapped = Report.model_validate_json(proc.stdout)
    recorded = [r for r in swapped.replay if r.synthesized]
    assert recorded, textwrap.shorten(proc.stdout, 2000)
    # The outlined build's histories fail on base exactly when the Replayer fails this test's own.
    failures = engine_says(tmp_path, server, cls, outlined(tmp_path, head, report.plan.outline), base)
    assert any(r.failed for r in recorded) == bool(failures), [r.message for r in recorded if r.failed]


def _patch_case(call: str) -> dict[str, str]:
    lines = {
        "patched": f'if workflow.patched("ship-first"):\n    {act("ship")}\nreturn {act("reserve")}',
        "deprecated": f'workflow.deprecate_patch("ship-first")\n{act("ship")}\nreturn {act("reserve")}',
        "none": f"{act('ship')}\nreturn {act('reserve')}",
    }
    return files("PatchLifecycle", lines[call])


def test_patch_marker_texts_say_what_the_replayer_does(tmp_path: Path, server: str) -> None:
    """TMP118's text against the Replayer: a marker recorded under `deprecate_patch` replays on code
    without the call; one recorded under `patched()` does not."""
    none = write(tmp_path / "none-code", _patch_case("none"))
    got = {}
    for call in ("patched", "deprecated"):
        histories = record(tmp_path / call, server, "PatchLifecycle", _patch_case(call), ["p-1"])
        got[call] = replay_on(none, "PatchLifecycle", histories, tmp_path)
    assert got["deprecated"] == {"replayed": 1, "failures": []}, got
    assert got["patched"]["failures"] and "Non-deprecated patch marker" in str(got["patched"]["failures"])
    text = " ".join(next(r for r in rules() if r.id == "TMP118").message.split())
    assert "under `deprecate_patch` replay without the call" in text, text
    assert "recorded it under `workflow.patched()`" in text and "fail replay" in text, text


BUFFERING = """\
import asyncio, sys, uuid
from datetime import timedelta
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@workflow.defn
class LateHandler:
    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(seconds=1))  # the signal arrives while no handler exists
        workflow.set_signal_handler("cancel", lambda: self.got.append("cancel"))
        try:  # the handler runs as its own task: give it the chance
            await workflow.wait_condition(lambda: bool(self.got), timeout=timedelta(seconds=5))
        except asyncio.TimeoutError:
            pass
        return ",".join(self.got) or "nothing"


async def main(address: str) -> None:
    client = await Client.connect(address)
    queue = "buffer-" + uuid.uuid4().hex[:8]
    # Defined in __main__: the sandbox cannot re-import it, and nothing here needs isolating.
    runner = UnsandboxedWorkflowRunner()
    async with Worker(client, task_queue=queue, workflows=[LateHandler], workflow_runner=runner):
        handle = await client.start_workflow(LateHandler.run, id=queue, task_queue=queue)
        await handle.signal("cancel")
        print(await handle.result(), flush=True)

asyncio.run(main(sys.argv[1]))
"""


def test_signal_text_says_what_the_sdk_does_with_a_signal_that_has_no_handler(
    tmp_path: Path, server: str
) -> None:
    """TMP112's text against the SDK: a signal sent while no handler exists is kept (a handler set
    later receives it), not dropped; an execution whose handler was removed still never sees it."""
    script = tmp_path / "buffering.py"
    script.write_text(BUFFERING, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), server], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.stdout.strip().splitlines()[-1:] == ["cancel"], proc.stderr[-2000:]
    text = " ".join(next(r for r in rules() if r.id == "TMP112").message.split())
    assert "buffers a signal that has no handler" in text and "dropped" not in text, text


def rules() -> list[Rule]:
    return [r for pack in builtin_packs() for r in pack.rules]
