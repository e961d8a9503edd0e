"""Mermaid's own parser for the tests: the npm packages pinned in tests/mermaid/package-lock.json,
installed once into a cached folder (`npm ci`, offline after the first install) and run headless
under jsdom (mermaid-cli would need a Chrome that cannot be downloaded here)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "mermaid"
FILES = ("package.json", "package-lock.json", "parse.mjs")


def cache() -> Path:
    root = os.environ.get("INFLIGHT_GUARD_TEST_NPM")
    return Path(root) if root else Path.home() / ".cache" / "inflight-guard" / "npm"


def install() -> tuple[Path, float]:
    """The folder holding the parser with its node_modules, and the seconds this call spent installing
    (0 when the cached install was there)."""
    digest = hashlib.sha256(b"".join((HERE / f).read_bytes() for f in FILES)).hexdigest()[:16]
    folder = cache() / f"mermaid-{digest}"
    marker = folder / ".complete"
    folder.parent.mkdir(parents=True, exist_ok=True)
    spent = 0.0
    with (folder.parent / f".mermaid-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes wait for one install
        if not marker.exists():
            started = time.monotonic()
            folder.mkdir(exist_ok=True)
            for name in FILES:
                shutil.copy(HERE / name, folder / name)
            done = subprocess.run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
                cwd=folder,
                check=False,
                capture_output=True,
                text=True,
            )
            # No skip: without Mermaid's parser the diagrams are unchecked, so the tests fail.
            assert done.returncode == 0, f"npm ci in {folder} failed:\n{done.stderr[-3000:]}"
            spent = time.monotonic() - started
            marker.write_text(digest)
    return folder, spent


def parse(folder: Path, documents: list[str]) -> list[dict[str, Any]]:
    """What Mermaid reads from each document: vertices, edges, subgraphs and classes, or its error."""
    done = subprocess.run(
        ["node", str(folder / "parse.mjs")],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result
