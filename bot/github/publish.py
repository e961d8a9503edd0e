"""Publishing: the one sticky comment (marker + our own login) and the fixed-name commit status."""

from __future__ import annotations

import contextlib

from github import Github, GithubException
from github.IssueComment import IssueComment
from github.Repository import Repository
from requests.exceptions import RequestException, RetryError

from bot.model import Report, Severity, VerdictLevel
from bot.report.render import MARKER

STATUS_CONTEXT = "inflight-guard"
ACTIONS_BOT = "github-actions[bot]"
NOT_ACCESSIBLE = "Resource not accessible by integration"


class PublishError(Exception):
    """GitHub refused or failed a write; `read_only` when the token cannot write at all."""

    def __init__(self, message: str, *, read_only: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.read_only = read_only


def _explain(exc: Exception, what: str) -> PublishError:
    if isinstance(exc, GithubException):
        data = exc.data if isinstance(exc.data, dict) else {}
        message = str(data.get("message") or exc)
        read_only = exc.status == 403 and NOT_ACCESSIBLE in message
        return PublishError(f"{what}: GitHub answered {exc.status}: {message}", read_only=read_only)
    if isinstance(exc, RetryError):
        return PublishError(f"{what}: GitHub kept failing after retries ({exc})")
    return PublishError(f"{what}: {type(exc).__name__}: {exc}")


def own_login(gh: Github) -> str:
    """The login our comments are made under: the token's user, or the Actions bot for GITHUB_TOKEN."""
    try:
        return str(gh.get_user().login)
    except GithubException:  # an installation token cannot read /user
        return ACTIONS_BOT


def find_sticky(repo: Repository, number: int, login: str) -> IssueComment | None:
    """Our sticky comment: the marker AND our own login, on any page (never another bot's)."""
    try:
        for comment in repo.get_issue(number).get_comments():
            if MARKER in (comment.body or "") and comment.user is not None and comment.user.login == login:
                return comment
        return None
    except (GithubException, RetryError, RequestException) as exc:
        raise _explain(exc, "sticky comment") from None


def write_sticky(repo: Repository, number: int, existing: IssueComment | None, body: str) -> tuple[str, int]:
    """Edit the sticky comment in place (only when it changed), or create it."""
    try:
        if existing is not None:
            if existing.body != body:
                existing.edit(body)
            return "updated", int(existing.id)
        return "created", int(repo.get_issue(number).create_comment(body).id)
    except (GithubException, RetryError, RequestException) as exc:
        raise _explain(exc, "sticky comment") from None


def status_state(report: Report | None, fail_on: str) -> tuple[str, str]:
    """Return (state, description) of the `inflight-guard` status for a report (None: the tool failed)."""
    if report is None:
        return "error", "inflight-guard could not run; see the job log"
    level = report.verdict.level
    active = [f for f in report.findings if not f.suppressed]
    breaking = sum(1 for f in active if f.severity == Severity.BREAKING)
    if level == VerdictLevel.ERROR:
        return "error", "could not decide (fails closed): see the comment"
    failing = (fail_on == "breaking" and level == VerdictLevel.BREAKING) or (
        fail_on == "risky"
        and (level == VerdictLevel.BREAKING or any(f.severity == Severity.RISKY for f in active))
    )
    if failing:
        return "failure", f"breaking for executions in flight: {breaking} finding(s) need versioning"
    if level == VerdictLevel.SAFE_WITH_GATES:
        return "success", "safe with gates: see the checklist in the comment"
    if level == VerdictLevel.BREAKING:
        return "success", f"breaking, not enforced (fail_on: {fail_on})"
    return "success", "safe for executions in flight"


def set_status(repo: Repository, sha: str, state: str, description: str, target_url: str | None) -> None:
    """Set the fixed-name status on the PR head SHA (what branch protection requires)."""
    try:
        kwargs: dict[str, str] = {"context": STATUS_CONTEXT, "description": description[:140]}
        if target_url:
            kwargs["target_url"] = target_url
        repo.get_commit(sha).create_status(state, **kwargs)
    except (GithubException, RetryError, RequestException) as exc:
        raise _explain(exc, "commit status") from None


def react(comment: IssueComment, content: str) -> None:
    """Best effort: a reaction that cannot be made is not worth failing a command for."""
    with contextlib.suppress(GithubException, RetryError, RequestException):
        comment.create_reaction(content)


def reply(repo: Repository, number: int, body: str) -> None:
    try:
        repo.get_issue(number).create_comment(body)
    except (GithubException, RetryError, RequestException) as exc:
        raise _explain(exc, "reply") from None
