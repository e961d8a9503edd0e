"""YAML from a pull request, read within bounds: aliases cannot blow a small file up into gigabytes.

An anchor used through aliases is one node in the composed graph but a full copy in every
consumer that walks the data (the "billion laughs" pattern: 834 bytes that expand past 6 GB).
`load` composes the document once, counts its size as if every alias were expanded (a memo by
node: aliases make the graph a DAG, so counting costs what the file holds), refuses it past a
budget, and only then constructs the data from the node already composed.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 10_000_000
MAX_EXPANDED_NODES = 1_000_000

Loader = type[yaml.SafeLoader] | type[yaml.CSafeLoader]


class YamlUnbounded(yaml.MarkedYAMLError):
    """A document past the size or alias-expansion budget, or nested deeper than the parser goes."""

    def __init__(self, line: int, problem: str) -> None:
        mark = yaml.Mark("<document>", 0, line - 1, 0, "", 0)
        super().__init__(problem=problem, problem_mark=mark)
        self.line = line


def load(
    text: str,
    loader: Loader = yaml.SafeLoader,
    *,
    max_nodes: int = MAX_EXPANDED_NODES,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> tuple[yaml.Node | None, Any]:
    """Return (composed root node, constructed data) of a single-document YAML text.

    Raises `YamlUnbounded` past a budget, and `yaml.YAMLError` for text that is not YAML.
    `loader` must be a safe loader class (its constructor decides what tags mean).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise YamlUnbounded(1, f"YAML refused: {size:,} bytes, over the {max_bytes:,}-byte limit")
    reader = loader(text)
    try:
        try:
            node = reader.get_single_node()
        except RecursionError:
            raise YamlUnbounded(_line(reader), "YAML refused: nested too deeply to read") from None
        if node is None:
            return None, None
        expanded = expanded_size(node, max_nodes)
        if expanded is None:
            raise YamlUnbounded(
                first_alias_line(text, loader),
                "YAML refused: an alias inside its own anchor (endless when expanded; first alias on this line)",
            )
        if expanded > max_nodes:
            raise YamlUnbounded(
                first_alias_line(text, loader),
                f"YAML refused: aliases expand it to over {max_nodes:,} nodes (first alias on this line)",
            )
        try:
            return node, reader.construct_document(node)
        except RecursionError:
            raise YamlUnbounded(node.start_mark.line + 1, "YAML refused: nested too deeply to read") from None
    finally:
        reader.dispose()


def expanded_size(root: yaml.Node, limit: int) -> int | None:
    """Return how many nodes `root` holds with every alias expanded (counting stops past `limit`);
    None when an alias sits inside its own anchor (endless).

    Iterative (a deep document must not exhaust the stack here) and memoised by node identity.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path: reaching one again is a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            if total > limit:
                return total
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                return None
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def first_alias_line(text: str, loader: Loader = yaml.SafeLoader) -> int:
    """Return the 1-based line of the first alias (`*name`) in `text`, 1 if none is found."""
    reader = loader(text)
    try:
        while reader.check_event():
            event = reader.get_event()
            if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
                return int(event.start_mark.line) + 1
    except yaml.YAMLError:
        pass
    finally:
        reader.dispose()
    return 1


def _line(reader: Any) -> int:
    """The line the reader had reached (1-based), 1 when the loader does not say."""
    line = getattr(reader, "line", None)
    return line + 1 if isinstance(line, int) else 1
