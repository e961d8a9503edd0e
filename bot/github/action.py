"""`inflight-guard action`: the GitHub Actions entry point.

`pull_request` / `pull_request_target`: analyse base..head of the PR (head = the PR's head SHA,
never GITHUB_SHA), write the JSON report, annotations, outputs and the job summary, then publish
(mode `all`) the sticky comment and the `inflight-guard` status. `workflow_run`: publish a report an
analysis job uploaded, without running any PR code. A token that cannot write (a fork PR under
`pull_request`) never crashes the job: the summary and outputs still carry the result.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Config, load_config
from bot.errors import UserError
from bot.github.commands import AckBook, comment_body
from bot.github.event import IssueCommentEvent, PullRequestEvent, WorkflowRunEvent, load_event
from bot.histories import ReplayOptions
from bot.model import Report, VerdictLevel
from bot.pipeline import CheckOptions, run_check
from bot.report.render import COMMENT_LIMIT, markdown, render

SUMMARY_LIMIT = 1_000_000  # GITHUB_STEP_SUMMARY takes at most 1 MiB
TWO_WORKFLOWS = (
    "the token cannot write to this repository (a pull request from a fork runs with a read-only "
    "token): the result is in the job summary and the outputs. To comment and set the status on fork "
    "PRs, use the two-workflow setup in docs/github.md (analysis on pull_request, publishing on "
    "workflow_run)."
)


@dataclass
class ActionEnv:
    event_name: str
    event_path: Path
    repository: str
    api_url: str
    workspace: Path
    output: Path | None
    summary: Path | None
    runner_temp: Path
    token: str | None
    run_url: str | None
    config: Config = field(default_factory=Config)
    server_url: str = "https://github.com"

    @classmethod
    def read(cls, token: str | None) -> ActionEnv:
        env = os.environ
        missing = [
            k for k in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_REPOSITORY") if not env.get(k)
        ]
        if missing:
            raise UserError(f"not in GitHub Actions: {', '.join(missing)} not set")
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        run_url = (
            f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
            if env.get("GITHUB_RUN_ID")
            else None
        )
        return cls(
            event_name=env["GITHUB_EVENT_NAME"],
            event_path=Path(env["GITHUB_EVENT_PATH"]),
            repository=env["GITHUB_REPOSITORY"],
            api_url=env.get("GITHUB_API_URL", "https://api.github.com"),
            workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
            output=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            summary=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            runner_temp=Path(env.get("RUNNER_TEMP") or "/tmp"),
            token=token or env.get("GITHUB_TOKEN") or None,
            run_url=run_url,
            server_url=server,
        )


@dataclass
class ActionOptions:
    mode: str = "all"  # all | analyze | publish
    report: Path | None = None
    fail_on: str = "breaking"  # breaking | risky | never
    config: Path | None = None
    histories: Sequence[str] = ()
    python: str | None = None


def log(message: str) -> None:
    print(f"inflight-guard: {message}", file=sys.stderr, flush=True)


def _git(
    workspace: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def git_auth(token: str | None, server_url: str) -> dict[str, str]:
    """Git config for a fetch with the token, as `actions/checkout` would have persisted it, for a
    checkout made with `persist-credentials: false`. Passed through GIT_CONFIG_* to the one git
    process (not in its arguments, not in .git/config) and sent only to the GitHub server."""
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{server_url.rstrip('/')}/.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }


def _fetch(workspace: Path, *args: str, auth: Mapping[str, str]) -> None:
    """`git fetch origin ARGS`: as the checkout left it (public repository, or credentials it
    persisted), then with the token (a second header beside persisted ones would be refused)."""
    quiet = {"GIT_TERMINAL_PROMPT": "0"}
    if _git(workspace, "fetch", "--no-tags", "--quiet", "origin", *args, env=quiet).returncode and auth:
        _git(workspace, "fetch", "--no-tags", "--quiet", "origin", *args, env={**quiet, **auth})


def ensure_commits(
    workspace: Path, number: int, shas: Sequence[str], auth: Mapping[str, str] | None = None
) -> None:
    """Fetch what a shallow `actions/checkout` lacks: full history and the PR's head commit."""
    auth = auth or {}
    if _git(workspace, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        log("shallow checkout: fetching the history the merge-base needs")
        _fetch(workspace, "--unshallow", auth=auth)
    for sha in shas:
        # By SHA (GitHub allows it), else the PR's ref, else every branch of origin.
        for refspec in ([sha], [f"+refs/pull/{number}/head:refs/remotes/origin/pr/{number}"], []):
            if _git(workspace, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0:
                break
            _fetch(workspace, *refspec, auth=auth)
        if _git(workspace, "cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
            raise UserError(f"commit {sha[:12]} is not in {workspace} and could not be fetched")


def _write_output(env: ActionEnv, values: dict[str, str]) -> None:
    if env.output is None:
        return
    with env.output.open("a", encoding="utf-8") as fh:
        for key, value in values.items():
            fh.write(f"{key}={value}\n")


def _write_summary(env: ActionEnv, text: str) -> None:
    if env.summary is None:
        return
    data = text if len(text.encode()) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT // 2] + "\n\n(truncated)\n"
    with env.summary.open("a", encoding="utf-8") as fh:
        fh.write(data + "\n")


def exit_code(report: Report | None, fail_on: str) -> int:
    if report is None or report.verdict.level == VerdictLevel.ERROR:
        return 2
    from bot.github.publish import status_state

    return 1 if status_state(report, fail_on)[0] == "failure" else 0


def _pr_sidecar(report_path: Path) -> Path:
    return report_path.with_name(report_path.stem + ".pr.json")


def analyze(
    env: ActionEnv, event: PullRequestEvent, options: ActionOptions, report_path: Path
) -> Report | None:
    """Run the pipeline on the PR; write the report (and the PR it is about) next to it."""
    pr = event.pull_request
    return analyze_commits(env, pr.number, pr.base.sha, pr.head.sha, options, report_path)


def analyze_commits(
    env: ActionEnv,
    number: int,
    base_sha: str,
    head_sha: str,
    options: ActionOptions,
    report_path: Path | None = None,
    *,
    replay: bool = True,
) -> Report | None:
    """Check base..head (replay only where PR code may run); None when the tool could not."""
    try:
        ensure_commits(env.workspace, number, [base_sha, head_sha], git_auth(env.token, env.server_url))
        report = run_check(
            CheckOptions(
                repo=env.workspace,
                base=base_sha,
                head=head_sha,
                config=options.config,
                replay=ReplayOptions(
                    sources=list(options.histories) if replay else [], python=options.python
                ),
            )
        )
    except UserError as exc:
        log(f"error: {exc.message}")
        _write_summary(env, f"## inflight-guard: error\n\n{exc.message}\n")
        return None
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(report.to_json(), encoding="utf-8")
        _pr_sidecar(report_path).write_text(
            json.dumps({"number": number, "head_sha": head_sha, "base_sha": base_sha}), encoding="utf-8"
        )
    sys.stdout.write(render(report, "github"))  # annotations on the changed lines
    sys.stdout.flush()
    _write_summary(env, render(report, "markdown"))
    return report


def publish(
    env: ActionEnv,
    report: Report | None,
    number: int,
    head_sha: str,
    fail_on: str,
    change: Callable[[AckBook, Report], None] | None = None,
) -> bool:
    """Comment and status (acknowledgements kept and applied); False when the token cannot write."""
    from bot.github.client import make_client
    from bot.github.publish import (
        PublishError,
        find_sticky,
        own_login,
        set_status,
        status_state,
        write_sticky,
    )

    if not env.token:
        log("no token (pass `token:` or GITHUB_TOKEN): nothing published; the result is in the job summary")
        return False
    gh = make_client(env.token, env.api_url)
    repo = gh.get_repo(env.repository, lazy=True)
    try:
        if report is not None:
            existing = find_sticky(repo, number, own_login(gh))
            book = AckBook.from_comment(existing.body if existing else None)
            if change is not None:
                change(book, report)
            report, lapsed = book.apply(report, env.config)
            body = comment_body(render(report, "markdown"), book, lapsed)
            if len(body) > COMMENT_LIMIT:  # the acknowledgements pushed it over: the summary form
                body = comment_body(markdown(report, summary=True), book, lapsed)
                log(
                    "the report is over GitHub's comment limit: the comment is a summary, the job summary has it all"
                )
            how, comment_id = write_sticky(repo, number, existing, body)
            log(f"comment {how} (id {comment_id}) on #{number}")
        state, description = status_state(report, fail_on)
        set_status(repo, head_sha, state, description, env.run_url)
        log(f"status {state} on {head_sha[:12]}: {description}")
        return True
    except PublishError as exc:
        log(TWO_WORKFLOWS if exc.read_only else f"could not publish: {exc.message}")
        return False


def run(env: ActionEnv, options: ActionOptions) -> int:
    """Handle the event; return the exit code."""
    event = load_event(env.event_name, env.event_path)
    env.config = _workspace_config(env, options)
    report_path = options.report or env.runner_temp / "inflight-guard" / "report.json"
    if isinstance(event, PullRequestEvent):
        if options.mode == "publish":
            raise UserError("mode publish reads an uploaded report: run it on workflow_run")
        report = analyze(env, event, options, report_path)
        _write_output(
            env,
            {"verdict": report.verdict.level.value if report else "error", "report": str(report_path)},
        )
        if options.mode == "all":
            publish(env, report, event.pull_request.number, event.pull_request.head.sha, options.fail_on)
        return exit_code(report, options.fail_on)
    if isinstance(event, WorkflowRunEvent):
        return _publish_uploaded(env, event, report_path, options)
    if isinstance(event, IssueCommentEvent):
        from bot.github.slash import handle

        return handle(env, event, options)
    raise UserError(f"unsupported event {env.event_name}")


def _publish_uploaded(
    env: ActionEnv, event: WorkflowRunEvent, report_path: Path, options: ActionOptions
) -> int:
    """Publish what the analysis job uploaded: read two JSON files, never run PR code."""
    if not report_path.exists():
        raise UserError(
            f"{report_path}: no analysis report (download the artifact of the pull_request job first)"
        )
    try:
        report = Report.model_validate_json(report_path.read_text(encoding="utf-8"))
        pr = json.loads(_pr_sidecar(report_path).read_text(encoding="utf-8"))
        number, head_sha = int(pr["number"]), str(pr["head_sha"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{report_path}: not an analysis report of inflight-guard action ({exc})") from None
    if report.head is None or report.head.sha != head_sha or event.workflow_run.head_sha != head_sha:
        raise UserError(
            f"{report_path}: the report is about {head_sha[:12]}, the run about {event.workflow_run.head_sha[:12]}"
        )
    _write_output(env, {"verdict": report.verdict.level.value, "report": str(report_path)})
    _write_summary(env, render(report, "markdown"))
    publish(env, report, number, head_sha, options.fail_on)
    return exit_code(report, options.fail_on)


def _workspace_config(env: ActionEnv, options: ActionOptions) -> Config:
    """The config for publishing and command policy: `--config`, else the checkout's own file, but
    only on issue_comment, whose checkout is the default branch (on pull_request it is the PR's
    code, which must not loosen its own gate; the check itself reads the base branch's config)."""
    path = options.config
    if path is None and env.event_name == "issue_comment":
        path = env.workspace / ".github" / "inflight-guard.yml"
    if path is not None and path.is_file():
        return load_config(path.read_text(encoding="utf-8"), str(path))
    return Config()
