"""Slash commands in PR comments: `/inflight <verb> [args]` on the first line.

`help`, `explain RULE` answer anyone. `ack RULE|all REASON`, `unack RULE`, `recheck` and
`replay` change state: they need the author's exact repository role (write, maintain or admin;
read from the API, not `author_association`), and the config may restrict acks further. Bots are
ignored. Every command gets a reaction (+1 done, -1 refused, eyes for answers) and a refusal says
why. Acknowledgements live in the sticky comment, keyed by the finding's fingerprint (rule +
definition + the change itself): they survive pushes that do not touch the change and lapse when
it changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.config import Config
from bot.model import Finding, Report, Severity
from bot.report.render import MARKER

PREFIX = "/inflight"
VERBS = ("help", "recheck", "explain", "ack", "unack", "replay")
STATEFUL = {"ack", "unack", "recheck", "replay"}
WRITERS = {"admin", "maintain", "write"}
STATE = re.compile(r"<!-- inflight-guard:acks (.*?) -->", re.DOTALL)

HELP = """**inflight-guard commands** (first line of a comment):

| Command | Who | What |
|---|---|---|
| `/inflight help` | anyone | this table |
| `/inflight explain TMP101` | anyone | what a rule catches, why it matters, how to fix it |
| `/inflight recheck` | write access | run the check again on the current head |
| `/inflight ack TMP101 <reason>` | write access | acknowledge a finding (or `all`): it no longer fails the status; recorded with who and why |
| `/inflight unack TMP101` | write access | withdraw an acknowledgement |
| `/inflight replay` | write access | replay runs PR code, so it runs in the pull_request workflow only |
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
            return "`/inflight ack` needs a rule id (or `all`) and a reason"
        if len(args) < 2:
            return "an acknowledgement needs a reason: `/inflight ack TMP101 all runs drained on 2026-11-20`"
        return Command(verb, (args[0],), " ".join(args[1:]))
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


@dataclass
class Ack:
    fingerprint: str
    rule: str
    by: str
    reason: str
    at: str


@dataclass
class AckBook:
    acks: list[Ack] = field(default_factory=list)

    @classmethod
    def from_comment(cls, body: str | None) -> AckBook:
        match = STATE.search(body or "")
        if not match:
            return cls()
        try:
            return cls([Ack(**a) for a in json.loads(match.group(1))])
        except (ValueError, TypeError):
            return cls()

    def to_block(self) -> str:
        data = json.dumps([a.__dict__ for a in self.acks], separators=(",", ":")).replace("--", "-\\u002d")
        return f"<!-- inflight-guard:acks {data} -->"

    def add(self, findings: list[Finding], key: str, by: str, reason: str) -> list[Finding]:
        """Acknowledge the open findings matching `key` (id, slug or `all`); return them."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        matched = [
            f
            for f in findings
            if not f.suppressed
            and f.severity in (Severity.BREAKING, Severity.RISKY)
            and not f.rule.startswith("TMP13")  # replay proof cannot be waived by a comment
            and (key.lower() == "all" or key.upper() == f.rule or key.lower() == f.slug)
        ]
        known = {a.fingerprint for a in self.acks}
        self.acks += [
            Ack(f.fingerprint, f.rule, by, reason, now) for f in matched if f.fingerprint not in known
        ]
        return matched

    def remove(self, key: str) -> int:
        before = len(self.acks)
        self.acks = [a for a in self.acks if a.rule != key.upper()]
        return before - len(self.acks)

    def apply(self, report: Report, config: Config) -> tuple[Report, list[Ack]]:
        """Mark acknowledged findings; drop acks whose change is gone. Return (report, lapsed acks)."""
        from bot.verdict import decide

        by_print = {a.fingerprint: a for a in self.acks}
        live = {f.fingerprint for f in report.findings}
        lapsed = [a for a in self.acks if a.fingerprint not in live]
        self.acks = [a for a in self.acks if a.fingerprint in live]
        if not self.acks:
            return report, lapsed
        findings = [
            f.model_copy(
                update={
                    "suppressed": True,
                    "suppressed_by": f"acknowledged by @{by_print[f.fingerprint].by}: {by_print[f.fingerprint].reason}",
                }
            )
            if f.fingerprint in by_print and not f.suppressed
            else f
            for f in report.findings
        ]
        verdict = decide(findings, report.definitions, report.gates, config)
        return report.model_copy(update={"findings": findings, "verdict": verdict}), lapsed


def comment_body(markdown: str, book: AckBook, lapsed: list[Ack]) -> str:
    """The sticky comment: the report, the acknowledgements, and their machine-readable record."""
    lines = [markdown.rstrip(), ""]
    if book.acks:
        lines += ["**Acknowledged** (`/inflight unack RULE` withdraws):", ""]
        lines += [f"- {a.rule} by @{a.by} on {a.at}: {a.reason}" for a in book.acks]
        lines.append("")
    if lapsed:
        lines += [f"_Lapsed: {a.rule} acknowledged by @{a.by} — its change changed since._" for a in lapsed]
        lines.append("")
    lines.append(book.to_block())
    body = "\n".join(lines) + "\n"
    return body if MARKER in body else MARKER + "\n" + body
