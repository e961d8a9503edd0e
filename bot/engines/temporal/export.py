"""Export histories from a Temporal server, in the format the replay runner reads.

`live_histories` streams them into a spool folder for a `temporal://` source; `export`
writes them to a folder or an S3 prefix for later checks. Memory stays bounded: a small
queue sits between the server and the consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.engines.temporal.inflight import connect
from bot.errors import UserError
from bot.histories import HistoryItem, Shard, s3_client, split_s3, temporal_spec

QUEUE = 16
_DONE = object()


@dataclass
class Exported:
    workflow_id: str
    run_id: str
    data: bytes  # binary History protobuf


def source_name(address: str, namespace: str, workflow_id: str, run_id: str) -> str:
    return f"temporal://{address}/{namespace}/{workflow_id}/{run_id}"


async def _produce(
    address: str,
    namespace: str,
    query: str,
    limit: int | None,
    sample: int | None,
    put: Callable[[Any], None],
    shard: Shard | None = None,
) -> None:
    client = await connect(address, namespace)
    executions = []
    async for wf in client.list_workflows(query or None, limit=None if sample else limit):
        executions.append((wf.id, wf.run_id))
        if not sample and limit and len(executions) >= limit:
            break
    if sample and len(executions) > sample:
        executions = random.Random(0).sample(executions, sample)
    for wf_id, run_id in executions:
        if shard is not None and not shard.takes(source_name(address, namespace, wf_id, run_id)):
            continue  # another shard fetches it
        history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
        from temporalio.api.history.v1 import History

        data = History(events=history.events).SerializeToString()
        put(Exported(wf_id, run_id, data))


def stream(
    address: str,
    namespace: str,
    query: str,
    limit: int | None,
    sample: int | None = None,
    shard: Shard | None = None,
) -> Iterator[Exported]:
    """Yield exported histories as the server returns them (a producer thread, a bounded queue)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE)

    def run() -> None:
        try:
            asyncio.run(_produce(address, namespace, query, limit, sample, q.put, shard))
            q.put(_DONE)
        except BaseException as exc:
            q.put(exc)

    threading.Thread(target=run, daemon=True).start()
    while True:
        item = q.get()
        if item is _DONE:
            return
        if isinstance(item, UserError):
            raise item
        if isinstance(item, BaseException):
            message = getattr(item, "message", None) or str(item)
            raise UserError(f"Temporal at {address} ({namespace}): {message}")
        yield item


def file_name(e: Exported, suffix: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", e.workflow_id)[:150]
    return f"{safe}__{e.run_id}{suffix}"


def live_histories(spec: str, spool: Path, shard: Shard | None) -> Iterator[HistoryItem]:
    """The `temporal://HOST:PORT/NAMESPACE?query=...&limit=N` history source."""
    address, namespace, query, limit = temporal_spec(spec)
    for e in stream(address, namespace, query, limit, shard=shard):
        name = source_name(address, namespace, e.workflow_id, e.run_id)
        fd, local = tempfile.mkstemp(dir=spool, suffix=".binpb")
        with os.fdopen(fd, "wb") as fh:
            fh.write(e.data)
        yield HistoryItem(name=name, path=local, temporary=True)


def to_json(data: bytes) -> bytes:
    """The proto3 JSON `temporal workflow show -o json` writes."""
    from google.protobuf.json_format import MessageToDict
    from temporalio.api.history.v1 import History

    history = History()
    history.ParseFromString(data)
    return json.dumps(MessageToDict(history), indent=1).encode()


def export(
    address: str,
    namespace: str,
    query: str,
    limit: int | None,
    sample: int | None,
    out: str,
    fmt: str,
    progress: Callable[[Exported], None] | None = None,
) -> int:
    """Write histories to a folder or `s3://bucket/prefix`; return how many were written."""
    suffix = ".json" if fmt == "json" else ".binpb"
    s3 = None
    if out.startswith("s3://"):
        bucket, prefix = split_s3(out)
        s3 = s3_client()
    else:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    written = 0
    for e in stream(address, namespace, query, limit, sample):
        body = to_json(e.data) if fmt == "json" else e.data
        name = file_name(e, suffix)
        if s3 is not None:
            key = f"{prefix.rstrip('/')}/{name}" if prefix else name
            _put(s3, bucket, key, body, out)
        else:
            (Path(out) / name).write_bytes(body)
        written += 1
        if progress is not None:
            progress(e)
    return written


def _put(client: Any, bucket: str, key: str, body: bytes, out: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.put_object(Bucket=bucket, Key=key, Body=body)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UserError(
            f"--out {out}: S3 said {error.get('Code', '?')}: {error.get('Message', '')}"
        ) from None
    except BotoCoreError as exc:
        raise UserError(f"--out {out}: {exc}") from None
