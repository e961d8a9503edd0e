"""The one pipeline every entry point runs: collect → diff → judge → replay → report."""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import git

from bot import __version__, yamlsafe
from bot.config import DEFAULT_CONFIG_PATHS, Config, load_config
from bot.engines.base import Analysis, Draws, ReadsDeployment
from bot.engines.python.evidence import closed_only
from bot.engines.python.outline_proof import prove_plan
from bot.engines.python.pyengine import PythonEngine
from bot.engines.python.rollback_proof import prove_rollback
from bot.engines.python.synthesis import Servers
from bot.engines.registry import engines
from bot.errors import UserError
from bot.evidence import annotate, display_path, with_history_figures
from bot.histories import ReplayOptions, validate
from bot.model import (
    Change,
    Definition,
    Finding,
    InFlight,
    Location,
    Plan,
    ReplayResult,
    ReplaySummary,
    Report,
    Suppression,
)
from bot.plan import drain_steps, merge
from bot.policy import Policy, RulePack, builtin_packs, load_pack
from bot.replay import Replayed, replay
from bot.repo import (
    FileChange,
    Revisions,
    SourceTree,
    changed_files,
    open_repo,
    resolve_revisions,
    tree_entry,
    tree_object,
)
from bot.synthesize import Synthesized, annotate_synthesized, synthesize_gaps
from bot.verdict import build_gates, decide


@dataclass
class CheckOptions:
    repo: Path = Path()
    base: str | None = None
    head: str = "HEAD"
    config: Path | None = None
    replay: ReplayOptions = field(default_factory=ReplayOptions)
    temporal_address: str | None = None
    # `merge`: replay results gathered by shard runs, used instead of replaying.
    recorded: tuple[list[ReplayResult], ReplaySummary] | None = None
    extra_notes: list[str] = field(default_factory=list)
    # False where the job holds a write token or cloud credentials: no replay, no DAG loading,
    # nothing of the PR's code is executed (static analysis of git objects only).
    run_pr_code: bool = True
    # `--synthesize` / `--synthesis-budget`: override `synthesis.mode` / `synthesis.executions`.
    synthesize: str | None = None
    synthesis_budget: int | None = None
    # `--rollback`: the sides swapped after resolving them (head's histories replay on base).
    rollback: bool = False

    @property
    def histories(self) -> Sequence[str]:
        return self.replay.sources


@dataclass
class EffectiveConfig:
    config: Config
    packs: list[RulePack]
    changes: list[Change]
    source: str


_KINDS = {"commit": "submodule", "tree": "tree"}  # what git names a gitlink and a folder


def _blob_text(commit: git.Commit, path: str) -> str | None:
    """Return the text of `path` at `commit`, None when absent; a non-UTF-8 file is an error."""
    found = tree_object(commit.repo, commit.hexsha, path)
    if found is None:
        return None
    _, kind, oid = found
    if kind != "blob":  # a submodule (gitlink) or a folder by that name
        raise UserError(f"{path} ({commit.hexsha[:7]}): not a file (a {_KINDS.get(kind, kind)})")
    binsha = bytes.fromhex(oid)
    size = int(commit.repo.odb.info(binsha).size)
    if size > yamlsafe.MAX_DOCUMENT_BYTES:
        raise UserError(
            f"{path} ({commit.hexsha[:7]}): {size:,} bytes, over the "
            f"{yamlsafe.MAX_DOCUMENT_BYTES:,}-byte limit of a config file or rule pack"
        )
    data = commit.repo.odb.stream(binsha).read()
    try:
        return str(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} ({commit.hexsha[:7]}): not UTF-8 (byte {exc.start})") from None


def load_effective_config(
    repo: git.Repo, base: git.Commit, head: git.Commit, explicit: Path | None
) -> EffectiveConfig:
    """Return the config: `--config FILE` from disk, else the base branch's (a PR cannot weaken its gate)."""
    changes: list[Change] = []
    if explicit is not None:
        try:
            disk_text = explicit.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UserError(f"{explicit}: cannot read config ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{explicit}: not UTF-8 (byte {exc.start})") from None
        config = load_config(disk_text, str(explicit))
        root = Path(repo.working_dir)
        packs = []
        for rel in config.rules.packs:
            path = root / rel
            try:
                packs.append(load_pack(path.read_text(encoding="utf-8"), rel))
            except OSError:
                raise UserError(f"{explicit}: rules.packs: {rel} not found under {root}") from None
        # The report names the file as the user gave it, never the machine's absolute path.
        return EffectiveConfig(config, packs, changes, display_path(str(explicit)))
    for candidate in DEFAULT_CONFIG_PATHS:
        text = _blob_text(base, candidate)
        head_text = _blob_text(head, candidate)
        if head_text != text and (text is not None or head_text is not None):
            changes.append(
                Change(
                    kind="core.config.changed",
                    engine="core",
                    definition="",
                    location=Location(path=candidate, line=1),
                    details={"path": candidate},
                )
            )
        if text is None:
            continue
        source = f"{candidate} (base {base.hexsha[:7]})"
        config = load_config(text, source)
        packs = []
        for rel in config.rules.packs:
            pack_text = _blob_text(base, rel)
            if pack_text is None:
                raise UserError(f"{source}: rules.packs: {rel} not found in the base tree")
            packs.append(load_pack(pack_text, rel))
        return EffectiveConfig(config, packs, changes, source)
    return EffectiveConfig(Config(), [], changes, "defaults")


STATIC_ONLY = (
    "static analysis only: this job holds a write token, so the pull request's code is not run here "
    "(no replay, DAG files read statically)"
)


def added_in_change(
    suppressions: Sequence[Suppression], base: git.Commit, head: git.Commit, files: Sequence[FileChange]
) -> list[Suppression]:
    """Mark the suppressions this change writes, or stretches over code it writes.

    A suppression covers its own line and the next (a Step Functions state: all its lines). It is
    the base's (reviewed when it landed) only when every line it covers is an unchanged line of
    base, or its file is untouched. Otherwise the PR would be waiving its own finding, directly or
    by putting new code under an old comment: it waits for an ack.
    """
    changed = {f.head_path: f.base_path for f in files if f.head_path}
    out: list[Suppression] = []
    seen: dict[str, set[int]] = {}
    for s in suppressions:
        path = s.location.path
        if path not in changed:
            out.append(s)
            continue
        if path not in seen:
            seen[path] = _unchanged_lines(base, head, changed[path], path)
        covered = range(s.location.line, (s.location.end_line or s.location.line + 1) + 1)
        out.append(s if all(n in seen[path] for n in covered) else s.model_copy(update={"added": True}))
    return out


def _unchanged_lines(base: git.Commit, head: git.Commit, base_path: str | None, head_path: str) -> set[int]:
    """The 1-based head lines the diff from base keeps unchanged (a line past the end counts as
    unchanged: a comment on the last line covers nothing new)."""
    old = _raw_lines(base, base_path) if base_path else []
    new = _raw_lines(head, head_path)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    codes = matcher.get_opcodes()
    kept = {j + 1 for tag, _, _, j1, j2 in codes if tag == "equal" for j in range(j1, j2)} | {len(new) + 1}
    # Lines removed between two kept lines change what surrounds them: neither side counts as kept.
    return kept - {n for tag, _, _, j1, _ in codes if tag == "delete" for n in (j1, j1 + 1)}


def _raw_lines(commit: git.Commit, path: str) -> list[bytes]:
    found = tree_entry(commit.repo, commit.hexsha, path)
    if found is None:
        return []
    return list(commit.repo.odb.stream(bytes.fromhex(found[1])).read().splitlines())


def _with_in_flight(definitions: Sequence[Definition], config: Config) -> list[Definition]:
    out = []
    for d in definitions:
        if d.status == "added":
            d = d.model_copy(update={"in_flight": InFlight(count=0, source="added in this change")})
        elif d.id in config.drained:
            d = d.model_copy(update={"in_flight": InFlight(count=0, source="declared drained in the config")})
        elif d.in_flight.count is not None:
            pass  # the engine read a count (an Airflow export that covers the DAG); a live count wins later
        else:
            d = d.model_copy(
                update={
                    "in_flight": InFlight(count=None, source="unknown (no histories or live count supplied)")
                }
            )
        out.append(d)
    return out


def _repository_name(repo: git.Repo) -> str:
    try:
        url = repo.remotes.origin.url
        return url.rstrip("/").removesuffix(".git").split(":")[-1].split("/", 1)[-1] if "/" in url else url
    except (AttributeError, IndexError, ValueError):
        return Path(repo.working_dir).name


def analyze(
    base: SourceTree,
    head: SourceTree,
    files: Sequence[FileChange],
    config: Config,
    sources: Sequence[str] = (),
) -> list[Analysis]:
    """Collect and diff, for every engine (one that reads deployment facts from the exports first
    gets the local ones)."""
    found = []
    for engine in engines().values():
        if sources and isinstance(engine, ReadsDeployment):
            engine.read_deployment_from(sources, config.limits.max_history_bytes)
        found.append(engine.analyze(base, head, files, config))
    return found


def run_check(options: CheckOptions) -> Report:
    """Run the whole pipeline on a repository and return the report."""
    # Synthesized histories live here until the outline proof has replayed them again.
    with tempfile.TemporaryDirectory(prefix="inflight-guard-check-") as kept, Servers(None) as servers:
        return _run_check(options, Path(kept), servers)


def _config_histories(
    options: CheckOptions, config: Config, files: Sequence[FileChange], notes: list[str]
) -> CheckOptions:
    """The config's sources (from the base branch) when none were given: the top level's, and each
    path section's whose glob matches a changed file. Relative folders are the repository's."""
    if options.replay.sources or options.recorded is not None or options.rollback:
        return options
    paths = {p for f in files for p in (f.base_path, f.head_path) if p}
    named = list(config.histories)
    for section in config.paths.sections:
        if section.histories and any(section.matches(p) for p in paths):
            named += [s for s in section.histories if s not in named]
    if not named:
        return options
    sources = [s if "://" in s or Path(s).is_absolute() else str(Path(options.repo) / s) for s in named]
    validate(sources)
    notes.append(f"histories from the config: {', '.join(named)}")
    return replace(options, replay=replace(options.replay, sources=sources))


def _run_check(options: CheckOptions, kept: Path, servers: Servers) -> Report:
    if options.recorded is None:
        validate(options.replay.sources)
    repo = open_repo(options.repo)
    revisions = resolve_revisions(repo, options.base, options.head)
    effective = load_effective_config(repo, revisions.base, revisions.head, options.config)
    if options.rollback:  # after the config: it still comes from the base branch
        revisions = Revisions(
            base=revisions.head,
            head=revisions.base,
            base_revision=revisions.head_revision,
            head_revision=revisions.base_revision,
        )
    config = effective.config
    notes = [f"config: {effective.source}", *options.extra_notes]
    if options.rollback:
        notes.append(
            f"rollback check: `{revisions.head.hexsha[:12]}` (the base) judged as it would take over executions "
            f'of `{revisions.base.hexsha[:12]}`: "base" below is the build rolled back from'
        )
    if not options.run_pr_code:
        config = config.model_copy(update={"airflow": config.airflow.model_copy(update={"load": False})})
        notes.append(STATIC_ONLY)
    if options.replay.python and not config.airflow.python:
        # `--python` is the interpreter with the user's SDKs; Airflow's DAG loader uses it too.
        config = config.model_copy(
            update={"airflow": config.airflow.model_copy(update={"python": options.replay.python})}
        )
    if options.synthesize or options.synthesis_budget:
        update: dict[str, object] = {}
        if options.synthesize:
            update["mode"] = options.synthesize
        if options.synthesis_budget:
            update["executions"] = options.synthesis_budget
        config = config.model_copy(update={"synthesis": config.synthesis.model_copy(update=update)})
    policy = Policy([*builtin_packs(), *effective.packs], config)
    servers.configured = config.temporal.dev_server

    # 1-2. collect and diff
    files = changed_files(revisions.base, revisions.head)
    options = _config_histories(options, config, files, notes)
    limit = config.limits.max_file_bytes
    base_tree = SourceTree(repo, revisions.base, "base", max_file_bytes=limit)
    head_tree = SourceTree(repo, revisions.head, "head", max_file_bytes=limit)
    analyses = analyze(base_tree, head_tree, files, config, options.replay.sources)
    registry = engines()

    definitions = _with_in_flight([d for a in analyses for d in a.definitions], config)
    address = options.temporal_address or config.temporal.address or ""
    definitions = _with_live_counts(analyses, definitions, address, config, notes)
    changes = [*effective.changes, *(c for a in analyses for c in a.changes)]
    # One comment is one suppression, whichever engines read its file.
    suppressions = added_in_change(
        list(dict.fromkeys(s for a in analyses for s in a.suppressions)),
        revisions.base,
        revisions.head,
        files,
    )
    # 3. judge
    findings = policy.judge(changes, definitions, suppressions)

    # 4. replay
    results: list[ReplayResult] = []
    summary: ReplaySummary | None = None
    replayed = Replayed(results=[], summary=ReplaySummary())
    if options.recorded is not None:
        results, summary = options.recorded
    elif options.replay.sources and options.run_pr_code:
        cap = config.limits.max_history_bytes
        replayed = replay(analyses, replace(options.replay, max_history_bytes=cap))
        results, summary = replayed.results, replayed.summary
    elif options.replay.sources:
        notes.append(f"histories not replayed: {', '.join(options.replay.sources)} (static analysis only)")
    if summary is not None:
        definitions = with_history_figures(definitions, results)
        proved: list[Change] = []
        by_engine = {a.engine: a for a in analyses}
        judged = [by_engine[e] for e in replayed.summaries] or [a for a in analyses if a.definitions]
        judged = judged or analyses[:1]
        defined = {d.id: d.engine for d in definitions}

        def engine_of(r: ReplayResult) -> str:
            # The engine that gave the result; a merged report's by its definition; else the first.
            return replayed.engine_of.get(r.history) or defined.get(r.definition or "") or judged[0].engine

        for a in judged:
            mine = [f for f in findings if f.change and f.change.engine == a.engine]
            own = replayed.summaries.get(a.engine, summary)
            # A source that failed is one finding, from the first engine that replayed.
            own = own.model_copy(update={"source_errors": summary.source_errors if a is judged[0] else []})
            own_results = [r for r in results if engine_of(r) == a.engine]
            proved += registry[a.engine].replay_changes(own_results, own, definitions, mine)
        findings = annotate([*findings, *policy.judge(proved, definitions, [])], results)
        findings.sort(key=lambda f: (-f.severity.rank, f.location.path if f.location else "", f.rule))
        notes += summary.notes

    # 4b. histories synthesized from the base, where production ones leave a changed workflow uncovered
    synthesized = Synthesized()
    if options.recorded is None and options.replay.shard is None:
        synthesized = synthesize_gaps(
            analyses,
            definitions,
            findings,
            results,
            config,
            options.replay,
            options.run_pr_code,
            kept,
            servers,
        )
    if synthesized.changes:
        findings = [*findings, *policy.judge(synthesized.changes, definitions, [])]
    if synthesized.synthesis is not None:
        findings = annotate_synthesized(findings, synthesized.synthesis)
    # Severity follows the proof: what fails only closed executions is risky.
    findings = closed_only(findings, [*results, *synthesized.results], synthesized.synthesis)
    findings.sort(key=lambda f: (-f.severity.rank, f.location.path if f.location else "", f.rule))

    # 5. report
    config = _with_history_task_queue(config, results, definitions)
    plans = [
        registry[a.engine].plan(a, [f for f in findings if f.change and f.change.engine == a.engine], config)
        for a in analyses
    ]
    if options.recorded is None:
        plans = [
            _proven(a, p, config, policy, definitions, options, synthesized, servers, findings)
            for a, p in zip(analyses, plans, strict=True)
        ]
    plan = drain_steps(merge(plans), findings, definitions)
    gates = build_gates(findings, definitions, plan, options.histories, results)
    verdict = decide(findings, definitions, gates, config)
    if revisions.base.hexsha == revisions.head.hexsha:
        notes.append(
            f"head is the merge-base with `{revisions.base_revision.ref}`: nothing to compare (pass --base)"
        )
    pictures = [p for a in analyses if isinstance(e := registry[a.engine], Draws) for p in e.pictures(a)]
    return Report(
        tool={"name": "inflight-guard", "version": __version__},
        repository=_repository_name(repo),
        base=revisions.base_revision,
        head=revisions.head_revision,
        verdict=verdict,
        definitions=definitions,
        findings=findings,
        replay=[*results, *synthesized.results],
        replay_summary=summary,
        synthesis=synthesized.synthesis,
        gates=gates,
        plan=plan,
        histories=list(options.histories),
        notes=notes,
        pictures=pictures,
        rules_url=rules_url(config),
    )


def rules_url(config: Config) -> str:
    """Where rule ids link: `report.rules_url`, else the Action's own docs at the ref it runs."""
    if config.report.rules_url:
        return config.report.rules_url
    repository = os.environ.get("INFLIGHT_GUARD_ACTION_REPOSITORY", "")
    ref = os.environ.get("INFLIGHT_GUARD_ACTION_REF", "")
    if not (repository and ref):
        return ""
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    return f"{server}/{repository}/blob/{ref}/docs/rules.md"


def _proven(
    analysis: Analysis,
    plan: Plan,
    config: Config,
    policy: Policy,
    definitions: Sequence[Definition],
    options: CheckOptions,
    synthesized: Synthesized,
    servers: Servers,
    findings: Sequence[Finding],
) -> Plan:
    """The plan with its versioning outline proven (or withheld with the step it failed), and its
    rollback sentences backed by replaying the new build's histories on base."""
    engine = engines()[analysis.engine]
    if not isinstance(engine, PythonEngine):
        return plan
    run_code = options.run_pr_code and options.replay.shard is None
    if plan.outline:
        plan = _outline_proven(analysis, plan, config, policy, definitions, options, synthesized, engine)
    mine = [f for f in findings if f.change and f.change.engine == analysis.engine]
    return prove_rollback(
        plan, engine, analysis, config, options.replay, mine, run_code=run_code, servers=servers
    )


def _outline_proven(
    analysis: Analysis,
    plan: Plan,
    config: Config,
    policy: Policy,
    definitions: Sequence[Definition],
    options: CheckOptions,
    synthesized: Synthesized,
    engine: PythonEngine,
) -> Plan:
    known = {d.id: d for d in definitions}

    def judge(outlined: Analysis) -> list[Finding]:
        # The outlined head's definitions keep the in-flight figures the check measured.
        defs = [
            d.model_copy(update={"in_flight": known[d.id].in_flight}) if d.id in known else d
            for d in _with_in_flight(outlined.definitions, config)
        ]
        return policy.judge(outlined.changes, defs, outlined.suppressions)

    return prove_plan(
        plan,
        analysis,
        engine,
        config,
        judge,
        options.replay,
        run_code=options.run_pr_code and options.replay.shard is None,
        synthesized=synthesized.histories.get(analysis.engine),
    )


def _with_live_counts(
    analyses: Sequence[Analysis],
    definitions: list[Definition],
    address: str,
    config: Config,
    notes: list[str],
) -> list[Definition]:
    registry = engines()
    figures: dict[str, InFlight] = {}
    try:
        for a in analyses:
            mine = [d for d in definitions if d.engine == a.engine]
            figures.update(registry[a.engine].live_in_flight(address, config, mine))
    except UserError as exc:
        notes.append(f"no live in-flight count: {exc.message}")
        return definitions
    return [
        d.model_copy(update={"in_flight": figures[d.id]}) if d.id in figures and d.status != "added" else d
        for d in definitions
    ]


def _with_history_task_queue(
    config: Config, results: Sequence[ReplayResult], definitions: Sequence[Definition]
) -> Config:
    """`config` with the Temporal task queue (Cadence task list) the supplied histories name, when it
    sets none and they name one (the runbook then says it instead of a placeholder)."""
    engine_of = {d.id: d.engine for d in definitions}
    out = config
    for engine, key in (("temporal", "task_queue"), ("cadence", "task_list")):
        conf = getattr(config, engine)
        if getattr(conf, key):
            continue
        queues = {
            r.task_queue
            for r in results
            if r.task_queue and r.definition and not r.synthesized and engine_of.get(r.definition) == engine
        }
        if len(queues) == 1:
            out = out.model_copy(update={engine: conf.model_copy(update={key: queues.pop()})})
    return out


def findings_by_severity(findings: Sequence[Finding]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        if not f.suppressed:
            out[f.severity.value] = out.get(f.severity.value, 0) + 1
    return out
