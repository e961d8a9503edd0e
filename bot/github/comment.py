"""The sticky comment's text: the report, then what the acknowledgements did.

Pure rendering (no API call): every value a person or the PR wrote is escaped, and the comment
holds no state to be read back.
"""

from __future__ import annotations

from bot.github.acks import Applied, Ledger
from bot.model import Report, Severity
from bot.report.render import COMMENT_LIMIT, MARKER, code, escape_markdown, markdown


def comment_body(
    report: Report, ledger: Ledger, applied: Applied, head_sha: str, *, summary: bool = False
) -> str:
    """The sticky comment: the report, then what the acknowledgements did (every value escaped)."""
    text = markdown(report, summary=summary).rstrip()
    lines = [text, ""]
    if applied.acked:
        lines += ["**Acknowledged** (`/inflight unack RULE` withdraws):", ""]
        by_ack: dict[int, int] = {}
        for ack in applied.acked.values():
            by_ack[ack.comment_id] = by_ack.get(ack.comment_id, 0) + 1
        seen = {a.comment_id: a for a in applied.acked.values()}
        for cid, count in by_ack.items():
            a = seen[cid]
            lines.append(
                f"- {code(a.key)} at {code(a.sha[:7])} by @{escape_markdown(a.by)} on {a.at} "
                f"({count} finding(s)): {escape_markdown(' '.join(a.reason.split()))}"
            )
        lines.append("")
    stale = [*applied.unmatched, *applied.unverified]
    if stale:
        lines += [
            f"_{code(a.key)} acknowledged at {code(a.sha[:7])} by @{escape_markdown(a.by)} covers nothing "
            f"open at this head{' (that commit cannot be read)' if a in applied.unverified else ''}._"
            for a in stale
        ]
        lines.append("")
    if ledger.not_counted:
        lines += [
            f"_Not counted: the `/inflight ack` of @{escape_markdown(n.by)} on {n.at}: "
            f"{escape_markdown(' '.join(n.why.split()))}._"
            for n in ledger.not_counted[:20]
        ]
        lines.append("")
    open_keys = sorted(
        {
            f.rule
            for f in report.findings
            if not f.suppressed and f.severity in (Severity.BREAKING, Severity.RISKY)
        }
    )
    if open_keys:
        first = open_keys[0]
        lines.append(
            f"<sub>To acknowledge a finding at this head (write access): "
            f"{code(f'/inflight ack {first}@{head_sha[:12]} <reason>')} (or `all@{head_sha[:12]}`); "
            "replay failures cannot be acknowledged.</sub>"
        )
    body = "\n".join(lines) + "\n"
    if not body.startswith(MARKER):
        body = MARKER + "\n" + body
    if len(body) > COMMENT_LIMIT and not summary:
        return comment_body(report, ledger, applied, head_sha, summary=True)
    return body[:COMMENT_LIMIT]
