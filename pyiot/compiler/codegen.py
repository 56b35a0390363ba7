"""Program -> a readable Python driver module: the model and machine tables as literals.

The module needs no `.iot` file and no parser at run time; `pyiot run driver.py` and
`python driver.py` run it exactly as `pyiot run file.iot` would.
"""

from __future__ import annotations

import keyword
import math
import pprint

from pyiot.compiler.program import Program

_TEMPLATE = '''\
{docstring}

from pyiot.compiler.program import Program

# The .iot file this driver was compiled from, as given to `pyiot compile`.
SOURCE = {source}

# The validated model: devices, properties, things and components.
MODEL = {model}

# One protocol state machine per device type: states, transitions, timers.
MACHINES = {machines}

# The device modes of the device types that declare any: states, timers, triggers.
MODES = {modes}

PROGRAM = Program.from_data(MODEL, MACHINES, MODES)


{classes}

if __name__ == "__main__":
    import sys

    from pyiot.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
'''

# Every piece of text from a file or a path reaches the module through `repr` (literals) or
# `_docstring` (escaped): nothing from the input is ever written into the source raw.

_CLASS = """\
class {class_name}:
    {docstring}

    device = PROGRAM.model.devices[{name}]
    machine = MACHINES[{name}]
    modes = MODES.get({name})
    properties = {properties}

    @classmethod
    def engine(cls, name, link, args=None, turns=None):
        \"\"\"A component of this device on `link`: pyiot's engine running this machine.\"\"\"
        from pyiot.runtime.component import ComponentEngine, EngineConfig

        config = EngineConfig(name, cls.device, cls.machine, dict(args or {{}}), cls.modes)
        return ComponentEngine(config, link, turns)
"""

# Names the module itself defines or uses: a device class must not rebind them.
_MODULE_NAMES = {"MODEL", "MACHINES", "MODES", "PROGRAM", "SOURCE", "Program", "sys", "main"}


def _class_name(device_name: str) -> str:
    """A device's class name: its own, with "_" added where Python or the module needs it."""
    if not device_name.isidentifier() or not device_name.isascii():
        # The grammar allows only ASCII identifiers; a model from elsewhere gets a safe name.
        return "Device_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in device_name)
    if (
        keyword.iskeyword(device_name)
        or device_name in _MODULE_NAMES
        or (device_name.startswith("__") and device_name.endswith("__"))
    ):
        return device_name + "_"
    return device_name


def _escaped(text: str, keep_newlines: bool = False) -> str:
    """`text` for inside a triple-quoted literal: it reads back as exactly `text`.

    Backslashes and every quote are escaped, so nothing can close the literal; characters that
    are not printable (newlines unless kept, NUL, lone surrogates) become escapes.
    """
    out = []
    for char in text:
        if char in ('\\', '"'):
            out.append("\\" + char)
        elif char.isprintable() or (keep_newlines and char == "\n"):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def _docstring(text: str) -> str:
    """A triple-quoted literal of any text (a device's description)."""
    return '"""' + _escaped(text, keep_newlines=True) + '"""'


def _literal(data: object) -> str:
    """Plain data as a Python literal, after checking it holds only what `repr` writes safely.

    Strings, numbers and booleans `repr` as literals that evaluate back to themselves; a
    float that is not finite would `repr` as a bare name (`inf`), which is why it is refused.
    """
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"cannot write {item!r} into a driver")
        elif item is not None and not isinstance(item, (str, int, bool)):
            raise ValueError(f"cannot write a {type(item).__name__} into a driver")
    return pprint.pformat(data, indent=1, width=100, sort_dicts=False)


def driver_source(program: Program, module_name: str) -> str:
    """The text of a driver module for `program`."""
    from pyiot import __version__

    model = program.model
    classes = "\n\n".join(
        _CLASS.format(
            class_name=_class_name(name),
            name=repr(name),
            docstring=_docstring(device.description or f"Device {name}"),
            properties=_literal(tuple(device.properties)),
        )
        for name, device in model.devices.items()
    )
    module = _escaped(module_name)
    docstring = (
        f'"""pyiot driver compiled from {_escaped(model.path)} by `pyiot compile` '
        f"(pyiot {_escaped(__version__)}).\n\n"
        "Generated: edit the .iot file and compile again rather than editing this module.\n"
        f"Run it with `pyiot run {module}` or `python {module} [pyiot run options]`.\n"
        '"""'
    )
    return _TEMPLATE.format(
        docstring=docstring,
        source=repr(model.path),
        model=_literal(model.to_data()),
        machines=_literal(program.machines),
        modes=_literal(program.modes),
        classes=classes,
    )
