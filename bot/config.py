"""The user's configuration (`.github/inflight-guard.yml`), validated with file and line."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot import yamlsafe
from bot.errors import UserError
from bot.histories import DEFAULT_MAX_HISTORY_BYTES
from bot.model import Severity

DEFAULT_CONFIG_PATHS = (".github/inflight-guard.yml", ".github/inflight-guard.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RulesConfig(_Section):
    severity: dict[str, Severity] = Field(
        default_factory=dict, description="Severity overrides, by rule id or slug."
    )
    disable: list[str] = Field(default_factory=list, description="Rules (id or slug) that never report.")
    packs: list[str] = Field(
        default_factory=list, description="Extra rule-pack files, relative to the repository root."
    )


class PathsConfig(_Section):
    include: list[str] = Field(
        default_factory=list,
        description="Only judge workflow definitions in files matching one of these globs.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Never judge workflow definitions in files matching these globs."
    )

    sections: list[PathSection] = Field(
        default_factory=list,
        description="Per-path engine keys: a definition takes the first section whose glob matches its "
        "file, merged over the top-level keys. `paths:` may also be this list itself.",
    )

    def allows(self, path: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(path, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(path, p) for p in self.exclude)


class TemporalConfig(_Section):
    strategy: Literal["patch", "worker-versioning", "new-type"] = Field(
        default="patch", description="How the plan versions a breaking change."
    )
    namespace: str = Field(
        default="default", description="Namespace used in the runbook's commands and for live counts."
    )
    address: str | None = Field(
        default=None,
        description="Temporal frontend `HOST:PORT` to count running executions per changed type "
        "(`--temporal-address` overrides it). Credentials come from `TEMPORAL_API_KEY` / `TEMPORAL_TLS_*`.",
    )
    task_queue: str | None = Field(
        default=None, description="Task queue named in the runbook and canary plan."
    )
    deployment_name: str | None = Field(
        default=None, description="Worker Deployment name for the worker-versioning strategy."
    )
    sdk_version: str | None = Field(
        default=None, description="temporalio version your workers run (rules may depend on it)."
    )
    dev_server: str | None = Field(
        default=None,
        description="`HOST:PORT` of a Temporal server that synthesis records base executions on "
        "(namespace `default`). Unset: a `temporal server start-dev` on loopback for the check, "
        "from the `temporal` CLI beside inflight-guard's interpreter or on PATH.",
    )


class StepFunctionsConfig(_Section):
    region: str | None = Field(
        default=None,
        description="AWS region for live counts (else the standard chain: `AWS_REGION`, the profile).",
    )
    live_counts: Literal["auto", "off"] = Field(
        default="auto",
        description="`auto`: when AWS credentials are configured, count RUNNING executions per changed "
        "state machine and version (`ListExecutions`); `off`: never call AWS.",
    )
    names: dict[str, str] = Field(
        default_factory=dict,
        description="Deployed state machine name per definition (the template's resource name, or "
        "the file stem), when they differ: e.g. `{OrderFlow: prod-OrderFlow-x1y2}`. Used for live counts "
        "and to match histories.",
    )


class CadenceConfig(_Section):
    strategy: Literal["version", "new-type"] = Field(
        default="version",
        description="How the plan versions a breaking change: `version` puts it behind "
        "`workflow.get_version`; `new-type` registers the head code as a new workflow type.",
    )
    domain: str = Field(default="default", description="Domain used in the runbook's `cadence` commands.")
    task_list: str | None = Field(default=None, description="Task list named in the runbook and canary plan.")


class AirflowConfig(_Section):
    load: bool = Field(
        default=True,
        description="Load DAG files with Airflow (this runs their top-level code, as the DAG processor "
        "does). `false` reads them statically. Always off in a job that holds a write token "
        "(`pull_request_target`, `issue_comment`, `workflow_run`).",
    )
    python: str | None = Field(
        default=None,
        description="Interpreter with your Airflow and providers, used to load DAG files (else `--python`). "
        "Default: the first `python`/`python3` on PATH that has Airflow, else inflight-guard's own if it "
        "has; with none, DAG files are read statically and the verdict says so.",
    )
    dags_folder: str = Field(
        default="",
        description="Folder of the DAG files, relative to the repository root (Airflow's `dags_folder`); "
        "only it is written out for loading and put on `sys.path`. Default: the whole repository.",
    )
    version: str | None = Field(
        default=None,
        description="Airflow version your deployment runs, e.g. `2.10.5` or `3.1.0`. Default: the version "
        "the DAGs were loaded with. Airflow 2 and 3 treat running DagRuns differently.",
    )
    bundle: Literal["local", "git"] | None = Field(
        default=None,
        description="DAG bundle of the deployment (Airflow 3): `local` (LocalDagBundle, unversioned: "
        "running DagRuns take the new DAG) or `git` (GitDagBundle, versioned: a DagRun keeps the bundle "
        "version it started with). Wins over what the exports and `config_file` say. Default: the "
        "exported runs' `bundle_version`, else `config_file`'s bundles, else `local`.",
    )
    disable_bundle_versioning: bool | None = Field(
        default=None,
        description="`[dag_processor] disable_bundle_versioning` of the deployment: when true no DagRun "
        "is pinned, whatever the bundle. Default: what `config_file` says, else false.",
    )
    config_file: str = Field(
        default="airflow.cfg",
        description="The deployment's `airflow.cfg`, relative to the repository root: its "
        "`[dag_processor] dag_bundle_config_list` (a GitDagBundle pins runs) and "
        "`disable_bundle_versioning` are read from base (what running runs started under) and head. "
        '`""`: read none.',
    )
    strategy: Literal["drain", "parallel"] = Field(
        default="drain",
        description="How the plan ships a change running DagRuns must not see: `drain` (running runs "
        "finish unpaused, the deploy lands between runs) or `parallel` (also outline a `<dag>_v2` copy "
        "beside the old DAG until it drains: it schedules the pipeline twice and starts a new history).",
    )
    url: str | None = Field(
        default=None,
        description="Airflow base URL (`https://airflow.example.com`) to count running DagRuns per changed "
        "DAG. Credentials: `AIRFLOW_API_TOKEN`, or `AIRFLOW_USERNAME` / `AIRFLOW_PASSWORD`.",
    )
    api: Literal["auto", "v2", "v1"] = Field(
        default="auto",
        description="REST API version: `v2` (Airflow 3), `v1` (Airflow 2), `auto` tries v2 then v1.",
    )
    timeout: float = Field(default=300.0, gt=0, description="Seconds the DAG loader may take per check.")


class PathSection(_Section):
    """Engine keys for the definitions under one glob (a monorepo's app): only the keys it writes
    replace the top level's."""

    glob: str = Field(
        description="The files the section applies to (`fnmatch`: `*` also matches `/`), e.g. `apps/billing/**`."
    )
    temporal: TemporalConfig | None = Field(default=None, description="Temporal keys for these files.")
    cadence: CadenceConfig | None = Field(default=None, description="Cadence keys for these files.")
    stepfunctions: StepFunctionsConfig | None = Field(
        default=None, description="Step Functions keys for these files."
    )
    airflow: AirflowConfig | None = Field(default=None, description="Airflow keys for these files.")
    histories: list[str] | None = Field(
        default=None,
        description="History sources read when the change touches a file under `glob` (added to the "
        "top level's `histories`), e.g. the bucket prefix that app's workers export to.",
    )

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.glob)


ENGINE_SECTIONS = ("temporal", "cadence", "stepfunctions", "airflow")
# Keys that act once for the whole check (one loader, one dev server, one rule pack, one outline
# strategy): a path section cannot set them.
TOP_LEVEL_ONLY = {
    "temporal": ("strategy", "address", "sdk_version", "dev_server", "deployment_name"),
    "cadence": ("strategy",),
    "stepfunctions": (),
    "airflow": (
        "load",
        "python",
        "dags_folder",
        "version",
        "bundle",
        "disable_bundle_versioning",
        "config_file",
        "strategy",
        "timeout",
    ),
}


class LimitsConfig(_Section):
    max_file_bytes: int = Field(
        default=1_000_000, gt=0, description="Files larger than this are not analysed."
    )
    max_history_bytes: int = Field(
        default=DEFAULT_MAX_HISTORY_BYTES,
        gt=0,
        description="History files larger than this are not read: each is a source error (fails closed).",
    )


class SynthesisConfig(_Section):
    mode: Literal["auto", "always", "off"] = Field(
        default="auto",
        description="`auto`: record in-flight executions of the base code for every changed Temporal "
        "or Cadence workflow that no production history covers, and replay them on head; `always`: "
        "for every changed workflow, production histories or not; `off`: never.",
    )
    executions: int = Field(
        default=12,
        ge=1,
        le=200,
        description="Executions run per workflow (`--synthesis-budget`): the branches explored "
        "(minimal and filled values, signals and updates delivered, the values its conditions compare "
        "against, each activity call failing).",
    )
    histories: int = Field(
        default=64, ge=1, le=2000, description="In-flight histories kept per changed workflow."
    )
    max_events: int = Field(
        default=1000, ge=10, le=50_000, description="An execution is stopped at this many history events."
    )
    seconds: float = Field(
        default=120.0, gt=0, le=3600, description="Wall-time budget of recording, for all workflows."
    )
    rollback: bool = Field(
        default=True,
        description="Record the build the change ships (head, or head with the outline) and replay it "
        "on base, to prove the rollback section. `false` saves that recording (about as long as the "
        "base's); the rollback section then says the rollback is NOT proven and gives the command "
        "that proves it.",
    )


class AckConfig(_Section):
    allowed_users: list[str] = Field(
        default_factory=list, description="Only these logins may `/inflight ack` (besides allowed_teams)."
    )
    allowed_teams: list[str] = Field(
        default_factory=list, description="Only members of these teams (`org/team-slug`) may ack."
    )
    forbid_self_ack: bool = Field(
        default=True,
        description="The pull request's author cannot ack its findings (set `false` for a team of one).",
    )


class GitHubConfig(_Section):
    analysis_workflows: list[str] = Field(
        default_factory=lambda: [
            ".github/workflows/inflight-guard.yml",
            ".github/workflows/inflight-guard-analyze.yml",
        ],
        description="The `pull_request` workflow files that run inflight-guard with replay. "
        "`/inflight replay` re-runs their run for the PR's head: the command job holds a write token "
        "and never runs PR code itself.",
    )


class ReportConfig(_Section):
    rules_url: str | None = Field(
        default=None,
        description="The URL of docs/rules.md of the inflight-guard you run: each rule id in a report links "
        "to `<url>#<id in lower case>` (and SARIF's helpUri). Default: the Action's own repository at "
        "its ref when run as the Action; no link on the CLI.",
    )


class Config(_Section):
    version: Literal[1] = 1
    rules: RulesConfig = Field(default_factory=RulesConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    stepfunctions: StepFunctionsConfig = Field(default_factory=StepFunctionsConfig)
    cadence: CadenceConfig = Field(default_factory=CadenceConfig)
    airflow: AirflowConfig = Field(default_factory=AirflowConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    ack: AckConfig = Field(default_factory=AckConfig)
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    drained: list[str] = Field(
        default_factory=list,
        description="Definitions declared fully drained: no execution in flight, so no version gate needed.",
    )
    histories: list[str] = Field(
        default_factory=list,
        description="History sources replayed when `--histories` (the action's `histories:`) gives none.",
    )
    on_error: Literal["fail", "pass"] = Field(
        default="fail", description="`fail`: a check the tool could not decide fails closed."
    )

    @model_validator(mode="before")
    @classmethod
    def _paths_as_sections(cls, data: Any) -> Any:
        """`paths: [{glob: ..., temporal: {...}}]` is `paths: {sections: [...]}`."""
        if isinstance(data, dict) and isinstance(data.get("paths"), list):
            return {**data, "paths": {"sections": data["paths"]}}
        return data

    def for_path(self, path: str | None) -> Config:
        """The config a definition in `path` is checked with: the first path section matching it,
        merged key by key over the top level (itself when none matches)."""
        if not path:
            return self
        section = next((s for s in self.paths.sections if s.matches(path)), None)
        if section is None:
            return self
        update: dict[str, BaseModel] = {}
        for name in ENGINE_SECTIONS:
            own = getattr(section, name)
            if own is not None:
                top = getattr(self, name)
                update[name] = top.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})
        return self.model_copy(update=update)


def line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """Return the line of the YAML node at path `loc` (the deepest one that exists)."""
    if root is None:
        return None
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(key)), None)
            if found is None:
                break
            node, line = found[1], found[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def duplicate_key(root: yaml.Node | None) -> tuple[str, int] | None:
    """Return (key, line) of the first key repeated in one mapping (YAML keeps the last silently)."""
    stack = [root] if root is not None else []
    walked: set[int] = set()  # a node shared through aliases is looked at once
    while stack:
        node = stack.pop()
        if id(node) in walked:
            continue
        walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(getattr(key, "value", ""))
                if name in seen:
                    return name, key.start_mark.line + 1
                seen.add(name)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def load_config(text: str, source: str) -> Config:
    """Return the validated config; any problem is one line naming `source` and the line."""
    try:
        root, data = yamlsafe.load(text)
    except yamlsafe.YamlUnbounded as exc:
        raise UserError(f"{source}:{exc.line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{source}{at}: invalid YAML: {problem}") from None
    repeated = duplicate_key(root)
    if repeated:
        raise UserError(f"{source}:{repeated[1]}: key '{repeated[0]}' appears twice")
    if data is None:
        return Config()
    if not isinstance(data, dict):
        raise UserError(f"{source}:1: the config must be a mapping (got {type(data).__name__})")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        if loc[:2] == ["paths", "sections"] and isinstance(data.get("paths"), list):
            loc = ["paths", *loc[2:]]  # written as the list itself
        line = line_of(root, loc)
        where = ".".join(str(p) for p in loc) or "(top level)"
        raise UserError(f"{source}:{line or 1}: {where}: {err['msg']}") from None
    listed = isinstance(data.get("paths"), list)
    for i, section in enumerate(config.paths.sections):
        for name in ENGINE_SECTIONS:
            own = getattr(section, name)
            for key in sorted(own.model_fields_set & set(TOP_LEVEL_ONLY[name])) if own else ():
                key_loc: list[int | str] = ["paths", i] if listed else ["paths", "sections", i]
                key_loc += [name, key]
                line = line_of(root, key_loc)
                where = ".".join(str(p) for p in key_loc)
                raise UserError(
                    f"{source}:{line or 1}: {where}: set it at the top level only (it applies to the whole check)"
                )
    return config
