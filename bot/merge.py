"""`inflight-guard merge`: join the JSON reports of sharded replay runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from bot.errors import UserError
from bot.model import ImportProblem, ReplayResult, ReplaySummary, Report


@dataclass
class Shards:
    base: str
    head: str
    sources: list[str]
    results: list[ReplayResult]
    summary: ReplaySummary


def _load(path: Path) -> Report:
    try:
        return Report.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: not an inflight-guard JSON report ({where}: {first['msg']})") from None


def load_shards(paths: Sequence[Path]) -> Shards:
    """Return the replay results of every shard report; they must share base and head."""
    reports = [(p, _load(p)) for p in paths]
    first_path, first = reports[0]
    if first.base is None or first.head is None:
        raise UserError(f"{first_path}: the report names no base or head revision")
    results: dict[str, ReplayResult] = {}  # by name and run: two sources may share a file name
    counts: dict[str, int] = {}
    problems: dict[tuple[str, str], ImportProblem] = {}
    errors: list[str] = []
    notes: list[str] = []
    shards: list[str] = []
    seconds = 0.0
    summaries = []
    for path, report in reports:
        if (
            report.base is None
            or report.head is None
            or (report.base.sha, report.head.sha)
            != (
                first.base.sha,
                first.head.sha,
            )
        ):
            raise UserError(
                f"{path}: compares other revisions than {first_path} "
                f"({first.base.sha[:12]}..{first.head.sha[:12]}): merge reports of one check only"
            )
        if report.replay_summary is None:
            raise UserError(f"{path}: holds no replay (was it made with --histories?)")
        s = report.replay_summary
        summaries.append(s)
        for r in report.replay:
            results.setdefault(f"{r.history}\0{r.run_id}", r)
        problems.update({(p.workflow_type, p.module): p for p in s.import_errors})
        errors += [e for e in s.source_errors if e not in errors]
        notes += [n for n in s.notes if n not in notes]
        shards += s.shards
        seconds = max(seconds, s.seconds)
    for r in results.values():
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    if len(set(shards)) != len(shards):
        raise UserError(f"the same shard appears twice: {', '.join(sorted(shards))}")
    declared = {s.split("/")[1] for s in shards}
    if len(declared) > 1:
        raise UserError(f"the reports split the histories differently ({', '.join(sorted(shards))})")
    if declared:
        total = int(next(iter(declared)))
        missing = [f"{i}/{total}" for i in range(1, total + 1) if f"{i}/{total}" not in shards]
        if missing:
            # Histories nobody replayed: the merged report must not look complete.
            errors.append(f"merge: shard(s) {', '.join(missing)} missing: their histories were not replayed")
    summary = ReplaySummary(
        interpreter=summaries[0].interpreter,
        sdk=summaries[0].sdk,
        python=summaries[0].python,
        jobs=sum(s.jobs for s in summaries),
        shards=sorted(shards),
        seconds=seconds,
        counts=counts,
        import_errors=list(problems.values()),
        source_errors=errors,
        runner_error=next((s.runner_error for s in summaries if s.runner_error), None),
        notes=notes,
    )
    return Shards(
        base=first.base.sha,
        head=first.head.sha,
        sources=list(dict.fromkeys(s for _, r in reports for s in r.histories)),
        results=sorted(results.values(), key=lambda r: r.history),
        summary=summary,
    )
