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
    """Parse and check source text; raise `IotError` with every problem found."""
    model = parse(source, path)
    problems = check(model)
    if problems:
        raise IotError(problems, source)
    return model


def load_file(path: str | Path) -> IotFile:
    """Read, parse and check a `.iot` file."""
    path = Path(path)
    return load(path.read_text(encoding="utf-8"), str(path))
