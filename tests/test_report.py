"""Renderers: the golden PR comment, SARIF against the OASIS schema, annotations, size limits."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
from conftest import FIXTURES, ROOT, TESTS
from gitrepo import make_repo
from sources import ACTIVITIES, BASE, app_files

from bot.demo import BRANCH, build_repo
from bot.model import Report
from bot.pipeline import CheckOptions, run_check
from bot.report import render
from bot.report.render import COMMENT_LIMIT, MARKER

GOLDEN = TESTS / "golden"
SARIF_SCHEMA = json.loads((TESTS / "schemas" / "sarif-2.1.0.json").read_text())
REPORT_SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The demo's static report: the golden file holds no synthesized section (its timings and the
    order executions finish in vary; tests/test_synthesis.py checks that section)."""
    repo = build_repo(tmp_path_factory.mktemp("demo"))
    return run_check(CheckOptions(repo=repo, base="main", head=BRANCH, synthesize="off"))


@pytest.fixture(scope="module")
def many_findings(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """A real change with 300 ungated insertions: more than any comment or annotation budget."""
    head = app_files("reserve", *["fraud_check"] * 300, "charge", "ship")
    repo = make_repo(tmp_path_factory.mktemp("many") / "repo", BASE, head)
    return run_check(CheckOptions(repo=Path(repo.working_dir), base="main", synthesize="off"))


def _normalize(text: str) -> str:
    text = re.sub(r"(base `main`|head `[\w-]+`) [0-9a-f]{7}", r"\1 <sha>", text)
    text = re.sub(r"(--base|--head) [0-9a-f]{12}\b", r"\1 <sha>", text)
    return text.replace(f"inflight-guard {_version()}", "inflight-guard <version>")


def _version() -> str:
    from bot import __version__

    return __version__


def test_markdown_matches_the_golden_file(demo_report: Report) -> None:
    text = _normalize(render(demo_report, "markdown"))
    golden = GOLDEN / "demo.md"
    if os.environ.get("INFLIGHT_GUARD_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_markdown_puts_the_verdict_first(demo_report: Report) -> None:
    lines = render(demo_report, "markdown").splitlines()
    assert lines[0] == MARKER
    assert lines[1] == "## ❌ inflight-guard: **breaking**"


def test_json_is_the_schema_versioned_contract(demo_report: Report) -> None:
    data = json.loads(render(demo_report, "json"))
    jsonschema.validate(data, REPORT_SCHEMA)
    assert data["schema_version"] == 1
    assert data["verdict"]["level"] == "breaking"
    [finding] = data["findings"]
    assert {k: finding[k] for k in ("rule", "slug", "severity", "definition", "gated", "suppressed")} == {
        "rule": "TMP101",
        "slug": "command-inserted-ungated",
        "severity": "breaking",
        "definition": "OrderWorkflow",
        "gated": False,
        "suppressed": False,
    }
    assert finding["location"]["path"] == "orders/workflows.py"
    assert data["definitions"] == [
        {
            "engine": "temporal",
            "id": "OrderWorkflow",
            "path": "orders/workflows.py",
            "status": "changed",
            "line": 14,
            "in_flight": {
                "count": None,
                "oldest_start": None,
                "source": "unknown (no histories or live count supplied)",
                "run_p50_seconds": None,
                "run_p95_seconds": None,
                "durations_from": "",
                "waits_until": None,
                "waits_on": None,
                "waits_from": "",
            },
            "versioning_behavior": None,
            "pinned": False,
        }
    ]
    assert {g["kind"]: g["satisfied"] for g in data["gates"]} == {
        "version_gate": False,
        "replay": False,
    }
    assert data["plan"]["outline"].startswith("--- a/orders/workflows.py\n+++ b/orders/workflows.py\n")
    assert data["replay"] == []


def test_sarif_validates_against_the_oasis_schema(demo_report: Report) -> None:
    log = json.loads(render(demo_report, "sarif"))
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(log)
    [run] = log["runs"]
    [result] = run["results"]
    assert result["ruleId"] == "TMP101"
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "TMP101"
    assert result["level"] == "error"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 29


def test_sarif_carries_suppressions(tmp_path: Path) -> None:
    # The suppression is already in base above the charge call, which this change does not touch:
    # only the activity's registered name changes (TMP105 on the call line). It keeps working.
    comment = "# inflight-guard: ignore[TMP105] the worker registers both names during the move"
    base = app_files("reserve", "charge", "ship", above={"charge": comment})
    renamed = ACTIVITIES.replace(
        "@activity.defn\nasync def charge", '@activity.defn(name="charge-card")\nasync def charge'
    )
    assert renamed != ACTIVITIES
    head = {**base, "app/activities.py": renamed}
    repo = make_repo(tmp_path / "repo", base, head)
    # Static: synthesis would prove the rename breaks replay (TMP160, which no comment suppresses).
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", synthesize="off"))
    log = json.loads(render(report, "sarif"))
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(log)
    [result] = log["runs"][0]["results"]
    assert result["ruleId"] == "TMP105"
    assert result["suppressions"] == [
        {"kind": "inSource", "justification": f"app/workflows.py:16: {comment.split('] ', 1)[1]}"}
    ]
    assert report.verdict.level.value == "safe"


def test_github_annotations_point_at_the_line(demo_report: Report) -> None:
    lines = render(demo_report, "github").splitlines()
    assert lines[0].startswith(
        "::error file=orders/workflows.py,line=29,title=TMP101 Command inserted without a version gate::"
    )
    assert lines[-1] == "::notice title=inflight-guard::verdict breaking"


def test_github_annotations_stay_within_the_per_step_limit(many_findings: Report) -> None:
    lines = render(many_findings, "github").splitlines()
    assert sum(line.startswith("::error ") for line in lines) == 10
    assert len(many_findings.findings) > 10
    assert "more finding(s) not annotated" in lines[-1]


def test_annotation_data_is_escaped() -> None:
    from bot.report.render import _escape_data, _escape_property

    assert _escape_data("50%\nnext") == "50%25%0Anext"
    assert _escape_property("a:b,c") == "a%3Ab%2Cc"


def test_markdown_degrades_to_a_summary_over_the_comment_limit(many_findings: Report) -> None:
    full = render(many_findings, "json")
    assert len(full) > COMMENT_LIMIT  # the case really is too large
    text = render(many_findings, "markdown")
    assert len(text) <= COMMENT_LIMIT
    assert text.startswith(MARKER)
    assert "This comment is a summary" in text
    assert "more findings in the full report" in text
    # Still a summary of at most 8 lines on top, the findings collapsed below it.
    head = [line for line in text.split("<details>", 1)[0].splitlines() if line.strip() and line != MARKER]
    assert len(head) <= 8 and any("This comment is a summary" in line for line in head), head
    active = [f for f in many_findings.findings if not f.suppressed]
    assert head[-2].startswith(f"{len(active)} findings (") and "across 1 definition" in head[-2]


def test_rule_ids_link_to_their_stable_anchor_in_the_rules_reference(demo_report: Report) -> None:
    docs = "https://github.com/acme/inflight-guard/blob/v1.2.0/docs/rules.md"
    linked = demo_report.model_copy(update={"rules_url": docs})
    text = render(linked, "markdown")
    assert f"**[TMP101]({docs}#tmp101)**" in text
    rules = json.loads(render(linked, "sarif"))["runs"][0]["tool"]["driver"]["rules"]
    assert [r["helpUri"] for r in rules] == [f"{docs}#tmp101"]
    # The anchor exists in the generated reference, for every rule.
    reference = (ROOT / "docs" / "rules.md").read_text()
    from bot.policy import builtin_packs

    for pack in builtin_packs():
        for rule in pack.rules:
            assert f'<a id="{rule.id.lower()}"></a>' in reference, rule.id
    # No link without a URL; a URL that could break out of the markdown link is not used.
    assert "**TMP101**" in render(demo_report, "markdown")
    hostile = demo_report.model_copy(update={"rules_url": "https://x.test/a) [click](https://evil.test"})
    assert "evil.test" not in render(hostile, "markdown")
    assert "helpUri" not in render(hostile, "sarif")


def test_a_gated_verdict_claims_replay_only_when_something_replayed(tmp_path: Path) -> None:
    """A step appended after every recorded one: gated, not breaking. Without histories the comment
    must not call it replay-safe."""
    root = FIXTURES / "temporal" / "activity_appended_at_end"
    repo = make_repo(tmp_path / "repo", root / "base", root / "head")
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", synthesize="off"))
    assert report.verdict.level.value == "safe_with_gates"
    text = render(report, "markdown")
    assert "Replay-safe" not in text and "nothing was replayed" in text
