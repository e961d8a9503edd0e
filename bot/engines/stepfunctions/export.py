"""Export execution histories from AWS Step Functions, one JSON file per execution.

A file is `OUT/<state-machine-name>/<execution-name>.json`: what `aws stepfunctions
get-execution-history` prints (every page's `events`, datetimes as ISO-8601 strings) plus the
DescribeExecution fields a replay needs (status, dates, version or alias, the raw input).
Executions are streamed newest first, so memory stays bounded whatever the account holds.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.engines.stepfunctions.inflight import aws_error, call, configured_region, sfn_client
from bot.errors import UserError
from bot.histories import s3_client, split_s3

PAGE = 1000  # maxResults per ListExecutions / GetExecutionHistory call; a test lowers it to force paging
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
DESCRIBED = (
    "stateMachineArn",
    "executionArn",
    "name",
    "status",
    "startDate",
    "stopDate",
    "stateMachineVersionArn",
    "stateMachineAliasArn",
    "input",
    "redriveCount",
)
_ARN = re.compile(r"arn:[\w-]+:states:[\w-]*:\d*:stateMachine:[^:]+(:[^:]+)?")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def state_machine_name(arn: str) -> str:
    """Return NAME of a state machine, version (`NAME:3`) or alias (`NAME:prod`) ARN; UserError otherwise."""
    if not _ARN.fullmatch(arn):
        raise UserError(
            f"--state-machine-arn {arn}: expected arn:aws:states:REGION:ACCOUNT:stateMachine:NAME "
            "(or NAME:VERSION, NAME:ALIAS)"
        )
    return arn.split(":")[6]


def parse_statuses(values: Sequence[str]) -> tuple[str, ...]:
    """Return the distinct statuses asked for (repeated or comma-separated); () means every status."""
    wanted: list[str] = []
    for value in values:
        for part in value.split(","):
            status = part.strip().upper()
            if status not in STATUSES:
                raise UserError(f"--status {part.strip()}: expected one of {', '.join(STATUSES)}")
            if status not in wanted:
                wanted.append(status)
    return () if set(wanted) == set(STATUSES) else tuple(wanted)


def _express(arn: str) -> UserError:
    return UserError(
        f"{arn} is an Express state machine: Express executions have no execution history "
        "(GetExecutionHistory does not serve them; their events are only in CloudWatch Logs)"
    )


def _refuse_express(client: Any, arn: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    base = ":".join(arn.split(":")[:7])  # versions and aliases share the state machine's type
    try:
        described = client.describe_state_machine(stateMachineArn=base)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "AccessDeniedException":
            return  # ListExecutions still says StateMachineTypeNotSupported for Express
        raise aws_error("DescribeStateMachine", exc) from None
    except BotoCoreError as exc:
        raise aws_error("DescribeStateMachine", exc) from None
    if described.get("type") == "EXPRESS":
        raise _express(arn)


def _listed(client: Any, arn: str, status: str | None, page_size: int) -> Iterator[dict[str, Any]]:
    """ListExecutions of one status (None: all), newest first, page by page."""
    from botocore.exceptions import BotoCoreError, ClientError

    token: str | None = None
    while True:
        params: dict[str, Any] = {"stateMachineArn": arn, "maxResults": page_size}
        if status:
            params["statusFilter"] = status
        if token:
            params["nextToken"] = token
        try:
            page = client.list_executions(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "StateMachineTypeNotSupported":
                raise _express(arn) from None
            raise aws_error("ListExecutions", exc) from None
        except BotoCoreError as exc:
            raise aws_error("ListExecutions", exc) from None
        yield from page.get("executions", [])
        token = page.get("nextToken")
        if not token:
            return


def executions(
    client: Any, arn: str, statuses: Sequence[str], limit: int | None, page_size: int | None = None
) -> Iterator[dict[str, Any]]:
    """Yield ListExecutions items of `statuses` (all when empty), newest first, at most `limit`."""
    size = page_size or PAGE
    if limit:
        size = min(size, limit)
    streams = [_listed(client, arn, s, size) for s in statuses] or [_listed(client, arn, None, size)]
    # One ListExecutions per status (it takes one statusFilter), merged back into newest-first order.
    merged = (
        heapq.merge(*streams, key=lambda e: e["startDate"], reverse=True) if len(streams) > 1 else streams[0]
    )
    seen: set[str] = set()
    for item in merged:
        if item["executionArn"] in seen:  # its status changed between two listings
            continue
        seen.add(item["executionArn"])
        yield item
        if limit and len(seen) >= limit:
            return


def history(client: Any, execution_arn: str, page_size: int | None = None) -> list[dict[str, Any]]:
    """Return every event of one execution, oldest first (GetExecutionHistory, all pages)."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {
            "executionArn": execution_arn,
            "maxResults": page_size or PAGE,
            "includeExecutionData": True,
        }
        if token:
            params["nextToken"] = token
        page = call(client, "GetExecutionHistory", **params)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            return events


def _plain(value: Any) -> Any:
    """`value` with datetimes as ISO-8601 strings in UTC, as `aws stepfunctions` prints them."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def execution_document(client: Any, execution_arn: str, page_size: int | None = None) -> dict[str, Any]:
    """Return the exported JSON document of one execution: DescribeExecution fields plus `events`."""
    described = call(client, "DescribeExecution", executionArn=execution_arn)
    document = {key: described[key] for key in DESCRIBED if described.get(key) is not None}
    document["events"] = history(client, execution_arn, page_size)
    return dict(_plain(document))


def safe_name(name: str) -> str:
    """`name` as one path segment: no separators, control characters or leading dot."""
    safe = _UNSAFE.sub("_", name)
    return f"_{safe}" if not safe or safe.startswith(".") else safe


def _folder_writer(out: str) -> Callable[[str, bytes], None]:
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder ({exc.strerror})") from None

    def write(relative: str, body: bytes) -> None:
        path = root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        except OSError as exc:
            raise UserError(f"--out {out}: cannot write {relative} ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            Path(temporary).replace(path)  # a reader never sees half a file
        except OSError as exc:
            with contextlib.suppress(OSError):
                Path(temporary).unlink()
            raise UserError(f"--out {out}: cannot write {relative} ({exc.strerror})") from None
        except BaseException:
            with contextlib.suppress(OSError):
                Path(temporary).unlink()
            raise

    return write


def _s3_writer(out: str) -> Callable[[str, bytes], None]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_s3(out)
    client: Any = s3_client()

    def write(relative: str, body: bytes) -> None:
        key = f"{prefix.rstrip('/')}/{relative}" if prefix.strip("/") else relative
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            raise UserError(f"--out {out}: {aws_error('PutObject', exc)}") from None

    return write


def writer(out: str) -> Callable[[str, bytes], None]:
    """A function writing one file (relative path, bytes) under a folder or `s3://bucket/prefix`."""
    return _s3_writer(out) if out.startswith("s3://") else _folder_writer(out)


def export(
    arn: str,
    statuses: Sequence[str],
    limit: int | None,
    out: str,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Write the histories of one state machine's executions to a folder or `s3://bucket/prefix`.

    Returns how many were written; `progress` is called with each execution's name.
    """
    folder = safe_name(state_machine_name(arn))
    wanted = parse_statuses(statuses)
    client = sfn_client(configured_region(arn))
    _refuse_express(client, arn)
    write = writer(out)
    written = 0
    for item in executions(client, arn, wanted, limit):
        document = execution_document(client, item["executionArn"])
        body = json.dumps(document, indent=1, ensure_ascii=False).encode()
        write(f"{folder}/{safe_name(str(item['name']))}.json", body)
        written += 1
        if progress is not None:
            progress(str(item["name"]))
    return written
