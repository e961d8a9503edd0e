"""One harness (tests/fixture_harness.py) over tests/fixtures/cadence/<case>/.

Every case is also checked against the SDK itself: the base workflow runs on cadence-python-client's
decision engine (tests/cadence_recorder.py plays the server), and its complete history is replayed
against the head code with the replay runner's adapter. `sdk_replay: ok | nondeterminism` in
expected.yaml is what that replay must give (the static verdict is then not a guess about the SDK:
a case the SDK rejects must never be `safe`). Cases run their workflow with `args` (default `["o-1"]`)
and scripted activity results `results` (default `"<activity>-done"`).

`outline_fixes: true`: applying the outline makes the verdict non-breaking, and the base history
replays on the patched head.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from cadence_recorder import load_runner, record
from conftest import FIXTURES
from fixture_harness import apply_outline, expected, explain, run_case

CASES = sorted(p for p in (FIXTURES / "cadence").iterdir() if p.is_dir())
EXTRA = ("sdk_replay", "args", "results", "workflow")


RUNNER = load_runner()


def _definition(root: Path, type_name: str, tag: str) -> Any:
    """Import every module under `root` (fresh names) and return the SDK definition of `type_name`."""
    adapter = RUNNER.Adapter()
    _forget(root)
    sys.path.insert(0, str(root))
    try:
        for path in sorted(root.rglob("*.py")):
            name = f"{tag}_{path.relative_to(root).with_suffix('').as_posix().replace('/', '_')}"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            for value in vars(module).values():
                registry = getattr(value, "_workflows", None)
                if isinstance(registry, dict) and type_name in registry:
                    return registry[type_name]
            for value in vars(module).values():
                if isinstance(value, type) and value.__name__ == type_name:
                    return adapter.define(value, type_name)
    finally:
        sys.path.remove(str(root))
        _forget(root)
    raise AssertionError(f"no workflow type {type_name} under {root}")


def _forget(root: Path) -> None:
    """Drop modules imported from `root` (base and head define the same module names)."""
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(root)):
            del sys.modules[name]


def sdk_replay(base: Path, head: Path, want: dict[str, Any], tag: str) -> str:
    """Record the base workflow's history on the SDK's engine; replay it on head; return the outcome."""
    logging.disable(logging.CRITICAL)
    try:
        type_name = want.get("workflow", "OrderWorkflow")
        history = record(
            _definition(base, type_name, f"{tag}_base"),
            want.get("args", ["o-1"]),
            results=want.get("results", {}),
        )
        outcome, failure = RUNNER.Adapter().replay(_definition(head, type_name, f"{tag}_head"), history)
        return f"{outcome}: {failure}" if failure is not None and outcome != want["sdk_replay"] else outcome
    finally:
        logging.disable(logging.NOTSET)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    want = expected(case, extra_keys=EXTRA)
    repo, report = run_case(case, tmp_path, want)
    if "sdk_replay" in want:
        assert sdk_replay(case / "base", case / "head", want, case.name) == want["sdk_replay"]
        if want["sdk_replay"] != "ok":
            assert report.verdict.level.value != "safe", explain(report)
    if not report.plan.outline:
        return
    again = apply_outline(repo, report, case)
    if want.get("outline_fixes", False):
        assert again.verdict.level.value != "breaking", explain(again)
        patched = Path(repo.working_dir)
        if "sdk_replay" in want:
            assert (
                sdk_replay(case / "base", patched, {**want, "sdk_replay": "ok"}, f"{case.name}_fixed") == "ok"
            )
