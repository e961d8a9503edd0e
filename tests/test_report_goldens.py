"""The PR comment of each engine, as a reviewer reads it: breaking, gated, safe and a change to three
definitions, each a golden file (`INFLIGHT_GUARD_UPDATE_GOLDEN=1` rewrites them; read the diff).

The verdicts come from the engines (real Airflow loads the DAGs; the fixture cases' verdicts are
checked against the engines by their own tests); these tests hold the shape: a summary of at most 8
lines on top, everything else collapsed, each gate once per definition, shared runbook steps said
once, guardrails only for the kinds of change present, and a 3-definition comment under 6 KB
before its collapsed sections."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from airflow_env import AIRFLOW_3, airflow_python
from conftest import FIXTURES, TESTS
from fixture_harness import check
from gitrepo import make_repo

from bot.model import Report
from bot.report import render
from bot.report.render import MARKER

GOLDEN = TESTS / "golden" / "comments"
TOP_LINES = 8
MULTI_TOP_BYTES = 6 * 1024


@dataclass(frozen=True)
class Case:
    fixture: str
    verdict: str
    # A change to three definitions: `path` copied twice with `name` made `name2`, `name3`.
    copies: tuple[str, str] | None = None


CASES = {
    "temporal-breaking": Case("temporal/activity_inserted_mid_sequence", "breaking"),
    "temporal-gated": Case("temporal/activity_appended_at_end", "safe_with_gates"),
    "temporal-safe": Case("temporal/query_signal_and_logging_added", "safe"),
    "temporal-multi": Case(
        "temporal/activity_inserted_mid_sequence", "breaking", ("app/workflows.py", "OrderWorkflow")
    ),
    "cadence-breaking": Case("cadence/activity_inserted_mid_sequence", "breaking"),
    "cadence-gated": Case("cadence/activity_appended_at_end", "safe_with_gates"),
    "cadence-safe": Case("cadence/refactor_extract_method", "safe"),
    "cadence-multi": Case(
        "cadence/activity_inserted_mid_sequence", "breaking", ("orders/workflows.py", "OrderWorkflow")
    ),
    "airflow-breaking": Case("airflow/task_removed", "breaking"),
    "airflow-gated": Case("airflow/schedule_changed", "safe_with_gates"),
    "airflow-safe": Case("airflow/comment_only_change", "safe"),
    "airflow-multi": Case("airflow/task_removed", "breaking", ("dags/orders.py", '"orders"')),
    "stepfunctions-breaking": Case("stepfunctions/wait_for_task_token_message_changed", "breaking"),
    "stepfunctions-gated": Case("stepfunctions/asl_json_path_changed", "safe_with_gates"),
    "stepfunctions-safe": Case("stepfunctions/asl_json_comment_only_change", "safe"),
    "stepfunctions-multi": Case(
        "stepfunctions/asl_json_path_changed", "safe_with_gates", ("statemachines/orders.asl.json", "")
    ),
}


def _tree(case: Case, side: str, into: Path) -> Path:
    root = FIXTURES / case.fixture
    target = into / side
    shutil.copytree(root / side, target)
    if case.copies is not None:
        path, name = case.copies
        text = (target / path).read_text()
        for n in (2, 3):
            stem, dot, ext = path.partition(".")
            if not name:  # the file's name is the definition's id
                copy = text
            elif name.endswith('"'):
                copy = text.replace(name, f'{name[:-1]}{n}"')
            else:
                copy = text.replace(name, f"{name}{n}")
            (target / f"{stem}_{n}{dot}{ext}").write_text(copy)
    return target


def _report(name: str, tmp_path: Path) -> Report:
    case = CASES[name]
    fixture = FIXTURES / case.fixture
    repo = make_repo(tmp_path / "repo", _tree(case, "base", tmp_path), _tree(case, "head", tmp_path))
    python = airflow_python(AIRFLOW_3) if name.startswith("airflow") else None
    report = check(Path(repo.working_dir), fixture, python)
    assert report.verdict.level.value == case.verdict
    return report


def _normalize(text: str) -> str:
    from bot import __version__

    text = re.sub(r"(base `main`|head `HEAD`) [0-9a-f]{7}", r"\1 <sha>", text)
    text = re.sub(r"(--base|--head) [0-9a-f]{12}\b", r"\1 <sha>", text)
    text = re.sub(r"config: \S+/config\.yml", "config: <case>/config.yml", text)
    return text.replace(f"inflight-guard {__version__}", "inflight-guard <version>")


def outside_details(text: str) -> str:
    """The comment as GitHub shows it before anything is expanded."""
    return re.sub(r"<details>.*?</details>\n?", "", text, flags=re.S)


def top(text: str) -> list[str]:
    """The non-blank lines above the first collapsed section, the hidden marker aside."""
    head = text.split("<details>", 1)[0]
    return [line for line in head.splitlines() if line.strip() and line != MARKER]


@pytest.mark.parametrize("name", sorted(CASES))
def test_comment_matches_its_golden_file(name: str, tmp_path: Path) -> None:
    report = _report(name, tmp_path)
    text = render(report, "markdown")
    golden = GOLDEN / f"{name}.md"
    if os.environ.get("INFLIGHT_GUARD_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(_normalize(text))
    assert _normalize(text) == golden.read_text()

    # A summary of at most 8 lines, then only collapsed sections and the footer.
    lines = top(text)
    assert 3 <= len(lines) <= TOP_LINES, lines
    assert lines[0].startswith("## ") and f"**{case_level(name)}**" in lines[0]
    assert any(line.startswith("**Next:**") for line in lines), lines
    visible = [line for line in outside_details(text).splitlines() if line.strip() and line != MARKER]
    assert visible[: len(lines)] == lines
    assert visible[len(lines) :] == [visible[-1]] and visible[-1].startswith("<sub>"), visible  # the footer
    # The summary names rules; it does not restate the findings table.
    active = [f for f in report.findings if not f.suppressed]
    for f in active:
        assert f.message not in "\n".join(lines)
    assert f"{len(active)} finding" in lines[-1] or f"{len(active)} findings" in lines[-1]
    # Every gate listed can be unmet: none is satisfied merely because nothing needed it.
    assert "no ungated breaking change" not in text
    # No absolute path of this machine anywhere.
    assert str(tmp_path) not in text and str(FIXTURES) not in text


def case_level(name: str) -> str:
    return CASES[name].verdict.replace("_", " ")


def test_gates_once_per_definition_and_shared_steps_once(tmp_path: Path) -> None:
    report = _report("temporal-multi", tmp_path)
    text = render(report, "markdown")
    definitions = [d.id for d in report.definitions if d.status == "changed"]
    assert definitions == ["OrderWorkflow", "OrderWorkflow2", "OrderWorkflow3"]
    gates = text.split("<summary><b>Gates</b>", 1)[1].split("</details>", 1)[0]
    rows = [line for line in gates.splitlines() if line.startswith("- ")]
    # Each definition's own gates on one line; the replay gate they all share in the same words, once.
    for d in definitions:
        assert sum(line.startswith(f"- `{d}`:") for line in rows) == 1, rows
    assert sum("**replay proof**" in line for line in rows) == 1, rows
    assert len(report.gates) == 6
    # "deploy the build to every worker" once for the three, not three times.
    runbook = text.split("<summary><b>Drain / cutover runbook</b>", 1)[1].split("</details>", 1)[0]
    assert runbook.count("deploy the build to every worker") == 1
    assert "`OrderWorkflow`, `OrderWorkflow2`, `OrderWorkflow3`: deploy the build" in runbook
    # Every definition's own command is still there.
    for d in definitions:
        assert (
            f"WorkflowType='{d}' AND ExecutionStatus='Running' AND TemporalChangeVersion IS NULL" in runbook
        )
    steps = [line for line in runbook.splitlines() if re.match(r"\d+\. ", line)]
    assert len(steps) < 3 * 7 / 2, steps  # three definitions of 7 steps each were 21 steps


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if n.endswith("-multi")])
def test_a_three_definition_comment_is_short_before_its_collapsed_sections(name: str, tmp_path: Path) -> None:
    report = _report(name, tmp_path)
    changed = [d for d in report.definitions if d.status != "unchanged"]
    assert len(changed) == 3, [d.id for d in changed]
    text = render(report, "markdown")
    assert len(outside_details(text).encode()) < MULTI_TOP_BYTES
    assert "across 3 definitions" in text


def test_guardrails_only_for_the_kinds_of_change_present(tmp_path: Path) -> None:
    safe = render(_report("temporal-safe", tmp_path / "safe"), "markdown")
    assert "guardrails" not in safe
    breaking = render(_report("temporal-breaking", tmp_path / "breaking"), "markdown")
    rails = breaking.split("Determinism guardrails", 1)[1].split("</details>", 1)[0]
    assert "insert, remove or reorder activities" in rails
    assert "signal handler" not in rails and "datetime.now" not in rails


def test_a_definition_this_change_adds_lists_no_gate(tmp_path: Path) -> None:
    """Nothing in flight ran it: a version gate could never be unmet, a replay proof never met."""
    fixture = FIXTURES / "stepfunctions" / "asl_state_machine_added_invalid"
    repo = make_repo(tmp_path / "repo", fixture / "base", fixture / "head")
    report = check(Path(repo.working_dir), fixture)
    added = [d.id for d in report.definitions if d.status == "added"]
    assert added and report.verdict.level.value == "breaking"
    assert [g for g in report.gates if g.definition in added] == []
    assert "<b>Gates</b>" not in render(report, "markdown")
