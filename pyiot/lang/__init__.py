"""The `.iot` language: parse source into a validated model, with positioned diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pyiot.lang import limits
from pyiot.lang.check import check
from pyiot.lang.diagnostics import Diagnostic, IotError, SourcePos
from pyiot.lang.model import Component, Device, IotFile, Property, Thing, ValueType
from pyiot.lang.parser import parse
from pyiot.lang.source import SourceError, read_source

__all__ = [
    "Component",
    "Device",
    "Diagnostic",
    "IotError",
    "IotFile",
    "Property",
    "SourceError",
    "SourcePos",
    "Thing",
    "ValueType",
    "load",
    "load_file",
]


def load(source: str, path: str = "<string>") -> IotFile:
    """Parse and check source text (no imports); raise `IotError` with every problem found."""
    problems: list[Diagnostic] = []
    model = parse(source, path, problems)
    problems += _checked(model)
    if problems:
        raise IotError(problems, source, path)
    return model


def load_file(path: str | Path) -> IotFile:
    """Read, parse and check a `.iot` file and the files it imports.

    `import "amps.iot"` is read relative to the importing file; imported devices and things
    join this file's, and a name declared in two files is an error at the second. Every file
    read must be a regular file of at most 1 MB (`read_source`); a file that is not one raises
    `SourceError` (an OSError) for the file given, and is an error at the `import` otherwise.
    """
    path = Path(path)
    source = read_source(path)
    problems: list[Diagnostic] = []
    model = parse(source, str(path), problems)
    sources: dict[str, str] = {}
    problems += _merge_imports(model, path, {path.resolve()}, sources, depth=1)
    problems += _checked(model)
    if problems:
        raise IotError(problems, source, str(path), sources)
    return model


def _checked(model: IotFile) -> list[Diagnostic]:
    try:
        return check(model)
    except RecursionError:
        # A last line of defence: the builder bounds nesting, so this is not expected.
        return [Diagnostic(SourcePos(model.path, 1, 1), "too deeply nested to check")]


def _merge_imports(
    model: IotFile, path: Path, seen: set[Path], sources: dict[str, str], depth: int
) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    for imported_file in model.imports:
        name, pos = imported_file.path, imported_file.pos
        target = (path.parent / name).resolve()
        if target in seen:
            continue  # imported already (or a cycle): its declarations are in
        seen.add(target)
        if depth > limits.MAX_IMPORT_DEPTH:
            problems.append(
                Diagnostic(pos, f"imports nest more than {limits.MAX_IMPORT_DEPTH} files deep")
            )
            continue
        shown = str(path.parent / name)
        try:
            text = read_source(target)
            # Another kind of file: any problem is "not .iot source" (below), never its text.
            imported = parse(text, shown, problems if shown.endswith(".iot") else None)
        except SourceError as err:
            problems.append(Diagnostic(pos, f"cannot import {name!r}: {err.reason}"))
            continue
        except IotError as err:
            if not shown.endswith(".iot"):
                # Say where, never what: the file may be anything the user can read.
                where = f"{err.line}:{err.column}"
                problems.append(
                    Diagnostic(pos, f"cannot import {name!r}: not .iot source (stops at {where})")
                )
                continue
            sources[shown] = text
            problems += err.diagnostics
            continue
        if shown.endswith(".iot"):
            sources[shown] = text
        problems += _merge_imports(imported, target, seen, sources, depth + 1)
        problems += _adopt("device", model.devices, imported.devices)
        problems += _adopt("thing", model.things, imported.things)
    return problems


_Declared = TypeVar("_Declared", Device, Thing)


def _adopt(
    kind: str, table: dict[str, _Declared], incoming: dict[str, _Declared]
) -> list[Diagnostic]:
    """Add an imported file's declarations; a name declared already is an error at the second."""
    problems = []
    for name, item in incoming.items():
        if name in table:
            message = f"{kind} '{name}' is also declared in {table[name].pos}"
            problems.append(Diagnostic(item.pos, message))
        else:
            table[name] = item
    return problems
