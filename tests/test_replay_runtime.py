"""The comment names the interpreter and SDK version that replayed, without a local path, and warns
when they were the tool's own (no `--python`, and no `python` on PATH has the SDK). Real replay of
the demo's histories through the CLI as a subprocess; the SDK version expected is what the
interpreter itself reports, asked separately."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import run_process

from bot.demo import BRANCH, HISTORIES, build_repo

WARNING = "**Warning:** that is inflight-guard's own interpreter and SDK"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repo(tmp_path_factory.mktemp("runtime") / "repo")


def sdk_version(python: str) -> str:
    probe = "from importlib.metadata import version; print(version('temporalio'))"
    return subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def python_version(python: str) -> str:
    probe = "import platform; print(platform.python_version())"
    return subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def check(demo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    run = run_process(
        "check",
        "--repo",
        demo,
        "--base",
        "main",
        "--head",
        BRANCH,
        "--histories",
        HISTORIES,
        "--synthesize",
        "off",
        *args,
        env=env,
    )
    assert run.exit_code in (0, 1), run.stderr
    return run.stdout


def test_the_users_interpreter_is_named_without_its_path(demo: Path) -> None:
    text = check(demo, "--python", sys.executable)
    name = Path(sys.executable).name
    line = (
        f"Replay ran in Python {python_version(sys.executable)} (`{name}`: --python) "
        f"with temporalio {sdk_version(sys.executable)}."
    )
    assert f"{line}\n\n| History |" in text  # its own line; the failures table still starts a block
    assert WARNING not in text and "own interpreter, not your workers'" not in text
    assert str(Path(sys.executable).parent) not in text


def test_the_tools_own_interpreter_is_a_warning(demo: Path, tmp_path: Path) -> None:
    # A PATH whose only python cannot import temporalio: the runner falls back to the tool's own.
    bare = tmp_path / "bin"
    bare.mkdir()
    system = shutil.which("python3", path="/usr/bin")
    assert system is not None
    assert subprocess.run([system, "-c", "import temporalio"], capture_output=True).returncode != 0
    (bare / "python3").symlink_to(system)
    (bare / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    text = check(demo, env={"PATH": str(bare)})
    assert "inflight-guard's own interpreter (no `python` on PATH has temporalio)" in text
    assert f"with temporalio {sdk_version(sys.executable)}. {WARNING}" in text
    # The warning is in the summary too, not only in the collapsed Replay section.
    top = text.split("<details>", 1)[0]
    assert "with inflight-guard's own interpreter, not your workers'" in top, top
