"""Typed values: validate what a user asks for, and convert between values and wire text.

Pure functions over the model; the runtime, the simulator and the checker share them so a value
means the same thing everywhere. A Python hook (`python decode "mod:fn"`) is passed in resolved
by the caller, who decides whether Python from a `.iot` file may run at all.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from pyiot.errors import PyiotError
from pyiot.lang.expr import ExprError, evaluate
from pyiot.lang.model import Property, Value, ValueType

Hooks = dict[str, Callable]


class BadValue(PyiotError, ValueError):
    """A value that does not fit a property's type (message says why, for the shadow and log)."""

    what = "value does not fit its type"


def coerce(value_type: ValueType, value: object, on_step: bool = True) -> Value:
    """Validate a value from JSON (a shadow's desired state) against a type; return it typed.

    `False` and `0` are values, not absences: the original pyIOT rejected them by testing truth.
    A number off the type's `step` is rejected, never rounded (a wish silently changed is worse
    than one refused with a reason); `on_step=False` skips that check, for values a device
    reports (what the device says is what it holds).
    """
    kind = value_type.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise BadValue(f"expected true or false, got {_show(value)}")
    if kind == "enum":
        if isinstance(value, str) and value in value_type.choices:
            return value
        raise BadValue(f"expected one of {', '.join(value_type.choices)}, got {_show(value)}")
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadValue(f"expected a number, got {_show(value)}")
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise BadValue(f"expected a whole number, got {_show(value)}")
            value = int(value)
        else:
            value = float(value)
        low, high = value_type.minimum, value_type.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise BadValue(f"{_show(value)} is outside {low:g}..{high:g}")
        if on_step and value_type.step is not None:
            _check_step(value_type, value)
        return value
    if kind == "string":
        if isinstance(value, str):
            return value
        raise BadValue(f"expected a string, got {_show(value)}")
    raise AssertionError(kind)


# How far (in steps) a value may sit from the grid and still be on it: 21.5 - 16 is not always
# exactly 11 steps of 0.5 in binary floating point, yet it is what the user wrote.
STEP_TOLERANCE = 1e-9


def on_grid(value_type: ValueType, value: float) -> tuple[float, float] | None:
    """None when `value` is on the type's step grid, else the allowed values either side.

    The grid starts at the range's bottom (or 0 without one): `float 16..30 step 0.5` allows
    16, 16.5, ... 30. The neighbours offered stay inside the range.
    """
    step = value_type.step
    if step is None:
        return None
    base = value_type.minimum if value_type.minimum is not None else 0
    steps = (value - base) / step
    if abs(steps - round(steps)) <= STEP_TOLERANCE:
        return None
    below = base + math.floor(steps) * step
    above = below + step
    low, high = value_type.minimum, value_type.maximum
    if high is not None and above > high + step * STEP_TOLERANCE:
        above = below
    if low is not None and below < low - step * STEP_TOLERANCE:
        below = above
    places = max(_places(step), _places(base))
    return (_tidy(below, places), _tidy(above, places))


def _places(number: float) -> int:
    """Decimal places a number was written with (0.25 -> 2)."""
    text = repr(float(number))
    if "e" in text:
        return 15
    return 0 if text.endswith(".0") else len(text.split(".")[1])


def _tidy(number: float, places: int = 15) -> float:
    """A grid value as a user would write it (21.5, not 21.499999999999996)."""
    tidy = round(float(number), places)
    return int(tidy) if tidy.is_integer() else tidy


def _check_step(value_type: ValueType, value: float) -> None:
    neighbours = on_grid(value_type, value)
    if neighbours is None:
        return
    below, above = neighbours
    nearest = f"{below} or {above}" if below != above else f"{below}"
    base = value_type.minimum if value_type.minimum is not None else 0
    raise BadValue(
        f"{_show(value)} is between steps of {_tidy(value_type.step or 0)} from {_tidy(base)}; "
        f"nearest allowed: {nearest}"
    )


def decode(prop: Property, wire: str, hooks: Hooks | None = None) -> Value:
    """Wire text captured from a reply -> typed value."""
    if hooks and "decode" in hooks:
        try:
            return coerce(prop.type, hooks["decode"](wire), on_step=False)
        except (ValueError, TypeError, ArithmeticError) as err:
            raise BadValue(f"{prop.name}: decode hook failed on {wire!r}: {err}") from None
    kind = prop.type.kind
    if prop.value_map:
        if wire in prop.value_map:
            return prop.value_map[wire]
        if kind not in ("int", "float"):  # a number's map only adds words (Rotel `max`)
            raise BadValue(f"{prop.name}: no value maps from {wire!r}")
    if kind == "enum":
        for name, code in prop.type.choices.items():
            if code == wire:
                return name
        raise BadValue(f"{prop.name}: {wire!r} is no code of {prop.type.describe()}")
    if kind == "bool":
        raise BadValue(f"{prop.name}: a bool needs a map from wire text")
    if kind == "string":
        return wire
    try:
        if prop.reply_format == "c":
            # A number sent as one byte (Samsung MDC volume 50 is 0x32): the format `c`.
            if len(wire) != 1:
                raise ValueError
            number: float = ord(wire)
        elif prop.type.base != 10:
            number = int(wire, prop.type.base)
        else:
            number = int(wire) if kind == "int" and prop.convert is None else float(wire)
    except ValueError:
        raise BadValue(f"{prop.name}: {wire!r} is not a number") from None
    if prop.convert is not None:
        try:
            digits = sum(c.isdigit() for c in wire)
            number = evaluate(prop.convert.read, number, digits)
        except ExprError as err:
            raise BadValue(f"{prop.name}: {err}") from None
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
    numeric = prop.type.kind in ("int", "float")
    if prop.value_map:
        for wire, mapped in prop.value_map.items():
            if _same(mapped, value):
                return wire
        # A number's map names some values (Rotel `max`); the others are written in digits.
        if not numeric or isinstance(value, bool):
            raise BadValue(f"{prop.name}: no wire text maps to {_show(value)}")
    if prop.type.kind == "enum":
        return prop.type.choices[str(value)]
    if prop.convert is not None and isinstance(value, (int, float)):
        number = evaluate(prop.convert.write, value)
        # Wire numbers are usually whole: let `{value:02d}` work when the result is integral.
        return int(round(number)) if abs(number - round(number)) < 1e-9 else number
    return value


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
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
