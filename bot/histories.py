"""History sources: where exported workflow histories come from, streamed one file at a time.

A source is a folder (recursive), a glob, an `s3://bucket/prefix`, or a live
`temporal://HOST:PORT/NAMESPACE?query=...`. A source ending in `/LATEST` (an S3 key or a file) is a
pointer `export --latest` writes: it names the newest export beside it, and only that one is read. Each yields `HistoryItem`s naming a local file;
remote histories are spooled to a temporary folder just before they are used and deleted
after, so memory and disk stay bounded whatever the corpus size. Reading what is inside a
file (and telling a history from anything else) is the replay runner's job.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from bot.credentials import lent
from bot.errors import UserError
from bot.model import ReplayResult

T = TypeVar("T")

EXTENSIONS = (".json", ".binpb", ".pb")
DEFAULT_MAX_HISTORY_BYTES = 64 * 1024 * 1024  # `limits.max_history_bytes`
# S3 that stops answering must not hold the run: a request (a listing page, a download's next chunk)
# without an answer within S3_DEADLINE seconds, retries included, ends its source with one error.
S3_DEADLINE = 20.0
S3_CONNECT_TIMEOUT = 5.0
S3_ATTEMPTS = 2  # botocore's total attempts per request (first + retries)
S3_CHUNK = 1 << 20


@dataclass(frozen=True)
class HistoryItem:
    """One exported history: `name` is what reports show, `path` the local file to read (absolute:
    runners start in another folder)."""

    name: str
    path: str
    temporary: bool = False

    def release(self) -> None:
        if self.temporary:
            Path(self.path).unlink(missing_ok=True)


@dataclass(frozen=True)
class Shard:
    """`--shard i/n`: this run takes the histories whose name hashes to slot i of n."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, _, n = text.partition("/")
            shard = cls(int(i), int(n))
        except ValueError:
            raise UserError(f"--shard {text}: expected I/N, e.g. 1/4") from None
        if not 1 <= shard.index <= shard.count:
            raise UserError(f"--shard {text}: I must be between 1 and N")
        return shard

    def takes(self, name: str) -> bool:
        slot = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") % self.count
        return slot == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class SourceStats:
    """What the sources held beyond histories: for the report's notes and findings."""

    empty: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files in a folder that are not history exports
    passed_over: int = 0  # remote histories `wanted` declined by name, never downloaded


def validate(specs: Sequence[str]) -> None:
    """Reject a source that cannot work before any work is done (a typo should not cost a run)."""
    for spec in specs:
        if spec.startswith("s3://"):
            split_s3(spec)
        elif spec.startswith("temporal://"):
            temporal_spec(spec)
        elif not any(ch in spec for ch in "*?[") and not Path(spec).exists():
            raise UserError(f"--histories {spec}: no such file or folder")


def iter_histories(
    options: ReplayOptions, spool: Path, stats: SourceStats | None = None
) -> Iterator[HistoryItem]:
    """Yield every history file of `options.sources` (that `options.wanted` takes by name and
    `options.accept` by content), in a stable order, once each. A remote history `wanted` declines
    is not downloaded; a file over `options.max_history_bytes` is not read: it is a source error."""
    seen: set[str] = set()  # local files by real path, remote ones by name
    stats = stats if stats is not None else SourceStats()
    cap = options.max_history_bytes
    for spec in options.sources:
        found = False
        passed_over = stats.passed_over
        try:
            for item in _items(spec, spool, options.shard, stats, cap, options.wanted):
                found = True
                key = item.name if item.temporary else str(Path(item.path).resolve())
                if key in seen or (options.wanted is not None and not options.wanted(item.name)):
                    item.release()
                    continue
                seen.add(key)
                size = _size(item.path)
                if size > cap:
                    item.release()
                    stats.errors.append(too_large(spec, item.name, size, cap))
                    continue
                if options.accept is not None and not options.accept(item):
                    item.release()
                    continue
                yield item
        except UserError as exc:  # a remote source failing mid-way: keep what was read
            stats.errors.append(exc.message)
            continue
        if not found and stats.passed_over == passed_over:
            stats.empty.append(spec)


def too_large(spec: str, name: str, size: int, cap: int) -> str:
    return (
        f"--histories {spec}: {name} is {size:,} bytes, over the {cap:,}-byte limit: not read "
        "(raise limits.max_history_bytes in the config to replay it)"
    )


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0  # the reader says what is wrong with it


# A live source's reader streams its histories into the spool folder, by scheme (`temporal://`).
# The engine that reads it registers it (`live_source`): this module imports no engine.
LiveReader = Callable[[str, Path, Shard | None], Iterator[HistoryItem]]
_LIVE: dict[str, LiveReader] = {}


def live_source(scheme: str, reader: LiveReader) -> None:
    """Register the reader of the live history sources whose spec starts with `scheme`."""
    _LIVE[scheme] = reader


def _live(spec: str) -> LiveReader | None:
    return next((reader for scheme, reader in _LIVE.items() if spec.startswith(scheme)), None)


LATEST = "LATEST"
POINTER_LIMIT = 1024  # bytes read of a LATEST pointer: one line naming a prefix
# What a pointer may name: a folder beside it, e.g. `2026-11-25/` (never `..`, a path from the root or a URL).
POINTED = re.compile(r"^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*/$")


def is_pointer(spec: str) -> bool:
    """True for a `.../LATEST` source (an S3 key, or a file)."""
    if spec.startswith("s3://"):
        return split_s3(spec)[1].rsplit("/", 1)[-1] == LATEST
    return Path(spec).name == LATEST and Path(spec).is_file()


def _pointed(spec: str, text: str) -> str:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not line.endswith("/"):
        line += "/"
    if not POINTED.match(line):
        raise UserError(
            f"--histories {spec}: the pointer must name one export folder beside it (like `2026-11-25/`), "
            f"not {line[:80]!r}"
        )
    return line


def resolve_pointer(spec: str) -> str:
    """The source a `.../LATEST` pointer names (the export folder beside it), read once."""
    if not spec.startswith("s3://"):
        try:
            with Path(spec).open("rb") as fh:
                text = fh.read(POINTER_LIMIT).decode("utf-8", "replace")
        except OSError as exc:
            raise UserError(f"--histories {spec}: cannot read the pointer ({exc.strerror})") from None
        return str(Path(spec).parent / _pointed(spec, text))
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(spec)
    client: Any = s3_client()
    try:
        # No Range: S3 refuses one on an empty object. The body is streamed and only its start read.
        body = _answer(spec, partial(client.get_object, Bucket=bucket, Key=key))["Body"]
        text = _answer(spec, partial(body.read, POINTER_LIMIT)).decode("utf-8", "replace")
        body.close()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UserError(
            f"--histories {spec}: S3 said {error.get('Code', '?')}: {error.get('Message', '')} "
            "(`export --latest` writes this pointer)"
        ) from None
    except BotoCoreError as exc:
        raise UserError(f"--histories {spec}: {exc}") from None
    parent = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    return f"s3://{bucket}/{parent}{_pointed(spec, text)}"


def write_latest(out: str) -> str:
    """After a complete export to `out`, make `LATEST` beside it name it; return the pointer's spec."""
    if out.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = split_s3(out)
        parent, _, leaf = prefix.strip("/").rpartition("/")
        if not leaf:
            raise UserError(
                f"--latest: {out} is the bucket itself: export to a folder of it (s3://BUCKET/2026-11-25/)"
            )
        key = f"{parent}/{LATEST}" if parent else LATEST
        try:
            client: Any = s3_client()
            client.put_object(Bucket=bucket, Key=key, Body=f"{leaf}/\n".encode(), ContentType="text/plain")
        except (ClientError, BotoCoreError) as exc:
            raise UserError(f"--latest s3://{bucket}/{key}: {exc}") from None
        return f"s3://{bucket}/{key}"
    folder = Path(out).absolute()
    pointer = folder.parent / LATEST
    temporary = pointer.with_name(f".{LATEST}.tmp")
    try:
        temporary.write_text(f"{folder.name}/\n", encoding="utf-8")
        temporary.replace(pointer)  # a reader never sees half a pointer
    except OSError as exc:
        raise UserError(f"--latest {pointer}: cannot write ({exc.strerror})") from None
    return str(pointer)


def _items(
    spec: str,
    spool: Path,
    shard: Shard | None,
    stats: SourceStats,
    cap: int,
    wanted: Callable[[str], bool] | None,
) -> Iterator[HistoryItem]:
    if is_pointer(spec):
        spec = resolve_pointer(spec)
    if spec.startswith("s3://"):
        yield from _s3(spec, spool, shard, stats, cap, wanted)
    elif (live := _live(spec)) is not None:
        yield from live(spec, spool, shard)
    elif any(ch in spec for ch in "*?["):
        for path in sorted(glob.glob(spec, recursive=True)):  # noqa: PTH207 - absolute or relative patterns
            if Path(path).is_file() and (shard is None or shard.takes(path)):
                yield HistoryItem(name=path, path=str(Path(path).absolute()))
    else:
        yield from _folder(spec, shard, stats)


def _folder(spec: str, shard: Shard | None, stats: SourceStats) -> Iterator[HistoryItem]:
    root = Path(spec)
    if root.is_file():
        if shard is None or shard.takes(spec):
            yield HistoryItem(name=spec, path=str(Path(spec).absolute()))
        return
    if not root.is_dir():
        raise UserError(f"--histories {spec}: no such file or folder")
    shown = Path(spec)  # reports name a history by the folder as given: unique, and what the user typed
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in sorted(files):
            if not file.endswith(EXTENSIONS):
                stats.ignored.append((shown / Path(folder).relative_to(root) / file).as_posix())
                continue
            path = Path(folder) / file
            name = (shown / path.relative_to(root)).as_posix()
            # The shard is chosen by the path inside the folder: the same split on every runner,
            # wherever the folder is.
            if shard is None or shard.takes(path.relative_to(root).as_posix()):
                yield HistoryItem(name=name, path=str(path.absolute()))


def split_s3(spec: str) -> tuple[str, str]:
    parts = urlsplit(spec)
    if not parts.netloc:
        raise UserError(f"{spec}: expected s3://BUCKET/PREFIX")
    return parts.netloc, parts.path.lstrip("/")


def s3_client() -> object:
    """A boto3 S3 client: the standard credential chain; `AWS_ENDPOINT_URL` is honoured by boto3.

    Bounded: a connection that never opens gives up after `S3_CONNECT_TIMEOUT` s, and a request is
    tried `S3_ATTEMPTS` times; a read may wait past `S3_DEADLINE`, which the caller enforces.
    """
    import boto3
    from botocore.config import Config as BotoConfig

    with lent():  # the credentials `inflight-guard action` holds out of its environment
        return boto3.client(
            "s3",
            config=BotoConfig(
                retries={"total_max_attempts": S3_ATTEMPTS, "mode": "standard"},
                connect_timeout=S3_CONNECT_TIMEOUT,
                read_timeout=S3_DEADLINE,
            ),
        )


def _answer(spec: str, request: Callable[[], T]) -> T:
    """Return what `request` (one S3 call) returns, or raise one source error past `S3_DEADLINE` s.

    The call runs on a daemon thread: a server that accepts and never answers cannot hold the run
    (the thread ends with botocore's own timeout, or with the process).
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = request()
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="inflight-guard-s3", daemon=True)
    worker.start()
    worker.join(S3_DEADLINE)
    if worker.is_alive():
        raise UserError(f"--histories {spec}: no answer within {S3_DEADLINE:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _s3(
    spec: str,
    spool: Path,
    shard: Shard | None,
    stats: SourceStats,
    cap: int,
    wanted: Callable[[str], bool] | None,
) -> Iterator[HistoryItem]:
    from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
    from botocore.exceptions import ConnectionError as NoConnection

    bucket, prefix = split_s3(spec)
    client: Any = s3_client()
    try:
        pages = iter(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
        while (page := _answer(spec, lambda: next(pages, None))) is not None:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                name = f"s3://{bucket}/{key}"
                if not key.endswith(EXTENSIONS):
                    stats.ignored.append(name)
                    continue
                if shard is not None and not shard.takes(name):
                    continue
                if wanted is not None and not wanted(name):
                    stats.passed_over += 1
                    continue
                if int(obj.get("Size", 0)) > cap:  # refused from the listing: never downloaded
                    stats.errors.append(too_large(spec, name, int(obj["Size"]), cap))
                    continue
                fd, local = tempfile.mkstemp(dir=spool, suffix=Path(key).suffix)
                with os.fdopen(fd, "wb") as out:
                    body = _answer(spec, partial(client.get_object, Bucket=bucket, Key=key))["Body"]
                    written = 0
                    # A chunk at a time, each within the deadline; the listed size may be stale.
                    while written <= cap and (chunk := _answer(spec, partial(body.read, S3_CHUNK))):
                        out.write(chunk)
                        written += len(chunk)
                    body.close()
                yield HistoryItem(name=name, path=local, temporary=True)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UserError(
            f"--histories {spec}: S3 said {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        ) from None
    except (ReadTimeoutError, NoConnection) as exc:  # botocore's timeouts, after its retries
        raise UserError(f"--histories {spec}: no answer from S3 ({exc})") from None
    except BotoCoreError as exc:
        raise UserError(f"--histories {spec}: {exc}") from None


def temporal_spec(spec: str) -> tuple[str, str, str, int | None]:
    """Return (address, namespace, query, limit) of `temporal://HOST:PORT/NAMESPACE?query=...&limit=N`."""
    parts = urlsplit(spec)
    if not parts.netloc:
        raise UserError(f"{spec}: expected temporal://HOST:PORT/NAMESPACE?query=...")
    namespace = parts.path.strip("/") or "default"
    params = parse_qs(parts.query)
    query = params.get("query", [""])[0]
    limit_text = params.get("limit", [None])[0]
    try:
        limit = int(limit_text) if limit_text else None
    except ValueError:
        raise UserError(f"{spec}: limit must be a number") from None
    return parts.netloc, namespace, query, limit


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME")
    return (Path(root) if root else Path.home() / ".cache") / "inflight-guard"


class ReplayLog:
    """`--replay-log FILE`: the full failure text of each history that failed, one JSON line each.

    Reports never hold this text: an SDK's message or the head code's exception may quote data the
    code derived from a payload (only exact payload strings are redacted from it). The file is the
    user's own, readable by its owner only. Engines write from several threads.
    """

    def __init__(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        except OSError as exc:
            raise UserError(f"--replay-log {path}: cannot write ({exc.strerror or exc})") from None
        self.path = path
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, engine: str, result: ReplayResult, message: str | None = None) -> None:
        """Log a failed result with the raw failure text (`message`, else the result's own)."""
        line = {
            "history": result.history,
            "engine": engine,
            "definition": result.definition,
            "workflow_type": result.workflow_type,
            "run_id": result.run_id,
            "outcome": result.outcome,
            "code": result.code,
            "event_id": result.event_id,
            "event": result.event,
            "message": result.message if message is None else message,
        }
        with self._lock:
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class ReplayOptions:
    """How to replay: the sources, the interpreter, parallelism, cache, scope and limits."""

    sources: Sequence[str] = ()
    python: str | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    cache: Path | None = field(default_factory=default_cache)
    replay_all: bool = False
    timeout: float = 60.0
    shard: Shard | None = None
    progress: Callable[[ReplayResult], None] | None = None
    # Which histories an engine takes (the pipeline sets both: sources may mix engines' exports):
    # by content, and by name before a remote one is downloaded.
    accept: Callable[[HistoryItem], bool] | None = None
    wanted: Callable[[str], bool] | None = None
    # Where the raw failure text goes (`--replay-log`); without it, that text is dropped.
    log: ReplayLog | None = None
    # A history larger than this is not read (the pipeline sets it from `limits.max_history_bytes`).
    max_history_bytes: int = DEFAULT_MAX_HISTORY_BYTES


def sources_of(engine: str, specs: Sequence[str]) -> list[str]:
    """The sources that may hold `engine`'s histories: a live `temporal://` source is Temporal's only."""
    return [s for s in specs if engine == "temporal" or not s.startswith("temporal://")]


def history_engine(path: str) -> str | None:
    """Return which engine exported the history file at `path`, from its first bytes; None if unknown."""
    if path.endswith((".binpb", ".pb")):
        return "temporal"
    try:
        with open(path, "rb") as f:  # noqa: PTH123 - a bounded read of the head only
            head = f.read(65536)
    except OSError:
        return None
    if re.search(rb'"(dag_runs|task_instances|dag_run_id)"', head):
        return "airflow"
    if b"EVENT_TYPE_" in head or b'"taskQueue"' in head:
        return "temporal"
    # Cadence's started event names a task list (Thrift JSON of the CLI, or the SDK's proto JSON);
    # the CLI's events carry a nanosecond `timestamp` (Temporal's an RFC 3339 `eventTime`).
    if re.search(rb'"(taskList|task_list)"', head) or re.search(rb'"timestamp"\s*:\s*\d', head):
        return "cadence"
    if re.search(rb'"(eventType|event_type|EventType|eventId)"', head):
        return "temporal"
    if re.search(rb'"(previousEventId|executionArn|stateMachineArn)"', head) or re.search(
        rb'"type"\s*:\s*"(Execution|Task|Pass|Choice|Map|Parallel|Wait|Lambda)', head
    ):
        return "stepfunctions"
    return None
