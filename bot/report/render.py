"""Render a `Report` as markdown (the PR comment), JSON or GitHub workflow-command annotations."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from bot.docs import rule_url
from bot.evidence import display_path
from bot.model import Report, Severity, VerdictLevel
from bot.report.mermaid import LEGEND, MAX_PICTURES, flowchart, not_drawn

COMMENT_LIMIT = 65_536
MARKER = "<!-- inflight-guard:report -->"
ANNOTATIONS_PER_LEVEL = 10
NAMED = 5  # histories named per reason in the comment (the JSON report names every one)

VERDICT_ICON = {
    VerdictLevel.SAFE: "✅",
    VerdictLevel.SAFE_WITH_GATES: "🟡",
    VerdictLevel.BREAKING: "❌",
    VerdictLevel.ERROR: "⚠️",
}
VERDICT_BLURB = {
    VerdictLevel.SAFE: "No change here affects workflow executions in flight.",
    VerdictLevel.SAFE_WITH_GATES: "Replay-safe as written; the gates below still need to be met before rollout.",
    VerdictLevel.BREAKING: "Deploying this would break workflow executions already in flight.",
    VerdictLevel.ERROR: "The check could not decide, so it fails closed.",
}
NEXT_EXECUTIONS = "Deploying this would break workflow executions: the next ones, on inputs already recorded."


def _blurb(report: Report) -> str:
    """The verdict's sentence; a break that only replay of new executions shows says so."""
    if report.verdict.level == VerdictLevel.BREAKING and all(
        r.startswith("SFN130 ") for r in report.verdict.reasons if r[:3].isalpha()
    ):
        return NEXT_EXECUTIONS
    if report.verdict.level == VerdictLevel.SAFE_WITH_GATES and not any(r.replayed for r in report.replay):
        return "No breaking change found by static analysis (nothing was replayed); the gates below still need to be met before rollout."
    return VERDICT_BLURB[report.verdict.level]


SEVERITY_ICON = {"error": "⚠️", "breaking": "🔴", "risky": "🟠", "info": "🔵"}
GATE_NAMES = {
    "version_gate": "version gate",
    "replay": "replay proof",
    "backout": "back-out plan",
    "drain": "drain",
}


class Safe(str):
    """Text already made safe for the comment (the template's own markup, or escaped values)."""


BACKTICKS = re.compile(r"`+")


def escape_markdown(value: object) -> Safe:
    """Return `value` as comment text that cannot open HTML or an HTML comment, nor end a code span
    it did not open: `<` outside code spans becomes `&lt;`, a backtick run with no partner is
    escaped. Text the PR controls (names, paths, reasons, messages quoting them) goes through this."""
    text = str(value)
    out: list[str] = []
    i = 0
    while i < len(text):
        run = BACKTICKS.match(text, i)
        if run is not None:
            ticks = run.group(0)
            close = _closing(text, run.end(), len(ticks))
            if close is None:
                out.append("\\`" * len(ticks))
                i = run.end()
                continue
            out.append(text[i : close + len(ticks)])  # a whole code span: shown literally
            i = close + len(ticks)
            continue
        ch = text[i]
        out.append("&lt;" if ch == "<" else "&gt;" if ch == ">" else ch)
        i += 1
    return Safe("".join(out))


def _closing(text: str, start: int, length: int) -> int | None:
    """Where the backtick run of `length` that closes a code span opened at `start` begins."""
    for m in BACKTICKS.finditer(text, start):
        if len(m.group(0)) == length:
            return m.start()
    return None


def code(value: object) -> Safe:
    """Return `value` as one inline code span, whatever backticks it holds."""
    text = " ".join(str(value).split())
    longest = max((len(m) for m in BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Safe(f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|"))


def _cell(value: object) -> Safe:
    return Safe(escape_markdown(" ".join(str(value).split())).replace("|", "\\|"))


def _inline(value: object) -> Safe:
    return escape_markdown(" ".join(str(value).split()))


def _rule_link(rule_id: object, base: str) -> Safe:
    text = escape_markdown(str(rule_id))
    url = rule_url(str(rule_id), base)
    return Safe(f"[{text}]({url})" if url else text)


def _finalize(value: object) -> object:
    """Every `{{ value }}` of the template is escaped unless a filter already made it safe."""
    if isinstance(value, Safe | int | float) or value is None:
        return value
    text = str(value)
    if any(c in text for c in "\n\r\f\v\x85\u2028\u2029"):
        text = " ".join(text.split())  # one line: no heading, list or table of its own
    return escape_markdown(text)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bot.report", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # markdown, not HTML: values are escaped by `finalize` and the filters
        finalize=_finalize,
    )
    env.filters["cell"] = _cell
    env.filters["inline"] = _inline
    env.filters["code"] = code
    env.filters["rule_link"] = _rule_link
    env.filters["history"] = display_path
    return env


def fence_for(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so the block cannot be closed early."""
    longest = max((len(m) for m in BACKTICKS.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def markdown(report: Report, *, summary: bool = False, max_findings: int = 200) -> str:
    """Return the PR comment for `report`; never longer than GitHub's comment limit."""
    text = _markdown(report, summary=summary, max_findings=max_findings)
    if len(text) <= COMMENT_LIMIT:
        return text
    for limit in (50, 10):
        text = _markdown(report, summary=True, max_findings=limit, max_reasons=limit)
        if len(text) <= COMMENT_LIMIT:
            return text
    return text[: COMMENT_LIMIT - 200] + "\n\n> Truncated: the report is over GitHub's comment limit.\n"


def _markdown(report: Report, *, summary: bool, max_findings: int, max_reasons: int = 50) -> str:
    template = _environment().get_template("comment.md.j2")
    active = [f for f in report.findings if not f.suppressed]
    fence = Safe(fence_for(report.plan.outline))
    return template.render(
        report=report,
        marker=Safe(MARKER),
        verdict_icon=VERDICT_ICON[report.verdict.level],
        verdict_blurb=_blurb(report),
        definitions=[d for d in report.definitions if d.status != "unchanged"] or report.definitions,
        active=active,
        suppressed=[f for f in report.findings if f.suppressed],
        plan=report.plan,
        fence=fence,
        outline=Safe(report.plan.outline),
        pending=[f for f in active if f.pending_suppression],
        summary=summary,
        max_findings=max_findings,
        max_reasons=max_reasons,
        severity_icon=SEVERITY_ICON,
        gate_names=GATE_NAMES,
        replay=_replay_view(report),
        max_replay=10 if summary else 25,
        synthesis=_synthesis_view(report),
        pictures=[
            {
                "definition": p.definition,
                "engine": p.engine,
                "kind": p.kind,
                "not_drawn": not_drawn(p) if p.omitted or p.omitted_edges else "",
                "source": Safe(flowchart(p)),
            }
            for p in report.pictures[:MAX_PICTURES]
        ],
        pictures_left=max(0, len(report.pictures) - MAX_PICTURES),
        legend=Safe(LEGEND),
    )


def _synthesis_view(report: Report) -> dict[str, Any] | None:
    """What the comment says about histories synthesized from base: per workflow, and the failures."""
    s = report.synthesis
    if s is None:
        return None
    failures = sorted((r for r in report.replay if r.synthesized and r.failed), key=lambda r: r.history)
    return {
        "seconds": f"{s.seconds:.1f}",
        "workflows": s.workflows,
        "failures": failures,
        "skipped": s.skipped,
        "errors": s.errors,
    }


def _replay_view(report: Report) -> dict[str, Any] | None:
    """What the comment says about replay: failures first (in flight first), then what was not replayed."""
    s = report.replay_summary
    if s is None:
        return None
    results = [r for r in report.replay if not r.synthesized]
    failures = sorted((r for r in results if r.failed), key=lambda r: (not r.open, r.history))
    explained: dict[str, dict[str, str]] = {}
    for f in report.findings:
        if f.change is not None and ".replay." in f.change.kind and f.change.details.get("explained_by"):
            explained.setdefault(f.definition or "", {})[str(f.change.details.get("message", ""))] = str(
                f.change.details["explained_by"]
            )
    # Every history not replayed is named (the first few of each reason; the JSON report has all).
    not_replayed: list[str] = []
    for outcome in ("skipped", "unmatched"):
        reasons: dict[str, list[str]] = {}
        for r in results:
            if r.outcome == outcome:
                named = r.workflow_type and f"`{r.workflow_type}`" not in r.message
                why = f"{code(r.workflow_type)}: {r.message}" if named else r.message
                reasons.setdefault(why, []).append(display_path(r.history))
        not_replayed += [
            f"{len(names)} {outcome} — {why}: {_names(names)}" for why, names in sorted(reasons.items())
        ]
    unreadable = [r for r in results if r.outcome == "unreadable"]
    if unreadable:
        names = "; ".join(f"{code(display_path(r.history))}: {r.message}" for r in unreadable[:NAMED])
        more = f" (+{len(unreadable) - NAMED} more)" if len(unreadable) > NAMED else ""
        not_replayed.append(f"{len(unreadable)} unreadable — {names}{more}")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(s.counts.items())) or "no history found"
    open_count = sum(1 for r in results if r.open)
    closed_count = sum(1 for r in results if r.open is False)
    return {
        "open": open_count,
        "closed": closed_count,
        "total": len(results),
        "replayed": sum(1 for r in results if r.replayed),
        # Temporal's runner reports its SDK's bare version; the other engines name what replayed.
        "sdk": f"temporalio {s.sdk}" if s.sdk[:1].isdigit() else s.sdk,
        "seconds": f"{s.seconds:.1f}",
        "shards": ", ".join(s.shards),
        "counts": counts,
        "failures": failures,
        "explained": explained,
        "not_replayed": not_replayed + [f"note: {n}" for n in s.notes],
    }


def _names(histories: list[str]) -> str:
    shown = ", ".join(code(h) for h in histories[:NAMED])
    return shown + (f" (+{len(histories) - NAMED} more)" if len(histories) > NAMED else "")


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github_annotations(report: Report) -> str:
    """Return workflow commands annotating findings, within GitHub's 10-per-level step limit."""
    levels = {
        Severity.ERROR: "error",
        Severity.BREAKING: "error",
        Severity.RISKY: "warning",
        Severity.INFO: "notice",
    }
    used = {"error": 0, "warning": 0, "notice": 0}
    dropped = 0
    lines: list[str] = []
    for f in report.findings:
        if f.suppressed:
            continue
        level = levels[f.severity]
        budget = ANNOTATIONS_PER_LEVEL - (1 if level == "notice" else 0)  # one notice is the summary
        if used[level] >= budget:
            dropped += 1
            continue
        used[level] += 1
        props = [f"title={_escape_property(f'{f.rule} {f.title}')}"]
        if f.location:
            props.insert(0, f"file={_escape_property(f.location.path)}")
            props.insert(1, f"line={f.location.line}")
            if f.location.end_line and f.location.end_line != f.location.line:
                props.insert(2, f"endLine={f.location.end_line}")
        lines.append(f"::{level} {','.join(props)}::{_escape_data(f.message)}")
    summary = f"verdict {report.verdict.level.value}"
    if dropped:
        summary += f"; {dropped} more finding(s) not annotated (GitHub shows 10 per level), see the report"
    lines.append(f"::notice title=inflight-guard::{_escape_data(summary)}")
    return "\n".join(lines) + "\n"


def json_report(report: Report) -> str:
    return report.to_json() + "\n"


def sarif_report(report: Report) -> str:
    from bot.report.sarif import sarif

    return sarif(report)


FORMATS: dict[str, Callable[[Report], str]] = {
    "markdown": markdown,
    "json": json_report,
    "sarif": sarif_report,
    "github": github_annotations,
}


def render(report: Report, fmt: str) -> str:
    """Return `report` in format `fmt` (one of FORMATS)."""
    return FORMATS[fmt](report)
