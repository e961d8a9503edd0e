"""`export stepfunctions` and the live in-flight counts, against a real moto server on loopback.

moto 5.2.5 runs Pass/Choice/Fail/Wait states when `execute_state_machine` is on, so finished
executions have real-format histories and a long Wait keeps an execution RUNNING. It ignores
GetExecutionHistory's maxResults/nextToken (one page, always), so the paging test puts a small
loopback proxy in front of it that pages that one call the way AWS does.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cli_support import Run, invoke, run_process
from servers import free_port, moto_executing

from bot.engines.stepfunctions import export as sfn_export
from bot.engines.stepfunctions import inflight as sfn_inflight
from bot.engines.stepfunctions.inflight import breakdown, credentials_available, live_figures
from bot.errors import UserError

ROLE = "arn:aws:iam::123456789012:role/sfn"
ACCOUNT_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine"
SECRET = "card-4242-never-printed"
# Choice on the input: fail, wait an hour (stays RUNNING), or pass through two states.
ORDERS = {
    "StartAt": "Route",
    "States": {
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.fail", "BooleanEquals": True, "Next": "Reject"},
                {"Variable": "$.hold", "BooleanEquals": True, "Next": "Hold"},
            ],
            "Default": "Validate",
        },
        "Validate": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Pass", "End": True},
        "Hold": {"Type": "Wait", "Seconds": 3600, "End": True},
        "Reject": {"Type": "Fail", "Error": "Rejected", "Cause": "rejected"},
    },
}
WAIT = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}}}
PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service)


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    """One moto server for the module, executing state machines; the AWS_* environment points at it."""
    with moto_executing() as url:
        yield url


def _settle(sfn: Any, arns: list[str], seconds: float = 10) -> None:
    """Wait until every execution in `arns` has left RUNNING."""
    deadline = time.monotonic() + seconds
    pending = list(arns)
    while pending and time.monotonic() < deadline:
        pending = [a for a in pending if sfn.describe_execution(executionArn=a)["status"] == "RUNNING"]
        time.sleep(0.02)
    assert not pending, f"still running: {pending}"


@pytest.fixture(scope="module")
def orders(aws: str) -> dict[str, Any]:
    """`orders`: 3 succeeded, 1 failed, 1 running (oldest to newest: ok-1, bad-1, ok-2, hold-1, ok-3)."""
    sfn = _client("stepfunctions")
    arn = sfn.create_state_machine(name="orders", definition=json.dumps(ORDERS), roleArn=ROLE)[
        "stateMachineArn"
    ]
    plan = [("ok-1", {}), ("bad-1", {"fail": True}), ("ok-2", {}), ("hold-1", {"hold": True}), ("ok-3", {})]
    started: dict[str, str] = {}
    for name, extra in plan:
        payload = json.dumps({"orderId": name, "card": SECRET, **extra})
        started[name] = sfn.start_execution(stateMachineArn=arn, name=name, input=payload)["executionArn"]
        time.sleep(0.01)  # distinct start dates, so newest-first order is well defined
    _settle(sfn, [a for n, a in started.items() if n != "hold-1"])
    return {"arn": arn, "executions": started}


def _no_secret(run: Run) -> None:
    assert SECRET not in run.stdout and SECRET not in run.stderr


def _export(out: Path | str, *args: str) -> Run:
    run = invoke("export", "stepfunctions", *args, "--out", str(out))
    _no_secret(run)
    return run


def _files(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "orders").glob("*.json"))}


def test_export_writes_one_history_per_execution(orders: dict[str, Any], tmp_path: Path) -> None:
    run = _export(tmp_path, "--state-machine-arn", orders["arn"])
    assert run.exit_code == 0, run.stderr
    assert run.stderr.strip() == f"inflight-guard: exported 5 histories to {tmp_path}"
    files = _files(tmp_path)
    assert set(files) == {"ok-1", "bad-1", "ok-2", "hold-1", "ok-3"}
    assert [p.name for p in tmp_path.iterdir()] == ["orders"]  # no temporary files left behind
    assert {name: doc["status"] for name, doc in files.items()} == {
        "ok-1": "SUCCEEDED",
        "ok-2": "SUCCEEDED",
        "ok-3": "SUCCEEDED",
        "bad-1": "FAILED",
        "hold-1": "RUNNING",
    }
    ok = files["ok-2"]
    assert ok["stateMachineArn"] == orders["arn"]
    assert ok["executionArn"] == orders["executions"]["ok-2"]
    assert ok["name"] == "ok-2"
    assert json.loads(ok["input"]) == {"orderId": "ok-2", "card": SECRET}  # the raw string AWS holds
    assert set(ok) >= {"startDate", "stopDate", "events"}
    assert "stopDate" not in files["hold-1"]
    for doc in files.values():
        events = doc["events"]
        assert [e["id"] for e in events] == list(range(1, len(events) + 1))
        assert events[0]["type"] == "ExecutionStarted"
        assert events[0]["executionStartedEventDetails"]["input"] == doc["input"]  # includeExecutionData
        assert events[0]["timestamp"].endswith("+00:00") and "T" in events[0]["timestamp"]
    assert [e["type"] for e in ok["events"]] == [
        "ExecutionStarted",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "PassStateEntered",
        "PassStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert files["bad-1"]["events"][-1]["type"] == "ExecutionFailed"
    assert files["hold-1"]["events"][-1]["type"] == "WaitStateEntered"
    # A second export replaces the files in place.
    again = _export(tmp_path, "--state-machine-arn", orders["arn"], "--limit", "1")
    assert again.exit_code == 0 and sorted(p.name for p in (tmp_path / "orders").iterdir()) == sorted(
        f"{n}.json" for n in files
    )


def test_status_and_limit(orders: dict[str, Any], tmp_path: Path) -> None:
    arn = orders["arn"]
    run = _export(tmp_path / "a", "--state-machine-arn", arn, "--status", "FAILED", "--status", "RUNNING")
    assert run.exit_code == 0, run.stderr
    assert set(_files(tmp_path / "a")) == {"bad-1", "hold-1"}
    run = _export(tmp_path / "b", "--state-machine-arn", arn, "--status", "succeeded", "--limit", "2")
    assert run.exit_code == 0, run.stderr
    assert set(_files(tmp_path / "b")) == {"ok-3", "ok-2"}  # the newest two
    # Several statuses and a limit: the newest across the statuses, not the first status's.
    run = _export(tmp_path / "c", "--state-machine-arn", arn, "--status", "FAILED,SUCCEEDED", "--limit", "2")
    assert run.exit_code == 0, run.stderr
    assert set(_files(tmp_path / "c")) == {"ok-3", "ok-2"}
    run = _export(tmp_path / "d", "--state-machine-arn", arn, "--limit", "3")
    assert set(_files(tmp_path / "d")) == {"ok-3", "hold-1", "ok-2"}
    assert run.stderr.strip().endswith("exported 3 histories to " + str(tmp_path / "d"))
    run = _export(tmp_path / "e", "--state-machine-arn", arn, "--status", "TIMED_OUT")
    assert run.exit_code == 0 and "exported 0 histories" in run.stderr
    bad = _export(tmp_path / "f", "--state-machine-arn", arn, "--status", "DONE")
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        "inflight-guard: error: --status DONE: expected one of RUNNING, SUCCEEDED, FAILED, TIMED_OUT, "
        "ABORTED, PENDING_REDRIVE"
    ]


class _PagingProxy(BaseHTTPRequestHandler):
    """Forwards to moto, counting calls; pages GetExecutionHistory by maxResults as AWS does."""

    upstream: ClassVar[str] = ""
    calls: ClassVar[Counter[str]] = Counter()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        type(self).calls[operation] += 1
        params = json.loads(body or b"{}")
        size, start = None, 0
        if operation == "GetExecutionHistory":
            size, start = params.pop("maxResults", None), int(params.pop("nextToken", 0) or 0)
            body = json.dumps(params).encode()
        skip = {"host", "content-length", "connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        request = urllib.request.Request(self.upstream + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        if size and status == 200:
            page = json.loads(data)
            page["events"], rest = page["events"][start : start + size], page["events"][start + size :]
            if rest:
                page["nextToken"] = str(start + size)
            data = json.dumps(page).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def paging_proxy(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    _PagingProxy.upstream = aws
    _PagingProxy.calls = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PagingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield _PagingProxy.calls
    finally:
        server.shutdown()
        server.server_close()


def test_forced_pagination(
    orders: dict[str, Any], paging_proxy: Counter[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _export(tmp_path / "whole", "--state-machine-arn", orders["arn"])
    assert whole.exit_code == 0, whole.stderr
    assert paging_proxy["ListExecutions"] == 1 and paging_proxy["GetExecutionHistory"] == 5
    paging_proxy.clear()
    monkeypatch.setattr(sfn_export, "PAGE", 2)
    paged = _export(tmp_path / "paged", "--state-machine-arn", orders["arn"])
    assert paged.exit_code == 0, paged.stderr
    assert _files(tmp_path / "paged") == _files(tmp_path / "whole")
    assert paging_proxy["ListExecutions"] == 3  # 5 executions, 2 a page
    events = sum(len(d["events"]) for d in _files(tmp_path / "whole").values())
    assert paging_proxy["GetExecutionHistory"] == sum(
        -(-len(d["events"]) // 2) for d in _files(tmp_path / "whole").values()
    )
    assert paging_proxy["GetExecutionHistory"] > 5 and events > 10


def test_export_to_s3(orders: dict[str, Any]) -> None:
    s3 = _client("s3")
    s3.create_bucket(Bucket="sfn-histories")
    run = _export("s3://sfn-histories/prod/", "--state-machine-arn", orders["arn"], "--status", "SUCCEEDED")
    assert run.exit_code == 0, run.stderr
    assert "exported 3 histories to s3://sfn-histories/prod/" in run.stderr
    listed = s3.list_objects_v2(Bucket="sfn-histories")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"prod/orders/ok-{i}.json" for i in (1, 2, 3)]
    body = json.loads(s3.get_object(Bucket="sfn-histories", Key="prod/orders/ok-1.json")["Body"].read())
    assert body["executionArn"] == orders["executions"]["ok-1"] and body["events"][-1]["id"] == len(
        body["events"]
    )
    missing = _export("s3://no-such-bucket/x", "--state-machine-arn", orders["arn"], "--limit", "1")
    assert missing.exit_code == 2
    assert missing.stderr.strip().startswith(
        "inflight-guard: error: --out s3://no-such-bucket/x: PutObject: NoSuchBucket"
    )
    assert len(missing.stderr.strip().splitlines()) == 1


def test_unknown_arn_is_one_line(aws: str, tmp_path: Path) -> None:
    run = run_process(
        "export", "stepfunctions", "--state-machine-arn", f"{ACCOUNT_ARN}:nope", "--out", tmp_path
    )
    assert run.exit_code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert lines[0].startswith("inflight-guard: error: DescribeStateMachine: StateMachineDoesNotExist: ")
    assert f"{ACCOUNT_ARN}:nope" in lines[0]
    malformed = _export(tmp_path, "--state-machine-arn", "orders")
    assert malformed.exit_code == 2
    assert malformed.stderr.startswith(
        "inflight-guard: error: --state-machine-arn orders: expected arn:aws:states"
    )


def test_unreachable_endpoint_is_one_line(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    run = run_process(
        "export", "stepfunctions", "--state-machine-arn", f"{ACCOUNT_ARN}:orders", "--out", tmp_path
    )
    assert run.exit_code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert lines[0].startswith("inflight-guard: error: DescribeStateMachine: EndpointConnectionError: ")
    with pytest.raises(UserError, match=r"^ListStateMachines: EndpointConnectionError: Could not connect"):
        live_figures(["orders"])


def test_express_has_no_history(aws: str, tmp_path: Path) -> None:
    sfn = _client("stepfunctions")
    arn = sfn.create_state_machine(name="quick", definition=json.dumps(PASS), roleArn=ROLE, type="EXPRESS")[
        "stateMachineArn"
    ]
    run = _export(tmp_path, "--state-machine-arn", arn)
    assert run.exit_code == 2
    assert run.stderr.strip().splitlines() == [
        f"inflight-guard: error: {arn} is an Express state machine: Express executions have no execution "
        "history (GetExecutionHistory does not serve them; their events are only in CloudWatch Logs)"
    ]
    assert live_figures(["quick"])["quick"].count is None


def test_version_arn_names_the_folder(aws: str, tmp_path: Path) -> None:
    """moto creates versions (publish=True) and lists a version ARN's executions, but cannot start one."""
    sfn = _client("stepfunctions")
    created = sfn.create_state_machine(
        name="billing", definition=json.dumps(PASS), roleArn=ROLE, publish=True
    )
    assert created["stateMachineVersionArn"] == f"{created['stateMachineArn']}:1"
    sfn.start_execution(stateMachineArn=created["stateMachineArn"], name="b-1", input="{}")
    run = _export(tmp_path, "--state-machine-arn", created["stateMachineVersionArn"])
    assert run.exit_code == 0 and "exported 0 histories" in run.stderr  # b-1 ran the unqualified ARN
    run = _export(tmp_path, "--state-machine-arn", created["stateMachineArn"])
    assert run.exit_code == 0 and [p.name for p in (tmp_path / "billing").iterdir()] == ["b-1.json"]


@pytest.fixture(scope="module")
def running(aws: str) -> dict[str, str]:
    """`waiting`: three executions in a one-hour Wait; `finished`: one that succeeded. Name -> start."""
    sfn = _client("stepfunctions")
    waiting = sfn.create_state_machine(
        name="waiting", definition=json.dumps(WAIT), roleArn=ROLE, publish=True
    )
    finished = sfn.create_state_machine(name="finished", definition=json.dumps(PASS), roleArn=ROLE)
    starts = {}
    for i in range(3):
        if i:  # `oldest_start` has whole seconds: each start in a second of its own
            time.sleep(1.02 - time.time() % 1)
        execution = sfn.start_execution(stateMachineArn=waiting["stateMachineArn"], name=f"w-{i}", input="{}")
        starts[f"w-{i}"] = execution["startDate"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(set(starts.values())) == 3
    done = sfn.start_execution(stateMachineArn=finished["stateMachineArn"], name="f-1", input="{}")
    _settle(sfn, [done["executionArn"]])
    return starts


def test_live_figures(running: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    figures = live_figures(["waiting", "finished", "no-such-machine"])
    assert set(figures) == {"waiting", "finished"}  # unknown names are left out
    waiting = figures["waiting"]
    assert waiting.count == 3 and waiting.oldest_start == running["w-0"]
    # Published (version 1), but every execution started on the unqualified ARN: no version split.
    assert waiting.source.startswith("ListExecutions: 3 RUNNING in us-east-1 at ")
    assert figures["finished"].count == 0 and figures["finished"].oldest_start is None
    assert figures["finished"].source.startswith("ListExecutions: 0 RUNNING in us-east-1")
    # One item a page: ListStateMachines and ListExecutions both page, the figures do not change.
    monkeypatch.setattr(sfn_inflight, "PAGE", 1)
    paged = live_figures(["waiting"], region="us-east-1")["waiting"]
    assert (paged.count, paged.oldest_start) == (3, running["w-0"])
    # Bounded: counting stops at CAP and says so.
    monkeypatch.setattr(sfn_inflight, "CAP", 2)
    capped = live_figures(["waiting"])["waiting"]
    assert capped.count == 2
    assert capped.source.startswith("ListExecutions: 2+ RUNNING in us-east-1")
    assert "counting stopped at 2" in capped.source
    assert capped.oldest_start == running["w-1"]  # the oldest of the newest two
    monkeypatch.setattr(sfn_inflight, "CAP", 3)
    exact = live_figures(["waiting"])["waiting"]
    assert exact.count == 3 and "+" not in exact.source


def test_version_breakdown() -> None:
    """The per-version split, from ListExecutions items (moto never fills stateMachineVersionArn)."""
    version = f"{ACCOUNT_ARN}:orders:"
    items = [
        {"stateMachineVersionArn": f"{version}3"},
        {"stateMachineVersionArn": f"{version}10", "stateMachineAliasArn": f"{ACCOUNT_ARN}:orders:prod"},
        {"stateMachineVersionArn": f"{version}3"},
        {},
    ]
    assert breakdown(items) == "version 3: 2, version 10: 1, latest revision: 1"
    assert breakdown(items[:3]) == "version 3: 2, version 10: 1"
    assert breakdown([{}, {"stateMachineVersionArn": None}]) == ""
    assert breakdown([]) == ""


def test_credentials_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert credentials_available() is True
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert credentials_available() is False


def test_region_resolution(
    orders: dict[str, Any], running: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_REGION wins over AWS_DEFAULT_REGION; with neither, export takes the region from the ARN."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert live_figures(["waiting"]) == {}  # the machines live in us-east-1
    assert live_figures(["waiting"], region="us-east-1")["waiting"].count == 3
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    run = _export(tmp_path, "--state-machine-arn", orders["arn"], "--status", "FAILED")
    assert run.exit_code == 0, run.stderr
    assert set(_files(tmp_path)) == {"bad-1"}
    with pytest.raises(UserError, match=r"^no AWS region configured: set AWS_REGION"):
        live_figures(["waiting"])
