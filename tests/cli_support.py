"""Running the real CLI in-process (Typer's runner) and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str


def invoke(*args: str | Path) -> Run:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return Run(result.exit_code, result.stdout, result.stderr)


def run_process(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    env = {**{k: v for k, v in os.environ.items() if k != "INFLIGHT_GUARD_DEBUG"}, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-m", "bot", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    return Run(out.returncode, out.stdout, out.stderr)
