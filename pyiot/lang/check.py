"""Semantic checks on a parsed device: patterns, formats, types, maps, groups, modes.

Each check adds positioned diagnostics; `pyiot.lang.load` raises one `IotError` carrying all of
them so a user fixes several mistakes per run. Things are checked in `check_things`.
"""

from __future__ import annotations

import re
import string

from pyiot.lang import expr, limits
from pyiot.lang.diagnostics import Diagnostic, SourcePos
from pyiot.lang.login import secret_names, variable
from pyiot.lang.model import (
    Condition,
    Device,
    IotFile,
    ModeHold,
    Modes,
    PatternError,
    Property,
    Regex,
)
from pyiot.lang.packets import parse_template
from pyiot.lang.values import BadValue, coerce

# Names a property may not take in a shadow: pyiot reports its own status under this key.
RESERVED_SHADOW_KEYS = {"pyiot"}


def check(model: IotFile) -> list[Diagnostic]:
    """Every problem found in the model (empty when it is valid)."""
    from pyiot.lang.check_things import check_thing

    problems: list[Diagnostic] = []
    for device in model.devices.values():
        problems += check_device(device)
    for thing in model.things.values():
        problems += check_thing(thing, model)
    return problems


def check_device(device: Device) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    at = device.positions.get
    if device.timeout <= 0:
        problems.append(Diagnostic(at("timeout", device.pos), "timeout must be above zero"))
    if not device.line_terminator and not device.reply_terminators:
        # Commands may go without an end (Extron SIS `1*3!`), but replies need one.
        problems.append(
            Diagnostic(
                at("line_terminator", device.pos),
                "line terminator must not be empty, unless `replies` says how replies end",
            )
        )
    if device.line_counted is not None:
        pos = at("line_counted", device.pos)
        problems += regex_problems(device.line_counted, pos, {"size"})
    if "" in device.reply_terminators or "" in device.command_terminators:
        problems.append(Diagnostic(at("line_terminator", device.pos), "a line end is empty"))
    if device.packet is not None:
        pos = at("packet", device.pos)
        try:
            parse_template(device.packet)
        except ValueError as err:
            problems.append(Diagnostic(pos, str(err)))
        if "line_terminator" in device.positions:
            problems.append(Diagnostic(pos, "a device frames by lines or by packets, not both"))
    if device.packet_reply is not None:
        try:
            parse_template(device.packet_reply)
        except ValueError as err:
            problems.append(Diagnostic(at("packet_reply", device.pos), f"reply packet: {err}"))
    names = {p.name for p in device.params}
    for text in device.connect_commands:
        problems += format_problems(text, at("connect_commands", device.pos), names)
    for joint in device.joint_sets:
        problems += format_problems(joint.format, joint.pos, names | set(joint.props))
        fields = {f for _, f, _, _ in _fields(joint.format)}
        for prop_name in joint.props:
            if prop_name not in fields:
                problems.append(
                    Diagnostic(joint.pos, f"command sets {prop_name} but has no {{{prop_name}}}")
                )
    if device.greeting == "":
        problems.append(Diagnostic(at("greeting", device.pos), "a greeting must not be empty"))
    if device.login is not None:
        problems += _login_problems(device)
    if device.prompt == "":
        problems.append(Diagnostic(at("prompt", device.pos), "a prompt must not be empty"))
    for key in ("error_reply", "ack_reply"):
        regex = getattr(device, key)
        if regex is not None:
            problems += regex_problems(regex, at(key, device.pos), set())
    if device.transport.kind == "tcp" and "baud" in device.transport.settings:
        problems.append(Diagnostic(at("transport", device.pos), "a tcp transport has no baud rate"))
    params = {p.name for p in device.params}
    for group in device.groups.values():
        problems += regex_problems(group.reply, group.positions.get("reply", group.pos), set())
        for then in group.reply_then:
            problems += regex_problems(then, group.positions.get("reply", group.pos), set())
        problems += format_problems(group.query, group.positions.get("query", group.pos), params)
        problems += condition_problems(group.poll_when, device)
    problems += condition_problems(device.poll_when, device)
    for prop in device.properties.values():
        problems += _check_property(prop, device, params)
    if device.modes is not None:
        problems += _check_modes(device.modes, device)
    return problems


def _login_problems(device: Device) -> list[Diagnostic]:
    """The greeting must compile; a secret may not be a parameter (it would be in the file)."""
    login = device.login
    assert login is not None
    pos = device.positions.get("login", device.pos)
    problems = regex_problems(login.greeting, pos, set())
    if problems:
        return problems
    secrets = secret_names(login)
    params = {p.name for p in device.params}
    for name in secrets:
        if name in params:
            problems.append(
                Diagnostic(
                    pos,
                    f"'{name}' is a parameter, so its value would be in the file; a login's "
                    f"secret comes from the environment ({variable(name)})",
                )
            )
    if not secrets:
        problems.append(Diagnostic(pos, "a login's format names no secret (e.g. {password})"))
    return problems


def _bound_problems(prop: Property, device: Device) -> list[Diagnostic]:
    """A range's top from a parameter (`0..{inputs}`) names a numeric parameter."""
    name = prop.type.maximum_param
    if name is None:
        return []
    params = {p.name: p for p in device.params}
    if name not in params:
        known = ", ".join(params) or "none"
        message = f"the range of '{prop.name}' ends at unknown parameter '{name}'"
        return [Diagnostic(prop.pos, f"{message} (parameters: {known})")]
    if params[name].type.kind not in ("int", "float"):
        kind = params[name].type.kind
        message = f"the range of '{prop.name}' ends at '{name}', a {kind}, not a number"
        return [Diagnostic(prop.pos, message)]
    return []


def _check_property(prop: Property, device: Device, params: set[str]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    at = prop.positions.get
    kind = prop.type.kind
    low, high = prop.type.minimum, prop.type.maximum
    if low is not None and high is not None and low > high:
        problems.append(Diagnostic(prop.pos, f"range {low:g}..{high:g} is empty"))
    problems += _bound_problems(prop, device)
    if prop.reply is not None:
        problems += regex_problems(prop.reply, at("reply", prop.pos), {"value"})
    if prop.group is not None:
        problems += _group_problems(prop, device)
    if prop.error is not None:
        problems += regex_problems(prop.error, at("error", prop.pos), set())
    for then in prop.reply_then:
        problems += regex_problems(then, at("reply_then", prop.pos), set())
    if prop.set_timeout is not None and prop.set_format is None:
        problems.append(
            Diagnostic(at("set_timeout", prop.pos), f"'{prop.name}' has a set timeout but no set")
        )
    if prop.set_answered is not None and prop.set_format is None:
        problems.append(
            Diagnostic(at("set_answered", prop.pos), f"'{prop.name}' has no set to answer")
        )
    if isinstance(prop.set_answered, str):
        modes = device.modes.names if device.modes is not None else []
        if prop.set_answered not in modes:
            problems.append(
                Diagnostic(
                    at("set_answered", prop.pos),
                    f"'{prop.set_answered}' is no mode of {device.name}"
                    + (f" (modes: {', '.join(modes)})" if modes else " (it declares none)"),
                )
            )
    if prop.initial is not None:
        problems += _value_problems(prop, prop.initial, at("initial", prop.pos))
    if prop.adjusts is not None:
        problems += _adjust_problems(prop, device)
    if prop.reply_format is not None:
        problems += _reply_format_problems(prop)
    if prop.reply_end is not None and (not prop.reply_end or device.packet is not None):
        why = "must not be empty" if device.packet is None else "is for lines, not packets"
        problems.append(Diagnostic(at("reply_end", prop.pos), f"a reply's end {why}"))
    if prop.query is not None and prop.reply is None:
        problems.append(
            Diagnostic(at("query", prop.pos), f"property '{prop.name}' has a query but no reply")
        )
    if prop.query is not None:
        # A query is formatted with the component's arguments (no value) before it is sent.
        problems += format_problems(prop.query, at("query", prop.pos), params)
    if prop.set_format is not None:
        problems += format_problems(prop.set_format, at("set_format", prop.pos), {"value"} | params)
    problems += _map_problems(prop)
    problems += _access_problems(prop)
    problems += condition_problems(prop.poll_when, device)
    if prop.confirm and prop.query is None and prop.group is None:
        problems.append(
            Diagnostic(at("confirm", prop.pos), "confirm by query needs a query to ask with")
        )
    if prop.convert is not None:
        problems += _convert_problems(prop)
    for role, target in prop.python.items():
        module, sep, function = target.partition(":")
        if not (sep and module and function.isidentifier()):
            problems.append(
                Diagnostic(
                    at(f"python:{role}", prop.pos),
                    f'python {role} names a function as "module:function", got {target!r}',
                )
            )
    if prop.name in RESERVED_SHADOW_KEYS:
        problems.append(Diagnostic(prop.pos, f"'{prop.name}' is reserved for pyiot's status"))
    if (
        kind == "bool"
        and (prop.readable or prop.set_format)
        and not (prop.value_map or prop.python.get("decode"))
    ):
        problems.append(
            Diagnostic(
                prop.pos,
                f"bool property '{prop.name}' needs a map from wire text, "
                "e.g. map { ON = true, OFF = false }",
            )
        )
    return problems


def _reply_format_problems(prop: Property) -> list[Diagnostic]:
    pos = prop.positions.get("reply_format", prop.pos)
    if prop.type.kind not in ("int", "float"):
        kind = prop.type.kind
        return [Diagnostic(pos, f"a reply format writes numbers; '{prop.name}' is {kind}")]
    spec = prop.reply_format or ""
    if any(int(n[:12]) > limits.MAX_FORMAT_WIDTH for n in re.findall(r"\d+", spec)):
        limit = limits.MAX_FORMAT_WIDTH
        return [Diagnostic(pos, f"a reply format's width or precision is above {limit}")]
    # The spec writes the wire number, which `convert` may make whole: one that fits an int or
    # a float will do.
    errors = []
    for sample in (1, 1.5):
        try:
            format(sample, spec)
            return []
        except ValueError as err:
            errors.append(err)
    return [Diagnostic(pos, f"bad reply format {spec!r}: {errors[-1]}")]


def _adjust_problems(prop: Property, device: Device) -> list[Diagnostic]:
    pos = prop.positions.get("adjusts", prop.pos)
    target = device.properties.get(prop.adjusts or "")
    if target is None:
        return [Diagnostic(pos, f"unknown property '{prop.adjusts}' to adjust")]
    if target.type.kind not in ("int", "float"):
        return [Diagnostic(pos, f"'{target.name}' is no number to adjust")]
    if not prop.writable:
        return [Diagnostic(pos, f"'{prop.name}' adjusts '{target.name}' but has no set command")]
    problems = []
    for key, step in prop.adjust_by.items():
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            problems.append(Diagnostic(pos, f"the step for {key or prop.name} must be a number"))
        elif key and prop.type.kind == "enum" and key not in prop.type.choices:
            choices = ", ".join(prop.type.choices)
            problems.append(Diagnostic(pos, f"'{key}' is no value of {prop.name} ({choices})"))
    return problems


def _group_problems(prop: Property, device: Device) -> list[Diagnostic]:
    pos = prop.positions.get("group", prop.pos)
    group = device.groups.get(prop.group or "")
    if group is None:
        known = ", ".join(device.groups) or "none declared"
        return [Diagnostic(pos, f"unknown query '{prop.group}' (known: {known})")]
    problems = []
    # Its own reply may stay: a device that reports one value unasked (a turned knob) as
    # well as in its full status fills the property both ways.
    if prop.query is not None:
        problems.append(
            Diagnostic(pos, f"'{prop.name}' comes from query '{group.name}': drop its own query")
        )
    try:
        groups = group.reply.compile().groupindex
    except PatternError:
        return problems  # reported at the query
    if prop.group_field not in groups:
        field_pos = prop.positions.get("group_field", pos)
        problems.append(
            Diagnostic(
                field_pos,
                f"the reply of query '{group.name}' has no group named '{prop.group_field}' "
                f"(it has: {', '.join(groups) or 'none'})",
            )
        )
    return problems


def _map_problems(prop: Property) -> list[Diagnostic]:
    problems = []
    map_pos = prop.positions.get("value_map", prop.pos)
    for wire, value in prop.value_map.items():
        try:
            coerce(prop.type, value)
        except BadValue as err:
            problems.append(Diagnostic(map_pos, f"map entry {wire} = {value!r}: {err}"))
    if (
        prop.type.kind == "bool"
        and prop.value_map
        and set(prop.value_map.values())
        != {
            True,
            False,
        }
    ):
        problems.append(Diagnostic(map_pos, "a bool map must give both true and false"))
    if prop.type.kind == "enum" and prop.value_map:
        missing = [v for v in prop.type.choices if v not in prop.value_map.values()]
        if missing:
            problems.append(
                Diagnostic(
                    map_pos, f"map misses enum value{'s' * (len(missing) > 1)} {', '.join(missing)}"
                )
            )
    set_pos = prop.positions.get("set_map", prop.pos)
    for value, wire in prop.set_map:
        try:
            coerce(prop.type, value)
        except BadValue as err:
            problems.append(Diagnostic(set_pos, f"with entry {value} = {wire!r}: {err}"))
    return problems


def _access_problems(prop: Property) -> list[Diagnostic]:
    pos = prop.positions.get("access", prop.pos)
    if prop.access == "readonly" and prop.set_format is not None:
        return [Diagnostic(pos, f"readonly property '{prop.name}' has a set command")]
    if prop.access == "writeonly" and prop.readable:
        return [Diagnostic(pos, f"writeonly property '{prop.name}' has a reply")]
    if prop.access == "writeonly" and prop.set_format is None:
        return [Diagnostic(pos, f"writeonly property '{prop.name}' has no set command")]
    return []


def _convert_problems(prop: Property) -> list[Diagnostic]:
    pos = prop.positions.get("convert", prop.pos)
    assert prop.convert is not None
    if prop.type.kind not in ("int", "float"):
        return [Diagnostic(pos, f"convert works on numbers; '{prop.name}' is {prop.type.kind}")]
    problems = []
    for side in (prop.convert.read, prop.convert.write):
        for kind, name in expr.names(side):
            if kind == "var" and name not in expr.VARIABLES:
                problems.append(Diagnostic(pos, f"unknown name '{name}' in convert; use 'value'"))
            if kind == "call" and name not in expr.FUNCTIONS:
                known = ", ".join(expr.FUNCTIONS)
                problems.append(Diagnostic(pos, f"unknown function '{name}' (known: {known})"))
    return problems


def condition_problems(condition: Condition | None, device: Device) -> list[Diagnostic]:
    if condition is None:
        return []
    problems = []
    for c in condition.comparisons:
        prop = device.properties.get(c.prop)
        if prop is None:
            problems.append(Diagnostic(c.pos, f"unknown property '{c.prop}' in condition"))
            continue
        problems += _value_problems(prop, c.value, c.pos, on_step=c.op in ("==", "!="))
        if c.op not in ("==", "!=") and prop.type.kind not in ("int", "float"):
            problems.append(Diagnostic(c.pos, f"'{c.op}' compares numbers; {c.prop} is not one"))
    return problems


def _value_problems(
    prop: Property, value: object, pos: SourcePos, on_step: bool = True
) -> list[Diagnostic]:
    # `setpoint > 20.7` is a fine threshold; `setpoint == 20.7` can never hold on steps of 0.5.
    try:
        coerce(prop.type, value, on_step=on_step)
    except BadValue as err:
        return [Diagnostic(pos, f"{prop.name}: {err}")]
    return []


def _check_modes(modes: Modes, device: Device) -> list[Diagnostic]:
    problems = []
    if modes.source not in device.properties:
        problems.append(Diagnostic(modes.pos, f"unknown property '{modes.source}' for modes"))
    for name in modes.names:
        if "_" in name:
            where = next(
                (t.pos for t in modes.transitions if name in (t.source, t.dest)), modes.pos
            )
            problems.append(
                Diagnostic(
                    where,
                    f"mode '{name}': mode names may not contain '_' (it separates nested states)",
                )
            )
    for transition in modes.transitions:
        for trigger in transition.triggers:
            if trigger.prop is None:
                continue
            prop = device.properties.get(trigger.prop)
            if prop is None:
                problems.append(Diagnostic(trigger.pos, f"unknown property '{trigger.prop}'"))
                continue
            exact = trigger.op in ("==", "!=")
            problems += _value_problems(prop, trigger.value, trigger.pos, on_step=exact)
            if trigger.kind == "set" and not prop.writable:
                problems.append(Diagnostic(trigger.pos, f"'{prop.name}' has no set command"))
    for hold in modes.holds:
        for name in hold.props:
            prop = device.properties.get(name)
            if prop is None or not prop.writable:
                problems.append(Diagnostic(hold.pos, f"'{name}' is no property with a set command"))
        if hold.answer is not None:
            problems += _answer_problems(hold, device)
    return problems


def _answer_problems(hold: ModeHold, device: Device) -> list[Diagnostic]:
    """A reject's `answer` is a refusal the runtime must recognise: an error pattern matches it."""
    patterns = [device.error_reply] + [
        device.properties[n].error for n in hold.props if n in device.properties
    ]
    for regex in patterns:
        if regex is None:
            continue
        try:
            if regex.compile_python().search(hold.answer or ""):
                return []
        except PatternError:
            return []  # reported at the pattern
    return [Diagnostic(hold.pos, f"answer {hold.answer!r} matches no error pattern of the device")]



def regex_problems(regex: Regex, pos: SourcePos, needed_groups: set[str]) -> list[Diagnostic]:
    try:
        compiled = regex.compile()
        regex.compile_python()  # the simulator writes replies from Python's parse of it
    except PatternError as err:
        # The pattern starts one column after the opening slash; each "/" in it was written
        # as "\\/" in the file, one column wider.
        offset = err.offset
        column = pos.column + 1 + offset + regex.source[:offset].count("/")
        return [Diagnostic(SourcePos(pos.file, pos.line, column), err.message)]
    missing = needed_groups - set(compiled.groupindex)
    return [
        Diagnostic(pos, f"reply pattern has no group named '{name}': write (?P<{name}>...)")
        for name in sorted(missing)
    ]


def _fields(fmt: str) -> list[tuple]:
    try:
        return list(string.Formatter().parse(fmt))
    except ValueError:  # reported by format_problems
        return []


def format_problems(fmt: str, pos: SourcePos, allowed: set[str]) -> list[Diagnostic]:
    try:
        parsed = [(f, spec) for _, f, spec, _ in string.Formatter().parse(fmt) if f is not None]
    except ValueError as err:
        return [Diagnostic(pos, f"bad format string: {err}")]
    problems = [
        Diagnostic(
            pos,
            f"unknown field '{{{name}}}' in format; known: {', '.join(sorted(allowed)) or 'none'}",
        )
        for name, _ in parsed
        if name.split(".")[0].split("[")[0] not in allowed
    ]
    for name, spec in parsed:
        # "{value:999999999d}" pads every command to a gigabyte: widths stay small.
        widths = [int(n[:12]) for n in re.findall(r"\d+", spec or "")]
        if any(w > limits.MAX_FORMAT_WIDTH for w in widths):
            problems.append(
                Diagnostic(
                    pos,
                    f"format field '{{{name}}}' asks for a width or precision above "
                    f"{limits.MAX_FORMAT_WIDTH}",
                )
            )
    return problems
