"""What the Action runs with: the Actions environment, the action's inputs, and its outputs."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Config
from bot.credentials import credential
from bot.errors import UserError

SUMMARY_LIMIT = 1_000_000  # GITHUB_STEP_SUMMARY takes at most 1 MiB


@dataclass
class ActionEnv:
    event_name: str
    event_path: Path
    repository: str
    api_url: str
    server_url: str
    workspace: Path
    output: Path | None
    summary: Path | None
    runner_temp: Path
    token: str | None
    run_url: str | None
    config: Config = field(default_factory=Config)

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
            server_url=server,
            workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
            output=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            summary=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            runner_temp=Path(env.get("RUNNER_TEMP") or "/tmp"),
            token=token or credential("INFLIGHT_GUARD_TOKEN") or credential("GITHUB_TOKEN"),
            run_url=run_url,
        )


@dataclass
class ActionOptions:
    mode: str = "all"  # all | analyze | publish
    report: Path | None = None
    fail_on: str = "breaking"  # breaking | risky | never
    config: Path | None = None
    histories: Sequence[str] = ()
    python: str | None = None


@dataclass
class RunState:
    """What the top-level handler needs to end a failed run with a status: the PR head, once known."""

    head_sha: str | None = None


def log(message: str) -> None:
    print(f"inflight-guard: {message}", file=sys.stderr, flush=True)


def write_output(env: ActionEnv, values: dict[str, str]) -> None:
    if env.output is None:
        return
    with env.output.open("a", encoding="utf-8") as fh:
        for key, value in values.items():
            fh.write(f"{key}={' '.join(value.split())}\n")


def write_summary(env: ActionEnv, text: str) -> None:
    if env.summary is None:
        return
    data = text if len(text.encode()) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT // 2] + "\n\n(truncated)\n"
    try:
        with env.summary.open("a", encoding="utf-8") as fh:
            fh.write(data + "\n")
    except OSError as exc:
        log(f"cannot write the job summary ({exc.strerror or type(exc).__name__})")
