"""SARIF 2.1.0 output, for code-scanning uploads and any SARIF viewer."""

from __future__ import annotations

import json
from typing import Any

from bot.docs import rule_url
from bot.model import Finding, Report, Severity
from bot.policy import Rule, builtin_packs

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {
    Severity.ERROR: "error",
    Severity.BREAKING: "error",
    Severity.RISKY: "warning",
    Severity.INFO: "note",
}


def _rule_descriptor(rule_id: str, known: dict[str, Rule], finding: Finding, docs: str) -> dict[str, Any]:
    rule = known.get(rule_id)
    url = {"helpUri": rule_url(rule_id, docs)} if rule_url(rule_id, docs) else {}
    if rule is None:
        return {
            "id": rule_id,
            "name": finding.slug,
            "shortDescription": {"text": finding.title},
            "help": {"text": finding.fix or finding.title},
            **url,
        }
    return {
        **url,
        "id": rule.id,
        "name": rule.slug,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": " ".join(rule.why.split())},
        "help": {"text": " ".join(rule.fix.split()), "markdown": rule.fix.strip()},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"severity": rule.severity.value, "tags": ["inflight-guard", rule.id[:3].lower()]},
    }


def sarif(report: Report) -> str:
    """Return the SARIF 2.1.0 log of `report` (suppressed findings carry their justification)."""
    known = {r.id: r for pack in builtin_packs() for r in pack.rules}
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for f in report.findings:
        if f.rule not in index:
            index[f.rule] = len(rules)
            rules.append(_rule_descriptor(f.rule, known, f, report.rules_url))
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": LEVELS[f.severity],
            "message": {"text": f.message},
            "partialFingerprints": {"inflightGuard/v1": f.fingerprint},
            "properties": {"severity": f.severity.value, "gated": f.gated, "definition": f.definition or ""},
        }
        if f.location:
            region: dict[str, int] = {"startLine": f.location.line}
            if f.location.end_line and f.location.end_line >= f.location.line:
                region["endLine"] = f.location.end_line
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.location.path, "uriBaseId": "%SRCROOT%"},
                        "region": region,
                    }
                }
            ]
        if f.suppressed:
            result["suppressions"] = [{"kind": "inSource", "justification": f.suppressed_by or ""}]
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "inflight-guard",
                        "version": report.tool.get("version", "0"),
                        "rules": rules,
                    }
                },
                "invocations": [{"executionSuccessful": report.verdict.level.value != "error"}],
                "results": results,
                "properties": {"verdict": report.verdict.level.value},
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"
