"""Shared pieces of the Home Assistant tests: the discovery entities of a file."""

from __future__ import annotations

from pathlib import Path

from pyiot.compiler import load_program
from pyiot.runtime.ha_discovery import Entity, Topics, thing_entities

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EVERYTHING = HERE / "everything.iot"


def entities_of(path: Path, gateway: str = "gw", prefix: str = "homeassistant") -> list[Entity]:
    """Every discovery config `pyiot run --homeassistant` would publish for the file."""
    model = load_program(str(path)).model
    found: list[Entity] = []
    for thing in model.things.values():
        devices = {c.name: model.devices[c.device] for c in thing.components.values()}
        found += thing_entities(thing.name, devices, Topics(gateway, prefix))
    return found
