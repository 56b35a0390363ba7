"""Semantic checks on a parsed model: names, references, patterns, formats, shadow keys.

Each check adds positioned diagnostics; `check` raises one `IotError` carrying all of them so a
user fixes several mistakes per run.
"""

from __future__ import annotations

import re
import string

from pyiot.lang.diagnostics import Diagnostic, SourcePos
from pyiot.lang.model import Device, IotFile, Property, Thing
from pyiot.lang.values import ValueError_, coerce

# Names a property may not take in a shadow: pyiot reports its own status under this key.
RESERVED_SHADOW_KEYS = {"pyiot"}


def check(model: IotFile) -> list[Diagnostic]:
    """Every problem found in the model (empty when it is valid)."""
    problems: list[Diagnostic] = []
    for device in model.devices.values():
        problems += _check_device(device)
    for thing in model.things.values():
        problems += _check_thing(thing, model)
    return problems


def _check_device(device: Device) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    at = device.positions.get
    if device.timeout <= 0:
        problems.append(Diagnostic(at("timeout", device.pos), "timeout must be above zero"))
    if not device.line_terminator:
        problems.append(
            Diagnostic(at("line_terminator", device.pos), "line terminator must not be empty")
        )
    if device.error_reply is not None:
        problems += _regex_problems(device.error_reply, at("error_reply", device.pos), set())
    if device.transport.kind == "tcp" and "baud" in device.transport.settings:
        problems.append(Diagnostic(at("transport", device.pos), "a tcp transport has no baud rate"))
    param_names = {p.name for p in device.params}
    for prop in device.properties.values():
        problems += _check_property(prop, param_names)
    return problems


def _check_property(prop: Property, param_names: set[str]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    at = prop.positions.get
    kind = prop.type.kind
    low, high = prop.type.minimum, prop.type.maximum
    if low is not None and high is not None and low > high:
        problems.append(Diagnostic(prop.pos, f"range {low:g}..{high:g} is empty"))
    if prop.reply is not None:
        problems += _regex_problems(prop.reply, at("reply", prop.pos), {"value"})
    if prop.query is not None and prop.reply is None:
        problems.append(
            Diagnostic(at("query", prop.pos), f"property '{prop.name}' has a query but no reply")
        )
    if prop.query is not None:
        # A query is formatted with the component's arguments (no value) before it is sent.
        problems += _format_problems(prop.query, at("query", prop.pos), param_names)
    if prop.set_format is not None:
        problems += _format_problems(
            prop.set_format, at("set_format", prop.pos), {"value"} | param_names
        )
    for wire, value in prop.value_map.items():
        try:
            coerce(prop.type, value)
        except ValueError_ as err:
            problems.append(
                Diagnostic(at("value_map", prop.pos), f"map entry {wire} = {value!r}: {err}")
            )
    if kind == "bool" and (prop.reply or prop.set_format) and not prop.value_map:
        problems.append(
            Diagnostic(
                prop.pos,
                f"bool property '{prop.name}' needs a map from wire text, "
                "e.g. map { ON = true, OFF = false }",
            )
        )
    if kind == "bool" and prop.value_map and set(prop.value_map.values()) != {True, False}:
        problems.append(
            Diagnostic(at("value_map", prop.pos), "a bool map must give both true and false")
        )
    if prop.name in RESERVED_SHADOW_KEYS:
        problems.append(Diagnostic(prop.pos, f"'{prop.name}' is reserved for pyiot's status"))
    return problems


def _regex_problems(regex, pos: SourcePos, needed_groups: set[str]) -> list[Diagnostic]:
    try:
        compiled = regex.compile()
    except re.error as err:
        # The pattern starts one column after the opening slash; each "/" in it was written
        # as "\\/" in the file, one column wider.
        offset = err.pos or 0
        column = pos.column + 1 + offset + regex.source[:offset].count("/")
        return [Diagnostic(SourcePos(pos.file, pos.line, column), f"bad regex: {err.msg}")]
    missing = needed_groups - set(compiled.groupindex)
    return [
        Diagnostic(pos, f"reply pattern has no group named '{name}': write (?P<{name}>...)")
        for name in sorted(missing)
    ]


def _format_problems(fmt: str, pos: SourcePos, allowed: set[str]) -> list[Diagnostic]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
    except ValueError as err:
        return [Diagnostic(pos, f"bad format string: {err}")]
    return [
        Diagnostic(
            pos,
            f"unknown field '{{{name}}}' in format; known: {', '.join(sorted(allowed)) or 'none'}",
        )
        for name in fields
        if name.split(".")[0].split("[")[0] not in allowed
    ]


def _check_thing(thing: Thing, model: IotFile) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    shadow_keys: dict[str, str] = {}
    for component in thing.components.values():
        device = model.devices.get(component.device)
        device_pos = component.positions.get("device", component.pos)
        if device is None:
            known = ", ".join(sorted(model.devices)) or "none declared"
            problems.append(
                Diagnostic(device_pos, f"unknown device '{component.device}' (known: {known})")
            )
            continue
        problems += _check_args(component, device, device_pos)
        for prop in device.properties.values():
            owner = shadow_keys.get(prop.name)
            if owner is not None:
                problems.append(
                    Diagnostic(
                        component.pos,
                        f"shadow key '{prop.name}' of component '{component.name}' is also "
                        f"used by component '{owner}'",
                    )
                )
            shadow_keys[prop.name] = component.name
    return problems


def _check_args(component, device: Device, pos: SourcePos) -> list[Diagnostic]:
    problems = []
    params = {p.name: p for p in device.params}
    for name, value in component.args.items():
        if name not in params:
            problems.append(Diagnostic(pos, f"device '{device.name}' has no parameter '{name}'"))
            continue
        try:
            coerce(params[name].type, value)
        except ValueError_ as err:
            problems.append(Diagnostic(pos, f"parameter '{name}': {err}"))
    for name in params.keys() - component.args.keys():
        problems.append(Diagnostic(pos, f"missing parameter '{name}' for device '{device.name}'"))
    return problems
