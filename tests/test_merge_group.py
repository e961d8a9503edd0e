"""`merge_group` end to end: GitHub's own merge_group payload (webhooks-examples), the merge queue's
commit made by git in a real repository, `inflight-guard action` against the fake GitHub.

The queue's required check is the `inflight-guard` status on the merge group's head commit, judged
from the group's base; no comment and no review is written (a merge group is not a pull request),
and the acknowledgements of the pull request the group was made for still count."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from action_support import NUMBER, REPO, WEBHOOKS, action, command, setup_pr
from github_fake import FakeGitHub, running_fake

from bot.demo import BRANCH, build_repo


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with running_fake() as server:
        yield server


def git(repo: Path, *args: str) -> str:
    command = [
        "git",
        "-c",
        "user.name=queue",
        "-c",
        "user.email=queue@example.invalid",
        "-C",
        str(repo),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def queued(tmp_path: Path) -> tuple[Path, str, str, str, str]:
    """(repo, base, PR head, merge group head, merge group branch) as GitHub's merge queue makes them."""
    repo = build_repo(tmp_path / "repo")
    base, head = git(repo, "rev-parse", "main"), git(repo, "rev-parse", BRANCH)
    branch = f"gh-readonly-queue/main/pr-{NUMBER}-{head}"
    git(repo, "checkout", "--quiet", "-b", branch, "main")
    git(repo, "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #{NUMBER}", BRANCH)
    group_head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "main")
    return repo, base, head, group_head, branch


def group_event(tmp: Path, base: str, group_head: str, branch: str) -> Path:
    payload = json.loads((WEBHOOKS / "merge_group.checks_requested.json").read_text())
    payload["merge_group"].update(
        base_sha=base, head_sha=group_head, head_ref=f"refs/heads/{branch}", base_ref="refs/heads/main"
    )
    payload["merge_group"]["head_commit"]["id"] = group_head
    path = tmp / "merge_group.json"
    path.write_text(json.dumps(payload))
    return path


def test_status_on_the_merge_group_head_judged_from_its_base(
    fake: FakeGitHub, queued: tuple[Path, str, str, str, str], tmp_path: Path
) -> None:
    repo, base, head, group_head, branch = queued
    setup_pr(fake, base, head)
    run = action(tmp_path, fake, "merge_group", group_event(tmp_path, base, group_head, branch), repo)
    assert run.code == 1, run.stderr
    [status] = fake.statuses(REPO, group_head)
    assert status["state"] == "failure" and status["context"] == "inflight-guard"
    assert fake.statuses(REPO, head) == [] and fake.statuses(REPO, base) == []
    report = json.loads(Path(run.outputs["report"]).read_text())
    assert (report["base"]["sha"], report["head"]["sha"]) == (base, group_head)
    assert any(f["rule"] == "TMP101" for f in report["findings"])
    assert fake.comments(REPO, NUMBER) == [] and fake.reviews(REPO, NUMBER) == []
    assert "inflight-guard: **breaking**" in run.summary
    assert fake.violations == []


def test_the_pull_requests_acknowledgement_lets_its_merge_group_pass(
    fake: FakeGitHub, queued: tuple[Path, str, str, str, str], tmp_path: Path
) -> None:
    repo, base, head, group_head, branch = queued
    setup_pr(fake, base, head)
    fake.set_role(REPO, "lead", "maintain")
    run, _ = command(tmp_path, fake, repo, f"/inflight ack all@{head} all order runs drained", "lead")
    assert fake.statuses(REPO, head)[-1]["state"] == "success", run.stderr
    comments_before = fake.comments(REPO, NUMBER)
    run = action(tmp_path, fake, "merge_group", group_event(tmp_path, base, group_head, branch), repo)
    assert run.code == 0, run.stderr
    assert fake.statuses(REPO, group_head)[-1]["state"] == "success"
    assert fake.comments(REPO, NUMBER) == comments_before
    assert fake.violations == []


def test_a_merge_group_payload_without_a_head_is_one_line(tmp_path: Path, fake: FakeGitHub) -> None:
    payload = json.loads((WEBHOOKS / "merge_group.checks_requested.json").read_text())
    del payload["merge_group"]["head_sha"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    run = action(tmp_path, fake, "merge_group", path, tmp_path)
    assert run.code == 2
    assert "not a merge_group payload (merge_group.head_sha: Field required)" in run.stderr
    assert fake.requests == []
