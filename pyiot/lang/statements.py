"""The statements of a device or property body, typed: what each fills in the model.

A statement kind (:class:`Field`) names the keyword as written and the model attribute it fills
on a device and on a property (``None``: it does not belong there). The builder returns
``TIMEOUT.at(seconds, pos)``, a :class:`Statement` whose value type the kind fixes (mypy checks
it), and applies a body's statements in one place, where "given twice" becomes a diagnostic.

Adding a statement: one line here (its kind), the grammar rule, the builder method returning
``KIND.at(value, pos)``, and the model field it fills. ``tests/lang/test_statements.py`` checks
that every attribute named here exists on the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pyiot.lang.diagnostics import SourcePos
from pyiot.lang.model import (
    Condition,
    Convert,
    Device,
    Endpoint,
    ErrorQueue,
    Login,
    Modes,
    Param,
    Property,
    Regex,
    Rule,
    ShadowName,
    Transport,
    Value,
)

T = TypeVar("T")

__all__ = ["Field", "Hook", "Statement"]


@dataclass(frozen=True)
class Field(Generic[T]):
    """A kind of statement: `keyword` as written, and the attribute it fills on each target."""

    keyword: str
    device: str | None = None
    prop: str | None = None

    def at(self, value: T, pos: SourcePos) -> Statement[T]:
        return Statement(self, value, pos)

    def key(self, target: Device | Property) -> str | None:
        """Its attribute on `target` (also its key in `target.positions`); None: not there."""
        return self.device if isinstance(target, Device) else self.prop

    def fill(self, target: Device | Property, value: T) -> None:
        key = self.key(target)
        assert key is not None
        setattr(target, key, value)


@dataclass(frozen=True)
class Hook(Field[str]):
    """`python decode "module:function"`: fills ``target.python[role]``."""

    role: str = ""

    def key(self, target: Device | Property) -> str | None:
        return f"python:{self.role}" if isinstance(target, Property) else None

    def fill(self, target: Device | Property, value: str) -> None:
        assert isinstance(target, Property)
        target.python[self.role] = value


@dataclass(frozen=True)
class Statement(Generic[T]):
    """One statement of a body: its kind, its value and where it is written."""

    kind: Field[T]
    value: T
    pos: SourcePos


# Device statements.
TRANSPORT = Field[Transport]("transport", device="transport")
PROMPT = Field[str]("prompt", device="prompt")
ECHO = Field[bool]("echo", device="echo")
ANY_CASE = Field[bool]("commands in any case", device="commands_any_case")
LINE_FRAMING = Field[str]("framing", device="line_terminator")
PACKET_FRAMING = Field[str]("framing", device="packet")
PACKET_END = Field[str]("end", device="packet_end")
PACKET_REPLY_END = Field[str]("replies", device="packet_reply_end")
PACKET_REPLY = Field[str]("replies packet", device="packet_reply")
LINE_COUNTED = Field[Regex]("counted", device="line_counted")
LINE_BEFORE = Field[str]("before", device="line_before")
REPLY_TERMINATORS = Field[list[str]]("replies", device="reply_terminators")
COMMAND_TERMINATORS = Field[list[str]]("accepts", device="command_terminators")
BACKOFF = Field[float]("backoff", device="backoff")
ERROR_REPLY = Field[Regex]("error", device="error_reply")
CONNECT_SEND = Field[list[str]]("send ... on connect", device="connect_commands")
GREETING = Field[str]("greeting", device="greeting")
ERROR_QUEUE = Field[ErrorQueue]("errors queue", device="error_queue")
LOGIN = Field[Login]("login", device="login")
MODES = Field[Modes]("modes", device="modes")

# Device and property statements.
TIMEOUT = Field[float]("timeout", device="timeout", prop="timeout")
RETRIES = Field[int]("retries", device="retries", prop="retries")
POLL_EVERY = Field[float]("poll every", device="poll_every", prop="poll_every")
POLL_WHEN = Field[Condition]("poll ... when", device="poll_when", prop="poll_when")
ACK = Field[Regex]("ack", device="ack_reply", prop="ack")

# Property statements.
QUERY = Field[str]("query", prop="query")
REPLY = Field[Regex]("reply", prop="reply")
REPLY_THEN = Field[list[Regex]]("reply ... then", prop="reply_then")
REPLY_END = Field[str]("reply ... end", prop="reply_end")
REPLY_ONLY = Field[bool]("to the query only", prop="reply_only")
REPLY_FORMAT = Field[str]("format", prop="reply_format")
SET = Field[str]("set", prop="set_format")
SET_MAP = Field[list[tuple[Value, str]]]("set ... with", prop="set_map")
SET_UNANSWERED = Field[bool]("without reply", prop="set_unanswered")
SET_TIMEOUT = Field[float]("set timeout", prop="set_timeout")
SET_ANSWERED = Field[float | str]("set answered after", prop="set_answered")
VALUE_MAP = Field[dict[str, Value]]("map", prop="value_map")
GROUP = Field[str]("from", prop="group")
GROUP_FIELD = Field[str]("from", prop="group_field")
CONFIRM = Field[bool]("confirm by query", prop="confirm")
ACCESS = Field[str]("access", prop="access")
UNIT = Field[str]("unit", prop="unit")
CONVERT = Field[Convert]("convert", prop="convert")
ADJUSTS = Field[str]("adjusts", prop="adjusts")
ADJUST_BY = Field[dict[str, Value]]("adjusts ... by", prop="adjust_by")
PROP_ERROR = Field[Regex]("error", prop="error")
INITIAL = Field[Value]("initial", prop="initial")


# What builder rules hand up besides statements and model objects: typed records, read by the
# rule above them (`device`, `thing`, `component`, ...), never left in the model.


@dataclass(frozen=True)
class Params:
    """`device Zone(bus: int, zone: int)`: the device's parameters."""

    params: list[Param]


@dataclass(frozen=True)
class MapLiteral:
    """`{ KEY = literal, ... }` as written."""

    entries: list[tuple[Value, Value]]
    pos: SourcePos


@dataclass(frozen=True)
class Answer:
    """`answer "..."` of a `reject`: what the simulated device says."""

    text: str


@dataclass(frozen=True)
class Args:
    """`component z1: Zone(bus = 1, zone = 2) ...`: a component's arguments."""

    values: dict[str, Value]


@dataclass(frozen=True)
class PortRef:
    """`on PORTNAME`: a component on a port its thing declares."""

    name: str
    pos: SourcePos


@dataclass(frozen=True)
class PortDecl:
    """`port PORTNAME: serial "..."` in a thing."""

    name: str
    endpoint: Endpoint
    pos: SourcePos


@dataclass(frozen=True)
class ShadowBlock:
    """`shadow { ... }` of a thing."""

    names: list[ShadowName]


@dataclass(frozen=True)
class RuleBlock:
    """`rule { ... }` of a thing."""

    rules: list[Rule]


def hook(role: str) -> Hook:
    """The kind of `python ROLE "module:function"`."""
    return Hook("python", role=role)


#: Every kind above, for the test that their attributes exist on the model.
KINDS: tuple[Field, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Field))
