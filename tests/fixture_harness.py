"""The rule-fixture harness every engine's fixtures share.

A case is `tests/fixtures/<engine>/<case>/{base/,head/,expected.yaml}` (+ optional `config.yml`,
passed as --config). expected.yaml:
  description: what the case is about (required)
  verdict: safe | safe_with_gates | breaking | error
  findings: [{rule: ID, line: 12, path: a/b, gated: false}, ...]   exact multiset of active findings
  suppressed: [ID]                  rules of suppressed findings (exact, default [])
  gates: {version_gate: missing}    status of these gate kinds (any definition)
  outline_contains: ["..."]         strings the suggested patch must contain
  outline_fixes: true               applying the outline fixes the case (what that means is the engine's)
An engine's harness may allow more keys. When a report has an outline, it must `git apply` to head.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import git
import jsonschema
import yaml
from conftest import ROOT
from gitrepo import commit, make_repo

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
KEYS = {"description", "verdict", "findings", "suppressed", "gates", "outline_contains", "outline_fixes"}


def expected(case: Path, extra_keys: Iterable[str] = ()) -> dict[str, Any]:
    data = yaml.safe_load((case / "expected.yaml").read_text())
    allowed = KEYS | set(extra_keys)
    assert set(data) <= allowed, f"unknown keys in {case.name}/expected.yaml: {set(data) - allowed}"
    assert data.get("description"), f"{case.name}: describe what the case tests"
    return data


def check(repo: Path, case: Path, python: str | None = None, synthesize: str = "off") -> Report:
    """The case's verdict. Static by default: expected.yaml states what static analysis finds
    (tests/test_engine_truth.py judges synthesized verdicts against the Replayer)."""
    config = case / "config.yml"
    return run_check(
        CheckOptions(
            repo=repo,
            base="main",
            head="HEAD",
            config=config if config.exists() else None,
            replay=ReplayOptions(python=python),
            synthesize=synthesize,
        )
    )


def run_case(
    case: Path, tmp_path: Path, want: dict[str, Any], python: str | None = None
) -> tuple[git.Repo, Report]:
    """Build the case's repository, check it (`python`: the interpreter for --python), and assert
    everything expected.yaml says."""
    repo = make_repo(tmp_path / "repo", _side(case, "base"), _side(case, "head"))
    report = check(Path(repo.working_dir), case, python)

    jsonschema.validate(json.loads(report.to_json()), SCHEMA)
    active = [f for f in report.findings if not f.suppressed]
    got = Counter(f.rule for f in active)
    assert got == Counter(item["rule"] for item in want.get("findings", [])), explain(report)
    for item in want.get("findings", []):
        matches = [f for f in active if f.rule == item["rule"]]
        if "line" in item:
            assert item["line"] in [f.location.line for f in matches if f.location], explain(report)
        if "path" in item:
            assert item["path"] in [f.location.path for f in matches if f.location], explain(report)
        if "gated" in item:
            assert item["gated"] in [f.gated for f in matches], explain(report)
    assert sorted(f.rule for f in report.findings if f.suppressed) == sorted(want.get("suppressed", []))
    assert report.verdict.level.value == want["verdict"], explain(report)
    for kind, status in want.get("gates", {}).items():
        assert status in [g.status for g in report.gates if g.kind == kind], explain(report)
    for text in want.get("outline_contains", []):
        assert text in report.plan.outline, report.plan.outline
    return repo, report


def apply_outline(repo: git.Repo, report: Report, case: Path, python: str | None = None) -> Report:
    """Apply the suggested patch to head with `git apply`, commit it, and check again."""
    patch = Path(repo.working_dir) / ".outline.patch"
    patch.write_text(report.plan.outline)
    repo.git.apply("--check", str(patch))
    repo.git.apply(str(patch))
    patch.unlink()
    commit(repo, _worktree_files(Path(repo.working_dir)), "apply the outline")
    return check(Path(repo.working_dir), case, python)


def _side(case: Path, side: str) -> Path | None:
    path = case / side
    return path if path.is_dir() else None


def _worktree_files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def explain(report: Report) -> str:
    lines = [f"verdict: {report.verdict.level.value} {report.verdict.reasons}"]
    lines += [f"  gate {g.kind} {g.definition}: {g.status} {g.evidence}" for g in report.gates]
    for f in report.findings:
        lines.append(
            f"  {f.rule} {f.severity.value} {f.location} gated={f.gated} suppressed={f.suppressed} :: "
            f"{f.change.kind if f.change else ''} {dict(f.change.details) if f.change else ''}"
        )
    return "\n".join(lines)
