"""One device instance's protocol, compiled: requests to send and what each received line means.

Pure functions and data, no I/O: the component engine asks "what do I send for this?" and
"what does this line say?", and this module answers from the model (patterns compiled with the
component's parameters, so zone 11 never mistakes zone 12's reply for its own).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pyiot.errors import PyiotError
from pyiot.lang.model import Condition, Device, GroupQuery, Property, Value
from pyiot.lang.values import BadValue, Hooks, coerce, compare, decode, encode


class BadReply(PyiotError, ValueError):
    """A line matched a reply pattern but holds no usable value."""

    what = "unusable device reply"


@dataclass
class Request:
    """One command on the wire and what answers it."""

    kind: str  # "query" (one property), "group" (a group query) or "set"
    text: str
    prop: Property | None = None
    group: GroupQuery | None = None
    value: Value | None = None  # what a set asks for
    wire: str | None = None  # a set's value as written into the command, for the framing check
    write_error: str | None = None  # why its command could not be written (the link is lost)
    polled: bool = False  # asked for by a poll timer (its trigger is `poll-X`, not `read-X`)
    modes_told: bool = False  # a long set's modes moved when it was written (component.py)
    # A command setting several properties (`command "..." sets level, fade`): its name
    # (`level-fade`) and every value it carries (the current ones for those not asked).
    joint: str | None = None
    together: dict[str, Value] | None = None
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def key(self) -> str:
        """What the request is about (a poll is not queued twice for the same key)."""
        if self.prop is not None:
            return self.prop.name
        assert self.group is not None, "a request reads a property or a group"
        return f"query {self.group.name}"

    @property
    def is_set(self) -> bool:
        return self.kind == "set"


@dataclass
class PollGroup:
    """Requests polled together on one period, under an optional condition."""

    period: float
    condition: Condition | None
    targets: list[Property | GroupQuery]


class DeviceProtocol:
    """The protocol of one device instance (a device type with its component's arguments)."""

    def __init__(
        self, device: Device, args: dict[str, Value], hooks: dict[str, Hooks] | None = None
    ):
        self.device = device
        self.args = args
        self.hooks = hooks or {}
        props = device.properties.values()
        self.replies = {p.name: p.reply.compile(args) for p in props if p.reply}
        self.acks = {p.name: p.ack.compile(args) for p in props if p.ack}
        self.groups = {g.name: g.reply.compile(args) for g in device.groups.values()}
        self.members = {g: [p for p in props if p.group == g] for g in device.groups}
        self.error = device.error_reply.compile(args) if device.error_reply else None
        # A property's own refusal (Onkyo `!1MVLN/A`), besides the device's.
        self.errors = {p.name: p.error.compile(args) for p in props if p.error}
        self.ack = device.ack_reply.compile(args) if device.ack_reply else None

    # requests -------------------------------------------------------------------------------
    def set_request(self, prop_name: str, value: object) -> Request:
        """The request that sets a property (raises `BadValue` for a bad value)."""
        prop = self.device.properties.get(prop_name)
        if prop is None:
            raise BadValue(f"unknown property {prop_name!r}")
        if prop.set_format is None:  # not `writable`
            raise BadValue(f"{prop_name} is read-only")
        typed = coerce(prop.type, value)
        wire = encode(prop, typed, self.hooks.get(prop.name))
        try:
            text = prop.set_format.format(value=wire, **self.args)
        except (ValueError, TypeError) as err:
            raise BadValue(f"{prop_name}: cannot format {wire!r}: {err}") from None
        # Free text from the shadow is what could carry a terminator: the engine checks it
        # against the framing (maps, enums and numbers are the file's own text).
        free_text = typed if prop.type.kind == "string" and isinstance(typed, str) else None
        return Request("set", text, prop=prop, value=typed, wire=free_text)

    def joint_request(self, values: dict[str, object], current: dict[str, Value]) -> Request:
        """The request of the device's command that sets all of `values` at once (`#OUTPUT,1,1,
        75.00,01:30`); its other properties go with their `current` value. `BadValue` when no
        command sets them together, a value does not fit, or another has no value yet."""
        names = set(values)
        joint = next((j for j in self.device.joint_sets if names <= set(j.props)), None)
        if joint is None:
            raise BadValue(f"no command sets {', '.join(sorted(names))} together")
        typed: dict[str, Value] = {}
        wires: dict[str, Any] = {}
        for name in joint.props:
            prop = self.device.properties[name]
            if name in values:
                typed[name] = coerce(prop.type, values[name])
            elif name in current:
                typed[name] = current[name]
            else:
                raise BadValue(
                    f"{name} has no value yet to send with {', '.join(sorted(names))}: "
                    "set them together"
                )
            wires[name] = encode(prop, typed[name], self.hooks.get(name))
        try:
            text = joint.format.format(**self.args, **wires)
        except (ValueError, TypeError) as err:
            raise BadValue(f"{joint.name}: cannot format {wires}: {err}") from None
        first = next(iter(values))
        prop = self.device.properties[first]
        props = self.device.properties
        texts = [str(v) for n, v in typed.items() if props[n].type.kind == "string"]
        return Request(
            "set",
            text,
            prop=prop,
            value=typed[first],
            wire="".join(texts) or None,
            joint=joint.name,
            together=typed,
        )

    def read_request(self, target: Property | GroupQuery) -> Request:
        """The request that reads a property (its own query, or its group's)."""
        if isinstance(target, GroupQuery):
            return Request("group", target.query.format(**self.args), group=target)
        if target.group is not None:
            return self.read_request(self.device.groups[target.group])
        assert target.query is not None
        return Request("query", target.query.format(**self.args), prop=target)

    def poll_groups(self) -> list[PollGroup]:
        """What is polled, how often, and when: a property's own settings, else the device's."""
        device = self.device
        schedule: dict[tuple[float, int], PollGroup] = {}
        targets: list[tuple[Any, float | None, Condition | None]] = [
            (g, g.poll_every, g.poll_when) for g in device.groups.values()
        ]
        targets += [(p, p.poll_every, p.poll_when) for p in device.properties.values() if p.query]
        for target, every, when in targets:
            period = every or device.poll_every
            condition = when or device.poll_when
            if period:
                group = schedule.setdefault(
                    (period, id(condition)), PollGroup(period, condition, [])
                )
                group.targets.append(target)
        return list(schedule.values())

    def readable_targets(self) -> list[Property | GroupQuery]:
        """Everything that can be read, for the full refresh after (re)connecting."""
        return [*self.device.groups.values()] + [
            p for p in self.device.properties.values() if p.query
        ]

    def condition_of(self, target: Property | GroupQuery) -> Condition | None:
        """The condition under which a target is polled (its own, else the device's)."""
        return target.poll_when or self.device.poll_when

    def holds(self, values: dict[str, Value], condition: Condition | None) -> bool:
        """Whether a poll condition holds for the current values (unknown values: no)."""
        if condition is None:
            return True
        for c in condition.comparisons:
            if c.prop not in values:
                return False
            if not compare(c.op, values[c.prop], c.value):
                return False
        return True

    # lines ----------------------------------------------------------------------------------
    def answers(self, request: Request, line: str) -> dict[str, Value] | None:
        """The values a line gives if it is the reply `request` waits for, else None."""
        if request.kind == "group":
            assert request.group is not None
            return self._group_values(request.group.name, line)
        assert request.prop is not None
        pattern = self.replies.get(request.prop.name)
        if pattern is None and request.prop.group is not None and request.kind == "query":
            return self._group_values(request.prop.group, line)
        found = pattern.search(line) if pattern else None
        if found is None:
            return None
        return self._decoded(request.prop, found.group("value"))

    def acknowledges(self, request: Request, line: str) -> bool:
        """Whether a line is the device's acknowledgement of a set."""
        if not request.is_set or request.prop is None:
            return False
        pattern = self.acks.get(request.prop.name) or self.ack
        return bool(pattern and pattern.search(line))

    def is_error(self, line: str, request: Request | None = None) -> bool:
        """Whether a line is a refusal: the device's error, or a property's own. Given the
        request waited on, only its property's own refusal counts besides the device's (Onkyo
        `!1PWRN/A` does not fail a volume query); without it, any property's does."""
        if self.error and self.error.search(line):
            return True
        if request is not None:
            own = self.errors.get(request.prop.name) if request.prop else None
            return bool(own and own.search(line))
        return any(pattern.search(line) for pattern in self.errors.values())

    def unsolicited(self, line: str) -> dict[str, Value] | None:
        """Values in a line nobody asked for (a front panel), or None if it says nothing."""
        for name in self.groups:
            values = self._group_values(name, line)
            if values is not None:
                return values
        for name, pattern in self.replies.items():
            prop = self.device.properties[name]
            if prop.reply_only:
                continue  # `to the query only`: it names nobody, so it is nobody's report
            found = pattern.search(line)
            if found is not None:
                return self._decoded(prop, found.group("value"))
        return None

    def recognises(self, line: str) -> bool:
        """Whether any pattern of the device matches a line: a reply, a report, an error, an
        acknowledgement or a line that follows a reply (`then`). For `pyiot probe`'s list of
        lines no pattern matched."""
        props = self.device.properties.values()
        if any(p.search(line) for p in (*self.replies.values(), *self.groups.values())):
            return True
        if any(p.search(line) for p in (*self.acks.values(), *self.errors.values())):
            return True
        if (self.error and self.error.search(line)) or (self.ack and self.ack.search(line)):
            return True
        thens = [r for p in props for r in p.reply_then]
        thens += [r for g in self.device.groups.values() for r in g.reply_then]
        return any(r.compile(self.args).search(line) for r in thens)

    def then_lines(self, request: Request) -> list[Any]:
        """The lines that end a query's answer after its reply (`then /^OK$/`), compiled.

        Only queries have them: the file's `then` follows a reply to a query (a set's answer
        is its reply or acknowledgement alone)."""
        if request.kind == "group" and request.group is not None:
            key, thens = f"group {request.group.name}", getattr(request.group, "reply_then", [])
        elif request.kind == "query" and request.prop is not None:
            key, thens = request.prop.name, request.prop.reply_then
        else:
            return []
        cache = self.__dict__.setdefault("_thens", {})
        if key not in cache:
            cache[key] = [then.compile(self.args) for then in thens]
        return cache[key]

    def expects_answer(self, request: Request) -> bool:
        """Whether anything on the wire can complete this request (else it is write-only)."""
        if not request.is_set:
            return True
        if request.joint is not None:
            # Only what answers every command says a joint one was taken (an ack, a prompt).
            return bool(self.ack or self.device.prompt)
        prop = request.prop
        assert prop is not None
        if prop.set_unanswered:
            return bool(self.device.prompt)  # a prompt still says "done"
        return bool(
            self.replies.get(prop.name)
            or self.acks.get(prop.name)
            or self.ack
            or self.device.prompt
        )

    def _group_values(self, group: str, line: str) -> dict[str, Value] | None:
        found = self.groups[group].search(line)
        if found is None:
            return None
        values: dict[str, Value] = {}
        for prop in self.members[group]:
            decoded = self._decoded(prop, found.group(prop.group_field), strict=False)
            values.update(decoded or {})
        return values

    def _decoded(
        self, prop: Property, wire: str | None, strict: bool = True
    ) -> dict[str, Value] | None:
        if wire is None:
            # An optional group that took no part (`VOL` for /^VOL(?P<value>\d+)?$/).
            raise BadReply(f"{prop.name}: the reply has no value")
        try:
            return {prop.name: decode(prop, wire, self.hooks.get(prop.name))}
        except BadValue as err:
            if strict:
                # The line is this property's reply by its pattern, but its value is not one the
                # file knows (Denon `SISAT/CBL` before the file had it): say so, rather than
                # wait and retry as if nothing had come.
                raise BadReply(str(err)) from None
            return None
