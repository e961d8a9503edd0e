"""Replay evidence shared by every engine: notes beside static findings, figures from histories."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from bot.model import Change, Definition, Finding, Location, ReplayResult, Severity

EXAMPLES = 3
# Changes whose harm replay cannot show: the history does not hold the step that will break.
REPLAY_BLIND = {
    "temporal.handler.removed": "those waiting for the signal would wait forever (a removed handler "
    "never receives it, and replay compares commands only)",
}


def is_replay(f: Finding) -> bool:
    return f.change is not None and ".replay." in f.change.kind


def display_path(history: str) -> str:
    """A history's name as reports show it: relative to the working folder when under it, else its
    folder and file name; never the machine's absolute path (`s3://`, `temporal://` stay as they are)."""
    path = PurePosixPath(history)
    if not path.is_absolute():
        return history
    try:
        return path.relative_to(PurePosixPath(Path.cwd().as_posix())).as_posix()
    except ValueError:
        return f"…/{path.parent.name}/{path.name}" if path.parent.name else path.name


def examples(results: Sequence[ReplayResult]) -> str:
    names = [display_path(r.history) for r in results[:EXAMPLES]]
    more = f" (+{len(results) - EXAMPLES} more)" if len(results) > EXAMPLES else ""
    return ", ".join(names) + more


def _counted(fails: Sequence[Finding], fact: str, noun: str, said: dict[str, str]) -> list[str]:
    """ "N <noun> <what>" for each replay kind in `said` some failure explained here holds, N being
    the sum of the failures' `fact` (histories or runs)."""
    parts = []
    for kind, text in said.items():
        n = sum(_number(x, fact) for x in fails if x.change and x.change.kind == kind)
        if n:
            parts.append(f"{n} {noun} {text} here")
    return parts


def _number(f: Finding, key: str) -> int:
    value = f.change.details.get(key) if f.change else None
    return value if isinstance(value, int) else 0


def source_failures(messages: Sequence[str], kind: str, engine: str) -> list[Change]:
    """One fact per history source that failed part-way; its location names the source."""
    changes: list[Change] = []
    for message in messages:
        # `--histories SPEC: ...`; a merge gap names no source.
        # `: ` ends the source (an `s3://` or `temporal://` source holds a bare colon)
        spec = message.split(": ", 1)[0].removeprefix("--histories ").strip()
        changes.append(
            Change(
                kind=kind,
                engine=engine,
                definition="",
                location=Location(path=spec if spec and spec != "merge" else "histories", line=1),
                details={"message": message},
            )
        )
    return changes


def where(f: Finding) -> str:
    return f"{f.rule} at {f.location}" if f.location else f.rule


def explaining(static: Sequence[Finding], detail: str, value: str | None) -> Finding | None:
    """The static finding that explains a group of replay failures: one whose change names the same
    `detail` (a state, a task), else the worst risky-or-worse one of the definition."""
    candidates = [f for f in static if f.change is not None and not f.suppressed and not is_replay(f)]
    on_it = [f for f in candidates if value and f.change and f.change.details.get(detail) == value]
    pool = on_it or [f for f in candidates if f.severity in (Severity.BREAKING, Severity.RISKY)]
    if not pool:
        return None
    return sorted(pool, key=lambda f: (-f.severity.rank, f.location.line if f.location else 0))[0]


def explanation(explained: Finding | None) -> dict[str, str | None]:
    """The `explained` / `explained_by` details of a replay fact."""
    if explained is None:
        return {"explained": "", "explained_by": None}
    return {"explained": f" Explained by {where(explained)}.", "explained_by": where(explained)}


def annotate(findings: Sequence[Finding], results: Sequence[ReplayResult]) -> list[Finding]:
    """Say beside each static finding what replay showed for its definition."""
    explained: dict[str, list[Finding]] = {}
    for f in findings:
        if is_replay(f) and f.change is not None and f.change.details.get("explained_by"):
            explained.setdefault(str(f.change.details["explained_by"]), []).append(f)
    out: list[Finding] = []
    for f in findings:
        if f.change is None or is_replay(f) or not f.definition:
            out.append(f)
            continue
        mine = [r for r in results if r.definition == f.definition and r.outcome not in ("unmatched",)]
        if not mine:
            out.append(f)
            continue
        fails = explained.get(where(f), [])
        parts: list[str] = []
        if f.change.engine == "stepfunctions":
            # Running executions keep their definition: replay shows what NEW executions would do.
            parts += _counted(
                fails,
                "histories",
                "recorded executions",
                {
                    "sfn.replay.failed": "fail on the head definition",
                    "sfn.replay.diverged": "take another path",
                },
            )
            ok = [r for r in mine if r.outcome == "ok"]
            if ok and not parts:
                parts.append(f"{len(ok)} recorded executions replay cleanly through the head definition")
            out.append(f.model_copy(update={"replay": "; ".join(parts)}) if parts else f)
            continue
        if f.change.engine == "airflow":
            # Airflow's facts count runs (`runs`), in the scheduler's terms: broken or diverged.
            parts += _counted(
                fails,
                "runs",
                "exported running runs",
                {
                    "airflow.replay.broken": "cannot finish on the head DAG",
                    "airflow.replay.diverged": "take another path on the head DAG",
                },
            )
            ok = [r for r in mine if r.outcome == "ok"]
            if ok and not parts and f.severity in (Severity.BREAKING, Severity.RISKY):
                parts.append(
                    f"{len(ok)} exported running runs replay cleanly on the head DAG ({examples(ok)})"
                )
            out.append(f.model_copy(update={"replay": "; ".join(parts)}) if parts else f)
            continue
        if fails:
            n = sum(_number(x, "histories") for x in fails)
            k = sum(_number(x, "in_flight") for x in fails)
            parts.append(f"{n} histories fail replay here ({k} in flight: already past this change)")
        open_ok = [r for r in mine if r.open and r.outcome == "ok"]
        if open_ok and f.severity in (Severity.BREAKING, Severity.RISKY):
            blind = REPLAY_BLIND.get(f.change.kind, "")
            if blind:
                parts.append(
                    f"{len(open_ok)} in-flight histories replay cleanly, but {blind}: {examples(open_ok)}"
                )
            else:
                parts.append(
                    f"{len(open_ok)} in-flight histories replay cleanly: not past this change yet, "
                    f"they will run the new code from there ({examples(open_ok)})"
                )
        out.append(f.model_copy(update={"replay": "; ".join(parts)}) if parts else f)
    return out


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


# Where a live count comes from, per engine (the runbook's count commands give one too).
LIVE_COUNT = {
    "temporal": "--temporal-address gives a live count",
    "cadence": "the runbook's count command gives a live count (advanced visibility)",
}


def with_history_figures(
    definitions: Sequence[Definition], results: Sequence[ReplayResult]
) -> list[Definition]:
    """Fill in-flight evidence from the histories: open ones seen, oldest start, run durations."""
    out: list[Definition] = []
    for d in definitions:
        mine = [r for r in results if r.definition == d.id and r.open is not None]
        if not mine:
            out.append(d)
            continue
        update: dict[str, object] = {}
        durations = sorted(
            r.closed - r.started for r in mine if r.closed and r.started and r.closed >= r.started
        )
        if len(durations) >= 1:
            update["run_p50_seconds"] = round(statistics.median(durations), 1)
            update["run_p95_seconds"] = round(
                durations[min(len(durations) - 1, int(0.95 * len(durations)))], 1
            )
            update["durations_from"] = f"{len(durations)} closed histories"
        open_runs = [r for r in mine if r.open]
        if open_runs and d.in_flight.count is None:
            update["count"] = len(open_runs)
            update["source"] = (
                f"a lower bound: {len(open_runs)} open in the supplied histories, a sample "
                f"({LIVE_COUNT.get(d.engine, 'a live count from the engine is exact')})"
            )
        starts = [r.started for r in open_runs if r.started]
        if starts and d.in_flight.oldest_start is None:
            update["oldest_start"] = _iso(min(starts))
        waiting = [r for r in open_runs if r.waits_until]
        if waiting:
            last = max(waiting, key=lambda r: r.waits_until or 0)
            update["waits_until"] = _iso(last.waits_until)
            update["waits_on"] = last.waits_on
            update["waits_from"] = f"{len(waiting)} of {len(open_runs)} open histories supplied"
        out.append(d.model_copy(update={"in_flight": d.in_flight.model_copy(update=update)}) if update else d)
    return out


def human_seconds(seconds: float) -> str:
    units = (("d", 86400), ("h", 3600), ("m", 60))
    for name, size in units:
        if seconds >= size:
            whole = seconds / size
            return f"{whole:.1f}{name}" if whole < 10 else f"{whole:.0f}{name}"
    return f"{seconds:.0f}s"
