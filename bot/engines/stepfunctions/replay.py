"""Replay recorded Step Functions executions through the head definitions.

Each history (a `GetExecutionHistory` export) is matched to a definition by its state machine
name — from the ARN in the export, else the folder it sits in (`<histories>/<name>/...`) —
and run through the head definition with its recorded input and Task results. The ASL
interpreter is pure data: it runs in this process, with no access to AWS. Messages name no
recorded error the definitions do not declare (replayer.py); with `--replay-log`, the message
with those names, redacted of the execution's exact payload strings, goes to the log.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from bot.engines.stepfunctions.history import Execution, HistoryUnreadable, load_execution
from bot.engines.stepfunctions.model import StateMachine
from bot.engines.stepfunctions.replayer import replay_execution
from bot.histories import HistoryItem, ReplayOptions, SourceStats, iter_histories
from bot.model import ReplayResult, ReplaySummary


def match(name: str | None, names: Mapping[str, str]) -> str | None:
    """Return the definition id whose deployed name is `name` (CloudFormation adds `-SUFFIX`)."""
    if not name:
        return None
    for def_id, deployed in names.items():
        if name == deployed:
            return def_id
    for def_id, deployed in names.items():
        if re.fullmatch(rf"(?:.+-)?{re.escape(deployed)}-[A-Za-z0-9]{{8,}}", name):
            return def_id
    return None


def _folder(item: HistoryItem) -> str | None:
    parent = PurePosixPath(item.name.replace("\\", "/")).parent.name
    return parent or None


_PAYLOADS = {"input", "output", "parameters", "result", "cause"}


def payload_strings(data: Any) -> list[str]:
    """Every payload string of an export (inputs, outputs, parameters, results, causes, and their JSON
    leaves), in the forms a message may carry it, longest first."""
    found: set[str] = set()
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key in _PAYLOADS and isinstance(item, str):
                    found.add(item)
                    found |= _leaves(item)
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    forms = {form for s in found if len(s) >= 3 for form in (s, json.dumps(s)[1:-1])}
    return sorted(forms, key=len, reverse=True)


def _leaves(text: str) -> set[str]:
    try:
        stack = [json.loads(text)]
    except ValueError:
        return set()
    out: set[str] = set()
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif value is not None and not isinstance(value, bool):
            out.add(str(value))
    return out


def redact(text: str, secrets: Sequence[str]) -> str:
    """Return `text` with every one of `secrets` replaced."""
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


def replay_one(
    item: HistoryItem,
    machines: Mapping[str, StateMachine],
    names: Mapping[str, str],
    removed: set[str],
    bases: Mapping[str, StateMachine] | None = None,
) -> tuple[ReplayResult, str | None]:
    """Return the result of one history file, and for `--replay-log` the message with the recorded error
    names it withholds (redacted of exact payload strings), or None when it withholds none."""
    started = time.perf_counter()
    try:
        data = json.loads(Path(item.path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno} (truncated?)"
        return ReplayResult(history=item.name, definition=None, outcome="unreadable", message=message), None
    except (OSError, UnicodeDecodeError) as exc:
        return ReplayResult(history=item.name, definition=None, outcome="unreadable", message=str(exc)), None
    try:
        execution = load_execution(data, item.name)
    except HistoryUnreadable as exc:
        return ReplayResult(history=item.name, definition=None, outcome="unreadable", message=str(exc)), None
    def_id = match(execution.state_machine, names) or match(_folder(item), names)
    common = _common(item, execution)
    if def_id is None:
        shown = execution.state_machine or _folder(item) or "?"
        message = f"state machine `{shown}` is not one this change touches"
        return ReplayResult(**common, definition=None, outcome="unmatched", message=message), None
    if def_id in removed:
        message = "the state machine is removed in head"
        return ReplayResult(**common, definition=def_id, outcome="skipped", message=message), None
    machine = machines[def_id]
    base = (bases or {}).get(def_id)
    replayed = replay_execution(
        dict(machine.definition), execution, base=dict(base.definition) if base is not None else None
    )
    state = machine.states.get(replayed.state) if replayed.state else None
    where = f"{machine.source or machine.path}:{state.line}" if state else None
    result = ReplayResult(
        **common,
        definition=def_id,
        outcome=replayed.outcome,
        message=replayed.message,
        code=replayed.code,
        event=f"state {replayed.state} ({where})" if replayed.state and where else replayed.state,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    detail = replayed.detail
    if detail is None or detail == replayed.message:
        return result, None  # nothing was withheld: the log takes the message as it is
    return result, redact(detail, payload_strings(data))


def _common(item: HistoryItem, e: Execution) -> dict[str, object]:
    return {
        "history": item.name,
        "workflow_type": e.state_machine,
        "run_id": e.execution_arn,
        "open": e.open,
        "events": e.events,
        "started": e.started,
        "closed": e.closed,
    }


def run_replay(
    pairs: Mapping[str, tuple[StateMachine | None, StateMachine | None]],
    options: ReplayOptions,
    names: Mapping[str, str] | None = None,
) -> tuple[list[ReplayResult], ReplaySummary]:
    """Replay every Step Functions history of the sources; one result per history and a summary."""
    started = time.perf_counter()
    deployed = {def_id: (names or {}).get(def_id, def_id.split(" (", 1)[0]) for def_id in pairs}
    machines = {i: h for i, (_, h) in pairs.items() if h is not None and not _unparsed(h)}
    bases = {i: b for i, (b, _) in pairs.items() if b is not None and not _unparsed(b)}
    removed = {i for i, (_, h) in pairs.items() if h is None}
    wanted = {i: n for i, n in deployed.items() if i in machines or i in removed}
    results: list[ReplayResult] = []
    stats = SourceStats()
    with tempfile.TemporaryDirectory(prefix="inflight-guard-sfn-") as scratch:
        for item in iter_histories(
            options.sources, Path(scratch), options.shard, stats, options.accept, options.wanted
        ):
            try:
                result, detail = replay_one(item, machines, wanted, removed, bases)
            finally:
                item.release()
            if options.log is not None and result.failed:
                options.log.write("stepfunctions", result, detail)
            results.append(result)
            if options.progress is not None:
                options.progress(result)
    results.sort(key=lambda r: r.history)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    notes = [f"history source {s} holds no history files" for s in stats.empty]
    skipped = [r for r in results if r.outcome == "skipped"]
    if skipped:
        reasons = sorted({r.message for r in skipped})
        notes.append(f"{len(skipped)} Step Functions histories not replayed: " + "; ".join(reasons[:3]))
    summary = ReplaySummary(
        interpreter="inflight-guard ASL interpreter (in process)",
        jobs=1,
        shards=[str(options.shard)] if options.shard else [],
        seconds=round(time.perf_counter() - started, 2),
        counts=counts,
        source_errors=stats.errors,
        notes=notes,
    )
    return results, summary


def _unparsed(m: StateMachine) -> bool:
    return not m.definition or any(p.code in ("INVALID_JSON", "UNREADABLE") for p in m.problems)
