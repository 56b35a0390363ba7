"""The validated model of a `.iot` file: plain dataclasses, no parser types.

The model is what the compiler, the runtime and the simulator read. It converts to plain data
(`IotFile.to_data` / `from_data`) so a compiled driver can carry it as a Python literal.
Every node keeps the source position of what it came from, so any later error can cite it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pyiot.errors import PyiotError
from pyiot.lang.diagnostics import SourcePos
from pyiot.lang.plain import from_plain, to_plain

Value = bool | int | float | str

# Arithmetic for unit conversion as nested lists: ["num", 2], ["var", "value"],
# ["+", a, b] (also - * /), ["neg", a], ["call", "round", a]. Evaluated by pyiot.lang.expr.
Expr = list


@dataclass
class ValueType:
    """The type of a property or parameter, with an optional range or enum codes."""

    kind: str  # bool, int, float, string, enum
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None  # allowed values: minimum (or 0) plus whole steps
    # `int 0..{inputs}`: the maximum is the component's parameter `inputs` (bound per
    # component by `pyiot.lang.bind`; None until then, as for no maximum).
    maximum_param: str | None = None
    base: int = 10  # `int 0..100 hex`: the wire writes the number in hexadecimal
    # enum: value name -> wire code, in declaration order.
    choices: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "enum":
            return "enum {" + ", ".join(self.choices) + "}"
        text = self.kind
        if self.minimum is not None and self.maximum_param is not None:
            text += f" {self.minimum:g}..{{{self.maximum_param}}}"
        elif self.minimum is not None and self.maximum is not None:
            text += f" {self.minimum:g}..{self.maximum:g}"
        if self.step is not None:
            text += f" step {self.step:g}"
        return text


class PatternError(PyiotError, ValueError):
    """A reply pattern pyiot will not match with: `offset` is where in the source, `message`
    says why and what to write instead."""

    what = "unusable reply pattern"

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass
class Regex:
    """A reply pattern as written between slashes, with its flags (`i`, `m`, `s`).

    Device lines are matched with RE2 (`google-re2`): its time is linear in the line's length
    whatever the pattern, so no reply a device sends can stall the gateway (Python's `re`
    backtracks: `(\\w+\\s?)+` takes seconds, doubling with each character). The price is
    RE2's dialect: no backreferences, lookaround, atomic groups or possessive repeats.
    """

    source: str
    flags: str = ""

    def compile(self, args: dict[str, Value] | None = None) -> Any:
        """The RE2 pattern; `{name}` of a device parameter becomes its value, escaped.

        So `/^>(?P<zone>{zone})(?P<power>\\d\\d)$/` of zone 11 matches only zone 11's replies;
        regex quantifiers such as `{2}` are left alone. Raises `PatternError`.
        """
        from pyiot.lang.regex import compile_re2

        return compile_re2(self._source(args), self.flags)

    def compile_python(self, args: dict[str, Value] | None = None) -> re.Pattern[str]:
        """The same pattern for Python's `re`, which the simulator reads to write replies.

        Never used on a device's bytes. Raises `PatternError`.
        """
        from pyiot.lang.regex import compile_python

        return compile_python(self._source(args), self.flags)

    def _source(self, args: dict[str, Value] | None) -> str:
        if not args:
            return self.source

        def written(m: re.Match[str]) -> str:
            if m[1] not in args:
                return m[0]
            # `{output:02d}`: the parameter written as the device writes it (Extron `Out03`).
            try:
                return re.escape(format(args[m[1]], m[2]) if m[2] else str(args[m[1]]))
            except (ValueError, TypeError) as err:
                raise PatternError(f"cannot write {{{m[1]}:{m[2]}}}: {err}", m.start()) from None

        return _PLACEHOLDER.sub(written, self.source)


# `{name}` or `{name:spec}` of a device parameter (not a counted repeat such as `{2}`).
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


@dataclass
class Comparison:
    """`power == on`: a property's value compared with a literal."""

    prop: str
    op: str
    value: Value
    pos: SourcePos


@dataclass
class Condition:
    """All comparisons must hold (`when power == on and input != tv`)."""

    comparisons: list[Comparison]


@dataclass
class Convert:
    """Unit conversion: `read` maps the wire number to the value, `write` maps it back."""

    read: Expr
    write: Expr


@dataclass
class Property:
    """One value of a device, read by `query`/`reply` (or a group query), written by `set`."""

    name: str
    type: ValueType
    pos: SourcePos
    query: str | None = None
    reply: Regex | None = None
    set_format: str | None = None
    # Wire text (as captured by the reply) -> value, for replies (and for sets without `with`).
    value_map: dict[str, Value] = field(default_factory=dict)
    # value -> wire text for the set command (`set "PWR {value}" with { on = "ON" }`).
    set_map: list[tuple[Value, str]] = field(default_factory=list)
    set_unanswered: bool = False  # `set "..." without reply`: done once written
    group: str | None = None  # `from status.volume`: the group query ...
    group_field: str | None = None  # ... and its named regex group
    poll_every: float | None = None
    poll_when: Condition | None = None
    timeout: float | None = None
    retries: int | None = None
    confirm: bool = False  # query after set to confirm the value
    ack: Regex | None = None  # the device's acknowledgement of a set
    access: str | None = None  # "readonly" / "writeonly", when said explicitly
    unit: str | None = None  # unit of measurement shown to people (`unit "dB"`)
    convert: Convert | None = None
    python: dict[str, str] = field(default_factory=dict)  # "decode"/"encode" -> "module:function"
    error: Regex | None = None  # this property's own refusal (Onkyo `!1MVLN/A`)
    reply_format: str | None = None  # how replies write the number (`format "+.8E"`: NR3)
    # `reply /.../ to the query only`: the line says nothing of whose value it is (SCPI), so it
    # answers this property's query in flight and is never taken as a report.
    reply_only: bool = False
    # Lines that follow the reply and end the answer (`reply /.../ then /^OK$/`).
    reply_then: list[Regex] = field(default_factory=list)
    # How the device ends this reply's lines, when not as the framing's first reply end
    # (`reply /.../ end "\r\n"`); the runtime reads every such end as a line end.
    reply_end: str | None = None
    set_timeout: float | None = None  # `set timeout 100s`: a set's own wait for its answer
    # When a simulated device answers a set: seconds, or the name of the mode whose end it waits
    # for (`set answered after warming`: the ESC/VP21 colon once the lamp is lit).
    set_answered: float | str | None = None
    initial: Value | None = None  # what a simulated device holds at first (`initial "AVM 60"`)
    # A relative command (`adjusts volume by { up = 1, down = -1 }`): the property it moves and
    # the step per value of this one ("" for a button without a value).
    adjusts: str | None = None
    adjust_by: dict[str, float] = field(default_factory=dict)
    positions: dict[str, SourcePos] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.reply is not None or self.group is not None

    # `command "..." sets level, fade`: the device's command(s) that set this property with others.
    joint: list[str] = field(default_factory=list)

    @property
    def writable(self) -> bool:
        return self.set_format is not None or bool(self.joint)


@dataclass
class JointSet:
    """One command setting several properties (`command "#OUTPUT,{id},1,{level},{fade}" sets
    level, fade`).

    Its machine state is `set-level-fade`; properties not given a value take their current one.
    """

    props: list[str]
    format: str
    pos: SourcePos

    @property
    def name(self) -> str:
        return "-".join(self.props)


@dataclass
class ErrorQueue:
    """A device's error queue (SCPI): the query that pops it and what it answers when empty;
    what a simulated device queues for a command it cannot parse and for a value it refuses."""

    query: str
    empty: str
    unknown: str = ""
    refused: str = ""


@dataclass
class GroupQuery:
    """One query whose reply fills several properties (`query status "?1" reply /.../`)."""

    name: str
    query: str
    reply: Regex
    pos: SourcePos
    poll_every: float | None = None
    poll_when: Condition | None = None
    # Lines that follow the reply and end the answer (Blackbird `Status1.`: AV then IR line).
    reply_then: list[Regex] = field(default_factory=list)
    positions: dict[str, SourcePos] = field(default_factory=dict)


@dataclass
class ModeTrigger:
    """What moves a device between modes: a set sent, a timer, or a value seen."""

    kind: str  # "set", "after", "when"
    pos: SourcePos
    prop: str | None = None
    op: str = "=="
    value: Value | None = None
    seconds: float | None = None


@dataclass
class ModeTransition:
    source: str
    dest: str
    triggers: list[ModeTrigger]
    pos: SourcePos


@dataclass
class ModeHold:
    """`hold set source until on`, or `reject set source unless on "reason"`."""

    action: str  # "hold" or "reject"
    props: list[str]
    modes: list[str]
    pos: SourcePos
    reason: str | None = None
    # `answer "%1INPT=ERR3"`: what the device says to such a set (the simulator sends it).
    answer: str | None = None


@dataclass
class Modes:
    """The device's own states, driven by one property (a projector's power)."""

    source: str
    pos: SourcePos
    transitions: list[ModeTransition] = field(default_factory=list)
    holds: list[ModeHold] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Every mode, in order of first mention."""
        seen: dict[str, None] = {}
        for t in self.transitions:
            seen.setdefault(t.source)
            seen.setdefault(t.dest)
        for hold in self.holds:
            for mode in hold.modes:
                seen.setdefault(mode)
        return list(seen)


@dataclass
class Login:
    """`login md5 "{random}{password}" after /^PJLINK 1 (?P<random>[0-9a-fA-F]{8})$/ refused
    "PJLINK ERRA"`: the digest that starts the first command after a greeting of this form."""

    digest: str  # a hashlib name: md5, sha1, sha256
    format: str  # fields: the greeting's named groups, then secrets (PYIOT_SECRET_<NAME>)
    greeting: Regex
    refused: str | None = None  # what the device answers a wrong digest with


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
    """A device type: its transport, framing, timing, properties and modes."""

    name: str
    pos: SourcePos
    description: str = ""
    params: list[Param] = field(default_factory=list)
    transport: Transport = field(default_factory=lambda: Transport("serial"))
    line_terminator: str = "\n"
    # Binary frames instead of lines: a template such as "\x02{payload}{sum8}" (see framing.py).
    packet: str | None = None
    packet_end: str = ""  # appended to each command's payload ("!1PWR01" + "\r")
    # What the device appends to a reply's payload when it is not `packet_end` (Onkyo: EOF
    # 0x1A, then CR LF); receivers strip it.
    packet_reply_end: str | None = None
    # The template of reply frames when their header differs (`replies packet "..."`).
    packet_reply: str | None = None
    # Line ends of replies when they differ from the commands' (`framing line "\r" replies
    # "\r\n"`); the first is what a simulated device sends. Empty: `line_terminator`.
    reply_terminators: list[str] = field(default_factory=list)
    # Other line ends a device takes from a client besides `line_terminator` (`accepts`).
    command_terminators: list[str] = field(default_factory=list)
    line_before: str = ""  # text sent before each command (`before "\r"`: NAD, BenQ)
    # Replies that say their own length (`counted /^product_type=(?P<size>\d\d),/`): after the
    # pattern come `size` characters and no terminator (Rotel `product_type=07,RC-1570`).
    line_counted: Regex | None = None
    prompt: str | None = None  # text that ends every reply (Epson ':')
    echo: bool = False  # the device repeats each command before answering
    commands_any_case: bool = False  # `commands in any case`: *POW=ON# is *pow=on# (BenQ)
    # `on connect send "ECH1"`: commands sent once each time the link opens, in order.
    connect_commands: list[str] = field(default_factory=list)
    greeting: str | None = None  # what the device sends when a connection opens
    error_queue: ErrorQueue | None = None  # `errors queue "SYST:ERR?" empty ...` (SCPI)
    joint_sets: list[JointSet] = field(default_factory=list)  # `command "..." sets a, b`
    login: Login | None = None  # a password handshake after a greeting (PJLink class 1)
    timeout: float = 1.0
    retries: int = 2
    backoff: float = 0.0  # extra wait before each retry, doubling
    poll_every: float | None = None
    poll_when: Condition | None = None
    error_reply: Regex | None = None
    ack_reply: Regex | None = None
    groups: dict[str, GroupQuery] = field(default_factory=dict)
    properties: dict[str, Property] = field(default_factory=dict)
    modes: Modes | None = None
    positions: dict[str, SourcePos] = field(default_factory=dict)


    @property
    def reply_ends(self) -> list[str]:
        """Every text that ends a reply line, the one a device sends first."""
        return list(self.reply_terminators) or [self.line_terminator]

    @property
    def command_ends(self) -> list[str]:
        """Every text that ends a command line a device takes, the one pyiot sends first."""
        return list(dict.fromkeys([self.line_terminator, *self.command_terminators]))


@dataclass
class Endpoint:
    """Where a component's device is: `serial "URL"` or `tcp "host:port"`."""

    kind: str
    address: str
    pos: SourcePos


@dataclass
class Component:
    """An instance of a device inside a thing, bound to an endpoint or a named port."""

    name: str
    device: str
    pos: SourcePos
    args: dict[str, Value] = field(default_factory=dict)
    endpoint_kind: str = "serial"
    endpoint: str = ""
    port: str | None = None  # a `port` of the thing, shared with other components
    positions: dict[str, SourcePos] = field(default_factory=dict)


@dataclass
class ShadowName:
    """Where a property appears in the shadow: a path of keys (`["kitchen", "volume"]`)."""

    component: str
    prop: str  # "*" for every property of the component
    path: list[str]
    pos: SourcePos


@dataclass
class RuleAction:
    component: str
    prop: str
    value: Value
    pos: SourcePos


@dataclass
class Rule:
    """`when preamp.input becomes TV then projector.power = on, ...`."""

    component: str
    prop: str
    value: Value
    actions: list[RuleAction]
    pos: SourcePos


@dataclass
class Thing:
    """An AWS IoT thing: components whose properties appear in one Device Shadow."""

    name: str
    pos: SourcePos
    ports: dict[str, Endpoint] = field(default_factory=dict)
    components: dict[str, Component] = field(default_factory=dict)
    shadow: list[ShadowName] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)


@dataclass
class Import:
    """`import "amps.iot"`: a file read relative to the importing one."""

    path: str
    pos: SourcePos


@dataclass
class IotFile:
    """Everything one `.iot` file declares (with what it imports)."""

    path: str
    devices: dict[str, Device] = field(default_factory=dict)
    things: dict[str, Thing] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        """Plain dicts, lists and scalars (JSON-compatible)."""
        return to_plain(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> IotFile:
        """Rebuild a model from `to_data` output."""
        return from_plain(cls, data)
