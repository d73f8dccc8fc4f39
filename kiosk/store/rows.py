"""Table rows to typed records and back: the one conversion every aggregate uses.

A record is a frozen dataclass whose fields are named as its table's columns.
Enum fields are stored as their value and read back as the enum; a tuple of
enums (a decision's grounds) is stored as a JSON list. Whatever a record
holds that is not a plain column (a nested value, a derived field) its
module passes in by name.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy.engine import Row

R = TypeVar("R")
Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _converter(hint: Any) -> Convert:
    """How a column's value becomes the field's type."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        convert = _converter(inner)
        return lambda v: None if v is None else convert(v)
    if origin is tuple:
        item = _converter(args[0])
        return lambda v: tuple(item(x) for x in v)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    return _same


@functools.cache
def _converters(cls: type) -> dict[str, Convert]:
    hints = typing.get_type_hints(cls)
    return {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}


def record(cls: type[R], row: Row[Any], **given: Any) -> R:
    """``cls`` filled from ``row``'s columns of the same names; ``given`` fields as passed."""
    values = {
        name: given[name] if name in given else convert(getattr(row, name))
        for name, convert in _converters(typing.cast(type, cls)).items()
    }
    return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def columns(item: Any, *names: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The column values of a record's fields: all of them but ``exclude``, or only ``names``."""
    wanted = names or tuple(f.name for f in dataclasses.fields(item) if f.name not in exclude)
    return {name: _plain(getattr(item, name)) for name in wanted}
