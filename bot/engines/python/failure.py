"""What a replay failure says, in the engine's terms, built from facts and never from its text.

An SDK's failure text may quote payload data: the head code can raise an exception whose message
it computed from an input (upper-cased, sliced, base64-encoded...), or name an activity after one.
Redacting exact payload strings cannot catch what was derived from them, so reports carry none of
that text. The replay runner hands the parent the text with the facts it holds; the parent reads
from it only what has a fixed shape — an error code, an exception type, an event id and kind, the
head file and line that raised — and names a command only when the workflow's code declares that
name (`Names`). Each engine's failure.py builds the sentence from these parts; the text itself goes to
`--replay-log` or nowhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.model import WorkflowModel

_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]{0,99}")


@dataclass(frozen=True)
class Names:
    """What may be named in a failure of one workflow type: the names its code declares on either side
    (commands, patch and version ids), and the head tree the failing frames must be in."""

    declared: frozenset[str] = frozenset()
    head: Path | None = None

    def shown(self, name: str | None) -> str | None:
        """The name when the code declares it, else None (it may have come from data)."""
        return name if name and name in self.declared else None


def declared_names(*models: WorkflowModel | None) -> frozenset[str]:
    """Every command name and version id the models' code declares."""
    names: set[str] = set()
    for model in models:
        if model is None:
            continue
        for sequence in model.sequences.values():
            for command in sequence:
                if command.resolved:
                    names.add(command.name)
                if command.gate is not None:
                    names.add(command.gate.patch_id)
    return frozenset(names)


@dataclass(frozen=True)
class Where:
    """A frame of the head code: path relative to the head tree, line, function."""

    path: str
    line: int
    function: str

    def __str__(self) -> str:
        # Not in backticks: evidence.py matches backticked names against the static findings.
        inside = "" if self.function.startswith("<") else f" in {self.function}()"
        return f" at {self.path}:{self.line}{inside}"


def head_frame(path: str, line: int | str, function: str, head: Path | None) -> Where | None:
    """The frame when it lies in the head tree (an SDK or library frame is not shown)."""
    if head is None or not _IDENTIFIER.fullmatch(function.strip("<>")):
        return None
    try:
        relative = Path(path).resolve().relative_to(head.resolve()).as_posix()
    except (ValueError, OSError):
        return None
    return Where(relative, int(line), function)


def history_side(event: str | None, kind: str | None = None) -> str:
    """How a sentence names the history's side: the event's kind and name (event metadata)."""
    if event:
        label, _, name = event.partition(" ")
        label = label.replace("_", " ")
        return f"{label} `{name}`" if name else label
    return f"`{kind}`" if kind else "another command"


@dataclass(frozen=True)
class Explained:
    """A failure as reports show it: its code and the sentence built from facts."""

    code: str | None
    message: str
