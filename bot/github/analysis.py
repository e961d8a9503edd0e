"""Running the check inside the Action: the PR's commits as git objects, then the pipeline."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Config
from bot.errors import UserError
from bot.github.env import ActionEnv, ActionOptions, log, write_summary
from bot.histories import ReplayOptions
from bot.model import Finding, Report
from bot.pipeline import CheckOptions, run_check
from bot.report.render import render


def git_auth(token: str | None, server_url: str) -> dict[str, str]:
    """Git config for a fetch with the token, as `actions/checkout` would have persisted it, for a
    checkout made with `persist-credentials: false`: passed through GIT_CONFIG_* to one git
    process (not in its arguments, not in .git/config) and sent only to the GitHub server."""
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{server_url.rstrip('/')}/.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }


GIT_TIMEOUT = 300  # seconds for one git command (a fetch from a remote that stalls)


def _git(env: ActionEnv, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = ["git", *args]
    try:
        return subprocess.run(
            command,
            cwd=env.workspace,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(extra or {})},
            timeout=GIT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        log(f"git {args[0]} took over {GIT_TIMEOUT} s: stopped")
        return subprocess.CompletedProcess(command, 124, "", "timed out")


def _fetch(env: ActionEnv, *args: str) -> None:
    """`git fetch origin ARGS` as the checkout left it (a public repository, or credentials it
    persisted), then once with the token (a second header beside persisted ones is refused)."""
    if _git(env, "fetch", "--no-tags", "--quiet", "origin", *args).returncode:
        auth = git_auth(env.token, env.server_url)
        if auth:
            _git(env, "fetch", "--no-tags", "--quiet", "origin", *args, extra=auth)


def ensure_commits(env: ActionEnv, number: int, shas: Sequence[str]) -> None:
    """Fetch what a shallow `actions/checkout` lacks: full history and the PR's commits."""
    if _git(env, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        log("shallow checkout: fetching the history the merge-base needs")
        _fetch(env, "--unshallow")
    for sha in shas:
        # By SHA (GitHub allows it), else the PR's ref, else every branch of origin.
        for refspec in ([sha], [f"+refs/pull/{number}/head:refs/remotes/origin/pr/{number}"], []):
            if _git(env, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0:
                break
            _fetch(env, *refspec)
        if _git(env, "cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
            raise UserError(f"commit {sha[:12]} is not in {env.workspace} and could not be fetched")


def pr_sidecar(report_path: Path) -> Path:
    return report_path.with_name(report_path.stem + ".pr.json")


def analyze_commits(
    env: ActionEnv,
    number: int,
    base_sha: str,
    head_sha: str,
    options: ActionOptions,
    report_path: Path | None = None,
    *,
    run_pr_code: bool,
    summary: bool = True,
) -> Report | None:
    """Check base..head; None (with the reason in the summary) when the tool could not.

    `run_pr_code` is False in every job that holds a write token: static analysis only. With
    `summary`, the report goes to the job summary and its annotations to stdout.
    """
    try:
        ensure_commits(env, number, [base_sha, head_sha])
        report = run_check(
            CheckOptions(
                repo=env.workspace,
                base=base_sha,
                head=head_sha,
                config=options.config,
                replay=ReplayOptions(
                    sources=list(options.histories) if run_pr_code else [], python=options.python
                ),
                run_pr_code=run_pr_code,
            )
        )
    except UserError as exc:
        log(f"error: {exc.message}")
        write_summary(env, f"## inflight-guard: error\n\n{exc.message}\n")
        return None
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(report.to_json(), encoding="utf-8")
        pr_sidecar(report_path).write_text(
            json.dumps({"number": number, "head_sha": head_sha, "base_sha": base_sha}), encoding="utf-8"
        )
    if summary:
        sys.stdout.write(render(report, "github"))  # annotations on the changed lines
        sys.stdout.flush()
        write_summary(env, render(report, "markdown"))
    return report


def base_config(env: ActionEnv, base_sha: str, explicit: Path | None) -> Config:
    """The policy for publishing and commands: `--config`, else the config file of the PR's base
    commit, read from git objects (never the PR's own: a PR must not loosen its own gate)."""
    from bot.pipeline import load_effective_config
    from bot.repo import open_repo, resolve_commit

    repo = open_repo(env.workspace)
    base = resolve_commit(repo, base_sha)
    return load_effective_config(repo, base, base, explicit).config


class FindingsAt:
    """The findings of another head of the PR (the one an ack names), by static analysis of git
    objects only; None when that commit cannot be read. Cached per commit."""

    def __init__(self, env: ActionEnv, number: int, base_sha: str, config: Path | None) -> None:
        self.env, self.number, self.base_sha, self.config = env, number, base_sha, config
        self._seen: dict[str, list[Finding] | None] = {}

    def __call__(self, sha: str) -> list[Finding] | None:
        if sha not in self._seen:
            self._seen[sha] = self._compute(sha)
        return self._seen[sha]

    def _compute(self, sha: str) -> list[Finding] | None:
        if _git(self.env, "cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
            _fetch(self.env, f"+refs/pull/{self.number}/head")
        full = _git(self.env, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}").stdout.strip()
        if not full:
            return None
        try:
            report = run_check(
                CheckOptions(
                    repo=self.env.workspace,
                    base=self.base_sha,
                    head=full,
                    config=self.config,
                    run_pr_code=False,
                )
            )
        except UserError:
            return None
        return list(report.findings)
