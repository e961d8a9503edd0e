"""Real Apache Airflow for the tests: cached side virtualenvs, made on first use.

Airflow pins its own versions of many libraries, so it does not go into the test environment
itself: each version gets a venv under `$INFLIGHT_GUARD_TEST_VENVS` (default
`~/.cache/inflight-guard/test-venvs`), created by the first test that needs it (about 45 s on
2 cores; the constraints file is not reachable here, a plain install works). The DAG loader
runs in that venv's interpreter, as it runs in a user's own Airflow environment.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

AIRFLOW_3 = "3.3.2"
AIRFLOW_2 = "2.11.2"


def venvs() -> Path:
    root = os.environ.get("INFLIGHT_GUARD_TEST_VENVS")
    return Path(root) if root else Path.home() / ".cache" / "inflight-guard" / "test-venvs"


def airflow_python(version: str) -> str:
    """The interpreter of a venv with `apache-airflow==version`, created (once) if missing."""
    folder = venvs() / f"airflow-{version}"
    python = folder / "bin" / "python"
    marker = folder / ".complete"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".airflow-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes wait for one install
        if not marker.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    f"apache-airflow=={version}",
                ],
                check=True,
            )
            probe = "import airflow, sys; sys.exit(airflow.__version__ != sys.argv[1])"
            subprocess.run([str(python), "-c", probe, version], check=True)
            marker.write_text(version)
    return str(python)
