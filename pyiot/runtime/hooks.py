"""The escape hatch: Python functions a `.iot` file names for conversions it cannot say.

`python decode "mymodule:function"` turns wire text into a value, `python encode "..."` a value
into wire text. A file from elsewhere must not run code just by being run, so hooks load only
when the user allows it (`pyiot run --allow-python`); otherwise the run stops before anything
connects, naming the line that asks for Python.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from pyiot.errors import PyiotError
from pyiot.lang.model import Device
from pyiot.lang.values import Hooks


class PythonNotAllowed(PyiotError, RuntimeError):
    """A device file names Python hooks and the user did not allow them."""

    what = "Python hooks not allowed"


def resolve_hooks(device: Device, allow: bool, search_dir: Path | None = None) -> dict[str, Hooks]:
    """Property name -> {"decode"/"encode": function} for the device's hooks.

    Modules are imported from `search_dir` (the `.iot` file's folder) as well as `sys.path`.
    """
    hooks: dict[str, Hooks] = {}
    for prop in device.properties.values():
        for role, target in prop.python.items():
            pos = prop.positions.get(f"python:{role}", prop.pos)
            if not allow:
                raise PythonNotAllowed(
                    f"{pos}: {device.name}.{prop.name} runs Python ({target}); "
                    "run with --allow-python if you trust this file"
                )
            hooks.setdefault(prop.name, {})[role] = load_python(target, search_dir, str(pos))
    return hooks


def load_python(target: str, search_dir: Path | None, where: str):
    """The object `module:name` names (a function, or a custom transport's class)."""
    module_name, _, function_name = target.partition(":")
    if search_dir is not None and str(search_dir) not in sys.path:
        sys.path.insert(0, str(search_dir))
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
    except (ImportError, AttributeError) as err:
        raise PythonNotAllowed(f"{where}: cannot load {target}: {err}") from None
    if not callable(function):
        raise PythonNotAllowed(f"{where}: {target} cannot be called")
    return function
