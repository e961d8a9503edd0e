"""Publishing: the `inflight-guard` commit status and the one sticky comment.

One path for every entry point (`pull_request`, `workflow_run`, `issue_comment`): list the PR's
comments once, read the acknowledgements from them (`acks.py`), set the status, then write the
comment. The status never waits on the comment, and the whole step has a deadline in seconds: an
API that fails or never answers ends in a logged line, not a hung or crashed job.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from github import Github, GithubException
from github.IssueComment import IssueComment
from github.Repository import Repository
from requests.exceptions import RequestException, RetryError

from bot.config import Config
from bot.evidence import is_replay
from bot.github.acks import Applied, Ledger, PostedComment, apply_ledger, read_ledger, synthesized
from bot.github.comment import comment_body
from bot.github.env import ActionEnv, log
from bot.model import Finding, Report, Severity, Verdict, VerdictLevel
from bot.report.render import MARKER

STATUS_CONTEXT = "inflight-guard"
ACTIONS_BOT = "github-actions[bot]"
NOT_ACCESSIBLE = "Resource not accessible by integration"
PUBLISH_DEADLINE = 45  # seconds for the whole publishing step (statuses, comments, reactions)
REPLAY_FAILED = "replay failed"  # how the status says replay failed (a static-only job keeps it)
TWO_WORKFLOWS = (
    "the token cannot write to this repository (a pull request from a fork runs with a read-only "
    "token): the result is in the job summary and the outputs. To comment and set the status on fork "
    "PRs, use the two-workflow setup in docs/github.md (analysis on pull_request, publishing on "
    "workflow_run)."
)
API_ERRORS = (GithubException, RetryError, RequestException)

T = TypeVar("T")


class PublishError(Exception):
    """GitHub refused or failed a write; `read_only` when the token cannot write at all."""

    def __init__(self, message: str, *, read_only: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.read_only = read_only


def explain(exc: BaseException, what: str) -> PublishError:
    """One line for a failed call: the status and GitHub's own message, or the error's type."""
    if isinstance(exc, GithubException):
        data = exc.data if isinstance(exc.data, dict) else {}
        message = " ".join(str(data.get("message") or "").split())[:200]
        read_only = exc.status == 403 and NOT_ACCESSIBLE in message
        return PublishError(f"{what}: GitHub answered {exc.status}: {message}", read_only=read_only)
    if isinstance(exc, RetryError):
        return PublishError(f"{what}: GitHub kept failing after retries")
    return PublishError(f"{what}: {type(exc).__name__} (no usable answer from GitHub)")


def own_login(gh: Github) -> str:
    """The login our comments are made under: the token's user, or the Actions bot for GITHUB_TOKEN.

    Raises PublishError when GitHub cannot say (5xx, rate limit, no answer): guessing could make a
    second sticky comment."""
    try:
        return str(gh.get_user().login)
    except GithubException as exc:
        if exc.status in (401, 403) and NOT_ACCESSIBLE in str(exc.data):
            return ACTIONS_BOT  # an installation token cannot read /user
        raise explain(exc, "who am I (GET /user)") from None
    except (RetryError, RequestException) as exc:
        raise explain(exc, "who am I (GET /user)") from None


def list_comments(repo: Repository, number: int) -> list[PostedComment]:
    """Every comment of the PR, with GitHub's own author identity and times."""
    try:
        return [
            PostedComment(
                id=int(c.id),
                login=c.user.login if c.user is not None else "",
                user_type=c.user.type if c.user is not None else "",
                body=c.body or "",
                created_at=c.created_at,
                updated_at=c.updated_at,
            )
            for c in repo.get_issue(number).get_comments()
        ]
    except API_ERRORS as exc:
        raise explain(exc, "list comments") from None


def ours(comments: Sequence[PostedComment], login: str) -> list[PostedComment]:
    """Our sticky comments, oldest first: made under our login, the marker as their first line."""
    return sorted(
        (c for c in comments if c.login == login and c.body.split("\n", 1)[0].strip() == MARKER),
        key=lambda c: (c.created_at, c.id),
    )


def write_sticky(repo: Repository, number: int, existing: PostedComment | None, body: str) -> tuple[str, int]:
    """Edit the sticky comment in place (only when it changed), or create it."""
    try:
        if existing is not None:
            if existing.body != body:
                repo.get_issue(number).get_comment(existing.id).edit(body)
            return "updated", existing.id
        return "created", int(repo.get_issue(number).create_comment(body).id)
    except API_ERRORS as exc:
        raise explain(exc, "sticky comment") from None


def drop_duplicates(repo: Repository, number: int, login: str) -> None:
    """Two runs at once can each create the sticky comment: keep the oldest, delete the others."""
    extra = ours(list_comments(repo, number), login)[1:]
    for c in extra:
        with contextlib.suppress(*API_ERRORS):
            repo.get_issue(number).get_comment(c.id).delete()
            log(f"deleted a second sticky comment (id {c.id}) made by a concurrent run")


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
    # Replay proof a static-only job cannot see again keeps the status failing there (REPLAY_FAILED);
    # a synthesized failure explained by a static finding stands or falls with that finding.
    if failing and any(
        is_replay(f)
        and f.severity == Severity.BREAKING
        and not (synthesized(f) and f.change is not None and f.change.details.get("explained_by"))
        for f in active
    ):
        return "failure", f"{REPLAY_FAILED}: {breaking} breaking finding(s), replay included"
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
    except API_ERRORS as exc:
        raise explain(exc, "commit status") from None


def _rank(verdict: Verdict) -> int:
    return list(VerdictLevel).index(verdict.level)  # safe < safe_with_gates < breaking < error


def _replay_failed_before(repo: Repository, sha: str) -> bool:
    """True when our newest status on `sha` says replay failed (a forged one only makes it worse);
    True too when GitHub cannot say: a static job never turns green what it cannot check."""
    try:
        for status in repo.get_commit(sha).get_combined_status().statuses:  # the newest per context
            if status.context == STATUS_CONTEXT:
                return (status.description or "").startswith(REPLAY_FAILED)
    except API_ERRORS:
        return True
    return False


def react(comment: IssueComment, content: str) -> None:
    """Best effort: a reaction that cannot be made is not worth failing a command for."""
    with contextlib.suppress(*API_ERRORS):
        comment.create_reaction(content)


def reply(repo: Repository, number: int, body: str) -> None:
    try:
        repo.get_issue(number).create_comment(body)
    except API_ERRORS as exc:
        raise explain(exc, "reply") from None


_silent = threading.Event()  # set once GitHub let a deadline pass: later steps do not wait again


def github_silent() -> bool:
    """True when GitHub already let a deadline pass in this run."""
    return _silent.is_set()


def publish_deadline() -> float:
    """Seconds the publishing step may take: `INFLIGHT_GUARD_PUBLISH_DEADLINE`, else 45."""
    try:
        return max(1.0, float(os.environ.get("INFLIGHT_GUARD_PUBLISH_DEADLINE") or PUBLISH_DEADLINE))
    except ValueError:
        return PUBLISH_DEADLINE


def within_deadline(seconds: float, what: str, work: Callable[[], T], *, silence: bool = True) -> T | None:
    """Run `work` with a deadline (never past `publish_deadline()`): None, logged, when GitHub did
    not let it finish in time."""
    seconds = min(seconds, publish_deadline())
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # carried to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="inflight-guard-publish")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        log(f"{what}: GitHub did not answer within {seconds:.0f} s; stopped waiting")
        if silence:
            _silent.set()
        return None
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")  # type: ignore[return-value]


@dataclass
class Published:
    report: Report | None
    ledger: Ledger = field(default_factory=Ledger)
    applied: Applied = field(default_factory=Applied)
    status: bool = False
    comment: bool = False
    review: bool = False


def locked_rules(config: Config) -> Callable[[str], bool]:
    from bot.policy import Policy, builtin_packs

    policy = Policy(builtin_packs(), config)

    def locked(rule_id: str) -> bool:
        rule = policy.find(rule_id)
        return rule is not None and rule.locked

    return locked


def publish(
    env: ActionEnv,
    report: Report | None,
    number: int | None,
    head_sha: str,
    fail_on: str,
    findings_at: Callable[[str], Sequence[Finding] | None],
    *,
    static_only: bool = False,
    floor: Verdict | None = None,
    suggest: bool = True,
    comment: bool = True,
) -> Published:
    """Status then comment, acknowledgements read from the PR's comments; never raises.

    `static_only`: this job replayed nothing (it holds a write token), so a replay failure the
    `pull_request` run reported on this head stands, whatever the static verdict says.
    `suggest`: after the comment, replace the review holding the outline as suggestions.
    `comment`: False for a status alone (a merge group); `number` None: no pull request to read
    acknowledgements from.
    """
    from bot.github.client import make_client

    deadline = publish_deadline()
    if not env.token:
        log("no token (pass `token:` or GITHUB_TOKEN): nothing published; the result is in the job summary")
        return Published(report)
    gh = make_client(env.token, env.api_url)
    repo = gh.get_repo(env.repository, lazy=True)
    done = Published(report)

    comments: list[PostedComment] | None = None

    def read() -> list[PostedComment]:
        assert number is not None
        author = repo.get_pull(number).user.login
        posted = list_comments(repo, number)
        done.ledger = read_ledger(posted, author, env.config, role_lookup(repo), team_lookup(gh, env))
        return posted

    def write() -> None:
        state, description = status_state(done.report, fail_on)
        if static_only and state == "success" and _replay_failed_before(repo, head_sha):
            # This job ran no replay: it cannot clear a replay failure the pull_request run found.
            state, description = (
                "failure",
                f"{REPLAY_FAILED} on the pull_request run: /inflight replay re-runs it",
            )
            log("the last pull_request run's replay failed on this head: the status stays failure")
        try:
            set_status(repo, head_sha, state, description, env.run_url)
            done.status = True
            log(f"status {state} on {head_sha[:12]}: {description}")
        except PublishError as exc:
            log(TWO_WORKFLOWS if exc.read_only else f"could not set the status: {exc.message}")
            if exc.read_only:
                return
        if done.report is not None and comments is not None and comment and number is not None:
            login = _comment(gh, repo, number, head_sha, done, comments)
            if login is not None and suggest:
                _suggest(gh, repo, number, head_sha, done, login)

    try:
        # 1. GitHub's record: the PR's comments and who may acknowledge (within the deadline).
        if report is not None and number is not None:
            try:
                # A slow read (many comments) must not cost the status: it does not silence GitHub.
                comments = within_deadline(deadline, "reading the acknowledgements", read, silence=False)
            except API_ERRORS as exc:
                log(f"{explain(exc, 'acknowledgements').message}: none counted")
            except PublishError as exc:
                log(f"{exc.message}: no acknowledgement counted")
            # 2. Local work, no deadline: the findings of the heads the acks name (git objects).
            if comments is not None:
                done.report, done.applied = apply_ledger(
                    report, done.ledger, findings_at, locked_rules(env.config), env.config
                )
                if (
                    floor is not None
                    and done.report is not None
                    and _rank(done.report.verdict) < _rank(floor)
                ):
                    done.report = done.report.model_copy(update={"verdict": floor})
        # 3. The status, then the comment (within the deadline).
        if not github_silent():
            within_deadline(deadline, "publishing", write)
    except Exception as exc:  # anything the client raised that the steps did not expect
        log(f"publishing stopped: {type(exc).__name__}")
    return done


def _comment(
    gh: Github, repo: Repository, number: int, head_sha: str, done: Published, comments: list[PostedComment]
) -> str | None:
    """Write the sticky comment (the summary form when GitHub refuses the full one with 422);
    return our login, None when the comment could not be written."""
    assert done.report is not None
    try:
        login = own_login(gh)
        mine = ours(comments, login)
        body = comment_body(done.report, done.ledger, done.applied, head_sha)
        try:
            how, comment_id = write_sticky(repo, number, mine[0] if mine else None, body)
        except PublishError as exc:
            if "answered 422" not in exc.message:
                raise
            log(f"{exc.message}: posting the summary form instead")
            body = comment_body(done.report, done.ledger, done.applied, head_sha, summary=True)
            how, comment_id = write_sticky(repo, number, mine[0] if mine else None, body)
        done.comment = True
        log(f"comment {how} (id {comment_id}) on #{number}")
        if how == "created":
            drop_duplicates(repo, number, login)
        return login
    except PublishError as exc:
        log(TWO_WORKFLOWS if exc.read_only else f"could not write the comment: {exc.message}")
        return None


def _suggest(gh: Github, repo: Repository, number: int, head_sha: str, done: Published, login: str) -> None:
    """Replace the review holding the outline as suggestions (the comment keeps the whole diff)."""
    from bot.github.suggestions import publish_suggestions

    assert done.report is not None
    try:
        log(publish_suggestions(gh, repo, number, head_sha, done.report.plan.outline, login))
        done.review = True
    except API_ERRORS as exc:
        log(
            f"could not post the suggestions (the outline is in the comment): {explain(exc, 'review').message}"
        )


def role_lookup(repo: Repository) -> Callable[[str], str]:
    def role(login: str) -> str:
        try:
            return str(repo.get_collaborator_role_name(login))
        except API_ERRORS:
            return "none"  # unknown counts as no right to acknowledge

    return role


def team_lookup(gh: Github, env: ActionEnv) -> Callable[[str], bool]:
    def in_team(login: str) -> bool:
        for entry in env.config.ack.allowed_teams:
            org, _, team = entry.partition("/")
            try:
                membership = gh.get_organization(org).get_team_by_slug(team).get_team_membership(login)
                if membership.state == "active":
                    return True
            except API_ERRORS:
                continue
        return False

    return in_team
