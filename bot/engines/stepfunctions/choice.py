"""Choice rules of Amazon States Language (JSONPath mode): comparisons, `And`/`Or`/`Not`, type tests.

A comparison whose value has the wrong type is false (the spec's rule); a `Variable` or `*Path`
operand that matches nothing is a `States.Runtime` error, except under `IsPresent`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from bot.engines.stepfunctions.intrinsics import (
    Scope,
    is_number,
    path_present,
    read_path,
    runtime_error,
)

_TIMESTAMP: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def parse_timestamp(value: Any) -> datetime | None:
    """The instant an RFC 3339 timestamp names (uppercase `T`, `Z` or an offset), or None."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return None
    text = value.replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{main}.{digits.group(0)[:6].ljust(6, '0')}{rest[digits.end() :]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def string_matches(value: str, pattern: str) -> bool:
    """`StringMatches`: `*` matches any run of characters, `\\*` and `\\\\` are literal."""
    return _wildcard(pattern).fullmatch(value) is not None


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_time(value: Any) -> bool:
    return parse_timestamp(value) is not None


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "GreaterThan": lambda a, b: bool(a > b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}
_KINDS: Final[dict[str, tuple[Callable[[Any], bool], Callable[[Any], Any]]]] = {
    "String": (_is_str, lambda v: v),
    "Numeric": (is_number, lambda v: v),
    "Boolean": (_is_bool, lambda v: v),
    "Timestamp": (_is_time, parse_timestamp),
}
_OPERATORS: Final = {
    f"{kind}{relation}": (kind, relation)
    for kind in _KINDS
    for relation in _COMPARE
    if kind != "Boolean" or relation == "Equals"
}
_TYPE_TESTS: Final[dict[str, Callable[[Any], bool]]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": is_number,
    "IsString": _is_str,
    "IsBoolean": _is_bool,
    "IsTimestamp": _is_time,
}


def rule_operator(rule: Mapping[str, Any]) -> str | None:
    """The comparison operator a rule uses (`NumericEquals`, `And`...), or None if it has none."""
    for key in rule:
        if key in ("And", "Or", "Not", "StringMatches", "IsPresent") or key in _TYPE_TESTS:
            return key
        if key in _OPERATORS or (key.endswith("Path") and key[:-4] in _OPERATORS):
            return key
    return None


def evaluate_rule(rule: Mapping[str, Any], scope: Scope, where: str) -> bool:
    """Whether a JSONPath Choice rule holds for `scope` (`where` names the rule for error messages)."""
    operator = rule_operator(rule)
    if operator is None:
        raise runtime_error(f"{where} has no comparison operator")
    operand = rule[operator]
    if operator in ("And", "Or"):
        if not isinstance(operand, list) or not operand:
            raise runtime_error(f"{where}: `{operator}` must hold a non-empty array of rules")
        results = (evaluate_rule(sub, scope, f"{where}.{operator}[{i}]") for i, sub in enumerate(operand))
        return all(results) if operator == "And" else any(results)
    if operator == "Not":
        if not isinstance(operand, dict):
            raise runtime_error(f"{where}: `Not` must hold a rule")
        return not evaluate_rule(operand, scope, f"{where}.Not")
    variable = rule.get("Variable")
    if not isinstance(variable, str):
        raise runtime_error(f"{where} has no `Variable`")
    if operator == "IsPresent":
        return path_present(variable, scope) == bool(operand)
    value = read_path(variable, scope, "Variable")
    if operator in _TYPE_TESTS:
        return _TYPE_TESTS[operator](value) == bool(operand)
    if operator == "StringMatches":
        if not isinstance(operand, str):
            raise runtime_error(f"{where}: `StringMatches` must hold a string")
        return isinstance(value, str) and string_matches(value, operand)
    if operator.endswith("Path") and operator not in _OPERATORS:
        if not isinstance(operand, str):
            raise runtime_error(f"{where}: `{operator}` must hold a path")
        operand = read_path(operand, scope, operator)
        operator = operator[:-4]
    kind, relation = _OPERATORS[operator]
    accepts, convert = _KINDS[kind]
    if not accepts(value) or not accepts(operand):
        return False
    return _COMPARE[relation](convert(value), convert(operand))
