"""Data access for the ASL interpreter: JSONPath paths, payload templates, intrinsic functions, JSONata.

Everything a state does to its data goes through here. Failures raise `StatesError` with the error
name the Step Functions service uses and a cause that names the field and the expression from the
definition, never a value from the data: replay messages end up in pull-request comments.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import jsonata  # type: ignore[import-untyped]
from jsonata.utils import Utils as _JsonataUtils  # type: ignore[import-untyped]
from jsonpath_ng import jsonpath as _jp  # type: ignore[import-untyped]
from jsonpath_ng.ext import parse as _parse_jsonpath  # type: ignore[import-untyped]

RUNTIME: Final = "States.Runtime"
QUERY_ERROR: Final = "States.QueryEvaluationError"
RESULT_PATH_ERROR: Final = "States.ResultPathMatchFailure"

#: Errors that no Retry or Catch can handle (AWS: "States.ALL ... can't catch States.DataLimitExceeded
#: and runtime errors").
UNCATCHABLE: Final = frozenset({RUNTIME, "States.DataLimitExceeded"})


class StatesError(Exception):
    """An error a state raises, named as Step Functions names it (`States.Runtime`, `MyApp.Transient`).

    `cause` may come from a recorded task failure and then carries payload text: never print it.
    `definition` is true when evaluating the definition on the data raised it (a path, an intrinsic,
    JSONata, a Choice without match) rather than a Task or a Fail state.
    """

    def __init__(self, error: str, cause: str | None = None, *, definition: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.cause = cause
        self.definition = definition
        self.state: str | None = None
        self.label: str | None = None

    @property
    def shown(self) -> str:
        """How messages name the error: `label` when the name came from the data, else the name."""
        return self.label or f"`{self.error}`"

    @property
    def catchable(self) -> bool:
        """Whether Retry and Catch may handle this error at all."""
        return self.error not in UNCATCHABLE


class Unsupported(Exception):
    """The definition uses a feature replay cannot simulate (an S3 ItemReader, a ResultWriter...)."""

    def __init__(self, feature: str) -> None:
        super().__init__(feature)
        self.feature = feature
        self.state: str | None = None


def runtime_error(cause: str) -> StatesError:
    """A `States.Runtime` error raised by evaluating the definition (not retriable, not catchable)."""
    return StatesError(RUNTIME, cause, definition=True)


# ---------------------------------------------------------------------------------------------- JSON


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values: `1 == 1.0`, but `true != 1` (Python says otherwise)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def is_number(value: Any) -> bool:
    """A JSON number (a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_json_text(value: Any) -> str:
    """Compact JSON text, as Step Functions writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------------------ JSONPath

_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class _Path:
    expression: str
    keys: tuple[str | int, ...] | None  # set when the path is definite (one value or none)
    compiled: Any


class _NoMatch(Exception):
    pass


@lru_cache(maxsize=8192)
def _compile(expression: str) -> _Path:
    """Parse a `$...` path once; definite paths also get their key list (read and written directly)."""
    try:
        compiled = _parse_jsonpath(expression)
    except Exception as exc:  # jsonpath-ng raises several unrelated types
        raise runtime_error(f"invalid JSONPath `{expression}`") from exc
    return _Path(expression, _definite_keys(compiled), compiled)


def _definite_keys(node: Any) -> tuple[str | int, ...] | None:
    if isinstance(node, _jp.Root):
        return ()
    if isinstance(node, _jp.Child):
        left, right = _definite_keys(node.left), _definite_keys(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, _jp.Fields) and len(node.fields) == 1 and node.fields[0] != "*":
        return (str(node.fields[0]),)
    if type(node) is _jp.Index and isinstance(getattr(node, "index", None), int):
        return (int(node.index),)
    return None


def _walk(data: Any, keys: tuple[str | int, ...]) -> Any:
    for key in keys:
        if isinstance(data, dict):
            if not isinstance(key, str) or key not in data:
                raise _NoMatch
            data = data[key]
        elif isinstance(data, list):
            if not isinstance(key, int) or not -len(data) <= key < len(data):
                raise _NoMatch
            data = data[key]
        else:
            raise _NoMatch
    return data


def _find(path: _Path, data: Any) -> Any:
    if path.keys is not None:
        return _walk(data, path.keys)
    try:
        return [match.value for match in path.compiled.find(data)]
    except (KeyError, IndexError, TypeError, AttributeError):
        return []


@dataclass(frozen=True)
class Scope:
    """What a path can read: the state's data (`$`), the context object (`$$`) and the variables (`$x`)."""

    data: Any
    context: Mapping[str, Any]
    variables: Mapping[str, Any]


def read_path(expression: str, scope: Scope, field: str) -> Any:
    """The value `expression` selects; a path that matches nothing is a `States.Runtime` error."""
    if not isinstance(expression, str) or not expression.startswith("$"):
        raise runtime_error(f"the field `{field}` must hold a path starting with `$`")
    try:
        return _read(expression, scope)
    except _NoMatch:
        raise runtime_error(
            f"the JSONPath `{expression}` specified for the field `{field}` could not be found in the input"
        ) from None


def path_present(expression: str, scope: Scope) -> bool:
    """Whether `expression` selects something (for `IsPresent`)."""
    try:
        _read(expression, scope)
    except _NoMatch:
        return False
    return True


def _read(expression: str, scope: Scope) -> Any:
    if expression.startswith("$$"):
        return _find(_compile("$" + expression[2:]), scope.context)
    variable = _VARIABLE.match(expression)
    if variable:
        name = variable.group(1)
        if name not in scope.variables:
            raise runtime_error(f"the variable `${name}` is not defined")
        rest = expression[variable.end() :]
        value = scope.variables[name]
        return _find(_compile("$" + rest), value) if rest else value
    return _find(_compile(expression), scope.data)


def write_result_path(expression: str | None, target: Any, value: Any) -> Any:
    """`target` with `value` placed at the reference path `expression` (`None` discards `value`).

    The containers on the way are copied, never changed in place: recorded values are shared.
    """
    if expression is None:
        return target
    path = _compile(expression)
    if path.keys is None:
        raise runtime_error(f"ResultPath `{expression}` is not a reference path")
    if not path.keys:
        return value
    return _write(target, path.keys, value, expression)


def _write(node: Any, keys: tuple[str | int, ...], value: Any, expression: str) -> Any:
    key, rest = keys[0], keys[1:]
    if isinstance(key, str):
        if not isinstance(node, dict):
            raise StatesError(
                RESULT_PATH_ERROR,
                f"unable to apply ResultPath `{expression}`: the target is not an object",
                definition=True,
            )
        copy = dict(node)
        copy[key] = _write(node.get(key, {}), rest, value, expression) if rest else value
        return copy
    if not isinstance(node, list) or not -len(node) <= key < len(node):
        raise StatesError(
            RESULT_PATH_ERROR,
            f"unable to apply ResultPath `{expression}`: no such array item",
            definition=True,
        )
    items = list(node)
    items[key] = _write(items[key], rest, value, expression) if rest else value
    return items


# ---------------------------------------------------------------------------------- payload templates


def resolve_template(template: Any, scope: Scope, field: str) -> Any:
    """A JSONPath payload template (Parameters, ResultSelector, ItemSelector, Assign) filled from `scope`.

    Keys ending in `.$` take the value of their path or intrinsic function and lose the suffix.
    """
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise runtime_error(
                        f"the field `{key}` in {field} must hold a path or intrinsic function"
                    )
                out[key[:-2]] = evaluate_expression(value, scope, key)
            else:
                out[key] = resolve_template(value, scope, field)
        return out
    if isinstance(template, list):
        return [resolve_template(item, scope, field) for item in template]
    return template


def evaluate_expression(expression: str, scope: Scope, field: str) -> Any:
    """The value of a `.$` field: a path (`$.x`, `$$.x`, `$var`) or an intrinsic call (`States.Format(...)`)."""
    if expression.startswith("States."):
        return call_intrinsic(expression, scope, field)
    return read_path(expression, scope, field)


# ------------------------------------------------------------------------------ intrinsic functions

#: The random source of the running interpreter (deterministic: replays must be repeatable).
RANDOM: ContextVar[random.Random] = ContextVar("sfn_random")


def _rng() -> random.Random:
    try:
        return RANDOM.get()
    except LookupError:
        rng = random.Random(0)
        RANDOM.set(rng)
        return rng


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class _Literal:
    value: Any
    raw: str | None = None  # the text of a string literal with its escapes (for States.Format)


@dataclass(frozen=True)
class _PathArg:
    expression: str


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> StatesError:
        return runtime_error(f"invalid intrinsic function `{self.text}`: {why}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def call(self) -> _Call:
        match = re.compile(r"States\.[A-Za-z0-9]+").match(self.text, self.pos)
        if not match:
            raise self.fail("expected a States.* function name")
        self.pos = match.end()
        self.skip_spaces()
        if self.text[self.pos : self.pos + 1] != "(":
            raise self.fail("expected `(`")
        self.pos += 1
        args: list[Any] = []
        self.skip_spaces()
        if self.text[self.pos : self.pos + 1] == ")":
            self.pos += 1
            return _Call(match.group(0), ())
        while True:
            self.skip_spaces()
            args.append(self.argument())
            self.skip_spaces()
            char = self.text[self.pos : self.pos + 1]
            self.pos += 1
            if char == ")":
                return _Call(match.group(0), tuple(args))
            if char != ",":
                raise self.fail("expected `,` or `)`")

    def argument(self) -> Any:
        rest = self.text[self.pos :]
        if rest.startswith("States."):
            return self.call()
        if rest.startswith("'"):
            return self.string()
        if rest.startswith("$"):
            return self.path()
        match = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null").match(self.text, self.pos)
        if not match:
            raise self.fail("expected a string, number, boolean, null, path or function")
        self.pos = match.end()
        return _Literal(json.loads(match.group(0)))

    def string(self) -> _Literal:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == "'":
                self.pos += 1
                return _Literal("".join(chars), raw=self.text[start + 1 : self.pos - 1])
            chars.append(char)
            self.pos += 1
        raise self.fail("unterminated string")

    def path(self) -> _PathArg:
        start, depth, quote = self.pos, 0, ""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if quote:
                if char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char in "[(":
                depth += 1
            elif char in "])":
                if depth == 0:
                    break
                depth -= 1
            elif char == "," and depth == 0:
                break
            self.pos += 1
        return _PathArg(self.text[start : self.pos].strip())


@lru_cache(maxsize=4096)
def _parse_intrinsic(text: str) -> _Call:
    parser = _Parser(text.strip())
    call = parser.call()
    parser.skip_spaces()
    if parser.pos != len(parser.text):
        raise parser.fail("unexpected text after the call")
    return call


def call_intrinsic(text: str, scope: Scope, field: str) -> Any:
    """The value of an intrinsic function call such as `States.Format('{}', $.name)`."""
    return _evaluate_call(_parse_intrinsic(text), scope, field)


def _evaluate_call(call: _Call, scope: Scope, field: str) -> Any:
    function = _FUNCTIONS.get(call.name)
    if function is None:
        raise runtime_error(f"unknown intrinsic function `{call.name}` in the field `{field}`")
    values = [_evaluate_argument(arg, scope, field) for arg in call.args]
    try:
        if call.name == "States.Format":
            _need(bool(values) and isinstance(values[0], str), "the first argument must be a string template")
            first = call.args[0]
            raw = first.raw if isinstance(first, _Literal) and first.raw is not None else values[0]
            return _format(raw, values[1:])
        return function(*values)
    except _IntrinsicFailure as failure:
        raise runtime_error(
            f"intrinsic function `{call.name}` in the field `{field}` failed: {failure}"
        ) from None
    except TypeError:
        raise runtime_error(
            f"intrinsic function `{call.name}` in the field `{field}` got the wrong number of arguments"
        ) from None


def _evaluate_argument(arg: Any, scope: Scope, field: str) -> Any:
    if isinstance(arg, _Call):
        return _evaluate_call(arg, scope, field)
    if isinstance(arg, _PathArg):
        return read_path(arg.expression, scope, field)
    return arg.value


class _IntrinsicFailure(Exception):
    """Why an intrinsic failed, in words that never quote the data."""


def _need(condition: bool, why: str) -> None:
    if not condition:
        raise _IntrinsicFailure(why)


def _format(raw_template: str, args: list[Any]) -> str:
    # `raw_template` keeps its escapes so that `\{` stays a literal brace, not a placeholder.
    out: list[str] = []
    used, i = 0, 0
    while i < len(raw_template):
        char = raw_template[i]
        if char == "\\" and i + 1 < len(raw_template):
            out.append(raw_template[i + 1])
            i += 2
            continue
        if raw_template.startswith("{}", i):
            _need(used < len(args), "more `{}` placeholders than arguments")
            out.append(_format_value(args[used]))
            used += 1
            i += 2
            continue
        out.append(char)
        i += 1
    _need(used == len(args), "more arguments than `{}` placeholders")
    return "".join(out)


def _format_value(value: Any) -> str:
    _need(not isinstance(value, dict | list), "arguments must be strings, numbers, booleans or null")
    return value if isinstance(value, str) else to_json_text(value)


def _string_to_json(text: Any) -> Any:
    _need(isinstance(text, str), "the argument must be a string")
    try:
        return json.loads(text)
    except ValueError:
        raise _IntrinsicFailure("the argument is not JSON text") from None


def _array_partition(array: Any, size: Any) -> list[Any]:
    _need(isinstance(array, list), "the first argument must be an array")
    _need(is_number(size) and int(size) == size and size > 0, "the chunk size must be a positive integer")
    n = int(size)
    return [array[i : i + n] for i in range(0, len(array), n)]


def _array_contains(array: Any, value: Any) -> bool:
    _need(isinstance(array, list), "the first argument must be an array")
    return any(json_equal(item, value) for item in array)


def _array_range(start: Any, end: Any, step: Any) -> list[int]:
    for value in (start, end, step):
        _need(is_number(value) and int(value) == value, "the arguments must be integers")
    _need(step != 0, "the step must not be zero")
    values = list(range(int(start), int(end) + (1 if step > 0 else -1), int(step)))
    _need(len(values) <= 1000, "the range has more than 1,000 items")
    return values


def _array_get_item(array: Any, index: Any) -> Any:
    _need(isinstance(array, list), "the first argument must be an array")
    _need(is_number(index) and int(index) == index and index >= 0, "the index must be a non-negative integer")
    _need(int(index) < len(array), "the index is out of range")
    return array[int(index)]


def _array_length(array: Any) -> int:
    _need(isinstance(array, list), "the argument must be an array")
    return len(array)


def _array_unique(array: Any) -> list[Any]:
    _need(isinstance(array, list), "the argument must be an array")
    out: list[Any] = []
    for item in array:
        if not any(json_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _base64_encode(text: Any) -> str:
    _need(isinstance(text, str), "the argument must be a string")
    _need(len(text) <= 10_000, "the string is longer than 10,000 characters")
    return base64.b64encode(text.encode()).decode()


def _base64_decode(text: Any) -> str:
    _need(isinstance(text, str), "the argument must be a string")
    _need(len(text) <= 10_000, "the string is longer than 10,000 characters")
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _IntrinsicFailure("the argument is not base64 text of UTF-8") from None


_HASHES: Final = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}


def _hash(data: Any, algorithm: Any) -> str:
    _need(
        isinstance(algorithm, str) and algorithm in _HASHES, f"the algorithm must be one of {sorted(_HASHES)}"
    )
    text = data if isinstance(data, str) else to_json_text(data)
    _need(len(text) <= 10_000, "the data is longer than 10,000 characters")
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _json_merge(left: Any, right: Any, deep: Any) -> dict[str, Any]:
    _need(isinstance(left, dict) and isinstance(right, dict), "the first two arguments must be objects")
    _need(deep is False, "only a shallow merge (third argument false) is supported")
    return {**left, **right}


def _math_random(start: Any, end: Any, seed: Any = None) -> int:
    _need(is_number(start) and is_number(end), "start and end must be numbers")
    _need(int(start) < int(end), "start must be less than end")
    rng = random.Random(seed) if seed is not None else _rng()
    return rng.randrange(int(start), int(end))


def _math_add(a: Any, b: Any) -> int | float:
    _need(is_number(a) and is_number(b), "the arguments must be numbers")
    total = a + b
    return int(total) if isinstance(a, int) and isinstance(b, int) else total


def _string_split(text: Any, delimiters: Any) -> list[str]:
    _need(isinstance(text, str) and isinstance(delimiters, str), "the arguments must be strings")
    if not delimiters:
        return [text] if text else []
    pattern = "|".join(re.escape(char) for char in delimiters)
    return [part for part in re.split(pattern, text) if part]


def deterministic_uuid() -> str:
    """A version-4 UUID from the interpreter's seeded random source."""
    return str(uuid.UUID(int=_rng().getrandbits(128), version=4))


def _json_to_string(value: Any) -> str:
    return to_json_text(value)


def _array(*values: Any) -> list[Any]:
    return list(values)


_FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "States.Format": lambda template, *args: _format(template, list(args)),
    "States.StringToJson": _string_to_json,
    "States.JsonToString": _json_to_string,
    "States.Array": _array,
    "States.ArrayPartition": _array_partition,
    "States.ArrayContains": _array_contains,
    "States.ArrayRange": _array_range,
    "States.ArrayGetItem": _array_get_item,
    "States.ArrayLength": _array_length,
    "States.ArrayUnique": _array_unique,
    "States.Base64Encode": _base64_encode,
    "States.Base64Decode": _base64_decode,
    "States.Hash": _hash,
    "States.JsonMerge": _json_merge,
    "States.MathRandom": _math_random,
    "States.MathAdd": _math_add,
    "States.StringSplit": _string_split,
    "States.UUID": deterministic_uuid,
}


# ------------------------------------------------------------------------------------------- JSONata

_UNDEFINED: Final = object()


def is_jsonata(value: Any) -> bool:
    """Whether a string is a JSONata template `{% expression %}`."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}") and len(value) >= 4


def _aws_random(seed: Any = None) -> float:
    return random.Random(seed).random() if seed is not None else _rng().random()


def _aws_partition(array: Any, size: Any) -> list[Any]:
    return _array_partition(array, size)


def _aws_range(start: Any, end: Any, step: Any) -> list[int]:
    return _array_range(start, end, step)


@lru_cache(maxsize=4096)
def _compile_jsonata(expression: str) -> Any:
    try:
        compiled = jsonata.Jsonata(expression)
    except Exception as exc:  # jsonata-python raises JException and Python errors alike
        raise StatesError(QUERY_ERROR, f"invalid JSONata expression `{expression}`", definition=True) from exc
    compiled.set_output_convert_nulls(False)
    # The functions Step Functions adds to JSONata.
    compiled.register_lambda("partition", _aws_partition)
    compiled.register_lambda("range", _aws_range)
    compiled.register_lambda("hash", _hash)
    compiled.register_lambda("random", _aws_random)
    compiled.register_lambda("uuid", deterministic_uuid)
    compiled.register_lambda("parse", _string_to_json)
    return compiled


def evaluate_jsonata(template: str, bindings: Mapping[str, Any], field: str) -> Any:
    """The value of one `{% expression %}`; `_UNDEFINED` when it yields nothing."""
    expression = template[2:-2].strip()
    compiled = _compile_jsonata(expression)
    try:
        result = compiled.evaluate(None, dict(bindings))
    except _IntrinsicFailure as failure:
        raise StatesError(
            QUERY_ERROR, f"the JSONata expression in `{field}` failed: {failure}", definition=True
        ) from None
    except Exception:
        raise StatesError(
            QUERY_ERROR, f"the JSONata expression `{expression}` in `{field}` failed", definition=True
        ) from None
    if result is None:
        return _UNDEFINED
    return _plain(_JsonataUtils.convert_nulls(result))


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if value is _JsonataUtils.NULL_VALUE:
        return None
    return value


def resolve_jsonata(template: Any, bindings: Mapping[str, Any], field: str) -> Any:
    """A JSONata-mode field filled in: every `{% %}` string evaluated, objects and arrays walked.

    A template that yields nothing drops its key from an object; at the top it is an error.
    """
    value = _resolve_jsonata(template, bindings, field)
    if value is _UNDEFINED:
        raise StatesError(
            QUERY_ERROR, f"the JSONata expression in `{field}` returned nothing", definition=True
        )
    return value


def _resolve_jsonata(template: Any, bindings: Mapping[str, Any], field: str) -> Any:
    if is_jsonata(template):
        return evaluate_jsonata(template, bindings, field)
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            resolved = _resolve_jsonata(value, bindings, f"{field}.{key}")
            if resolved is not _UNDEFINED:
                out[key] = resolved
        return out
    if isinstance(template, list):
        items = [_resolve_jsonata(item, bindings, field) for item in template]
        return [item for item in items if item is not _UNDEFINED]
    return template
