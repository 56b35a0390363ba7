"""Semantic checks on things: components, ports, shadow names, rules."""

from __future__ import annotations

from pyiot.lang.bind import bound_problems
from pyiot.lang.check import RESERVED_SHADOW_KEYS
from pyiot.lang.diagnostics import Diagnostic, SourcePos
from pyiot.lang.model import Component, Device, IotFile, Thing
from pyiot.lang.shadow_names import key, shadow_paths
from pyiot.lang.values import BadValue, coerce


def check_thing(thing: Thing, model: IotFile) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
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
        if component.endpoint_kind == "tcp":
            problems += tcp_address_problems(
                component.endpoint, component.positions.get("endpoint", component.pos)
            )
        if component.endpoint_kind == "custom":
            module, sep, name = component.endpoint.partition(":")
            if not (sep and module and name.isidentifier()):
                problems.append(
                    Diagnostic(
                        component.positions.get("endpoint", component.pos),
                        f'a custom transport names its class as "module:Class", '
                        f"got {component.endpoint!r}",
                    )
                )
        if component.port is not None and component.port not in thing.ports:
            known = ", ".join(thing.ports) or "none declared"
            problems.append(
                Diagnostic(
                    component.positions.get("endpoint", component.pos),
                    f"unknown port '{component.port}' (ports of {thing.name}: {known})",
                )
            )
    for port in thing.ports.values():
        if port.kind == "tcp":
            problems += tcp_address_problems(port.address, port.pos)
    problems += _shadow_problems(thing, model)
    problems += _rule_problems(thing, model)
    return problems


def tcp_address_problems(address: str, pos: SourcePos) -> list[Diagnostic]:
    """`on tcp "HOST:PORT"` (also `tcp://` or `socket://` before it): a host and a port 1-65535.

    Checked here so a missing port is a compile error, not a failure when the link opens.
    """
    rest = address
    for scheme in ("tcp://", "socket://"):
        rest = rest.removeprefix(scheme)
    host, colon, port = rest.rpartition(":")
    example = 'e.g. tcp "192.168.1.20:60128"'
    if not colon or not host or host in ("[", "[]"):
        return [Diagnostic(pos, f"a tcp address is HOST:PORT ({example}); {address!r} has no port")]
    if not (port.isascii() and port.isdigit() and 1 <= int(port[:6]) <= 65535):
        got = f"got {port[:20]!r} in {address[:60]!r}"
        return [Diagnostic(pos, f"a tcp port is a number from 1 to 65535; {got}")]
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        fixed = f'"[{host}]:{port}"'
        return [Diagnostic(pos, f"an IPv6 host in a tcp address goes in brackets: {fixed}")]
    return []


def _check_args(component: Component, device: Device, pos: SourcePos) -> list[Diagnostic]:
    problems = []
    params = {p.name: p for p in device.params}
    for name, value in component.args.items():
        if name not in params:
            problems.append(Diagnostic(pos, f"device '{device.name}' has no parameter '{name}'"))
            continue
        try:
            coerce(params[name].type, value)
        except BadValue as err:
            problems.append(Diagnostic(pos, f"parameter '{name}': {err}"))
    for name in params.keys() - component.args.keys():
        problems.append(Diagnostic(pos, f"missing parameter '{name}' for device '{device.name}'"))
    if not problems:
        for message in bound_problems(device, component.args):
            problems.append(Diagnostic(pos, message))
    return problems


def _shadow_problems(thing: Thing, model: IotFile) -> list[Diagnostic]:
    problems = []
    for entry in thing.shadow:
        component = thing.components.get(entry.component)
        if component is None:
            problems.append(Diagnostic(entry.pos, f"unknown component '{entry.component}'"))
            continue
        device = model.devices.get(component.device)
        if device is not None and entry.prop != "*" and entry.prop not in device.properties:
            problems.append(
                Diagnostic(
                    entry.pos, f"component '{entry.component}' has no property '{entry.prop}'"
                )
            )
    owners: dict[str, tuple[str, str]] = {}
    prefixes: dict[str, tuple[str, str]] = {}
    for (comp_name, prop), path in shadow_paths(thing, model).items():
        pos = _shadow_pos(thing, comp_name, prop)
        if path[0] in RESERVED_SHADOW_KEYS:
            problems.append(Diagnostic(pos, f"shadow key '{path[0]}' is reserved for pyiot"))
        name = key(path)
        clash = owners.get(name) or prefixes.get(name)
        for i in range(1, len(path)):
            clash = clash or owners.get(key(path[:i]))
            prefixes[key(path[:i])] = (comp_name, prop)
        if clash is not None:
            problems.append(
                Diagnostic(
                    pos,
                    f"shadow key '{name}' of {comp_name}.{prop} collides with "
                    f"{clash[0]}.{clash[1]}; rename one in a shadow {{ ... }} block",
                )
            )
        owners[name] = (comp_name, prop)
    return problems


def _shadow_pos(thing: Thing, component: str, prop: str) -> SourcePos:
    for entry in thing.shadow:
        if entry.component == component and entry.prop in (prop, "*"):
            return entry.pos
    return thing.components[component].pos


def _rule_problems(thing: Thing, model: IotFile) -> list[Diagnostic]:
    problems = []
    for rule in thing.rules:
        problems += _target_problems(
            thing, model, rule.component, rule.prop, rule.value, rule.pos, writable=False
        )
        for action in rule.actions:
            problems += _target_problems(
                thing, model, action.component, action.prop, action.value, action.pos, writable=True
            )
    return problems


def _target_problems(
    thing: Thing,
    model: IotFile,
    component_name: str,
    prop_name: str,
    value: object,
    pos: SourcePos,
    writable: bool,
) -> list[Diagnostic]:
    component = thing.components.get(component_name)
    if component is None:
        known = ", ".join(thing.components)
        return [Diagnostic(pos, f"unknown component '{component_name}' (known: {known})")]
    device = model.devices.get(component.device)
    if device is None:
        return []
    prop = device.properties.get(prop_name)
    if prop is None:
        known = ", ".join(device.properties)
        return [
            Diagnostic(pos, f"unknown property '{component_name}.{prop_name}' (known: {known})")
        ]
    if writable and not prop.writable:
        return [Diagnostic(pos, f"'{component_name}.{prop_name}' has no set command")]
    try:
        coerce(prop.type, value)
    except BadValue as err:
        return [Diagnostic(pos, f"{component_name}.{prop_name}: {err}")]
    return []
