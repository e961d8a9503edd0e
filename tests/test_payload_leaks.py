"""No production payload data in any output, even when the head code derives its error text from it.

Each engine replays real histories whose input holds a customer's e-mail address (SECRET) against a
head that turns the address into text (11 derivations: upper-cased, sliced, base64...) and puts that
text where a replay failure shows it: an exception's message, an activity's type name, a task error.
Every output of `check` (JSON, the PR comment and job summary, SARIF, annotations, stderr) must hold
none of the derived strings; `--replay-log FILE` must hold the raw failure text, with only exact
payload strings redacted.

Temporal histories are recorded on a real dev server, Cadence histories on the SDK's own decision
engine (tests/cadence_recorder.py), Step Functions executions in moto.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cadence_recorder import record, write
from cli_support import invoke
from conftest import FIXTURES
from gitrepo import make_repo
from servers import moto_server, temporal_dev_server
from sfn_moto import LAMBDA, MotoStepFunctions

from bot.model import Report
from bot.report.render import markdown

SECRET = "Zora.Kestrel@Example.org"
# Computed here, independently of the heads that compute them: what must not appear anywhere.
DERIVATIONS: dict[str, Callable[[str], str]] = {
    "identity": lambda s: s,
    "upper": str.upper,
    "lower": str.lower,
    "slice": lambda s: s[:12],
    "reversed": lambda s: "".join(reversed(s)),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "hex": lambda s: s.encode().hex(),
    "split_join": lambda s: " at ".join(s.split("@")),
    "fstring": lambda s: f"customer <{s}> is not allowed",
    "repr": repr,
    "json": lambda s: json.dumps({"email": s}),
}
DERIVED = {name: derive(SECRET) for name, derive in DERIVATIONS.items()}
FORMATS = ("json", "markdown", "sarif", "github")
LEAKS = FIXTURES / "leaks"


def test_the_derived_strings_are_distinct_and_not_in_each_other() -> None:
    """Each derivation is its own probe: only the identity and the three that wrap the whole address
    (f-string, repr, JSON) contain it, so exact redaction catches those four and no other."""
    wrapping = {"identity", "fstring", "repr", "json"}
    for name, text in DERIVED.items():
        assert (SECRET in text) == (name in wrapping), name
    assert len(set(DERIVED.values())) == len(DERIVED)


def leaked(text: str) -> list[str]:
    """The derivations whose string appears in `text`, as it is or escaped as JSON writes it."""
    return [name for name, form in DERIVED.items() if form in text or json.dumps(form)[1:-1] in text]


def outputs(repo: Path, histories: Path, *extra: str | Path) -> dict[str, str]:
    """Everything `check` writes, per output format (stdout and stderr), plus the summary comment."""
    texts: dict[str, str] = {}
    for fmt in FORMATS:
        run = invoke(
            "check", "--repo", repo, "--base", "main", "--histories", histories, "--format", fmt, *extra
        )
        assert "Traceback" not in run.stderr, run.stderr
        assert run.exit_code in (0, 1), run.stderr
        texts[fmt] = run.stdout + run.stderr
    texts["summary"] = markdown(
        Report.model_validate_json(texts["json"].split("\ninflight-guard:")[0]), summary=True
    )
    return texts


def report_of(texts: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(texts["json"].split("\ninflight-guard:")[0])
    return data


def assert_no_leak(texts: dict[str, str]) -> None:
    found = {fmt: leaked(text) for fmt, text in texts.items()}
    assert found == {fmt: [] for fmt in texts}


def assert_raw(derivation: str, raw: str) -> None:
    """The log holds the raw text: a derived form as it was, an exact payload string redacted."""
    if SECRET in DERIVED[derivation]:
        assert SECRET not in raw and "<redacted>" in raw, (derivation, raw)
    else:
        assert DERIVED[derivation] in raw, (derivation, raw)


def replay_log(path: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {Path(line["history"]).stem: line for line in lines}


# --- Temporal: a real dev server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def temporal_histories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One history per (mode, derivation), recorded by the base workflow on a real server."""
    out = tmp_path_factory.mktemp("temporal-histories")
    with temporal_dev_server(tmp_path_factory.mktemp("temporal")) as address:
        run = subprocess.run(
            [
                sys.executable,
                str(LEAKS / "record.py"),
                address,
                str(out),
                SECRET,
                "raise,command",
                ",".join(DERIVATIONS),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr
    assert len(list(out.glob("*.json"))) == 2 * len(DERIVATIONS)
    for path in out.glob("*.json"):  # the payload really is in every history
        started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
        assert SECRET in base64.b64decode(started["input"]["payloads"][0]["data"]).decode()
    yield out


@pytest.fixture(scope="module")
def temporal_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("temporal-repo")
    make_repo(root / "repo", LEAKS / "base", LEAKS / "head")
    return root / "repo"


def test_temporal_outputs_hold_no_derived_payload(temporal_repo: Path, temporal_histories: Path) -> None:
    texts = outputs(temporal_repo, temporal_histories, "--no-cache")
    assert_no_leak(texts)
    report = report_of(texts)
    by_name = {Path(r["history"]).stem: r for r in report["replay"]}
    assert len(by_name) == 2 * len(DERIVATIONS)
    for derivation in DERIVATIONS:
        raised = by_name[f"raise-{derivation}"]
        # What happened, in the engine's terms: the exception type and where the head raised it.
        assert (raised["outcome"], raised["code"]) == ("error", "ValueError"), raised
        assert raised["message"].startswith("the head code raises `ValueError` at signup/workflows.py:")
        issued = by_name[f"command-{derivation}"]
        assert (issued["outcome"], issued["code"], issued["event"]) == (
            "nondeterminism",
            "TMPRL1100",
            "activity welcome",
        ), issued
        # The head's activity is named after the input: its name is not one the code declares.
        assert (
            issued["message"] == "the head issues another activity where the history has activity `welcome`"
        )
    assert "`ValueError`" in texts["markdown"] and "TMPRL1100" in texts["markdown"]


def test_temporal_replay_log_holds_the_raw_message(
    temporal_repo: Path, temporal_histories: Path, tmp_path: Path
) -> None:
    log = tmp_path / "replay.jsonl"
    run = invoke(
        "check",
        "--repo",
        temporal_repo,
        "--base",
        "main",
        "--histories",
        temporal_histories,
        "--format",
        "json",
        "--no-cache",
        "--replay-log",
        log,
    )
    assert run.exit_code in (0, 1), run.stderr
    assert leaked(run.stdout + run.stderr) == []
    lines = replay_log(log)
    assert len(lines) == 2 * len(DERIVATIONS)  # one per failed history
    for derivation in DERIVED:
        raised, issued = lines[f"raise-{derivation}"], lines[f"command-{derivation}"]
        assert (raised["engine"], raised["outcome"], raised["code"]) == ("temporal", "error", "ValueError")
        assert issued["code"] == "TMPRL1100"
        assert_raw(derivation, raised["message"])
        assert_raw(derivation, issued["message"])
    assert log.stat().st_mode & 0o077 == 0  # readable by its owner only


# --- Cadence: the SDK's decision engine plays the server ---------------------------------------

CADENCE_BASE = """from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
TIMEOUT = timedelta(minutes=5)


@reg.workflow(name="Signup")
class Signup:
    @workflow.run
    async def run(self, request: dict) -> str:
        await workflow.execute_activity("welcome", str, request["email"], schedule_to_close_timeout=TIMEOUT)
        return "welcomed"
"""
# The head names its activity after the input; `raise` mode raises the derived text instead (the SDK
# turns that into a workflow failure: replay sees another decision, and never the text).
CADENCE_HEAD = """import base64
import json
from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
TIMEOUT = timedelta(minutes=5)
DERIVE = {
    "identity": lambda s: s,
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "slice": lambda s: s[:12],
    "reversed": lambda s: s[::-1],
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "hex": lambda s: s.encode().hex(),
    "split_join": lambda s: " at ".join(s.split("@")),
    "fstring": lambda s: f"customer <{s}> is not allowed",
    "repr": lambda s: repr(s),
    "json": lambda s: json.dumps({"email": s}),
}


@reg.workflow(name="Signup")
class Signup:
    @workflow.run
    async def run(self, request: dict) -> str:
        derived = DERIVE[request["derivation"]](request["email"])
        if request["mode"] == "raise":
            raise ValueError(derived)
        await workflow.execute_activity(derived, str, request["email"], schedule_to_close_timeout=TIMEOUT)
        return "welcomed"
"""


def _cadence_definition(source: str, folder: Path) -> Any:
    path = folder / "cadence_signup_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("cadence_signup_base", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reg.get_workflow("Signup")


@pytest.fixture(scope="module")
def cadence_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cadence")
    logging.disable(logging.CRITICAL)  # the SDK logs every decision task failure with a traceback
    try:
        base = _cadence_definition(CADENCE_BASE, root)
        histories = root / "histories"
        histories.mkdir()
        for mode in ("raise", "command"):
            for n, derivation in enumerate(DERIVATIONS):
                request = {"email": SECRET, "mode": mode, "derivation": derivation}
                name = f"{mode}-{derivation}"
                write(
                    record(base, [request], workflow_id=name, run_id=f"run-{mode}-{n}"),
                    histories / f"{name}.json",
                )
    finally:
        logging.disable(logging.NOTSET)
    repo = make_repo(
        root / "repo",
        {"signup/__init__.py": "", "signup/workflows.py": CADENCE_BASE},
        {"signup/__init__.py": "", "signup/workflows.py": CADENCE_HEAD},
    )
    return Path(repo.working_dir), histories


def test_cadence_outputs_hold_no_derived_payload(cadence_setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, histories = cadence_setup
    log = tmp_path / "replay.jsonl"
    texts = outputs(repo, histories, "--replay-log", log)
    assert_no_leak(texts)
    by_name = {Path(r["history"]).stem: r for r in report_of(texts)["replay"]}
    lines = replay_log(log)
    for derivation in DERIVED:
        issued = by_name[f"command-{derivation}"]
        assert (issued["outcome"], issued["code"], issued["event_id"], issued["event"]) == (
            "nondeterminism",
            "NonDeterminismError",
            5,
            "activity welcome",
        ), issued
        assert (
            issued["message"] == "the head issues another activity where the history has activity `welcome`"
        )
        raised = by_name[f"raise-{derivation}"]
        assert raised["message"] == "the head fails the workflow where the history has activity `welcome`"
        assert_raw(derivation, lines[f"command-{derivation}"]["message"])


# --- Step Functions: executions recorded in moto -----------------------------------------------

SIGNUP: dict[str, Any] = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": LAMBDA,
                "Payload": {"token.$": "$$.Task.Token", "email.$": "$.email"},
            },
            # The error is not kept in the data (ResultPath null): its name is only in the TaskFailed event.
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Rejected"}],
            "Next": "Welcomed",
        },
        "Rejected": {"Type": "Pass", "End": True},
        "Welcomed": {"Type": "Succeed"},
    },
}


@pytest.fixture(scope="module")
def sfn_histories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One execution per derivation: the approver fails the task with an error named from the input."""
    out = tmp_path_factory.mktemp("sfn-histories")
    (out / "signup").mkdir()
    with moto_server() as url:
        moto = MotoStepFunctions(url)
        arn = moto.create("signup", SIGNUP)
        for derivation, form in DERIVED.items():
            execution = moto.start(arn, {"email": SECRET}, derivation)
            moto.wait(execution, until="TaskSubmitted")
            history = moto.export(execution)
            scheduled = next(e for e in history["events"] if e["type"] == "TaskScheduled")
            token = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Payload"]["token"]
            moto.sfn.send_task_failure(taskToken=token, error=form, cause=f"rejected {SECRET}")
            assert moto.wait(execution) == "SUCCEEDED"
            (out / "signup" / f"{derivation}.json").write_text(json.dumps(moto.export(execution)))
    return out


def test_step_functions_outputs_hold_no_derived_payload(sfn_histories: Path, tmp_path: Path) -> None:
    head = json.loads(json.dumps(SIGNUP))
    del head["States"]["Approve"]["Catch"]  # the recorded task failure now fails the execution
    text = {"sfn/signup.asl.json": json.dumps(SIGNUP, indent=2) + "\n"}
    repo = make_repo(tmp_path / "repo", text, {"sfn/signup.asl.json": json.dumps(head, indent=2) + "\n"})
    log = tmp_path / "replay.jsonl"
    texts = outputs(Path(repo.working_dir), sfn_histories, "--replay-log", log)
    assert_no_leak(texts)
    results = report_of(texts)["replay"]
    assert len(results) == len(DERIVATIONS)
    for r in results:
        assert (r["outcome"], r["code"]) == ("error", None), r
        assert r["message"] == (
            "terminal status changes: recorded SUCCEEDED, head FAILED "
            "(an error the definitions do not name at `Approve`)"
        )
    assert "SFN130" in texts["markdown"]
    lines = replay_log(log)
    assert len(lines) == len(DERIVATIONS)
    for derivation in DERIVED:
        assert_raw(derivation, lines[derivation]["message"])


def test_a_replay_log_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "replay.jsonl"
    run = invoke("check", "--repo", tmp_path, "--replay-log", target)
    assert run.exit_code == 2
    assert run.stderr.strip() == (
        f"inflight-guard: error: --replay-log {target}: cannot write (No such file or directory)"
    )
