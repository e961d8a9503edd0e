"""Cadence input shapes on the forms the fixtures do not all spell out: where an activity's function is
found, classes that refuse unknown fields, msgspec's wire names, and which retypes msgspec decodes
(each answer checked against the SDK's converter)."""

from __future__ import annotations

import datetime
import decimal
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cadence.data_converter import DefaultDataConverter
from conftest import FIXTURES
from fixture_harness import check
from gitrepo import make_repo

from bot.engines.cadence.extract import extract_module
from bot.engines.python.dialect import CADENCE, TEMPORAL
from bot.engines.python.diff import diff_pair
from bot.engines.python.pyast import Project
from bot.model import InputShape, WorkflowModel
from bot.repo import SourceTree

WORKFLOW = """from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

from orders.acts import refund
from orders.models import Order

reg = Registry()
T = timedelta(minutes=1)


@reg.workflow(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.signal(name="amend")
    async def amend(self, order: Order) -> None:
        self.order = order

    @workflow.run
    async def run(self, order: Order) -> str:
        await workflow.execute_activity("charge", str, order, schedule_to_close_timeout=T)
        await workflow.execute_activity("notify", str, order, schedule_to_close_timeout=T)
        await refund.with_options(schedule_to_close_timeout=T).execute(order)
        return await workflow.execute_activity("ship", str, order, schedule_to_close_timeout=T)
"""
# Not imported by the workflow: found by the activity type it registers.
BILLING = """from cadence import activity

from orders.models import Order


@activity.defn(name="charge")
async def charge_card(order: Order) -> str:
    return order.order_id


@activity.defn
async def notify(order: Order) -> str:
    return order.order_id
"""
ACTS = """from cadence.worker import Registry

from orders.models import Order

acts = Registry()


@acts.activity(name="refund")
async def refund(order: Order) -> str:
    return order.order_id
"""
# `ship` is registered twice, at the same distance from the workflow: neither is taken.
SHIP_ORDER = """from cadence import activity

from orders.models import Order


@activity.defn(name="ship")
async def ship(order: Order) -> str:
    return order.order_id
"""
SHIP_ID = """from cadence import activity


@activity.defn(name="ship")
async def ship(order_id: str) -> str:
    return order_id
"""
MODELS = """from dataclasses import dataclass


@dataclass
class Order:
    order_id: str
"""


def model(tmp_path: Path, models: str = MODELS, name: str = "repo", **extra: str) -> WorkflowModel:
    files = {
        "orders/__init__.py": "",
        "orders/workflows.py": WORKFLOW,
        "orders/billing.py": BILLING,
        "orders/acts.py": ACTS,
        "orders/models.py": models,
        "orders/ship_a.py": SHIP_ORDER,
        "orders/ship_b.py": SHIP_ID,
        **extra,
    }
    repo = make_repo(tmp_path / name, files, files)
    (found,) = extract_module(Project(SourceTree(repo, repo.head.commit, "head")), "orders/workflows.py")
    return found


def shape(m: WorkflowModel, handler: str) -> InputShape:
    (found,) = [s for s in m.inputs if s.handler == handler]
    return found


def test_run_signal_and_activity_inputs_are_found(tmp_path: Path) -> None:
    m = model(tmp_path)
    assert {s.handler for s in m.inputs} == {
        "run",
        "signal amend",
        "activity charge",  # by name: `@activity.defn(name="charge")` in a file the workflow never imports
        "activity notify",  # by name: `@activity.defn` on a function called notify
        "activity refund",  # by reference: `refund.with_options(...).execute(...)`, `@acts.activity(...)`
    }  # `ship` is registered twice, equally near: which one runs is the workers' choice, not the code's


def test_the_nearest_registration_wins(tmp_path: Path) -> None:
    m = model(tmp_path, name="nearest", **{"orders/ship_b.py": "", "shared/ship.py": SHIP_ID})
    assert shape(m, "activity ship").class_name == "Order"  # orders/ship_a.py, beside the workflow
    m = model(
        tmp_path, name="anywhere", **{"orders/ship_a.py": "", "orders/ship_b.py": "", "a/b/c.py": SHIP_ORDER}
    )
    assert shape(m, "activity ship").class_name == "Order"  # the only registration, however far


CLOSED = {
    "msgspec forbid_unknown_fields": """import msgspec


class Order(msgspec.Struct, forbid_unknown_fields=True):
    order_id: str
""",
    "inherited from a Struct base": """import msgspec


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Order(Strict):
    order_id: str
""",
    "pydantic ConfigDict": """from pydantic import BaseModel, ConfigDict


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
""",
    "pydantic dict config": """from pydantic import BaseModel


class Order(BaseModel):
    model_config = {"extra": "forbid"}
    order_id: str
""",
    "pydantic class Config": """from pydantic import BaseModel, Extra


class Order(BaseModel):
    order_id: str

    class Config:
        extra = Extra.forbid
""",
    "pydantic class keyword": """from pydantic import BaseModel


class Order(BaseModel, extra="forbid"):
    order_id: str
""",
}
OPEN = {
    "dataclass": MODELS,
    "plain Struct": "import msgspec\n\n\nclass Order(msgspec.Struct):\n    order_id: str\n",
    "subclass says ignore": """from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Order(Strict):
    model_config = ConfigDict(extra="ignore")
    order_id: str
""",
}


@pytest.mark.parametrize("source", list(CLOSED.values()), ids=list(CLOSED))
def test_classes_that_refuse_unknown_fields(source: str, tmp_path: Path) -> None:
    assert shape(model(tmp_path, source), "run").closed


@pytest.mark.parametrize("source", list(OPEN.values()), ids=list(OPEN))
def test_classes_that_drop_unknown_fields(source: str, tmp_path: Path) -> None:
    assert not shape(model(tmp_path, source), "run").closed


def test_removal_from_a_closed_nested_class_does_not_decode(tmp_path: Path) -> None:
    models = """from dataclasses import dataclass

import msgspec


class Address(msgspec.Struct, forbid_unknown_fields=True):
    city: str
    postal_code: str


@dataclass
class Order:
    order_id: str
    shipping: Address
    note: str = ""
"""
    base = model(tmp_path, models, "base")
    head = model(
        tmp_path, models.replace("    postal_code: str\n", "").replace('    note: str = ""\n', ""), "head"
    )
    facts = {
        (c.details["handler"], c.details["field"], c.details["old_values_decode"])
        for c in diff_pair(base, head)
        if c.kind == "cadence.input.field_removed"
    }
    assert ("run", "shipping.postal_code", False) in facts  # the Struct refuses the recorded key
    assert ("run", "note", True) in facts  # the dataclass drops it


def test_msgspec_wire_names_follow_field_name(tmp_path: Path) -> None:
    models = """import msgspec


class Order(msgspec.Struct):
    order_id: str = msgspec.field(name="orderId")
"""
    base = model(tmp_path, models, "base")
    head = model(tmp_path, models.replace("order_id: str", "id: str"), "head")
    assert [f.path for f in shape(base, "run").fields] == ["orderId"]
    assert diff_pair(base, head) == []  # the attribute renamed, the wire name kept


# (recorded type, new type as written, the new type, a value recorded with the old type)
RETYPES: list[tuple[str, str, Any, Any]] = [
    ("int", "float", float, 3),
    ("int", "float | None", float | None, 3),
    ("int", "decimal.Decimal", decimal.Decimal, 3),
    ("list[int]", "tuple[int, ...]", tuple[int, ...], [1, 2]),
    ("list[int]", "frozenset[float]", frozenset[float], [1, 2]),
    ("tuple[int, ...]", "list[int | None]", list[int | None], (1, 2)),
    ("dict[str, int]", "dict[str, float]", dict[str, float], {"a": 1}),
    ("datetime.datetime", "str", str, datetime.datetime(2026, 1, 2, 3, 4, 5)),
    ("uuid.UUID", "str", str, uuid.UUID(int=7)),
    ("str", "str | None", str | None, "x"),
    ("int", "str", str, 3),
    ("str", "int", int, "42"),
    ("float", "int", int, 42.0),
    ("int", "bool", bool, 1),
    ("bool", "int", int, True),
    ("str | None", "str", str, None),
    ("decimal.Decimal", "float", float, decimal.Decimal("1.5")),
    ("tuple[int, str]", "list[int]", list[int], (1, "a")),
    ("list[str]", "list[int]", list[int], ["a"]),
    ("dict[str, str]", "dict[str, int]", dict[str, int], {"a": "b"}),
]


@pytest.mark.parametrize(
    ("before", "after", "target", "value"), RETYPES, ids=[f"{b} -> {a}" for b, a, _, _ in RETYPES]
)
def test_cadence_retypes_decode_as_the_sdk_decodes(before: str, after: str, target: Any, value: Any) -> None:
    converter = DefaultDataConverter()
    try:
        converter.from_data(converter.to_data([value]), [target])
        decodes = True
    except msgspec.ValidationError:
        decodes = False
    assert CADENCE.decodes(before, after) == decodes


def test_temporal_keeps_its_own_widening() -> None:
    assert TEMPORAL.decodes("str", "str | None")
    assert not TEMPORAL.decodes("int", "float")  # not measured for Temporal's converter: stays breaking


def plan_of(case: str, tmp_path: Path) -> tuple[list[str], list[str]]:
    folder = FIXTURES / "cadence" / case
    repo = make_repo(tmp_path / case, folder / "base", folder / "head")
    report = check(Path(repo.working_dir), folder)
    return report.plan.runbook, report.plan.rollback


def test_plan_steps_for_input_changes(tmp_path: Path) -> None:
    runbook, rollback = plan_of("input_run_field_renamed", tmp_path)
    assert any("a `get_version` gate cannot help" in s for s in runbook), runbook
    assert not any("plain revert is safe" in s for s in rollback), rollback
    assert any("StartTime >= '${DEPLOYED_AT:?" in s for s in rollback), rollback
    assert any("fail their decision task" in s for s in rollback), rollback

    runbook, rollback = plan_of("input_activity_field_renamed", tmp_path)
    assert any("keep the old fields of the activity input" in s for s in runbook), runbook
    assert not any("fail their decision task" in s for s in rollback), rollback  # activity tasks fail

    runbook, rollback = plan_of("input_fields_reordered", tmp_path)
    assert not any("input" in s for s in runbook + rollback), (runbook, rollback)
