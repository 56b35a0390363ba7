"""A compiled program: the checked model plus one machine table per device type.

Both `pyiot run file.iot` and a compiled driver module produce the same `Program`, which is what
the runtime and the simulator consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyiot.compiler.tables import MachineTable, machine_table, mode_table
from pyiot.lang import IotFile, load_file


@dataclass
class Program:
    """The model, the protocol machine of each device type, and the modes of those that have any."""

    model: IotFile
    machines: dict[str, MachineTable]
    modes: dict[str, MachineTable] = field(default_factory=dict)

    @classmethod
    def from_model(cls, model: IotFile) -> Program:
        devices = model.devices.items()
        return cls(
            model,
            {name: machine_table(d) for name, d in devices},
            {name: t for name, d in devices if (t := mode_table(d)) is not None},
        )

    @classmethod
    def from_data(
        cls,
        model: dict[str, Any],
        machines: dict[str, MachineTable],
        modes: dict[str, MachineTable] | None = None,
    ) -> Program:
        """Rebuild from the literals a compiled driver module carries."""
        return cls(IotFile.from_data(model), machines, modes or {})


def compile_file(path: str | Path) -> Program:
    """Load, check and compile a `.iot` file (raises `IotError` with every problem found)."""
    return Program.from_model(load_file(path))


def load_program(path: str | Path) -> Program:
    """A `.iot` file, or a driver module written by `pyiot compile -o` (a `.py` file)."""
    path = Path(path)
    if path.suffix != ".py":
        return compile_file(path)
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"pyiot_driver_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load driver module {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    program = getattr(module, "PROGRAM", None)
    if not isinstance(program, Program):
        raise ImportError(f"{path} is not a pyiot driver (no PROGRAM)")
    return program
