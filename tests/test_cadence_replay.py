"""Cadence replay: the adapter over the SDK's internals, the history readers, and `check --histories`.

Histories are recorded by running base workflows on cadence-python-client's own decision engine
(tests/cadence_recorder.py plays the server's part); nothing here is a hand-written event list
except the malformed files.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from cadence_recorder import load_runner, record, to_proto_json, to_thrift_json, write
from cli_support import Run, run_process
from conftest import FIXTURES, ROOT
from gitrepo import make_repo

from bot.histories import history_engine

SECRET = "jane.doe@example.com"
BASE = """from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
TIMEOUT = timedelta(minutes=5)


@reg.workflow(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.run
    async def run(self, customer: str) -> str:
        charged = await workflow.execute_activity("charge", str, customer, schedule_to_close_timeout=TIMEOUT)
        await workflow.sleep(timedelta(hours=1))
        shipped = await workflow.execute_activity("ship", str, customer, schedule_to_close_timeout=TIMEOUT)
        return charged + shipped
"""
INSERTED = BASE.replace(
    "        charged = await",
    '        await workflow.execute_activity("fraud_check", str, customer, schedule_to_close_timeout=TIMEOUT)\n'
    "        charged = await",
)
GATED = BASE.replace(
    "        charged = await",
    '        if workflow.get_version("fraud", workflow.DEFAULT_VERSION, 1) == 1:\n'
    '            await workflow.execute_activity("fraud_check", str, customer, schedule_to_close_timeout=TIMEOUT)\n'
    "        charged = await",
)
TIMER_REMOVED = BASE.replace("        await workflow.sleep(timedelta(hours=1))\n", "")
MIN_RAISED = GATED.replace('get_version("fraud", workflow.DEFAULT_VERSION, 1)', 'get_version("fraud", 1, 1)')


RUNNER = load_runner()


def definition(source: str, tmp_path: Path, tag: str) -> Any:
    """Import a workflow module written to disk; return its registered SDK definition."""
    path = tmp_path / f"{tag}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"cadence_case_{tag}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reg.get_workflow("OrderWorkflow")


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)  # the SDK logs every decision task failure with a traceback
    yield
    logging.disable(logging.NOTSET)


# --- the adapter -------------------------------------------------------------------------------
def test_adapter_is_verified_against_the_installed_sdk() -> None:
    """An SDK upgrade (the extra pins it) must come with a re-verified adapter: this fails first."""
    adapter = RUNNER.Adapter()
    assert version("cadence-python-client") in RUNNER.SUPPORTED
    assert adapter.version == version("cadence-python-client")


def test_adapter_replays_what_the_sdk_recorded(tmp_path: Path) -> None:
    base = definition(BASE, tmp_path, "base")
    history = record(base, ["o-1"])
    assert RUNNER.Adapter().replay(base, history) == ("ok", None)


def test_adapter_reports_an_inserted_activity_with_its_event(tmp_path: Path) -> None:
    history = record(definition(BASE, tmp_path, "base"), ["o-1"])
    outcome, failure = RUNNER.Adapter().replay(definition(INSERTED, tmp_path, "head"), history)
    assert outcome == "nondeterminism"
    message, event_id, event = RUNNER.failure_details(failure, history)
    assert event_id == 5 and event == "activity charge"
    # In words, from the SDK's own expectation: no repr of its properties dict.
    assert message == "history has activity `charge` (event 5), head code issues activity `fraud_check`"


def test_adapter_names_a_removed_timer_in_words(tmp_path: Path) -> None:
    history = record(definition(BASE, tmp_path, "base"), ["o-1"], decisions=2)
    outcome, failure = RUNNER.Adapter().replay(definition(TIMER_REMOVED, tmp_path, "head"), history)
    assert outcome == "nondeterminism"
    message = RUNNER.failure_details(failure, history)[0]
    assert message.startswith("history has timer `") and "{" not in message and "(event " in message


def test_adapter_accepts_the_change_behind_get_version(tmp_path: Path) -> None:
    base = definition(BASE, tmp_path, "base")
    for decisions in (None, 1, 2):  # closed, and open at each step
        history = record(base, ["o-1"], decisions=decisions)
        assert RUNNER.Adapter().replay(definition(GATED, tmp_path, f"gated{decisions}"), history)[0] == "ok"


def test_adapter_reports_a_removed_timer_on_an_open_history(tmp_path: Path) -> None:
    history = record(definition(BASE, tmp_path, "base"), ["o-1"], decisions=2)
    assert history.events[-1].WhichOneof("attributes") == "timer_started_event_attributes"
    outcome, _ = RUNNER.Adapter().replay(definition(TIMER_REMOVED, tmp_path, "head"), history)
    assert outcome == "nondeterminism"


def test_adapter_reports_min_supported_above_default_version(tmp_path: Path) -> None:
    history = record(definition(BASE, tmp_path, "base"), ["o-1"])
    outcome, failure = RUNNER.Adapter().replay(definition(MIN_RAISED, tmp_path, "head"), history)
    assert outcome == "nondeterminism"
    assert "outside the supported range" in RUNNER.failure_details(failure, history)[0]


# --- readers -----------------------------------------------------------------------------------
def test_thrift_json_converts_back_to_the_recorded_history(tmp_path: Path) -> None:
    history = record(definition(GATED, tmp_path, "gated"), [SECRET])
    adapter = RUNNER.Adapter()
    thrift = json.dumps(to_thrift_json(history)).encode()
    parsed, fmt = RUNNER.parse(adapter, thrift)
    assert fmt == "thrift-json"
    assert len(parsed.events) == len(history.events)
    for got, want in zip(parsed.events, history.events, strict=True):
        assert got.event_id == want.event_id
        assert got.WhichOneof("attributes") == want.WhichOneof("attributes")
        assert got.event_time == want.event_time
    started = parsed.events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "OrderWorkflow" and SECRET in started.input.data.decode()
    assert started.execution_start_to_close_timeout.seconds == 30 * 86400
    markers = [
        e.marker_recorded_event_attributes
        for e in parsed.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert [m.marker_name for m in markers] == ["Version"]
    assert markers[0].details.data == history.events[4].marker_recorded_event_attributes.details.data
    proto, fmt = RUNNER.parse(adapter, json.dumps(to_proto_json(history)).encode())
    assert fmt == "proto-json" and proto == history
    binary, fmt = RUNNER.parse(adapter, history.SerializeToString())
    assert fmt == "binpb" and binary == history
    # What the converted history replays to is what the original replays to.
    head = definition(GATED, tmp_path, "gated2")
    assert adapter.replay(head, parsed) == ("ok", None)


def test_the_cli_export_fixture_replays(tmp_path: Path) -> None:
    """A history in the CLI's Thrift-JSON shape (`cadence workflow show --of`), checked in."""
    path = FIXTURES / "cadence_histories" / "order-workflow-cli-export.json"
    adapter = RUNNER.Adapter()
    history, fmt = RUNNER.parse(adapter, path.read_bytes())
    assert fmt == "thrift-json"
    info = RUNNER.describe(history)
    assert info["type"] == "OrderWorkflow" and info["closed"] is None and info["events"] == 11
    assert adapter.replay(definition(BASE, tmp_path, "base"), history) == ("ok", None)
    assert adapter.replay(definition(INSERTED, tmp_path, "head"), history)[0] == "nondeterminism"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "empty file"),
        (
            b'[{"eventId": 1, "timestamp": 1, "eventType": "WorkflowExecutionStarted", "workflowExec',
            "truncated JSON",
        ),
        (b'[{"eventId": 1, "timestamp": 1, "eventType": "Nope"}]', "has no event attributes"),
        (b'{"hello": 1}', "not a history"),
        (b"\x00\x01garbage", "neither JSON nor a binary History"),
    ],
)
def test_unreadable_exports_say_why(text: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RUNNER.parse(RUNNER.Adapter(), text)


def test_history_engine_tells_cadence_exports_from_temporal_ones(tmp_path: Path) -> None:
    history = record(definition(BASE, tmp_path, "base"), ["o-1"])
    write(history, tmp_path / "cli.json")
    write(history, tmp_path / "sdk.json", fmt="proto")
    assert history_engine(str(tmp_path / "cli.json")) == "cadence"
    assert history_engine(str(tmp_path / "sdk.json")) == "cadence"
    # The demo's Temporal exports stay Temporal's.
    assert history_engine(str(ROOT / "bot" / "demo" / "histories" / "order-1001.json")) == "temporal"


# --- check --histories, end to end (the real CLI, the runner in a subprocess) -------------------
def _repo(tmp_path: Path, head: str) -> Path:
    repo = make_repo(
        tmp_path / "repo",
        {"orders/__init__.py": "", "orders/workflows.py": BASE},
        {"orders/__init__.py": "", "orders/workflows.py": head},
    )
    return Path(repo.working_dir)


def _histories(tmp_path: Path) -> Path:
    base = definition(BASE, tmp_path, "recorder")
    folder = tmp_path / "histories"
    folder.mkdir()
    write(record(base, [SECRET], workflow_id="closed-1", run_id="run-closed"), folder / "closed.json")
    write(record(base, [SECRET], decisions=2, run_id="run-open"), folder / "open.json", fmt="proto")
    return folder


def _check(repo: Path, histories: Path, *extra: str | Path) -> Run:
    return run_process("check", "--repo", repo, "--base", "main", "--histories", histories, *extra)


def _venv(tmp_path: Path, name: str) -> Path:
    """A fresh interpreter without pip or any SDK; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / name)], check=True)
    return tmp_path / name / "bin" / "python"


def test_check_replays_exports_and_blocks_an_ungated_insert(tmp_path: Path) -> None:
    repo = _repo(tmp_path, INSERTED)
    folder = _histories(tmp_path)
    (folder / "torn.json").write_text('[{"eventId": 1, "timestamp": 1')
    shutil.copy(FIXTURES / "cadence_histories" / "order-workflow-cli-export.json", folder / "cli.json")
    out = tmp_path / "report.json"
    run = _check(repo, folder, "--format", "json", "-o", out)
    assert run.exit_code == 1, run.stderr
    assert "Traceback" not in run.stderr
    report = json.loads(out.read_text())
    outcomes = {Path(r["history"]).name: r["outcome"] for r in report["replay"]}
    assert outcomes == {
        "closed.json": "nondeterminism",
        "open.json": "nondeterminism",
        "cli.json": "nondeterminism",
        "torn.json": "unreadable",
    }
    replay = [f for f in report["findings"] if f["rule"] == "CAD130"]
    assert len(replay) == 1
    assert replay[0]["location"]["line"] == 14  # the inserted call, explained by CAD101
    assert (
        "3 recorded histories" in replay[0]["message"] and "event 5 (activity charge)" in replay[0]["message"]
    )
    assert report["replay_summary"]["sdk"] == f"cadence-python-client {version('cadence-python-client')}"
    everything = out.read_text() + run.stdout + run.stderr
    assert SECRET not in everything


def test_check_passes_the_gated_change_with_replay_proof(tmp_path: Path) -> None:
    repo = _repo(tmp_path, GATED)
    out = tmp_path / "report.json"
    run = _check(repo, _histories(tmp_path), "--format", "json", "-o", out)
    assert run.exit_code == 0, run.stderr
    report = json.loads(out.read_text())
    assert {r["outcome"] for r in report["replay"]} == {"ok"}
    assert report["verdict"]["level"] in ("safe", "safe_with_gates")
    proof = [g for g in report["gates"] if g["kind"] == "replay"]
    assert proof and all(g["status"] == "satisfied" for g in proof)


def test_python_without_the_sdk_is_one_line_and_exit_2(tmp_path: Path) -> None:
    python = _venv(tmp_path, "bare")
    repo = _repo(tmp_path, INSERTED)
    run = _check(repo, _histories(tmp_path), "--python", python)
    assert run.exit_code == 2
    assert "cannot import cadence" in run.stderr and "Traceback" not in run.stderr


def test_an_sdk_whose_internals_moved_fails_the_run_loudly(tmp_path: Path) -> None:
    """A `cadence` package without the engine the adapter drives: CAD135 naming the version, never a pass."""
    python = _venv(tmp_path, "moved")
    (site,) = (python.parent.parent / "lib").glob("python3*/site-packages")
    (site / "cadence").mkdir()
    (site / "cadence" / "__init__.py").write_text("")
    (site / "cadence" / "workflow.py").write_text("")
    info = site / "cadence_python_client-0.9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cadence-python-client\nVersion: 0.9.0\n")
    repo = _repo(tmp_path, INSERTED)
    out = tmp_path / "report.json"
    run = _check(repo, _histories(tmp_path), "--python", python, "--format", "json", "-o", out)
    assert run.exit_code == 2, run.stderr  # the check could not decide: error, fails closed
    report = json.loads(out.read_text())
    (failed,) = [f for f in report["findings"] if f["rule"] == "CAD135"]
    assert "cadence-python-client 0.9.0 is not supported" in failed["message"]
    assert "verified with 0.4.1" in failed["message"]
    assert report["verdict"]["level"] == "error"
    assert not [r for r in report["replay"] if r["outcome"] == "ok"]


def test_the_runbook_names_the_task_list_the_exports_name(tmp_path: Path) -> None:
    """No `cadence.task_list` configured: the plan takes it from the exported histories (the CLI
    export's WorkflowExecutionStarted names `orders`), never a placeholder."""
    repo = _repo(tmp_path, INSERTED)
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(FIXTURES / "cadence_histories" / "order-workflow-cli-export.json", folder / "cli.json")
    out = tmp_path / "report.json"
    run = _check(repo, folder, "--format", "json", "-o", out, "--synthesize", "off")
    assert run.exit_code == 1, run.stderr
    plan = json.loads(out.read_text())["plan"]
    steps = " ".join(plan["runbook"] + plan["canary"])
    assert "`orders`" in steps or "orders-canary" in steps, steps
    assert "<task-list>" not in steps, steps
