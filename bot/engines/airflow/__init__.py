"""Apache Airflow: DAGs loaded by the user's Airflow, diffed, judged against running DagRuns.

Collect: the changed DAG files (Airflow's own test: the file mentions both `airflow` and `dag`)
and the DAG files importing a changed module, loaded by DagBag in a subprocess of the user's
interpreter (`extract.py`), else read statically. Diff: `diff.py`. Replay: the running DagRuns
of a REST export, checked against the head DAG (`runs.py`). Plan: `plan.py`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.config import Config
from bot.engines.airflow.diff import (
    VOCABULARY,
    added_dag,
    diff_dag,
    removed_dag,
    renamed_dag,
    same_shape,
)
from bot.engines.airflow.model import Dag, Extraction
from bot.engines.base import Analysis
from bot.engines.pyast import suppressions
from bot.errors import UserError
from bot.histories import ReplayOptions
from bot.model import (
    Change,
    Definition,
    Finding,
    InFlight,
    Location,
    Plan,
    ReplayResult,
    ReplaySummary,
    Scalar,
    Suppression,
)
from bot.repo import FileChange, FileUnreadable, SourceTree, grep_importers

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
    bundle: str = "local"
    pinned: dict[str, bool] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # new dag id → old
    versioning_disabled: bool = False
    texts: dict[tuple[str, str], str] = field(default_factory=dict)  # (side, path) → DAG file text


def is_dag_file(data: str) -> bool:
    """Airflow's safe-mode test: a file that mentions both words may define DAGs."""
    lowered = data.lower()
    return "airflow" in lowered and "dag" in lowered


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
    vocabulary = VOCABULARY

    def analyze(
        self, base: SourceTree, head: SourceTree, files: Sequence[FileChange], config: Config
    ) -> Analysis:
        settings = config.airflow
        folder = settings.dags_folder.strip("/")
        prefix = f"{folder}/" if folder else ""
        changed = {
            p
            for f in files
            for p in (f.base_path, f.head_path)
            if p and p.endswith(".py") and p.startswith(prefix) and config.paths.allows(p)
        }
        if not changed:
            return Analysis(engine=self.name)
        picked = self._dag_files((base, head), changed, folder, prefix, config)
        if not any(picked):
            return Analysis(engine=self.name)
        extraction = self._extract((base, head), picked, folder, config)
        from bot.engines.airflow.extract import add_lines

        add_lines(extraction.base, base)
        add_lines(extraction.head, head)
        context, changes, definitions = self._diff(extraction, config)
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

    def _dag_files(
        self,
        trees: tuple[SourceTree, SourceTree],
        changed: set[str],
        folder: str,
        prefix: str,
        config: Config,
    ) -> tuple[list[str], list[str]]:
        """Per side: the changed DAG files and the DAG files importing a changed module."""
        out: list[list[str]] = []
        modules = {_module(p, folder) for p in changed}
        importers = grep_importers(list(trees), modules)
        for tree, extra in zip(trees, importers, strict=True):
            paths = set()
            for p in sorted(changed | {e for e in extra if e.startswith(prefix) and config.paths.allows(e)}):
                if not tree.has(p):
                    continue
                try:
                    text = tree.read(p)
                except FileUnreadable:
                    continue
                if is_dag_file(text) and (p in changed or _imports(text, modules)):
                    paths.add(p)
            out.append(sorted(paths))
        return out[0], out[1]

    def _extract(
        self,
        trees: tuple[SourceTree, SourceTree],
        picked: tuple[list[str], list[str]],
        folder: str,
        config: Config,
    ) -> Extraction:
        from bot.engines.airflow.extract import airflow_python, load_static, load_with_airflow

        python, why = airflow_python(config.airflow.python)
        if python is not None:
            try:
                extraction = load_with_airflow(python, trees, folder, picked, config.airflow.timeout)
                extraction.reason = (
                    f"DAGs loaded by Airflow {extraction.airflow_version} ({why}; {extraction.reason})"
                )
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
        self, extraction: Extraction, config: Config
    ) -> tuple[AirflowContext, list[Change], list[Definition]]:
        settings = config.airflow
        detected = major_of(settings.version) or major_of(extraction.airflow_version)
        major = detected or 2  # unknown: Airflow 2's semantics, the stricter ones
        base, head = extraction.base.dags, extraction.head.dags
        broken = {e.path for e in extraction.head.import_errors}
        context = AirflowContext(
            extraction=extraction,
            major=major,
            bundle=settings.bundle,
            versioning_disabled=settings.disable_bundle_versioning,
        )

        def pinned(dag: Dag | None) -> bool:
            return (
                dag is not None
                and major >= 3
                and settings.bundle == "git"
                and not settings.disable_bundle_versioning
                and not dag.disable_bundle_versioning
            )

        def common(dag_id: str) -> dict[str, Scalar]:
            return {
                "airflow_major": major,
                "pinned": context.pinned.get(dag_id, False),
                "bundle": settings.bundle,
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
                continue  # the import error speaks for it
            context.pinned[dag_id] = pinned(new) and (old is None or pinned(old))
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
        if extraction.mode == "static":
            first = next(
                iter(sorted({*(d.path for d in head.values()), *(d.path for d in base.values())})), ""
            )
            changes.append(
                Change(
                    kind="airflow.extract.static",
                    engine=self.name,
                    definition="",
                    location=Location(path=first or "dags", line=1),
                    details={"reason": extraction.reason, "dags": len(set(base) | set(head))},
                )
            )
        return context, changes, definitions

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.airflow.plan import build_plan

        context = analysis.context
        if not isinstance(context, AirflowContext):
            return Plan()
        return build_plan(context, findings, analysis.definitions, config)

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        from bot.engines.airflow.runs import run_replay

        context = analysis.context
        if not isinstance(context, AirflowContext):
            return [], ReplaySummary()
        return run_replay(context, options)

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

        mine = [d for d in definitions if d.engine == self.name and d.status != "added"]
        if not mine or not config.airflow.url:
            return {}
        return live_figures(config.airflow.url, config.airflow.api, [d.id for d in mine])


def _gate(change: Change) -> Change:
    """A structural change reaches no running DagRun when runs are pinned to their bundle version."""
    if change.gated and not change.kind.startswith(STRUCTURAL):
        return change.model_copy(update={"gated": False})
    return change


def _imports(text: str, modules: set[str]) -> bool:
    return any(m.rsplit(".", 1)[-1] in text for m in modules)


def _last_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "import failed"
