"""Dataclass models <-> plain data (dicts, lists, scalars), driven by the type annotations.

A compiled driver carries its model as a Python literal and `pyiot compile --json` prints it;
this module rebuilds the dataclasses from that data without per-class code.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain data (tuples become lists)."""
    return dataclasses.asdict(obj)


def from_plain(cls: type[T], data: Any) -> T:
    """Rebuild an instance of dataclass `cls` from `to_plain` output."""
    return _build(cls, data)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        # Only `X | None` and unions of scalars occur in the model.
        return _build(options[0], data) if len(options) == 1 else data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(
            **{
                f.name: _build(hints[f.name], data[f.name])
                for f in dataclasses.fields(tp)
                if f.name in data
            }
        )
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in data]
    if origin is tuple:
        args = typing.get_args(tp)
        return tuple(_build(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        _, value_type = typing.get_args(tp)
        return {k: _build(value_type, v) for k, v in data.items()}
    return data
