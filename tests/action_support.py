"""Driving `inflight-guard action` in tests: real webhook payloads, a clean Actions environment,
the CLI as a subprocess against the fake GitHub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import ROOT, TESTS
from github_fake import ACTIONS_BOT, FakeGitHub

from bot.report.render import MARKER

WEBHOOKS = TESTS / "github" / "webhooks"
REPO = "Codertocat/Hello-World"
NUMBER = 2


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def pr_event(tmp: Path, base: str, head: str, *, name: str = "opened", fork: bool = False) -> Path:
    payload = json.loads((WEBHOOKS / f"pull_request.{name}.json").read_text())
    payload["number"] = NUMBER
    payload["pull_request"]["number"] = NUMBER
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["base"]["sha"] = base
    if fork:
        payload["pull_request"]["head"]["repo"]["full_name"] = "forker/Hello-World"
    path = tmp / f"event-{name}.json"
    path.write_text(json.dumps(payload))
    return path


def action(
    tmp: Path,
    fake: FakeGitHub,
    event: str,
    event_path: Path,
    workspace: Path,
    *args: str,
    token: str = "t",
    extra_env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Run:
    output, summary = tmp / "output.txt", tmp / "summary.md"
    output.write_text("")
    summary.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp)),
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "42",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(tmp),
        "GITHUB_TOKEN": token,
        # The tool re-executes itself with `-P` (no working directory on sys.path): this checkout's
        # code, not whichever one is installed, is what runs.
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    out = subprocess.run(
        [sys.executable, "-m", "bot", "action", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in out.stderr, out.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return Run(out.returncode, out.stdout, out.stderr, outputs, summary.read_text())


def setup_pr(fake: FakeGitHub, base: str, head: str) -> None:
    fake.add_repo(REPO)
    fake.add_pull(REPO, NUMBER, head_sha=head, base_sha=base, files=["orders/workflows.py"])


def ours(fake: FakeGitHub) -> list[dict[str, Any]]:
    return [c for c in fake.comments(REPO, NUMBER) if MARKER in c["body"] and c["login"] == ACTIONS_BOT]


def run_event(tmp: Path, head: str, *, name: str = "workflow_run.json") -> Path:
    """A real workflow_run payload for the analysis run of the PR's head (same-repository branch)."""
    payload = json.loads((WEBHOOKS / "workflow_run.completed.json").read_text())
    payload["workflow_run"]["head_sha"] = head
    payload["workflow_run"]["head_branch"] = "feature"
    payload["workflow_run"]["head_repository"]["full_name"] = REPO
    payload["workflow_run"]["pull_requests"] = []  # empty for forks: never relied upon
    path = tmp / name
    path.write_text(json.dumps(payload))
    return path


def comment_event(tmp: Path, comment_id: int, body: str, login: str, user_type: str = "User") -> Path:
    payload = json.loads((WEBHOOKS / "issue_comment.created.on_pr.json").read_text())
    payload["issue"]["number"] = NUMBER
    payload["comment"].update(id=comment_id, body=body)
    payload["comment"]["user"].update(login=login, type=user_type)
    path = tmp / f"comment-{comment_id}.json"
    path.write_text(json.dumps(payload))
    return path


def command(
    tmp: Path, fake: FakeGitHub, repo: Path, body: str, login: str, *args: str, user_type: str = "User"
) -> tuple[Run, int]:
    comment_id = fake.add_comment(REPO, NUMBER, body, login=login, user_type=user_type)
    event = comment_event(tmp, comment_id, body, login, user_type)
    return action(tmp, fake, "issue_comment", event, repo, *args), comment_id


def replies(fake: FakeGitHub) -> list[str]:
    return [
        c["body"]
        for c in fake.comments(REPO, NUMBER)
        if c["login"] == ACTIONS_BOT and MARKER not in c["body"]
    ]
