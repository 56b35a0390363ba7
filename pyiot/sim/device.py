"""A simulated device: holds property values and answers lines as the `.iot` file says.

Pure logic, no I/O and no asyncio: `answer(line)` returns the lines the device sends back (the
port adds echo, terminators and prompt); `change(...)` is a change made at the device itself (its
front panel, a button) and returns the unsolicited lines it announces. Time comes from a `clock`
callable, so a test can move a projector through its warm-up without waiting; timers that fell
due are applied whenever the device is asked something, or on `tick()`.
"""

from __future__ import annotations

import collections
import logging
import re
import time
from collections.abc import Callable

from pyiot.compiler.modes import ModeModel
from pyiot.lang.bind import bind
from pyiot.lang.model import Device, GroupQuery, JointSet, Property, Regex, Value
from pyiot.lang.values import BadValue, coerce, render_value
from pyiot.sim.patterns import fit, format_to_regex, render
from pyiot.sim.wire import decode_set, for_replies, initial_value, reply_texts, set_value_regex

_LOGGER = logging.getLogger(__name__)

# Bound on mode moves applied at once: `after 0s` or `when` triggers could otherwise cycle.
_MAX_MODE_STEPS = 100

# Errors a simulated instrument queues before it drops new ones (SCPI instruments keep 20).
ERROR_QUEUE_SIZE = 20


class Deferred(list):
    """The answer to a set that comes later (`set answered after ...`): nothing now, not even
    the prompt; the lines come from `due_answers()` once their time is reached."""


def _arg_regex(value: Value) -> str:
    """A regex for a component's argument in a command: a whole number with any leading zeros."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"0*{value}"
    return re.escape(str(value))


class DeviceSimulator:
    """One simulated instance of a device type (one component of a thing).

    How it answers:
    - a property's query: its reply pattern written with the value held; a group query: the
      group's reply with every field that belongs to a property written with that value;
    - a set: the value is stored; the device answers its `ack` when it has one, else the value's
      report, except on a device with a prompt (Epson `PWR ON` -> `:`), whose prompt alone says
      "done", and for a property without a reply (write-only, or read through a group query);
    - a value that does not fit, or a set that the device's mode forbids: the error reply.
    """

    def __init__(
        self,
        name: str,
        device: Device,
        args: dict[str, Value] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.args = dict(args or {})
        self.device = device = bind(device, self.args)  # `0..{inputs}`: this unit's range
        self.on_change: Callable[[str, str, Value], None] | None = None
        self._clock = clock
        self._values = {p.name: initial_value(p) for p in device.properties.values()}
        self._reply_views = {p.name: for_replies(p) for p in device.properties.values()}
        self._queries: dict[str, Property | GroupQuery] = {
            p.query.format(**self.args): p for p in device.properties.values() if p.query
        }
        self._queries.update({g.query.format(**self.args): g for g in device.groups.values()})
        # A whole-number argument is recognised however many digits it is written with
        # (Extron SIS: "1-, 2-, and 3-digit numeric entries", `3*2!` = `003*002!`).
        arg_regex = {k: _arg_regex(v) for k, v in self.args.items()}
        # Queries with a number argument are also recognised with other digit counts (`3%`).
        queried: list[Property | GroupQuery] = [*device.properties.values()]
        queried += device.groups.values()
        self._query_patterns = [
            (format_to_regex(q.query, arg_regex, known=self.args), q)
            for q in queried
            if q.query and any(isinstance(v, int) for v in self.args.values())
        ]
        # `commands in any case`: commands are recognised whatever their case (BenQ).
        flags = re.IGNORECASE if device.commands_any_case else 0
        self._sets = [
            (
                p,
                format_to_regex(
                    p.set_format,
                    {**arg_regex, "value": set_value_regex(p)},
                    flags,
                    known=self.args,
                ),
            )
            for p in device.properties.values()
            if p.set_format
        ]
        # Commands setting several properties at once (`command "P{power}B{brightness:03d}"
        # sets power, brightness`): each property's text is a group named after it.
        props = device.properties
        self._joint_sets = [
            (
                joint,
                format_to_regex(
                    joint.format,
                    {**arg_regex, **{n: set_value_regex(props[n]) for n in joint.props}},
                    flags,
                ),
            )
            for joint in device.joint_sets
        ]
        if device.commands_any_case:
            self._queries = {k.casefold(): v for k, v in self._queries.items()}
        # A known command with a value the device does not take gets that command's own refusal.
        self._loose_sets = [
            (p, format_to_regex(p.set_format, {**arg_regex, "value": "(?s:.+?)"}, known=self.args))
            for p, _ in self._sets
            if p.error is not None and p.set_format
        ]
        self._error_line = (
            render(self._compile(device.error_reply), {}) if device.error_reply else None
        )
        # SCPI's error queue: what the device could not take, oldest first (bounded, as the
        # instruments' are).
        self._errors: collections.deque[str] = collections.deque(maxlen=ERROR_QUEUE_SIZE)
        # Answers to sets held back (`set answered after`): (due, lines, the mode whose end
        # they wait for, if any), in order.
        self._deferred: list[tuple[float, list[str], str | None]] = []
        self._modes: ModeModel | None = None
        if device.modes is not None and device.modes.names:
            source = device.modes.source
            self._modes = ModeModel(device.modes, device, self._values[source], clock())
            start = self._modes.source_value(self._modes.mode)
            if start is not None:
                self._values[source] = start

    # ------------------------------------------------------------------------------ queries
    @property
    def values(self) -> dict[str, Value]:
        """Every property's current value (timers that fell due applied first)."""
        self.tick()
        return self._values

    @property
    def mode(self) -> str | None:
        """The device's current mode (`warming`), None when its file declares no modes."""
        self.tick()
        return self._modes.mode if self._modes is not None else None

    def next_timer(self) -> float | None:
        """Seconds until a mode timer falls due (0 when overdue), None when none is armed."""
        timer = self._modes.timer() if self._modes is not None else None
        dues = [due for due, _, _ in self._deferred] + ([timer.due] if timer is not None else [])
        return max(0.0, min(dues) - self._clock()) if dues else None

    @property
    def answers_pending(self) -> bool:
        """Whether a set's answer is held back (the server then wakes often to send it)."""
        return bool(self._deferred)

    def due_answers(self) -> list[list[str]]:
        """The held-back set answers whose time has come, oldest first (each one reply)."""
        self.tick()
        now = self._clock()
        mode = self._modes.mode if self._modes is not None else None
        due, kept = [], []
        for entry in self._deferred:
            at, lines, until = entry
            # A mode left before its timer (the lamp reported lit) ends the wait as well.
            if at <= now or (until is not None and until != mode):
                due.append(lines)
            else:
                kept.append(entry)
        self._deferred = kept
        return due

    def tick(self) -> None:
        """Apply every mode timer that fell due: a projector done warming up is on."""
        if self._modes is None:
            return
        now = self._clock()
        for _ in range(_MAX_MODE_STEPS):
            timer = self._modes.timer()
            if timer is None or timer.due > now:
                return
            self._enter(timer.dest, timer.due)
            self._settle(timer.due)

    # ------------------------------------------------------------------------------ lines
    def answer(self, line: str) -> list[str] | None:
        """The device's reply lines to one received line; None when the line is not for it."""
        self.tick()
        queue = self.device.error_queue
        if queue is not None and line == queue.query:
            # `SYST:ERR?` pops the oldest error: `+0,"No error"` when there is none.
            return [self._errors.popleft() if self._errors else queue.empty]
        target = self._queries.get(line.casefold() if self.device.commands_any_case else line)
        if target is None:
            target = next((q for p, q in self._query_patterns if p.fullmatch(line)), None)
        try:
            if isinstance(target, GroupQuery):
                return [self.report_group(target.name), *self._then(target.reply_then, {})]
            if target is not None:
                prop = self.device.properties[target.name]
                then = self._then(prop.reply_then, {"value": prop})
                return [self.report(target.name), *then]
            for joint, pattern in self._joint_sets:
                found = pattern.fullmatch(line)
                if found is not None:
                    return self._take_joint(joint, found)
            for prop, pattern in self._sets:
                found = pattern.fullmatch(line)
                if found is not None and "value" not in pattern.groupindex:
                    # A command with no value in it (a button: `Main.Volume+`): taken.
                    _LOGGER.info("%s: %s pressed", self.name, prop.name)
                    if prop.adjusts is not None:
                        return self._adjust(prop, "")
                    return self._set_reply(prop, line) if prop.reply is None else []
                if found is not None:
                    return self._take_set(prop, self._spelt(prop, found.group("value")), line)
            for prop, pattern in self._loose_sets:
                if pattern.fullmatch(line) is not None:
                    return self.error(prop)
        except ValueError as err:  # a value its reply pattern cannot carry: a file to fix
            _LOGGER.warning("%s: cannot answer %r: %s", self.name, line, err)
            return self.error()
        return None

    def knows(self, line: str) -> bool:
        """Whether `line` is a whole command of this device: a query, a set or a button (the
        port splits commands that have no terminator by this)."""
        if (line.casefold() if self.device.commands_any_case else line) in self._queries:
            return True
        patterns = [p for p, _ in self._query_patterns] + [p for _, p in self._sets]
        return any(p.fullmatch(line) for p in [*patterns, *(p for _, p in self._loose_sets)])

    def error(self, prop: Property | None = None) -> list[str]:
        """The device's error reply (nothing, if the protocol has none); a property's own
        refusal when it has one (Onkyo `!1MVLN/A` under the command's own code). With an
        error queue (SCPI): nothing, and the error queued, `refused` for a property's value,
        `unknown` for a command the device cannot parse."""
        queue = self.device.error_queue
        if queue is not None:
            text = queue.refused if prop is not None else queue.unknown
            if text:
                self._errors.append(text)
            return []
        if prop is not None and prop.error is not None:
            return [render(self._compile(prop.error), {})]
        return [self._error_line] if self._error_line is not None else []

    def report(self, prop_name: str) -> str:
        """The reply line stating a property's current value."""
        prop = self.device.properties[prop_name]
        assert prop.reply is not None
        return self._render(prop.reply, {"value": prop})

    def report_group(self, group_name: str) -> str:
        """The reply to a group query: each property's field written with its current value.

        Monoprice zone 11, on at volume 13 on source 4: `>1100010000130707100400`; fields that
        belong to no property (`pa`, `dnd`, `keypad` here) get the shortest text that matches.
        """
        group = self.device.groups[group_name]
        fields = {
            p.group_field: p
            for p in self.device.properties.values()
            if p.group == group_name and p.group_field
        }
        return self._render(group.reply, fields)

    def change(self, prop_name: str, value: object) -> list[str]:
        """A change made at the device; returns the unsolicited report it sends, if any."""
        self.tick()
        prop = self.device.properties.get(prop_name)
        if prop is None:
            raise BadValue(f"{self.name} has no property {prop_name!r}")
        self._store(prop, coerce(prop.type, value))
        self._follow(prop, self._clock())
        return [self.report(prop_name)] if prop.reply else []

    # ------------------------------------------------------------------------------ sets
    def _take_set(self, prop: Property, text: str, line: str = "") -> list[str]:
        try:
            value = decode_set(prop, text)
        except BadValue as err:
            _LOGGER.info("%s: refused %s=%r: %s", self.name, prop.name, text, err)
            return self.error(prop)
        modes = self._modes
        if prop.adjusts is not None:
            return self._adjust(prop, str(value))
        if modes is not None and (refusal := modes.refusal(prop.name)) is not None:
            why = refusal.reason or f"only in {', '.join(refusal.modes)}"
            _LOGGER.info("%s: refused %s while %s: %s", self.name, prop.name, modes.mode, why)
            if refusal.answer is not None:
                return [refusal.answer.format(**self.args)]
            return self.error(prop)
        now = self._clock()
        dest = modes.on_set(prop.name, value) if modes is not None else None
        after = prop.set_answered
        if after is not None and not isinstance(after, str):
            return self._defer(now + after, self._apply_set(prop, value, dest, now, line), None)
        lines = self._apply_set(prop, value, dest, now, line)
        timer = modes.timer() if modes is not None else None
        started = after is not None and modes is not None and modes.mode == after == dest
        if started and timer is not None:
            # ESC/VP21: the colon after `PWR ON` once the warm-up is over.
            return self._defer(timer.due, lines, after)
        return lines

    def _defer(self, due: float, lines: list[str], until: str | None) -> list[str]:
        self._deferred.append((due, lines, until))
        return Deferred()

    def _apply_set(
        self, prop: Property, value: Value, dest: str | None, now: float, line: str
    ) -> list[str]:
        modes = self._modes
        if modes is not None and dest is not None:
            # `PWR ON` from off: power becomes `warming`, the mode it starts, not `on`.
            dest_value = modes.source_value(dest)
            joined = prop.name == modes.source.name and dest_value is not None
            self._store(prop, dest_value if joined and dest_value is not None else value)
            self._enter(dest, now)
            self._settle(now)
        elif modes is not None and prop.name == modes.source.name and modes.moves_by_set():
            # The modes say which sets move the device; any other set of the mode property
            # changes nothing (PWR ON while warming: the projector is busy igniting already).
            _LOGGER.info("%s: %s = %s ignored while %s", self.name, prop.name, value, modes.mode)
        else:
            self._store(prop, value)
            self._follow(prop, now)
        return self._set_reply(prop, line)

    def _take_joint(self, joint: JointSet, found: re.Match[str]) -> list[str]:
        """A command setting several properties: each takes its value, or none does."""
        props = [self.device.properties[name] for name in joint.props]
        texts = {p.name: self._spelt(p, found.group(p.name)) for p in props}
        for prop in props:
            try:
                decode_set(prop, texts[prop.name])
            except BadValue as err:
                _LOGGER.info("%s: refused %s=%r: %s", self.name, prop.name, texts[prop.name], err)
                return self.error(prop)
        replies = [self._take_set(prop, texts[prop.name]) for prop in props]
        return replies[0]

    def _then(self, regexes: list[Regex], fields: dict[str, Property]) -> list[str]:
        """The lines that follow a reply (`then /^OK$/`), written with the same values."""
        lines = []
        for regex in regexes:
            groups = self._compile(regex).groupindex
            lines.append(self._render(regex, {k: v for k, v in fields.items() if k in groups}))
        return lines

    def _spelt(self, prop: Property, text: str) -> str:
        """A set's value text as the file spells it, for a device taking commands in any case."""
        if not self.device.commands_any_case:
            return text
        known = [wire for _, wire in prop.set_map] + list(prop.value_map)
        known += list(prop.type.choices.values())
        return next((k for k in known if k.casefold() == text.casefold()), text)

    def _adjust(self, button: Property, key: str) -> list[str]:
        """A relative command: move the property it adjusts by its step, within the range, and
        answer with that property's report (NAD `Main.Volume+` -> `Main.Volume=-29`)."""
        target = self.device.properties[button.adjusts or ""]
        if self._modes is not None and self._modes.refusal(target.name) is not None:
            return self.error(button)
        step = button.adjust_by.get(key, button.adjust_by.get("", 0))
        value = self._values[target.name]
        assert isinstance(value, (int, float))
        moved = value + step
        low, high = target.type.minimum, target.type.maximum
        moved = max(low, moved) if low is not None else moved
        moved = min(high, moved) if high is not None else moved
        self._store(target, int(moved) if target.type.kind == "int" else float(moved))
        self._follow(target, self._clock())
        return [self.report(target.name)] if target.reply is not None else []

    def _set_reply(self, prop: Property, line: str = "") -> list[str]:
        if prop.set_unanswered:
            return []
        ack = prop.ack or self.device.ack_reply
        if ack is not None:
            pattern = self._compile(ack)
            if line and pattern.search(line):
                # An acknowledgement the command itself matches repeats it (a Panasonic
                # display calls back PON with PON, POF with POF).
                return [line]
            return [self._render(ack, {"value": prop} if "value" in pattern.groupindex else {})]
        if self.device.prompt is not None or prop.reply is None:
            return []
        return [self.report(prop.name)]

    # ------------------------------------------------------------------------------ modes
    def _follow(self, prop: Property, now: float) -> None:
        """After a value changed outside any transition: the mode follows what the value says."""
        modes = self._modes
        if modes is None:
            return
        is_source = prop.name == modes.source.name
        named = modes.names(self._values[prop.name]) if is_source else None
        if named is not None and named != modes.mode:
            self._enter(named, now)
        self._settle(now)

    def _enter(self, mode: str, at: float) -> None:
        assert self._modes is not None
        _LOGGER.info("%s: mode %s -> %s", self.name, self._modes.mode, mode)
        self._modes.enter(mode, at)
        value = self._modes.source_value(mode)
        if value is not None:
            self._store(self._modes.source, value)

    def _settle(self, at: float) -> None:
        """Take every `when` transition the current values allow."""
        assert self._modes is not None
        for _ in range(_MAX_MODE_STEPS):
            dest = self._modes.watched(self._values)
            if dest is None or dest == self._modes.mode:
                return
            self._enter(dest, at)

    # ------------------------------------------------------------------------------ helpers
    def _compile(self, regex: Regex) -> re.Pattern[str]:
        return regex.compile_python(self.args)

    def _render(self, regex: Regex, fields: dict[str, Property]) -> str:
        """A reply pattern written with the current value of each field's property."""
        pattern = self._compile(regex)
        texts = {
            name: fit(
                pattern,
                name,
                reply_texts(self._reply_views[prop.name], self._values[prop.name]),
            )
            for name, prop in fields.items()
        }
        return render(pattern, texts)

    def _store(self, prop: Property, value: Value) -> None:
        old = self._values.get(prop.name)
        if old != value or type(old) is not type(value):
            self._values[prop.name] = value
            _LOGGER.info("%s.%s = %s", self.name, prop.name, render_value(value))
            if self.on_change is not None:
                self.on_change(self.name, prop.name, value)
