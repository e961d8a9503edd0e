"""Live figures from a Temporal server: running executions per workflow type, oldest start.

Credentials come from the environment, as the Temporal CLI reads them: `TEMPORAL_API_KEY`,
`TEMPORAL_TLS_CERT` / `TEMPORAL_TLS_KEY` (client certificate files), `TEMPORAL_TLS_CA`,
`TEMPORAL_TLS=true` (TLS without a client certificate).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.credentials import credential
from bot.errors import UserError
from bot.model import InFlight

OLDEST_SCAN = 1000
_used = False


def client_used() -> bool:
    """True once this process has opened a Temporal client (it must leave with os._exit)."""
    return _used


def _tls() -> Any:
    from temporalio.service import TLSConfig

    cert, key, ca = (credential(f"TEMPORAL_TLS_{n}") for n in ("CERT", "KEY", "CA"))

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read TLS file ({exc.strerror})") from None

    if cert and key:
        return TLSConfig(client_cert=read(cert), client_private_key=read(key), server_root_ca_cert=read(ca))
    if ca:
        return TLSConfig(server_root_ca_cert=read(ca))
    return bool(credential("TEMPORAL_API_KEY")) or os.environ.get("TEMPORAL_TLS", "").lower() in (
        "1",
        "true",
    )


async def connect(address: str, namespace: str) -> Any:
    global _used
    from temporalio.client import Client

    _used = True
    try:
        return await asyncio.wait_for(
            Client.connect(
                address, namespace=namespace, api_key=credential("TEMPORAL_API_KEY") or None, tls=_tls()
            ),
            timeout=30,
        )
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot connect to Temporal at {address} ({namespace}): {exc}") from None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def _figures(address: str, namespace: str, types: Sequence[str]) -> dict[str, InFlight]:
    from temporalio.service import RPCError

    client = await connect(address, namespace)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: dict[str, InFlight] = {}
    for t in types:
        query = f'WorkflowType="{_quote(t)}" AND ExecutionStatus="Running"'
        count = (await client.count_workflows(query)).count
        oldest: datetime | None = None
        note = ""
        if count:
            try:
                async for wf in client.list_workflows(f"{query} ORDER BY StartTime asc", limit=1):
                    oldest = wf.start_time
            except RPCError:  # visibility stores without ORDER BY (SQL, the dev server)
                seen = 0
                async for wf in client.list_workflows(query, limit=OLDEST_SCAN):
                    seen += 1
                    oldest = wf.start_time if oldest is None or wf.start_time < oldest else oldest
                if seen >= OLDEST_SCAN and count > OLDEST_SCAN:
                    note = f"; oldest of the first {OLDEST_SCAN} listed"
        out[t] = InFlight(
            count=count,
            oldest_start=oldest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if oldest else None,
            source=f"live count from {address}/{namespace} at {now}{note}",
        )
    return out


def live_figures(address: str, namespace: str, types: Sequence[str]) -> dict[str, InFlight]:
    """Return running-execution figures per workflow type; UserError when the server cannot be asked."""
    from temporalio.service import RPCError

    try:
        return asyncio.run(_figures(address, namespace, types))
    except RPCError as exc:
        raise UserError(f"Temporal at {address} ({namespace}) refused the count: {exc.message}") from None
