"""The property -> Home Assistant entity table of docs/homeassistant.md, on a file that has
one property of every kind. Pure: no broker."""

from __future__ import annotations

import json

import pytest

from pyiot.compiler import load_program
from pyiot.runtime.ha_discovery import command_value, state_text
from tests.homeassistant.conftest import EVERYTHING, entities_of


def by_name() -> dict[str, dict]:
    return {e.config["name"]: {"platform": e.platform, **e.config} for e in entities_of(EVERYTHING)}


def test_each_kind_of_property_becomes_the_entity_of_the_table() -> None:
    platforms = {name: config["platform"] for name, config in by_name().items()}
    assert platforms == {
        "pyiot gateway": "binary_sensor",  # the thing's own device: is pyiot connected
        "power": "switch",  # writable bool
        "ready": "binary_sensor",  # read-only bool
        "input": "select",  # writable enum
        "signal": "sensor",  # read-only enum
        "volume": "number",  # writable int with a range
        "gain": "number",  # writable float with a range and step
        "counter": "number",  # writable int without a range
        "temperature": "sensor",  # read-only number
        "step up": "button",  # write-only enum: one button per name
        "step down": "button",
        "label": "text",  # writable string
        "firmware": "sensor",  # read-only string
    }


def test_options_ranges_and_payloads_come_from_the_file() -> None:
    entities = by_name()
    assert entities["input"]["options"] == ["hdmi1", "hdmi2", "tv"]
    assert entities["signal"]["device_class"] == "enum"
    assert entities["signal"]["options"] == ["none", "sd", "hd"]
    assert (entities["volume"]["min"], entities["volume"]["max"], entities["volume"]["step"]) == (
        0,
        38,
        1,
    )
    assert (entities["gain"]["min"], entities["gain"]["max"], entities["gain"]["step"]) == (
        -10,
        10,
        0.5,
    )
    assert entities["counter"]["mode"] == "box"
    # `unit "..."` in the file: the unit of a number or a sensor.
    assert entities["gain"]["unit_of_measurement"] == "dB"
    assert entities["temperature"]["unit_of_measurement"] == "°C"
    assert "unit_of_measurement" not in entities["volume"]
    assert entities["power"]["payload_on"] == "true" and entities["power"]["state_off"] == "false"
    assert entities["step up"]["payload_press"] == "up"
    assert entities["step down"]["command_topic"] == "pyiot/studio/panel/step/set"
    assert "state_topic" not in entities["step up"]
    assert "command_topic" not in entities["temperature"]
    assert entities["label"]["state_topic"] == "pyiot/studio/panel/label/state"


def test_each_component_is_a_device_under_its_thing() -> None:
    entities = by_name()
    panel = entities["power"]["device"]
    assert panel["name"] == "panel"
    assert panel["model"] == "Acme test panel, every kind of property"
    assert panel["model_id"] == "Panel"
    assert panel["manufacturer"] == "Acme"
    assert panel["via_device"] == "pyiot_studio"
    assert entities["pyiot gateway"]["device"]["identifiers"] == ["pyiot_studio"]
    # Available only while both pyiot and the component are.
    assert entities["power"]["availability_mode"] == "all"
    assert [a["topic"] for a in entities["power"]["availability"]] == [
        "pyiot/_gateway/gw/availability",
        "pyiot/studio/panel/availability",
    ]


def test_unique_ids_and_topics_are_stable_and_unique() -> None:
    first = [(e.topic("homeassistant"), e.config["unique_id"]) for e in entities_of(EVERYTHING)]
    again = [(e.topic("homeassistant"), e.config["unique_id"]) for e in entities_of(EVERYTHING)]
    assert first == again
    assert len({uid for _, uid in first}) == len(first)
    assert ("homeassistant/switch/pyiot_studio/panel_power/config", "pyiot_studio_panel_power") in first
    # The gateway's id names a topic, never an entity: ids survive a change of gateway.
    other = [e.config["unique_id"] for e in entities_of(EVERYTHING, gateway="other")]
    assert other == [uid for _, uid in first]


def test_discovery_prefix_is_the_topic_root() -> None:
    topics = {e.topic("ha") for e in entities_of(EVERYTHING, prefix="ha")}
    assert "ha/select/pyiot_studio/panel_input/config" in topics


@pytest.mark.parametrize(
    ("prop", "payload", "value"),
    [
        ("power", "true", True),
        ("power", "false", False),
        ("power", "maybe", "maybe"),  # passed on: the thing rejects it, visibly
        ("volume", "12", 12),
        ("volume", "12.0", 12),
        ("volume", "12.5", 12.5),  # not an int: the thing rejects it
        ("gain", "-3.5", -3.5),
        ("input", "hdmi2", "hdmi2"),
        ("label", "Living room", "Living room"),
        ("label", "42", "42"),
    ],
)
def test_command_payloads_become_typed_desired_values(prop, payload, value) -> None:
    device = load_program(str(EVERYTHING)).model.devices["Panel"]
    got = command_value(device.properties[prop], payload)
    assert got == value and type(got) is type(value)


def test_states_are_json_for_bool_and_numbers_and_text_as_is() -> None:
    assert [state_text(v) for v in (True, False, 12, -3.5, "hdmi2")] == [
        "true",
        "false",
        "12",
        "-3.5",
        "hdmi2",
    ]
    assert json.loads(state_text(0.1)) == 0.1


def test_a_compiled_driver_gives_the_same_entities(tmp_path) -> None:
    from pyiot.compiler import compile_file
    from pyiot.compiler.codegen import driver_source

    driver = tmp_path / "panel_driver.py"
    driver.write_text(driver_source(compile_file(EVERYTHING), "panel_driver"))
    assert [e.config for e in entities_of(driver)] == [e.config for e in entities_of(EVERYTHING)]
