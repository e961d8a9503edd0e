"""A fake GitHub REST API on loopback that holds every exchange to GitHub's own OpenAPI description.

``tests/github/openapi.json`` is GitHub's official description (``@octokit/openapi``, trimmed by
``tests/github/trim.py`` to the operations the bot uses). Every request the fake receives is
validated against it with openapi-core (the operation must exist; path parameters, query and JSON
body must match), and so is every response it sends (status declared, headers, body schema).
Each violation is appended to ``fake.violations``: tests assert it stays empty. A request
violation also answers 422 (GitHub's ``validation-error`` shape), so the client sees it too.

What is *not* validated, on purpose (GitHub's description does not list every error status an
endpoint can return): a response whose status the operation does not declare, when it is an error
the fake produced on purpose -- injected failures (``fail_next``, ``rate_limit_next``,
``read_only``) or a 4xx from the state (unknown repo, comment, ...). A 2xx/3xx the operation does
not declare is a violation.

Usage::

    with running_fake() as fake:
        fake.add_repo("octo/repo")
        fake.add_pull("octo/repo", 7, head_sha="a" * 40, base_sha="b" * 40, files=["w.py"])
        gh = github.Github(base_url=fake.url, auth=github.Auth.Token("t"), retry=None)
        ...
        assert fake.violations == []
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SPEC_PATH = Path(__file__).resolve().parent / "github" / "openapi.json"
SPEC_HOST = "https://api.github.com"  # the server URL of the description; requests are matched against it
GHES_PREFIX = "/api/v3"
HTML_BASE = "https://github.com"
ACTIONS_BOT = "github-actions[bot]"
ACTIONS_BOT_ID = 41898282  # the real id of github-actions[bot]
NOT_ACCESSIBLE = "Resource not accessible by integration"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)
SECONDARY_RATE_LIMIT_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
ROLES = ("admin", "maintain", "write", "triage", "read", "none")
# repos/get-collaborator-permission-level: `permission` is the legacy base role.
COARSE_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


# ---------------------------------------------------------------------------------------------
# The description and the openapi-core glue


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


@functools.cache
def _openapi() -> OpenAPI:
    return OpenAPI.from_dict(_spec())


@functools.cache
def _routes() -> Map:
    """Werkzeug routes built from the description's paths, endpoint = (path template, method)."""
    rules = []
    for template, item in _spec()["paths"].items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", template)
        methods = [m.upper() for m in item if m in {"get", "post", "patch", "put", "delete"}]
        rules.append(Rule(rule, endpoint=template, methods=methods))
    return Map(rules, strict_slashes=False, merge_slashes=False)


@dataclass
class _OARequest:
    """openapi-core's Request protocol, for a request as if it had been sent to api.github.com."""

    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None
    host_url: str = SPEC_HOST


@dataclass
class _OAResponse:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes | None


def _describe(exc: BaseException) -> str:
    """One line per error; schema errors listed by JSON path (the offending value itself is not dumped)."""
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and details.get("schema_errors"):
        parts = [
            f"{'/'.join(map(str, e['path'])) or '<root>'}: {e['message']}" for e in details["schema_errors"]
        ]
        where = details.get("cause_type") or ""
        return f"{type(exc).__name__}({where}): " + "; ".join(parts)
    return str(exc)


# ---------------------------------------------------------------------------------------------
# State


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def _sha(*parts: object) -> str:
    return hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()


@dataclass
class _Repo:
    id: int
    full_name: str
    default_branch: str
    private: bool
    fork: bool = False
    created_at: str = field(default_factory=_now)

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


@dataclass
class _Pull:
    number: int
    head_sha: str
    base_sha: str
    head_ref: str
    base_ref: str
    author: str
    head_repo: str
    files: list[dict[str, Any]]
    title: str
    body: str | None
    draft: bool
    created_at: str = field(default_factory=_now)


@dataclass
class _Comment:
    id: int
    full_name: str
    issue_number: int
    body: str
    login: str
    user_type: str
    created_at: str
    updated_at: str


@dataclass
class _Review:
    id: int
    full_name: str
    number: int
    login: str
    body: str
    commit_id: str
    state: str
    submitted_at: str


@dataclass
class _ReviewComment:
    id: int
    full_name: str
    number: int
    review_id: int
    path: str
    line: int
    start_line: int | None
    position: int
    diff_hunk: str
    body: str
    commit_id: str
    login: str
    created_at: str


_HUNK_HEADER = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def _patch_hunks(patch: str) -> list[dict[int, tuple[int, str]]]:
    """Per hunk of a file's patch: head (RIGHT) line -> (position in the patch, diff hunk up to it).

    The position counts lines below the first ``@@`` header, as GitHub's ``position`` does."""
    hunks: list[dict[int, tuple[int, str]]] = []
    position = -1
    right = 0
    header_at = 0
    lines = patch.splitlines()
    for i, line in enumerate(lines):
        position += 1
        m = _HUNK_HEADER.match(line)
        if m:
            hunks.append({})
            right = int(m.group(1))
            header_at = i
            continue
        if not hunks or line.startswith("-") or line.startswith("\\"):
            continue
        hunks[-1][right] = (position, "\n".join(lines[header_at : i + 1]))
        right += 1
    return hunks


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _Error(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


# ---------------------------------------------------------------------------------------------
# The fake


class FakeGitHub:
    """In-memory GitHub behind a real HTTP server; see the module docstring."""

    def __init__(self, *, ghes: bool = False, installation_token: bool = True) -> None:
        self.ghes = ghes
        self.prefix = GHES_PREFIX if ghes else ""
        self.installation_token = installation_token
        self.token_login = ACTIONS_BOT
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        # failure injection
        self.read_only = False
        self.fail_next: list[int] = []
        self.rate_limit_next = 0
        self.per_page_max = 30
        # per operation id: statuses to answer its next calls with (e.g. {"issues/create-comment": [422]})
        self.fail_ops: dict[str, list[int]] = {}
        # a GitHub that accepts connections and never answers (until cleared or stopped)
        self.hang = threading.Event()

        self._lock = threading.RLock()
        self._ids = itertools.count(1_000_001)
        self._user_ids: dict[str, int] = {ACTIONS_BOT: ACTIONS_BOT_ID}
        self._repos: dict[str, _Repo] = {}
        self._pulls: dict[tuple[str, int], _Pull] = {}
        self._issues: set[tuple[str, int]] = set()
        self._comments: dict[int, _Comment] = {}
        self._statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._reactions: dict[int, list[tuple[int, str, str, str]]] = {}  # id, content, login, created_at
        self._roles: dict[tuple[str, str], str] = {}
        self._teams: dict[tuple[str, str, str], str] = {}  # (org, team, login) -> role
        self._runs: dict[int, dict[str, Any]] = {}  # workflow runs, by id
        self._reviews: dict[int, _Review] = {}
        self._review_comments: dict[int, _ReviewComment] = {}
        self.reruns: list[int] = []  # ids of the workflow runs re-run through the API
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        _openapi()  # load (and check) the description before the first request
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}{self.prefix}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-github"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.hang.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- state: setup -----------------------------------------------------------------------

    @property
    def bot_login(self) -> str:
        """The login the writes made through the API are attributed to (the token's identity)."""
        return self.token_login

    def add_repo(self, full_name: str, default_branch: str = "main", *, private: bool = False) -> None:
        with self._lock:
            self._add_repo(full_name, default_branch, private=private)

    def _add_repo(self, full_name: str, default_branch: str = "main", *, private: bool = False) -> _Repo:
        if full_name.count("/") != 1:
            raise ValueError(f"not owner/name: {full_name}")
        repo = self._repos.get(full_name)
        if repo is None:
            repo = _Repo(
                id=100_000 + len(self._repos) + 1,
                full_name=full_name,
                default_branch=default_branch,
                private=private,
            )
            self._repos[full_name] = repo
        return repo

    def add_pull(
        self,
        full_name: str,
        number: int,
        *,
        head_sha: str,
        base_sha: str,
        head_ref: str = "feature",
        base_ref: str = "main",
        author: str = "octocat",
        head_repo_full_name: str | None = None,
        files: Iterable[str | dict[str, Any]] = (),
        title: str = "A change",
        body: str | None = None,
        draft: bool = False,
    ) -> None:
        """A pull request; ``head_repo_full_name`` other than ``full_name`` makes it a fork's.

        ``files``: file names (each a ``modified`` entry with a one-line patch), or dicts merged
        over those defaults (e.g. ``{"filename": "b.py", "status": "renamed", "previous_filename": "a.py"}``).
        """
        with self._lock:
            self._add_repo(full_name)
            head_repo = head_repo_full_name or full_name
            if head_repo != full_name:
                self._add_repo(head_repo).fork = True
            entries = []
            for item in files:
                entry = {"filename": item} if isinstance(item, str) else dict(item)
                entries.append(entry)
            self._pulls[(full_name, number)] = _Pull(
                number=number,
                head_sha=head_sha,
                base_sha=base_sha,
                head_ref=head_ref,
                base_ref=base_ref,
                author=author,
                head_repo=head_repo,
                files=entries,
                title=title,
                body=body,
                draft=draft,
            )
            self._issues.add((full_name, number))

    def add_comment(
        self, full_name: str, issue_number: int, body: str, *, login: str, user_type: str = "User"
    ) -> int:
        with self._lock:
            self._add_repo(full_name)
            self._issues.add((full_name, issue_number))
            return self._new_comment(full_name, issue_number, body, login, user_type).id

    def edit_comment(self, comment_id: int, body: str) -> None:
        """Edit a comment as its author would (``updated_at`` moves past ``created_at``)."""
        with self._lock:
            c = self._comments[comment_id]
            c.body = body
            later = dt.datetime.strptime(c.created_at, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(minutes=1)
            c.updated_at = later.strftime("%Y-%m-%dT%H:%M:%SZ")

    def set_head(self, full_name: str, number: int, head_sha: str) -> None:
        """A push to the pull request: its head moves."""
        with self._lock:
            self._pulls[(full_name, number)].head_sha = head_sha

    def add_workflow_run(
        self,
        full_name: str,
        *,
        head_sha: str,
        path: str,
        event: str = "pull_request",
        head_ref: str = "feature",
    ) -> int:
        """A finished run of workflow file `path` (e.g. `.github/workflows/ci.yml`) for `head_sha`."""
        with self._lock:
            self._add_repo(full_name)
            run_id = next(self._ids)
            self._runs[run_id] = {
                "full_name": full_name,
                "head_sha": head_sha,
                "path": path,
                "event": event,
                "head_ref": head_ref,
                "created_at": _now(),
            }
            return run_id

    def set_role(self, full_name: str, login: str, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self._lock:
            self._roles[(full_name, login)] = role

    def add_team_member(self, org: str, team: str, login: str, role: str = "member") -> None:
        with self._lock:
            self._teams[(org, team, login)] = role

    # -- state: inspection ------------------------------------------------------------------

    def comments(self, full_name: str, issue_number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"id": c.id, "body": c.body, "login": c.login}
                for c in self._comments.values()
                if (c.full_name, c.issue_number) == (full_name, issue_number)
            ]

    def statuses(self, full_name: str, sha: str) -> list[dict[str, Any]]:
        """Every status created on ``sha``, oldest first."""
        with self._lock:
            return [
                {k: s[k] for k in ("state", "context", "description", "target_url")}
                for s in self._statuses.get((full_name, sha), [])
            ]

    def reviews(self, full_name: str, number: int) -> list[dict[str, Any]]:
        """Every review of the pull request, oldest first, with its comments (path, lines, body)."""
        with self._lock:
            return [
                {
                    "id": r.id,
                    "login": r.login,
                    "body": r.body,
                    "commit_id": r.commit_id,
                    "state": r.state,
                    "comments": [
                        {"path": c.path, "start_line": c.start_line, "line": c.line, "body": c.body}
                        for c in self._review_comments.values()
                        if c.review_id == r.id
                    ],
                }
                for r in self._reviews.values()
                if (r.full_name, r.number) == (full_name, number)
            ]

    def reactions(self, comment_id: int) -> list[str]:
        with self._lock:
            return [content for _, content, _, _ in self._reactions.get(comment_id, [])]

    # -- JSON builders ----------------------------------------------------------------------

    @property
    def _api(self) -> str:
        return self.url

    def _user_id(self, login: str) -> int:
        if login not in self._user_ids:
            self._user_ids[login] = 1000 + len(self._user_ids)
        return self._user_ids[login]

    def _user(self, login: str, user_type: str | None = None) -> dict[str, Any]:
        uid = self._user_id(login)
        if user_type is None:
            user_type = "Bot" if login.endswith("[bot]") else "User"
        if user_type == "Bot":
            html = f"{HTML_BASE}/apps/{login.removesuffix('[bot]')}"
            avatar = f"https://avatars.githubusercontent.com/in/{uid}?v=4"
        else:
            html = f"{HTML_BASE}/{login}"
            avatar = f"https://avatars.githubusercontent.com/u/{uid}?v=4"
        url = f"{self._api}/users/{urllib.parse.quote(login)}"
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id(user_type, uid),
            "avatar_url": avatar,
            "gravatar_id": "",
            "url": url,
            "html_url": html,
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": user_type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _repo_json(self, repo: _Repo) -> dict[str, Any]:
        """A superset of minimal-repository, repository and full-repository."""
        api = f"{self._api}/repos/{repo.full_name}"
        html = f"{HTML_BASE}/{repo.full_name}"
        open_issues = sum(1 for (name, _n) in self._issues if name == repo.full_name)
        return {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._user(repo.owner),
            "html_url": html,
            "description": None,
            "fork": repo.fork,
            "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{api}/assignees{{/user}}",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "contributors_url": f"{api}/contributors",
            "deployments_url": f"{api}/deployments",
            "downloads_url": f"{api}/downloads",
            "events_url": f"{api}/events",
            "forks_url": f"{api}/forks",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_url": f"git://github.com/{repo.full_name}.git",
            "hooks_url": f"{api}/hooks",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "issues_url": f"{api}/issues{{/number}}",
            "keys_url": f"{api}/keys{{/key_id}}",
            "labels_url": f"{api}/labels{{/name}}",
            "languages_url": f"{api}/languages",
            "merges_url": f"{api}/merges",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "releases_url": f"{api}/releases{{/id}}",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "stargazers_url": f"{api}/stargazers",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "tags_url": f"{api}/tags",
            "teams_url": f"{api}/teams",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "clone_url": f"{html}.git",
            "mirror_url": None,
            "svn_url": html,
            "homepage": None,
            "language": "Python",
            "forks_count": 0,
            "forks": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "watchers": 0,
            "size": 108,
            "default_branch": repo.default_branch,
            "open_issues_count": open_issues,
            "open_issues": open_issues,
            "is_template": False,
            "topics": [],
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "pushed_at": repo.created_at,
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "license": None,
            "allow_forking": True,
            "web_commit_signoff_required": False,
            "network_count": 0,
            "subscribers_count": 1,
        }

    def _association(self, full_name: str, login: str) -> str:
        if login == full_name.split("/", 1)[0]:
            return "OWNER"
        if self._roles.get((full_name, login), "none") != "none":
            return "COLLABORATOR"
        return "NONE"

    def _pull_json(self, repo: _Repo, pull: _Pull) -> dict[str, Any]:
        api = f"{self._api}/repos/{repo.full_name}"
        html = f"{HTML_BASE}/{repo.full_name}/pull/{pull.number}"
        head_repo = self._repos[pull.head_repo]
        pid = 500_000 + repo.id * 1000 + pull.number
        files = self._files_json(repo, pull)

        def side(r: _Repo, ref: str, sha: str, label_owner: str) -> dict[str, Any]:
            return {
                "label": f"{label_owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self._user(r.owner),
                "repo": self._repo_json(r),
            }

        def link(href: str) -> dict[str, str]:
            return {"href": href}

        return {
            "url": f"{api}/pulls/{pull.number}",
            "id": pid,
            "node_id": _node_id("PullRequest", pid),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pull.number}",
            "commits_url": f"{api}/pulls/{pull.number}/commits",
            "review_comments_url": f"{api}/pulls/{pull.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "statuses_url": f"{api}/statuses/{pull.head_sha}",
            "number": pull.number,
            "state": "open",
            "locked": False,
            "title": pull.title,
            "user": self._user(pull.author),
            "body": pull.body,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pull.created_at,
            "updated_at": pull.created_at,
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(head_repo, pull.head_ref, pull.head_sha, head_repo.owner),
            "base": side(repo, pull.base_ref, pull.base_sha, repo.owner),
            "_links": {
                "self": link(f"{api}/pulls/{pull.number}"),
                "html": link(html),
                "issue": link(f"{api}/issues/{pull.number}"),
                "comments": link(f"{api}/issues/{pull.number}/comments"),
                "review_comments": link(f"{api}/pulls/{pull.number}/comments"),
                "review_comment": link(f"{api}/pulls/comments{{/number}}"),
                "commits": link(f"{api}/pulls/{pull.number}/commits"),
                "statuses": link(f"{api}/statuses/{pull.head_sha}"),
            },
            "author_association": self._association(repo.full_name, pull.author),
            "auto_merge": None,
            "draft": pull.draft,
            "merged": False,
            "mergeable": True,
            "rebaseable": True,
            "mergeable_state": "clean",
            "merged_by": None,
            "comments": sum(
                1
                for c in self._comments.values()
                if (c.full_name, c.issue_number) == (repo.full_name, pull.number)
            ),
            "review_comments": 0,
            "maintainer_can_modify": pull.head_repo != repo.full_name,
            "commits": 1,
            "additions": sum(f["additions"] for f in files),
            "deletions": sum(f["deletions"] for f in files),
            "changed_files": len(files),
        }

    def _run_json(self, repo: _Repo, run_id: int, r: dict[str, Any]) -> dict[str, Any]:
        api = f"{self._api}/repos/{repo.full_name}/actions/runs/{run_id}"
        workflow_id = 7_000 + sum(map(ord, r["path"]))
        return {
            "id": run_id,
            "node_id": _node_id("WorkflowRun", run_id),
            "name": r["path"].rsplit("/", 1)[-1],
            "head_branch": r["head_ref"],
            "head_sha": r["head_sha"],
            "path": r["path"],
            "display_title": "A change",
            "run_number": run_id % 1000,
            "run_attempt": 1,
            "event": r["event"],
            "status": "completed",
            "conclusion": "success",
            "workflow_id": workflow_id,
            "url": api,
            "html_url": f"{HTML_BASE}/{repo.full_name}/actions/runs/{run_id}",
            "pull_requests": [],
            "created_at": r["created_at"],
            "updated_at": r["created_at"],
            "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs",
            "check_suite_url": f"{self._api}/repos/{repo.full_name}/check-suites/{run_id}",
            "artifacts_url": f"{api}/artifacts",
            "cancel_url": f"{api}/cancel",
            "rerun_url": f"{api}/rerun",
            "workflow_url": f"{self._api}/repos/{repo.full_name}/actions/workflows/{workflow_id}",
            "head_commit": None,
            "repository": self._repo_json(repo),
            "head_repository": self._repo_json(repo),
        }

    def _files_json(self, repo: _Repo, pull: _Pull) -> list[dict[str, Any]]:
        out = []
        for spec in pull.files:
            name = spec["filename"]
            quoted = urllib.parse.quote(name)
            head = self._repos[pull.head_repo].full_name
            entry: dict[str, Any] = {
                "sha": _sha(pull.head_sha, name),
                "filename": name,
                "status": "modified",
                "additions": 1,
                "deletions": 1,
                "changes": 2,
                "blob_url": f"{HTML_BASE}/{head}/blob/{pull.head_sha}/{quoted}",
                "raw_url": f"{HTML_BASE}/{head}/raw/{pull.head_sha}/{quoted}",
                "contents_url": f"{self._api}/repos/{head}/contents/{quoted}?ref={pull.head_sha}",
                "patch": "@@ -1 +1 @@\n-old\n+new",
            }
            entry.update(spec)
            if entry["patch"] is None:  # GitHub leaves it out for a diff too large to show
                del entry["patch"]
            if "changes" not in spec:
                entry["changes"] = entry["additions"] + entry["deletions"]
            out.append(entry)
        return out

    def _new_comment(
        self, full_name: str, issue_number: int, body: str, login: str, user_type: str
    ) -> _Comment:
        now = _now()
        comment = _Comment(next(self._ids), full_name, issue_number, body, login, user_type, now, now)
        self._comments[comment.id] = comment
        return comment

    def _comment_json(self, c: _Comment) -> dict[str, Any]:
        api = f"{self._api}/repos/{c.full_name}"
        kind = "pull" if (c.full_name, c.issue_number) in self._pulls else "issues"
        counts = dict.fromkeys(REACTIONS, 0)
        for _, content, _, _ in self._reactions.get(c.id, []):
            counts[content] += 1
        return {
            "url": f"{api}/issues/comments/{c.id}",
            "html_url": f"{HTML_BASE}/{c.full_name}/{kind}/{c.issue_number}#issuecomment-{c.id}",
            "issue_url": f"{api}/issues/{c.issue_number}",
            "id": c.id,
            "node_id": _node_id("IssueComment", c.id),
            "user": self._user(c.login, c.user_type),
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "author_association": self._association(c.full_name, c.login),
            "body": c.body,
            "reactions": {
                "url": f"{api}/issues/comments/{c.id}/reactions",
                "total_count": sum(counts.values()),
                **counts,
            },
            "performed_via_github_app": None,
        }

    def _review_json(self, r: _Review) -> dict[str, Any]:
        api = f"{self._api}/repos/{r.full_name}/pulls/{r.number}"
        html = f"{HTML_BASE}/{r.full_name}/pull/{r.number}#pullrequestreview-{r.id}"
        return {
            "id": r.id,
            "node_id": _node_id("PullRequestReview", r.id),
            "user": self._user(r.login),
            "body": r.body,
            "state": r.state,
            "html_url": html,
            "pull_request_url": api,
            "_links": {"html": {"href": html}, "pull_request": {"href": api}},
            "submitted_at": r.submitted_at,
            "commit_id": r.commit_id,
            "author_association": self._association(r.full_name, r.login),
        }

    def _review_comment_json(self, c: _ReviewComment) -> dict[str, Any]:
        api = f"{self._api}/repos/{c.full_name}"
        html = f"{HTML_BASE}/{c.full_name}/pull/{c.number}#discussion_r{c.id}"
        return {
            "url": f"{api}/pulls/comments/{c.id}",
            "pull_request_review_id": c.review_id,
            "id": c.id,
            "node_id": _node_id("PullRequestReviewComment", c.id),
            "diff_hunk": c.diff_hunk,
            "path": c.path,
            "position": c.position,
            "original_position": c.position,
            "commit_id": c.commit_id,
            "original_commit_id": c.commit_id,
            "user": self._user(c.login),
            "body": c.body,
            "created_at": c.created_at,
            "updated_at": c.created_at,
            "html_url": html,
            "pull_request_url": f"{api}/pulls/{c.number}",
            "author_association": self._association(c.full_name, c.login),
            "_links": {
                "self": {"href": f"{api}/pulls/comments/{c.id}"},
                "html": {"href": html},
                "pull_request": {"href": f"{api}/pulls/{c.number}"},
            },
            "start_line": c.start_line,
            "original_start_line": c.start_line,
            "start_side": "RIGHT" if c.start_line is not None else None,
            "line": c.line,
            "original_line": c.line,
            "side": "RIGHT",
            "subject_type": "line",
        }

    def _create_review(self, repo: _Repo, pull: _Pull, body: dict[str, Any]) -> _Review:
        """A submitted review, checked as GitHub checks it: each comment on lines of the PR's diff
        (RIGHT side here), a multi-line one within one hunk; nothing is made when one fails."""
        commit_id = body.get("commit_id") or pull.head_sha
        if (
            commit_id != pull.head_sha
        ):  # stricter than GitHub (any commit of the PR): the fake keeps only the head
            raise _Error(
                422, "Unprocessable Entity", errors=["commit_id is not the head of the pull request"]
            )
        event = body.get("event")
        if event in ("COMMENT", "REQUEST_CHANGES") and not body.get("body"):
            raise _Error(422, "Unprocessable Entity", errors=["Review body can not be blank"])
        patches = {f["filename"]: f.get("patch") for f in self._files_json(repo, pull)}
        planned: list[tuple[dict[str, Any], int, str]] = []
        for entry in body.get("comments", []):
            path = entry["path"]
            if path not in patches:
                raise _Error(422, "Unprocessable Entity", errors=["Path could not be resolved"])
            if "position" in entry or entry.get("side", "RIGHT") != "RIGHT" or "line" not in entry:
                raise _Error(
                    422, "Unprocessable Entity", errors=["fake GitHub: only line/side RIGHT comments"]
                )
            line, start = entry["line"], entry.get("start_line")
            if start is not None and (start >= line or entry.get("start_side", "RIGHT") != "RIGHT"):
                raise _Error(422, "Unprocessable Entity", errors=["start_line must precede line"])
            hunk = next((h for h in _patch_hunks(patches[path] or "") if line in h), None)
            if hunk is None:
                raise _Error(
                    422,
                    "Unprocessable Entity",
                    errors=["Pull request review thread line must be part of the diff"],
                )
            if start is not None and start not in hunk:
                raise _Error(
                    422,
                    "Unprocessable Entity",
                    errors=[
                        "Pull request review thread start line must be part of the same hunk as the line."
                    ],
                )
            position, diff_hunk = hunk[line]
            planned.append((entry, position, diff_hunk))
        now = _now()
        state = {"COMMENT": "COMMENTED", "APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}
        review = _Review(
            next(self._ids),
            repo.full_name,
            pull.number,
            self.token_login,
            body.get("body", ""),
            commit_id,
            state.get(event or "", "PENDING"),
            now,
        )
        self._reviews[review.id] = review
        for entry, position, diff_hunk in planned:
            cid = next(self._ids)
            self._review_comments[cid] = _ReviewComment(
                cid,
                repo.full_name,
                pull.number,
                review.id,
                entry["path"],
                entry["line"],
                entry.get("start_line"),
                position,
                diff_hunk,
                entry["body"],
                commit_id,
                self.token_login,
                now,
            )
        return review

    # -- request handling ---------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.hang.is_set():
            while self.hang.is_set() and self._server is not None:
                threading.Event().wait(0.05)  # never answers: the client's timeout must end it
            # The client gave up long ago: answer nothing it could use, without touching the state.
            return Response(b"", status=503)(environ, start_response)
        request = Request(environ)
        with self._lock:
            response = self._handle(request)
        return response(environ, start_response)

    def _violation(self, text: str) -> None:
        self.violations.append(text)

    def _handle(self, request: Request) -> Response:
        method = request.method.upper()
        raw_path = urllib.parse.urlsplit(environ_raw_uri(request)).path
        if not raw_path.startswith(self.prefix + "/"):
            self.requests.append((method, raw_path))
            self._violation(f"{method} {raw_path}: outside the API prefix {self.prefix!r}")
            return self._json(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            )
        path = raw_path[len(self.prefix) :]
        self.requests.append((method, path))
        where = f"{method} {path}"

        # Real Link headers point at /repositories/{id}/...: same resource as /repos/{owner}/{repo}/...
        canonical = path
        m = re.match(r"^/repositories/(\d+)(/.*)?$", path)
        if m:
            repo = next((r for r in self._repos.values() if r.id == int(m.group(1))), None)
            if repo is None:
                return self._error_response(_Error(404, "Not Found"), None)
            canonical = f"/repos/{repo.full_name}{m.group(2) or ''}"

        # -- request validation
        body = request.get_data() if method in WRITE_METHODS else None
        oa_request = _OARequest(
            path=canonical,
            method=method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(list(request.args.items(multi=True))),
                header=Headers(request.headers),
                cookie=ImmutableMultiDict(),
            ),
            content_type=request.content_type or "application/json",
            body=body or None,
        )
        errors = [_describe(e) for e in _openapi().iter_request_errors(oa_request)]
        template: str | None = None
        args: Mapping[str, Any] = {}
        try:
            template, args = _routes().bind("api.github.com").match(canonical, method=method)
        except (NotFound, MethodNotAllowed):
            if not errors:
                errors.append("no such operation in tests/github/openapi.json")
        if errors:
            for e in errors:
                self._violation(f"request {where}: {e}")
            return self._json(
                422,
                {
                    "message": "Validation Failed (fake GitHub: request does not match the OpenAPI description)",
                    "documentation_url": "https://docs.github.com/rest",
                    "errors": errors,
                    "status": "422",
                },
            )
        operation = _spec()["paths"][template][method.lower()]

        # -- failure injection, then the handler
        injected = True
        op_failures = self.fail_ops.get(operation["operationId"])
        if op_failures:
            status = op_failures.pop(0)
            response = self._error_response(
                _Error(status, "Validation Failed" if status == 422 else "Injected failure"), operation
            )
        elif self.fail_next:
            status = self.fail_next.pop(0)
            response = self._json(
                status,
                {"message": "Server Error" if status >= 500 else "Injected failure", "status": str(status)},
            )
        elif self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            request_id = f"FAKE:{len(self.requests):04X}"
            response = self._json(
                403,
                {
                    "message": SECONDARY_RATE_LIMIT.format(request_id=request_id),
                    "documentation_url": SECONDARY_RATE_LIMIT_DOCS,
                    "status": "403",
                },
            )
            response.headers["retry-after"] = "1"
        elif self.read_only and method in WRITE_METHODS:
            response = self._error_response(_Error(403, NOT_ACCESSIBLE), operation)
        else:
            injected = False
            params = {k: urllib.parse.unquote(v) for k, v in args.items()}
            try:
                status, payload, headers = self._dispatch(operation["operationId"], params, request)
                response = self._json(status, payload, headers)
            except _Error as exc:
                response = self._error_response(exc, operation)
        self._add_common_headers(response)

        # -- response validation
        declared = operation.get("responses", {})
        status_key = str(response.status_code)
        if status_key in declared or "default" in declared:
            oa_response = _OAResponse(
                status_code=response.status_code,
                content_type=response.content_type or "",
                headers=response.headers,
                data=response.get_data(),
            )
            for problem in _openapi().iter_response_errors(oa_request, oa_response):
                self._violation(f"response {response.status_code} to {where}: {_describe(problem)}")
        elif not injected and response.status_code < 400:
            self._violation(f"response {response.status_code} to {where}: status not declared by {template}")
        return response

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        response = Response(
            json.dumps(payload) if payload is not None else b"",
            status=status,
            content_type="application/json; charset=utf-8",
        )
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response

    def _error_response(self, exc: _Error, operation: dict[str, Any] | None) -> Response:
        docs = "https://docs.github.com/rest"
        if operation is not None:
            docs = operation.get("externalDocs", {}).get("url", docs)
        return self._json(
            exc.status,
            {"message": exc.message, "documentation_url": docs, "status": str(exc.status), **exc.extra},
        )

    def _add_common_headers(self, response: Response) -> None:
        reset = int(dt.datetime.now(dt.UTC).timestamp()) + 3600
        response.headers.setdefault("x-github-api-version-selected", "2022-11-28")
        response.headers.setdefault("x-github-request-id", f"FAKE:{len(self.requests):08X}")
        response.headers.setdefault("x-ratelimit-limit", "5000")
        response.headers.setdefault("x-ratelimit-remaining", "4999")
        response.headers.setdefault("x-ratelimit-used", "1")
        response.headers.setdefault("x-ratelimit-reset", str(reset))
        response.headers.setdefault("x-ratelimit-resource", "core")

    # -- handlers -------------------------------------------------------------------------

    def _repo(self, params: dict[str, str]) -> _Repo:
        repo = self._repos.get(f"{params['owner']}/{params['repo']}")
        if repo is None:
            raise _Error(404, "Not Found")
        return repo

    def _pull(self, repo: _Repo, number: int) -> _Pull:
        pull = self._pulls.get((repo.full_name, number))
        if pull is None:
            raise _Error(404, "Not Found")
        return pull

    def _comment(self, repo: _Repo, comment_id: int) -> _Comment:
        comment = self._comments.get(comment_id)
        if comment is None or comment.full_name != repo.full_name:
            raise _Error(404, "Not Found")
        return comment

    def _resolve_ref(self, repo: _Repo, ref: str) -> str:
        for (name, _), pull in self._pulls.items():
            if name == repo.full_name and ref == pull.head_ref:
                return pull.head_sha
            if name == repo.full_name and ref == pull.base_ref:
                return pull.base_sha
        return ref

    def _paginate(
        self, request: Request, items: list[Any], link_path: str
    ) -> tuple[list[Any], dict[str, str]]:
        per_page = min(int(request.args.get("per_page", 30)), self.per_page_max, 100)
        per_page = max(per_page, 1)
        page = max(int(request.args.get("page", 1)), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        if last == 1:
            return chunk, {}
        base_query = {k: v for k, v in request.args.items() if k not in ("page", "per_page")}

        def url(n: int) -> str:
            query = urllib.parse.urlencode({**base_query, "per_page": per_page, "page": n})
            return f"<{self._api}{link_path}?{query}>"

        links = []
        if page > 1:
            links += [f'{url(page - 1)}; rel="prev"', f'{url(1)}; rel="first"']
        if page < last:
            links += [f'{url(page + 1)}; rel="next"', f'{url(last)}; rel="last"']
        return chunk, {"Link": ", ".join(links)} if links else {}

    def _dispatch(
        self, operation_id: str, p: dict[str, str], request: Request
    ) -> tuple[int, Any, dict[str, str]]:
        body: dict[str, Any] = request.get_json(silent=True) or {}
        if operation_id == "users/get-authenticated":
            if self.installation_token:
                raise _Error(403, NOT_ACCESSIBLE)
            user = self._user(self.token_login)
            user.update(
                {
                    "name": None,
                    "company": None,
                    "blog": "",
                    "location": None,
                    "email": None,
                    "hireable": None,
                    "bio": None,
                    "twitter_username": None,
                    "public_repos": 0,
                    "public_gists": 0,
                    "followers": 0,
                    "following": 0,
                    "created_at": "2020-01-01T00:00:00Z",
                    "updated_at": "2020-01-01T00:00:00Z",
                    "private_gists": 0,
                    "total_private_repos": 0,
                    "owned_private_repos": 0,
                    "disk_usage": 0,
                    "collaborators": 0,
                    "two_factor_authentication": True,
                    "user_view_type": "private",
                }
            )
            return 200, user, {}
        if operation_id == "rate-limit/get":
            reset = int(dt.datetime.now(dt.UTC).timestamp()) + 3600
            core = {"limit": 5000, "remaining": 4999, "reset": reset, "used": 1}
            other = {"limit": 30, "remaining": 30, "reset": reset, "used": 0}
            return (
                200,
                {"resources": {"core": core, "search": other, "graphql": other}, "rate": core},
                {
                    "X-RateLimit-Limit": "5000",
                    "X-RateLimit-Remaining": "4999",
                    "X-RateLimit-Reset": str(reset),
                },
            )
        if operation_id == "teams/get-membership-for-user-in-org":
            role = self._teams.get((p["org"], p["team_slug"], p["username"]))
            if role is None:
                raise _Error(404, "Not Found")
            url = f"{self._api}/organizations/1/team/1/memberships/{urllib.parse.quote(p['username'])}"
            return 200, {"url": url, "role": role, "state": "active"}, {}

        repo = self._repo(p)
        if operation_id == "repos/get":
            return 200, self._repo_json(repo), {}
        if operation_id == "pulls/get":
            return 200, self._pull_json(repo, self._pull(repo, int(p["pull_number"]))), {}
        if operation_id == "pulls/list-files":
            pull = self._pull(repo, int(p["pull_number"]))
            items, headers = self._paginate(
                request, self._files_json(repo, pull), f"/repositories/{repo.id}/pulls/{pull.number}/files"
            )
            return 200, items, headers
        if operation_id == "issues/list-comments":
            number = int(p["issue_number"])
            if (repo.full_name, number) not in self._issues:
                raise _Error(404, "Not Found")
            since = request.args.get("since")
            comments = [
                self._comment_json(c)
                for c in self._comments.values()
                if (c.full_name, c.issue_number) == (repo.full_name, number)
                and (not since or c.updated_at >= since)
            ]
            items, headers = self._paginate(
                request, comments, f"/repositories/{repo.id}/issues/{number}/comments"
            )
            return 200, items, headers
        if operation_id == "issues/create-comment":
            number = int(p["issue_number"])
            if (repo.full_name, number) not in self._issues:
                raise _Error(404, "Not Found")
            login = self.token_login
            comment = self._new_comment(
                repo.full_name, number, body["body"], login, self._user(login)["type"]
            )
            data = self._comment_json(comment)
            return 201, data, {"Location": data["url"]}
        if operation_id == "issues/get-comment":
            return 200, self._comment_json(self._comment(repo, int(p["comment_id"]))), {}
        if operation_id == "issues/update-comment":
            comment = self._comment(repo, int(p["comment_id"]))
            comment.body = body["body"]
            comment.updated_at = _now()
            return 200, self._comment_json(comment), {}
        if operation_id == "issues/delete-comment":
            self._comment(repo, int(p["comment_id"]))
            del self._comments[int(p["comment_id"])]
            return 204, None, {}
        if operation_id == "pulls/create-review":
            pull = self._pull(repo, int(p["pull_number"]))
            return 200, self._review_json(self._create_review(repo, pull, body)), {}
        if operation_id == "pulls/list-reviews":
            pull = self._pull(repo, int(p["pull_number"]))
            reviews = [
                self._review_json(r)
                for r in self._reviews.values()
                if (r.full_name, r.number) == (repo.full_name, pull.number)
            ]
            items, headers = self._paginate(
                request, reviews, f"/repositories/{repo.id}/pulls/{pull.number}/reviews"
            )
            return 200, items, headers
        if operation_id in ("pulls/update-review", "pulls/list-comments-for-review"):
            pull = self._pull(repo, int(p["pull_number"]))
            review = self._reviews.get(int(p["review_id"]))
            if review is None or (review.full_name, review.number) != (repo.full_name, pull.number):
                raise _Error(404, "Not Found")
            if operation_id == "pulls/update-review":
                if review.login != self.token_login:
                    raise _Error(403, "Forbidden")
                review.body = body["body"]
                return 200, self._review_json(review), {}
            comments = [
                self._review_comment_json(c)
                for c in self._review_comments.values()
                if c.review_id == review.id
            ]
            items, headers = self._paginate(
                request, comments, f"/repositories/{repo.id}/pulls/{pull.number}/reviews/{review.id}/comments"
            )
            return 200, items, headers
        if operation_id == "pulls/delete-review-comment":
            found = self._review_comments.get(int(p["comment_id"]))
            if found is None or found.full_name != repo.full_name:
                raise _Error(404, "Not Found")
            del self._review_comments[found.id]
            return 204, None, {}
        if operation_id == "pulls/list":
            state = request.args.get("state", "open")
            head = request.args.get("head")
            pulls = [
                self._pull_json(repo, pull)
                for (name, _), pull in sorted(self._pulls.items(), key=lambda kv: -kv[1].number)
                if name == repo.full_name
                and state in ("open", "all")
                and (not head or head == f"{self._repos[pull.head_repo].owner}:{pull.head_ref}")
            ]
            items, headers = self._paginate(request, pulls, f"/repositories/{repo.id}/pulls")
            return 200, items, headers
        if operation_id == "actions/list-workflow-runs-for-repo":
            head_sha, event = request.args.get("head_sha"), request.args.get("event")
            runs = [
                self._run_json(repo, run_id, r)
                for run_id, r in sorted(self._runs.items(), reverse=True)
                if r["full_name"] == repo.full_name
                and (not head_sha or r["head_sha"] == head_sha)
                and (not event or r["event"] == event)
            ]
            items, headers = self._paginate(request, runs, f"/repositories/{repo.id}/actions/runs")
            return 200, {"total_count": len(runs), "workflow_runs": items}, headers
        if operation_id == "actions/re-run-workflow":
            run_id = int(p["run_id"])
            if self._runs.get(run_id, {}).get("full_name") != repo.full_name:
                raise _Error(404, "Not Found")
            self.reruns.append(run_id)
            return 201, {}, {}
        if operation_id == "reactions/create-for-issue-comment":
            comment = self._comment(repo, int(p["comment_id"]))
            content, login = body["content"], self.token_login
            existing = self._reactions.setdefault(comment.id, [])
            status = 200
            found = next((r for r in existing if r[1] == content and r[2] == login), None)
            if found is None:
                found = (next(self._ids), content, login, _now())
                existing.append(found)
                status = 201
            rid, content, login, created = found
            return (
                status,
                {
                    "id": rid,
                    "node_id": _node_id("Reaction", rid),
                    "user": self._user(login),
                    "content": content,
                    "created_at": created,
                },
                {},
            )
        if operation_id == "repos/create-commit-status":
            sha = p["sha"]
            sid = next(self._ids)
            now = _now()
            creator = self._user(self.token_login)
            status_json = {
                "url": f"{self._api}/repos/{repo.full_name}/statuses/{sha}",
                "avatar_url": creator["avatar_url"],
                "id": sid,
                "node_id": _node_id("StatusContext", sid),
                "state": body["state"],
                "description": body.get("description"),
                "target_url": body.get("target_url"),
                "context": body.get("context", "default"),
                "created_at": now,
                "updated_at": now,
                "creator": creator,
            }
            self._statuses.setdefault((repo.full_name, sha), []).append(status_json)
            return 201, status_json, {"Location": status_json["url"]}
        if operation_id == "repos/list-commit-statuses-for-ref":
            sha = self._resolve_ref(repo, p["ref"])
            newest_first = list(reversed(self._statuses.get((repo.full_name, sha), [])))
            items, headers = self._paginate(
                request,
                newest_first,
                f"/repositories/{repo.id}/commits/{urllib.parse.quote(p['ref'], safe='')}/statuses",
            )
            return 200, items, headers
        if operation_id == "repos/get-combined-status-for-ref":
            sha = self._resolve_ref(repo, p["ref"])
            latest: dict[str, dict[str, Any]] = {}
            for s in self._statuses.get((repo.full_name, sha), []):
                latest[s["context"]] = s
            states = {s["state"] for s in latest.values()}
            if states & {"error", "failure"}:
                state = "failure"
            elif not states or "pending" in states:
                state = "pending"
            else:
                state = "success"
            simple = [{k: v for k, v in s.items() if k != "creator"} for s in latest.values()]
            api = f"{self._api}/repos/{repo.full_name}"
            return (
                200,
                {
                    "state": state,
                    "statuses": simple,
                    "sha": sha,
                    "total_count": len(simple),
                    "repository": self._repo_json(repo),
                    "commit_url": f"{api}/commits/{sha}",
                    "url": f"{api}/commits/{sha}/status",
                },
                {},
            )
        if operation_id == "repos/get-collaborator-permission-level":
            login = p["username"]
            role = self._roles.get((repo.full_name, login), "none" if repo.private else "read")
            user = self._user(login)
            user.update(
                {
                    "role_name": role,
                    "permissions": {
                        "admin": role == "admin",
                        "maintain": role in ("admin", "maintain"),
                        "push": role in ("admin", "maintain", "write"),
                        "triage": role in ("admin", "maintain", "write", "triage"),
                        "pull": role != "none",
                    },
                }
            )
            return 200, {"permission": COARSE_PERMISSION[role], "role_name": role, "user": user}, {}
        raise AssertionError(f"no handler for {operation_id}")  # every kept operation has one


def environ_raw_uri(request: Request) -> str:
    """The request target as sent (percent-encoding intact), so ``a%2Fb`` stays one path segment."""
    return request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path


def start_fake(ghes: bool = False, *, installation_token: bool = True) -> FakeGitHub:
    """Start a fake on a free loopback port; ``ghes=True`` serves under ``/api/v3`` like GitHub Enterprise."""
    return FakeGitHub(ghes=ghes, installation_token=installation_token).start()


@contextlib.contextmanager
def running_fake(ghes: bool = False, *, installation_token: bool = True) -> Iterator[FakeGitHub]:
    fake = start_fake(ghes, installation_token=installation_token)
    try:
        yield fake
    finally:
        fake.stop()
