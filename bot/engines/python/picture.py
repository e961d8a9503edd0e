"""The picture of a changed workflow: its command sequences, base beside head, the gates marked."""

from __future__ import annotations

from collections.abc import Sequence

from bot.model import Command, CommandKind, Definition, Picture, WorkflowModel
from bot.picture import Lanes, Step, drawn, sequence_picture

GATES = (CommandKind.PATCH, CommandKind.DEPRECATE_PATCH)


def _step(command: Command) -> Step:
    gate = f"{command.gate.patch_id} ({command.gate.branch})" if command.gate else None
    if command.kind in GATES:
        return Step(key=command.key, label=f"gate {command.kind.value} {command.name}", is_gate=True)
    return Step(
        key=command.key,
        label=f"{command.kind.value} {command.name}",
        gate=gate,
        detail=tuple(sorted(command.options.items())),
    )


def _lanes(model: WorkflowModel | None) -> Lanes | None:
    if model is None:
        return None
    lanes = {name: [_step(c) for c in seq] for name, seq in model.sequences.items()}
    # The handlers it declares: one a change adds or removes is what executions see change.
    lanes["handlers"] = [Step(key=(h.kind, h.name), label=f"{h.kind} {h.name}") for h in model.handlers]
    return Lanes(lanes)


def pictures(
    engine: str,
    pairs: dict[str, tuple[WorkflowModel | None, WorkflowModel | None]],
    definitions: Sequence[Definition],
) -> list[Picture]:
    """A picture of every workflow the change adds, removes or changes."""
    return [
        sequence_picture(engine, d.id, _lanes(old), _lanes(new)) for d, old, new in drawn(pairs, definitions)
    ]
