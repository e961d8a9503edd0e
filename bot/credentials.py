"""Keep the job's secrets out of reach of the pull request's code.

Replay and DAG loading run the PR's code in child processes with a scrubbed environment, but a
child can read any same-user process's *initial* environment through `/proc/PID/environ` (its
parent's included), and no later `os.environ` change alters that block. So `inflight-guard action`
starts by re-executing itself without the secrets: they travel through an inherited pipe and are
held in memory, not in `os.environ` (every child process, git's included, would inherit them).
`credential(NAME)` reads one; `lent()` puts them in `os.environ` only while a cloud client is
built (boto3 reads its credentials then). The Actions runtime tokens the tool never needs are
dropped.

What this does not cover (docs/github.md, threat model): processes of the runner that are not
ours, `ptrace` where the kernel allows it (`kernel.yama.ptrace_scope` 0), and `sudo` on hosted
runners. PR code never runs in a job that holds a write token: that is the real boundary.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HANDOFF = "INFLIGHT_GUARD_SECRETS_FD"
SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|API_KEY|ACCESS_KEY|SESSION|FERNET|^AWS_"
    r"|^TEMPORAL_TLS_|^AIRFLOW_CONN_",
    re.IGNORECASE,
)
# Given to every step by the runner; the tool never uses them, so they are not restored.
RUNNER_ONLY = re.compile(r"^ACTIONS_(RUNTIME|ID_TOKEN_REQUEST|CACHE|RESULTS)_")
PIPE_LIMIT = 60_000  # a pipe holds 64 KiB without a reader
_HELD: dict[str, str] = {}


def credential(name: str) -> str | None:
    """A secret from the environment, or held in memory after `hide_secrets`."""
    return _HELD.get(name) or os.environ.get(name) or None


@contextmanager
def lent() -> Iterator[None]:
    """The held secrets in `os.environ` for the duration of the block (no process is started in it)."""
    added = {k: v for k, v in _HELD.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name) or RUNNER_ONLY.match(name))


def hide_secrets(argv: list[str]) -> None:
    """Re-execute this process without secrets in its environment block (no return when it does);
    in the re-executed process, take them back from the pipe into `os.environ`."""
    if HANDOFF in os.environ:
        _restore(os.environ.pop(HANDOFF))
        return
    secrets = {k: v for k, v in os.environ.items() if is_secret(k)}
    data = json.dumps({k: v for k, v in secrets.items() if not RUNNER_ONLY.match(k)}).encode()
    if not secrets or not hasattr(os, "execve"):
        return
    if len(data) <= PIPE_LIMIT:
        read, write = os.pipe()
        os.write(write, data)
        os.close(write)
    else:  # more than a pipe holds unread: an owner-only file, unlinked before anything else runs
        fd, path = tempfile.mkstemp(prefix="inflight-guard-")
        os.write(fd, data)
        os.close(fd)
        read = os.open(path, os.O_RDONLY)
        Path(path).unlink()
    os.set_inheritable(read, True)
    env = {k: v for k, v in os.environ.items() if k not in secrets}
    env[HANDOFF] = str(read)
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: the working directory (the user's repository) is not put on sys.path, so a package of
    # theirs named like ours cannot stand in for the tool.
    os.execve(sys.executable, [sys.executable, "-P", "-m", "bot", *argv], env)


def _restore(fd: str) -> None:
    try:
        handle = int(fd)
        chunks = []
        while chunk := os.read(handle, 65_536):
            chunks.append(chunk)
        os.close(handle)
        _HELD.update(json.loads(b"".join(chunks) or b"{}"))
    except (ValueError, OSError):
        print("inflight-guard: the secrets handed to the re-executed process were lost", file=sys.stderr)
