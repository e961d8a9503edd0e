"""`inflight-guard action`: the GitHub Actions entry point.

- `pull_request`: analyse base..head of the PR (head = the PR's head SHA, never GITHUB_SHA), with
  replay and DAG loading (the job's token is read-only for forks; secrets are kept out of reach of
  PR code, `secrets.py`), write the JSON report, annotations, outputs and the job summary, then
  publish (mode `all`).
- `pull_request_target`: the job holds a write token and secrets: static analysis of git objects
  only, nothing of the PR runs.
- `workflow_run`: publish for an analysis job, trusting nothing it uploaded: the PR is found through
  the API by head SHA and repository, the static verdict is recomputed from git objects, and the
  uploaded replay results can only make it worse.
- `issue_comment`: slash commands (`slash.py`).
- `merge_group`: the merge queue's commit, base `merge_group.base_sha` to head
  `merge_group.head_sha`, by static analysis of git objects (the job holds a write token; the
  queued pull requests replayed on their own `pull_request` runs); the status goes on the merge
  group's head, the acknowledgements of the pull request the group was made for count, and no
  comment is written (the group is not a pull request).

Every run ends with a status or a summary: `run_safely` catches whatever escapes, writes the
summary and sets the `error` status when it knows the head.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bot.errors import UserError
from bot.github.analysis import FindingsAt, analyze_commits, base_config
from bot.github.env import ActionEnv, ActionOptions, RunState, log, write_output, write_summary
from bot.github.event import (
    IssueCommentEvent,
    MergeGroupEvent,
    PullRequestEvent,
    WorkflowRunEvent,
    load_event,
)
from bot.github.publish import API_ERRORS, publish, status_state
from bot.model import Finding, ReplayResult, Report, VerdictLevel
from bot.report.render import render

RANK = {
    VerdictLevel.SAFE: 0,
    VerdictLevel.SAFE_WITH_GATES: 1,
    VerdictLevel.BREAKING: 2,
    VerdictLevel.ERROR: 3,
}


def exit_code(report: Report | None, fail_on: str) -> int:
    if report is None or report.verdict.level == VerdictLevel.ERROR:
        return 2
    return 1 if status_state(report, fail_on)[0] == "failure" else 0


def run_safely(env: ActionEnv, options: ActionOptions) -> int:
    """Handle the event; whatever goes wrong, the run ends with a summary and, when the head is
    known, an `error` status. Return the exit code."""
    state = RunState()
    try:
        return run(env, options, state)
    except UserError as exc:
        log(f"error: {exc.message}")
        write_summary(env, f"## inflight-guard: error\n\n{' '.join(exc.message.split())}\n")
        _error_status(env, state, "inflight-guard could not run; see the job summary")
        return exc.exit_code
    except Exception as exc:  # the last line of defence: never a crash without a status
        log(f"internal error: {type(exc).__name__} (set INFLIGHT_GUARD_DEBUG=1 for a traceback)")
        import os
        import traceback

        if os.environ.get("INFLIGHT_GUARD_DEBUG"):
            traceback.print_exc()
        write_summary(
            env, f"## inflight-guard: internal error\n\n`{type(exc).__name__}`: the check did not finish.\n"
        )
        _error_status(env, state, f"internal error ({type(exc).__name__}); see the job log")
        return 2


def _error_status(env: ActionEnv, state: RunState, description: str) -> None:
    from bot.github.client import make_client
    from bot.github.publish import PublishError, github_silent, set_status, within_deadline

    if state.head_sha is None or not env.token or github_silent():
        return

    def work() -> None:
        repo = make_client(env.token or "", env.api_url).get_repo(env.repository, lazy=True)
        set_status(repo, state.head_sha or "", "error", description, env.run_url)

    try:
        within_deadline(30, "error status", work)
        log(f"status error on {state.head_sha[:12]}")
    except (PublishError, *API_ERRORS) as exc:
        log(f"could not set the error status: {type(exc).__name__}")


def run(env: ActionEnv, options: ActionOptions, state: RunState | None = None) -> int:
    """Handle the event; return the exit code."""
    state = state or RunState()
    event = load_event(env.event_name, env.event_path)
    report_path = options.report or env.runner_temp / "inflight-guard" / "report.json"
    if isinstance(event, PullRequestEvent):
        if options.mode == "publish":
            raise UserError("mode publish reads an uploaded report: run it on workflow_run")
        pr = event.pull_request
        state.head_sha = pr.head.sha if options.mode == "all" else None
        # pull_request_target runs with a write token and the base's secrets: nothing of the PR runs.
        run_pr_code = env.event_name == "pull_request"
        report = analyze_commits(
            env, pr.number, pr.base.sha, pr.head.sha, options, report_path, run_pr_code=run_pr_code
        )
        if report is not None:
            env.config = base_config(env, pr.base.sha, options.config)
        write_output(
            env,
            {"verdict": report.verdict.level.value if report else "error", "report": str(report_path)},
        )
        if options.mode == "all":
            findings_at = FindingsAt(env, pr.number, pr.base.sha, options.config)
            done = publish(env, report, pr.number, pr.head.sha, options.fail_on, findings_at)
            report = done.report
        return exit_code(report, options.fail_on)
    if isinstance(event, WorkflowRunEvent):
        return _publish_for_run(env, event, report_path, options, state)
    if isinstance(event, MergeGroupEvent):
        return _merge_group(env, event, report_path, options, state)
    if isinstance(event, IssueCommentEvent):
        from bot.github.slash import handle

        return handle(env, event, options, state)
    raise UserError(f"unsupported event {env.event_name}")


def _merge_group(
    env: ActionEnv, event: MergeGroupEvent, report_path: Path, options: ActionOptions, state: RunState
) -> int:
    """Check the merge queue's commit against the base it will land on; the status goes on it."""
    if options.mode == "publish":
        raise UserError("mode publish reads an uploaded report: run it on workflow_run")
    group = event.merge_group
    number = group.pull_number
    state.head_sha = group.head_sha if options.mode == "all" else None
    report = analyze_commits(
        env, number or 0, group.base_sha, group.head_sha, options, report_path, run_pr_code=False
    )
    if report is not None:
        env.config = base_config(env, group.base_sha, options.config)
    write_output(
        env, {"verdict": report.verdict.level.value if report else "error", "report": str(report_path)}
    )
    if options.mode == "all":
        findings_at = FindingsAt(env, number or 0, group.base_sha, options.config)
        done = publish(env, report, number, group.head_sha, options.fail_on, findings_at, comment=False)
        report = done.report
    return exit_code(report, options.fail_on)


def _publish_for_run(
    env: ActionEnv, event: WorkflowRunEvent, report_path: Path, options: ActionOptions, state: RunState
) -> int:
    """Publish for a finished analysis run without trusting anything it uploaded (a fork's run
    can write any artifact): find the PR by head SHA, recompute the static verdict, and let the
    uploaded replay results only make it worse."""
    from bot.github.client import make_client
    from bot.github.publish import github_silent, within_deadline

    run_info = event.workflow_run
    head_sha = run_info.head_sha
    state.head_sha = head_sha
    if not env.token:
        raise UserError("publishing needs a token that can write (pass `token:` or GITHUB_TOKEN)")
    gh = make_client(env.token, env.api_url)
    repo = gh.get_repo(env.repository, lazy=True)

    def find() -> tuple[int, str] | None:
        head_repo = run_info.head_repository.full_name if run_info.head_repository else None
        owner = head_repo.split("/")[0] if head_repo else None
        pulls = repo.get_pulls(
            state="open",
            **({"head": f"{owner}:{run_info.head_branch}"} if owner and run_info.head_branch else {}),
        )
        for pull in pulls:
            same_repo = head_repo is None or (
                pull.head.repo is not None and pull.head.repo.full_name == head_repo
            )
            if pull.head.sha == head_sha and same_repo:  # a deleted fork has no head repo
                return int(pull.number), str(pull.base.sha)
        return None

    try:
        found = within_deadline(60, "finding the pull request", find)
    except API_ERRORS as exc:
        raise UserError(
            f"cannot find the pull request of {head_sha[:12]}: GitHub failed ({type(exc).__name__})"
        ) from None
    if found is None and github_silent():
        raise UserError(
            f"GitHub did not answer: the pull request of {head_sha[:12]} is unknown, nothing published"
        )
    if found is None:
        raise UserError(f"no open pull request has head {head_sha[:12]}: nothing to publish")
    number, base_sha = found
    report = analyze_commits(env, number, base_sha, head_sha, options, None, run_pr_code=False, summary=False)
    if report is not None:
        env.config = base_config(env, base_sha, options.config)
        report = with_uploaded(report, _uploaded(report_path, head_sha))
        sys.stdout.write(render(report, "github"))
        write_summary(env, render(report, "markdown"))
    write_output(
        env, {"verdict": report.verdict.level.value if report else "error", "report": str(report_path)}
    )
    done = publish(
        env,
        report,
        number,
        head_sha,
        options.fail_on,
        FindingsAt(env, number, base_sha, options.config),
        floor=report.verdict if report is not None else None,
    )
    return exit_code(done.report, options.fail_on)


def _uploaded(report_path: Path, head_sha: str) -> Report | str:
    """The analysis job's report, or why it is not used."""
    if not report_path.exists():
        return "no analysis report was downloaded"
    try:
        uploaded = Report.model_validate_json(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "the uploaded report is not a report of inflight-guard"
    if uploaded.head is None or uploaded.head.sha != head_sha:
        return "the uploaded report is about another commit"
    return uploaded


def with_uploaded(static: Report, uploaded: Report | str) -> Report:
    """The static report, made worse (never better) by what the analysis job uploaded."""
    from bot.config import Config
    from bot.evidence import is_replay
    from bot.policy import Policy, builtin_packs
    from bot.verdict import decide

    if isinstance(uploaded, str):
        return static.model_copy(update={"notes": [*static.notes, f"replay: not counted ({uploaded})"]})
    known = Policy(builtin_packs(), Config())
    failures: list[ReplayResult] = [r for r in uploaded.replay if r.failed]
    # Only findings of replay rules this tool defines: an uploaded report is the fork's to write.
    replay_findings: list[Finding] = [
        f for f in uploaded.findings if is_replay(f) and not f.suppressed and known.find(f.rule) is not None
    ]
    findings = [*static.findings, *replay_findings]
    verdict = decide(findings, static.definitions, static.gates, Config())
    if RANK[static.verdict.level] > RANK[verdict.level]:
        verdict = static.verdict
    note = (
        "replay: results uploaded by the analysis job are advisory here (it may run a fork's code): "
        "they can make the verdict worse, never better"
    )
    if RANK[uploaded.verdict.level] > RANK[verdict.level]:
        verdict = uploaded.verdict.model_copy(
            update={
                "reasons": [
                    *uploaded.verdict.reasons,
                    f"the analysis job's verdict ({uploaded.verdict.level.value}) is worse than the static one",
                ]
            }
        )
    return static.model_copy(
        update={
            "findings": findings,
            "verdict": verdict,
            "replay": failures,
            "replay_summary": uploaded.replay_summary if failures else None,
            "notes": [*static.notes, note],
        }
    )
