"""The `.iot` language: parse source into a validated model, with positioned diagnostics."""

from __future__ import annotations

from pathlib import Path

from pyiot.lang.check import check
from pyiot.lang.diagnostics import Diagnostic, IotError, SourcePos
from pyiot.lang.model import Component, Device, IotFile, Property, Thing, ValueType
from pyiot.lang.parser import parse

__all__ = [
    "Component",
    "Device",
    "Diagnostic",
    "IotError",
    "IotFile",
    "Property",
    "SourcePos",
    "Thing",
    "ValueType",
    "load",
    "load_file",
]


def load(source: str, path: str = "<string>") -> IotFile:
    """Parse and check source text (no imports); raise `IotError` with every problem found."""
    model = parse(source, path)
    problems = check(model)
    if problems:
        raise IotError(problems, source, path)
    return model


def load_file(path: str | Path) -> IotFile:
    """Read, parse and check a `.iot` file and the files it imports.

    `import "amps.iot"` is read relative to the importing file; imported devices and things
    join this file's, and a name declared in two files is an error at the second.
    """
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    model = parse(source, str(path))
    problems = _merge_imports(model, path, seen={path.resolve()})
    problems += check(model)
    if problems:
        raise IotError(problems, source, str(path))
    return model


def _merge_imports(model: IotFile, path: Path, seen: set[Path]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    for imported_file in model.imports:
        name, pos = imported_file.path, imported_file.pos
        target = (path.parent / name).resolve()
        if target in seen:
            continue  # imported already (or a cycle): its declarations are in
        seen.add(target)
        try:
            imported = parse(target.read_text(encoding="utf-8"), str(path.parent / name))
        except OSError as err:
            problems.append(Diagnostic(pos, f"cannot import {name!r}: {err.strerror}"))
            continue
        problems += _merge_imports(imported, target, seen)
        for table, kind in ((model.devices, "device"), (model.things, "thing")):
            incoming = imported.devices if kind == "device" else imported.things
            for item_name, item in incoming.items():
                if item_name in table:
                    problems.append(
                        Diagnostic(
                            item.pos,
                            f"{kind} '{item_name}' is also declared in {table[item_name].pos}",
                        )
                    )
                else:
                    table[item_name] = item
    return problems
