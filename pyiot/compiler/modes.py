"""The mode model: which mode a device is in, and what moves it on. Pure: no I/O, no clock.

A `modes from power { ... }` block describes the device's own states (a projector warming up,
cooling down). This is the one reading of it, with one precedence and one way of reading the
file's literals (as values of the property's type): the simulator plays it (a projector told
`PWR ON` reports `PWR=02`, warming, until its warm-up time has passed, and refuses a source
change meanwhile; sim/device.py), and the runtime's mode machine asks it which `set` and `when`
triggers a command or a reported value fires, and whether a set may go out (runtime/modes.py).
The caller passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyiot.lang.model import Device, ModeHold, Modes, Property, Value
from pyiot.lang.values import BadValue, coerce
from pyiot.lang.values import compare as values_compare


def compare(prop: Property, value: Value, op: str, literal: Value) -> bool:
    """Whether `value op literal` holds, the literal read as a value of the property's type.

    A literal the type cannot take (`power == maybe`) never holds.
    """
    try:
        expected = coerce(prop.type, literal)
    except BadValue:
        return False
    return values_compare(op, value, expected)


@dataclass(frozen=True)
class Timer:
    """An `after D` trigger armed on entering a mode: at `due`, the device moves to `dest`."""

    due: float
    dest: str


class ModeModel:
    """The mode a device is in, since when, and which transitions leave it."""

    def __init__(self, modes: Modes, device: Device, source_value: Value | None, now: float):
        """Start in the mode the source property's value names, else in the first mode."""
        self.modes = modes
        self.properties = device.properties
        self.source: Property = device.properties[modes.source]
        names = modes.names
        self.mode: str = source_value if source_value in names else names[0]
        self.since: float = now

    def enter(self, mode: str, at: float) -> None:
        """Move to `mode` at time `at` (its `after` timers count from then)."""
        self.mode, self.since = mode, at

    def source_value(self, mode: str) -> Value | None:
        """The source property's value while in `mode`, when the mode's name is one of its values.

        Epson's `warming` is also power code `02`; a mode that is no value leaves the property be.
        """
        try:
            return coerce(self.source.type, mode)
        except BadValue:
            return None

    def names(self, value: Value) -> str | None:
        """The mode a value of the source property names, if any (`power = on` is mode `on`)."""
        return value if isinstance(value, str) and value in self.modes.names else None

    def on_set(self, prop: str, value: Value) -> str | None:
        """Where a set of `prop` to `value` leads from the current mode (`on set power = on`)."""
        for transition in self._leaving():
            for trigger in transition.triggers:
                if (
                    trigger.kind == "set"
                    and trigger.prop == prop
                    and compare(self.properties[prop], value, "==", trigger.value)
                ):
                    return transition.dest
        return None

    def moves_by_set(self) -> bool:
        """Whether any `on set` trigger of the source property is declared at all."""
        return any(
            trigger.kind == "set" and trigger.prop == self.modes.source
            for transition in self.modes.transitions
            for trigger in transition.triggers
        )

    def refusal(self, prop: str) -> ModeHold | None:
        """The `hold`/`reject` that forbids setting `prop` in the current mode, if one does.

        Refusals first, whatever order the file lists them in: a command the device refuses
        now must not wait for a mode it may never reach. The device itself cannot hold a
        command for later: it refuses both kinds (a projector answers `ERR` to a source change
        while warming); holding is the runtime's part.
        """
        applying = [h for h in self.modes.holds if prop in h.props and self.mode not in h.modes]
        rejects = [h for h in applying if h.action == "reject"]
        return rejects[0] if rejects else applying[0] if applying else None

    def set_fires(self, prop: str, value: Value, literal: Value) -> bool:
        """Whether a set of `prop` to `value` is the file's `on set prop = literal`."""
        return compare(self.properties[prop], value, "==", literal)

    def when_holds(self, prop: str, value: Value, op: str, literal: Value) -> bool:
        """Whether a reported `value` of `prop` makes the file's `when prop op literal` hold."""
        return prop in self.properties and compare(self.properties[prop], value, op, literal)

    def timer(self) -> Timer | None:
        """The earliest `after` trigger of the current mode, counted from entering it."""
        timers = [
            Timer(self.since + trigger.seconds, transition.dest)
            for transition in self._leaving()
            for trigger in transition.triggers
            if trigger.kind == "after" and trigger.seconds is not None
        ]
        return min(timers, key=lambda t: t.due, default=None)

    def watched(self, values: dict[str, Value]) -> str | None:
        """The mode a `when` trigger of the current mode leads to for these values, if one holds."""
        for transition in self._leaving():
            for trigger in transition.triggers:
                if (
                    trigger.kind == "when"
                    and trigger.prop in values
                    and compare(
                        self.properties[trigger.prop],
                        values[trigger.prop],
                        trigger.op,
                        trigger.value,
                    )
                ):
                    return transition.dest
        return None

    def _leaving(self):
        return (t for t in self.modes.transitions if t.source == self.mode)
