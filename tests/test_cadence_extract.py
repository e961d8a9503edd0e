"""The Cadence extractor on the forms of version gates and decisions the fixtures do not all spell out."""

from __future__ import annotations

from pathlib import Path

from gitrepo import make_repo

from bot.engines.cadence.extract import extract_module
from bot.engines.python.pyast import Project
from bot.model import CommandKind, WorkflowModel
from bot.repo import SourceTree

HEADER = """from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
T = timedelta(minutes=1)


@reg.activity(name="fraud_check")
async def check_fraud(order: str) -> str:
    return order

"""


def model(tmp_path: Path, body: str) -> WorkflowModel:
    repo = make_repo(tmp_path / "repo", {"wf.py": HEADER + body}, {"wf.py": HEADER + body})
    tree = SourceTree(repo, repo.head.commit, "head")
    (found,) = extract_module(Project(tree), "wf.py")
    return found


def gates(m: WorkflowModel) -> list[tuple[str, str, str | None]]:
    return [(c.kind.value, c.name, c.gate.branch if c.gate else None) for c in m.sequences["run"]]


def test_every_spelling_of_the_version_test(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        """@reg.workflow
class OrderWorkflow:
    @workflow.run
    async def run(self, order: str) -> str:
        self.fraud = workflow.get_version("fraud", workflow.DEFAULT_VERSION, 1)
        v = workflow.get_version("ship", -1, 2)
        if self.fraud >= 1:
            await check_fraud.with_options(start_to_close_timeout=T).execute(order)
        if v != workflow.DEFAULT_VERSION:
            await workflow.execute_activity("ship_fast", str, order)
        else:
            await workflow.execute_activity("ship", str, order)
        if workflow.DEFAULT_VERSION == workflow.get_version("notify", workflow.DEFAULT_VERSION, 1):
            await workflow.sleep(T)
        return order
""",
    )
    assert found.id == "OrderWorkflow"
    assert gates(found) == [
        ("patch", "fraud", None),
        ("patch", "ship", None),
        ("activity", "fraud_check", "new"),
        ("activity", "ship_fast", "new"),
        ("activity", "ship", "old"),
        ("patch", "notify", None),
        ("timer", "timer", "old"),
    ]
    options = found.sequences["run"][2].options
    assert options == {"start_to_close_timeout": "T"}


def test_min_supported_above_default_is_a_raised_gate_and_truthiness_is_no_gate(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        """@reg.workflow(name="Orders")
class OrderWorkflow:
    @workflow.run
    async def run(self, order: str) -> str:
        v = workflow.get_version("fraud", 1, 1)
        if v:  # -1 is truthy: not a version test
            await workflow.execute_activity("charge", str, order)
        return order
""",
    )
    assert found.id == "Orders"
    assert gates(found) == [("deprecate_patch", "fraud", None), ("activity", "charge", None)]
    assert found.sequences["run"][1].guard == ("if v",)


def test_children_signals_side_effects_and_handlers(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        """@reg.workflow(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.run
    async def run(self, order: str) -> str:
        stamp = workflow.side_effect(lambda: 1, int)
        child = await workflow.start_child_workflow("Payment", str, order)
        await child.signal("capture", stamp)
        await workflow.signal_external_workflow("audit-1", "seen", order)
        workflow.upsert_search_attributes({"Stage": "paid"})
        return await child

    @workflow.signal(name="cancel")
    async def cancel(self) -> None:
        await workflow.execute_activity("refund", str, "x")

    @workflow.query(name="status")
    def status(self) -> str:
        return "ok"
""",
    )
    assert [(c.kind, c.name) for c in found.sequences["run"]] == [
        (CommandKind.SIDE_EFFECT, "side_effect"),
        (CommandKind.CHILD_WORKFLOW, "Payment"),
        (CommandKind.SIGNAL_EXTERNAL, "capture"),
        (CommandKind.SIGNAL_EXTERNAL, "seen"),
        (CommandKind.UPSERT_SEARCH_ATTRIBUTES, "search_attributes"),
    ]
    assert [(c.kind, c.name) for c in found.sequences["signal:cancel"]] == [(CommandKind.ACTIVITY, "refund")]
    assert {(h.kind, h.name) for h in found.handlers} == {("signal", "cancel"), ("query", "status")}


def test_a_class_without_a_run_method_or_registration_is_not_a_workflow(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"wf.py": HEADER + "class Helper:\n    async def run(self) -> None: ...\n"},
        {"wf.py": HEADER + "@reg.workflow\nclass NoRun:\n    async def go(self) -> None: ...\n"},
    )
    assert extract_module(Project(SourceTree(repo, repo.head.commit, "head")), "wf.py") == []
