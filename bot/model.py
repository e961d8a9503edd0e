"""The contract between the pipeline's stages: pydantic models, frozen.

collect produces `WorkflowModel`s, diff produces `Change`s, judge produces `Finding`s,
replay produces `ReplayResult`s and report assembles everything into one `Report`,
whose JSON form (`Report.model_dump_json()`) is the tool's stable machine contract.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

Scalar = str | int | float | bool | None


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Severity(StrEnum):
    """How bad a finding is; `error` means the tool could not decide."""

    ERROR = "error"
    BREAKING = "breaking"
    RISKY = "risky"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "breaking": 2, "risky": 1, "info": 0}[self.value]


class Location(Frozen):
    """A place in a file of the repository, 1-based lines; `side` says which tree."""

    path: str
    line: int
    end_line: int | None = None
    side: Literal["base", "head"] = "head"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


# --- collect -------------------------------------------------------------------------


class CommandKind(StrEnum):
    """What a workflow step asks the server to record in history."""

    ACTIVITY = "activity"
    LOCAL_ACTIVITY = "local_activity"
    CHILD_WORKFLOW = "child_workflow"
    TIMER = "timer"
    WAIT_CONDITION_TIMER = "wait_condition_timer"
    CONTINUE_AS_NEW = "continue_as_new"
    UPSERT_MEMO = "upsert_memo"
    UPSERT_SEARCH_ATTRIBUTES = "upsert_search_attributes"
    SIGNAL_EXTERNAL = "signal_external"
    CANCEL_EXTERNAL = "cancel_external"
    SIDE_EFFECT = "side_effect"
    PATCH = "patch"
    DEPRECATE_PATCH = "deprecate_patch"


class PatchGate(Frozen):
    """The version gate a command sits behind: `new` is the `patched()` side."""

    patch_id: str
    branch: Literal["new", "old"]


class Statement(Frozen):
    """The whole statement a command belongs to, in the innermost block holding it."""

    line: int
    end_line: int
    indent: int
    function: str


Role = Literal["loop", "order", "ends_run", "ends_loop", "skips", "branch"]
ExitKind = Literal["return", "raise", "break", "continue", "continue_as_new"]


class Steer(Frozen):
    """A value that decides whether, how often or in which order commands run, by value.

    Loop bounds, retry counts, continue-as-new thresholds, flags and iteration order: the test
    with its constants resolved to what they hold (module constants, class attributes, default
    arguments, literals), so a renamed constant is the same steer and a changed value is a change.
    """

    key: str  # pairs base and head: the function and the test with its values masked
    role: Role
    value: str  # the test with its constants resolved (`attempt < 5`), or the order (`reversed`)
    number: float | None = None  # the deciding number: a range's length, a comparison's bound
    grows: bool | None = None  # True when a larger `number` makes the commands run more often
    line: int  # the if / for / while holding the test
    location: Location  # where the value is written: the constant's definition, or the test
    name: str | None = None  # the constant the value comes from, when one
    per_item: Literal["type", "args"] | None = None  # order: what of the command varies per item
    guard_index: int | None = None  # its entry in the command's `guard`; None for exits and unrolled loops


class Exit(Frozen):
    """An early exit (return, raise, break, continue, continue-as-new) taken before a command."""

    kind: ExitKind
    key: str  # the function, the kind and the conditions leading to it, values masked
    test: str  # the conditions, as written
    location: Location  # the `if` holding it, or the exit itself


class Command(Frozen):
    """One history-producing step, in the order the workflow code issues it.

    `statements` are the statements holding the call in its function, outermost first;
    `guard` the conditions it runs under (ifs, loops, except clauses), outermost first,
    across the calls that lead to it; `resolved` is False when the command's target
    (activity type, child type) could not be determined statically.
    """

    kind: CommandKind
    name: str
    location: Location
    statements: tuple[Statement, ...]
    gate: PatchGate | None = None
    via: tuple[str, ...] = ()
    options: dict[str, str] = Field(default_factory=dict)
    guard: tuple[str, ...] = ()
    in_loop: bool = False
    resolved: bool = True
    # What decides whether, how often and in which order it runs (see `Steer`), the early exits
    # an execution can take before reaching it, and the workflow task it is issued in: commands
    # with no await between them (`asyncio.gather`, handles started before awaiting) share one.
    steers: tuple[Steer, ...] = ()
    exits: tuple[Exit, ...] = ()
    batch: int = 0

    @property
    def statement(self) -> Statement:
        return self.statements[-1]

    @property
    def conditional(self) -> bool:
        return bool(self.guard)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.name)


class Handler(Frozen):
    kind: Literal["signal", "query", "update"]
    name: str
    location: Location


class Parameter(Frozen):
    name: str
    annotation: str | None = None
    has_default: bool = False


class InputField(Frozen):
    """One field of the data a handler or activity receives; nested fields carry a dotted path."""

    path: str
    annotation: str
    has_default: bool = False
    nested: bool = False  # its type is itself a dataclass or model, whose fields follow as `path.x`
    closed: bool = False  # nested, and its class refuses fields it does not know (`extra="forbid"`)
    location: Location


class InputShape(Frozen):
    """The fields of one parameter's dataclass or pydantic model, as a handler or activity takes it."""

    handler: str  # "run", "signal approve", "update set_address", "activity charge"
    position: int  # the parameter's index (without self)
    class_name: str
    fields: tuple[InputField, ...] = ()
    closed: bool = (
        False  # the class refuses fields it does not know (`extra="forbid"`, `forbid_unknown_fields`)
    )


class NondeterministicCall(Frozen):
    call: str
    location: Location
    via: tuple[str, ...] = ()
    text: str = ""  # the source line, stripped: tells apart identical calls on different lines


class WorkflowModel(Frozen):
    """One workflow definition as found in one tree."""

    engine: str
    id: str
    class_name: str
    path: str
    location: Location
    dynamic: bool = False
    versioning_behavior: str | None = None
    parameters: tuple[Parameter, ...] = ()
    handlers: tuple[Handler, ...] = ()
    sequences: dict[str, tuple[Command, ...]] = Field(default_factory=dict)
    nondeterminism: tuple[NondeterministicCall, ...] = ()
    source_span: tuple[int, int] = (0, 0)
    run_location: Location | None = None
    digest: str = ""  # of the class's syntax tree: comments and formatting do not change it
    unreadable: tuple[str, ...] = ()  # repo files its code reaches that could not be analysed
    inputs: tuple[InputShape, ...] = ()  # the data classes its run method, handlers and activities take

    @property
    def commands(self) -> tuple[Command, ...]:
        return self.sequences.get("run", ())

    def patches(self) -> dict[str, CommandKind]:
        out: dict[str, CommandKind] = {}
        for seq in self.sequences.values():
            for c in seq:
                if c.kind in (CommandKind.PATCH, CommandKind.DEPRECATE_PATCH):
                    out[c.name] = c.kind
        return out


class Suppression(Frozen):
    """An inline `# inflight-guard: ignore[ID] reason` comment."""

    rules: tuple[str, ...]
    reason: str
    location: Location
    added: bool = Field(
        default=False,
        description="Written by this change, or covering a line it changed: applies only once acknowledged.",
    )


# --- diff ------------------------------------------------------------------------------


class Change(Frozen):
    """An objective fact about what changed in one definition; never a judgement."""

    kind: str
    engine: str
    definition: str
    location: Location
    gated: bool = False
    details: dict[str, Scalar] = Field(default_factory=dict)


# --- judge ------------------------------------------------------------------------------


class Finding(Frozen):
    rule: str
    slug: str
    severity: Severity
    title: str
    message: str
    definition: str | None
    location: Location | None
    change: Change | None = None
    gated: bool = False
    suppressed: bool = False
    suppressed_by: str | None = None
    pending_suppression: str | None = Field(
        default=None,
        description="An inline suppression this change adds: the finding stays open until an authorized ack.",
    )
    fix: str = ""
    gate: str = "none"
    scope: Literal["in_flight", "all_executions"] = "in_flight"
    fingerprint: str = ""
    replay: str = Field(default="", description="What replay of recorded histories showed for this finding.")


# --- replay -----------------------------------------------------------------------------


class ReplayResult(Frozen):
    """One history replayed (or not) against the head code.

    `open` is True for an execution still in flight when exported (no close event);
    `event` names the command event the failure points at (kind and type name, never payloads).
    `message` is built by the tool from structured facts only (the code, the event, names the
    definitions declare or the history's event metadata holds): never an SDK's or user code's text,
    which may quote payload data. That text goes to `--replay-log FILE` only.
    """

    history: str
    definition: str | None
    outcome: Literal[
        "ok", "nondeterminism", "error", "timeout", "diverged", "skipped", "unreadable", "unmatched"
    ]
    event_id: int | None = None
    message: str = ""
    code: str | None = Field(
        default=None,
        description="The engine's error code or exception type of a failure: TMPRL1100, "
        "NonDeterminismError, ValueError, States.Runtime.",
    )
    duration_ms: float | None = None
    workflow_type: str | None = None
    run_id: str | None = None
    open: bool | None = None
    events: int | None = None
    event: str | None = None
    started: float | None = Field(default=None, description="Start time, epoch seconds.")
    closed: float | None = Field(default=None, description="Close time, epoch seconds.")
    task_queue: str | None = Field(default=None, description="The task queue the execution started on.")
    waits_until: float | None = Field(
        default=None,
        description="An open history: when what it waits on is due last (a pending timer's fire time, "
        "a pending activity's timeout), epoch seconds.",
    )
    waits_on: str | None = Field(
        default=None, description="What `waits_until` is: `timer`, `activity timeout`."
    )
    synthesized: bool = Field(
        default=False,
        description="A history the tool recorded from the base code on the engine (not a production one).",
    )

    @property
    def failed(self) -> bool:
        """A failure blocks; `diverged` (a new path on the head, Step Functions) is shown, not a failure."""
        return self.outcome in ("nondeterminism", "error", "timeout")

    @property
    def replayed(self) -> bool:
        """True when the history went through the engine's replay; False when it is only named, with
        the reason it was not replayed (`skipped`, `unmatched`, `unreadable`)."""
        return self.outcome in ("ok", "nondeterminism", "error", "timeout", "diverged")


class ImportProblem(Frozen):
    """The head code of a workflow type failed to import in the replay interpreter."""

    workflow_type: str
    module: str
    path: str | None = None
    line: int | None = None
    message: str = ""


# How `interpreter` begins its reason when replay fell back to the tool's own interpreter and SDK.
OWN_INTERPRETER = "inflight-guard's own interpreter"


class ReplaySummary(Frozen):
    """How the replay ran: interpreter, SDK, counts, and what could not be replayed."""

    interpreter: str = ""
    sdk: str = ""
    python: str = ""
    jobs: int = 1
    shards: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    counts: dict[str, int] = Field(default_factory=dict)
    import_errors: list[ImportProblem] = Field(default_factory=list)
    source_errors: list[str] = Field(default_factory=list)
    runner_error: str | None = Field(default=None, description="Why the replay runner could not start.")
    notes: list[str] = Field(default_factory=list)


class InFlight(Frozen):
    """How many executions of a definition are open; `count=None` means unknown."""

    count: int | None = None
    oldest_start: str | None = None
    source: str = "unknown"
    run_p50_seconds: float | None = None
    run_p95_seconds: float | None = None
    durations_from: str = ""
    waits_until: str | None = Field(
        default=None, description="When the last thing the open histories wait on is due (ISO 8601, UTC)."
    )
    waits_on: str | None = None
    waits_from: str = Field(default="", description="The sample `waits_until` comes from.")


# --- report -----------------------------------------------------------------------------


class Definition(Frozen):
    engine: str
    id: str
    path: str
    status: Literal["added", "removed", "changed", "unchanged"]
    line: int | None = None
    in_flight: InFlight = Field(default_factory=InFlight)
    versioning_behavior: str | None = None
    pinned: bool = Field(
        default=False,
        description="PINNED on both sides: open executions stay on the build that started them.",
    )


class Gate(Frozen):
    """A condition a breaking change must meet before it may merge."""

    kind: Literal["version_gate", "replay", "backout", "drain"]
    definition: str
    status: Literal["satisfied", "missing", "pending"]
    evidence: str

    @model_validator(mode="before")
    @classmethod
    def _computed_is_output_only(cls, data: Any) -> Any:
        """A report read back (`merge`) carries `satisfied`; it is derived, not an input."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k != "satisfied"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def satisfied(self) -> bool:
        return self.status == "satisfied"


class VerdictLevel(StrEnum):
    SAFE = "safe"
    SAFE_WITH_GATES = "safe_with_gates"
    BREAKING = "breaking"
    ERROR = "error"


class Verdict(Frozen):
    level: VerdictLevel
    reasons: list[str] = Field(default_factory=list)


class Plan(Frozen):
    """What to do: the patch outline (a unified diff) and the ordered runbooks."""

    strategy: str = "patch"
    definitions: list[str] = Field(
        default_factory=list, description="Definitions this plan has a rollback for."
    )
    outline: str = ""
    outline_proof: str = Field(
        default="",
        description="How the outline was proven before it was shown (compiled, names, replay, static verdict).",
    )
    outline_withheld: str = Field(
        default="",
        description="Why an outline was built but not shown (the proof step it failed), and what to do instead.",
    )
    runbook: list[str] = Field(default_factory=list)
    rollback: list[str] = Field(default_factory=list)
    rollback_proof: str = Field(
        default="",
        description="How the rollback sentences were backed: histories recorded on the code this change "
        "ships (head, or head with the outline), replayed on base; or why they could not be.",
    )
    canary: list[str] = Field(default_factory=list)
    guardrails: list[str] = Field(default_factory=list)
    revert_windows: dict[str, str] = Field(
        default_factory=dict,
        exclude=True,
        description="Per definition: the count that shows a plain revert is still safe (internal: the "
        "rollback proof says it where the replay does not settle the question).",
    )


class Revision(Frozen):
    ref: str
    sha: str


class SynthesizedWorkflow(Frozen):
    """What synthesis recorded for one changed workflow and what its histories showed on head."""

    engine: str
    workflow_type: str
    definition: str | None = None
    executions: int = 0
    histories: int = 0
    failed: int = 0
    commands: list[str] = Field(default_factory=list, description="Commands the executions reached.")
    variants: list[str] = Field(default_factory=list, description="The branches explored.")
    truncated: bool = Field(default=False, description="A budget stopped the exploration.")


class Synthesis(Frozen):
    """Histories the tool recorded from the base code on the engine, labelled `synthesized from base`."""

    mode: str = "auto"
    server: str = ""
    seconds: float = 0.0
    workflows: list[SynthesizedWorkflow] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(
        default_factory=list, description="Changed workflows not synthesized, with the reason."
    )


PictureStatus = Literal["added", "removed", "changed", "unchanged"]


class PictureNode(Frozen):
    """One state, task or command of a picture; `lane` is `base` or `head` in a command sequence."""

    id: str
    label: str
    status: PictureStatus = "unchanged"
    gated: bool = Field(default=False, description="Behind a version gate (`patched()`, `get_version`).")
    lane: str = ""


class PictureEdge(Frozen):
    source: str
    target: str
    label: str = ""
    status: PictureStatus = "unchanged"


class Picture(Frozen):
    """What one changed definition looks like, base and head overlaid, drawn from the diff's models:
    a graph (Step Functions states, Airflow tasks) or two command sequences (Temporal, Cadence)."""

    engine: str
    definition: str
    kind: Literal["graph", "sequence"]
    nodes: list[PictureNode] = Field(default_factory=list)
    edges: list[PictureEdge] = Field(default_factory=list)
    omitted: int = Field(default=0, description="Nodes not drawn (the picture is capped).")
    omitted_edges: int = Field(default=0, description="Edges not drawn (the picture is capped).")


class Report(Frozen):
    """Everything one check found; its JSON is the stable contract (`schema_version`)."""

    schema_version: Literal[1] = 1
    tool: dict[str, str] = Field(default_factory=dict)
    repository: str = ""
    base: Revision | None = None
    head: Revision | None = None
    verdict: Verdict
    definitions: list[Definition] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    replay: list[ReplayResult] = Field(default_factory=list)
    replay_summary: ReplaySummary | None = None
    synthesis: Synthesis | None = None
    gates: list[Gate] = Field(default_factory=list)
    plan: Plan = Field(default_factory=Plan)
    histories: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    pictures: list[Picture] = Field(
        default_factory=list, description="A picture of each changed definition (the comment draws it)."
    )
    rules_url: str = Field(
        default="", description="The rules reference rule ids link to (`<rules_url>#<id in lower case>`)."
    )

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema(mode="serialization")
