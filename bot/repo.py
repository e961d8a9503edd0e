"""Resolve base and head and read both trees from git objects, never the working tree."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from bot.errors import UserError
from bot.model import Revision

DEFAULT_BRANCHES = ("origin/HEAD", "main", "origin/main", "master", "origin/master")
SYMLINK = "120000"


class FileUnreadable(Exception):
    """A file in a tree that cannot be analysed (too large, not UTF-8, missing)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class FileChange:
    """One path changed between base and head; `base_path` differs on renames."""

    status: str  # A, D, M, R, T
    base_path: str | None
    head_path: str | None


def open_repo(path: Path) -> git.Repo:
    """Return the repository holding `path`, or explain why there is none."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except NoSuchPathError:
        raise UserError(f"{path}: no such directory") from None
    except InvalidGitRepositoryError:
        raise UserError(f"{path}: not a git repository (run inside a clone, or pass --repo DIR)") from None


def is_shallow(repo: git.Repo) -> bool:
    try:
        return bool(repo.git.rev_parse("--is-shallow-repository").strip() == "true")
    except GitCommandError:
        return False


def _fetch_hint(ref: str) -> str:
    name = ref.split("/", 1)[1] if ref.startswith("origin/") else ref
    return f"git fetch origin {name}"


def resolve_commit(repo: git.Repo, ref: str) -> git.Commit:
    """Return the commit `ref` names, or one line saying which fetch brings it."""
    try:
        obj = repo.rev_parse(ref)
        commit = obj if isinstance(obj, git.Commit) else repo.commit(ref)
        # Touch the object: a shallow clone may name a commit whose object is absent.
        _ = commit.tree
        return commit
    except (BadName, ValueError, GitCommandError, KeyError, IndexError):
        hint = _fetch_hint(ref)
        if is_shallow(repo):
            hint += (
                " (this is a shallow clone: `git fetch --unshallow`, or actions/checkout with fetch-depth: 0)"
            )
        raise UserError(f"ref '{ref}' not found in {repo.working_dir}; fetch it first: {hint}") from None


def default_base_ref(repo: git.Repo) -> str:
    """Return the default branch to compare with: origin/HEAD, else main, else master."""
    for ref in DEFAULT_BRANCHES:
        try:
            repo.rev_parse(ref)
            return ref
        except (BadName, ValueError, GitCommandError):
            continue
    raise UserError(
        "no default branch found (looked for origin/HEAD, main, master); pass --base REF "
        "or fetch it: git fetch origin main"
    )


def merge_base(repo: git.Repo, base: git.Commit, head: git.Commit, base_ref: str) -> git.Commit:
    """Return the merge-base of base and head (what the PR actually changes against)."""
    try:
        bases = repo.merge_base(base, head)
    except GitCommandError:
        bases = []
    if bases and isinstance(bases[0], git.Commit):
        return bases[0]
    if is_shallow(repo):
        raise UserError(
            f"shallow clone: '{base_ref}' and head share no history here; fetch it: "
            "git fetch --unshallow (actions/checkout: fetch-depth: 0)"
        )
    raise UserError(f"'{base_ref}' and head have no common ancestor; pass --base with a related ref")


@dataclass
class Revisions:
    base: git.Commit
    head: git.Commit
    base_revision: Revision
    head_revision: Revision


def resolve_revisions(repo: git.Repo, base_ref: str | None, head_ref: str) -> Revisions:
    """Resolve head and the merge-base of head with `base_ref` (default branch if None)."""
    head = resolve_commit(repo, head_ref)
    ref = base_ref or default_base_ref(repo)
    base_tip = resolve_commit(repo, ref)
    base = merge_base(repo, base_tip, head, ref)
    return Revisions(
        base=base,
        head=head,
        base_revision=Revision(ref=ref, sha=base.hexsha),
        head_revision=Revision(ref=head_ref, sha=head.hexsha),
    )


def changed_files(base: git.Commit, head: git.Commit) -> list[FileChange]:
    """Return the paths that differ between two commits, with renames detected."""
    out: list[FileChange] = []
    for d in base.diff(head):
        status = (d.change_type or "M")[0]
        out.append(
            FileChange(
                status=status,
                base_path=None if status == "A" else d.a_path,
                head_path=None if status == "D" else d.b_path,
            )
        )
    return out


@dataclass
class SourceTree:
    """Read-only view of one commit's files, read from git objects."""

    repo: git.Repo
    commit: git.Commit
    side: str
    max_file_bytes: int = 1_000_000
    _cache: dict[str, str] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        return str(self.commit.hexsha)

    @cached_property
    def _entries(self) -> dict[str, str]:
        """Return path → git mode of every Python file in the tree."""
        raw = self.repo.git.ls_tree("-r", "-z", self.sha)
        out: dict[str, str] = {}
        for entry in raw.split("\0"):
            meta, _, path = entry.partition("\t")
            if path.endswith(".py"):
                out[path] = meta.split(" ", 1)[0]
        return out

    @cached_property
    def python_paths(self) -> frozenset[str]:
        """Return the Python files of the tree (symbolic links excluded: their target is analysed)."""
        return frozenset(p for p, mode in self._entries.items() if mode != SYMLINK)

    def is_symlink(self, path: str) -> bool:
        return self._entries.get(path) == SYMLINK

    def has(self, path: str) -> bool:
        return path in self.python_paths

    def read(self, path: str) -> str:
        """Return the text of `path` in this tree, or raise `FileUnreadable`."""
        if path in self._cache:
            return self._cache[path]
        try:
            blob = self.commit.tree / path
        except KeyError:
            raise FileUnreadable(path, f"not present in {self.side} ({self.sha[:12]})") from None
        if blob.size > self.max_file_bytes:
            raise FileUnreadable(
                path,
                f"file is {blob.size:,} bytes, over the {self.max_file_bytes:,}-byte limit "
                "(raise limits.max_file_bytes in the config to analyse it)",
            )
        data = blob.data_stream.read()
        try:
            # As Python reads source: a BOM or a PEP 263 coding line picks the encoding.
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            text = str(data.decode(encoding))
        except (SyntaxError, LookupError) as exc:
            raise FileUnreadable(path, f"unusable source encoding ({exc})") from None
        except UnicodeDecodeError as exc:
            raise FileUnreadable(
                path,
                f"not valid {exc.encoding} text (byte {exc.start}): save it as UTF-8 or declare its encoding",
            ) from None
        self._cache[path] = text
        return text

    def mentions(self, path: str, words: Iterable[str]) -> bool:
        """True when the file at `path` contains one of `words` (read whatever its size)."""
        try:
            data = (self.commit.tree / path).data_stream.read()
        except KeyError:
            return False
        return any(w.encode() in data for w in words)


def grep_importers(trees: Sequence[SourceTree], modules: Iterable[str]) -> list[set[str]]:
    """Return, per tree, the Python paths whose text may import one of `modules` (a superset).

    One `git grep` over every tree: it reads git objects, never the work tree.
    """
    names = sorted({m.rsplit(".", 1)[-1] for m in modules if m})
    if not names or not trees:
        return [set() for _ in trees]
    alternatives = "|".join(re.escape(n) for n in names)
    # An import line naming the module, or a bare name line inside `from x import (...)`.
    pattern = rf"^\s*(from|import)\s.*\b({alternatives})\b|^\s+({alternatives})\s*(,|\)|$)"
    shas = list(dict.fromkeys(t.sha for t in trees))
    try:
        raw = trees[0].repo.git.grep("-l", "-E", "-e", pattern, *shas, "--", "*.py")
    except GitCommandError as exc:
        if exc.status == 1:  # no match
            return [set() for _ in trees]
        raise
    found: dict[str, set[str]] = {sha: set() for sha in shas}
    for line in raw.splitlines():
        sha, _, path = line.partition(":")
        if sha in found:
            found[sha].add(path)
    return [set(found[t.sha]) for t in trees]


def grep_paths(tree: SourceTree, pattern: str) -> set[str]:
    """Return the Python paths of `tree` whose text matches the extended regex `pattern`."""
    try:
        raw = tree.repo.git.grep("-l", "-E", "-e", pattern, tree.sha, "--", "*.py")
    except GitCommandError as exc:
        if exc.status == 1:  # no match
            return set()
        raise
    return {line.partition(":")[2] for line in raw.splitlines()}
