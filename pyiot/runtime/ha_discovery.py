"""Home Assistant MQTT discovery: what each property of a thing becomes in Home Assistant.

Pure data, no I/O: given a thing's components (their device models), the topics and the
discovery configs (`<prefix>/<platform>/<node>/<object>/config`) that make each component a
device in Home Assistant and each property an entity:

    writable bool             switch
    read-only bool            binary_sensor
    writable enum             select (its names as options)
    read-only enum            sensor, device_class enum, with its options
    writable int/float        number (min, max, step of its range)
    read-only number          sensor (with the property's `unit`, when the file gives one)
    write-only enum           button, one per name (NAD's volumeStep up / down)
    writable string           text
    read-only string          sensor

pyiot owns the state and command topics (`pyiot/<thing>/<component>/<property>/state` and
`.../set`); `pyiot.runtime.homeassistant` keeps the states in step with the values reported
to the shadow and turns each command into a desired change of the thing's shadow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pyiot import __version__
from pyiot.lang.model import Device, Property, Value

DEFAULT_PREFIX = "homeassistant"
# Topics pyiot owns for Home Assistant start here.
BASE = "pyiot"
ONLINE, OFFLINE = "online", "offline"
# HA's number entity needs bounds: an int or float without a range gets these (a 32-bit int).
UNBOUNDED = (-2147483648, 2147483647)
# A float without a step: HA's number refuses steps below 0.001.
FLOAT_STEP = 0.001
# HA's text entity takes at most 255 characters (its own default maximum).
TEXT_MAX = 255

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_id(text: str) -> str:
    """`text` usable as a discovery node or object id (HA allows `[A-Za-z0-9_-]`)."""
    return _UNSAFE.sub("_", text)


@dataclass(frozen=True)
class Topics:
    """The topics of one gateway: its own availability, and per thing, component, property."""

    gateway: str  # the gateway's id (see `gateway_id`)
    prefix: str = DEFAULT_PREFIX

    @property
    def availability(self) -> str:
        """The gateway's availability: `online` while connected, its last will `offline`."""
        return f"{BASE}/_gateway/{self.gateway}/availability"

    @property
    def birth(self) -> str:
        """Home Assistant announces itself here (`online`) when it (re)starts."""
        return f"{self.prefix}/status"

    def component_availability(self, thing: str, component: str) -> str:
        return f"{BASE}/{thing}/{component}/availability"

    def state(self, thing: str, component: str, prop: str) -> str:
        return f"{BASE}/{thing}/{component}/{prop}/state"

    def command(self, thing: str, component: str, prop: str) -> str:
        return f"{BASE}/{thing}/{component}/{prop}/set"

    def commands(self, thing: str) -> str:
        """The filter that catches every command topic of a thing."""
        return f"{BASE}/{thing}/+/+/set"

    def configs(self, thing: str) -> str:
        """The filter that catches every discovery config published for a thing."""
        return f"{self.prefix}/+/{node_id(thing)}/+/config"


def gateway_id(things: list[str]) -> str:
    """A gateway's id, stable across restarts: its things are unique, so the first name is."""
    return safe_id(sorted(things)[0])


def node_id(thing: str) -> str:
    return safe_id(f"pyiot_{thing}")


@dataclass(frozen=True)
class Entity:
    """One discovery config: where it is published and what it says."""

    platform: str
    thing: str
    object_id: str
    config: dict[str, Any]

    def topic(self, prefix: str) -> str:
        return f"{prefix}/{self.platform}/{node_id(self.thing)}/{self.object_id}/config"

    def payload(self) -> str:
        return json.dumps(self.config, separators=(",", ":"))


def platform_of(prop: Property) -> str:
    """The Home Assistant platform a property becomes (buttons: one per enum name)."""
    kind = prop.type.kind
    if prop.access == "writeonly" and kind == "enum":
        return "button"
    if not prop.writable:
        return "binary_sensor" if kind == "bool" else "sensor"
    return {"bool": "switch", "enum": "select", "int": "number", "float": "number"}.get(
        kind, "text"
    )


def state_text(value: Value) -> str:
    """A value as a state payload: JSON for bool and numbers (`true`, `12.5`), text as is."""
    return value if isinstance(value, str) else json.dumps(value)


def command_value(prop: Property, payload: str) -> Any:
    """The desired value a command payload asks for, typed as the shadow would carry it.

    Only the text is parsed here; whether the value fits is the thing's decision (the same
    as for any desired change), so text that does not parse is passed on as a string and the
    thing rejects it visibly.
    """
    kind = prop.type.kind
    if kind == "bool" and payload in ("true", "false"):
        return payload == "true"
    if kind in ("int", "float"):
        try:
            number = float(payload)
        except ValueError:
            return payload
        if kind == "int" and number.is_integer():
            return int(number)
        return number
    return payload


def thing_entities(thing: str, components: dict[str, Device], topics: Topics) -> list[Entity]:
    """Every discovery config of one thing: a connectivity sensor on the thing's own device
    (so the components' `via_device` has something to point at), then each property."""
    thing_device = {
        "identifiers": [node_id(thing)],
        "name": thing,
        "manufacturer": "pyiot",
        "model": "thing (Device Shadow)",
        "sw_version": __version__,
    }
    origin = {"name": "pyiot", "sw_version": __version__}
    entities = [
        Entity(
            "binary_sensor",
            thing,
            "gateway",
            {
                "name": "pyiot gateway",
                "unique_id": f"{node_id(thing)}_gateway",
                "state_topic": topics.availability,
                "payload_on": ONLINE,
                "payload_off": OFFLINE,
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "device": thing_device,
                "origin": origin,
            },
        )
    ]
    for component, device in components.items():
        device_info = {
            "identifiers": [f"{node_id(thing)}_{safe_id(component)}"],
            "name": component,
            "model": device.description or device.name,
            "model_id": device.name,
            "manufacturer": _manufacturer(device),
            "via_device": node_id(thing),
        }
        common = {
            "availability": [
                {"topic": topics.availability},
                {"topic": topics.component_availability(thing, component)},
            ],
            "availability_mode": "all",
            "device": device_info,
            "origin": origin,
        }
        for prop in device.properties.values():
            entities += _property_entities(thing, component, prop, topics, common)
    return entities


def _manufacturer(device: Device) -> str:
    """The maker as the file names it: the description's first word when it starts with a
    capital and is not a common adjective, else that the file is pyiot's (a `.iot` file has
    no manufacturer statement; its description conventionally starts with the maker)."""
    words = device.description.split()
    if words and words[0][:1].isupper() and not words[0].endswith(("-channel", "able")):
        return words[0]
    return "pyiot device file"


def _property_entities(
    thing: str,
    component: str,
    prop: Property,
    topics: Topics,
    common: dict[str, Any],
) -> list[Entity]:
    platform = platform_of(prop)
    unit = prop.unit
    object_id = safe_id(f"{component}_{prop.name}")
    unique = f"{node_id(thing)}_{object_id}"
    state = topics.state(thing, component, prop.name)
    command = topics.command(thing, component, prop.name)
    choices = list(prop.type.choices)
    if platform == "button":
        return [
            Entity(
                "button",
                thing,
                safe_id(f"{object_id}_{choice}"),
                {
                    **common,
                    "name": f"{prop.name} {choice}",
                    "unique_id": safe_id(f"{unique}_{choice}"),
                    "command_topic": command,
                    "payload_press": choice,
                },
            )
            for choice in choices
        ]
    config: dict[str, Any] = {**common, "name": prop.name, "unique_id": unique}
    if prop.access != "writeonly":
        config["state_topic"] = state
    if prop.writable:
        config["command_topic"] = command
        config["qos"] = 1
    if platform in ("switch", "binary_sensor"):
        config.update(payload_on="true", payload_off="false")
        if platform == "switch":
            config.update(state_on="true", state_off="false")
    elif platform == "select":
        config["options"] = choices
    elif platform == "number":
        low = prop.type.minimum if prop.type.minimum is not None else UNBOUNDED[0]
        high = prop.type.maximum if prop.type.maximum is not None else UNBOUNDED[1]
        step = prop.type.step or (1 if prop.type.kind == "int" else FLOAT_STEP)
        config.update(min=low, max=high, step=step)
        if prop.type.minimum is None or prop.type.maximum is None:
            config["mode"] = "box"  # a slider over four billion steps helps no one
        if unit:
            config["unit_of_measurement"] = unit
    elif platform == "text":
        config["max"] = TEXT_MAX
    elif platform == "sensor":
        if prop.type.kind == "enum":
            config.update(device_class="enum", options=choices)
        elif unit and prop.type.kind in ("int", "float"):
            config["unit_of_measurement"] = unit
    return [Entity(platform, thing, object_id, config)]
