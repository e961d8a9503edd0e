"""How the deployment pins running DagRuns, read from what the repository and the exports say.

Three sources, in the order they win: the tool config (`airflow.bundle`,
`airflow.disable_bundle_versioning`); the exported DagRuns (`bundle_version` on a run, on one of
its `dag_versions`, or on a task instance's `dag_version`: Airflow 3 stores one only for a run of a
versioned bundle); the deployment's `airflow.cfg` in the repository (`airflow.config_file`):
`[dag_processor] dag_bundle_config_list` and `disable_bundle_versioning`. Nothing found: a local,
unversioned bundle (no run pinned), the stricter reading.

The `airflow.cfg` of base is what the running runs started under; head's can only take pinning
away (a head that drops GitDagBundle or turns versioning off). A file that cannot be read the way
Airflow reads it (INI syntax, the bundle list's JSON) is a finding at its line, and pins nothing.
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import UserError
from bot.repo import FileUnreadable, SourceTree

SECTION = "dag_processor"
VERSIONED = ("GitDagBundle",)  # bundle classes that store a bundle version on each DagRun
TRUE = {"t", "true", "1"}
FALSE = {"f", "false", "0"}


@dataclass
class Bundle:
    name: str
    classpath: str
    subdir: str  # GitDagBundle's `subdir` (DAGs under it in the repository); "" for the root

    @property
    def versioned(self) -> bool:
        return self.classpath.rsplit(".", 1)[-1] in VERSIONED


@dataclass
class CfgFile:
    """One side's `airflow.cfg`: its bundles (None when it sets none) and `disable_bundle_versioning`."""

    path: str
    bundles: list[Bundle] | None = None
    disabled: bool | None = None
    problem: tuple[int, str] | None = None  # (line, what is wrong)

    def versioned(self, dag_path: str) -> bool | None:
        """Whether the bundle holding `dag_path` stores a version on each run (None: not said)."""
        if self.problem is not None:
            return False
        if self.bundles is None:
            return None
        if all(b.versioned for b in self.bundles):
            return bool(self.bundles)
        if not any(b.versioned for b in self.bundles):
            return False
        # Mixed bundles: a versioned one whose `subdir` holds the file; else the unversioned one.
        return any(
            b.versioned and (not b.subdir or dag_path.startswith(b.subdir.strip("/") + "/"))
            for b in self.bundles
        )


def _line_of(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*[=:]", line):
            return number
    return 1


def parse_cfg(path: str, text: str) -> CfgFile:
    """Read the two settings as Airflow's config parser does (INI, JSON list, `getboolean`)."""
    found = CfgFile(path)
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None) or 1
        found.problem = (int(line), f"not an INI file Airflow can read ({type(exc).__name__})")
        return found
    if not parser.has_section(SECTION):
        return found
    raw = parser.get(SECTION, "dag_bundle_config_list", fallback=None)
    if raw is not None and raw.strip():
        line = _line_of(text, "dag_bundle_config_list")
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            found.problem = (line, f"[{SECTION}] dag_bundle_config_list is not JSON ({exc.msg})")
            return found
        except RecursionError:
            found.problem = (line, f"[{SECTION}] dag_bundle_config_list is nested too deeply to read")
            return found
        # As Airflow's bundle manager validates it: {name: str, classpath: str, kwargs: dict}, unique names
        if (
            not isinstance(items, list)
            or not all(
                isinstance(i, Mapping)
                and isinstance(i.get("name"), str)
                and isinstance(i.get("classpath"), str)
                and isinstance(i.get("kwargs"), Mapping)
                for i in items
            )
            or len({i["name"] for i in items}) != len(items)
        ):
            found.problem = (
                line,
                f"[{SECTION}] dag_bundle_config_list is not a list of {{name, classpath, kwargs}} "
                "with unique names",
            )
            return found
        found.bundles = [
            Bundle(name=i["name"], classpath=i["classpath"], subdir=str(i["kwargs"].get("subdir") or ""))
            for i in items
        ]
    flag = parser.get(SECTION, "disable_bundle_versioning", fallback=None)
    if flag is not None:
        value = flag.strip().lower()
        if value in TRUE | FALSE:
            found.disabled = value in TRUE
        else:
            found.problem = (
                _line_of(text, "disable_bundle_versioning"),
                f"[{SECTION}] disable_bundle_versioning is {flag.strip()!r}, not a boolean",
            )
    return found


def read_cfg(tree: SourceTree, path: str) -> CfgFile | None:
    """The tree's `airflow.cfg` at `path` (None when it has none)."""
    if not path.strip():
        return None
    if path.startswith("/") or ".." in Path(path).parts:
        raise UserError(f"airflow.config_file {path}: give a path relative to the repository root")
    if not tree.has_file(path):
        return None
    try:
        text = tree.read(path)
    except FileUnreadable as exc:
        return CfgFile(path, problem=(1, f"cannot be read ({exc.reason})"))
    return parse_cfg(path, text)


def exported_versions(documents: Iterable[Any]) -> dict[str, bool]:
    """dag_id → whether its exported runs carry a bundle version (runs without one: False).

    A run's own `bundle_version`, one of its `dag_versions`, or its task instances' `dag_version`.
    Only runs that say something count: a v1 (Airflow 2) export has no such field.
    """
    out: dict[str, bool] = {}
    for data in documents:
        if not isinstance(data, Mapping):
            continue
        runs = data.get("dag_runs") if isinstance(data.get("dag_runs"), list) else []
        for run in runs or []:
            if not isinstance(run, Mapping) or not isinstance(run.get("dag_id"), str):
                continue
            versions = [run.get("bundle_version")] if "bundle_version" in run else []
            for v in run.get("dag_versions") or []:
                if isinstance(v, Mapping) and "bundle_version" in v:
                    versions.append(v.get("bundle_version"))
            if versions:
                dag_id = str(run["dag_id"])
                out[dag_id] = out.get(dag_id, False) or any(isinstance(v, str) and v for v in versions)
        instances = data.get("task_instances") if isinstance(data.get("task_instances"), list) else []
        for ti in instances or []:
            if not isinstance(ti, Mapping) or not isinstance(ti.get("dag_id"), str):
                continue
            version = ti.get("dag_version")
            if isinstance(version, Mapping) and "bundle_version" in version:
                dag_id = str(ti["dag_id"])
                value = version.get("bundle_version")
                out[dag_id] = out.get(dag_id, False) or bool(isinstance(value, str) and value)
    return out


AUTOMATED = {"scheduled", "backfill", "backfill_job"}  # runs whose interval the scheduler continues from


OPEN_STATES = {"running", "queued"}


def exported_idle(documents: Iterable[Any]) -> dict[str, int]:
    """dag_id → how many of its DagRuns the exports hold, for each DAG an export covers with none running
    or queued. Only a document that says it looked for running and queued runs (`states`, as
    `inflight-guard export airflow` writes it; a DAG with none gets a document naming it, `dag_id`)
    can say none run: a hand-made export of finished runs says nothing about running ones. A run
    running in any document wins."""
    covered: dict[str, int] = {}
    busy: set[str] = set()
    for data in documents:
        if not isinstance(data, Mapping):
            continue
        states = data.get("states")
        if not isinstance(states, list) or not {str(s).lower() for s in states} >= OPEN_STATES:
            continue
        named = data.get("dag_id")
        if isinstance(named, str) and named:
            covered.setdefault(named, 0)
        runs = data.get("dag_runs")
        for run in runs if isinstance(runs, list) else []:
            if not isinstance(run, Mapping) or not isinstance(run.get("dag_id"), str):
                continue
            dag_id = str(run["dag_id"])
            covered[dag_id] = covered.get(dag_id, 0) + 1
            if str(run.get("state") or "").lower() in OPEN_STATES:
                busy.add(dag_id)
    return {d: n for d, n in covered.items() if d not in busy}


def last_runs(documents: Iterable[Any]) -> dict[str, list[str]]:
    """dag_id → [data_interval_start, data_interval_end] of its latest exported scheduled run (any
    state): where the scheduler continues from. A run whose type is not given counts; a manual one
    does not."""
    out: dict[str, list[str]] = {}
    for data in documents:
        runs = data.get("dag_runs") if isinstance(data, Mapping) else None
        for run in runs if isinstance(runs, list) else []:
            if not isinstance(run, Mapping) or not isinstance(run.get("dag_id"), str):
                continue
            kind = str(run.get("run_type") or "scheduled").lower()
            start, end = run.get("data_interval_start"), run.get("data_interval_end")
            if kind not in AUTOMATED or not isinstance(start, str) or not isinstance(end, str):
                continue
            begins, ends = _iso(start), _iso(end)
            if begins is None or ends is None:
                continue
            dag_id = str(run["dag_id"])
            known = _iso(out[dag_id][1]) if dag_id in out else None
            if known is None or ends > known:
                out[dag_id] = [begins.isoformat(), ends.isoformat()]
    return out


def _iso(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def read_documents(paths: Iterable[str], max_bytes: int) -> list[Any]:
    """The local export files (and folders of them) among `paths`, parsed; what cannot be read is
    left to the replay, which reports it."""
    documents: list[Any] = []
    for spec in paths:
        if "://" in spec:
            continue  # a remote source is read once, by the replay
        root = Path(spec)
        files = sorted(root.rglob("*.json")) if root.is_dir() else [root] if root.is_file() else []
        for file in files:
            try:
                if file.stat().st_size > max_bytes:
                    continue
                documents.append(json.loads(file.read_text(encoding="utf-8")))
            except (OSError, ValueError, RecursionError):
                continue  # the replay reports what it cannot read
    return documents


@dataclass
class Deployment:
    """The pinning facts, resolved; `source` says where each came from (for the report)."""

    bundle: str | None = None  # "git" | "local" from the tool config
    disabled: bool | None = None  # from the tool config
    base_cfg: CfgFile | None = None
    head_cfg: CfgFile | None = None
    exported: dict[str, bool] = field(default_factory=dict)

    @property
    def versioning_disabled(self) -> bool:
        if self.disabled is not None:
            return self.disabled
        return any(c is not None and c.disabled for c in (self.base_cfg, self.head_cfg))

    def versioned(self, dag_id: str, base_path: str | None, head_path: str | None) -> bool:
        """Whether running runs of the DAG carry a bundle version (before `disable_*` and the DAG's own)."""
        if self.bundle is not None:
            return self.bundle == "git"
        if dag_id in self.exported:
            return self.exported[dag_id]
        base = self.base_cfg.versioned(base_path or head_path or "") if self.base_cfg else None
        head = self.head_cfg.versioned(head_path or base_path or "") if self.head_cfg else None
        return bool(base) and head is not False

    def source(self) -> str:
        if self.bundle is not None:
            return "config"
        if self.exported:
            return "export"
        return "airflow.cfg" if self.base_cfg is not None else "default"
