"""A device as one component sees it: ranges whose top is a parameter, bound to its value.

`property input: int 0..{inputs}` is one declaration for every size of Extron switcher; the
component `ExtronOutput(output = 3, inputs = 16)` takes 0..16. The engine and the simulator
work on the bound copy, so a desired 17 is refused there exactly as `int 0..16` would refuse it.
"""

from __future__ import annotations

import dataclasses

from pyiot.lang.model import Device, Value


def bound_problems(device: Device, args: dict[str, Value]) -> list[str]:
    """Why `args` cannot bind `device`'s ranges (a top below the bottom), one message each."""
    problems = []
    for prop in device.properties.values():
        name = prop.type.maximum_param
        if name is None or name not in args:
            continue
        top, low = args[name], prop.type.minimum
        if isinstance(top, (int, float)) and low is not None and top < low:
            problems.append(
                f"parameter '{name}' = {top:g} makes the range of '{prop.name}' empty "
                f"({low:g}..{top:g})"
            )
    return problems


def bind(device: Device, args: dict[str, Value]) -> Device:
    """`device` with every parameter-topped range bound to `args` (itself when it has none)."""
    if not any(p.type.maximum_param for p in device.properties.values()):
        return device
    properties = {}
    for name, prop in device.properties.items():
        param = prop.type.maximum_param
        top = args.get(param) if param is not None else None
        if isinstance(top, (int, float)):
            value_type = dataclasses.replace(prop.type, maximum=top, maximum_param=None)
            prop = dataclasses.replace(prop, type=value_type)
        properties[name] = prop
    return dataclasses.replace(device, properties=properties)
