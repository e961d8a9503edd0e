"""Read JSON and YAML documents keeping the line of every key: the ground the extractor stands on.

`load_document` returns the data and a map from a path of keys/indexes to a 1-based line.
YAML accepts CloudFormation's short-form tags (`!Sub`, `!GetAtt`, `!Ref`, ...), turned into
their long form (`{"Fn::Sub": ...}`) so templates read the same whichever form they use.
JSON keeps duplicate keys visible (YAML and `json` silently keep the last one).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot import yamlsafe

_scanstring: Any = getattr(json.decoder, "scanstring")  # noqa: B009 - untyped in typeshed

Path = tuple[str | int, ...]

_WS = re.compile(r"[ \t\n\r]*")
_LITERAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
_NO_GETATT_SPLIT = ("Fn::GetAtt",)


class DocumentError(Exception):
    """The text is not valid JSON/YAML: `line` is where the parser stopped."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Document:
    """Parsed data, the line of every key (and list item), and keys given twice in one object."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)
    offset: int = 0  # added to every line: a definition string embedded in a template

    def line(self, path: Path, default: int | None = None) -> int:
        """Return the line of `path`, else of its nearest ancestor with one."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe] + self.offset
            probe = probe[:-1]
        return default if default is not None else 1 + self.offset

    def sub(self, prefix: Path) -> Document:
        """Return the part of the document under `prefix`, lines unchanged."""
        data: Any = self.data
        for key in prefix:
            data = data[key]
        n = len(prefix)
        return Document(
            data=data,
            lines={k[n:]: v for k, v in self.lines.items() if k[:n] == tuple(prefix) and len(k) > n},
            duplicates=[(k[n:], v) for k, v in self.duplicates if k[:n] == tuple(prefix)],
            offset=self.offset,
        )


_PARSED: OrderedDict[tuple[str, bool], Document | DocumentError] = OrderedDict()
# A blob unchanged between base and head is parsed once. Bounded by its texts' size as well: a pull
# request can hold many large files.
PARSED_KEPT = 4096
PARSED_CHARS = 32_000_000
_kept_chars = [0]


def forget_parsed() -> None:
    """Drop every kept document (what a fresh process starts with)."""
    _PARSED.clear()
    _kept_chars[0] = 0


def load_document(text: str, path: str) -> Document:
    """Parse `text` as JSON when `path` says so (or it starts with `{`), else as YAML.

    The result (or the error) is kept per content: callers must not change the document.
    """
    stripped = text.lstrip()
    as_json = path.endswith(".json") or (
        stripped.startswith(("{", "[")) and not path.endswith((".yaml", ".yml"))
    )
    key = (text, as_json)
    found = _PARSED.get(key)
    if found is None:
        try:
            found = load_json(text) if as_json else load_yaml(text)
        except DocumentError as exc:
            found = exc
        _PARSED[key] = found
        _kept_chars[0] += len(text)
        while len(_PARSED) > 1 and (len(_PARSED) > PARSED_KEPT or _kept_chars[0] > PARSED_CHARS):
            (old_text, _), _ = _PARSED.popitem(last=False)
            _kept_chars[0] -= len(old_text)
    else:
        _PARSED.move_to_end(key)
    if isinstance(found, DocumentError):
        raise DocumentError(found.line, found.message)
    return found


def load_json(text: str) -> Document:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            exc.lineno, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise DocumentError(1, "invalid JSON: nested too deeply") from None
    doc = Document(data=data)
    newlines = [m.start() for m in re.finditer("\n", text)]
    with contextlib.suppress(RecursionError):  # lines are a convenience: the data is valid already
        _scan(text, _WS.match(text, 0).end(), (), doc, newlines)  # type: ignore[union-attr]
    return doc


def _scan(text: str, i: int, path: Path, doc: Document, newlines: list[int]) -> int:
    """Record the line of every key below `path`; return the index after the value at `i`."""
    c = text[i]
    if c == "{":
        i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        seen: set[str] = set()
        if text[i] == "}":
            return i + 1
        while True:
            key, end = _scanstring(text, i + 1)
            line = bisect.bisect_right(newlines, i) + 1
            if key in seen:
                doc.duplicates.append(((*path, key), line))
            seen.add(key)
            doc.lines[(*path, key)] = line
            i = _WS.match(text, end).end()  # type: ignore[union-attr]
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]  # past ':'
            i = _scan(text, i, (*path, key), doc, newlines)
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            if text[i] == "}":
                return i + 1
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]  # past ','
    if c == "[":
        i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        if text[i] == "]":
            return i + 1
        k = 0
        while True:
            doc.lines[(*path, k)] = bisect.bisect_right(newlines, i) + 1
            i = _scan(text, i, (*path, k), doc, newlines)
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            if text[i] == "]":
                return i + 1
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            k += 1
    if c == '"':
        return int(_scanstring(text, i + 1)[1])
    m = _LITERAL.match(text, i)
    return m.end() if m else i + 1


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form tags as their long form."""


# libyaml's parser, with the same constructors and resolvers: a template reads ~10x faster.
_CfnCLoader: type[yaml.CSafeLoader] | None = (
    type("_CfnCLoader", (yaml.CSafeLoader,), {}) if getattr(yaml, "__with_libyaml__", False) else None
)


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str) and "." in value:
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


for _loader in (_CfnLoader, _CfnCLoader):
    if _loader is None:
        continue
    _loader.add_multi_constructor("!", _cfn_tag)
    # YAML 1.1 reads `on`/`yes` as booleans and `012` as octal; ASL and CloudFormation do not.
    _loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )


# libyaml composes nodes on the C stack: past ~20,000 levels of nesting it crashes the process.
# Below this bound on the depth a document can reach, it is used; above, the Python loader (which
# refuses a document nested too deeply with a line).
C_DEPTH_BOUND = 5_000
_INDENT = re.compile(r"^ *", re.M)


def _depth_bound(text: str) -> int:
    """An upper bound on the nesting depth of a YAML text: every level opens a flow collection,
    a block sequence entry, a complex key, or sits one column deeper than its parent."""
    indent = max(map(len, _INDENT.findall(text)), default=0)
    openers = sum(text.count(t) for t in ("[", "{", "- ", "-\n", "? "))
    return 2 * indent + openers + 2


def load_yaml(text: str) -> Document:
    loader = _CfnCLoader if _CfnCLoader is not None and _depth_bound(text) < C_DEPTH_BOUND else _CfnLoader
    try:
        node, data = yamlsafe.load(text, loader)
    except yamlsafe.YamlUnbounded as exc:
        raise DocumentError(exc.line, str(exc.problem)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise DocumentError(line, f"invalid YAML: {exc.problem or exc.context} (line {line})") from None
    except yaml.YAMLError as exc:
        raise DocumentError(1, f"invalid YAML: {exc}") from None
    doc = Document(data=data)
    if node is not None:
        for path, line, repeated in _yaml_lines(node, ()):
            if repeated:
                doc.duplicates.append((path, line))
            doc.lines.setdefault(path, line)
    return doc


def _yaml_lines(node: yaml.Node, path: Path) -> Iterator[tuple[Path, int, bool]]:
    # A node reached again through an alias is walked once: below its other uses the nearest
    # ancestor's line (the alias) stands, and the walk costs what the file holds, not its expansion.
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, Path]] = [(node, path)]
    while stack:
        current, here = stack.pop()
        if id(current) in walked:
            continue
        walked.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                name = str(getattr(key, "value", ""))
                yield (*here, name), key.start_mark.line + 1, name in seen
                seen.add(name)
                stack.append((value, (*here, name)))
        elif isinstance(current, yaml.SequenceNode):
            for k, value in enumerate(current.value):
                yield (*here, k), value.start_mark.line + 1, False
                stack.append((value, (*here, k)))


def scalar_start_line(text: str, line: int) -> int:
    """Return the number of lines to add to lines of a string value starting at template `line`.

    A YAML block scalar (`|`) starts on the next line; a quoted JSON string on the same one.
    """
    lines = text.splitlines()
    if 0 < line <= len(lines) and lines[line - 1].rstrip().endswith(("|", "|-", "|+", ">", ">-")):
        return line
    return line - 1
