"""The picture of a changed state machine: its states and transitions, base and head overlaid."""

from __future__ import annotations

from collections.abc import Sequence

from bot.engines.stepfunctions.model import StateMachine, dicts
from bot.model import Change, Definition, Picture
from bot.picture import Graph, drawn, graph_picture


def _graph(machine: StateMachine | None) -> Graph | None:
    if machine is None:
        return None
    nodes = {name: f"{name} · {state.type}" for name, state in machine.states.items()}
    edges: list[tuple[str, str, str]] = []
    for name, state in machine.states.items():
        edges += [(name, target, "" if field == "Next" else field) for field, target in state.transitions()]
        # A Parallel's branches and a Map's item processor start inside it.
        for branch in dicts(state.body.get("Branches")):
            if isinstance(branch.get("StartAt"), str):
                edges.append((name, branch["StartAt"], "branch"))
        for key in ("ItemProcessor", "Iterator"):
            inner = state.body.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("StartAt"), str):
                edges.append((name, inner["StartAt"], "item"))
    return Graph(nodes=nodes, edges=edges)


def pictures(
    pairs: dict[str, tuple[StateMachine | None, StateMachine | None]],
    definitions: Sequence[Definition],
    changes: Sequence[Change],
) -> list[Picture]:
    """A picture of every state machine the change adds, removes or changes."""
    return [
        graph_picture(
            "stepfunctions",
            d.id,
            _graph(old),
            _graph(new),
            [c for c in changes if c.definition == d.id],
            name_key="state",
        )
        for d, old, new in drawn(pairs, definitions)
    ]
