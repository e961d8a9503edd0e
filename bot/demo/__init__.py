"""The bundled example: an order workflow whose head inserts a fraud check without a gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import git

EXAMPLE = Path(__file__).resolve().parent / "example"
# Histories of the base code, recorded on a real Temporal dev server (scripts/record_demo_histories.py):
# order-1001 completed, order-1002 waiting past the insertion point, order-1003 before it.
HISTORIES = Path(__file__).resolve().parent / "histories"
BRANCH = "add-fraud-check"


def build_repo(dest: Path) -> Path:
    """Create a git repository at `dest`: `main` holds the base, `add-fraud-check` the head."""
    repo = git.Repo.init(dest, initial_branch="main")
    actor = git.Actor("inflight-guard demo", "demo@inflight-guard.invalid")

    def commit_tree(side: str, message: str) -> None:
        for path in dest.iterdir():
            if path.name != ".git":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        # Fresh mtimes: copied old ones would let git's stat cache miss a same-size change.
        shutil.copytree(EXAMPLE / side, dest, dirs_exist_ok=True, copy_function=shutil.copy)
        for stale in dest.rglob("__pycache__"):
            shutil.rmtree(stale)
        repo.git.add("--all")
        repo.index.commit(message, author=actor, committer=actor)

    commit_tree("base", "Order workflow: reserve, charge, ship")
    repo.git.checkout("-b", BRANCH)
    commit_tree("head", "Check orders for fraud before charging")
    return dest
