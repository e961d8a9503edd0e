"""Apache Airflow: DAGs loaded by the user's Airflow, diffed, judged against running DagRuns.

Collect: the changed DAG files (Airflow's own test: the file mentions both `airflow` and `dag`)
and the DAG files importing a changed module, loaded by DagBag in a subprocess of the user's
interpreter (`extract.py`), else read statically. Diff: `diff.py`. Replay: the running DagRuns
of a REST export, replayed on Airflow's own scheduler with the head and the base DAG (`runs.py`,
`decisions.py`, `scheduler.py`). Plan: `plan.py`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.config import Config
from bot.engines.airflow.deployment import (
    Deployment,
    exported_idle,
    exported_versions,
    last_runs,
    read_cfg,
    read_documents,
)
from bot.engines.airflow.diff import (
    VOCABULARY,
    added_dag,
    diff_dag,
    removed_dag,
    renamed_dag,
    same_shape,
)
from bot.engines.airflow.model import Dag, Extraction, LoadError
from bot.engines.base import Analysis
from bot.engines.python.pyast import suppressions
from bot.errors import UserError
from bot.histories import ReplayOptions
from bot.model import (
    Change,
    Definition,
    Finding,
    InFlight,
    Location,
    Picture,
    Plan,
    ReplayResult,
    ReplaySummary,
    Scalar,
    Suppression,
)
from bot.repo import FileChange, FileUnreadable, SourceTree, git_grep, grep_importers

NEWEST = 3  # the Airflow major whose rules apply when neither the config nor a loaded Airflow says

STRUCTURAL = (
    "airflow.task.",
    "airflow.edge.",
    "airflow.trigger_rule.",
    "airflow.mapping.",
    "airflow.operator.",
    "airflow.task_code.",
    "airflow.retries.",
    "airflow.outlets.",
)


@dataclass
class AirflowContext:
    extraction: Extraction
    pairs: dict[str, tuple[Dag | None, Dag | None]] = field(default_factory=dict)
    major: int = 2
    pinned: dict[str, bool] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # new dag id → old
    versioning_disabled: bool = False
    deployment: Deployment = field(default_factory=Deployment)
    texts: dict[tuple[str, str], str] = field(default_factory=dict)  # (side, path) → DAG file text
    # DAGs of base whose file no longer imports in head: dag id → (base DAG, head's import error).
    unloadable: dict[str, tuple[Dag, LoadError]] = field(default_factory=dict)


def is_dag_file(data: str) -> bool:
    """Airflow's safe-mode test: a file that mentions `airflow` and `dag` (Airflow 3: or `asset`) may
    define DAGs."""
    lowered = data.lower()
    return "airflow" in lowered and ("dag" in lowered or "asset" in lowered)


def _module(path: str, folder: str) -> str:
    rel = posixpath.relpath(path, folder) if folder else path
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def major_of(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0]) if version else None
    except ValueError:
        return None


class AirflowEngine:
    name = "airflow"
    noun = "Airflow DAG"
    # A DAG the change leaves alone schedules its running runs the same on head.
    replays_all = False
    vocabulary = VOCABULARY

    def __init__(self) -> None:
        # Local exports the check was given (`--histories`): their `bundle_version`s say how the
        # deployment pins runs before any replay (the pipeline sets them, `read_deployment_from`).
        self.exports: tuple[Sequence[str], int] = ((), 0)

    def read_deployment_from(self, sources: Sequence[str], max_bytes: int) -> None:
        self.exports = (sources, max_bytes)

    def pictures(self, analysis: Analysis) -> list[Picture]:
        from bot.engines.airflow.picture import pictures

        context = analysis.context
        if not isinstance(context, AirflowContext):
            return []
        return pictures(context.pairs, analysis.definitions, analysis.changes)

    def analyze(
        self, base: SourceTree, head: SourceTree, files: Sequence[FileChange], config: Config
    ) -> Analysis:
        folder = _folder(config.airflow.dags_folder, (base, head))
        prefix = f"{folder}/" if folder else ""
        changed = {p for f in files for p in (f.base_path, f.head_path) if p and config.paths.allows(p)}
        if not changed:
            return Analysis(engine=self.name)
        picked = self._dag_files((base, head), changed, folder, prefix, config)
        if not any(picked):
            return Analysis(engine=self.name)
        documents = read_documents(*self.exports)
        extraction = self._extract((base, head), picked, folder, config, last_runs(documents))
        deployment = Deployment(
            bundle=config.airflow.bundle,
            disabled=config.airflow.disable_bundle_versioning,
            base_cfg=read_cfg(base, config.airflow.config_file),
            head_cfg=read_cfg(head, config.airflow.config_file),
            exported=exported_versions(documents) if config.airflow.bundle is None else {},
        )
        from bot.engines.airflow.extract import add_lines

        add_lines(extraction.base, base)
        add_lines(extraction.head, head)
        context, changes, definitions = self._diff(extraction, config, deployment)
        idle = exported_idle(documents)
        definitions = [
            d.model_copy(update={"in_flight": InFlight(count=0, source=_idle_source(idle[d.id]))})
            if d.id in idle and d.status != "added"
            else d
            for d in definitions
        ]
        found: list[Suppression] = []
        for tree, paths in ((base, picked[0]), (head, picked[1])):
            for path in paths:
                try:
                    context.texts[(tree.side, path)] = tree.read(path)
                except FileUnreadable:
                    continue
                if tree is head:
                    found += suppressions(path, context.texts[(tree.side, path)])
        return Analysis(
            engine=self.name, changes=changes, definitions=definitions, suppressions=found, context=context
        )

    @staticmethod
    def _live_last_runs(config: Config, dag_ids: list[str]) -> dict[str, list[str]]:
        """With `airflow.url`: the latest scheduled run of each DAG (by the id Airflow loaded; live, it
        wins over an export). Unreachable or refused: none (the live count reports the failure)."""
        from bot.engines.airflow.export import last_scheduled_runs

        try:
            return last_scheduled_runs(str(config.airflow.url), config.airflow.api, dag_ids)
        except UserError:
            return {}

    def _dag_files(
        self,
        trees: tuple[SourceTree, SourceTree],
        changed: set[str],
        folder: str,
        prefix: str,
        config: Config,
    ) -> tuple[list[str], list[str]]:
        """Per side: the DAG files a change can alter, by following imports and file names.

        Seeds: every changed file. A changed module reaches the files that import it, and those the
        files importing them (a helper of a helper); a changed data file (`pipelines.yaml`) reaches
        the Python files naming it. Of what is reached, the DAG files under the DAG folder are loaded,
        plus the files of either tree that name a reached DAG's id (a DAG copied, moved or
        duplicated into a file the change does not touch).

        The cost follows the change: a change that reaches no Python file searches the repository
        once (the data files' names, in head's Python files) and lists no DAG file.
        """
        reached = {p for p in changed if p.endswith(".py")}
        data_files = sorted(
            {
                posixpath.basename(p)
                for p in changed
                if not p.endswith(".py") and not _workflow_definition(trees, p)
            }
        )
        if data_files:
            reached |= _naming_in_head(trees, data_files, prefix, changed)
        if not reached:
            return [], []
        frontier = set(reached)
        for _ in range(8):  # import chains deeper than this are not followed
            modules = {_module(p, folder) for p in frontier if p.startswith(prefix)} | {
                _module(p, "") for p in frontier
            }
            found = set().union(*grep_importers(list(trees), modules)) - reached
            if not found:
                break
            reached |= found
            frontier = found
        # A DAG file is a Python file under the DAG folder that Airflow's safe mode would parse
        # (`_dag_texts` reads each and applies Airflow's own test).
        under = {p for p in reached if p.startswith(prefix)}
        picked = [self._dag_texts(tree, under, config) for tree in trees]
        ids = {dag_id for side in picked for text in side.values() for dag_id in _dag_ids(text)}
        if ids:
            needles = [f'"{i}"' for i in ids] + [f"'{i}'" for i in ids]
            named = {p for p in _naming(trees, needles, prefix) if p.startswith(prefix)}
            for side, tree in zip(picked, trees, strict=True):
                side.update(self._dag_texts(tree, named - set(side), config))
        return sorted(picked[0]), sorted(picked[1])

    @staticmethod
    def _dag_texts(tree: SourceTree, paths: set[str], config: Config) -> dict[str, str]:
        out = {}
        for p in sorted(paths):
            if not config.paths.allows(p) or not tree.has(p):
                continue
            try:
                text = tree.read(p)
            except FileUnreadable:
                continue
            if is_dag_file(text):
                out[p] = text
        return out

    def _extract(
        self,
        trees: tuple[SourceTree, SourceTree],
        picked: tuple[list[str], list[str]],
        folder: str,
        config: Config,
        last: dict[str, list[str]] | None = None,
    ) -> Extraction:
        from bot.engines.airflow.extract import airflow_python, load_static, load_with_airflow

        python, why = (
            airflow_python(config.airflow.python)
            if config.airflow.load
            else (
                None,
                "DAG files are not loaded here (airflow.load is off, or this job holds a write token)",
            )
        )
        if python is not None:
            try:
                # With exports to replay, the loader stays up: the replay runs in its interpreter.
                # With `airflow.url`, it asks for the last scheduled runs of the DAGs it loaded.
                live = bool(config.airflow.url)
                ask = (lambda ids: self._live_last_runs(config, ids)) if live else None
                replays = bool(self.exports[0])
                extraction = load_with_airflow(
                    python, trees, folder, picked, config.airflow.timeout, last or {}, replays or live, ask
                )
                if extraction.live is not None and not replays:
                    extraction.live.close()  # it only answered the DAG loading: nothing to replay
                    extraction.live = None
                extraction.reason = (
                    f"DAGs loaded by Airflow {extraction.airflow_version} ({why}; {extraction.reason})"
                )
                _read_shared_errors_statically(extraction, trees)
                return extraction
            except UserError as exc:
                why = exc.message
        return Extraction(
            base=load_static(trees[0], picked[0]),
            head=load_static(trees[1], picked[1]),
            mode="static",
            reason=why,
        )

    def _diff(
        self, extraction: Extraction, config: Config, deployment: Deployment | None = None
    ) -> tuple[AirflowContext, list[Change], list[Definition]]:
        settings = config.airflow
        deployment = deployment or Deployment(
            bundle=settings.bundle, disabled=settings.disable_bundle_versioning
        )
        detected = major_of(settings.version) or major_of(extraction.airflow_version)
        major = detected or NEWEST  # unknown (static reading, no `airflow.version`): the newest Airflow
        base, head = extraction.base.dags, extraction.head.dags
        broken = {e.path for e in extraction.head.import_errors}
        context = AirflowContext(
            extraction=extraction,
            major=major,
            versioning_disabled=deployment.versioning_disabled,
            deployment=deployment,
        )

        def pinned(dag_id: str, old: Dag | None, new: Dag | None) -> bool:
            return (
                new is not None
                and major >= 3
                and deployment.versioned(dag_id, old.path if old else None, new.path)
                and not deployment.versioning_disabled
                and not new.disable_bundle_versioning
                and (old is None or not old.disable_bundle_versioning)
            )

        def common(dag_id: str) -> dict[str, Scalar]:
            return {
                "airflow_major": major,
                "pinned": context.pinned.get(dag_id, False),
                "bundle": "git" if context.pinned.get(dag_id) else (deployment.bundle or "local"),
            }

        removed = [d for i, d in base.items() if i not in head and d.path not in broken]
        added = [d for i, d in head.items() if i not in base]
        for gone in removed:
            match = [d for d in added if same_shape(gone, d) and d.dag_id not in context.renamed]
            if len(match) == 1:
                context.renamed[match[0].dag_id] = gone.dag_id
        changes: list[Change] = []
        definitions: list[Definition] = []
        renamed_to = {old_id: new_id for new_id, old_id in context.renamed.items()}
        for dag_id in sorted(set(base) | set(head)):
            if dag_id in context.renamed:
                continue  # a renamed DAG is judged under its old id: its running runs are the old id's
            old, new = base.get(dag_id), head.get(dag_id)
            if dag_id in renamed_to:
                new = head[renamed_to[dag_id]]
            if new is None and old is not None and old.path in broken:
                # The import error speaks for it; its running runs cannot be replayed (`runs.py`).
                error = next(e for e in extraction.head.import_errors if e.path == old.path)
                context.unloadable[dag_id] = (old, error)
                context.pinned[dag_id] = pinned(dag_id, old, old)
                definitions.append(
                    Definition(
                        engine=self.name,
                        id=dag_id,
                        path=error.path,
                        status="changed",
                        line=error.line,
                        pinned=context.pinned[dag_id],
                    )
                )
                continue
            context.pinned[dag_id] = pinned(dag_id, old, new)
            status: Literal["added", "removed", "changed", "unchanged"]
            if old is not None and new is not None and new.dag_id != dag_id:
                changes.append(renamed_dag(old, new, common(dag_id)))
                status = "changed"
            elif old is not None and new is not None:
                found = diff_dag(old, new, common(dag_id))
                changes += [_gate(c) for c in found]
                status = "changed" if found or old.digest != new.digest else "unchanged"
            elif new is not None:
                changes.append(added_dag(new, common(dag_id)))
                status = "added"
            else:
                assert old is not None
                changes.append(removed_dag(old, common(dag_id)))
                status = "removed"
            dag = new if new is not None else old
            assert dag is not None
            context.pairs[dag_id] = (old, new)
            if new is not None and new.unstable:
                changes.append(
                    Change(
                        kind="airflow.dag.unstable",
                        engine=self.name,
                        definition=dag_id,
                        location=Location(path=new.path, line=new.line),
                        details={**common(dag_id), "fields": ", ".join(new.unstable)},
                    )
                )
            definitions.append(
                Definition(
                    engine=self.name,
                    id=dag_id,
                    path=dag.path,
                    status=status,
                    line=dag.line,
                    pinned=context.pinned[dag_id],
                )
            )
        for cfg in (deployment.base_cfg, deployment.head_cfg):
            if cfg is not None and cfg.problem is not None and deployment.bundle is None:
                side: Literal["base", "head"] = "base" if cfg is deployment.base_cfg else "head"
                changes.append(
                    Change(
                        kind="airflow.config.unreadable",
                        engine=self.name,
                        definition="",
                        location=Location(path=cfg.path, line=cfg.problem[0], side=side),
                        details={"airflow_major": major, "message": cfg.problem[1], "side": side},
                    )
                )
        for err in extraction.head.import_errors:
            victims = sorted(d.dag_id for d in base.values() if d.path == err.path)
            changes.append(
                Change(
                    kind="airflow.import_error",
                    engine=self.name,
                    definition=victims[0] if victims else "",
                    location=Location(path=err.path, line=err.line),
                    details={
                        "airflow_major": major,
                        "message": _last_line(err.message),
                        "dags": ", ".join(victims) or "none known",
                    },
                )
            )
        if extraction.mode == "static" or extraction.static_files:
            paths = extraction.static_files or sorted(
                {*(d.path for d in head.values()), *(d.path for d in base.values())}
            )
            changes.append(
                Change(
                    kind="airflow.extract.static",
                    engine=self.name,
                    definition="",
                    location=Location(path=paths[0] if paths else "dags", line=1),
                    details={
                        "reason": extraction.static_reason or extraction.reason,
                        "dags": len({d for d, m in {**base, **head}.items() if m.path in paths}),
                    },
                )
            )
        return context, changes, definitions

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.airflow.plan import build_plan

        context = analysis.context
        if not isinstance(context, AirflowContext):
            return Plan()
        return build_plan(context, findings, config)

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        from bot.engines.airflow.runs import run_replay

        context = analysis.context
        return run_replay(context if isinstance(context, AirflowContext) else None, options)

    def replay_changes(
        self,
        results: Sequence[ReplayResult],
        summary: ReplaySummary,
        definitions: Sequence[Definition],
        static: Sequence[Finding],
    ) -> list[Change]:
        from bot.engines.airflow.runs import replay_changes

        return replay_changes(results, summary, definitions, static)

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        from bot.engines.airflow.export import live_figures

        by_server: dict[tuple[str, str], list[str]] = {}
        for d in definitions:
            own = config.for_path(d.path).airflow
            if d.engine == self.name and d.status != "added" and own.url:
                by_server.setdefault((own.url, own.api), []).append(d.id)
        out: dict[str, InFlight] = {}
        for (url, api), ids in by_server.items():
            out.update(live_figures(url, api, ids))
        return out


def _idle_source(held: int) -> str:
    other = f"; it holds {held} in other states" if held else ""
    return f"the export shows no running or queued DagRun of it (exported with those states{other})"


def _gate(change: Change) -> Change:
    """A structural change reaches no running DagRun when runs are pinned to their bundle version."""
    if change.gated and not change.kind.startswith(STRUCTURAL):
        return change.model_copy(update={"gated": False})
    return change


def _read_shared_errors_statically(extraction: Extraction, trees: tuple[SourceTree, SourceTree]) -> None:
    """A file that fails alike in base and head (a parse-time `Variable.get`, a provider not installed
    where the check runs) is not this change's error: read it statically on both sides instead."""
    from bot.engines.airflow.extract import load_static

    before = {(e.path, _last_line(e.message)) for e in extraction.base.import_errors}
    shared = {
        e.path: _last_line(e.message)
        for e in extraction.head.import_errors
        if (e.path, _last_line(e.message)) in before
    }
    if not shared:
        return
    for side, tree in ((extraction.base, trees[0]), (extraction.head, trees[1])):
        side.import_errors = [e for e in side.import_errors if e.path not in shared]
        side.dags.update(load_static(tree, set(shared)).dags)
    extraction.static_files = sorted(shared)
    extraction.static_reason = "; ".join(
        f"{p} does not import here, in base nor head: {m}" for p, m in sorted(shared.items())
    )


def _folder(value: str, trees: tuple[SourceTree, SourceTree]) -> str:
    """`airflow.dags_folder` as a repository path ('' for the whole repository); one error line when it
    cannot be one."""
    if value.startswith("/"):
        raise UserError(
            f"airflow.dags_folder {value}: give the folder relative to the repository root (e.g. `dags`)"
        )
    folder = posixpath.normpath(value).strip("/") if value.strip() else ""
    folder = "" if folder == "." else folder
    if folder.startswith(".."):
        raise UserError(f"airflow.dags_folder {value}: outside the repository")
    if folder and not any(t.python_under(folder) for t in trees):
        raise UserError(f"airflow.dags_folder {value}: no Python file under it in base or head")
    return folder


def _airflow_files(tree: SourceTree, prefix: str) -> set[str]:
    """Python files under the DAG folder that mention Airflow (one `git grep`)."""
    return git_grep([tree], ["airflow"], "-i", "-F", paths=[f"{prefix}*.py"])[0]


# `git grep` tries fixed strings one at a time: past this many, a search costs too much.
MANY_NEEDLES = 200


def _naming(trees: tuple[SourceTree, SourceTree], needles: Sequence[str], prefix: str) -> set[str]:
    """Python files of either tree containing one of `needles` (fixed strings).

    Past `MANY_NEEDLES` (a change of hundreds of data files or DAGs): every DAG file, a superset that
    costs what the DAG folder holds instead of needles times the repository.
    """
    if len(needles) > MANY_NEEDLES:
        return set().union(*(_airflow_files(t, prefix) for t in trees))
    return set().union(*git_grep(trees, needles, "-F"))


def _naming_in_head(
    trees: tuple[SourceTree, SourceTree], names: Sequence[str], prefix: str, changed: set[str]
) -> set[str]:
    """Python files naming one of the data files `names`: `_naming` over head's tree only.

    A Python file that differs between base and head is a changed file, already a seed; one that
    does not reads the same in base, so searching head finds every file of either tree that matters.
    This is the one search of the whole repository a change of data files alone makes: a DAG built
    from a data file (`pipelines.yaml`) is reached only through the Python file naming it.
    """
    if len(names) > MANY_NEEDLES:
        return _naming(trees, names, prefix)
    found = git_grep([trees[1]], names, "-F")[0]
    return found | {p for p in changed if p.endswith(".py")}


# A state machine definition (an ASL file, or a CloudFormation/SAM template declaring one) is the
# Step Functions engine's: its edits change what a state machine runs, not the shape of a DAG.
_SFN_RESOURCE = re.compile(
    r"""^\s*["']?Type["']?\s*:\s*["']?AWS::(?:StepFunctions|Serverless)::StateMachine\b""", re.MULTILINE
)
_ASL_KEYS = (re.compile(r"""["']?StartAt["']?\s*:"""), re.compile(r"""["']?States["']?\s*:"""))


def _workflow_definition(trees: tuple[SourceTree, SourceTree], path: str) -> bool:
    """Whether `path` is a Step Functions definition in base AND head (a template declaring a state
    machine resource, or an ASL file): such a data file is not searched for in the DAG files (the
    search over the whole repository is what a template edit in a large repository would otherwise
    cost). A file the change adds, or one base did not hold as a definition, is always searched for:
    a pull request cannot opt its own data file out by writing a marker into it."""
    name = posixpath.basename(path).lower()
    if name.endswith((".asl.json", ".asl.yaml", ".asl.yml")):
        shape: tuple[re.Pattern[str], ...] = _ASL_KEYS
    elif name.endswith((".yaml", ".yml", ".json", ".template")):
        shape = (_SFN_RESOURCE,)
    else:
        return False
    for tree in trees:
        try:
            if not tree.has_file(path) or not all(p.search(tree.read(path)) for p in shape):
                return False
        except FileUnreadable:
            return False
    return True


_DAG_ID = re.compile(r"""(?:DAG\(\s*(?:dag_id\s*=\s*)?|dag_id\s*=\s*)(["'])([\w.\-]+)\1""")


def _dag_ids(text: str) -> set[str]:
    """Literal DAG ids a file names (`DAG("x"`, `dag_id="x"`): enough to find other files naming them."""
    return {m.group(2) for m in _DAG_ID.finditer(text)}


def _last_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "import failed"
