"""`check --histories` end to end for Step Functions: executions recorded in moto, exported with the
real `export stepfunctions` command, replayed through head definitions committed in a real git repo."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import run_process
from conftest import ROOT
from gitrepo import make_repo
from servers import moto_env, moto_server
from sfn_moto import FAIL, LAMBDA, OVERSIZE_ERROR, MotoStepFunctions

SECRET = "jane.doe@example.com"

ORDERS: dict[str, Any] = {
    "StartAt": "Validate",
    "States": {
        "Validate": {"Type": "Pass", "Next": "Reserve"},
        "Reserve": {
            "Type": "Task",
            "Resource": LAMBDA,
            "ResultPath": "$.reservation",
            "Retry": [{"ErrorEquals": [OVERSIZE_ERROR], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.express", "BooleanEquals": True, "Next": "Express"}],
            "Default": "Standard",
        },
        "Express": {"Type": "Pass", "Result": "express", "ResultPath": "$.lane", "End": True},
        "Standard": {"Type": "Pass", "Result": "standard", "ResultPath": "$.lane", "End": True},
    },
}


def _text(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2) + "\n"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Four executions of `orders` recorded in moto and exported with the real CLI."""
    out = tmp_path_factory.mktemp("exports")
    with moto_server() as url:
        moto = MotoStepFunctions(url)
        arn = moto.create("orders", ORDERS)
        # 1: the reservation fails once (transient) and is retried; 2-4: first time.
        moto.record(arn, {"express": False, "email": SECRET}, script=[FAIL, {"ok": 1}], name="retried")
        moto.record(arn, {"express": True, "email": SECRET}, script=[{"ok": 2}], name="express")
        moto.record(arn, {"express": False, "email": SECRET}, script=[{"ok": 3}], name="standard-1")
        moto.record(arn, {"express": False, "email": SECRET}, script=[{"ok": 4}], name="standard-2")
        env = moto_env(url)
        run = run_process("export", "stepfunctions", "--state-machine-arn", arn, "--out", out, env=env)
        assert run.exit_code == 0, run.stderr
        assert SECRET not in run.stdout + run.stderr
        yield out


def _check(
    tmp_path: Path, head: dict[str, Any], histories: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    repo = make_repo(
        tmp_path / "repo", {"sfn/orders.asl.json": _text(ORDERS)}, {"sfn/orders.asl.json": _text(head)}
    )
    run = run_process(
        "check",
        "--repo",
        repo.working_dir,
        "--base",
        "main",
        "--histories",
        histories,
        "--format",
        "json",
        *extra,
    )
    assert "Traceback" not in run.stderr, run.stderr
    return run.exit_code, json.loads(run.stdout), run.stdout + run.stderr


def test_exported_histories_are_where_check_reads_them(exported: Path) -> None:
    files = sorted(p.name for p in (exported / "orders").iterdir())
    assert files == ["express.json", "retried.json", "standard-1.json", "standard-2.json"]


def test_a_benign_change_replays_cleanly_and_is_safe(exported: Path, tmp_path: Path) -> None:
    head = copy.deepcopy(ORDERS)
    head["States"]["Standard"]["Result"] = "standard lane"  # another value, same path and status
    head["Comment"] = "documented"
    code, report, _ = _check(tmp_path, head, exported)
    assert code == 0
    assert [f["rule"] for f in report["findings"]] == ["SFN118"]
    assert {r["outcome"] for r in report["replay"]} == {"ok"}
    assert len(report["replay"]) == 4
    # A definition-only change that replays cleanly needs no gate (issue 18): safe.
    assert report["gates"] == []
    assert report["verdict"]["level"] == "safe"
    [static] = report["findings"]
    assert static["replay"] == "4 recorded executions replay cleanly through the head definition"


def test_a_risky_definition_change_that_replays_cleanly_is_safe(exported: Path, tmp_path: Path) -> None:
    head = copy.deepcopy(ORDERS)
    head["States"]["Reserve"]["ResultPath"] = "$.booking"  # no later state reads $.reservation
    code, report, _ = _check(tmp_path, head, exported)
    assert code == 0
    assert [f["rule"] for f in report["findings"]] == ["SFN114"]
    assert {r["outcome"] for r in report["replay"]} == {"ok"}
    assert report["verdict"]["level"] == "safe", report["verdict"]
    assert any("4 recorded executions replay cleanly" in r for r in report["verdict"]["reasons"])
    # Without the recorded executions the same change is only risky: nothing settles it.
    repo = tmp_path / "repo"
    static = run_process("check", "--repo", repo, "--base", "main", "--format", "json")
    assert json.loads(static.stdout)["verdict"]["level"] == "safe_with_gates"


def test_removing_a_retry_a_recorded_execution_needed_blocks(exported: Path, tmp_path: Path) -> None:
    head = copy.deepcopy(ORDERS)
    del head["States"]["Reserve"]["Retry"]
    code, report, output = _check(tmp_path, head, exported)
    assert code == 1
    assert report["verdict"]["level"] == "breaking"
    [failed] = [f for f in report["findings"] if f["rule"] == "SFN130"]
    assert failed["change"]["details"]["histories"] == 1
    assert "orders/retried.json" in failed["message"]
    assert failed["location"]["path"] == "sfn/orders.asl.json"
    assert failed["location"]["line"] == _text(head).splitlines().index('    "Reserve": {') + 1
    assert "Explained by SFN107" in failed["message"]
    # The static finding says what replay showed.
    [static] = [f for f in report["findings"] if f["rule"] == "SFN107"]
    assert "1 recorded executions fail on the head definition here" in static["replay"]
    assert [g["status"] for g in report["gates"] if g["kind"] == "replay"] == ["missing"]
    # A replay failure is fixed in the definition: no version gate (nor for SFN107, definition-only).
    assert [g for g in report["gates"] if g["kind"] == "version_gate"] == []
    assert SECRET not in output
    markdown = run_process(
        "check", "--repo", tmp_path / "repo", "--base", "main", "--histories", exported
    ).stdout
    assert "the next ones, on inputs already recorded" in markdown
    assert SECRET not in markdown
    # In Step Functions' terms: the replayed execution fails (no "nondeterminism", no "error").
    assert "| fails |" in markdown and "1 fails" in markdown
    assert "nondeterminism" not in markdown and "| error |" not in markdown
    assert "**Next:** fix the definition where recorded executions fail" in markdown


def test_a_new_task_diverges_without_blocking(exported: Path, tmp_path: Path) -> None:
    head = copy.deepcopy(ORDERS)
    head["States"]["Validate"]["Next"] = "Fraud"
    head["States"]["Fraud"] = {"Type": "Task", "Resource": LAMBDA + ":live", "Next": "Reserve"}
    code, report, _ = _check(tmp_path, head, exported)
    assert code == 0
    # New executions take the new path; running ones keep theirs: info, and no gate (issue 18).
    assert report["verdict"]["level"] == "safe"
    assert {r["outcome"] for r in report["replay"]} == {"diverged"}
    [diverged] = [f for f in report["findings"] if f["rule"] == "SFN131"]
    assert diverged["severity"] == "info" and diverged["change"]["details"]["histories"] == 4
    assert "Fraud" in diverged["message"]


def test_mixed_sources_bad_files_and_other_state_machines(exported: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(exported, folder)
    # A Temporal history beside them belongs to the Temporal engine: not unreadable here.
    temporal = sorted((ROOT / "bot" / "demo" / "histories").rglob("*.json"))[0]
    shutil.copy(temporal, folder / "t.json")
    (folder / "orders" / "cut.json").write_text((exported / "orders" / "express.json").read_text()[:500])
    other = json.loads((exported / "orders" / "express.json").read_text())
    other["stateMachineArn"] = other["stateMachineArn"].replace(":orders", ":billing")
    other["executionArn"] = other["executionArn"].replace(":orders:", ":billing:")
    (folder / "billing").mkdir()
    (folder / "billing" / "x.json").write_text(json.dumps(other))
    head = copy.deepcopy(ORDERS)
    head["Comment"] = "x"
    code, report, _ = _check(tmp_path, head, folder)
    outcomes = {r["history"].split("mixed/", 1)[-1]: r["outcome"] for r in report["replay"]}
    assert outcomes["orders/cut.json"] == "unreadable"
    assert outcomes["billing/x.json"] == "unmatched"
    # ... and is named, with why the Temporal engine did not replay it.
    [temporal_line] = [r for r in report["replay"] if r["history"].endswith("mixed/t.json")]
    assert temporal_line["outcome"] == "skipped"
    assert (
        temporal_line["message"]
        == "not replayed: this change alters no Temporal workflow (pass --replay-all)"
    )
    assert sum(1 for o in outcomes.values() if o == "ok") == 4
    assert code == 0
