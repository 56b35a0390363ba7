"""A simulated device: holds property values and answers lines as the `.iot` file says.

Pure logic, no I/O: `answer(line)` returns the lines the device sends back; `change(...)` is a
change made at the device itself (its front panel, a button) and returns the unsolicited lines
it announces.
"""

from __future__ import annotations

import contextlib
import logging
import re
import string
from collections.abc import Callable

from pyiot.lang.model import Device, Property, Value
from pyiot.lang.values import ValueError_, coerce, decode, encode, render_value
from pyiot.sim.patterns import format_to_regex, render

_LOGGER = logging.getLogger(__name__)


def initial_value(prop: Property) -> Value:
    """What a device holds before anyone sets it: off, the bottom of the range, empty."""
    if prop.value_map:
        kind_default = {"bool": False}.get(prop.type.kind)
        values = list(prop.value_map.values())
        return kind_default if kind_default in values else values[0]
    return {
        "bool": False,
        "int": int(prop.type.minimum or 0),
        "float": float(prop.type.minimum or 0.0),
        "string": "",
    }[prop.type.kind]


def _value_regex(prop: Property) -> str:
    if prop.value_map:
        return "|".join(re.escape(w) for w in sorted(prop.value_map, key=len, reverse=True))
    return {"int": r"-?\d+", "float": r"-?\d+(?:\.\d+)?"}.get(prop.type.kind, ".+?")


def _wire_texts(prop: Property, wire: object) -> list[str]:
    """How the device may write a value in a reply: as its `set` format spells it, then plain.

    A reply pattern such as `(?P<value>\\d\\d)` needs 5 written "05", as the property's
    `set "VO{value:02d}"` does.
    """
    texts = []
    with contextlib.suppress(ValueError):  # a malformed format: the checker reports it
        for _, name, spec, _ in string.Formatter().parse(prop.set_format or ""):
            if name == "value" and spec:
                with contextlib.suppress(ValueError, TypeError):
                    texts.append(format(wire, spec))
    texts.append(str(wire))
    return list(dict.fromkeys(texts))


class DeviceSimulator:
    """One simulated instance of a device type (one component of a thing)."""

    def __init__(self, name: str, device: Device, args: dict[str, Value] | None = None):
        self.name = name
        self.device = device
        self.args = dict(args or {})
        self.values = {p.name: initial_value(p) for p in device.properties.values()}
        self.on_change: Callable[[str, str, Value], None] | None = None
        self._queries = {
            p.query.format(**self.args): p for p in device.properties.values() if p.query
        }
        arg_regex = {k: re.escape(str(v)) for k, v in self.args.items()}
        self._sets = [
            (p, format_to_regex(p.set_format, {**arg_regex, "value": _value_regex(p)}))
            for p in device.properties.values()
            if p.set_format
        ]
        self._error_line = (
            render(device.error_reply.compile(self.args), {}) if device.error_reply else None
        )

    def answer(self, line: str) -> list[str] | None:
        """The device's reply lines to one received line; None when the line is not for it."""
        prop = self._queries.get(line)
        if prop is not None:
            return [self.report(prop.name)]
        for prop, pattern in self._sets:
            found = pattern.fullmatch(line)
            if found is None:
                continue
            try:
                value = coerce(prop.type, decode(prop, found.group("value")))
            except ValueError_:
                return self.error()
            self._store(prop, value)
            return [self.report(prop.name)] if prop.reply else []
        return None

    def error(self) -> list[str]:
        """The device's error reply (nothing, if the protocol has none)."""
        return [self._error_line] if self._error_line is not None else []

    def report(self, prop_name: str) -> str:
        """The reply line stating a property's current value."""
        prop = self.device.properties[prop_name]
        assert prop.reply is not None
        wire = encode(prop, self.values[prop_name])
        pattern = prop.reply.compile(self.args)
        texts = _wire_texts(prop, wire)
        for text in texts[:-1]:
            with contextlib.suppress(ValueError):
                return render(pattern, {"value": text})
        return render(pattern, {"value": texts[-1]})

    def change(self, prop_name: str, value: object) -> list[str]:
        """A change made at the device; returns the unsolicited report it sends, if any."""
        prop = self.device.properties.get(prop_name)
        if prop is None:
            raise ValueError_(f"{self.name} has no property {prop_name!r}")
        self._store(prop, coerce(prop.type, value))
        return [self.report(prop_name)] if prop.reply else []

    def _store(self, prop: Property, value: Value) -> None:
        if self.values.get(prop.name) != value or type(self.values.get(prop.name)) is not type(
            value
        ):
            self.values[prop.name] = value
            _LOGGER.info("%s.%s = %s", self.name, prop.name, render_value(value))
            if self.on_change is not None:
                self.on_change(self.name, prop.name, value)
