"""The normalized DAG model both extractors (Airflow's DagBag, static `ast`) produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Task:
    task_id: str
    operator: str
    operator_class: str = ""
    upstream: tuple[str, ...] = ()
    downstream: tuple[str, ...] = ()
    task_group: str | None = None
    trigger_rule: str = "all_success"
    retries: int = 0
    depends_on_past: bool = False
    wait_for_downstream: bool = False
    pool: str = "default_pool"
    queue: str = "default"
    outlets: tuple[str, ...] = ()
    inlets: tuple[str, ...] = ()
    mapped: bool = False
    expand_keys: tuple[str, ...] = ()
    expand_lengths: dict[str, int] = field(default_factory=dict)
    code_hash: str = ""
    fields_hash: str = ""
    line: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        return cls(
            task_id=str(data["task_id"]),
            operator=str(data.get("operator", "")),
            operator_class=str(data.get("operator_class", "")),
            upstream=tuple(data.get("upstream", ())),
            downstream=tuple(data.get("downstream", ())),
            task_group=data.get("task_group"),
            trigger_rule=str(data.get("trigger_rule", "all_success")),
            retries=int(data.get("retries", 0) or 0),
            depends_on_past=bool(data.get("depends_on_past")),
            wait_for_downstream=bool(data.get("wait_for_downstream")),
            pool=str(data.get("pool", "default_pool")),
            queue=str(data.get("queue", "default")),
            outlets=tuple(data.get("outlets", ())),
            inlets=tuple(data.get("inlets", ())),
            mapped=bool(data.get("mapped")),
            expand_keys=tuple(data.get("expand_keys", ())),
            expand_lengths={str(k): int(v) for k, v in (data.get("expand_lengths") or {}).items()},
            code_hash=str(data.get("code_hash", "")),
            fields_hash=str(data.get("fields_hash", "")),
            line=data.get("line"),
        )

    @property
    def operator_kind(self) -> str:
        """What decides the operator's behaviour: its class (TaskFlow: the decorator)."""
        return self.operator_class or self.operator

    @property
    def same_work(self) -> tuple[str, str, str]:
        return (self.operator_kind, self.code_hash, self.fields_hash)


@dataclass
class Storm:
    """Runs the timetable would create with catchup: since start_date, and before the base's."""

    runs: int | None = None
    complete: bool = True
    earlier: int | None = None
    earlier_complete: bool = True
    since: str | None = None  # counted after the DAG's last scheduled run (its data interval end)


@dataclass
class Dag:
    dag_id: str
    path: str
    line: int = 1
    schedule: str = ""
    schedule_summary: str = ""
    start_date: str | None = None
    end_date: str | None = None
    catchup: bool = False
    max_active_runs: int = 0
    max_active_tasks: int = 0
    params: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    disable_bundle_versioning: bool = False
    tasks: dict[str, Task] = field(default_factory=dict)
    digest: str = ""
    storm: Storm | None = None
    unstable: tuple[str, ...] = ()
    static: bool = False  # read by the `ast` fallback, not by Airflow

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dag:
        storm = data.get("storm")
        return cls(
            dag_id=str(data["dag_id"]),
            path=str(data["path"]),
            schedule=str(data.get("schedule", "")),
            schedule_summary=str(data.get("schedule_summary", "")),
            start_date=data.get("start_date"),
            end_date=data.get("end_date"),
            catchup=bool(data.get("catchup")),
            max_active_runs=int(data.get("max_active_runs", 0) or 0),
            max_active_tasks=int(data.get("max_active_tasks", 0) or 0),
            params={str(k): str(v) for k, v in (data.get("params") or {}).items()},
            tags=tuple(data.get("tags", ())),
            disable_bundle_versioning=bool(data.get("disable_bundle_versioning")),
            tasks={k: Task.from_json(v) for k, v in (data.get("tasks") or {}).items()},
            digest=str(data.get("digest", "")),
            storm=Storm(
                runs=storm.get("runs"),
                complete=bool(storm.get("complete", True)),
                earlier=storm.get("earlier"),
                earlier_complete=bool(storm.get("earlier_complete", True)),
                since=storm.get("since"),
            )
            if isinstance(storm, dict) and "error" not in storm
            else None,
        )


@dataclass
class LoadError:
    """A DAG file Airflow could not load (import error, duplicate id, sys.exit...)."""

    path: str
    line: int
    message: str


@dataclass
class Side:
    """What one tree's DAG files hold."""

    dags: dict[str, Dag] = field(default_factory=dict)
    import_errors: list[LoadError] = field(default_factory=list)
    # Airflow's own serialized DAG (what its scheduler reads), by dag id; a text when it failed.
    serialized: dict[str, Any] = field(default_factory=dict)


@dataclass
class Extraction:
    """Both sides, and how they were read."""

    base: Side
    head: Side
    mode: str  # "airflow" | "static"
    airflow_version: str | None = None
    reason: str = ""  # why the static fallback was used
    static_files: list[str] = field(default_factory=list)  # files read statically in the Airflow mode
    static_reason: str = ""
    python: str | None = None  # the interpreter with Airflow that loaded the DAGs
    # The loader's process, still up for the scheduler replay (`extract.LiveLoader`), when asked for.
    live: Any = None
