"""Cadence input-shape findings against the SDK's own answer.

The base code shared by the `input_*` fixture cases (tests/fixtures/cadence) runs on
cadence-python-client's decision engine (tests/cadence_recorder.py plays the server): an order starts
with an `OrderInput`, gets an `approve` signal carrying an `Approval`, charges (`execute_activity(
"charge", str, ChargeRequest(...))`) and ships. Its history goes through `check --histories`, whose
replay runner (bot/engines/cadence/runner.py, in a subprocess) replays it on each case's head; and the
`charge` input the base scheduled is decoded into head's class the way the SDK's activity worker
decodes a task (the activity definition's signature, the default data converter), as a new worker
would decode a task scheduled before the deploy. Replay fails exactly where the static check reports
a breaking workflow-input finding; the scheduled task fails to decode exactly where it reports a
breaking activity-input finding.
"""

from __future__ import annotations

import filecmp
import importlib
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cadence.data_converter import DefaultDataConverter
from cadence_recorder import load_runner, record, write
from conftest import FIXTURES
from fixture_harness import check, explain
from gitrepo import make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

CASES = FIXTURES / "cadence"
RECORDED_BASE = CASES / "input_run_field_renamed" / "base"
# OrderInput is a msgspec Struct with forbid_unknown_fields=True there.
STRUCT_BASE = CASES / "input_struct_forbid_field_removed" / "base"
SHARED_BASE = (
    "input_run_field_renamed",
    "input_run_field_removed",
    "input_run_field_retyped",
    "input_run_field_widened_int_to_float",
    "input_run_field_added_required",
    "input_run_field_added_optional",
    "input_run_field_renamed_with_default",
    "input_nested_field_renamed",
    "input_signal_field_renamed",
    "input_activity_field_renamed",
    "input_activity_field_removed",
    "input_fields_reordered",
    "input_class_moved_module",
)
STRUCT_CASES = ("input_struct_forbid_field_removed", "input_struct_forbid_renamed_with_default")
RUNNER = load_runner()


@contextmanager
def _app(root: Path) -> Iterator[dict[str, ModuleType]]:
    """Import the `app` package under `root` (base and head both name it `app`); forget it after."""

    def forget() -> None:
        for name in [n for n in sys.modules if n == "app" or n.startswith("app.")]:
            del sys.modules[name]

    forget()
    sys.path.insert(0, str(root))
    try:
        names = [
            ".".join(p.relative_to(root).with_suffix("").parts)
            for p in sorted(root.rglob("*.py"))
            if p.name != "__init__.py"
        ]
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(root))
        forget()


def _record(base: Path, folder: Path) -> Path:
    """One completed execution of `base`: started, approved by signal, charged, shipped."""
    logging.disable(logging.CRITICAL)
    try:
        with _app(base) as modules:
            models = modules["app.models"]
            order = models.OrderInput(
                order_id="A-1001",
                customer_email="ana@example.com",
                amount_cents=4200,
                shipping=models.Address("1 Quay St", "Lyon", "69002"),
            )
            history = record(
                modules["app.workflows"].reg.get_workflow("OrderWorkflow"),
                [order],
                results={"charge": "ch-A-1001", "ship": "sh-A-1001"},
                signals={1: [("approve", [models.Approval("ops-lead")])]},
            )
    finally:
        logging.disable(logging.NOTSET)
    folder.mkdir(parents=True)
    write(history, folder / "order.json")  # the Cadence CLI's export
    return folder


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _record(RECORDED_BASE, tmp_path_factory.mktemp("shapes") / "histories")


@pytest.fixture(scope="module")
def struct_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _record(STRUCT_BASE, tmp_path_factory.mktemp("struct") / "histories")


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def _scheduled_charge(folder: Path) -> list[Any]:
    """The `charge` activity tasks the base scheduled: their recorded input payloads."""
    parsed, _ = RUNNER.parse(RUNNER.Adapter(), (folder / "order.json").read_bytes())
    return [
        e.activity_task_scheduled_event_attributes.input
        for e in parsed.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "charge"
    ]


def _decode_on_head(head: Path, payload: Any) -> str | None:
    """Decode a scheduled `charge` task's input as head's activity worker would; the failure, if any."""
    with _app(head) as modules:
        (charge,) = [
            value
            for module in modules.values()
            for value in vars(module).values()
            if getattr(value, "name", None) == "charge" and hasattr(value, "signature")
        ]
        try:
            charge.signature.params_from_payload(DefaultDataConverter(), payload)
        except Exception as exc:
            return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    return None


def _replayed(repo: Path, case: Path, histories: Path) -> Report:
    """`check --histories` on the case: the product's runner replays the recorded history on head."""
    config = case / "config.yml"
    return run_check(
        CheckOptions(
            repo=repo,
            base="main",
            head="HEAD",
            config=config if config.exists() else None,
            replay=ReplayOptions(
                sources=[str(histories)], python=sys.executable, replay_all=True, cache=None
            ),
            synthesize="off",
        )
    )


def _agree(case: str, recorded_base: Path, histories: Path, tmp_path: Path) -> None:
    folder = CASES / case
    assert _same_tree(folder / "base", recorded_base), f"{case}: base differs from the recorded code"
    repo = Path(make_repo(tmp_path / "repo", folder / "base", folder / "head").working_dir)
    static = check(repo, folder)
    breaking = [
        f.change for f in static.findings if not f.suppressed and f.change and f.severity.value == "breaking"
    ]
    targets = {str(c.details.get("target")) for c in breaking}
    handlers = {str(c.details.get("handler")) for c in breaking}

    (result,) = _replayed(repo, folder, histories).replay
    payloads = _scheduled_charge(histories)
    assert len(payloads) == 1
    activity = _decode_on_head(folder / "head", payloads[0])

    assert (result.outcome != "ok") == ("workflow" in targets), (case, result, explain(static))
    assert (activity is not None) == ("activity" in targets), (case, activity, explain(static))
    if "run" in handlers:  # the run input is decoded first, before any decision is compared
        assert result.outcome == "error" and result.code == "ValidationError", result
    if "signal approve" in handlers:  # the SDK drops a signal it cannot decode; the replay diverges
        assert result.outcome == "nondeterminism" and result.event == "activity charge", result
    if activity is not None:
        assert activity.startswith("msgspec.ValidationError"), activity


@pytest.mark.parametrize("case", SHARED_BASE)
def test_replay_agrees_with_the_static_verdict(case: str, history: Path, tmp_path: Path) -> None:
    _agree(case, RECORDED_BASE, history, tmp_path)


@pytest.mark.parametrize("case", STRUCT_CASES)
def test_struct_replay_agrees_with_the_static_verdict(
    case: str, struct_history: Path, tmp_path: Path
) -> None:
    _agree(case, STRUCT_BASE, struct_history, tmp_path)


def test_the_fixture_set_is_covered() -> None:
    """Every Cadence `input_*` fixture is judged here against the SDK."""
    cases = {p.name for p in CASES.iterdir() if p.name.startswith("input_")}
    assert cases == set(SHARED_BASE) | set(STRUCT_CASES)


def test_bases_replay_and_decode_on_themselves(history: Path, struct_history: Path) -> None:
    for base, folder in ((RECORDED_BASE, history), (STRUCT_BASE, struct_history)):
        recorded = json.loads((folder / "order.json").read_text())
        assert recorded[-1]["eventType"] == "WorkflowExecutionCompleted"
        with _app(base) as modules:
            definition = modules["app.workflows"].reg.get_workflow("OrderWorkflow")
            adapter = RUNNER.Adapter()
            parsed, _ = RUNNER.parse(adapter, (folder / "order.json").read_bytes())
            assert adapter.replay(definition, parsed) == ("ok", None)
        assert _decode_on_head(base, _scheduled_charge(folder)[0]) is None
