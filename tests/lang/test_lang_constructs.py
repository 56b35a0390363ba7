"""Every construct of the full language parses into the model, and its misuses are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyiot.lang import IotError, load

FULL = (Path(__file__).parent / "full.iot").read_text()


def test_the_full_example_builds_the_model() -> None:
    model = load(FULL, "full.iot")
    epson = model.devices["Epson"]
    assert (epson.prompt, epson.line_terminator, epson.backoff) == (":", "\r", 0.25)
    power = epson.properties["power"]
    assert power.type.choices["warming"] == "02"
    assert power.set_map == [("on", "ON"), ("off", "OFF")]
    source = epson.properties["source"]
    assert source.poll_when is not None and source.poll_when.comparisons[0].value == "on"
    assert epson.modes is not None and epson.modes.names == ["off", "warming", "on", "cooling"]
    assert epson.modes.holds[0].props == ["source"] and epson.modes.holds[0].modes == ["on"]
    zone = model.devices["Zone"]
    assert zone.echo and zone.groups["status"].poll_every == 5
    assert (zone.properties["volume"].group, zone.properties["volume"].group_field) == (
        "status",
        "volume",
    )
    assert zone.properties["volume"].confirm
    gain = zone.properties["gain"]
    assert gain.convert is not None and gain.access == "readonly"
    assert zone.properties["raw"].python == {"decode": "mylab:parse"}
    house = model.things["house"]
    assert house.components["kitchen"].port == "bus"
    assert [(s.component, s.prop, s.path) for s in house.shadow] == [
        ("kitchen", "*", ["kitchen"]),
        ("patio", "*", ["patio"]),
        ("projector", "power", ["projector", "power"]),
        ("projector", "source", ["projector", "source"]),
    ]
    rule = house.rules[0]
    assert (rule.component, rule.prop, rule.value) == ("kitchen", "power", True)
    assert [(a.component, a.prop, a.value) for a in rule.actions] == [
        ("projector", "power", "on"),
        ("projector", "source", "hdmi2"),
    ]


MISUSES = [
    (
        'query "PWR?" reply',
        'map { "00" = off } query "PWR?" reply',
        "map misses enum values on, warming, cooling",
    ),
    ("from status.volume", "from status.loudness", "has no group named 'loudness'"),
    ("from status.volume", "from state.volume", "unknown query 'state'"),
    (
        "poll every 10s when power == on",
        "poll every 10s when lamp == on",
        "unknown property 'lamp' in condition",
    ),
    (
        "poll every 10s when power == on",
        "poll every 10s when power == blue",
        "expected one of off, on",
    ),
    (
        "hold set source until on",
        "hold set lamp until on",
        "'lamp' is no property with a set command",
    ),
    ("modes from power", "modes from lamp", "unknown property 'lamp' for modes"),
    ("readonly", 'readonly set "G{value}"', "readonly property 'gain' has a set command"),
    ("read = value * 2 - 76", "read = volume * 2 - 76", "unknown name 'volume' in convert"),
    ("read = value * 2 - 76", "read = sqrt(value)", "unknown function 'sqrt'"),
    ('"mylab:parse"', '"mylab.parse"', 'names a function as "module:function"'),
    ("then projector.power = on", "then projector.lamp = on", "unknown property 'projector.lamp'"),
    (
        "projector.power as projector.power",
        "projector.power as kitchen.volume",
        "collides with kitchen.volume",
    ),
    (
        "component kitchen: Zone(zone = 11) on bus",
        "component kitchen: Zone(zone = 11) on bsu",
        "unknown port 'bsu'",
    ),
    ("off     -> warming", "off_now -> warming", "mode names may not contain '_'"),
]


@pytest.mark.parametrize(("old", "new", "message"), MISUSES)
def test_misuse_is_reported_at_its_line(old: str, new: str, message: str) -> None:
    assert old in FULL, old
    source = FULL.replace(old, new, 1)
    with pytest.raises(IotError) as caught:
        load(source, "full.iot")
    found = [d for d in caught.value.diagnostics if message in d.message]
    assert found, caught.value.render()
    line = source.splitlines()[found[0].pos.line - 1]
    # The position points at the statement that is wrong (or its property/component).
    assert new.split()[0] in line or old.split()[0] in line, (line, found[0])
