"""Handling an `issue_comment` event: parse, authorize, react, act, and recompute the status.

Runs in the base repository's context (a write token): it reads the PR's commits as git objects
for the static check and never executes PR code, so `replay` is refused here.
"""

from __future__ import annotations

from github import Github, GithubException
from github.IssueComment import IssueComment
from github.Repository import Repository
from requests.exceptions import RequestException, RetryError

from bot.errors import UserError
from bot.github.action import ActionEnv, ActionOptions, analyze_commits, log, publish
from bot.github.commands import HELP, AckBook, Command, is_bot, parse, refusal
from bot.github.event import IssueCommentEvent
from bot.model import Report


def handle(env: ActionEnv, event: IssueCommentEvent, options: ActionOptions) -> int:
    if event.issue.pull_request is None:
        log("comment on an issue, not a pull request: nothing to do")
        return 0
    if event.action != "created":
        return 0
    parsed = parse(event.comment.body)
    if parsed is None:
        log("not an /inflight command: nothing to do")
        return 0
    author = event.comment.user
    if is_bot(author.login, author.type):
        log(f"command from a bot (@{author.login}) ignored")
        return 0
    if not env.token:
        raise UserError("slash commands need a token that can write (pass `token:` or GITHUB_TOKEN)")
    from bot.github.client import make_client
    from bot.github.publish import PublishError, react, reply

    gh = make_client(env.token, env.api_url)
    repo = gh.get_repo(env.repository, lazy=True)
    number = event.issue.number
    comment = repo.get_issue(number).get_comment(event.comment.id)
    try:
        if isinstance(parsed, str):
            react(comment, "-1")
            reply(repo, number, f"@{author.login} {parsed}")
            return 0
        command: Command = parsed
        if command.verb == "help":
            react(comment, "+1")
            reply(repo, number, HELP)
            return 0
        if command.verb == "explain":
            return _explain(repo, number, comment, command, author.login)
        role = _role(repo, author.login)
        pull = repo.get_pull(number)
        in_team = _in_team(gh, env, author.login)
        why = refusal(command, author.login, role, pull.user.login, env.config, in_team)
        if why is None and command.verb == "replay":
            why = (
                "replay runs the pull request's code, so it runs only in the pull_request workflow: "
                "push a commit or re-run that workflow"
            )
        if why is not None:
            react(comment, "-1")
            reply(repo, number, f"@{author.login} refused: {why}.")
            return 0
        react(comment, "eyes")
        return _recheck(
            env, options, number, pull.base.sha, pull.head.sha, command, author.login, comment, repo
        )
    except PublishError as exc:
        log(f"could not answer the command: {exc.message}")
        return 2


def _role(repo: Repository, login: str) -> str:
    try:
        return str(repo.get_collaborator_role_name(login))
    except (GithubException, RetryError, RequestException):
        return "none"


def _in_team(gh: Github, env: ActionEnv, login: str) -> bool:
    for entry in env.config.ack.allowed_teams:
        org, _, team = entry.partition("/")
        try:
            membership = gh.get_organization(org).get_team_by_slug(team).get_team_membership(login)
            if membership.state == "active":
                return True
        except (GithubException, RetryError, RequestException):
            continue
    return False


def _explain(repo: Repository, number: int, comment: IssueComment, command: Command, login: str) -> int:
    from bot.config import Config
    from bot.docs import rule_markdown
    from bot.github.publish import react, reply
    from bot.policy import Policy, builtin_packs

    rule = Policy(builtin_packs(), Config()).find(command.args[0])
    if rule is None:
        react(comment, "-1")
        reply(repo, number, f"@{login} no rule `{command.args[0]}`: `inflight-guard rules` lists them.")
        return 0
    react(comment, "+1")
    reply(repo, number, rule_markdown(rule, level=3))
    return 0


def _recheck(
    env: ActionEnv,
    options: ActionOptions,
    number: int,
    base_sha: str,
    head_sha: str,
    command: Command,
    login: str,
    comment: IssueComment,
    repo: Repository,
) -> int:
    from bot.github.publish import react, reply

    # Never replay here: this job holds a write token, and replay would run the PR's code.
    report = analyze_commits(env, number, base_sha, head_sha, options, replay=False)
    matched_none = False

    def change(book: AckBook, current: Report) -> None:
        nonlocal matched_none
        if command.verb == "ack":
            matched_none = not book.add(current.findings, command.args[0], login, command.reason)
        elif command.verb == "unack":
            book.remove(command.args[0])

    published = publish(env, report, number, head_sha, options.fail_on, change)
    react(comment, "+1" if published and report is not None and not matched_none else "-1")
    if matched_none:
        reply(
            repo,
            number,
            f"@{login} no open breaking or risky finding matches `{command.args[0]}` "
            "(replay failures cannot be acknowledged).",
        )
    return 0
