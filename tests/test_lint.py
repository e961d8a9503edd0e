"""The code is linted, formatted and type-checked as part of the test suite."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


def _tool(name: str) -> list[str]:
    # The tools installed beside the tests (the `test` extra), whatever is on PATH.
    return [sys.executable, "-m", name]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_passes(command: list[str]) -> None:
    out = subprocess.run(
        [*_tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
