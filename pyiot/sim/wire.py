"""How one property's values look on the wire, seen from the device's side.

The runtime reads values out of replies and writes them into set commands; the simulated device
does the reverse. Both go through `pyiot.lang.values` (decode, encode, coerce), so a value means
the same thing on either side of the line; this module only adds what a device needs on top:
its power-on value, the ways it may write a number, and a regex that recognises a set's value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import string

from pyiot.lang.model import Property, Value
from pyiot.lang.values import coerce, decode, encode
from pyiot.sim.patterns import render

# Zero-padded widths tried for a number whose reply pattern wants fixed digits (`\d\d`).
_PAD_WIDTHS = range(2, 9)


def initial_value(prop: Property) -> Value:
    """What a device holds before anyone sets it: the file's `initial`, else off, the first enum
    value, zero or the range's end nearest to it, a text its reply pattern accepts."""
    if prop.initial is not None:
        with contextlib.suppress(ValueError):  # the checker reports an initial off the type
            return coerce(prop.type, prop.initial)
    if prop.value_map and prop.type.kind not in ("int", "float"):
        kind_default = {"bool": False}.get(prop.type.kind)
        values = list(prop.value_map.values())
        return kind_default if kind_default in values else values[0]
    if prop.type.kind == "enum":
        return next(iter(prop.type.choices))
    if prop.type.kind == "string" and prop.reply is not None:
        # The property's name when the reply pattern takes it (a model reads "model", not
        # "x"), else the shortest text the pattern accepts (`.+` wants one character).
        with contextlib.suppress(ValueError, re.error):
            pattern = prop.reply.compile_python()
            with contextlib.suppress(ValueError):
                named = pattern.search(render(pattern, {"value": prop.name}))
                if named is not None and named.group("value") == prop.name:
                    return prop.name
            found = pattern.search(render(pattern, {}))
            if found is not None:
                return found.group("value")
    if prop.type.kind in ("int", "float"):
        return _near_zero(prop)
    blank: dict[str, Value] = {"bool": False, "string": ""}
    return blank[prop.type.kind]


def _near_zero(prop: Property) -> int | float:
    """Zero when the range holds it (a thermometer does not read -40), else the range's end
    nearest to zero (a source 1..6 starts on 1); on the steps of the type."""
    low, high = prop.type.minimum, prop.type.maximum
    number = 0.0
    if low is not None and number < low:
        number = low
    if high is not None and number > high:
        number = high
    step = prop.type.step
    if step and low is not None and number not in (low, high):
        number = low + round((number - low) / step) * step
        if high is not None and number > high:
            number -= step
    return int(number) if prop.type.kind == "int" else float(number)


def for_replies(prop: Property) -> Property:
    """The property as its replies spell values: a set's `with { on = "ON" }` applies to sets only.

    Epson's `PWR ON` turns the projector on, but it reports `PWR=01`, the enum's code.
    """
    return dataclasses.replace(prop, set_map=[]) if prop.set_map else prop


def reply_texts(prop: Property, value: Value) -> list[str]:
    """Ways the device may write `value` in a reply, most likely first.

    `prop` is the reply view (`for_replies`). The set format's spec comes first (a reply pattern
    `(?P<value>\\d\\d)` beside `set "VO{value:02d}"` wants 5 written "05"), then the plain text,
    then zero-padded forms for a pattern that wants fixed digits but has no set format to say so.
    """
    wire = encode(prop, value)
    # A number's words first: Rotel writes its top volume `volume=max`, not `volume=96`.
    numeric = prop.type.kind in ("int", "float")
    words = [w for w, v in prop.value_map.items() if numeric and v == value]
    specs = ([prop.reply_format] if prop.reply_format else []) + _value_specs(prop)
    texts = words + [format(wire, spec) for spec in specs if _formats(wire, spec)]
    texts.append(str(wire))
    number = _whole_number(wire)
    if number is not None:
        texts.append(str(number))
        texts += [f"{number:0{width}d}" for width in _PAD_WIDTHS]
    return list(dict.fromkeys(texts))


def set_value_regex(prop: Property) -> str:
    """A regex for the `{value}` text of a set command: every wire text the device takes."""
    if "c" in _value_specs(prop):
        return "(?s:.)"  # a number sent as one byte (`{value:c}`), whatever byte it is
    texts = [wire for _, wire in prop.set_map]
    if prop.value_map:
        texts += list(prop.value_map)
    elif prop.type.kind == "enum":
        texts += list(prop.type.choices.values())
    alternatives = [re.escape(t) for t in sorted(set(texts), key=len, reverse=True)]
    if not prop.value_map or prop.type.kind in ("int", "float"):
        if prop.type.kind == "int" and prop.type.base == 16:
            alternatives.append(r"[0-9A-Fa-f]+")
        elif prop.type.kind == "int" and prop.convert is None:
            alternatives.append(r"[-+]?\d+")
        elif prop.type.kind in ("int", "float"):
            # Scientific notation too: SCPI takes `VOLT 5E+00` as `VOLT 5`.
            alternatives.append(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
        elif prop.type.kind == "string":
            alternatives.append(".+?")
    return "|".join(alternatives) or ".+?"


def decode_set(prop: Property, text: str) -> Value:
    """The value a set command's `{value}` text asks for; `BadValue` when it is no value.

    A set's own wire texts (`with { on = "ON" }`) are read first, then what replies use.
    """
    for value, wire in prop.set_map:
        if wire == text:
            return coerce(prop.type, value)
    return coerce(prop.type, decode(prop, text))


def _value_specs(prop: Property) -> list[str]:
    specs = []
    with contextlib.suppress(ValueError):  # a malformed format: the checker reports it
        for _, name, spec, _ in string.Formatter().parse(prop.set_format or ""):
            if name == "value" and spec:
                specs.append(spec)
    return specs


def _formats(wire: Value, spec: str) -> bool:
    try:
        format(wire, spec)
    except (ValueError, TypeError):
        return False
    return True


def _whole_number(wire: Value) -> int | None:
    """A number that may be written with leading zeros; None for text and fractions."""
    if isinstance(wire, bool):
        return None
    if isinstance(wire, int):
        return wire
    if isinstance(wire, float) and wire.is_integer():
        return int(wire)
    return None
