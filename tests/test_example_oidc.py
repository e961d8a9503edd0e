"""The OIDC example (examples/workflows/inflight-guard-oidc.yml): AWS credentials for the history
bucket come from GitHub's OIDC provider, every `with:` names an input the action it calls defines
(ours from action.yml; configure-aws-credentials from its action.yml at the pinned release,
vendored in tests/schemas/), and the histories it replays are the newest export's only."""

from __future__ import annotations

import json
from typing import Any

import yaml
from conftest import ROOT

from bot.histories import is_pointer

EXAMPLE = ROOT / "examples" / "workflows" / "inflight-guard-oidc.yml"
AWS = "aws-actions/configure-aws-credentials@"
OWN = "inflight-guard/inflight-guard@"


def load(text: str) -> Any:
    data = yaml.safe_load(text)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as a boolean
    return data


def workflow() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = load(EXAMPLE.read_text())
    [job] = data["jobs"].values()
    return job, job["steps"]


def test_credentials_come_from_oidc_not_stored_keys() -> None:
    job, steps = workflow()
    assert load(EXAMPLE.read_text())["permissions"] == {}
    assert job["permissions"]["id-token"] == "write"
    [aws] = [s for s in steps if s.get("uses", "").startswith(AWS)]
    assert aws["with"]["role-to-assume"].startswith("arn:aws:iam::")
    assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(aws["with"])
    assert "secrets." not in EXAMPLE.read_text()
    # Credentials exist only where replay runs: a same-repository pull request, before the check.
    assert "github.event_name == 'pull_request'" in aws["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in aws["if"]
    tool = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith(OWN))
    assert steps.index(aws) < tool


def test_every_input_named_is_one_the_action_defines() -> None:
    _, steps = workflow()
    ours = set(load((ROOT / "action.yml").read_text())["inputs"])
    theirs = set(
        json.loads((ROOT / "tests" / "schemas" / "configure-aws-credentials-v6.2.3.inputs.json").read_text())[
            "inputs"
        ]
    )
    checked = 0
    for step in steps:
        uses = step.get("uses", "")
        defined = ours if uses.startswith(OWN) else theirs if uses.startswith(AWS) else None
        if defined is None:
            continue
        assert (
            uses.startswith(AWS) is False
            or uses.endswith("# v6.2.3")
            or "e6de054238d6b7531b4efff3b6587d9aade6a06c" in uses
        )
        assert set(step.get("with", {})) <= defined, (uses, set(step["with"]) - defined)
        checked += 1
    assert checked == 2


def test_histories_name_the_latest_pointer() -> None:
    _, steps = workflow()
    [tool] = [s for s in steps if s.get("uses", "").startswith(OWN)]
    sources = tool["with"]["histories"].split()
    assert sources and all(s.startswith("s3://") and is_pointer(s) for s in sources)
    assert "merge_group" in load(EXAMPLE.read_text())["on"]
