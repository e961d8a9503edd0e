"""The Airflow plan: how to ship a DAG change past its running DagRuns and its schedule.

A drain that completes: running runs finish unpaused (a paused DAG's running runs are not
scheduled, so "pause, then wait until nothing runs" never ends); the deploy lands between runs,
or the DAG is paused only once none is running. A renamed task keeps its task_id and shows the new
name with `task_display_name` (the outline). A parallel `<dag>_v2` DAG only when the config asks
for it (`airflow.strategy: parallel`): it schedules the pipeline twice and starts a new history.
Versioned bundles (Airflow 3, GitDagBundle) pin each run to its commit. Schedule, catchup and
start_date changes get a cutover that says where the scheduler continues: after the DAG's last run.
Every `airflow` command and REST call is spelled for the deployment's major version and runs as
written (tests/test_airflow_plan_commands.py runs them on Airflow 2 and 3).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.config import Config
from bot.model import Finding, Plan, Severity
from bot.plan import join_steps

if TYPE_CHECKING:
    from bot.engines.airflow import AirflowContext
    from bot.engines.airflow.model import Dag

SCHEDULE_KINDS = (
    "airflow.schedule.changed",
    "airflow.catchup.enabled",
    "airflow.start_date.moved_earlier",
    "airflow.dag.added",
)

# Each rule of thumb, with the kinds of change it is about: a comment shows it only for those.
GUARDRAILS = [
    (
        "Keep task_ids and dag_ids stable; rename with `task_display_name` / `dag_display_name`.",
        ("airflow.task.renamed", "airflow.task.removed", "airflow.dag.renamed", "airflow.dag.removed"),
    ),
    (
        "Never compute start_date or schedule at parse time (`datetime.now()`).",
        ("airflow.dag.unstable", "airflow.schedule.changed", "airflow.start_date.moved_earlier"),
    ),
]


def _api(major: int) -> str:
    return "/api/v2" if major >= 3 else "/api/v1"


def _list_runs(dag: str, major: int) -> str:
    if major >= 3:
        return f"airflow dags list-runs {dag} --state running"
    return f"airflow dags list-runs -d {dag} --state running"


def _last_run_call(url: str, dag: str, major: int) -> str:
    # Airflow 3: a manual run has no logical date; the scheduler continues after the scheduled ones.
    query = "run_type=scheduled&order_by=-logical_date" if major >= 3 else "order_by=-execution_date"
    return f"`GET {url}{_api(major)}/dags/{dag}/dagRuns?{query}&limit=1`"


def _trigger_call(url: str, dag: str, major: int) -> str:
    # Airflow 3's trigger body requires `logical_date` (null: a run for now); v1 takes `{}`.
    body = '{"logical_date": null}' if major >= 3 else '{"conf": {}}'
    return f"`POST {url}{_api(major)}/dags/{dag}/dagRuns` with body `{body}`"


def _parse_wait(major: int, new_file: bool) -> str:
    if new_file:
        where = (
            "`[dag_processor] refresh_interval`, 300 s by default: "
            "`airflow config get-value dag_processor refresh_interval`"
            if major >= 3
            else "`[scheduler] dag_dir_list_interval`, 300 s by default: "
            "`airflow config get-value scheduler dag_dir_list_interval`"
        )
        return f"a new file is found only when the DAG folder is listed again ({where})"
    section = "dag_processor" if major >= 3 else "scheduler"
    return (
        f"a changed file is parsed again within `min_file_process_interval` (30 s by default: "
        f"`airflow config get-value {section} min_file_process_interval`)"
    )


def _drain(dag: str, major: int, url: str) -> list[str]:
    api = _api(major)
    return [
        f"`{dag}`: leave it unpaused while runs are running: the scheduler does not schedule the tasks of a "
        f"paused DAG's running runs, so they would never finish. See what runs: `{_list_runs(dag, major)}` "
        f"(or `GET {url}{api}/dags/{dag}/dagRuns?state=running`: `total_entries`).",
        f"`{dag}`: deploy between runs: once none is running, `airflow dags next-execution {dag}` says when the next "
        "run starts; deploy before it. If runs follow each other with no gap, pause only now that none is "
        f"running (`airflow dags pause {dag}`, or `PATCH {url}{api}/dags/{dag}` with body "
        '`{"is_paused": true}`), list the running runs again (one may have started meanwhile: then '
        f"`airflow dags unpause {dag}`, let it finish, and try again at the next gap), then deploy.",
        f"`{dag}`: after the deploy, {_parse_wait(major, False)}; `airflow dags list-import-errors` must not name the "
        f"file. Then `airflow dags unpause {dag}` if you paused it (`PATCH {url}{api}/dags/{dag}` with body "
        '`{"is_paused": false}`), and add it to `drained:` in the config or re-run the check with '
        "`airflow.url` set.",
    ]


def _cutover(dag: str, major: int, url: str, model: Dag | None, catchup: bool) -> list[str]:
    day = (model.start_date or "2024-01-01")[:10] if model is not None else "2024-01-01"
    backfill = (
        f"`airflow backfill create --dag-id {dag} --from-date {day} --to-date {day} --dry-run`"
        if major >= 3
        else f"`airflow dags backfill -s {day} -e {day} --dry-run {dag}`"
    )
    return [
        f"`{dag}` schedule cutover: the scheduler continues after the DAG's last run, not from its "
        f"start_date: find it with `airflow dags list-runs {'' if major >= 3 else '-d '}{dag}` "
        f"(or {_last_run_call(url, dag, major)}); with catchup on, every interval between that run and "
        "now is created at once when the new DAG is parsed — a DAG that was paused or whose scheduler "
        "was down for a week gets that week's runs in one burst, up to `max_active_runs` at a time.",
        f"`{dag}`: deploy, then check `airflow dags next-execution {dag}` names the interval you expect"
        + (" (catchup is on: keep `max_active_runs` low, or turn catchup off)" if catchup else "")
        + f". Backfill missed intervals deliberately: {backfill} lists the runs of one day "
        "(widen the dates, drop `--dry-run` to create them).",
    ]


def _by_url(dags: Sequence[str], url_of: Callable[[str], str]) -> dict[str, list[str]]:
    """DAG ids grouped by the Airflow they run on (a monorepo's apps may run on several)."""
    out: dict[str, list[str]] = {}
    for d in dags:
        out.setdefault(url_of(d), []).append(d)
    return out


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
    added = sorted({str(f.definition) for f in needs if f.change and f.change.kind == "airflow.dag.added"})
    renames = [
        f for f in needs if f.change is not None and f.change.kind == "airflow.task.renamed" and not f.gated
    ]
    parallel = config.airflow.strategy == "parallel"
    api = _api(major)
    url = config.airflow.url or "$AIRFLOW_URL"

    def url_of(dag_id: str) -> str:
        """The Airflow URL of a DAG: its path section's, else the top level's."""
        old, new = context.pairs.get(dag_id, (None, None))
        model = new or old
        own = config.for_path(model.path if model else None).airflow.url
        return own or url

    runbook: list[str] = []
    # One deploy for every DAG: the n-th steps of each together, shared words said once.
    runbook += join_steps([_drain(dag, major, url_of(dag)) for dag in structural if not pinned.get(dag)])
    for f in renames:
        details = f.change.details if f.change else {}
        runbook.append(
            f"Or keep the task_id: `{details.get('new')}` of `{f.definition}` goes back to "
            f'`task_id="{details.get("old")}"` with `task_display_name="{details.get("new")}"` (the outline): '
            "the UI shows the new name and running runs keep their instance."
        )
    if structural and parallel:
        runbook.append(
            "Or ship a parallel definition (`airflow.strategy: parallel`, the outline): the changed DAG under "
            "a new dag_id ("
            + ", ".join(f"`{d}_v2`" for d in structural)
            + "), the old file unchanged until its running runs finish. Both are scheduled meanwhile — pause "
            "one of them for each interval, or the pipeline runs twice — and the new id starts with no "
            "history (`depends_on_past`, catchup and XComs start over); delete the old DAG in a later pull "
            "request."
        )
    if structural:
        runbook.append(
            "Or rely on versioned bundles (Airflow ≥ 3.0): the deployment reads DAGs from a GitDagBundle "
            "(`[dag_processor] dag_bundle_config_list`), `disable_bundle_versioning` is off in the config and "
            f"on the DAG, and `GET {url}{api}/dags/~/dagRuns?state=running` shows a `bundle_version` on running "
            "runs; then commit that `airflow.cfg` (`airflow.config_file`) or set `airflow.bundle: git`, and "
            "each running run keeps its commit."
        )
    for dag in scheduled:
        old, new = context.pairs.get(dag, (None, None))
        model = new or old
        if dag in added:
            runbook.append(
                f"New DAG `{dag}`: after the deploy, {_parse_wait(major, True)}; it starts paused only with "
                "`dags_are_paused_at_creation` (the default), then `airflow dags unpause "
                f"{dag}`"
                + (
                    " creates every interval since its start_date (catchup is on)."
                    if model and model.catchup
                    else "."
                )
            )
            continue
        runbook += _cutover(dag, major, url_of(dag), model, bool(model and model.catchup))
    rollback = [
        "Redeploy the base commit. Runs pinned to a bundle version keep theirs; every unpinned running run is "
        "re-verified against the base DAG: tasks that exist only on head become `removed` in runs started on "
        "head, and tasks head removed come back as new, schedulable instances.",
        "Before rolling back, list the affected DAGs' running runs (`"
        + "`, `".join(_list_runs(d, major) for d in dags[:3])
        + "`) so you know which runs saw head's structure; clear or mark them by hand if they must not mix.",
    ]
    canary = [
        "Deploy head to a staging Airflow with the same bundle setup, and trigger one run per changed DAG: "
        + ", ".join(f"`airflow dags trigger {d}`" for d in dags[:5])
        + " (or "
        + ", ".join(_trigger_call(url_of(d), d, major) for d in dags[:5])
        + ").",
        "Export the production runs in flight and check them against head before merging: "
        + ", ".join(
            f"`inflight-guard export airflow --url {server} "
            + " ".join(f"--dag-id {d}" for d in ids)
            + " --out runs/`"
            for server, ids in _by_url(dags[:5], url_of).items()
        )
        + " then `inflight-guard check --histories runs/`.",
    ]
    kinds = {f.change.kind for f in findings if f.change is not None and not f.suppressed}
    guardrails = [
        text
        for text, about in GUARDRAILS
        if any(k == a or k.startswith(a + ".") for k in kinds for a in about)
    ]
    outline = _outline(context, structural) if parallel else _display_names(context, renames)
    return Plan(
        strategy="versioned-bundle"
        if all(pinned.get(d) for d in dags)
        else ("parallel" if parallel and outline else "drain"),
        definitions=dags,
        outline=outline,
        runbook=runbook,
        rollback=rollback,
        canary=canary,
        guardrails=guardrails,
    )


def _display_names(context: AirflowContext, renames: Sequence[Finding]) -> str:
    """A renamed task back to its old task_id, the new name as `task_display_name`: running runs keep
    their instance, the UI shows the new name. Only where the head file names the new id once."""
    edits: dict[str, str] = {}
    for f in renames:
        details = f.change.details if f.change else {}
        old_id, new_id = str(details.get("old")), str(details.get("new"))
        _, head_dag = context.pairs.get(str(f.definition), (None, None))
        if head_dag is None or "." in new_id or "." in old_id:  # a task group prefix is not in the source
            continue
        path = head_dag.path
        text = edits.get(path, context.texts.get(("head", path)))
        if text is None:
            continue
        pattern = re.compile(rf"task_id\s*=\s*([\"']){re.escape(new_id)}\1")
        found = pattern.findall(text)
        if len(found) == 1:
            text = pattern.sub(f'task_id="{old_id}", task_display_name="{new_id}"', text)
        else:  # `@task def new_id(...)`: the function name is the id
            deco = re.compile(rf"^(\s*)@task\s*\n(\s*)(async\s+)?def\s+{re.escape(new_id)}\s*\(", re.M)
            if len(deco.findall(text)) != 1:
                continue
            m = deco.search(text)
            assert m is not None
            text = (
                f'{text[: m.start()]}{m.group(1)}@task(task_id="{old_id}", task_display_name="{new_id}")\n'
                f"{m.group(2)}{m.group(3) or ''}def {new_id}({text[m.end() :]}"
            )
        edits[path] = text
    out: list[str] = []
    for path, text in sorted(edits.items()):
        before = context.texts.get(("head", path), "")
        out += difflib.unified_diff(
            before.splitlines(keepends=True), text.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


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
