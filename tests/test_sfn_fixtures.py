"""One harness over tests/fixtures/stepfunctions/<case>/{base/,head/,expected.yaml}.

expected.yaml:
  description: what the case is about (required)
  verdict: safe | safe_with_gates | breaking | error
  findings: [{rule: SFN107, line: 12, path: sfn/orders.asl.json, gated: false}, ...]  exact multiset
  suppressed: [SFN104]              rules of suppressed findings (exact, default [])
  gates: {version_gate: missing, drain: pending}   status of these gate kinds (any definition)
  outline_contains: ["..."]         strings the suggested patch must contain
  outline_fixes: true               applying the outline satisfies the version gate and clears SFN120/121
Optional config.yml beside it is passed as --config.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import FIXTURES, ROOT
from gitrepo import commit, make_repo

from bot.model import Report
from bot.pipeline import CheckOptions, run_check

CASES = sorted(p for p in (FIXTURES / "stepfunctions").iterdir() if p.is_dir())
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
EXPECTED_KEYS = {
    "description",
    "verdict",
    "findings",
    "suppressed",
    "outline_contains",
    "outline_fixes",
    "gates",
}


def _expected(case: Path) -> dict[str, Any]:
    data = yaml.safe_load((case / "expected.yaml").read_text())
    assert set(data) <= EXPECTED_KEYS, (
        f"unknown keys in {case.name}/expected.yaml: {set(data) - EXPECTED_KEYS}"
    )
    assert data.get("description"), f"{case.name}: describe what the case tests"
    return data


def _check(repo: Path, case: Path) -> Report:
    config = case / "config.yml"
    return run_check(
        CheckOptions(repo=repo, base="main", head="HEAD", config=config if config.exists() else None)
    )


def _side(case: Path, side: str) -> Path | None:
    path = case / side
    return path if path.is_dir() else None


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    expected = _expected(case)
    repo = make_repo(tmp_path / "repo", _side(case, "base"), _side(case, "head"))
    report = _check(Path(repo.working_dir), case)

    jsonschema.validate(json.loads(report.to_json()), SCHEMA)
    active = [f for f in report.findings if not f.suppressed]
    got = Counter(f.rule for f in active)
    want = Counter(item["rule"] for item in expected.get("findings", []))
    assert got == want, _explain(report)
    for item in expected.get("findings", []):
        matches = [f for f in active if f.rule == item["rule"]]
        if "line" in item:
            assert item["line"] in [f.location.line for f in matches if f.location], _explain(report)
        if "path" in item:
            assert item["path"] in [f.location.path for f in matches if f.location], _explain(report)
        if "gated" in item:
            assert item["gated"] in [f.gated for f in matches], _explain(report)
    assert sorted(f.rule for f in report.findings if f.suppressed) == sorted(expected.get("suppressed", []))
    assert report.verdict.level.value == expected["verdict"], _explain(report)
    for kind, status in expected.get("gates", {}).items():
        assert status in [g.status for g in report.gates if g.kind == kind], _explain(report)

    for text in expected.get("outline_contains", []):
        assert text in report.plan.outline, report.plan.outline
    if report.plan.outline:
        _apply_outline(repo, report, case, expected.get("outline_fixes", False))


def _apply_outline(repo: Any, report: Report, case: Path, must_fix: bool) -> None:
    """The suggested patch applies to head with `git apply`, parses, and (when declared) fixes the verdict."""
    patch = Path(repo.working_dir) / ".outline.patch"
    patch.write_text(report.plan.outline)
    repo.git.apply("--check", str(patch))
    repo.git.apply(str(patch))
    patch.unlink()
    commit(repo, _worktree_files(Path(repo.working_dir)), "apply the outline")
    again = _check(Path(repo.working_dir), case)
    # The patched files still parse (an outline must never break the template it fixes).
    assert not [f for f in again.findings if f.rule == "SFN001"], _explain(again)
    if must_fix:
        assert not [g for g in again.gates if g.kind == "version_gate" and g.status != "satisfied"], _explain(
            again
        )
        assert not [f for f in again.findings if f.rule in ("SFN120", "SFN121") and not f.suppressed], (
            _explain(again)
        )


def _worktree_files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _explain(report: Report) -> str:
    lines = [f"verdict: {report.verdict.level.value} {report.verdict.reasons}"]
    lines += [f"  gate {g.kind} {g.definition}: {g.status} {g.evidence}" for g in report.gates]
    for f in report.findings:
        lines.append(
            f"  {f.rule} {f.severity.value} {f.location} gated={f.gated} suppressed={f.suppressed} :: "
            f"{f.change.kind if f.change else ''} {dict(f.change.details) if f.change else ''}"
        )
    return "\n".join(lines)
