"""The plan says the right thing for each kind of change (fixture repos, real pipeline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES
from gitrepo import make_repo

from bot.model import Plan
from bot.pipeline import CheckOptions, run_check


def _plan(case: str, tmp_path: Path) -> Plan:
    root = FIXTURES / "temporal" / case
    base = root / "base" if (root / "base").is_dir() else None
    repo = make_repo(tmp_path / "repo", base, root / "head")
    return run_check(CheckOptions(repo=Path(repo.working_dir), base="main")).plan


def test_gate_already_in_code_needs_no_outline_but_keeps_the_rollout(tmp_path: Path) -> None:
    plan = _plan("activity_inserted_gated_patched", tmp_path)
    assert plan.outline == ""
    assert '`workflow.patched("order-fraud-check")` gate (already in the code)' in plan.runbook[0]
    assert any("do not roll back to the base build" in s for s in plan.rollback)
    assert not any("ships as it is" in s for s in plan.rollback)


def test_deprecation_allows_a_rollback_the_replay_proved(tmp_path: Path) -> None:
    plan = _plan("patch_deprecated", tmp_path)
    assert plan.outline == ""
    assert "TemporalChangeVersion IS NULL AND StartTime < '${PATCH_DEPLOYED_AT:?" in plan.runbook[0]
    # Base still calls `patched`: the new build's histories replay on it (tests/test_rollback_proof.py
    # checks such claims against the Replayer on histories the test records itself).
    assert plan.rollback_proof.endswith("replayed on the base build: 0 failed"), plan.rollback_proof
    assert len(plan.rollback) == 1 and plan.rollback[0].startswith(
        "`OrderWorkflow`: a plain revert is safe: all "
    ), plan.rollback


def test_appended_step_deploys_as_usual(tmp_path: Path) -> None:
    plan = _plan("activity_appended_at_end", tmp_path)
    assert plan.outline == ""
    assert len(plan.runbook) == 1
    assert "deploy as usual" in plan.runbook[0]


def test_removed_signal_handler_is_restored_by_the_outline(tmp_path: Path) -> None:
    plan = _plan("signal_handler_removed", tmp_path)
    assert "+    @workflow.signal" in plan.outline
    assert any("keep the removed handler" in s for s in plan.runbook)


def test_nondeterministic_call_is_replaced_by_the_workflow_api(tmp_path: Path) -> None:
    plan = _plan("nondeterminism_datetime_now", tmp_path)
    added = [
        line for line in plan.outline.splitlines() if line.startswith("+") and not line.startswith("+++")
    ]
    assert added and all("workflow.now()" in line for line in added)


def test_renamed_type_keeps_its_old_name(tmp_path: Path) -> None:
    plan = _plan("class_renamed_without_name", tmp_path)
    assert '+@workflow.defn(name="' in plan.outline


def test_removed_workflow_drains(tmp_path: Path) -> None:
    plan = _plan("workflow_removed", tmp_path)
    assert plan.outline == ""
    assert "keep it registered until" in plan.runbook[0]
    assert plan.canary == []


@pytest.mark.parametrize("case", ["non_workflow_file_changed", "refactor_call_moved_into_helper_method"])
def test_nothing_to_plan_when_nothing_needs_gates(case: str, tmp_path: Path) -> None:
    plan = _plan(case, tmp_path)
    assert (plan.outline, plan.runbook, plan.rollback, plan.canary) == ("", [], [], [])
