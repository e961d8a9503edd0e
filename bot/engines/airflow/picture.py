"""The picture of a changed DAG: its tasks and dependencies, base and head overlaid."""

from __future__ import annotations

from collections.abc import Sequence

from bot.engines.airflow.model import Dag
from bot.model import Change, Definition, Picture
from bot.picture import Graph, drawn, graph_picture


def _graph(dag: Dag | None) -> Graph | None:
    if dag is None:
        return None
    nodes = {tid: f"{tid} · {task.operator_kind}" for tid, task in dag.tasks.items()}
    edges = [(tid, down, "") for tid, task in dag.tasks.items() for down in task.downstream]
    return Graph(nodes=nodes, edges=edges)


def pictures(
    pairs: dict[str, tuple[Dag | None, Dag | None]],
    definitions: Sequence[Definition],
    changes: Sequence[Change],
) -> list[Picture]:
    """A picture of every DAG the change adds, removes or changes."""
    return [
        graph_picture(
            "airflow",
            d.id,
            _graph(old),
            _graph(new),
            [c for c in changes if c.definition == d.id],
            name_key="task",
        )
        for d, old, new in drawn(pairs, definitions)
    ]
