"""Slash commands in PR comments: `/inflight <verb> [args]` on the first line.

`help`, `explain RULE` answer anyone. `ack RULE|all@SHA REASON`, `unack RULE`, `recheck` and
`replay` change state: they need the author's exact repository role (write, maintain or admin;
read from the API, not `author_association`), and the config may restrict acks further. Bots are
ignored. Every command gets a reaction (+1 done, -1 refused, eyes for answers) and a refusal says
why. An acknowledgement is the `/inflight ack` comment itself (`bot/github/acks.py` reads them all
again at every judging); it names the head the maintainer reviewed, waives the findings that head
had (by fingerprint: rule + definition + the change itself), and never a change pushed later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.config import Config

PREFIX = "/inflight"
VERBS = ("help", "recheck", "explain", "ack", "unack", "replay")
STATEFUL = {"ack", "unack", "recheck", "replay"}
WRITERS = {"admin", "maintain", "write"}
TARGET = re.compile(r"^([A-Za-z][\w-]*)@([0-9a-fA-F]{7,40})$")

HELP = """**inflight-guard commands** (first line of a comment):

| Command | Who | What |
|---|---|---|
| `/inflight help` | anyone | this table |
| `/inflight explain TMP101` | anyone | what a rule catches, why it matters, how to fix it |
| `/inflight recheck` | write access | run the check again on the current head |
| `/inflight ack TMP101@abc1234 <reason>` | write access | acknowledge a finding (or `all@SHA`) as it is at head `abc1234`, the head you reviewed (the report prints the command): it no longer fails the status; a change pushed later is not covered. Replay failures cannot be acknowledged |
| `/inflight unack TMP101` | write access | withdraw an acknowledgement |
| `/inflight replay` | write access | re-run the pull_request analysis run of the head (replay runs PR code, so never in this job) |
"""


@dataclass(frozen=True)
class Command:
    verb: str
    args: tuple[str, ...]
    reason: str = ""


def parse(body: str) -> Command | str | None:
    """Return the command on the first line, an error message for a malformed one, or None."""
    first = (body or "").strip().splitlines()[0].strip() if (body or "").strip() else ""
    if not first.startswith(PREFIX) or (len(first) > len(PREFIX) and not first[len(PREFIX)].isspace()):
        return None
    words = first.split()
    if len(words) < 2:
        return "say what to do: `/inflight help` lists the commands"
    verb = words[1].lower()
    if verb not in VERBS:
        return f"unknown command `{verb}`: `/inflight help` lists the commands"
    args = tuple(words[2:])
    if verb in ("explain", "unack") and len(args) != 1:
        return f"`/inflight {verb}` takes one rule id, e.g. `/inflight {verb} TMP101`"
    if verb == "ack":
        if not args:
            return "`/inflight ack` needs a rule id (or `all`), the head you reviewed and a reason"
        target = TARGET.match(args[0])
        if target is None:
            return (
                f"name the head you reviewed: `/inflight ack {args[0].split('@')[0]}@SHA <reason>`, "
                "with the head SHA the report shows (the report prints the command)"
            )
        if len(args) < 2:
            return (
                f"an acknowledgement needs a reason: `/inflight ack {args[0]} all runs drained on 2026-11-20`"
            )
        return Command(verb, (target.group(1), target.group(2).lower()), " ".join(args[1:]))
    return Command(verb, args)


def is_bot(login: str, user_type: str) -> bool:
    return user_type == "Bot" or login.endswith("[bot]")


def refusal(
    command: Command, login: str, role: str, pr_author: str, config: Config, in_team: bool = False
) -> str | None:
    """Return why `login` (with repository `role`) may not run `command`, or None when allowed."""
    if command.verb not in STATEFUL:
        return None
    if role not in WRITERS:
        return (
            f"@{login} has the `{role}` role here; `/inflight {command.verb}` needs write, maintain or admin"
        )
    if command.verb in ("ack", "unack"):
        policy = config.ack
        if policy.forbid_self_ack and login == pr_author:
            return f"@{login} opened this pull request; ack.forbid_self_ack: someone else must acknowledge"
        if (
            (policy.allowed_users or policy.allowed_teams)
            and login not in policy.allowed_users
            and not in_team
        ):
            return f"@{login} is not in ack.allowed_users or ack.allowed_teams"
    return None
