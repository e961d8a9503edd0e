"""Per-path config sections (monorepos): a definition takes the first section matching its file,
merged over the top level; end to end, each app's runbook commands name its own namespace and
task queue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gitrepo import make_repo

from bot.config import load_config
from bot.errors import UserError
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


def test_each_app_s_runbook_names_its_own_namespace_and_task_queue(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", _apps(""), _apps(INSERTED))
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    changed = {d.id for d in report.definitions if d.status == "changed"}
    assert changed == {"BillingWorkflow", "ShippingWorkflow", "ToolsWorkflow"}
    steps = [*report.plan.runbook, *report.plan.rollback, *report.plan.canary]
    namespaces: dict[str, set[str]] = {}
    queues: dict[str, set[str]] = {}
    for step in steps:
        owner = re.match(r"`(\w+)`: ", step)
        assert owner, step  # every step says which workflow it is for
        namespaces.setdefault(owner.group(1), set()).update(re.findall(r"--namespace (\S+)", step))
        queues.setdefault(owner.group(1), set()).update(re.findall(r"polling `([^`]+)`", step))
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
        owner = re.match(r"`(\w+)`: ", step)
        name = owner.group(1) if owner else "(note)"
        domains.setdefault(name, set()).update(re.findall(r"cadence --do (\S+)", step))
        lists.setdefault(name, set()).update(re.findall(r"polling `([^`]+)`", step))
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
