"""What a Temporal replay failure says, built from the facts the runner read off the exception.

The SDK core's failure text is read here for its code, the history event and the state machine that
met it; see bot/engines/python/failure.py for why that text is never shown.
"""

from __future__ import annotations

import builtins
import re
import sys
from typing import Any

from bot.engines.python.failure import Explained, Names, head_frame, history_side

# What the head did, by the SDK core's state machine that met a history event it does not handle.
MACHINES = {
    "activity": "schedules an activity",
    "local activity": "runs a local activity",
    "timer": "starts a timer",
    "child workflow": "starts a child workflow",
    "complete workflow": "completes the workflow",
    "fail workflow": "fails the workflow",
    "cancel workflow": "cancels the workflow",
    "continue as new workflow": "continues as new",
    "signal external wf": "signals an external workflow",
    "cancel external wf": "cancels an external workflow",
    "update": "handles an update",
    "nexus operation": "starts a Nexus operation",
}
# Core's eviction reasons (RemoveFromCache.EvictionReason), the prefix of a non-nondeterminism failure.
EVICTIONS = {
    "2": "CACHE_MISS",
    "4": "LANG_FAIL",
    "6": "TASK_NOT_FOUND",
    "7": "UNHANDLED_COMMAND",
    "8": "FATAL",
    "9": "PAGINATION_OR_HISTORY_FETCH",
    "10": "WORKFLOW_EXECUTION_ENDING",
}
_CODE = re.compile(r"\[(TMPRL\d{4})\]")
_EVENT = re.compile(r"HistoryEvent\(id: (\d+), ([A-Za-z]+)\)")
_MISMATCH = re.compile(r"does not match ([a-z ]+?) (?:type|id) of (?:([a-z ]+?) )?command '([^']*)'")
_UNHANDLED = re.compile(r"([A-Za-z ]+?) machine does not handle this event")
_PATCH = re.compile(
    r"patch marker encountered for change (.*?), but there is no corresponding change command"
)
_TYPE = re.compile(r'r#type: \\?"([A-Za-z_][\w.]{0,99})\\?"')
_FRAME = re.compile(r'File \\*"([^"\\]+)\\*", line (\d+), in ([\w<>]{1,100})')
_REFUSED = re.compile(r"Cannot access ([A-Za-z_][\w.]{0,199}) from inside a workflow")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]{0,99}")
_STACK = re.compile(r"stack_trace: (.*?), encoded_attributes:", re.S)


def explain_temporal(
    outcome: str, exception: str | None, text: str | None, event: str | None, names: Names
) -> Explained:
    """Return the code and sentence of a Temporal replay failure; `text` is read, never kept."""
    text = text or ""
    found = _CODE.search(text)
    if outcome == "nondeterminism":
        code = found.group(1) if found else _type_name(exception)
        return Explained(code, _nondeterminism(text, event, names))
    return _error(text, exception, names)


def _type_name(name: str | None) -> str | None:
    return name if name and _IDENTIFIER.fullmatch(name) else None


def _nondeterminism(text: str, event: str | None, names: Names) -> str:
    seen = _EVENT.search(text)
    history = history_side(event, seen.group(2) if seen else None)
    mismatch = _MISMATCH.search(text)
    if mismatch:
        kind = (mismatch.group(2) or mismatch.group(1)).strip()
        name = names.shown(mismatch.group(3))
        issued = f"{kind} `{name}`" if name else f"another {kind}"
        return f"the head issues {issued} where the history has {history}"
    if "No command scheduled for event" in text:
        return f"the head issues no command where the history has {history}"
    unhandled = _UNHANDLED.search(text)
    if unhandled:
        did = MACHINES.get(unhandled.group(1).strip().lower(), "issues another command")
        return f"the head {did} where the history has {history}"
    patch = _PATCH.search(text)
    if patch:
        pid = names.shown(patch.group(1).strip())
        call = f'`patched("{pid}")`' if pid else "`patched()` call"
        return f"the head has no {call} where the history has its patch marker"
    return "the head issues other commands than the history recorded"


def _error(text: str, exception: str | None, names: Names) -> Explained:
    """An error that is not nondeterminism: what the head code raised, and where."""
    typed = _TYPE.search(text)
    raised = typed.group(1) if typed and _raised_by_code(typed.group(1), text) else None
    frames = [head_frame(p, n, f, names.head) for p, n, f in _FRAME.findall(text)]
    where = next((str(w) for w in reversed(frames) if w is not None), "")
    refused = _REFUSED.search(text)
    if refused and refused.group(1).split(".", 1)[0] in sys.stdlib_module_names:
        return Explained(
            raised or _type_name(exception), f"the workflow sandbox refuses `{refused.group(1)}`{where}"
        )
    if raised:
        return Explained(raised, f"the head code raises `{raised}`{where}")
    reason = EVICTIONS.get(text.split(":", 1)[0].strip())
    code = reason or _type_name(exception)
    return Explained(
        code, f"the head code fails the workflow task{where}" + (f" ({reason})" if reason else "")
    )


def _raised_by_code(name: str, text: str) -> bool:
    """Whether an exception type is a class and not a string the code chose (`ApplicationError(type=...)`):
    a builtin, or a name the failing frames' source lines spell out."""
    short = name.rsplit(".", 1)[-1]
    if isinstance(getattr(builtins, short, None), type):
        return True
    stack = _STACK.search(text)
    return bool(stack and re.search(rf"\b{re.escape(short)}\b", stack.group(1)))


def explain_line(outcome: str, line: dict[str, Any], text: str | None, names: Names) -> Explained:
    """A Temporal runner's failure line, explained."""
    return explain_temporal(outcome, line.get("exception"), text, line.get("event"), names)
