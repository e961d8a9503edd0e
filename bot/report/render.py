"""Render a `Report` as markdown (the PR comment), JSON or GitHub workflow-command annotations."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from bot.docs import rule_url
from bot.evidence import display_path
from bot.model import (
    OWN_INTERPRETER,
    Definition,
    Finding,
    Gate,
    ReplayResult,
    ReplaySummary,
    Report,
    Severity,
    VerdictLevel,
)
from bot.report.mermaid import LEGEND, MAX_PICTURES, flowchart, not_drawn
from bot.verdict import blocking

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
    if report.verdict.level == VerdictLevel.SAFE_WITH_GATES:
        replayed = any(r.replayed for r in report.replay)
        found = (
            "Replay-safe as written"
            if replayed
            else "No breaking change found by static analysis (nothing was replayed)"
        )
        if any(not g.satisfied for g in report.gates):
            return f"{found}; the gates below still need to be met before rollout."
        return f"{found}; the risky findings below need a look before rollout."
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
    env = _environment()
    engines = {d.id: d.engine for d in report.definitions}
    env.filters["outcome"] = lambda r: outcome_label(r, engines.get(r.definition or "", ""))
    template = env.get_template("comment.md.j2")
    active = [f for f in report.findings if not f.suppressed]
    fence = Safe(fence_for(report.plan.outline))
    definitions = [d for d in report.definitions if d.status != "unchanged"] or report.definitions
    replay = _replay_view(report)
    return template.render(
        report=report,
        marker=Safe(MARKER),
        top=_top(report, active, definitions, summary=summary),
        counts=_counts(active, definitions),
        gates=_gates_view(report),
        definitions=definitions,
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
        replay=replay,
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


# What each engine calls a replayed execution that cannot go on: Temporal and Cadence fail the
# workflow task with a nondeterminism error; Airflow's scheduler leaves the run unable to finish
# (`broken`, rule AFL107) or on another path (`diverged`); a Step Functions execution fails.
OUTCOME_LABELS = {
    "airflow": {"nondeterminism": "broken", "error": "not replayed (error)"},
    "stepfunctions": {"error": "fails", "nondeterminism": "fails"},
}


def outcome_label(result: ReplayResult, engine: str) -> str:
    """A replay outcome in the words of the engine that produced it."""
    return OUTCOME_LABELS.get(engine, {}).get(result.outcome, result.outcome)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _counts(active: list[Finding], definitions: list[Definition]) -> str:
    """`3 findings (2 breaking, 1 risky) across 2 definitions`."""
    by = Counter(f.severity.value for f in active)
    kinds = ", ".join(f"{by[s]} {s}" for s in ("error", "breaking", "risky", "info") if by[s])
    changed = [d for d in definitions if d.status != "unchanged"]
    where = f" across {_plural(len(changed), 'definition')}" if changed else ""
    return f"{_plural(len(active), 'finding')}{f' ({kinds})' if kinds else ''}{where}"


def _ids(items: list[tuple[str, str]], base: str, limit: int = 4) -> str:
    """`TMP101 in `A`, `B`; TMP105 in `C`` from (rule, definition) pairs, first `limit` rules."""
    by_rule: dict[str, list[str]] = {}
    for rule, definition in items:
        names = by_rule.setdefault(rule, [])
        if definition and definition not in names:
            names.append(definition)
    parts = []
    for rule, names in list(by_rule.items())[:limit]:
        shown = ", ".join(code(n) for n in names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        parts.append(f"{_rule_link(rule, base)}" + (f" in {shown}" if shown else ""))
    more = f" (+{len(by_rule) - limit} more rules)" if len(by_rule) > limit else ""
    return "; ".join(parts) + more


def _top(
    report: Report, active: list[Finding], definitions: list[Definition], *, summary: bool
) -> list[Safe]:
    """The summary above the collapsed sections: at most 8 lines (verdict, what blocks, the one next
    action, counts). It names rules and definitions; the findings table says what each one is."""
    level = report.verdict.level
    lines = [
        Safe(f"## {VERDICT_ICON[level]} inflight-guard: **{level.value.replace('_', ' ')}**"),
        Safe(""),
        escape_markdown(_blurb(report)),
    ]
    base = report.rules_url
    blockers = blocking(report.findings, report.definitions)
    errors = [f for f in active if f.severity == Severity.ERROR]
    open_gates = [g for g in report.gates if not g.satisfied]
    if level == VerdictLevel.ERROR:
        lines.append(
            Safe("**Could not decide:** " + _ids([(f.rule, f.definition or "") for f in errors], base))
        )
    elif level == VerdictLevel.BREAKING:
        lines.append(Safe("**Blocks:** " + _ids([(f.rule, f.definition or "") for f in blockers], base)))
    elif open_gates:
        by_kind: dict[str, list[str]] = {}
        for g in open_gates:
            by_kind.setdefault(GATE_NAMES.get(g.kind, g.kind), []).append(g.definition)
        lines.append(
            Safe(
                "**Before rollout:** "
                + "; ".join(
                    f"{kind} for {', '.join(code(d) for d in ds[:3])}{f' +{len(ds) - 3}' if len(ds) > 3 else ''}"
                    for kind, ds in by_kind.items()
                )
            )
        )
    lines.append(Safe("**Next:** " + _next_action(report, active, blockers, errors)))
    gates = (
        f" · gates: {sum(g.satisfied for g in report.gates)} of {len(report.gates)} met"
        if report.gates
        else ""
    )
    lines.append(Safe(escape_markdown(_counts(active, definitions)) + gates + " · " + _replayed(report)))
    pending = [f for f in active if f.pending_suppression]
    if pending:
        lines.append(
            Safe(
                f"**Waiting for an acknowledgement**: {_plural(len(pending), 'suppression')} this change adds "
                f"({_ids([(f.rule, f.definition or '') for f in pending], base)}); a pull request cannot waive "
                "its own findings."
            )
        )
    if summary:
        lines.append(
            Safe("> This comment is a summary: the full report is over GitHub's 65,536-character limit.")
        )
    return lines


def _replayed(report: Report) -> str:
    results = [r for r in report.replay if not r.synthesized]
    replayed = sum(1 for r in results if r.replayed)
    text = f"replayed {replayed} of {_plural(len(results), 'history')}" if results else "nothing replayed"
    text = text.replace("historys", "histories")
    synthesized = sum(1 for r in report.replay if r.synthesized)
    text += f", {synthesized} synthesized" if synthesized else ""
    s = report.replay_summary
    if s is not None and s.python and OWN_INTERPRETER in s.interpreter:
        text += " (**with inflight-guard's own interpreter, not your workers'**: see Replay)"
    return text


def _next_action(
    report: Report, active: list[Finding], blockers: list[Finding], errors: list[Finding]
) -> str:
    """The one thing to do next, most pressing first."""
    plan = report.plan
    level = report.verdict.level
    if level == VerdictLevel.ERROR:
        return "fix what the check could not read or run (the ⚠️ findings say what), then push again."
    replay_only = blockers and all(f.change is not None and ".replay." in f.change.kind for f in blockers)
    gate_missing = any(g.kind == "version_gate" and not g.satisfied for g in report.gates)
    if level == VerdictLevel.BREAKING and replay_only:
        return "fix the definition where recorded executions fail (the Replay section names them), then push again."
    if level == VerdictLevel.BREAKING or gate_missing:
        if plan.outline:
            return f"apply the versioning outline below (strategy: {escape_markdown(plan.strategy)}), then push: the check runs again on it."
        if plan.outline_withheld:
            return "gate the change by hand or ship it as a new type: the outline is withheld (its section says why)."
        rules = list(dict.fromkeys(f.rule for f in blockers)) or ["the breaking finding"]
        how = (
            " / ".join(code(f"inflight-guard explain {r}") for r in rules[:2]) if blockers else "its finding"
        )
        return f"gate or revert the breaking change ({how} says how), then push again."
    if any(f.pending_suppression for f in active):
        return "a maintainer acknowledges the suppressions this change adds (or the change drops them)."
    pending = {g.kind for g in report.gates if not g.satisfied}
    if "replay" in pending:
        return "replay histories of the executions in flight: `inflight-guard check --histories DIR` (or configure history sources)."
    if "drain" in pending:
        return "confirm the drain with the runbook's count query, then declare it drained in the config."
    if pending:
        return "meet the open gates listed below."
    if any(f.severity == Severity.RISKY for f in active) and level != VerdictLevel.SAFE:
        return "review the risky findings: each says what to check."
    return "none from inflight-guard: merge when the review is done."


def _gates_view(report: Report) -> dict[str, Any]:
    """Gates once per definition; a gate every definition shares word for word is said once."""
    by_def: dict[str, list[Gate]] = {}
    for g in report.gates:
        by_def.setdefault(g.definition, []).append(g)
    shared: list[Gate] = []
    if len(by_def) > 1:
        for kind in dict.fromkeys(g.kind for g in report.gates):
            same = {(g.status, g.evidence) for gs in by_def.values() for g in gs if g.kind == kind}
            if len(same) == 1 and all(any(g.kind == kind for g in gs) for gs in by_def.values()):
                shared.append(next(g for g in report.gates if g.kind == kind))
    rows: list[dict[str, Any]] = []
    for def_id, gs in by_def.items():
        mine = [g for g in gs if all(g.kind != s.kind for s in shared)]
        if mine:
            rows.append({"who": code(def_id), "gates": [_gate_item(g) for g in mine]})
    if shared:
        rows.append({"who": Safe(f"all {len(by_def)} definitions"), "gates": [_gate_item(g) for g in shared]})
    return {"rows": rows, "met": sum(g.satisfied for g in report.gates), "total": len(report.gates)}


def _gate_item(g: Gate) -> dict[str, Any]:
    return {
        "name": GATE_NAMES.get(g.kind, g.kind),
        "satisfied": g.satisfied,
        "status": g.status,
        "evidence": g.evidence,
    }


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
    # In the words of each engine (an Airflow run the scheduler cannot finish is `broken`).
    engines = {d.id: d.engine for d in report.definitions}
    labelled = Counter(outcome_label(r, engines.get(r.definition or "", "")) for r in results)
    shown = labelled if sum(labelled.values()) == sum(s.counts.values()) else Counter(s.counts)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(shown.items())) or "no history found"
    open_count = sum(1 for r in results if r.open)
    closed_count = sum(1 for r in results if r.open is False)
    return {
        "open": open_count,
        "closed": closed_count,
        "total": len(results),
        "replayed": sum(1 for r in results if r.replayed),
        # Temporal's runner reports its SDK's bare version; the other engines name what replayed.
        "headline": f"{sum(1 for r in results if r.replayed)} of {len(results)} replayed, {len(failures)} failing",
        "sdk": f"temporalio {s.sdk}" if s.sdk[:1].isdigit() else s.sdk,
        "seconds": f"{s.seconds:.1f}",
        "shards": ", ".join(s.shards),
        "counts": counts,
        "failures": failures,
        "explained": explained,
        "not_replayed": not_replayed + [f"note: {n}" for n in s.notes],
        "runtime": replay_runtime(s),
    }


def replay_runtime(s: ReplaySummary) -> str:
    """One line: the interpreter and SDK that replayed (no local path), and a warning when they
    were inflight-guard's own rather than the workers' (`--python` not given, none found on PATH)."""
    m = re.match(r"^(.*?) \((.*)\)$", s.interpreter)
    if not s.python or m is None:
        return ""  # not a Python runner: the engine's own line names what replayed
    path, why = m.groups()
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    sdk = f"temporalio {s.sdk}" if s.sdk[:1].isdigit() else s.sdk or "an SDK of unknown version"
    line = f"Replay ran in Python {s.python} ({code(name)}: {why}) with {sdk}."
    if why.startswith(OWN_INTERPRETER):
        line += (
            " **Warning:** that is inflight-guard's own interpreter and SDK, not your workers': set"
            " `python:` (`--python`) to the interpreter your workers run, or a pass here says nothing"
            " about their SDK version."
        )
    return line


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
