"""Record real Step Functions executions in moto (server mode) and export them as a user would.

moto 5.2.5 runs ASL with LocalStack's interpreter once `POST /moto-api/config` sets
`stepfunctions.execute_state_machine`; Lambda calls go to its "lambda simple" backend (no Docker),
which answers every invocation with the next result queued at
`POST /moto-api/static/lambda-simple/response {"results": ["<payload text>", ...]}` (one FIFO queue
per account and region, shared by every function), or echoes the request payload when the queue is
empty. It has no way to queue an error: a queued payload over 6,000,000 bytes is the one failure it
can produce — the Lambda API answers `FunctionError: Unhandled` with errorType
`Function.ResponseSizeTooLarge`, and the state machine sees a Lambda failure of that name
(`LambdaFunctionFailed` / `TaskFailed`), which Retry and Catch handle like any other.
moto's activities fail at once (`ActivityFailed`, `States.Runtime`): a RUNNING history comes from a
`.waitForTaskToken` Task instead (moto invokes the Lambda, then waits for `SendTaskSuccess`), or
from a long Wait state.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import boto3

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/replay"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:work"
#: A Lambda payload moto refuses, which the state machine sees as a failure of this name.
OVERSIZE_ERROR = "Function.ResponseSizeTooLarge"
_OVERSIZE = "x" * 6_000_100
#: In a `record` script: this Lambda call fails.
FAIL: Any = object()


def _post(url: str, body: Any) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


class MotoStepFunctions:
    """A moto server configured to execute state machines, with boto3 clients pointed at it."""

    def __init__(self, url: str) -> None:
        self.url = url
        _post(
            f"{url}/moto-api/config",
            {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
        )
        credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self.sfn = boto3.client("stepfunctions", endpoint_url=url, region_name=REGION, **credentials)

    def create(self, name: str, definition: dict[str, Any]) -> str:
        """Create a state machine; its ARN."""
        created = self.sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
        return str(created["stateMachineArn"])

    def script_lambda(self, *results: Any) -> None:
        """Queue Lambda results (JSON values) for the next invocations, in order."""
        _post(
            f"{self.url}/moto-api/static/lambda-simple/response",
            {"results": [json.dumps(r) for r in results]},
        )

    def fail_lambda(self, times: int = 1) -> None:
        """Make the next `times` Lambda invocations fail with `OVERSIZE_ERROR`."""
        _post(f"{self.url}/moto-api/static/lambda-simple/response", {"results": [_OVERSIZE] * times})

    def start(self, machine_arn: str, input: Any, name: str | None = None) -> str:
        """Start an execution; its ARN."""
        started = self.sfn.start_execution(
            stateMachineArn=machine_arn, name=name or uuid.uuid4().hex[:16], input=json.dumps(input)
        )
        return str(started["executionArn"])

    def wait(self, execution_arn: str, *, until: str | None = None, timeout: float = 30) -> str:
        """Wait until the execution closes (or its history has an event of type `until`); its status."""
        deadline = time.monotonic() + timeout
        while True:
            status = str(self.sfn.describe_execution(executionArn=execution_arn)["status"])
            if status != "RUNNING":
                return status
            if until is not None:
                events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
                if any(event["type"] == until for event in events):
                    return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still RUNNING after {timeout} s")
            time.sleep(0.02)

    def export(self, execution_arn: str, *, page_size: int = 1000, describe: bool = True) -> dict[str, Any]:
        """The history as `aws stepfunctions get-execution-history` saves it (all pages), JSON only.

        With `describe`, the `DescribeExecution` fields are merged at the top, as an export script would.
        """
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": page_size}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        export: dict[str, Any] = {"events": events}
        if describe:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            described.pop("ResponseMetadata", None)
            export = {**described, **export}
        # The CLI writes timestamps as text: the same as json.dumps(default=str) of boto3's datetimes.
        return dict(json.loads(json.dumps(export, default=str)))

    def record(
        self, machine_arn: str, input: Any, *, script: list[Any] | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Run one execution to its end and export it.

        `script` holds the results of the Lambda calls in the order they will happen; a `FAIL` item
        makes that call fail with `OVERSIZE_ERROR`. Calls past the script echo their payload.
        """
        for item in script or []:
            if item is FAIL:
                self.fail_lambda()
            else:
                self.script_lambda(item)
        execution_arn = self.start(machine_arn, input, name)
        self.wait(execution_arn)
        return self.export(execution_arn)
