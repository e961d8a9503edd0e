"""What a Cadence replay failure says, built from the facts the runner read off the exception.

The SDK compares each decision of the head code with what the history expects (`NonDeterminismError`
carries both as objects): the sentence names their kinds, the history's side by its event, and
the head's type only when the workflow code declares it (an activity named after an input is
"another activity"). See bot/engines/python/failure.py for why the SDK's text is never shown.
"""

from __future__ import annotations

import re
from typing import Any

from bot.engines.python.failure import Explained, Names, head_frame, history_side

KINDS = {
    "activity": "activity",
    "child_workflow": "child workflow",
    "timer": "timer",
    "marker": "marker",
    "signal": "signal",
    "cancellation": "cancellation",
    "upsert_search_attributes": "search attribute upsert",
}
_VERSION = re.compile(
    r"version (-?\d+) for change_id '(.*?)' is outside the supported range \[(-?\d+), (-?\d+)\]"
)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w{0,99}")


def _decision(decision: Any, names: Names, *, head: bool) -> str:
    """A decision in a sentence: "activity `charge`", "another activity", "fails the workflow"."""
    if not isinstance(decision, dict):
        return "no decision" if head else "nothing more"
    kind = str(decision.get("kind", ""))
    if kind == "workflow_complete":
        return "completes the workflow" if decision.get("success") else "fails the workflow"
    label = KINDS.get(kind, "decision")
    name = decision.get("name") if isinstance(decision.get("name"), str) else None
    if head:
        name = names.shown(name)  # the head's name may come from data; the history's is metadata
    text = f"{label} `{name}`" if name else f"another {label}" if head else label
    return f"the cancellation of {text}" if decision.get("canceled") else text


def explain_line(outcome: str, line: dict[str, Any], text: str | None, names: Names) -> Explained:
    """Return the code and sentence of a Cadence runner's failure line; `text` is read, never kept."""
    event = line.get("event") if isinstance(line.get("event"), str) else None
    exception = line.get("exception")
    code = exception if isinstance(exception, str) and _IDENTIFIER.fullmatch(exception) else None
    if "expected" in line or "actual" in line:
        history = history_side(event) if event else _decision(line.get("expected"), names, head=False)
        actual = line.get("actual")
        head = _decision(actual, names, head=True)
        verb = "" if isinstance(actual, dict) and actual.get("kind") == "workflow_complete" else "issues "
        return Explained(code, f"the head {verb}{head} where the history has {history}")
    version = _VERSION.search(text or "")
    if version:
        recorded, change, low, high = version.groups()
        shown = names.shown(change)
        call = f'`get_version("{shown}")`' if shown else "a `get_version()` call"
        return Explained(
            code,
            f"the head's {call} supports versions {low} to {high}; the history recorded version {recorded}",
        )
    where = line.get("where")
    frame = (
        head_frame(str(where.get("path")), where.get("line", 0), str(where.get("function", "")), names.head)
        if isinstance(where, dict)
        else None
    )
    at = str(frame) if frame else ""
    return Explained(code, f"the head code raises `{code}`{at}" if code else f"replay failed{at}")
