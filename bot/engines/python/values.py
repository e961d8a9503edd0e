"""Values of declared Python types for synthesized executions, built by hypothesis.

Two per type: the minimal one (hypothesis's own shrinking: "", 0, False, [], the first enum
member, a dataclass of minimal fields) and a "flipped" one whose leaves are all truthy and whose
containers are non-empty, so a condition a workflow tests on a result or an input goes the other
way. A value must survive the SDK's data converter (`encodes`), or it is not offered.

Standalone (the standard library and hypothesis; nothing of an SDK): a synthesis driver loads it
by path in the user's interpreter and passes its converter's round trip as `encodes`.
"""

from __future__ import annotations

import atexit
import collections.abc
import dataclasses
import enum
import shutil
import tempfile
import types
import typing
from collections.abc import Callable
from typing import Any

NOTHING = (None, type(None), Any)  # hints whose only sensible value is None


class Unbuildable(Exception):
    """No value of a type could be built (hypothesis cannot, or the converter refuses every one)."""


def type_name(hint: Any) -> str:
    """A type as a reader names it in a message: `Charge`, `list[str]`, `Optional[int]`."""
    return str(getattr(hint, "__qualname__", None) or repr(hint)).replace("typing.", "")


def filled(value: Any, depth: int = 0) -> bool:
    """Whether every leaf of a value is truthy and every container non-empty (a 'flipped' value)."""
    if depth > 12 or isinstance(value, enum.Enum):
        return True
    if isinstance(value, str | bytes | list | tuple | set | frozenset | dict) and not value:
        return False
    if isinstance(value, dict):
        return all(filled(k, depth + 1) and filled(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return all(filled(v, depth + 1) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(filled(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    model_fields = getattr(type(value), "model_fields", None)  # pydantic v2
    if isinstance(model_fields, dict):
        return all(filled(getattr(value, name, None), depth + 1) for name in model_fields)
    return bool(value)


class Values:
    """The minimal and the flipped value of each type asked for, built once (ImportError without hypothesis)."""

    def __init__(self, encodes: Callable[[Any, Any], bool], home: str | None = None) -> None:
        """`home`: where hypothesis keeps its Unicode tables (else a temporary folder removed at exit,
        never `.hypothesis` in the working folder, which may be the user's checkout): computing them
        again costs seconds of CPU per run."""
        from hypothesis import HealthCheck, Phase, settings

        if not home:
            home = tempfile.mkdtemp(prefix="inflight-guard-hypothesis-")
            atexit.register(shutil.rmtree, home, True)
        try:
            from hypothesis.configuration import set_hypothesis_home_dir

            set_hypothesis_home_dir(home)
        except ImportError:
            pass  # an older hypothesis: it computes the tables in the working folder
        self.encodes = encodes
        self.settings = settings(
            database=None,
            max_examples=200,
            derandomize=True,  # the same base gives the same histories
            deadline=None,
            phases=(Phase.generate, Phase.shrink),  # the explain phase costs seconds per type
            suppress_health_check=list(HealthCheck),
        )
        self._cache: dict[Any, Any] = {}

    def get(self, hint: Any, flipped: bool) -> Any:
        """A value of `hint`; Unbuildable when there is none the converter accepts."""
        if hint in NOTHING:
            return None
        key = (hint, flipped) if _hashable(hint) else (repr(hint), flipped)
        if key not in self._cache:
            self._cache[key] = self._build(hint, flipped)
        value = self._cache[key]
        if isinstance(value, Unbuildable):
            raise value
        return value

    def _find(self, hint: Any, condition: Callable[[Any], bool]) -> Any:
        from hypothesis import find, strategies

        return find(
            strategies.from_type(hint),
            lambda v: self.encodes(hint, v) and condition(v),
            settings=self.settings,
        )

    def _build(self, hint: Any, flipped: bool) -> Any:
        from hypothesis.errors import NoSuchExample

        try:
            minimal = self.get(hint, False) if flipped else self._find(hint, lambda v: True)
        except Unbuildable as exc:
            return exc
        except NoSuchExample:
            return Unbuildable(f"no value of {type_name(hint)} survives the SDK's data converter")
        except Exception as exc:
            return Unbuildable(f"hypothesis cannot build {type_name(hint)} ({type(exc).__name__})")
        if not flipped:
            return minimal
        for condition in (lambda v: filled(v) and _differs(v, minimal), filled):
            try:
                return self._find(hint, condition)
            except Exception:
                continue
        composed = self._compose(hint)
        if composed is not None and self.encodes(hint, composed):
            return composed
        return minimal

    def _compose(self, hint: Any) -> Any:
        """A filled value built from filled parts, where hypothesis found no filled whole (a list of
        records whose every leaf is set is rare among random ones): one filled element for a
        container, filled fields for a dataclass, the filled member of an Optional."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        try:
            if origin in (list, set, frozenset, collections.abc.Sequence) and args:
                item = self.get(args[0], True)
                return [item] if origin in (list, collections.abc.Sequence) else origin([item])
            if origin is tuple and args:
                if len(args) == 2 and args[1] is Ellipsis:
                    return (self.get(args[0], True),)
                return tuple(self.get(a, True) for a in args)
            if origin is dict and len(args) == 2:
                return {self.get(args[0], True): self.get(args[1], True)}
            if origin in (typing.Union, types.UnionType):
                inner = [a for a in args if a is not type(None)]
                return self.get(inner[0], True) if inner else None
            if dataclasses.is_dataclass(hint) and isinstance(hint, type):
                hints = typing.get_type_hints(hint)
                values = {f.name: self.get(hints[f.name], True) for f in dataclasses.fields(hint) if f.init}
                return hint(**values)
        except Exception:
            return None
        return None


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except Exception:
        return True
