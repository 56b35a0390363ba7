"""Program -> a readable Python driver module: the model and machine tables as literals.

The module needs no `.iot` file and no parser at run time; `pyiot run driver.py` and
`python driver.py` run it exactly as `pyiot run file.iot` would.
"""

from __future__ import annotations

import keyword
import pprint

from pyiot.compiler.program import Program

_TEMPLATE = '''\
"""pyiot driver compiled from {source} by `pyiot compile` (pyiot {version}).

Generated: edit the .iot file and compile again rather than editing this module.
Run it with `pyiot run {module}` or `python {module} [pyiot run options]`.
"""

from pyiot.compiler.program import Program

# The validated model of {source}: devices, properties, things and components.
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

_CLASS = """\
class {class_name}:
    {docstring}

    device = PROGRAM.model.devices[{name!r}]
    machine = MACHINES[{name!r}]
    properties = {properties!r}
"""

# Names the module itself defines or uses: a device class must not rebind them.
_MODULE_NAMES = {"MODEL", "MACHINES", "PROGRAM", "Program", "sys", "main"}


def _class_name(device_name: str) -> str:
    """A device's class name: its own, with "_" added where Python or the module needs it."""
    if (
        keyword.iskeyword(device_name)
        or device_name in _MODULE_NAMES
        or (device_name.startswith("__") and device_name.endswith("__"))
    ):
        return device_name + "_"
    return device_name


def _docstring(text: str) -> str:
    """A triple-quoted literal of any text: quotes, backslashes and control characters escaped."""
    return '"""' + repr(text)[1:-1].replace('"', '\\"') + '"""'


def driver_source(program: Program, module_name: str) -> str:
    """The text of a driver module for `program`."""
    from pyiot import __version__

    model = program.model
    classes = "\n\n".join(
        _CLASS.format(
            class_name=_class_name(name),
            name=name,
            docstring=_docstring(device.description or f"Device {name}"),
            properties=tuple(device.properties),
        )
        for name, device in model.devices.items()
    )
    return _TEMPLATE.format(
        source=model.path,
        version=__version__,
        module=module_name,
        model=pprint.pformat(model.to_data(), indent=1, width=100, sort_dicts=False),
        machines=pprint.pformat(program.machines, indent=1, width=100, sort_dicts=False),
        modes=pprint.pformat(program.modes, indent=1, width=100, sort_dicts=False),
        classes=classes,
    )
