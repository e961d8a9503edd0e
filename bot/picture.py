"""Pictures of changed definitions, base and head overlaid, built from the models the diff paired.

An engine hands over what each side holds (states or tasks and their transitions, or command
sequences) and the change facts of the definition; this module marks what was added, removed or
changed and caps the size. Drawing (Mermaid) is the report's business.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bot.model import Change, Definition, Picture, PictureEdge, PictureNode, PictureStatus

M = TypeVar("M")

MAX_NODES = 40  # past this a picture reads slower than the findings table
MAX_EDGES = 3 * MAX_NODES
MAX_LABEL = 80


@dataclass(frozen=True)
class Graph:
    """One side of a graph definition: node name → label, and (source, target, label) edges."""

    nodes: Mapping[str, str]
    edges: Sequence[tuple[str, str, str]] = ()


@dataclass(frozen=True)
class Step:
    """One command of a sequence: `key` pairs base and head, `gate` names the version gate it sits behind."""

    key: Hashable
    label: str
    gate: str | None = None
    detail: Hashable = None  # compared when keys match: a difference marks the command changed
    is_gate: bool = False  # the version check itself (`patched()`, `get_version`)


@dataclass(frozen=True)
class Lanes:
    """Named command sequences of one side (`run`, `signal approve`...)."""

    sequences: Mapping[str, Sequence[Step]] = field(default_factory=dict)


def _label(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def drawn(
    pairs: Mapping[str, tuple[M | None, M | None]], definitions: Sequence[Definition]
) -> Iterator[tuple[Definition, M | None, M | None]]:
    """(definition, base model, head model) of every definition the change adds, removes or changes."""
    for d in definitions:
        if d.status != "unchanged" and d.id in pairs:
            yield d, *pairs[d.id]


def graph_picture(
    engine: str,
    definition: str,
    base: Graph | None,
    head: Graph | None,
    changes: Sequence[Change],
    *,
    name_key: str,
) -> Picture:
    """Return the picture of a graph definition: the union of both sides, each node and edge marked
    by where it is (base only: removed, head only: added) and by the facts naming it (`name_key` is
    the detail holding the node's name: `state`, `task`)."""
    old = base or Graph({})
    new = head or Graph({})
    renamed: dict[str, str] = {}  # head name → base name
    changed: set[str] = set()
    for c in changes:
        if c.kind.endswith(".renamed") and isinstance(c.details.get("old"), str):
            now = c.details.get("name", c.details.get("new", c.details.get(name_key)))
            if isinstance(now, str) and now in new.nodes and c.details["old"] in old.nodes:
                renamed[now] = str(c.details["old"])
        elif not c.kind.endswith((".added", ".removed")):
            name = c.details.get(name_key)
            if isinstance(name, str):
                changed.add(name)
    to_head = {was: now for now, was in renamed.items()}

    def as_head(name: str) -> str:
        return to_head.get(name, name)

    nodes: dict[str, PictureNode] = {}
    for name, label in new.nodes.items():
        status: PictureStatus
        if name in renamed:
            status, label = "changed", f"{label} (was {renamed[name]})"
        elif name not in old.nodes:
            status = "added"
        else:
            status = "changed" if name in changed else "unchanged"
        nodes[name] = PictureNode(id=name, label=_label(label), status=status)
    for name, label in old.nodes.items():
        if as_head(name) not in nodes:
            nodes[name] = PictureNode(id=name, label=_label(label), status="removed")
    base_edges = list(dict.fromkeys((as_head(s), as_head(t), lab) for s, t, lab in old.edges))
    head_edges = list(dict.fromkeys(new.edges))
    in_base, in_head = set(base_edges), set(head_edges)
    marked: list[tuple[tuple[str, str, str], PictureStatus]] = [
        (e, "unchanged" if e in in_base else "added") for e in head_edges
    ]
    marked += [(e, "removed") for e in base_edges if e not in in_head]
    edges = [
        PictureEdge(source=s, target=t, label=_label(lab), status=status)
        for (s, t, lab), status in marked
        if s in nodes and t in nodes
    ]
    return _capped(Picture(engine=engine, definition=definition, kind="graph"), list(nodes.values()), edges)


def sequence_picture(engine: str, definition: str, base: Lanes | None, head: Lanes | None) -> Picture:
    """Return the picture of command sequences: base and head side by side for every sequence that
    differs (else the `run` sequence), commands marked added, removed or changed, gated ones flagged."""
    old = base.sequences if base else {}
    new = head.sequences if head else {}
    names = [n for n in dict.fromkeys([*new, *old]) if _keys(old.get(n, ())) != _keys(new.get(n, ()))]
    if not names:
        names = [n for n in ("run", *new) if n in new or n in old][:1]
    nodes: list[PictureNode] = []
    edges: list[PictureEdge] = []
    for name in names:
        a, b = list(old.get(name, ())), list(new.get(name, ()))
        marks_a: list[PictureStatus] = ["unchanged"] * len(a)
        marks_b: list[PictureStatus] = ["unchanged"] * len(b)
        matcher = difflib.SequenceMatcher(None, [s.key for s in a], [s.key for s in b], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                    if a[i].detail != b[j].detail:
                        marks_a[i] = marks_b[j] = "changed"
                continue
            for i in range(i1, i2):
                marks_a[i] = "removed"
            for j in range(j1, j2):
                marks_b[j] = "added"
        for side, steps, marks in (("base", a, marks_a), ("head", b, marks_b)):
            lane = f"{side} · {name}"
            ids = [f"{side}:{name}:{k}" for k in range(len(steps))]
            for k, (step, mark) in enumerate(zip(steps, marks, strict=True)):
                label = step.label + (f" · gate {step.gate}" if step.gate else "")
                nodes.append(
                    PictureNode(
                        id=ids[k],
                        label=_label(label),
                        status=mark,
                        gated=bool(step.gate) or step.is_gate,
                        lane=lane,
                    )
                )
            edges += [PictureEdge(source=x, target=y) for x, y in itertools.pairwise(ids)]
    return _capped(Picture(engine=engine, definition=definition, kind="sequence"), nodes, edges)


def _keys(steps: Sequence[Step]) -> list[tuple[Hashable, Hashable, str | None]]:
    return [(s.key, s.detail, s.gate) for s in steps]


def _capped(picture: Picture, nodes: list[PictureNode], edges: list[PictureEdge]) -> Picture:
    """The picture with at most MAX_NODES nodes: the marked ones first, then their neighbours, then
    the rest in order; an edge over skipped nodes of a sequence is labelled `…`."""
    if len(nodes) <= MAX_NODES:
        return _edges_capped(picture.model_copy(update={"nodes": nodes}), edges)
    marked = {n.id for n in nodes if n.status != "unchanged" or n.gated}
    near = {e.target for e in edges if e.source in marked} | {e.source for e in edges if e.target in marked}
    ranked = sorted(
        range(len(nodes)), key=lambda i: (0 if nodes[i].id in marked else 1 if nodes[i].id in near else 2, i)
    )
    keep = set(ranked[:MAX_NODES])
    kept = [n for i, n in enumerate(nodes) if i in keep]
    ids = {n.id for n in kept}
    out = [e for e in edges if e.source in ids and e.target in ids]
    if picture.kind == "sequence":  # bridge the gaps a lane's skipped commands leave
        out = []
        for lane in dict.fromkeys(n.lane for n in kept):
            mine = [(i, n) for i, n in enumerate(nodes) if i in keep and n.lane == lane]
            for (i, x), (j, y) in itertools.pairwise(mine):
                out.append(PictureEdge(source=x.id, target=y.id, label="…" if j != i + 1 else ""))
    return _edges_capped(picture.model_copy(update={"nodes": kept, "omitted": len(nodes) - len(kept)}), out)


def _edges_capped(picture: Picture, edges: list[PictureEdge]) -> Picture:
    """The picture with at most MAX_EDGES edges (a Choice with hundreds of rules): the marked first."""
    if len(edges) <= MAX_EDGES:
        return picture.model_copy(update={"edges": edges})
    ranked = sorted(range(len(edges)), key=lambda i: (edges[i].status == "unchanged", i))
    keep = set(ranked[:MAX_EDGES])
    return picture.model_copy(
        update={
            "edges": [e for i, e in enumerate(edges) if i in keep],
            "omitted_edges": len(edges) - MAX_EDGES,
        }
    )
