"""Draw a `Picture` as a Mermaid flowchart (GitHub renders ```mermaid blocks in comments).

Every name and label comes from the pull request: it is written as Mermaid entity codes (`#60;`)
except for letters, digits and a few plain marks, inside a quoted label, so no text can end the
label, add a node or an edge, start a directive or comment, open HTML, or close the code fence.
Node ids are the renderer's own (`n0`, `n1`...).
"""

from __future__ import annotations

import string

from bot.model import Picture, PictureStatus

PLAIN = frozenset(string.ascii_letters + string.digits + " _-.,:/()=+~")
MAX_PICTURES = 10  # definitions drawn in one comment; the JSON report holds every picture

MARK: dict[PictureStatus, str] = {"added": "+ ", "removed": "- ", "changed": "~ ", "unchanged": ""}
ARROW: dict[PictureStatus, str] = {"added": "==>", "removed": "-.->", "changed": "-->", "unchanged": "-->"}
STYLES = (
    "classDef added fill:#dafbe1,stroke:#1a7f37,color:#0b2e14",
    "classDef removed fill:#ffebe9,stroke:#cf222e,color:#4c0d0d,stroke-dasharray:5 3",
    "classDef changed fill:#fff8c5,stroke:#9a6700,color:#3b2300",
    "classDef gated stroke:#8250df,stroke-width:3px",
)
LEGEND = (
    "`+` added (green, thick arrows) · `-` removed (red, dashed) · `~` changed (amber) · "
    "purple border: behind a version gate"
)


def text(value: str) -> str:
    """Return `value` as the inside of a quoted Mermaid label: plain characters kept, the rest as
    entity codes Mermaid decodes when it draws."""
    return "".join(c if c in PLAIN else f"#{ord(c)};" for c in " ".join(value.split()))


def not_drawn(picture: Picture) -> str:
    """What the capped picture leaves out: `12 more not drawn`, `30 more edges not drawn`."""
    parts = [f"{picture.omitted} more" if picture.omitted else ""]
    parts.append(f"{picture.omitted_edges} more edges" if picture.omitted_edges else "")
    return ", ".join(p for p in parts if p) + " not drawn"


def flowchart(picture: Picture) -> str:
    """Return the Mermaid source of `picture` (without the code fence)."""
    ids = {node.id: f"n{i}" for i, node in enumerate(picture.nodes)}
    lines = ["flowchart LR" if picture.kind == "sequence" else "flowchart TD"]

    def node(i: int) -> str:
        n = picture.nodes[i]
        return f'{ids[n.id]}["{text(MARK[n.status] + n.label)}"]'

    lanes = list(dict.fromkeys(n.lane for n in picture.nodes))
    for k, lane in enumerate(lanes):
        members = [i for i, n in enumerate(picture.nodes) if n.lane == lane]
        if lane:
            lines.append(f'  subgraph s{k}["{text(lane)}"]')
            lines.append("    direction TB")
        lines += [("    " if lane else "  ") + node(i) for i in members]
        if lane:
            lines.append("  end")
    for e in picture.edges:
        if e.source not in ids or e.target not in ids:
            continue
        label = f'|"{text(e.label)}"|' if e.label else ""
        lines.append(f"  {ids[e.source]} {ARROW[e.status]}{label} {ids[e.target]}")
    if picture.omitted or picture.omitted_edges:
        lines.append(f'  more(["{text(not_drawn(picture))}"])')
    lines += [f"  {s}" for s in STYLES]
    for status in ("added", "removed", "changed"):
        marked = [ids[n.id] for n in picture.nodes if n.status == status]
        if marked:
            lines.append(f"  class {','.join(marked)} {status}")
    gated = [ids[n.id] for n in picture.nodes if n.gated]
    if gated:
        lines.append(f"  class {','.join(gated)} gated")
    return "\n".join(lines) + "\n"
