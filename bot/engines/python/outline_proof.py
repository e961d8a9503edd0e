"""The outline proof: a versioning outline is shown only once the engine has accepted it.

The outline is applied to head in a scratch repository that borrows the user's git objects
(`objects/info/alternates`): nothing is written to the user's work tree, index or refs. Then

1. every file it edits compiles, and ruff's undefined-name checks (F821, F822, F823) find no name
   head did not already miss;
2. the static verdict between base and the outlined head holds no breaking finding of a kind the
   outline gates, and none that head did not have;
3. every base history (production histories of this engine and the synthesized ones) replays
   cleanly on the outlined head, with the same runner as the check's own replay.

Steps 1 and 2 read code and never run it; step 3 runs only where the check may run the PR's code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import git

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.python.outline import SEQUENCE_RULES
from bot.engines.python.plan import tail
from bot.engines.python.pyengine import PythonEngine, context_of
from bot.engines.python.replay import run_replay
from bot.engines.python.synthesis import labels_file
from bot.errors import UserError
from bot.histories import ReplayOptions, history_engine, sources_of
from bot.model import Finding, Plan, ReplayResult, Severity
from bot.repo import FileUnreadable, SourceTree, changed_files

# Kinds (without their engine) an outline's edits are meant to settle.
GATED_KINDS = SEQUENCE_RULES | {"nondeterminism.added", "workflow.renamed", "handler.removed"}
UNDEFINED = ("F821", "F822", "F823")
RUFF_SECONDS = 60.0
INSTEAD = (
    "write the version gate by hand (the guardrails say what it must keep), or ship the change as a new "
    "workflow type (`strategy: new-type`) or behind Worker Versioning (`strategy: worker-versioning`)"
)

# Judges an analysis of (base, outlined head) as the check judges its own.
Judge = Callable[[Analysis], list[Finding]]


class Withheld(Exception):
    """The outline failed a proof step: the message says which and why, in one sentence."""


@dataclass
class Proof:
    """What each step showed."""

    steps: list[str] = field(default_factory=list)


def prove_plan(
    plan: Plan,
    analysis: Analysis,
    engine: PythonEngine,
    config: Config,
    judge: Judge,
    options: ReplayOptions,
    *,
    run_code: bool,
    synthesized: Path | None = None,
) -> Plan:
    """Return `plan` with its outline proven (`outline_proof` says how) or withheld (`outline_withheld`
    says which step failed and what to do instead)."""
    if not plan.outline:
        return plan
    try:
        proof = prove(
            plan.outline, analysis, engine, config, judge, options, run_code, synthesized, plan.strategy
        )
    except Withheld as exc:
        return plan.model_copy(
            update={
                "outline": "",
                "outline_proof": "",
                "outline_withheld": f"the outline built for this change is not shown: {exc}. Instead, {INSTEAD}.",
            }
        )
    return plan.model_copy(update={"outline_proof": "proven: " + "; ".join(proof.steps)})


def prove(
    diff: str,
    analysis: Analysis,
    engine: PythonEngine,
    config: Config,
    judge: Judge,
    options: ReplayOptions,
    run_code: bool,
    synthesized: Path | None,
    strategy: str = "patch",
) -> Proof:
    """Apply `diff` to head in a scratch repository and run the three steps; raise `Withheld`."""
    context = context_of(analysis)
    head_tree, base_tree = context.head.tree, context.base.tree
    proof = Proof()
    with tempfile.TemporaryDirectory(prefix="inflight-guard-outline-") as scratch:
        root = Path(scratch)
        repo, sha = outlined_commit(head_tree, diff, root)
        outlined = SourceTree(repo, repo.commit(sha), "head", max_file_bytes=head_tree.max_file_bytes)
        base = SourceTree(repo, repo.commit(base_tree.sha), "base", max_file_bytes=base_tree.max_file_bytes)
        edited = _edited_paths(diff)
        proof.steps.append(_compiles(outlined, edited))
        proof.steps.append(_names(head_tree, outlined, edited, root / "names"))
        if strategy == "worker-versioning":
            # The outline is the PINNED declaration, shipped on its own before the change: the change
            # itself stays breaking for unversioned executions (TMP119), so neither step applies here.
            proof.steps.append(
                "not replayed or re-judged: under worker-versioning the outline is the pin, shipped and "
                "drained before this change (see the runbook); unpinned executions do not replay it"
            )
            return proof
        files = changed_files(base.commit, outlined.commit)
        again = engine.analyze(base, outlined, files, config)
        proof.steps.append(_replays(again, engine, options, run_code, synthesized))
        proof.steps.append(_static(judge(analysis), judge(again)))
    return proof


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise Withheld(
            f"it does not apply to head (`git {args[0]}`: {proc.stderr.strip().splitlines()[-1:]})"
        )
    return proc.stdout.strip()


def outlined_commit(head: SourceTree, diff: str, root: Path) -> tuple[git.Repo, str]:
    """Return a scratch repository (borrowing the user's objects) and the commit of head + `diff`."""
    where = root / "repo"
    repo = git.Repo.init(where)
    objects = Path(head.repo.common_dir) / "objects"
    (Path(repo.git_dir) / "objects" / "info" / "alternates").write_text(f"{objects.resolve()}\n")
    index = {"GIT_INDEX_FILE": str(root / "index")}
    _git(where, "read-tree", head.sha, env=index)
    _git(where, "apply", "--cached", "-", env=index, stdin=diff)
    tree = _git(where, "write-tree", env=index)
    who = {
        "GIT_AUTHOR_NAME": "inflight-guard",
        "GIT_AUTHOR_EMAIL": "inflight-guard@localhost",
        "GIT_COMMITTER_NAME": "inflight-guard",
        "GIT_COMMITTER_EMAIL": "inflight-guard@localhost",
    }
    sha = _git(where, "commit-tree", tree, "-p", head.sha, "-m", "versioning outline", env=who)
    return repo, sha


def _edited_paths(diff: str) -> list[str]:
    return sorted({line[6:].rstrip("\n") for line in diff.splitlines() if line.startswith("+++ b/")})


def _compiles(outlined: SourceTree, paths: Sequence[str]) -> str:
    for path in paths:
        try:
            compile(outlined.read(path), path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise Withheld(f"{path}:{exc.lineno}: it does not compile ({exc.msg})") from None
        except FileUnreadable as exc:
            raise Withheld(f"{path}: it cannot be read back ({exc.reason})") from None
    return f"{len(paths)} edited file{'s compile' if len(paths) != 1 else ' compiles'}"


def _ruff() -> str | None:
    found = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return found if Path(found).is_file() else None


def _undefined(ruff: str, folder: Path, paths: Sequence[str]) -> list[tuple[str, int, str]]:
    """ruff's undefined-name diagnostics of `paths` (written under `folder`): (path, line, message)."""
    proc = subprocess.run(
        # --isolated: the user's ruff settings (which may ignore these codes) do not apply here.
        [
            ruff,
            "check",
            "--isolated",
            "--no-cache",
            "--select",
            ",".join(UNDEFINED),
            "--output-format",
            "json",
        ]
        + [str(folder / p) for p in paths],
        capture_output=True,
        text=True,
        timeout=RUFF_SECONDS,
        check=False,
    )
    try:
        found = json.loads(proc.stdout or "[]")
    except ValueError:
        raise Withheld(f"ruff could not check the edited files ({proc.stderr.strip()[:200]})") from None
    out: list[tuple[str, int, str]] = []
    for item in found:
        path = Path(str(item.get("filename", ""))).resolve().relative_to(folder.resolve()).as_posix()
        out.append((path, int((item.get("location") or {}).get("row", 0)), str(item.get("message", ""))))
    return out


def _write(tree: SourceTree, paths: Sequence[str], folder: Path) -> list[str]:
    written: list[str] = []
    for path in paths:
        try:
            text = tree.read(path)
        except FileUnreadable:
            continue
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _names(head: SourceTree, outlined: SourceTree, paths: Sequence[str], folder: Path) -> str:
    ruff = _ruff()
    if ruff is None:
        return "undefined names NOT checked (ruff is not installed)"
    before = _undefined(ruff, folder / "head", _write(head, paths, folder / "head"))
    after = _undefined(ruff, folder / "outlined", _write(outlined, paths, folder / "outlined"))
    # Names head already misses are not the outline's doing.
    known = Counter((p, m) for p, _, m in before)
    new: list[tuple[str, int, str]] = []
    for path, line, message in after:
        if known[(path, message)]:
            known[(path, message)] -= 1
        else:
            new.append((path, line, message))
    if new:
        shown = "; ".join(f"{p}:{n}: {m}" for p, n, m in new[:3])
        raise Withheld(
            f"applied, it refers to names that do not exist ({shown}): pre-patch executions would fail "
            "with a NameError in the old branch"
        )
    return "no undefined names (ruff F821/F822/F823)"


def _static(before: Sequence[Finding], after: Sequence[Finding]) -> str:
    """Judge the outlined head's findings against head's own."""

    def blocking(fs: Sequence[Finding]) -> list[Finding]:
        return [
            f
            for f in fs
            if f.change is not None and not f.suppressed and not f.gated and f.severity == Severity.BREAKING
        ]

    known = {(f.definition, f.rule) for f in blocking(before)}
    left = blocking(after)
    wrong = [
        f
        for f in left
        if f.change is not None
        and (tail(f.change.kind) in GATED_KINDS or (f.definition, f.rule) not in known)
    ]
    if wrong:
        shown = "; ".join(
            f"{f.rule} {f.title}" + (f" ({f.location.path}:{f.location.line})" if f.location else "")
            for f in wrong[:3]
        )
        raise Withheld(f"the outlined head is still judged breaking: {shown}")
    if left:
        rules = ", ".join(sorted({f.rule for f in left}))
        return (
            f"static verdict on the outlined head: breaking only for what no code gate settles ({rules}: "
            "see the runbook)"
        )
    return "static verdict on the outlined head: not breaking"


def _replays(
    again: Analysis, engine: PythonEngine, options: ReplayOptions, run_code: bool, synthesized: Path | None
) -> str:
    if not run_code:
        return "base histories not replayed on it (static-only job: no code runs here)"
    production = sources_of(engine.name, options.sources)
    sources = [*production, *([str(synthesized)] if synthesized is not None else [])]
    if not sources:
        return "no histories to replay (no production histories given, synthesis off)"
    context = context_of(again)
    pinned = {d.id for d in again.definitions if d.pinned}
    mine = engine.name

    def accept(item: object) -> bool:
        path = getattr(item, "path", "")
        return history_engine(str(path)) in (mine, None)

    try:
        results, summary = run_replay(
            context.pairs,
            pinned,
            context.base,
            context.head,
            replace(
                options,
                sources=sources,
                accept=accept,
                wanted=None,
                shard=None,
                replay_all=False,
                cache=None,
                progress=None,
                log=None,
            ),
            engine.kit,
        )
    except UserError as exc:
        raise Withheld(f"its base histories could not be replayed on it ({exc.message})") from None
    labels = _labels(synthesized)
    if summary.runner_error:
        raise Withheld(f"its base histories could not be replayed on it ({summary.runner_error})")
    if summary.import_errors:
        problem = summary.import_errors[0]
        raise Withheld(f"the outlined head does not import ({problem.module}: {problem.message})")
    failed = [r for r in results if r.failed]
    if failed:
        shown = "; ".join(f"{_name(r, labels)}: {r.message}" for r in failed[:3])
        raise Withheld(
            f"{len(failed)} of {len(results)} base histories fail replay on the outlined head ({shown})"
        )
    replayed = [r for r in results if r.replayed]
    if not replayed:
        return "no base history of the outlined workflows to replay"
    synth = sum(1 for r in replayed if _name(r, labels) != r.history)
    return (
        f"{len(replayed)} base histories replay cleanly on it "
        f"({len(replayed) - synth} production, {synth} synthesized from base)"
    )


def _labels(synthesized: Path | None) -> dict[str, str]:
    if synthesized is None:
        return {}
    try:
        data = json.loads(labels_file(synthesized).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _name(result: ReplayResult, labels: dict[str, str]) -> str:
    return labels.get(str(Path(result.history).resolve()), result.history)
