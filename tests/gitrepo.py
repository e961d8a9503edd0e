"""Real git repositories for tests, built in temp dirs with GitPython."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import git

ACTOR = git.Actor("inflight-guard tests", "tests@inflight-guard.invalid")
Files = Mapping[str, str] | Path | None


def _write(root: Path, files: Files) -> None:
    for path in root.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    if files is None:
        return
    if isinstance(files, Path):
        # copy without metadata: a copied mtime older than the index makes git trust its stat cache
        # and miss a same-size change on a reused inode.
        shutil.copytree(
            files,
            root,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
            copy_function=shutil.copy,
        )
        return
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def commit(repo: git.Repo, files: Files, message: str) -> git.Commit:
    """Replace the work tree with `files` and commit everything."""
    root = Path(repo.working_dir)
    _write(root, files)
    repo.git.add("--all")
    return repo.index.commit(message, author=ACTOR, committer=ACTOR)


def make_repo(
    path: Path, base: Files, head: Files, *, branch: str = "feature", default: str = "main"
) -> git.Repo:
    """Return a repo whose `default` branch holds `base` and `branch` (checked out) holds `head`."""
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path, initial_branch=default)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", ACTOR.name)
        cw.set_value("user", "email", ACTOR.email)
    commit(repo, base, "base")
    repo.git.checkout("-b", branch)
    commit(repo, head, "head")
    return repo
