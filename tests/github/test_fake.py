"""The fake GitHub, driven by the real client (PyGithub over HTTP), stays within GitHub's OpenAPI description."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException
from github.CommitStatus import CommitStatus
from github.PaginatedList import PaginatedList
from github_fake import NOT_ACCESSIBLE, FakeGitHub, running_fake
from urllib3.util.retry import Retry

REPO = "octo/flows"
HEAD = "a" * 40
BASE = "b" * 40


def client(fake: FakeGitHub, *, retry: Retry | None = None, lazy: bool = False) -> Github:
    return Github(
        base_url=fake.url,
        auth=Auth.Token("t"),
        retry=retry,
        seconds_between_requests=0,
        seconds_between_writes=0,
        lazy=lazy,
        timeout=5,
    )


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with running_fake() as f:
        f.add_repo(REPO)
        f.add_pull(REPO, 7, head_sha=HEAD, base_sha=BASE, files=["workflows/order.py", "README.md"])
        yield f


@pytest.mark.parametrize("ghes", [False, True], ids=["dotcom", "ghes"])
def test_pygithub_round_trip(ghes: bool) -> None:
    with running_fake(ghes=ghes) as fake:
        assert fake.url.endswith("/api/v3") == ghes
        fake.add_repo(REPO, default_branch="trunk")
        fake.add_pull(
            REPO,
            7,
            head_sha=HEAD,
            base_sha=BASE,
            head_ref="fix/replay",
            base_ref="trunk",
            author="alice",
            head_repo_full_name="alice/flows",
            files=[
                "workflows/order.py",
                {"filename": "b.py", "status": "renamed", "previous_filename": "a.py"},
            ],
        )
        for i in range(35):
            fake.add_comment(REPO, 7, f"comment {i}", login="alice")
        fake.set_role(REPO, "alice", "maintain")
        fake.set_role(REPO, "bob", "triage")
        gh = client(fake)

        repo = gh.get_repo(REPO)
        assert (repo.full_name, repo.default_branch) == (REPO, "trunk")
        pr = repo.get_pull(7)
        assert (pr.head.sha, pr.base.sha, pr.head.ref, pr.base.ref) == (HEAD, BASE, "fix/replay", "trunk")
        assert pr.head.repo.full_name == "alice/flows" and pr.head.repo.fork
        assert pr.base.repo.full_name == REPO
        assert pr.user.login == "alice"
        files = list(pr.get_files())
        assert [f.filename for f in files] == ["workflows/order.py", "b.py"]
        assert files[1].status == "renamed" and files[1].previous_filename == "a.py"
        assert files[0].patch

        comments = list(pr.get_issue_comments())  # 35 comments: two pages of 30
        assert [c.body for c in comments] == [f"comment {i}" for i in range(35)]
        assert ("GET", f"/repositories/{repo.id}/issues/7/comments") in fake.requests

        mine = pr.create_issue_comment("<!-- inflight-guard -->\nfirst")
        assert mine.user.login == fake.bot_login == "github-actions[bot]"
        assert mine.user.type == "Bot"
        mine.edit("<!-- inflight-guard -->\nsecond")
        # issues/get-comment; a lazy Issue does not fetch the issue itself (issues/get is not vendored).
        lazy_repo = client(fake, lazy=True).get_repo(REPO)
        assert lazy_repo.get_issue(7).get_comment(mine.id).body.endswith("second")
        assert fake.comments(REPO, 7)[-1] == {
            "id": mine.id,
            "body": "<!-- inflight-guard -->\nsecond",
            "login": fake.bot_login,
        }
        again = list(pr.get_issue_comments())
        assert len(again) == 36 and again[-1].body.endswith("second")

        assert mine.create_reaction("eyes").content == "eyes"
        assert fake.reactions(mine.id) == ["eyes"]

        # repos/get-commit is not an operation the bot uses: a lazy Commit goes straight to statuses.
        status = lazy_repo.get_commit(HEAD).create_status(
            "pending", target_url="https://ci.example/1", description="checking", context="inflight-guard"
        )
        assert status.state == "pending"
        lazy_repo.get_commit(HEAD).create_status("success", description="safe", context="inflight-guard")
        assert [s["state"] for s in fake.statuses(REPO, HEAD)] == ["pending", "success"]
        combined = lazy_repo.get_commit(HEAD).get_combined_status()
        assert combined.state == "success" and combined.total_count == 1
        # Not Commit.get_statuses(): PyGithub lists GET /repos/{o}/{r}/statuses/{sha}, a legacy path
        # absent from GitHub's description (see test_pygithub_commit_get_statuses_is_undescribed).
        listed = PaginatedList(CommitStatus, gh.requester, f"{repo.url}/commits/{HEAD}/statuses", None)
        assert [s.state for s in listed] == ["success", "pending"]

        assert repo.get_collaborator_permission("alice") == "write"
        assert repo.get_collaborator_role_name("alice") == "maintain"
        assert repo.get_collaborator_permission("bob") == "read"
        assert repo.get_collaborator_role_name("bob") == "triage"

        assert gh.get_rate_limit().resources.core.remaining == 4999
        assert fake.violations == []


def test_get_user_with_an_installation_token_is_forbidden(fake: FakeGitHub) -> None:
    with pytest.raises(GithubException) as caught:
        _ = client(fake).get_user().login
    assert caught.value.status == 403
    assert caught.value.data["message"] == NOT_ACCESSIBLE
    assert fake.violations == []


def test_get_user_with_a_user_token() -> None:
    with running_fake(installation_token=False) as fake:
        fake.token_login = "gate-bot"
        assert client(fake).get_user().login == "gate-bot"
        assert fake.violations == []


def test_team_membership(fake: FakeGitHub) -> None:
    fake.add_team_member("octo", "workflow-owners", "alice", role="maintainer")
    team = client(fake, lazy=True).get_organization("octo").get_team_by_slug("workflow-owners")
    assert team.get_team_membership("alice").role == "maintainer"
    with pytest.raises(GithubException) as caught:
        team.get_team_membership("mallory")
    assert caught.value.status == 404
    assert fake.requests[-1] == ("GET", "/orgs/octo/teams/workflow-owners/memberships/mallory")
    assert fake.violations == []


def test_pagination_headers_follow_github(fake: FakeGitHub) -> None:
    for i in range(5):
        fake.add_comment(REPO, 7, f"c{i}", login="alice")
    fake.per_page_max = 2
    repo_id = client(fake).get_repo(REPO).id
    first = requests.get(f"{fake.url}/repos/{REPO}/issues/7/comments", params={"per_page": 100}, timeout=5)
    assert len(first.json()) == 2
    assert (
        first.links["next"]["url"] == f"{fake.url}/repositories/{repo_id}/issues/7/comments?per_page=2&page=2"
    )
    assert first.links["last"]["url"].endswith("page=3")
    last = requests.get(first.links["last"]["url"], timeout=5)
    assert [c["body"] for c in last.json()] == ["c4"]
    assert set(last.links) == {"prev", "first"}
    assert fake.violations == []


def test_read_only_token(fake: FakeGitHub) -> None:
    fake.read_only = True
    pr = client(fake).get_repo(REPO).get_pull(7)  # reads still work
    with pytest.raises(GithubException) as caught:
        pr.create_issue_comment("hello")
    assert caught.value.status == 403
    assert caught.value.data["message"] == NOT_ACCESSIBLE
    assert fake.comments(REPO, 7) == []
    assert fake.violations == []


def test_fail_next_is_retried_by_the_client(fake: FakeGitHub) -> None:
    fake.fail_next = [502, 503]
    retry = Retry(total=3, status_forcelist=[502, 503], backoff_factor=0, raise_on_status=False)
    assert client(fake, retry=retry).get_repo(REPO).full_name == REPO
    assert fake.requests == [("GET", f"/repos/{REPO}")] * 3
    assert fake.fail_next == []


def test_fail_next_without_retry_surfaces(fake: FakeGitHub) -> None:
    fake.fail_next = [502]
    with pytest.raises(GithubException) as caught:
        client(fake).get_repo(REPO)
    assert caught.value.status == 502
    assert client(fake).get_repo(REPO).full_name == REPO  # then normal


def test_secondary_rate_limit_answer(fake: FakeGitHub) -> None:
    fake.rate_limit_next = 1
    raw = requests.get(f"{fake.url}/repos/{REPO}", timeout=5)
    assert raw.status_code == 403
    assert raw.headers["retry-after"] == "1"
    assert raw.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert "x-ratelimit-remaining" in raw.headers

    fake.rate_limit_next = 1
    with pytest.raises(RateLimitExceededException):
        client(fake).get_repo(REPO)

    fake.rate_limit_next = 1
    started = time.monotonic()
    assert client(fake, retry=GithubRetry(total=2)).get_repo(REPO).full_name == REPO
    assert time.monotonic() - started >= 1  # honoured retry-after
    assert fake.violations == []


def test_request_violations_are_recorded_and_answered_422(fake: FakeGitHub) -> None:
    bad = requests.post(f"{fake.url}/repos/{REPO}/statuses/{HEAD}", json={"state": "green"}, timeout=5)
    assert bad.status_code == 422
    # repos/get-commit: a real GitHub operation, but not one the bot uses, so not vendored
    unknown = requests.get(f"{fake.url}/repos/{REPO}/commits/{HEAD}", timeout=5)
    assert unknown.status_code == 422
    assert len(fake.violations) == 2
    assert "state" in fake.violations[0]
    assert "Path not found" in fake.violations[1]


def test_response_violations_are_recorded(fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    original = FakeGitHub._repo_json

    def broken(self: FakeGitHub, repo: object) -> dict[str, object]:
        data = original(self, repo)  # type: ignore[arg-type]
        del data["node_id"]
        return data

    monkeypatch.setattr(FakeGitHub, "_repo_json", broken)
    requests.get(f"{fake.url}/repos/{REPO}", timeout=5)
    assert len(fake.violations) == 1
    assert "'node_id' is a required property" in fake.violations[0]


def test_pygithub_commit_get_statuses_is_undescribed(fake: FakeGitHub) -> None:
    """A PyGithub quirk the bot must avoid: Commit.get_statuses() uses a path GitHub does not describe."""
    with pytest.raises(GithubException) as caught:
        list(client(fake, lazy=True).get_repo(REPO).get_commit(HEAD).get_statuses())
    assert caught.value.status == 422
    assert fake.requests[-1] == ("GET", f"/repos/{REPO}/statuses/{HEAD}")
    assert len(fake.violations) == 1


def test_reviews_take_comments_only_on_lines_of_the_diff() -> None:
    """GitHub's rule for review comments, as the fake holds it: every line of a comment in one hunk
    of the file's patch (RIGHT side); one bad comment and no review is made at all."""
    patch = "@@ -10,3 +10,4 @@ def run():\n a\n-b\n+c\n+d\n e\n@@ -40,2 +41,2 @@\n x\n-y\n+z"
    with running_fake() as fake:
        fake.add_repo(REPO)
        fake.add_pull(REPO, 7, head_sha=HEAD, base_sha=BASE, files=[{"filename": "w.py", "patch": patch}])
        gh = client(fake)

        def review(**comment: object) -> None:
            gh.requester.requestJsonAndCheck(
                "POST",
                f"/repos/{REPO}/pulls/7/reviews",
                input={
                    "commit_id": HEAD,
                    "body": "b",
                    "event": "COMMENT",
                    "comments": [{"path": "w.py", "body": "s", **comment}],
                },
            )

        for bad, message in (
            ({"line": 20, "side": "RIGHT"}, "line must be part of the diff"),
            ({"start_line": 12, "line": 41, "side": "RIGHT", "start_side": "RIGHT"}, "same hunk"),
            ({"line": 12, "side": "RIGHT", "path": "other.py"}, "Path could not be resolved"),
        ):
            with pytest.raises(GithubException) as caught:
                review(**bad)
            assert caught.value.status == 422 and message in str(caught.value.data), caught.value.data
        assert fake.reviews(REPO, 7) == []
        review(start_line=10, line=13, side="RIGHT", start_side="RIGHT")
        review(line=42, side="RIGHT")
        [first, second] = fake.reviews(REPO, 7)
        assert first["comments"] == [{"path": "w.py", "start_line": 10, "line": 13, "body": "s"}]
        assert second["state"] == "COMMENTED" and second["commit_id"] == HEAD
        assert fake.violations == []
