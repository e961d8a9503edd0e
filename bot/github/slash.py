"""Handling an `issue_comment` event: parse, authorize, react, act, and publish again.

Runs in the base repository's context with a write token: it reads the PR's commits as git
objects for a static check and never executes PR code (`replay` is refused here). An `ack` is not
stored anywhere: publishing reads every `/inflight ack` comment of the PR again (`acks.py`), so
this handler only checks the command, says why when it is refused, and republishes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from github.IssueComment import IssueComment
from github.Repository import Repository

from bot.errors import UserError
from bot.github.acks import ackable, matches
from bot.github.analysis import FindingsAt, analyze_commits, base_config, ensure_commits
from bot.github.commands import HELP, WRITERS, Command, is_bot, parse, refusal
from bot.github.env import ActionEnv, ActionOptions, RunState, log, write_summary
from bot.github.event import IssueCommentEvent
from bot.github.publish import (
    API_ERRORS,
    PublishError,
    explain,
    locked_rules,
    publish,
    react,
    reply,
    team_lookup,
    within_deadline,
)
from bot.report.render import code, escape_markdown

Answer = Callable[[str, str | None, IssueComment | None], None]  # (reaction, reply, comment)
CONTEXT_DEADLINE = 45  # seconds to read the comment, the author's role and the PR
ANSWER_DEADLINE = 30  # seconds for a reaction and a reply


@dataclass
class Context:
    comment: IssueComment
    role: str
    pr_author: str
    base_sha: str
    head_sha: str


def handle(env: ActionEnv, event: IssueCommentEvent, options: ActionOptions, state: RunState) -> int:
    if event.issue.pull_request is None:
        log("comment on an issue, not a pull request: nothing to do")
        return 0
    if event.action != "created":
        return 0
    parsed = parse(event.comment.body)
    if parsed is None:
        log("not an /inflight command: nothing to do")
        return 0
    login = event.comment.user.login
    if is_bot(login, event.comment.user.type):
        log(f"command from a bot (@{login}) ignored")
        return 0
    if not env.token:
        raise UserError("slash commands need a token that can write (pass `token:` or GITHUB_TOKEN)")
    from bot.github.client import make_client

    gh = make_client(env.token, env.api_url)
    repo = gh.get_repo(env.repository, lazy=True)
    number = event.issue.number

    def context() -> Context:
        pull = repo.get_pull(number)
        role = _role(repo, login)
        return Context(
            comment=repo.get_issue(number).get_comment(event.comment.id),
            role=role,
            pr_author=pull.user.login,
            base_sha=str(pull.base.sha),
            head_sha=str(pull.head.sha),
        )

    def answer(content: str, text: str | None = None, comment: IssueComment | None = None) -> None:
        def work() -> None:
            if comment is not None:
                react(comment, content)
            if text is not None:
                reply(repo, number, text)

        within_deadline(ANSWER_DEADLINE, "answering the command", work)

    try:
        ctx = within_deadline(CONTEXT_DEADLINE, "reading the pull request", context)
        if ctx is None:
            write_summary(env, "## inflight-guard: the command was not answered\n\nGitHub did not answer.\n")
            return 2
        if isinstance(parsed, str):
            answer("-1", f"@{login} {escape_markdown(parsed)}", ctx.comment)
            return 0
        if parsed.verb == "help":
            answer("+1", HELP, ctx.comment)
            return 0
        if parsed.verb == "explain":
            return _explain(parsed, login, ctx.comment, answer)
        if ctx.role not in WRITERS:  # before any fetch: a visitor's comment costs one reply
            answer(
                "-1",
                f"@{login} refused: {escape_markdown(refusal(parsed, login, ctx.role, '', env.config))}.",
                ctx.comment,
            )
            return 0
        # Only a writer's state-changing command may end with an `error` status on the head.
        state.head_sha = ctx.head_sha
        # The policy (who may ack) is the base commit's config, never the PR's.
        ensure_commits(env, number, [ctx.base_sha, ctx.head_sha])
        env.config = base_config(env, ctx.base_sha, options.config)
        in_team = ctx.role in ("admin", "maintain", "write") and bool(
            within_deadline(CONTEXT_DEADLINE, "team membership", lambda: team_lookup(gh, env)(login))
        )
        why = refusal(parsed, login, ctx.role, ctx.pr_author, env.config, in_team)
        if why is None and parsed.verb == "replay":
            return _rerun_analysis(env, repo, login, ctx, answer)
        if why is not None:
            answer("-1", f"@{login} refused: {escape_markdown(why)}.", ctx.comment)
            return 0
        answer("eyes", None, ctx.comment)
        return _act(env, options, parsed, login, ctx, number, answer)
    except (PublishError, *API_ERRORS) as exc:
        message = exc.message if isinstance(exc, PublishError) else explain(exc, "command").message
        log(f"could not answer the command: {message}")
        write_summary(env, f"## inflight-guard: the command was not answered\n\n{escape_markdown(message)}\n")
        return 2


def _act(
    env: ActionEnv,
    options: ActionOptions,
    command: Command,
    login: str,
    ctx: Context,
    number: int,
    answer: Answer,
) -> int:
    """recheck / ack / unack: a static check of the head (no PR code runs here), then publish."""
    report = analyze_commits(env, number, ctx.base_sha, ctx.head_sha, options, run_pr_code=False)
    findings_at = FindingsAt(env, number, ctx.base_sha, options.config)
    say = answer
    if command.verb == "ack" and report is not None:
        key, sha = command.args
        seen = report.findings if ctx.head_sha.startswith(sha) else findings_at(sha)
        if seen is None:
            say(
                "-1",
                f"@{login} {code(sha[:12])} is not a commit this repository has (or can fetch): name the head the report shows.",
                ctx.comment,
            )
            return 0
        locked = locked_rules(env.config)
        if not any(matches(key, f) and ackable(f, locked) for f in seen):
            say(
                "-1",
                f"@{login} no open breaking or risky finding matches {code(key)} at {code(sha[:12])} "
                "(replay failures and locked rules cannot be acknowledged).",
                ctx.comment,
            )
            return 0
    done = publish(env, report, number, ctx.head_sha, options.fail_on, findings_at, static_only=True)
    say("+1" if done.status and report is not None else "-1", None, ctx.comment)
    return 0


def _rerun_analysis(env: ActionEnv, repo: Repository, login: str, ctx: Context, answer: Answer) -> int:
    """`/inflight replay`: replay runs the PR's code, so it never runs in this job (it holds a write
    token): re-run the `pull_request` analysis run of the PR's head instead."""
    wanted = set(env.config.github.analysis_workflows)

    def rerun() -> list[str]:
        done: list[str] = []
        seen: set[str] = set()
        for run in repo.get_workflow_runs(head_sha=ctx.head_sha, event="pull_request"):
            if run.path in wanted and run.path not in seen:  # newest first: the latest run of each
                seen.add(run.path)
                run.rerun()
                done.append(f"[{run.path.rsplit('/', 1)[-1]}]({run.html_url})")
        return done

    started = within_deadline(CONTEXT_DEADLINE, "re-running the analysis", rerun)
    if not started:
        names = ", ".join(code(w) for w in sorted(wanted))
        answer(
            "-1",
            f"@{login} replay runs the pull request's code, so it runs only in the pull_request workflow, "
            f"and no run of {names} (`github.analysis_workflows`) exists for head {code(ctx.head_sha[:12])}: "
            "push a commit, or re-run that workflow.",
            ctx.comment,
        )
        return 0
    answer(
        "+1",
        f"@{login} re-running the analysis of {code(ctx.head_sha[:12])}: {', '.join(started)}.",
        ctx.comment,
    )
    return 0


def _role(repo: Repository, login: str) -> str:
    try:
        return str(repo.get_collaborator_role_name(login))
    except API_ERRORS:
        return "none"


def _explain(command: Command, login: str, comment: IssueComment, answer: Answer) -> int:
    from bot.config import Config
    from bot.docs import rule_markdown
    from bot.policy import Policy, builtin_packs

    rule = Policy(builtin_packs(), Config()).find(command.args[0])
    if rule is None:
        answer("-1", f"@{login} no rule {code(command.args[0])}: `inflight-guard rules` lists them.", comment)
        return 0
    answer("+1", rule_markdown(rule, level=3), comment)
    return 0
