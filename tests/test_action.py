"""`inflight-guard action` end to end: a real git repo, real webhook payloads, a fake GitHub that
validates every request and response against GitHub's OpenAPI description, the CLI as a subprocess
with a clean Actions environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from action_support import (
    NUMBER,
    REPO,
    WEBHOOKS,
    action,
    command,
    ours,
    pr_event,
    replies,
    run_event,
    setup_pr,
)
from conftest import ROOT
from github_fake import FakeGitHub, running_fake

from bot.demo import BRANCH, HISTORIES, build_repo
from bot.report.render import MARKER


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with running_fake() as server:
        yield server


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    path = build_repo(tmp_path_factory.mktemp("demo") / "repo")
    git = ["git", "-C", str(path), "rev-parse"]
    base = subprocess.run([*git, "main"], capture_output=True, text=True, check=True).stdout.strip()
    head = subprocess.run([*git, BRANCH], capture_output=True, text=True, check=True).stdout.strip()
    return path, base, head


def test_pull_request_comment_status_outputs_and_summary(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    # Another bot's comment carrying our marker must never be edited.
    other = fake.add_comment(
        REPO, NUMBER, f"{MARKER} copied by someone", login="other-bot[bot]", user_type="Bot"
    )
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    [comment] = ours(fake)
    assert "inflight-guard: **breaking**" in comment["body"]
    assert 'if workflow.patched("order-workflow-check-fraud")' in comment["body"]
    assert next(c for c in fake.comments(REPO, NUMBER) if c["id"] == other)["body"].endswith(
        "copied by someone"
    )
    [status] = fake.statuses(REPO, head)
    assert status["state"] == "failure" and status["context"] == "inflight-guard"
    assert status["target_url"] == f"https://github.com/{REPO}/actions/runs/42"
    assert run.outputs["verdict"] == "breaking"
    report = json.loads(Path(run.outputs["report"]).read_text())
    assert report["head"]["sha"] == head
    assert "inflight-guard: **breaking**" in run.summary
    assert "::error file=orders/workflows.py,line=29" in run.stdout  # annotations on the changed line
    assert fake.violations == []


def test_synchronize_edits_the_one_comment_on_page_two(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    for i in range(40):  # our comment comes after them: on the second page (30 per page here)
        fake.add_comment(REPO, NUMBER, f"review {i}", login="reviewer")
    action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    [first] = ours(fake)
    fake.requests.clear()
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head, name="synchronize"), repo)
    assert run.code == 1
    assert [c["id"] for c in ours(fake)] == [first["id"]]
    assert sum(1 for method, path in fake.requests if path.endswith("/comments")) == 2  # both pages read
    assert len(fake.statuses(REPO, head)) == 2
    # API calls of a run whose comment exists: who am I, the comment pages, the status, then the
    # suggestion review (issue 19): our reviews, and the PR's diff (this PR's one-line diff holds
    # no line of the outline, so no review stands to be kept as it is).
    assert len(fake.requests) <= 8, fake.requests
    assert fake.violations == []


def test_fork_pr_with_read_only_token_never_crashes(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    fake.read_only = True
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head, fork=True), repo)
    assert run.code == 1
    assert "two-workflow setup" in run.stderr
    assert run.outputs["verdict"] == "breaking"
    assert "inflight-guard: **breaking**" in run.summary
    assert fake.comments(REPO, NUMBER) == [] and fake.statuses(REPO, head) == []
    assert fake.violations == []


def test_analyze_then_publish_on_workflow_run(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    report = tmp_path / "artifact" / "report.json"
    first = action(
        tmp_path,
        fake,
        "pull_request",
        pr_event(tmp_path, base, head),
        repo,
        "--mode",
        "analyze",
        "--report",
        str(report),
        "--fail-on",
        "never",
    )
    assert first.code == 0 and fake.requests == []  # analysis makes no API call at all
    event_path = run_event(tmp_path, head)
    # The publish job has the base repository's checkout: it reads the PR's commits as git objects.
    second = action(
        tmp_path, fake, "workflow_run", event_path, repo, "--mode", "publish", "--report", str(report)
    )
    assert second.code == 1, second.stderr
    assert len(ours(fake)) == 1
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert fake.violations == []


def test_ghes_prefix_and_a_flaky_api(demo_repo: tuple[Path, str, str], tmp_path: Path) -> None:
    repo, base, head = demo_repo
    with running_fake(ghes=True) as fake:
        assert fake.url.endswith("/api/v3")
        setup_pr(fake, base, head)
        fake.fail_next = [502, 503]  # retried with backoff, then it works
        run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
        assert run.code == 1, run.stderr
        assert len(ours(fake)) == 1 and fake.statuses(REPO, head)[-1]["state"] == "failure"
        assert fake.violations == []


def test_issue_comment_on_a_plain_issue_does_nothing(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_repo(REPO)
    run = action(tmp_path, fake, "issue_comment", WEBHOOKS / "issue_comment.created.json", tmp_path)
    assert run.code == 0
    assert "not a pull request" in run.stderr
    assert fake.requests == []


def test_not_in_actions_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "action"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.strip().startswith("inflight-guard: error: not in GitHub Actions: GITHUB_EVENT_NAME")


def test_ack_by_a_writer_turns_the_status_green_and_unack_back(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    fake.set_role(REPO, "lead", "maintain")
    # Histories configured for the action are not replayed from a comment: that would run PR code
    # in a job holding a write token.
    run, cid = command(
        tmp_path,
        fake,
        repo,
        f"/inflight ack TMP101@{head[:7]} all order runs drained on 2026-11-20",
        "lead",
        "--histories",
        str(HISTORIES),
    )
    assert run.code == 0, run.stderr
    assert "<b>Replay</b>" not in ours(fake)[0]["body"]
    assert fake.reactions(cid) == ["eyes", "+1"]
    [sticky] = ours(fake)
    assert f"- `TMP101` at `{head[:7]}` by @lead on " in sticky["body"]
    assert "all order runs drained on 2026-11-20" in sticky["body"]
    assert "acknowledged by @lead" in sticky["body"]  # the finding is listed as acknowledged
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    # A new push that does not touch the change keeps the acknowledgement (same fingerprint).
    action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head, name="synchronize"), repo)
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    assert len(ours(fake)) == 1
    _, cid = command(tmp_path, fake, repo, "/inflight unack TMP101", "lead")
    assert fake.reactions(cid) == ["eyes", "+1"]
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert "Acknowledged" not in ours(fake)[0]["body"]
    assert fake.violations == []


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("admin", True),
        ("maintain", True),
        ("write", True),
        ("triage", False),
        ("read", False),
        ("none", False),
    ],
)
def test_ack_needs_write_access(
    role: str, allowed: bool, fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    fake.set_role(REPO, "someone", role)
    run, cid = command(tmp_path, fake, repo, f"/inflight ack all@{head} we accept it", "someone")
    assert run.code == 0
    if allowed:
        assert fake.reactions(cid) == ["eyes", "+1"]
        assert fake.statuses(REPO, head)[-1]["state"] == "success"
    else:
        assert fake.reactions(cid) == ["-1"]
        [answer] = replies(fake)
        assert f"@someone refused: @someone has the `{role}` role here" in answer
        assert fake.statuses(REPO, head) == []
    assert fake.violations == []


def test_commands_refused_or_ignored_with_reasons(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    fake.set_role(REPO, "octocat", "admin")  # the PR's author
    policy = tmp_path / "policy.yml"
    policy.write_text("ack:\n  forbid_self_ack: true\n")
    _, cid = command(
        tmp_path, fake, repo, f"/inflight ack TMP101@{head} mine is fine", "octocat", "--config", str(policy)
    )
    assert fake.reactions(cid) == ["-1"] and "someone else must acknowledge" in replies(fake)[-1]
    _, cid = command(tmp_path, fake, repo, f"/inflight ack TMP101@{head[:8]}", "octocat")
    assert fake.reactions(cid) == ["-1"] and "needs a reason" in replies(fake)[-1]
    _, cid = command(tmp_path, fake, repo, "/inflight replay", "octocat")
    assert fake.reactions(cid) == ["-1"] and "runs only in the pull_request workflow" in replies(fake)[-1]
    _, cid = command(tmp_path, fake, repo, "/inflight frobnicate", "octocat")
    assert fake.reactions(cid) == ["-1"] and "unknown command `frobnicate`" in replies(fake)[-1]
    _, cid = command(tmp_path, fake, repo, "/inflight ack TMP101 no head named", "octocat")
    assert fake.reactions(cid) == ["-1"] and "name the head you reviewed" in replies(fake)[-1]
    before = len(fake.requests)
    run, cid = command(tmp_path, fake, repo, "/inflight ack all", "dependabot[bot]", user_type="Bot")
    assert run.code == 0 and fake.reactions(cid) == [] and len(fake.requests) == before
    _, cid = command(tmp_path, fake, repo, "looks good to me", "octocat")
    assert fake.reactions(cid) == []
    assert fake.statuses(REPO, head) == []
    assert fake.violations == []


def test_help_and_explain_answer_anyone(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    _, cid = command(tmp_path, fake, repo, "/inflight help", "visitor")
    assert (
        fake.reactions(cid) == ["+1"] and "| `/inflight ack TMP101@abc1234 <reason>` |" in replies(fake)[-1]
    )
    _, cid = command(tmp_path, fake, repo, "/inflight explain command-inserted-ungated", "visitor")
    assert fake.reactions(cid) == ["+1"] and replies(fake)[-1].startswith(
        "### TMP101 `command-inserted-ungated`"
    )
    _run, cid = command(tmp_path, fake, repo, "/inflight explain TMP999", "visitor")
    assert fake.reactions(cid) == ["-1"] and "no rule `TMP999`" in replies(fake)[-1]
    assert fake.violations == []


def test_pull_request_target_uses_the_pr_head_not_github_sha(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    run = action(tmp_path, fake, "pull_request_target", pr_event(tmp_path, base, head), repo)
    assert run.code == 1
    assert [s["state"] for s in fake.statuses(REPO, head)] == ["failure"]
    assert fake.statuses(REPO, base) == []
    assert fake.violations == []


def test_secondary_rate_limit_is_waited_out(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    fake.rate_limit_next = 1  # 403 "secondary rate limit" with retry-after: 1
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    assert len(ours(fake)) == 1 and fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert fake.violations == []


def test_shallow_checkout_is_completed(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    origin, base, head = demo_repo
    shallow = tmp_path / "checkout"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", "--branch", "main", f"file://{origin}", str(shallow)],
        check=True,
    )
    setup_pr(fake, base, head)
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), shallow)
    assert run.code == 1, run.stderr
    assert "shallow checkout: fetching" in run.stderr
    assert run.outputs["verdict"] == "breaking"


def test_fetch_uses_the_token_when_the_checkout_kept_no_credentials(tmp_path: Path) -> None:
    """`persist-credentials: false` leaves a private repository unfetchable: the action retries its
    fetch with its own token, as a header for the GitHub server only, never in git's arguments."""
    import base64

    from bot.github.analysis import git_auth

    auth = git_auth("s3cret", "https://github.example.com/")
    assert git_auth(None, "https://github.com") == {}
    # Real git reads it (GIT_CONFIG_* env, git >= 2.31), for that server only.
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    read = subprocess.run(
        ["git", "config", "--get-urlmatch", "http.extraheader", "https://github.example.com/o/r.git"],
        cwd=tmp_path,
        env={**os.environ, **auth},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert read == "AUTHORIZATION: basic " + base64.b64encode(b"x-access-token:s3cret").decode()
    elsewhere = subprocess.run(
        ["git", "config", "--get-urlmatch", "http.extraheader", "https://example.org/o/r.git"],
        cwd=tmp_path,
        env={**os.environ, **auth},
        capture_output=True,
        check=False,
    )
    assert elsewhere.returncode == 1


def _expand(text: str, values: dict[str, str]) -> str:
    """The `${{ ... }}` expressions action.yml uses, as the runner would expand them."""
    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: values[m.group(1)], text)


def test_composite_action_steps_run_in_order(
    fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    """action.yml's own steps, in order, in a scratch RUNNER_TEMP: key, install into its venv, run."""
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    spec = yaml.safe_load((ROOT / "action.yml").read_text())
    values = {f"inputs.{k}": str(v.get("default", "")) for k, v in spec["inputs"].items()}
    values |= {"inputs.token": "t", "runner.temp": str(tmp_path), "github.token": "t"}
    values |= {"github.action_ref": "v0", "runner.os": "Linux", "runner.arch": "X64"}
    values |= {"github.action_repository": "acme/inflight-guard"}
    summary = tmp_path / "summary"
    summary.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "RUNNER_OS": "Linux",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(pr_event(tmp_path, base, head)),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.url,
        "GITHUB_WORKSPACE": str(repo),
    }
    ran = []
    for step in spec["runs"]["steps"]:
        if "uses" in step:  # only the venv cache is delegated
            assert step["uses"].split("@")[0] in ("actions/cache/restore", "actions/cache/save"), step
            continue
        output = tmp_path / f"output-{step['id']}"
        output.write_text("")
        step_env = {**env, **{k: _expand(str(v), values) for k, v in step.get("env", {}).items()}}
        out = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _expand(step["run"], values)],
            env={**step_env, "GITHUB_OUTPUT": str(output)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        ran.append((step["name"], out.returncode))
        if step["id"] != "run":
            assert out.returncode == 0, out.stderr
        for line in output.read_text().splitlines():
            name, _, value = line.partition("=")
            values[f"steps.{step['id']}.outputs.{name}"] = value
    assert ran == [
        ("Key the inflight-guard venv", 0),
        ("Install inflight-guard", 0),
        ("Run inflight-guard", 1),  # breaking fails the step
    ]
    assert values["steps.key.outputs.version"] and values["steps.key.outputs.python"].startswith("CPython-")
    assert (tmp_path / "inflight-guard-venv").is_dir()
    assert values["steps.run.outputs.verdict"] == "breaking"
    assert len(ours(fake)) == 1 and fake.statuses(REPO, head)[-1]["state"] == "failure"
    # Rule ids link to the rules reference of the action that ran, at its ref.
    docs = "https://github.com/acme/inflight-guard/blob/v0/docs/rules.md"
    assert f"[TMP101]({docs}#tmp101)" in ours(fake)[0]["body"]
    assert fake.violations == []


def test_ack_lapses_when_the_change_changes(fake: FakeGitHub, tmp_path: Path) -> None:
    from gitrepo import commit, make_repo
    from sources import BASE, app_files

    git_repo = make_repo(tmp_path / "repo", BASE, app_files("reserve", "fraud_check", "charge", "ship"))
    workspace = Path(git_repo.working_dir)
    base, head = git_repo.commit("main").hexsha, git_repo.head.commit.hexsha
    setup_pr(fake, base, head)
    fake.set_role(REPO, "lead", "write")
    command(tmp_path, fake, workspace, f"/inflight ack TMP101@{head} checked with the on-call", "lead")
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    # The next push moves the check after the charge: the same call, but another change.
    new_head = commit(git_repo, app_files("reserve", "charge", "fraud_check", "ship"), "check later").hexsha
    run = action(
        tmp_path, fake, "pull_request", pr_event(tmp_path, base, new_head, name="reopened"), workspace
    )
    assert run.code == 1
    [sticky] = ours(fake)
    assert (
        f"_`TMP101` acknowledged at `{head[:7]}` by @lead covers nothing open at this head._"
        in sticky["body"]
    )
    assert "**Acknowledged**" not in sticky["body"]
    assert fake.statuses(REPO, new_head)[-1]["state"] == "failure"
    assert fake.violations == []


def test_ack_policy_allowed_users(fake: FakeGitHub, demo_repo: tuple[Path, str, str], tmp_path: Path) -> None:
    repo, base, head = demo_repo
    setup_pr(fake, base, head)
    policy = tmp_path / "policy.yml"
    policy.write_text("ack:\n  allowed_users: [release-captain]\n")
    for login in ("dev", "release-captain"):
        fake.set_role(REPO, login, "write")
    _, refused = command(
        tmp_path, fake, repo, f"/inflight ack all@{head} fine", "dev", "--config", str(policy)
    )
    assert fake.reactions(refused) == ["-1"] and "not in ack.allowed_users" in replies(fake)[-1]
    _, done = command(
        tmp_path, fake, repo, f"/inflight ack all@{head} fine", "release-captain", "--config", str(policy)
    )
    assert fake.reactions(done) == ["eyes", "+1"]
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    assert fake.violations == []
