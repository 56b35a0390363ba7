"""Typed values: validate what a user asks for, and convert between values and wire text.

Pure functions over the model; the runtime, the simulator and the checker share them so a value
means the same thing everywhere. A Python hook (`python decode "mod:fn"`) is passed in resolved
by the caller, who decides whether Python from a `.iot` file may run at all.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from pyiot.lang.expr import ExprError, evaluate
from pyiot.lang.model import Property, Value, ValueType

Hooks = dict[str, Callable]


class ValueError_(ValueError):
    """A value that does not fit a property's type (message says why, for the shadow and log)."""


def coerce(value_type: ValueType, value: object) -> Value:
    """Validate a value from JSON (a shadow's desired state) against a type; return it typed.

    `False` and `0` are values, not absences: the original pyIOT rejected them by testing truth.
    """
    kind = value_type.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError_(f"expected true or false, got {_show(value)}")
    if kind == "enum":
        if isinstance(value, str) and value in value_type.choices:
            return value
        raise ValueError_(f"expected one of {', '.join(value_type.choices)}, got {_show(value)}")
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError_(f"expected a number, got {_show(value)}")
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError_(f"expected a whole number, got {_show(value)}")
            value = int(value)
        else:
            value = float(value)
        low, high = value_type.minimum, value_type.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError_(f"{_show(value)} is outside {low:g}..{high:g}")
        return value
    if kind == "string":
        if isinstance(value, str):
            return value
        raise ValueError_(f"expected a string, got {_show(value)}")
    raise AssertionError(kind)


def decode(prop: Property, wire: str, hooks: Hooks | None = None) -> Value:
    """Wire text captured from a reply -> typed value."""
    if hooks and "decode" in hooks:
        try:
            return coerce(prop.type, hooks["decode"](wire))
        except (ValueError, TypeError, ArithmeticError) as err:
            raise ValueError_(f"{prop.name}: decode hook failed on {wire!r}: {err}") from None
    if prop.value_map:
        if wire in prop.value_map:
            return prop.value_map[wire]
        raise ValueError_(f"{prop.name}: no value maps from {wire!r}")
    kind = prop.type.kind
    if kind == "enum":
        for name, code in prop.type.choices.items():
            if code == wire:
                return name
        raise ValueError_(f"{prop.name}: {wire!r} is no code of {prop.type.describe()}")
    if kind == "bool":
        raise ValueError_(f"{prop.name}: a bool needs a map from wire text")
    if kind == "string":
        return wire
    try:
        if prop.type.base != 10:
            number: float = int(wire, prop.type.base)
        else:
            number = int(wire) if kind == "int" and prop.convert is None else float(wire)
    except ValueError:
        raise ValueError_(f"{prop.name}: {wire!r} is not a number") from None
    if prop.convert is not None:
        try:
            number = evaluate(prop.convert.read, number)
        except ExprError as err:
            raise ValueError_(f"{prop.name}: {err}") from None
        if kind == "int":
            number = round(number)
    return int(number) if kind == "int" else float(number)


def encode(prop: Property, value: Value, hooks: Hooks | None = None) -> Value:
    """Typed value -> what `{value}` in the property's `set` format receives."""
    if hooks and "encode" in hooks:
        return hooks["encode"](value)
    for mapped, wire in prop.set_map:
        if _same(mapped, value):
            return wire
    if prop.value_map:
        for wire, mapped in prop.value_map.items():
            if _same(mapped, value):
                return wire
        raise ValueError_(f"{prop.name}: no wire text maps to {_show(value)}")
    if prop.type.kind == "enum":
        return prop.type.choices[str(value)]
    if prop.convert is not None and isinstance(value, (int, float)):
        number = evaluate(prop.convert.write, value)
        # Wire numbers are usually whole: let `{value:02d}` work when the result is integral.
        return int(round(number)) if abs(number - round(number)) < 1e-9 else number
    return value


_OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(op: str, value: object, expected: object) -> bool:
    """`value OP expected` as conditions mean it: `true` is not `1`, and values that cannot be
    ordered (a string and a number) compare false rather than raise."""
    if isinstance(value, bool) is not isinstance(expected, bool):
        return op == "!="
    try:
        return bool(_OPERATORS[op](value, expected))
    except TypeError:
        return False


def _show(value: object) -> str:
    """A value as a message quotes it: short, however large the value (shadows are 8 KB)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _same(a: object, b: object) -> bool:
    # `1 == True` in Python: compare type too, so int maps never match a bool.
    return type(a) is type(b) and a == b


def render_value(value: Value) -> str:
    """A value as a user types it on the command line and as JSON shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
