"""What differs between the Python workflow SDKs that share one extractor, diff and outline.

Temporal's `workflow.patched(id)` and Cadence's `workflow.get_version(id, DEFAULT_VERSION, 1)`
are the same idea: a version gate recorded as a marker. The command model, the sequence
alignment and the outline are shared; the dialect says how each SDK spells things.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Dialect:
    engine: str
    workflow_module: str  # the SDK module workflow code imports as `workflow`
    import_line: str
    decorator: str  # regex of the class decorator that names the workflow type; group 2 is "("
    # Relative change kinds the shared diff emits → this engine's names for them.
    renames: Mapping[str, str] = field(default_factory=dict)
    # (pattern, replacement) fixes for non-deterministic calls the outline may apply.
    fixes: tuple[tuple[str, str], ...] = ()

    def kind(self, relative: str) -> str:
        """Return the full change kind for a relative one (`command.inserted` → `temporal.command.inserted`)."""
        return f"{self.engine}.{self.renames.get(relative, relative)}"

    def relative(self, kind: str) -> str:
        """Return the shared name of a full change kind (inverse of `kind`)."""
        tail = kind.split(".", 1)[1] if "." in kind else kind
        back = {v: k for k, v in self.renames.items()}
        return back.get(tail, tail)

    def gate(self, alias: str, pid: str, *, new: bool) -> str:
        """Return the `if` test that is true on the new (or old) side of gate `pid`."""
        call = json.dumps(pid)
        if self.engine == "cadence":
            version = f"{alias}.get_version({call}, {alias}.DEFAULT_VERSION, 1)"
            return f"{version} == 1" if new else f"{version} == {alias}.DEFAULT_VERSION"
        return f"{alias}.patched({call})" if new else f"not {alias}.patched({call})"

    def gate_text(self, pid: str) -> str:
        """How the gate reads in a report sentence."""
        if self.engine == "cadence":
            return f'workflow.get_version("{pid}", workflow.DEFAULT_VERSION, 1)'
        return f'workflow.patched("{pid}")'


TEMPORAL = Dialect(
    engine="temporal",
    workflow_module="temporalio.workflow",
    import_line="from temporalio import workflow",
    decorator=r"@(\w+\.)?defn\b(\()?",
    fixes=(
        (r"\b(?:datetime\.)?datetime\.(?:now|utcnow)\(\s*\)", "workflow.now()"),
        (
            r"\b(?:datetime\.)?datetime\.now\(\s*(?:tz=)?(?:timezone|datetime\.timezone)\.utc\s*\)",
            "workflow.now()",
        ),
        (r"\btime\.time\(\s*\)", "workflow.time()"),
        (r"\btime\.time_ns\(\s*\)", "workflow.time_ns()"),
        (r"\buuid\.uuid4\(\s*\)", "workflow.uuid4()"),
        (r"\brandom\.(\w+)\(", r"workflow.random().\1("),
    ),
)
CADENCE = Dialect(
    engine="cadence",
    workflow_module="cadence.workflow",
    import_line="from cadence import workflow",
    decorator=r"@(\w+\.)?workflow\b(\()?",
    renames={
        "patch.added": "version.added",
        "patch.deprecated": "version.min_raised",
        "patch.removed": "version.removed",
    },
)
DIALECTS = {d.engine: d for d in (TEMPORAL, CADENCE)}


def dialect(engine: str) -> Dialect:
    return DIALECTS[engine]
