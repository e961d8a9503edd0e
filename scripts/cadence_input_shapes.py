"""Measure what cadence-python-client does with data recorded in an old shape, decoded into a new class.

Each row encodes a value of the OLD class with the SDK's converter (as the client, the workflow or
the server recorded it) and decodes that payload into the NEW class the way the SDK decodes a run
input, a signal's arguments and an activity task's arguments: `FnSignature.params_from_payload`
with the converter (cadence/_internal/fn_signature.py; the workflow engine calls it for
WorkflowExecutionStarted and WorkflowExecutionSignaled, the activity worker for each task).
Prints a Markdown table (docs/cadence.md, "Inputs").

    python scripts/cadence_input_shapes.py
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import msgspec
import pydantic
from cadence._internal.fn_signature import FnSignature
from cadence.contrib.pydantic import PydanticDataConverter
from cadence.data_converter import DataConverter, DefaultDataConverter


def decode(new: type, old_value: Any, converter: DataConverter) -> str:
    """Encode `old_value`, decode it as the first parameter of a handler taking `new`."""

    async def handler(value: Any) -> None:
        return None

    handler.__annotations__ = {"value": new, "return": None}
    payload = converter.to_data([old_value])
    try:
        got = FnSignature.of(handler).params_from_payload(converter, payload)[0]
    except Exception as exc:
        first = str(exc).splitlines()[0] if isinstance(exc, msgspec.ValidationError) else _pydantic(exc)
        return f"fails: {type(exc).__name__} ({first})"
    return f"decodes: `{got!r}`"


def _pydantic(exc: Exception) -> str:
    lines = str(exc).splitlines()
    return f"{lines[1].strip()}: {lines[2].strip().split(' [')[0]}" if len(lines) > 2 else lines[0]


@dataclass
class Address:
    city: str


@dataclass
class Order:
    order_id: str
    email: str
    amount: int
    ship: Address


OLD = Order("A-1", "a@x", 4200, Address("Lyon"))


@dataclass
class Renamed:
    order_id: str
    customer_email: str
    amount: int
    ship: Address


@dataclass
class RenamedWithDefault:
    order_id: str
    amount: int
    ship: Address
    customer_email: str = ""


@dataclass
class Removed:
    order_id: str
    amount: int
    ship: Address


@dataclass
class AmountStr:
    order_id: str
    email: str
    amount: str
    ship: Address


@dataclass
class AmountFloat:
    order_id: str
    email: str
    amount: float
    ship: Address


@dataclass
class AmountUnion:
    order_id: str
    email: str | None
    amount: int | str
    ship: Address


@dataclass
class RequiredAdded:
    order_id: str
    email: str
    amount: int
    ship: Address
    currency: str


@dataclass
class OptionalAdded:
    order_id: str
    email: str
    amount: int
    ship: Address
    currency: str = "EUR"


@dataclass
class Reordered:
    ship: Address
    amount: int
    email: str
    order_id: str


@dataclass
class Town:
    town: str


@dataclass
class NestedRenamed:
    order_id: str
    email: str
    amount: int
    ship: Town


@dataclass
class CityInt:
    city: int


@dataclass
class NestedRetyped:
    order_id: str
    email: str
    amount: int
    ship: CityInt


@dataclass
class OrderV2:  # another name, another module: the JSON holds no class name
    order_id: str
    email: str
    amount: int
    ship: Address


@dataclass
class OldStrAmount:
    order_id: str
    email: str
    amount: str
    ship: Address


class StructOld(msgspec.Struct):
    order_id: str
    email: str


class StructRemoved(msgspec.Struct):
    order_id: str


class StructForbidRemoved(msgspec.Struct, forbid_unknown_fields=True):
    order_id: str


class ModelOld(pydantic.BaseModel):
    order_id: str
    email: str
    amount: int


class ModelRenamed(pydantic.BaseModel):
    order_id: str
    customer_email: str
    amount: int


class ModelRemoved(pydantic.BaseModel):
    order_id: str
    amount: int


class ModelForbidRemoved(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    order_id: str
    amount: int


class ModelAmountStr(pydantic.BaseModel):
    order_id: str
    email: str
    amount: str


class ModelOldStr(pydantic.BaseModel):
    order_id: str
    email: str
    amount: str


class ModelRequired(pydantic.BaseModel):
    order_id: str
    email: str
    amount: int
    currency: str


class ModelOptional(pydantic.BaseModel):
    order_id: str
    email: str
    amount: int
    currency: str = "EUR"


def rows() -> list[tuple[str, str, str]]:
    default, pyd = DefaultDataConverter(), PydanticDataConverter()
    model = ModelOld(order_id="A-1", email="a@x", amount=4200)
    cases: list[tuple[str, str, type, Any, DataConverter]] = [
        ("dataclass", "a field renamed (`email` → `customer_email`)", Renamed, OLD, default),
        ("dataclass", "renamed to a field with a default", RenamedWithDefault, OLD, default),
        ("dataclass", "a field removed", Removed, OLD, default),
        ("dataclass", "retyped `int` → `str`", AmountStr, OLD, default),
        ("dataclass", 'retyped `str` → `int` (recorded `"4200"`)', Order, OldStrAmount("A-1", "a", "4200", Address("L")), default),
        ("dataclass", "retyped `int` → `float`", AmountFloat, OLD, default),
        ("dataclass", "widened `str` → `str | None`, `int` → `int | str`", AmountUnion, OLD, default),
        ("dataclass", "a required field added", RequiredAdded, OLD, default),
        ("dataclass", "an optional field added", OptionalAdded, OLD, default),
        ("dataclass", "fields reordered", Reordered, OLD, default),
        ("dataclass", "class renamed / moved to another module", OrderV2, OLD, default),
        ("dataclass", "nested field renamed (`ship.city` → `ship.town`)", NestedRenamed, OLD, default),
        ("dataclass", "nested field retyped `str` → `int`", NestedRetyped, OLD, default),
        ("msgspec Struct", "a field removed", StructRemoved, StructOld(order_id="A-1", email="a@x"), default),
        ("msgspec Struct", "removed, `forbid_unknown_fields=True`", StructForbidRemoved, StructOld(order_id="A-1", email="a@x"), default),
        ("pydantic, default converter", "the same class", ModelOld, {"order_id": "A-1", "email": "a@x", "amount": 4200}, default),
        ("pydantic, PydanticDataConverter", "a field renamed", ModelRenamed, model, pyd),
        ("pydantic, PydanticDataConverter", "a field removed", ModelRemoved, model, pyd),
        ("pydantic, PydanticDataConverter", 'removed, `extra="forbid"`', ModelForbidRemoved, model, pyd),
        ("pydantic, PydanticDataConverter", "retyped `int` → `str`", ModelAmountStr, model, pyd),
        ("pydantic, PydanticDataConverter", 'retyped `str` → `int` (recorded `"4200"`)', ModelOld, ModelOldStr(order_id="A", email="e", amount="4200"), pyd),
        ("pydantic, PydanticDataConverter", 'retyped `str` → `int` (recorded `"n/a"`)', ModelOld, ModelOldStr(order_id="A", email="e", amount="n/a"), pyd),
        ("pydantic, PydanticDataConverter", "a required field added", ModelRequired, model, pyd),
        ("pydantic, PydanticDataConverter", "an optional field added", ModelOptional, model, pyd),
    ]  # fmt: skip
    return [(kind, change, decode(new, value, conv)) for kind, change, new, value, conv in cases]


def main() -> None:
    print(f"cadence-python-client {version('cadence-python-client')}, msgspec {version('msgspec')}")
    print(f"pydantic {version('pydantic')}\n")
    try:
        DefaultDataConverter().to_data([ModelOld(order_id="A-1", email="a@x", amount=1)])
        print("DefaultDataConverter encodes a pydantic model\n")
    except TypeError as exc:
        print(f"DefaultDataConverter cannot encode a pydantic model: {exc}\n")
    print("| Class | Change | Data recorded in the old shape |")
    print("|---|---|---|")
    for kind, change, outcome in rows():
        print(f"| {kind} | {change} | {outcome.replace('|', '&#124;')} |")


if __name__ == "__main__":
    main()
