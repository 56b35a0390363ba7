"""Typed values: validate what a user asks for, and convert between values and wire text.

Pure functions over the model; the runtime, the simulator and the checker share them so a value
means the same thing everywhere.
"""

from __future__ import annotations

from pyiot.lang.model import Property, Value, ValueType


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
        raise ValueError_(f"expected true or false, got {value!r}")
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError_(f"expected a number, got {value!r}")
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError_(f"expected a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        low, high = value_type.minimum, value_type.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError_(f"{value!r} is outside {low:g}..{high:g}")
        return value
    if kind == "string":
        if isinstance(value, str):
            return value
        raise ValueError_(f"expected a string, got {value!r}")
    raise AssertionError(kind)


def decode(prop: Property, wire: str) -> Value:
    """Wire text captured by a reply's `value` group -> typed value."""
    if prop.value_map:
        if wire in prop.value_map:
            return prop.value_map[wire]
        raise ValueError_(f"{prop.name}: no value maps from {wire!r}")
    kind = prop.type.kind
    try:
        if kind == "int":
            return int(wire)
        if kind == "float":
            return float(wire)
    except ValueError:
        raise ValueError_(f"{prop.name}: {wire!r} is not a {kind}") from None
    if kind == "bool":
        raise ValueError_(f"{prop.name}: a bool needs a map from wire text")
    return wire


def encode(prop: Property, value: Value) -> str | Value:
    """Typed value -> what `{value}` in the property's `set` format receives."""
    if prop.value_map:
        for wire, mapped in prop.value_map.items():
            # `1 == True` in Python: compare type too, so int maps never match a bool.
            if mapped == value and type(mapped) is type(value):
                return wire
        raise ValueError_(f"{prop.name}: no wire text maps to {value!r}")
    return value


def render_value(value: Value) -> str:
    """A value as a user types it on the command line and as JSON shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
