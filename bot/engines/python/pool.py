"""Run replay runners (runner.py) in the user's interpreter, `jobs` at a time, with timeouts.

Each runner is a subprocess fed history paths over stdin; results stream back as JSON lines.
A runner that stops answering for `timeout` seconds is killed: the history it was on is a
`timeout`, the ones queued behind it go to a fresh runner. Nothing here knows about reports.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bot.errors import UserError
from bot.histories import HistoryItem
from bot.model import OWN_INTERPRETER

WINDOW = 4  # histories queued per runner: enough to keep it busy, few to re-queue on a timeout
STARTUP_TIMEOUT = 120.0
# The runner gets these variables and nothing else: no tokens, no cloud credentials.
KEEP_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SYSTEMROOT",
    "VIRTUAL_ENV",
)
PROBE = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"


def scrubbed_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    return env


def has_module(python: str, sdk: str) -> bool:
    try:
        return (
            subprocess.run(
                [python, "-c", PROBE, sdk], env=scrubbed_env(), capture_output=True, timeout=60
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_python(explicit: str | None, sdk: str = "temporalio") -> tuple[str, str]:
    """Return (interpreter, why it was chosen): the user's, where their SDK (module `sdk`) lives."""
    if explicit:
        # Absolute (runners start in another folder), symlinks kept (a venv python is one).
        path = str(Path(shutil.which(explicit) or explicit).absolute())
        if not Path(path).exists():
            raise UserError(f"--python {explicit}: no such interpreter")
        if not has_module(path, sdk):
            raise UserError(f"--python {explicit}: cannot import {sdk} (install your worker's dependencies)")
        return path, "--python"
    for name in ("python", "python3"):
        found = shutil.which(name)
        if found and has_module(found, sdk):
            return found, f"first `{name}` on PATH with {sdk}"
    return sys.executable, f"{OWN_INTERPRETER} (no `python` on PATH has {sdk})"


@dataclass
class RunnerSetup:
    python: str
    config: dict[str, Any]
    cwd: str
    timeout: float
    jobs: int
    runner: Path


@dataclass
class PoolStats:
    ready: dict[str, Any] = field(default_factory=dict)
    fatal: str | None = None


class _Runner:
    def __init__(self, setup: RunnerSetup) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [setup.python, "-u", str(setup.runner)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=setup.cwd,
            env=scrubbed_env(),
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.send(setup.config)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                continue
        self.lines.put(None)

    def send(self, obj: dict[str, Any]) -> bool:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(obj) + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def next(self, timeout: float) -> dict[str, Any] | None:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.stderr.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def startup_error(self) -> str:
        """The exception line the runner printed before it could start (no history read yet)."""
        try:
            self.stderr.seek(0)
            lines = self.stderr.read()[-4000:].decode("utf-8", "replace").splitlines()
        except (OSError, ValueError):
            return ""
        found = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
        return found[-1][:300] if found else ""

    def exit_text(self) -> str:
        code = self.proc.poll()
        return f"it exited with code {code}" if code is not None else "it stopped answering"


Emit = Callable[[HistoryItem, dict[str, Any]], None]


class Pool:
    """Feed histories to `jobs` runners; call `emit(item, result)` for each, from any thread."""

    def __init__(self, setup: RunnerSetup, items: Iterator[HistoryItem], emit: Emit) -> None:
        self.setup = setup
        self.items = items
        self.emit = emit
        self.lock = threading.Lock()
        self.stats = PoolStats()
        self.fatal: str | None = None
        self.counter = 0
        self.begun: dict[int, dict[str, Any]] = {}  # what a runner said of a history it started

    def _next_item(self) -> tuple[int, HistoryItem] | None:
        with self.lock:
            if self.fatal:
                return None
            try:
                item = next(self.items)
            except StopIteration:
                return None
            self.counter += 1
            return self.counter, item

    def run(self) -> PoolStats:
        threads = [threading.Thread(target=self._work, daemon=True) for _ in range(max(1, self.setup.jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.stats.fatal = self.fatal
        return self.stats

    def _start(self) -> _Runner | None:
        runner = _Runner(self.setup)
        try:
            first = runner.next(STARTUP_TIMEOUT)
        except queue.Empty:
            first = None
        if first is None or first.get("kind") != "ready":
            runner.kill()
            detail = (first or {}).get("message") or runner.startup_error() or runner.exit_text()
            with self.lock:
                self.fatal = self.fatal or f"in {self.setup.python}: {detail}"
            return None
        with self.lock:
            if not self.stats.ready:
                self.stats.ready = first
        return runner

    def _work(self) -> None:
        runner: _Runner | None = None
        outstanding: OrderedDict[int, HistoryItem] = OrderedDict()
        retry: deque[tuple[int, HistoryItem]] = deque()
        try:
            while True:
                if not outstanding and not retry:  # start no runner for nothing
                    nxt = self._next_item()
                    if nxt is None:
                        return
                    retry.append(nxt)
                if runner is None:
                    runner = self._start()
                    if runner is None:
                        self._fail_all(outstanding, retry, "not replayed: the replay runner could not start")
                        return
                while len(outstanding) < WINDOW:
                    nxt = retry.popleft() if retry else self._next_item()
                    if nxt is None:
                        break
                    outstanding[nxt[0]] = nxt[1]
                    runner.send({"i": nxt[0], "path": nxt[1].path})
                if not outstanding:
                    return
                try:
                    msg = runner.next(self.setup.timeout)
                except queue.Empty:
                    self._abandon(
                        runner, outstanding, retry, "timeout", f"no result within {self.setup.timeout:g} s"
                    )
                    runner = None
                    continue
                if msg is None or msg.get("kind") == "fatal":
                    detail = (msg or {}).get("message") or (
                        f"the replay runner crashed on this history ({runner.exit_text()})"
                    )
                    self._abandon(runner, outstanding, retry, "error", detail)
                    runner = None
                    continue
                if msg.get("kind") == "begin":
                    with self.lock:
                        self.begun[int(msg["i"])] = msg
                elif msg.get("kind") == "result":
                    item = outstanding.pop(int(msg["i"]), None)
                    with self.lock:
                        self.begun.pop(int(msg["i"]), None)
                    if item is not None:
                        self.emit(item, msg)
        except Exception as exc:  # a bug here must not lose histories silently
            with self.lock:
                self.fatal = self.fatal or f"(the replay pool failed: {type(exc).__name__}: {exc})"
            self._fail_all(outstanding, retry, "not replayed: the replay pool failed")
        finally:
            if runner is not None:
                runner.close()

    def _abandon(
        self,
        runner: _Runner,
        outstanding: OrderedDict[int, HistoryItem],
        retry: deque[tuple[int, HistoryItem]],
        outcome: str,
        message: str,
    ) -> None:
        """The runner is stuck or gone: blame the history it was on, re-queue the rest."""
        runner.kill()
        if outstanding:
            i, item = next(iter(outstanding.items()))
            del outstanding[i]
            with self.lock:
                known = self.begun.pop(i, {})
            self.emit(item, {**known, "i": i, "outcome": outcome, "message": message})
        retry.extendleft(reversed(list(outstanding.items())))
        outstanding.clear()

    def _fail_all(
        self, outstanding: OrderedDict[int, HistoryItem], retry: deque[tuple[int, HistoryItem]], message: str
    ) -> None:
        for i, item in [*outstanding.items(), *retry]:
            self.emit(item, {"i": i, "outcome": "skipped", "message": message})
        outstanding.clear()
        retry.clear()
