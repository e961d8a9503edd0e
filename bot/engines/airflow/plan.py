"""The Airflow plan: how to ship a DAG change past its running DagRuns and its schedule.

Three ways, in the order the runbook offers them: pause the DAG and let running runs drain;
ship a parallel definition (a new dag_id, the old one kept until it drains); or rely on a
versioned DAG bundle (Airflow 3, GitDagBundle) that pins each run to its commit. Schedule,
catchup and start_date changes get a catchup-safe cutover. Commands are spelled for the
deployment's Airflow major version.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.config import Config
from bot.model import Finding, Plan, Severity

if TYPE_CHECKING:
    from bot.engines.airflow import AirflowContext

SCHEDULE_KINDS = (
    "airflow.schedule.changed",
    "airflow.catchup.enabled",
    "airflow.start_date.moved_earlier",
    "airflow.dag.added",
)


def _api(major: int) -> str:
    return "/api/v2" if major >= 3 else "/api/v1"


def _list_runs(dag: str, major: int) -> str:
    if major >= 3:
        return f"airflow dags list-runs {dag} --state running"
    return f"airflow dags list-runs -d {dag} --state running"


def build_plan(context: AirflowContext, findings: Sequence[Finding], config: Config) -> Plan:
    major = context.major
    pinned = context.pinned
    active = [f for f in findings if not f.suppressed and f.definition and f.change is not None]
    needs = [f for f in active if f.severity in (Severity.BREAKING, Severity.RISKY)]
    if not needs:
        return Plan(strategy="drain")
    dags = sorted({str(f.definition) for f in needs})
    structural = sorted(
        {
            str(f.definition)
            for f in needs
            if f.gate == "drain" or ".replay." in (f.change.kind if f.change else "")
        }
    )
    scheduled = sorted({str(f.definition) for f in needs if f.change and f.change.kind in SCHEDULE_KINDS})
    api = _api(major)
    url = config.airflow.url or "$AIRFLOW_URL"
    runbook: list[str] = []
    for dag in structural:
        if pinned.get(dag):
            continue
        runbook += [
            f"`{dag}`: pause it so no new run starts: `airflow dags pause {dag}` "
            f'(or `PATCH {url}{api}/dags/{dag}` with `{{"is_paused": true}}`).',
            f"Wait until no run of `{dag}` is running: `{_list_runs(dag, major)}` prints none "
            f"(or `GET {url}{api}/dags/{dag}/dagRuns?state=running` answers `total_entries: 0`); "
            "then add it to `drained:` in the config or re-run the check with `airflow.url` set.",
            f"Deploy the head commit, wait for the DAG processor to parse it "
            f"(`airflow dags list-import-errors` is empty; up to `min_serialized_dag_update_interval`, 30 s), "
            f"then `airflow dags unpause {dag}`.",
        ]
    if structural:
        runbook += [
            "Or ship a parallel definition: give the changed DAG a new dag_id (e.g. "
            + ", ".join(f"`{d}_v2`" for d in structural)
            + "), keep the old file unchanged until its running runs finish, pause the old DAG so it starts no "
            "new run, then delete it in a later pull request.",
            "Or rely on versioned bundles (Airflow ≥ 3.0): the deployment reads DAGs from a versioned "
            "GitDagBundle (`[dag_processor] dag_bundle_config_list`), `disable_bundle_versioning` is off in the "
            "config and on the DAG, and `GET .../dagRuns` shows a `bundle_version` on running runs; then set "
            "`airflow.bundle: git` in the inflight-guard config and each running run keeps its commit.",
        ]
    for dag in scheduled:
        runbook += [
            f"`{dag}` schedule cutover: pause it, deploy, and check `airflow dags next-execution {dag}` "
            "names the interval you expect before `airflow dags unpause`; keep `catchup=False` (or cap "
            "`max_active_runs`) so missed intervals are backfilled deliberately with "
            + ("`airflow backfill create`" if major >= 3 else "`airflow dags backfill`")
            + ", not all at once.",
        ]
    rollback = [
        "Redeploy the base commit. Runs pinned to a bundle version keep theirs; every unpinned running run is "
        "re-verified against the base DAG: tasks that exist only on head become `removed` in runs started on "
        "head, and tasks head removed come back as new, schedulable instances.",
        "Before rolling back, pause the affected DAGs and list their running runs (`"
        + "`, `".join(_list_runs(d, major) for d in dags[:3])
        + "`) so you know which runs saw head's structure; clear or mark them by hand if they must not mix.",
    ]
    canary = [
        "Deploy head to a staging Airflow with the same bundle setup, and trigger one run per changed DAG: "
        + ", ".join(f"`airflow dags trigger {d}`" for d in dags[:5])
        + f" (or `POST {url}{api}/dags/DAG_ID/dagRuns`).",
        "Export the production runs in flight and check them against head before merging: "
        f"`inflight-guard export airflow --url {url} "
        + " ".join(f"--dag-id {d}" for d in dags[:5])
        + " --out runs/` then `inflight-guard check --histories runs/`.",
    ]
    guardrails = [
        "Keep task_ids and dag_ids stable; rename with `task_display_name` / `dag_display_name`.",
        "Never compute start_date or schedule at parse time (`datetime.now()`).",
    ]
    return Plan(
        strategy="versioned-bundle" if all(pinned.get(d) for d in dags) else "drain",
        definitions=dags,
        outline=_outline(context, structural),
        runbook=runbook,
        rollback=rollback,
        canary=canary,
        guardrails=guardrails,
    )


def _outline(context: AirflowContext, dags: Sequence[str]) -> str:
    """A parallel definition as a patch: the head DAG moves to a new file under a new id, and the
    old file goes back to base, so running runs of the old id keep their structure until drained."""
    pairs = context.pairs
    texts = context.texts
    out: list[str] = []
    for dag_id in dags:
        old, new = pairs.get(dag_id, (None, None))
        if old is None or new is None or old.path != new.path:
            continue
        if sum(1 for b, h in pairs.values() if h is not None and h.path == new.path) > 1:
            continue  # the file defines other DAGs too: a copy would define them twice
        base_text, head_text = texts.get(("base", old.path)), texts.get(("head", new.path))
        if base_text is None or head_text is None:
            continue
        if new.dag_id != dag_id:  # renamed in head: it already is a new id, the old file comes back
            renamed, count = head_text, 1
        else:
            renamed, count = re.subn(rf"([\"']){re.escape(dag_id)}\1", rf"\g<1>{dag_id}_v2\g<1>", head_text)
        if not count:  # `@dag def etl(): ...; etl()`: the function name is the id
            renamed, count = re.subn(rf"\b{re.escape(dag_id)}\b(?=\s*\()", f"{dag_id}_v2", head_text)
        if not count:
            continue
        folder, _, name = new.path.rpartition("/")
        target = (
            f"{folder}/{name.removesuffix('.py')}_v2.py" if folder else f"{name.removesuffix('.py')}_v2.py"
        )
        if ("head", target) in texts:
            continue
        note = f"# parallel definition of `{dag_id}` (inflight-guard): delete `{new.path}` once `{dag_id}` has drained\n"
        out += difflib.unified_diff(
            head_text.splitlines(keepends=True),
            base_text.splitlines(keepends=True),
            f"a/{new.path}",
            f"b/{new.path}",
        )
        out += difflib.unified_diff(
            [], (note + renamed).splitlines(keepends=True), "/dev/null", f"b/{target}"
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)
