"""Input shapes on the forms the fixtures do not all spell out: cycles, depth, inheritance, defaults,
activity methods, a renamed nested parent."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES
from fixture_harness import check
from gitrepo import make_repo

from bot.engines.python.diff import diff_pair
from bot.engines.python.inputs import MAX_DEPTH
from bot.engines.python.pyast import Project
from bot.engines.temporal.extract import extract_module
from bot.model import InputShape, WorkflowModel
from bot.repo import SourceTree

WORKFLOW = """
from datetime import timedelta

from temporalio import activity, workflow

from models import Order


class Billing:
    @activity.defn(name="charge")
    async def charge(self, order: Order) -> None:
        return None


@workflow.defn
class Checkout:
    @workflow.run
    async def run(self, order: Order, note: str = "") -> None:
        await workflow.execute_activity_method(Billing.charge, order, start_to_close_timeout=timedelta(seconds=5))
"""


def model(tmp_path: Path, models: str, name: str = "repo") -> WorkflowModel:
    files = {"wf.py": WORKFLOW, "models.py": models}
    repo = make_repo(tmp_path / name, files, files)
    (found,) = extract_module(Project(SourceTree(repo, repo.head.commit, "head")), "wf.py")
    return found


def shape(m: WorkflowModel, handler: str) -> InputShape:
    (found,) = [s for s in m.inputs if s.handler == handler]
    return found


def test_cycles_end_and_fields_are_kept(tmp_path: Path) -> None:
    m = model(
        tmp_path,
        """
from __future__ import annotations
from dataclasses import dataclass


@dataclass
class Customer:
    name: str
    referrer: Customer | None = None
    last_order: Order | None = None


@dataclass
class Order:
    order_id: str
    customer: Customer
""",
    )
    paths = [f.path for f in shape(m, "run").fields]
    assert paths == [
        "order_id",
        "customer",
        "customer.name",
        "customer.referrer",
        "customer.last_order",
    ]
    referrer = next(f for f in shape(m, "run").fields if f.path == "customer.referrer")
    assert referrer.has_default and not referrer.nested and referrer.annotation == "Customer | None"


def test_nesting_stops_at_the_depth_limit(tmp_path: Path) -> None:
    levels = MAX_DEPTH + 4
    classes = "\n".join(
        f"@dataclass\nclass Level{i}:\n    value: int\n    inner: Level{i + 1}\n" for i in range(levels)
    )
    models = (
        "from __future__ import annotations\nfrom dataclasses import dataclass\n\n"
        + classes
        + f"\n@dataclass\nclass Level{levels}:\n    value: int\n\nOrder = Level0\n"
    )
    m = model(tmp_path, models.replace("Order = Level0\n", "\n@dataclass\nclass Order(Level0):\n    pass\n"))
    depth = max(f.path.count(".") for f in shape(m, "run").fields)
    assert 0 < depth < MAX_DEPTH


def test_inherited_fields_defaults_and_classvars(tmp_path: Path) -> None:
    m = model(
        tmp_path,
        """
from dataclasses import dataclass, field
from typing import ClassVar

import pydantic


class Line(pydantic.BaseModel):
    sku: str
    quantity: int = pydantic.Field(1, ge=1)
    note: str = pydantic.Field(...)


class GiftLine(Line):
    message: str = ""


@dataclass
class Base:
    order_id: str
    lines: list[GiftLine] = field(default_factory=list)


@dataclass
class Order(Base):
    KIND: ClassVar[str] = "order"
    priority: int = field(default=0)
    order_id: str = "new"
""",
    )
    fields = {f.path: f.has_default for f in shape(m, "run").fields}
    assert fields == {
        "order_id": True,  # redefined with a default in the subclass
        "lines": True,
        "lines.sku": False,
        "lines.quantity": True,
        "lines.note": False,
        "lines.message": True,
        "priority": True,
    }


def test_activity_method_input_and_plain_parameters(tmp_path: Path) -> None:
    m = model(
        tmp_path, "from dataclasses import dataclass\n\n\n@dataclass\nclass Order:\n    order_id: str\n"
    )
    assert {(s.handler, s.position, s.class_name) for s in m.inputs} == {
        ("run", 0, "Order"),
        ("activity charge", 0, "Order"),
    }


def test_renamed_nested_parent_is_one_rename(tmp_path: Path) -> None:
    models = """
from dataclasses import dataclass


@dataclass
class Address:
    street: str
    city: str


@dataclass
class Order:
    order_id: str
    shipping: Address
"""
    base = model(tmp_path, models, "base")
    head = model(tmp_path, models.replace("shipping: Address", "delivery: Address"), "head")
    facts = [
        (c.kind, c.details["handler"], c.details["field"], c.details.get("before"))
        for c in diff_pair(base, head)
    ]
    assert facts == [
        ("temporal.input.field_renamed", "run", "delivery", "shipping"),
        ("temporal.input.field_renamed", "activity charge", "delivery", "shipping"),
    ]


def test_literal_strings_are_not_nested_classes(tmp_path: Path) -> None:
    m = model(
        tmp_path,
        """
from dataclasses import dataclass
from typing import Annotated, Literal


@dataclass
class Parcel:
    weight_grams: int


@dataclass
class Order:
    kind: Literal["Parcel", "Letter"]
    parcels: "list[Parcel]"
    main: Annotated[Parcel, "Order"]
""",
    )
    nested = {f.path: f.nested for f in shape(m, "run").fields}
    assert nested == {
        "kind": False,
        "parcels": True,
        "parcels.weight_grams": False,
        "main": True,
        "main.weight_grams": False,
    }


def plan_of(case: str, tmp_path: Path) -> tuple[list[str], list[str]]:
    folder = FIXTURES / "temporal" / case
    repo = make_repo(tmp_path / case, folder / "base", folder / "head")
    report = check(Path(repo.working_dir), folder)
    return report.plan.runbook, report.plan.rollback


def test_plan_steps_for_input_changes(tmp_path: Path) -> None:
    runbook, rollback = plan_of("input_run_field_renamed", tmp_path)
    assert any("a `patched()` gate cannot help" in s for s in runbook), runbook
    assert not any("plain revert is safe" in s for s in rollback), rollback
    assert any("StartTime >= '${" in s for s in rollback), rollback  # bounded by the deploy time

    runbook, rollback = plan_of("input_activity_field_renamed", tmp_path)
    assert any("keep the old fields of the activity input" in s for s in runbook), runbook
    assert not any("fail their workflow task" in s for s in rollback), rollback  # activity tasks fail

    runbook, rollback = plan_of("input_fields_reordered", tmp_path)
    assert not any("input" in s for s in runbook + rollback), (runbook, rollback)


def test_refactors_that_keep_the_wire_shape_are_quiet(tmp_path: Path) -> None:
    before = """
from dataclasses import KW_ONLY, InitVar, dataclass, field
from pydantic import BaseModel, Field


@dataclass
class Order:
    order_id: str
    note: "int | None"
    customer: "Customer"
    _: KW_ONLY
    seed: InitVar[int] = 0
    cache: dict = field(default_factory=dict, init=False)


class Customer(BaseModel):
    customer_id: str = Field(alias="customerId")
"""
    after = (
        before.replace('note: "int | None"', "note: int | None")  # the quotes dropped
        .replace("    _: KW_ONLY\n", "")  # no keyword-only marker
        .replace("seed: InitVar[int] = 0", "salt: InitVar[int] = 0")  # an init-only value
        .replace(
            "cache: dict = field(default_factory=dict, init=False)",
            "memo: dict = field(default_factory=dict, init=False)",
        )
        .replace("customer_id: str = Field", "id: str = Field")  # same alias on the wire
    )
    assert after != before
    base = model(tmp_path, before, "base")
    head = model(tmp_path, after, "head")
    assert diff_pair(base, head) == []
    assert [f.path for f in shape(base, "run").fields] == [
        "order_id",
        "note",
        "customer",
        "customer.customerId",
    ]
