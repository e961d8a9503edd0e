"""The vendored webhook payloads are real GitHub examples and validate against GitHub's webhook schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

HERE = Path(__file__).resolve().parent
WEBHOOKS = HERE / "webhooks"
EXPECTED = {
    "pull_request.opened",
    "pull_request.synchronize",
    "pull_request.reopened",
    "issue_comment.created",
    "issue_comment.created.on_pr",
    "workflow_run.completed",
    "merge_group.checks_requested",
}


def load(name: str) -> dict[str, Any]:
    return json.loads((WEBHOOKS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads((HERE / "webhooks-schema.json").read_text(encoding="utf-8"))


def test_the_vendored_set_is_complete() -> None:
    assert {p.name.removesuffix(".json") for p in WEBHOOKS.glob("*.json")} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_payload_validates_against_its_schema(name: str, schema: dict[str, Any]) -> None:
    event, action = name.split(".")[:2]
    definition = f"{event}${action}"
    assert definition in schema["definitions"]
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator({**schema, "$ref": f"#/definitions/{definition}"})
    payload = load(name)
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    assert payload.get("action") == action


def test_issue_comment_variants() -> None:
    plain, on_pr = load("issue_comment.created"), load("issue_comment.created.on_pr")
    assert "pull_request" not in plain["issue"]
    number = on_pr["issue"]["number"]
    assert on_pr["issue"]["pull_request"]["url"].endswith(f"/pulls/{number}")
    assert on_pr["comment"]["html_url"].split("#")[0].endswith(f"/pull/{number}")
    # Apart from issue.pull_request and the html links, the two are the same delivery.
    assert {k: v for k, v in on_pr.items() if k not in ("issue", "comment")} == {
        k: v for k, v in plain.items() if k not in ("issue", "comment")
    }


def test_pull_request_payloads_carry_what_the_gate_reads() -> None:
    for action in ("opened", "synchronize", "reopened"):
        payload = load(f"pull_request.{action}")
        pr = payload["pull_request"]
        assert payload["number"] == pr["number"]
        for side in ("head", "base"):
            assert len(pr[side]["sha"]) == 40
            assert pr[side]["repo"]["full_name"]
    assert "before" in load("pull_request.synchronize")
