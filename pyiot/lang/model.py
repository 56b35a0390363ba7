"""The validated model of a `.iot` file: plain dataclasses, no parser types.

The model is what the compiler, the runtime and the simulator read. It serialises to plain data
(`to_data` / `from_data`) so a compiled driver can carry it as a Python literal.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pyiot.lang.diagnostics import SourcePos

Value = bool | int | float | str


@dataclass
class ValueType:
    """The type of a property or parameter: bool, int, float or string, with an optional range."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> str:
        if self.minimum is None and self.maximum is None:
            return self.kind
        return f"{self.kind} {self.minimum:g}..{self.maximum:g}"


@dataclass
class Regex:
    """A reply pattern as written between slashes, with its flags (`i`, `m`, `s`, `x`)."""

    source: str
    flags: str = ""

    def compile(self, args: dict[str, Value] | None = None) -> re.Pattern[str]:
        """The compiled pattern; `{name}` of a device parameter becomes its value, escaped.

        So `/^>(?P<zone>{zone})(?P<power>\\d\\d)$/` of zone 11 matches only zone 11's replies;
        regex quantifiers such as `{2}` are left alone.
        """
        flag_bits = 0
        for letter in self.flags:
            flag_bits |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[letter]
        source = self.source
        if args:
            source = _PLACEHOLDER.sub(
                lambda m: re.escape(str(args[m[1]])) if m[1] in args else m[0], source
            )
        return re.compile(source, flag_bits)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Property:
    """One value of a device, read with `query`/`reply` and written with `set`."""

    name: str
    type: ValueType
    pos: SourcePos
    query: str | None = None
    reply: Regex | None = None
    set_format: str | None = None
    # Wire text (as captured by the reply's `value` group) -> typed value.
    value_map: dict[str, Value] = field(default_factory=dict)
    poll_every: float | None = None
    timeout: float | None = None
    positions: dict[str, SourcePos] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.reply is not None

    @property
    def writable(self) -> bool:
        return self.set_format is not None


@dataclass
class Param:
    name: str
    type: ValueType
    pos: SourcePos


@dataclass
class Transport:
    """How a device is reached: `serial` (any pyserial URL) or `tcp` (host:port)."""

    kind: str
    settings: dict[str, Value] = field(default_factory=dict)


@dataclass
class Device:
    """A device type: its transport, framing, timing and properties."""

    name: str
    pos: SourcePos
    description: str = ""
    params: list[Param] = field(default_factory=list)
    transport: Transport = field(default_factory=lambda: Transport("serial"))
    line_terminator: str = "\n"
    timeout: float = 1.0
    retries: int = 2
    poll_every: float | None = None
    error_reply: Regex | None = None
    properties: dict[str, Property] = field(default_factory=dict)
    positions: dict[str, SourcePos] = field(default_factory=dict)


@dataclass
class Component:
    """An instance of a device inside a thing, bound to an endpoint."""

    name: str
    device: str
    pos: SourcePos
    args: dict[str, Value] = field(default_factory=dict)
    endpoint_kind: str = "serial"
    endpoint: str = ""
    positions: dict[str, SourcePos] = field(default_factory=dict)


@dataclass
class Thing:
    """An AWS IoT thing: components whose properties appear in one Device Shadow."""

    name: str
    pos: SourcePos
    components: dict[str, Component] = field(default_factory=dict)


@dataclass
class IotFile:
    """Everything one `.iot` file declares."""

    path: str
    devices: dict[str, Device] = field(default_factory=dict)
    things: dict[str, Thing] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        """Plain dicts, lists and scalars (JSON-compatible)."""
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> IotFile:
        """Rebuild a model from `to_data` output."""
        return cls(
            path=data["path"],
            devices={k: _device_from(v) for k, v in data["devices"].items()},
            things={k: _thing_from(v) for k, v in data["things"].items()},
        )


def _pos(data: dict[str, Any]) -> SourcePos:
    return SourcePos(**data)


def _positions(data: dict[str, Any]) -> dict[str, SourcePos]:
    return {k: _pos(v) for k, v in data.items()}


def _regex(data: dict[str, Any] | None) -> Regex | None:
    return Regex(**data) if data else None


def _property_from(data: dict[str, Any]) -> Property:
    return Property(
        **{
            **data,
            "type": ValueType(**data["type"]),
            "pos": _pos(data["pos"]),
            "reply": _regex(data["reply"]),
            "positions": _positions(data["positions"]),
        }
    )


def _device_from(data: dict[str, Any]) -> Device:
    return Device(
        **{
            **data,
            "pos": _pos(data["pos"]),
            "params": [
                Param(p["name"], ValueType(**p["type"]), _pos(p["pos"])) for p in data["params"]
            ],
            "transport": Transport(**data["transport"]),
            "error_reply": _regex(data["error_reply"]),
            "properties": {k: _property_from(v) for k, v in data["properties"].items()},
            "positions": _positions(data["positions"]),
        }
    )


def _thing_from(data: dict[str, Any]) -> Thing:
    return Thing(
        name=data["name"],
        pos=_pos(data["pos"]),
        components={
            k: Component(**{**v, "pos": _pos(v["pos"]), "positions": _positions(v["positions"])})
            for k, v in data["components"].items()
        },
    )
