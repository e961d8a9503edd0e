"""Live figures from AWS Step Functions: running executions per state machine, oldest start.

Credentials come from the standard AWS chain (environment, profile, SSO, container or instance
role); `AWS_ENDPOINT_URL` and `AWS_REGION` / `AWS_DEFAULT_REGION` are honoured. A state machine
is known here by its name, as the definitions in the repository are.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.credentials import credential, lent
from bot.errors import UserError
from bot.model import InFlight

PAGE = 1000  # the most ListExecutions / GetExecutionHistory / ListStateMachines return per call
CAP = 10_000  # RUNNING executions counted per state machine before the count says "N+"
LATEST = "latest revision"


def configured_region(arn: str | None = None) -> str | None:
    """Return the region to call: AWS_REGION, then the profile's or AWS_DEFAULT_REGION, then the ARN's."""
    region = credential("AWS_REGION") or _session_region()
    if not region and arn:
        parts = arn.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else None
    return region


def _session_region() -> str | None:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        with lent():
            region = boto3.Session().region_name
    except BotoCoreError as exc:  # a profile named in AWS_PROFILE that does not exist
        raise UserError(f"AWS configuration: {_one_line(str(exc))}") from None
    return str(region) if region else None


def credentials_available() -> bool:
    """True when the standard AWS credential chain finds credentials (no AWS API call is made)."""
    import boto3
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        session = botocore.session.get_session()
        # Without configured credentials botocore would probe the EC2 instance metadata endpoint
        # (a one-second wait on every check off EC2); look there only when asked to.
        if os.environ.get("INFLIGHT_GUARD_AWS_IMDS", "").lower() not in ("1", "true"):
            session.get_component("credential_provider").remove("iam-role")
        with lent():
            return boto3.Session(botocore_session=session).get_credentials() is not None
    except BotoCoreError:
        return False


def sfn_client(region: str | None) -> Any:
    """A boto3 Step Functions client for `region`; UserError when no region is configured."""
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, NoRegionError

    try:
        with lent():
            return boto3.client(
                "stepfunctions",
                region_name=region,
                # No max_attempts here, so AWS_MAX_ATTEMPTS and the profile's setting still apply.
                config=BotoConfig(retries={"mode": "standard"}, connect_timeout=10, read_timeout=60),
            )
    except NoRegionError:
        raise UserError("no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION)") from None
    except BotoCoreError as exc:
        raise UserError(f"AWS configuration: {_one_line(str(exc))}") from None


def call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """Return one API call's response; UserError `Operation: Code: message` when it fails."""
    from botocore import xform_name
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response: dict[str, Any] = getattr(client, xform_name(operation))(**params)
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(operation, exc) from None
    return response


def aws_error(operation: str, exc: Exception) -> UserError:
    """Return the one-line `Operation: Code: message` error for a botocore ClientError or BotoCoreError."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "?"
        message = _one_line(str(error.get("Message") or ""))
        return UserError(f"{operation}: {code}: {message}".rstrip(": "))
    # NoCredentialsError, EndpointConnectionError, ParamValidationError, timeouts: no AWS code.
    return UserError(f"{operation}: {type(exc).__name__}: {_one_line(str(exc))}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _state_machines(client: Any, names: set[str]) -> dict[str, dict[str, Any]]:
    """ListStateMachines until every name is found; name -> the list item."""
    found: dict[str, dict[str, Any]] = {}
    token: str | None = None
    while names - found.keys():
        params: dict[str, Any] = {"maxResults": PAGE}
        if token:
            params["nextToken"] = token
        page = call(client, "ListStateMachines", **params)
        for item in page.get("stateMachines", []):
            if item.get("name") in names:
                found[item["name"]] = item
        token = page.get("nextToken")
        if not token:
            break
    return found


def _running(client: Any, arn: str) -> tuple[list[Mapping[str, Any]], bool]:
    """The RUNNING executions of `arn`, at most CAP of them; True when more were left uncounted."""
    items: list[Mapping[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"stateMachineArn": arn, "statusFilter": "RUNNING", "maxResults": PAGE}
        if token:
            params["nextToken"] = token
        page = call(client, "ListExecutions", **params)
        batch = page.get("executions", [])
        token = page.get("nextToken")
        room = CAP - len(items)
        items.extend(batch[:room])
        if len(batch) > room or (len(items) >= CAP and token):
            return items, True
        if not token:
            return items, False


def breakdown(items: Iterable[Mapping[str, Any]]) -> str:
    """Return `version 2: 1, version 3: 2, latest revision: 1`, or "" when no execution runs a version.

    An execution started on a version or an alias carries `stateMachineVersionArn` in ListExecutions;
    one started on the unqualified ARN runs the latest revision and carries none.
    """
    tally: Counter[str] = Counter()
    for item in items:
        version_arn = item.get("stateMachineVersionArn")
        tally[str(version_arn).rsplit(":", 1)[-1] if version_arn else LATEST] += 1
    if not tally or set(tally) == {LATEST}:
        return ""
    versions = sorted((v for v in tally if v != LATEST), key=lambda v: (len(v), v))  # 2 before 10
    parts = [f"version {v}: {tally[v]}" for v in versions]
    if tally[LATEST]:
        parts.append(f"{LATEST}: {tally[LATEST]}")
    return ", ".join(parts)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _figure(client: Any, item: Mapping[str, Any], region: str | None, now: str) -> InFlight:
    where = f" in {region} at {now}" if region else f" at {now}"
    if item.get("type") == "EXPRESS":
        return InFlight(
            source=f"EXPRESS state machine: ListExecutions does not list Express executions "
            f"(each runs at most 5 minutes){where}"
        )
    running, capped = _running(client, item["stateMachineArn"])
    starts = [e["startDate"] for e in running if isinstance(e.get("startDate"), datetime)]
    split = breakdown(running)
    count = f"{len(running):,}+" if capped else str(len(running))
    source = f"ListExecutions: {count} RUNNING" + (f" ({split})" if split else "") + where
    if capped:
        source += f"; counting stopped at {CAP:,}, so the oldest start is that of the newest {CAP:,}"
    return InFlight(count=len(running), oldest_start=_iso(min(starts)) if starts else None, source=source)


def live_figures(names: Sequence[str], region: str | None = None) -> dict[str, InFlight]:
    """Return RUNNING-execution figures per state machine name; names not found are left out.

    Raises UserError (one line naming the AWS operation) when Step Functions cannot be asked.
    """
    region = region or configured_region()
    client = sfn_client(region)
    machines = _state_machines(client, set(names))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {name: _figure(client, machines[name], region, now) for name in names if name in machines}
