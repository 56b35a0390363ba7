"""Where each property of a thing appears in its shadow.

Flat by default (`relayState`); a thing's `shadow { ... }` block renames one property
(`patio.volume as patioVolume`) or moves a component's properties under a key
(`kitchen.* in kitchen` gives `kitchen.volume`). The runtime and the checker share this, so a
collision found at compile time is exactly one that would happen in the shadow.
"""

from __future__ import annotations

from pyiot.lang.model import IotFile, ShadowName, Thing

Path = tuple[str, ...]


def shadow_paths(thing: Thing, model: IotFile) -> dict[tuple[str, str], Path]:
    """(component, property) -> the key path of that property in `state.reported`."""
    renames = {(s.component, s.prop): s for s in thing.shadow if s.prop != "*"}
    nests = {s.component: s for s in thing.shadow if s.prop == "*"}
    paths: dict[tuple[str, str], Path] = {}
    for component in thing.components.values():
        device = model.devices.get(component.device)
        if device is None:
            continue
        for prop in device.properties:
            rename: ShadowName | None = renames.get((component.name, prop))
            if rename is not None:
                paths[(component.name, prop)] = tuple(rename.path)
            elif component.name in nests:
                paths[(component.name, prop)] = (*nests[component.name].path, prop)
            else:
                paths[(component.name, prop)] = (prop,)
    return paths


def key(path: Path) -> str:
    """A path as users write it: `kitchen.volume`."""
    return ".".join(path)
