"""Acknowledgements read from GitHub's own record: the `/inflight ack` comments themselves.

Nothing the bot wrote is read back. At every judging, the PR's comments are listed through the
API; each `/inflight ack RULE@SHA reason` (or `unack RULE`) counts only when:

- its author is a person (not a bot) whose repository role, asked of the API now, is write,
  maintain or admin, and who passes `ack.forbid_self_ack`, `ack.allowed_users`/`allowed_teams`;
- the comment was never edited (GitHub does not say who edited it);
- it names the head the maintainer reviewed (`@SHA`): it acknowledges the findings that head had,
  and keeps applying to those same changes (by fingerprint) on later heads, never to new ones.

Replay findings of production histories and locked rules can never be acknowledged, by any path;
a failure of histories synthesized from base goes with the static finding it is explained by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.config import Config
from bot.evidence import is_replay, where
from bot.github.commands import WRITERS, Command, is_bot, parse, refusal
from bot.model import Finding, Report, Severity


@dataclass(frozen=True)
class PostedComment:
    """One PR comment as the API returned it (author identity and times are GitHub's)."""

    id: int
    login: str
    user_type: str
    body: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Ack:
    key: str  # a rule id, a slug, or `all`
    sha: str  # the head the maintainer reviewed (a prefix of at least 7 hex digits)
    reason: str
    by: str
    at: str
    comment_id: int
    withdrawn: tuple[
        str, ...
    ] = ()  # rules later withdrawn with `/inflight unack` (an `all` ack stays for the rest)


@dataclass(frozen=True)
class NotCounted:
    by: str
    at: str
    comment_id: int
    why: str


@dataclass
class Ledger:
    acks: list[Ack] = field(default_factory=list)
    not_counted: list[NotCounted] = field(default_factory=list)


def read_ledger(
    comments: Iterable[PostedComment],
    pr_author: str,
    config: Config,
    role_of: Callable[[str], str],
    in_team: Callable[[str], bool],
) -> Ledger:
    """Return the acknowledgements the PR's comments grant, oldest first, and the ones that do not count."""
    ledger = Ledger()
    roles: dict[str, str] = {}
    teams: dict[str, bool] = {}
    for c in sorted(comments, key=lambda c: (c.created_at, c.id)):
        if is_bot(c.login, c.user_type):
            continue
        parsed = parse(c.body)
        if not isinstance(parsed, Command) or parsed.verb not in ("ack", "unack"):
            if isinstance(parsed, str) and c.body.strip().lower().startswith("/inflight ack"):
                ledger.not_counted.append(NotCounted(c.login, _when(c), c.id, parsed))
            continue
        at = _when(c)
        if c.updated_at != c.created_at:
            ledger.not_counted.append(
                NotCounted(c.login, at, c.id, "edited after posting (post a new comment instead)")
            )
            continue
        if c.login not in roles:
            roles[c.login] = role_of(c.login)
        if c.login not in teams:
            teams[c.login] = bool(config.ack.allowed_teams) and roles[c.login] in WRITERS and in_team(c.login)
        why = refusal(parsed, c.login, roles[c.login], pr_author, config, teams[c.login])
        if why is not None:
            ledger.not_counted.append(NotCounted(c.login, at, c.id, why))
            continue
        if parsed.verb == "unack":
            key = parsed.args[0]
            ledger.acks = [
                replace(a, withdrawn=(*a.withdrawn, key))
                for a in ledger.acks
                if not (_same_key(a.key, key) or key.lower() == "all")
            ]
            continue
        ledger.acks.append(Ack(parsed.args[0], parsed.args[1], parsed.reason, c.login, at, c.id))
    return ledger


def _when(c: PostedComment) -> str:
    return c.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _same_key(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def synthesized(f: Finding) -> bool:
    """A failure of histories synthesized from base: executions that may or may not be in flight."""
    return f.change is not None and f.change.kind.endswith(".replay.synthesized_failed")


def ackable(f: Finding, locked: Callable[[str], bool]) -> bool:
    """A finding an acknowledgement may waive: open, breaking or risky, not replay, not a locked rule.

    A synthesized failure is the exception: it proves what an execution waiting there would do, not
    that one is waiting, so a maintainer who knows none is (a drained workflow) may waive it, and
    config still cannot disable it."""
    if synthesized(f):
        return not f.suppressed
    return (
        not f.suppressed
        and f.severity in (Severity.BREAKING, Severity.RISKY)
        and not is_replay(f)
        and not locked(f.rule)
    )


def matches(key: str, f: Finding) -> bool:
    return key.lower() == "all" or key.upper() == f.rule or key.lower() == f.slug


@dataclass
class Applied:
    """What the ledger did to a report: for the comment and the log."""

    acked: dict[str, Ack] = field(default_factory=dict)  # fingerprint → the ack that waived it
    unmatched: list[Ack] = field(default_factory=list)  # acks that waive nothing at this head
    unverified: list[Ack] = field(default_factory=list)  # acks naming a head that cannot be read


def apply_ledger(
    report: Report,
    ledger: Ledger,
    findings_at: Callable[[str], Sequence[Finding] | None],
    locked: Callable[[str], bool],
    config: Config,
) -> tuple[Report, Applied]:
    """Mark the findings the acknowledgements waive and decide the verdict again.

    `findings_at(sha)` gives the findings of the head an ack names (None when that commit cannot
    be read); an ack waives a current finding only if the same change (fingerprint) was there.
    """
    from bot.verdict import decide

    head = report.head.sha if report.head else ""
    applied = Applied()
    for ack in ledger.acks:
        seen = report.findings if head.startswith(ack.sha.lower()) else findings_at(ack.sha)
        if seen is None:
            applied.unverified.append(ack)
            continue
        prints = {
            f.fingerprint
            for f in seen
            if matches(ack.key, f) and not any(matches(w, f) for w in ack.withdrawn) and ackable(f, locked)
        }
        hits = [
            f
            for f in report.findings
            if f.fingerprint in prints and ackable(f, locked) and f.fingerprint not in applied.acked
        ]
        if not hits:
            applied.unmatched.append(ack)
        for f in hits:
            applied.acked[f.fingerprint] = ack
    # A synthesized failure goes with the static finding that explains it: acking the change acks
    # the proof of what it does to executions that would be waiting there.
    by_place = {
        where(f): applied.acked[f.fingerprint] for f in report.findings if f.fingerprint in applied.acked
    }
    for f in report.findings:
        explained = f.change.details.get("explained_by") if f.change is not None else None
        if synthesized(f) and explained in by_place and f.fingerprint not in applied.acked:
            applied.acked[f.fingerprint] = by_place[str(explained)]
    if not applied.acked:
        return report, applied
    findings = [
        f.model_copy(
            update={
                "suppressed": True,
                "suppressed_by": _by(applied.acked[f.fingerprint]),
                "pending_suppression": None,
            }
        )
        if f.fingerprint in applied.acked and not f.suppressed
        else f
        for f in report.findings
    ]
    verdict = decide(findings, report.definitions, report.gates, config)
    return report.model_copy(update={"findings": findings, "verdict": verdict}), applied


def _by(ack: Ack) -> str:
    return f"acknowledged by @{ack.by} at {ack.sha[:7]} on {ack.at}: {ack.reason}"
