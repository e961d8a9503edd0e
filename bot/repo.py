"""Resolve base and head and read both trees from git objects, never the working tree."""

from __future__ import annotations

import io
import re
import tempfile
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
BLOB_MODES = ("100644", "100755", SYMLINK)  # not 160000 (a submodule's commit) nor 040000 (a folder)
# A tree looks its files up one `git ls-tree` each, until this many: then it lists itself once (a
# lookup costs a process; the listing what the repository holds), so neither way costs twice the other.
LOOKUPS_BEFORE_LISTING = 32


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


def git_bytes(repo: git.Repo, *args: str) -> bytes:
    """Return the raw standard output of `git ARGS` in `repo` (no decoding: names may hold any byte)."""
    out = repo.git.execute(["git", *args], stdout_as_string=False)
    assert isinstance(out, bytes)
    return out


def _changed_name(raw: bytes) -> str:
    """A changed path as text; a name that is not UTF-8 cannot be read back by name: refused, not dropped."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "backslashreplace")
        raise UserError(
            f"{shown}: this changed file's name is not UTF-8, so inflight-guard cannot read it to check "
            "it; rename it (or check this change by hand)"
        ) from None


def changed_files(base: git.Commit, head: git.Commit) -> list[FileChange]:
    """Return the files that differ between two commits, with renames detected.

    Read from `git diff-tree -z`: NUL-separated, so a name may hold any character (a newline too).
    Submodules (gitlinks) are not files of this repository: an entry becomes the side that is one.
    """
    raw = git_bytes(
        base.repo, "diff-tree", "-r", "-z", "-M", "--raw", "--no-commit-id", base.hexsha, head.hexsha
    )
    fields = raw.split(b"\0")
    out: list[FileChange] = []
    i = 0
    while i < len(fields) and fields[i].startswith(b":"):
        # `:old_mode new_mode old_sha new_sha STATUS`, then one path (two for a rename or copy)
        old_mode, new_mode, _, _, status = fields[i][1:].decode("ascii").split(" ")
        count = 2 if status[0] in "RC" else 1
        names = [_changed_name(f) for f in fields[i + 1 : i + 1 + count]]
        i += 1 + count
        base_path = names[0] if status[0] != "C" and old_mode in BLOB_MODES else None
        head_path = names[-1] if new_mode in BLOB_MODES else None
        if base_path is None and head_path is None:
            continue
        if base_path is None:
            status = "A"
        elif head_path is None:
            status = "D"
        out.append(FileChange(status=status[0], base_path=base_path, head_path=head_path))
    return out


def _listing(raw: bytes) -> dict[str, tuple[str, str, str]]:
    """path → (git mode, kind, object id) of the entries in `git ls-tree -z` output."""
    out: dict[str, tuple[str, str, str]] = {}
    for entry in raw.split(b"\0"):
        meta, tab, path = entry.partition(b"\t")
        if tab:
            mode, kind, oid = meta.decode("ascii").split(" ")
            out[path.decode("utf-8", "surrogateescape")] = (mode, kind, oid)
    return out


def _blob_entries(raw: bytes) -> dict[str, tuple[str, str]]:
    """path → (git mode, blob id) of the files in `git ls-tree -z` output (submodules and folders
    are not files)."""
    return {p: (mode, oid) for p, (mode, kind, oid) in _listing(raw).items() if kind == "blob"}


def tree_object(repo: git.Repo, sha: str, path: str) -> tuple[str, str, str] | None:
    """Return (git mode, kind, object id) of what commit `sha` holds at `path` (a blob, a tree, a
    submodule's commit), None when nothing.

    One `git ls-tree` of that path: git walks only the folders on the way to it, so the cost follows
    the path, not the repository.
    """
    if any(part in ("", ".", "..") for part in path.split("/")):
        return None  # no entry of a tree is named so (and `..` would leave the repository)
    # A path comes from the pull request or the config: read it as a path, never as pathspec magic.
    raw = git_bytes(repo, "--literal-pathspecs", "ls-tree", "-z", "--full-tree", sha, "--", path)
    return _listing(raw).get(path)


def tree_entry(repo: git.Repo, sha: str, path: str) -> tuple[str, str] | None:
    """Return (git mode, blob id) of the file at `path` in commit `sha`, None when there is none."""
    found = tree_object(repo, sha, path)
    return (found[0], found[2]) if found is not None and found[1] == "blob" else None


@dataclass
class SourceTree:
    """Read-only view of one commit's files, read from git objects."""

    repo: git.Repo
    commit: git.Commit
    side: str
    max_file_bytes: int = 1_000_000
    _cache: dict[str, str] = field(default_factory=dict)

    _looked_up: dict[str, tuple[str, str] | None] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        return str(self.commit.hexsha)

    @cached_property
    def _entries(self) -> dict[str, tuple[str, str]]:
        """Return path → (git mode, blob id) of every file in the tree (submodules are not files here)."""
        return _blob_entries(git_bytes(self.repo, "ls-tree", "-r", "-z", "--full-tree", self.sha))

    def _entry(self, path: str) -> tuple[str, str] | None:
        """Return (git mode, blob id) of the file at `path`, None when the tree holds no file there.

        From the whole listing once something needed it; else one `git ls-tree` of this path, so that
        reading a few files costs what they are, not what the repository holds.
        """
        if "_entries" in self.__dict__ or len(self._looked_up) >= LOOKUPS_BEFORE_LISTING:
            return self._entries.get(path)
        if path not in self._looked_up:
            self._looked_up[path] = tree_entry(self.repo, self.sha, path)
        return self._looked_up[path]

    def root_files(self) -> list[str]:
        """Return the files directly at the top of the tree (read from its tree object: no process, and
        a top folder of thousands of entries costs a few milliseconds)."""
        data = self.repo.odb.stream(self.commit.tree.binsha).read()
        out: list[str] = []
        at = 0
        while at < len(data):
            # Entries are `MODE NAME NUL SHA1(20 bytes)`; a folder's mode is 40000, a submodule's 160000.
            space = data.index(b" ", at)
            nul = data.index(b"\0", space)
            if data[at:space].decode("ascii") in BLOB_MODES:
                out.append(data[space + 1 : nul].decode("utf-8", "surrogateescape"))
            at = nul + 21
        return out

    def python_under(self, folder: str) -> bool:
        """Whether the tree holds a Python file (not a symbolic link) under `folder` (one `git ls-tree`
        of that folder)."""
        if "_entries" in self.__dict__:
            return any(p.startswith(f"{folder}/") for p in self.python_paths)
        if any(part in ("", ".", "..") for part in folder.split("/")):
            return False
        raw = git_bytes(
            self.repo,
            "--literal-pathspecs",
            "ls-tree",
            "-r",
            "-z",
            "--full-tree",
            self.sha,
            "--",
            f"{folder}/",
        )
        return any(p.endswith(".py") and mode != SYMLINK for p, (mode, _) in _blob_entries(raw).items())

    @cached_property
    def paths(self) -> frozenset[str]:
        """Return every file path of the tree (from one `git ls-tree`, kept)."""
        return frozenset(self._entries)

    @cached_property
    def python_paths(self) -> frozenset[str]:
        """Return the Python files of the tree (symbolic links excluded: their target is analysed)."""
        return frozenset(p for p, (mode, _) in self._entries.items() if p.endswith(".py") and mode != SYMLINK)

    def is_symlink(self, path: str) -> bool:
        entry = self._entry(path)
        return entry is not None and entry[0] == SYMLINK

    def has(self, path: str) -> bool:
        """Whether the tree holds a Python file (not a symbolic link) at `path`."""
        if "_entries" in self.__dict__:
            return path in self.python_paths
        entry = self._entry(path)
        return path.endswith(".py") and entry is not None and entry[0] != SYMLINK

    def has_file(self, path: str) -> bool:
        """Whether the tree holds a file (of any kind) at `path`."""
        return self._entry(path) is not None

    def _blob(self, path: str) -> tuple[bytes, int]:
        """Return (binary id, size) of the file at `path`, or raise `FileUnreadable`."""
        entry = self._entry(path)
        if entry is None:
            raise FileUnreadable(path, f"not present in {self.side} ({self.sha[:12]})")
        binsha = bytes.fromhex(entry[1])
        try:
            return binsha, int(self.repo.odb.info(binsha).size)
        except ValueError:  # the object is missing (a partial clone)
            raise FileUnreadable(path, f"its content is not in this clone ({entry[1][:12]})") from None

    def read(self, path: str) -> str:
        """Return the text of `path` in this tree, or raise `FileUnreadable`."""
        if path in self._cache:
            return self._cache[path]
        binsha, size = self._blob(path)
        if size > self.max_file_bytes:
            raise FileUnreadable(
                path,
                f"file is {size:,} bytes, over the {self.max_file_bytes:,}-byte limit "
                "(raise limits.max_file_bytes in the config to analyse it)",
            )
        data = self.repo.odb.stream(binsha).read()
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
        """True when the file at `path` contains one of `words` (read whatever its size, a chunk at a time)."""
        try:
            binsha, _ = self._blob(path)
        except FileUnreadable:
            return False
        needles = [w.encode() for w in words if w]
        if not needles:
            return False
        overlap = max(len(n) for n in needles) - 1
        stream = self.repo.odb.stream(binsha)
        found, tail = False, b""
        # Read to the end even once found: a stream left half-read is read whole when dropped.
        while chunk := stream.read(1 << 20):
            window = tail + chunk
            found = found or any(n in window for n in needles)
            tail = window[len(window) - overlap :] if overlap else b""
        return found


def git_grep(
    trees: Sequence[SourceTree], patterns: Iterable[str], *options: str, paths: Sequence[str] = ("*.py",)
) -> list[set[str]]:
    """Return, per tree, the files under `paths` holding a line that matches one of `patterns`.

    One `git grep -l` over the trees' objects (never the work tree). The patterns go through a
    file (`-f`): their number grows with the change, and argv has a limit. `options` pick the
    pattern syntax (`-E`, `-F`, `-i`).
    """
    # git grep matches a line at a time: a pattern spanning lines matches none (and an empty one all).
    wanted = sorted({p for p in patterns if p and "\n" not in p})
    shas = list(dict.fromkeys(t.sha for t in trees))
    found: dict[str, set[str]] = {sha: set() for sha in shas}
    if wanted and shas:
        with tempfile.NamedTemporaryFile("wb", prefix="inflight-guard-", suffix=".patterns") as listed:
            listed.write("".join(f"{p}\n" for p in wanted).encode("utf-8", "surrogateescape"))
            listed.flush()
            try:
                raw = git_bytes(
                    trees[0].repo, "grep", "-l", "-z", *options, "-f", listed.name, *shas, "--", *paths
                )
            except GitCommandError as exc:
                if exc.status != 1:  # 1: no match
                    raise
                raw = b""
        for hit in raw.split(b"\0"):
            sha, _, path = hit.partition(b":")
            if path and sha.decode("ascii") in found:
                found[sha.decode("ascii")].add(path.decode("utf-8", "surrogateescape"))
    return [set(found[t.sha]) for t in trees]


# Past this many module names one alternation is slower than listing every import line once.
MANY_NAMES = 200
_IMPORT_LINE = (r"^\s*(from|import)\s", r"^\s+\w+\s*(,|\)|$)")
_WORD = re.compile(rb"\w+")


def grep_importers(trees: Sequence[SourceTree], modules: Iterable[str]) -> list[set[str]]:
    """Return, per tree, the Python paths whose text may import one of `modules` (a superset).

    An import line naming the module, or a bare name line inside `from x import (...)`.
    """
    # Python imports identifiers only: a file named otherwise (`work flows.py`) has no importer.
    names = sorted({n for m in modules if m for n in [m.rsplit(".", 1)[-1]] if n.isidentifier()})
    if not names or not trees:
        return [set() for _ in trees]
    if len(names) > MANY_NAMES:
        return _importers_by_listing(trees, set(names))
    alternatives = "|".join(re.escape(n) for n in names)
    pattern = rf"^\s*(from|import)\s.*\b({alternatives})\b|^\s+({alternatives})\s*(,|\)|$)"
    return git_grep(trees, [pattern], "-E")


def _importers_by_listing(trees: Sequence[SourceTree], names: set[str]) -> list[set[str]]:
    """`grep_importers` for many names: every import line of the trees listed once, its words looked up.

    The cost follows the trees' import lines, not the number of names times the trees' text.
    """
    shas = list(dict.fromkeys(t.sha for t in trees))
    found: dict[str, set[str]] = {sha: set() for sha in shas}
    wanted = {n.encode() for n in names}
    args = [a for p in _IMPORT_LINE for a in ("-e", p)]
    try:
        raw = git_bytes(trees[0].repo, "grep", "-z", "-I", "-E", *args, *shas, "--", "*.py")
    except GitCommandError as exc:
        if exc.status != 1:
            raise
        raw = b""
    # Records are `SHA:PATH NUL LINE NEWLINE`: the path ends at NUL (it may hold a newline), the line
    # at the newline (a text line holds no NUL).
    at = 0
    while at < len(raw):
        nul = raw.index(b"\0", at)
        end = raw.find(b"\n", nul)
        end = len(raw) if end < 0 else end
        sha, _, path = raw[at:nul].partition(b":")
        key = sha.decode("ascii")
        if key in found and not wanted.isdisjoint(_WORD.findall(raw[nul + 1 : end])):
            found[key].add(path.decode("utf-8", "surrogateescape"))
        at = end + 1
    return [set(found[t.sha]) for t in trees]


def grep_paths(tree: SourceTree, pattern: str) -> set[str]:
    """Return the Python paths of `tree` whose text matches the extended regex `pattern`."""
    return git_grep([tree], [pattern], "-E")[0]
