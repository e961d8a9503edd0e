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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, TESTS
from github_fake import ACTIONS_BOT, FakeGitHub, running_fake

from bot.demo import BRANCH, HISTORIES, build_repo
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
    tmp: Path, fake: FakeGitHub, event: str, event_path: Path, workspace: Path, *args: str, token: str = "t"
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
    }
    out = subprocess.run(
        [sys.executable, "-m", "bot", "action", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
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
    # API calls of a run whose comment exists: who am I, the comment pages, the status.
    assert len(fake.requests) <= 6, fake.requests
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
    run_event = json.loads((WEBHOOKS / "workflow_run.completed.json").read_text())
    run_event["workflow_run"]["head_sha"] = head
    event_path = tmp_path / "workflow_run.json"
    event_path.write_text(json.dumps(run_event))
    empty = tmp_path / "no-checkout"  # the publish job never has the PR's code
    empty.mkdir()
    second = action(
        tmp_path, fake, "workflow_run", event_path, empty, "--mode", "publish", "--report", str(report)
    )
    assert second.code == 1
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
        "/inflight ack TMP101 all order runs drained on 2026-11-20",
        "lead",
        "--histories",
        str(HISTORIES),
    )
    assert run.code == 0, run.stderr
    assert "### Replay" not in ours(fake)[0]["body"]
    assert fake.reactions(cid) == ["eyes", "+1"]
    [sticky] = ours(fake)
    assert (
        "- TMP101 by @lead on " in sticky["body"] and "all order runs drained on 2026-11-20" in sticky["body"]
    )
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
    run, cid = command(tmp_path, fake, repo, "/inflight ack all we accept it", "someone")
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
        tmp_path, fake, repo, "/inflight ack TMP101 mine is fine", "octocat", "--config", str(policy)
    )
    assert fake.reactions(cid) == ["-1"] and "someone else must acknowledge" in replies(fake)[-1]
    _, cid = command(tmp_path, fake, repo, "/inflight ack TMP101", "octocat")
    assert fake.reactions(cid) == ["-1"] and "needs a reason" in replies(fake)[-1]
    _, cid = command(tmp_path, fake, repo, "/inflight replay", "octocat")
    assert fake.reactions(cid) == ["-1"] and "runs only in the pull_request workflow" in replies(fake)[-1]
    _, cid = command(tmp_path, fake, repo, "/inflight frobnicate", "octocat")
    assert fake.reactions(cid) == ["-1"] and "unknown command `frobnicate`" in replies(fake)[-1]
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
    assert fake.reactions(cid) == ["+1"] and "| `/inflight ack TMP101 <reason>` |" in replies(fake)[-1]
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


def test_fetch_uses_the_token_when_the_checkout_kept_no_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`persist-credentials: false` leaves a private repository unfetchable: the action retries its
    fetch with its own token, as a header for the GitHub server only, never in git's arguments."""
    import base64

    from bot.github import action as gh_action

    auth = gh_action.git_auth("s3cret", "https://github.example.com/")
    assert gh_action.git_auth(None, "https://github.com") == {}
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
    # The fetch: first as the checkout left it, then, failing, with the token.
    calls: list[tuple[tuple[str, ...], dict[str, str]]] = []
    have: set[str] = set()

    def fake_git(
        workspace: Path, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        calls.append((args, dict(env or {})))
        code = 0
        if args[0] == "rev-parse":
            return subprocess.CompletedProcess(args, 0, "false\n", "")
        if args[0] == "cat-file":
            code = 0 if args[2].split("^")[0] in have else 1
        if args[0] == "fetch":
            code = 0 if env and "GIT_CONFIG_COUNT" in env else 128
            if code == 0:
                have.add(args[-1])
        return subprocess.CompletedProcess(args, code, "", "")

    monkeypatch.setattr(gh_action, "_git", fake_git)
    gh_action.ensure_commits(tmp_path, 7, ["a" * 40], auth)
    fetches = [(args, env) for args, env in calls if args[0] == "fetch"]
    assert [("GIT_CONFIG_COUNT" in env) for _, env in fetches] == [False, True]
    assert all(env["GIT_TERMINAL_PROMPT"] == "0" for _, env in fetches)
    assert not any("s3cret" in " ".join(args) or "basic" in " ".join(args) for args, _ in calls)


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
    assert fake.violations == []


def test_ack_lapses_when_the_change_changes(fake: FakeGitHub, tmp_path: Path) -> None:
    from gitrepo import commit, make_repo
    from sources import BASE, app_files

    git_repo = make_repo(tmp_path / "repo", BASE, app_files("reserve", "fraud_check", "charge", "ship"))
    workspace = Path(git_repo.working_dir)
    base, head = git_repo.commit("main").hexsha, git_repo.head.commit.hexsha
    setup_pr(fake, base, head)
    fake.set_role(REPO, "lead", "write")
    command(tmp_path, fake, workspace, "/inflight ack TMP101 checked with the on-call", "lead")
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    # The next push moves the check after the charge: the same call, but another change.
    new_head = commit(git_repo, app_files("reserve", "charge", "fraud_check", "ship"), "check later").hexsha
    run = action(
        tmp_path, fake, "pull_request", pr_event(tmp_path, base, new_head, name="reopened"), workspace
    )
    assert run.code == 1
    [sticky] = ours(fake)
    assert "_Lapsed: TMP101 acknowledged by @lead — its change changed since._" in sticky["body"]
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
    _, refused = command(tmp_path, fake, repo, "/inflight ack all fine", "dev", "--config", str(policy))
    assert fake.reactions(refused) == ["-1"] and "not in ack.allowed_users" in replies(fake)[-1]
    _, done = command(
        tmp_path, fake, repo, "/inflight ack all fine", "release-captain", "--config", str(policy)
    )
    assert fake.reactions(done) == ["eyes", "+1"]
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    assert fake.violations == []
