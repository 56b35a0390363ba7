"""The simulated device answers as the .iot file says, at the device and at the port level."""

from __future__ import annotations

import pytest

from pyiot.lang import load
from pyiot.lang.values import BadValue
from pyiot.sim import DeviceSimulator, PortSimulator, port_groups, simulator_for


@pytest.fixture
def relay(relay_model) -> DeviceSimulator:
    return DeviceSimulator("relay1", relay_model.devices["Relay"])


def test_relay_starts_off(relay):
    assert relay.values == {"relayState": False}
    assert relay.answer("RELAY?") == ["RELAYOFF"]


def test_relay_switches_and_confirms(relay):
    assert relay.answer("RELAYON") == ["RELAYON"]
    assert relay.values["relayState"] is True
    assert relay.answer("RELAY?") == ["RELAYON"]
    assert relay.answer("RELAYOFF") == ["RELAYOFF"]
    assert relay.values["relayState"] is False
    assert relay.answer("RELAY?") == ["RELAYOFF"]


@pytest.mark.parametrize("line", ["HELLO", "RELAY", "RELAYMAYBE", "relay?", "RELAY?x", ""])
def test_relay_ignores_lines_it_does_not_know(relay, line):
    assert relay.answer(line) is None
    assert relay.values["relayState"] is False


def test_relay_error_reply(relay):
    assert relay.error() == ["ERR"]


def test_change_at_the_device_is_announced(relay):
    changes = []
    relay.on_change = lambda *args: changes.append(args)
    assert relay.change("relayState", True) == ["RELAYON"]
    assert relay.values["relayState"] is True
    assert changes == [("relay1", "relayState", True)]
    # Setting the same value again is no change.
    relay.answer("RELAYON")
    assert changes == [("relay1", "relayState", True)]
    relay.answer("RELAYOFF")
    assert changes[-1] == ("relay1", "relayState", False)


def test_change_is_type_checked(relay):
    with pytest.raises(BadValue):
        relay.change("relayState", 1)
    with pytest.raises(BadValue, match="no property"):
        relay.change("brightness", 3)
    assert relay.values["relayState"] is False


def test_relay_port_answers_garbage_with_err(relay_model):
    port = simulator_for(relay_model)
    assert list(port.sims) == ["relay1"]
    assert port.terminator == "\n"
    assert port.answer("RELAY?") == ["RELAYOFF"]
    assert port.answer("RELAYON") == ["RELAYON"]
    assert port.unrecognised_lines == 0
    assert port.answer("HELLO") == ["ERR"]
    assert port.answer("\x00\xff") == ["ERR"]
    assert port.unrecognised_lines == 2
    assert port.sims["relay1"].values == {"relayState": True}


def test_parameters_fill_queries_and_sets(house_model):
    kitchen = simulator_for(house_model, "kitchen").sims["kitchen"]
    assert kitchen.args == {"zone": 11}
    assert kitchen.answer("?11PR") == [">00PR00"]
    assert kitchen.answer("<11PR01") == [">00PR01"]
    assert kitchen.values["power"] is True
    # Another zone's commands are not for this one.
    assert kitchen.answer("?12PR") is None
    assert kitchen.answer("<12PR00") is None
    assert kitchen.values["power"] is True


def test_reply_writes_numbers_as_the_set_format_does(house_model):
    """`set "<{zone}VO{value:02d}"` and a reply of two digits: 5 is written "05"."""
    kitchen = simulator_for(house_model, "kitchen").sims["kitchen"]
    assert kitchen.answer("<11VO05") == [">00VO05"]
    assert kitchen.values["volume"] == 5
    assert kitchen.answer("<11VO7") == [">00VO07"]
    assert kitchen.answer("?11VO") == [">00VO07"]
    assert kitchen.change("volume", 38) == [">00VO38"]


def test_out_of_range_set_is_refused_and_value_kept(house_model):
    kitchen = simulator_for(house_model, "kitchen").sims["kitchen"]
    kitchen.answer("<11VO12")
    assert kitchen.answer("<11VO39") == ["ERR"]
    assert kitchen.answer("<11VO-1") == ["ERR"]
    assert kitchen.values["volume"] == 12


def test_maps_strings_floats_and_write_only(house_model):
    avr = simulator_for(house_model, "avr").sims["avr"]
    assert avr.values == {"input": "tv", "level": 0.0, "beep": False}
    assert avr.answer("SI?") == ["SITV"]
    assert avr.answer("SIDVD") == ["SIDVD"]
    assert avr.values["input"] == "dvd"
    assert avr.answer("SIXX") is None
    assert avr.answer("MV?") == ["MV0.0"]
    # A write-only property takes the command and says nothing.
    assert avr.answer("BEEP1") == []
    assert avr.values["beep"] is True
    assert avr.change("beep", False) == []
    assert avr.change("level", -35.5) == ["MV-35.5"]
    # No error pattern in the file: the device says nothing to what it does not know.
    assert avr.error() == []


def test_port_groups_by_thing_and_endpoint(house_model):
    groups = port_groups(house_model)
    assert groups == {
        ("house", "serial", "/dev/ttyUSB0"): [
            ("kitchen", "Zone", {"zone": 11}),
            ("lights", "Lights", {}),
        ],
        ("house", "tcp", "192.168.1.20:23"): [("avr", "Receiver", {})],
        ("garden", "serial", "/dev/ttyUSB1"): [("patio", "Zone", {"zone": 12})],
    }


def test_components_on_one_port_share_one_simulator(house_model):
    port = simulator_for(house_model, "lights")
    assert isinstance(port, PortSimulator)
    assert list(port.sims) == ["kitchen", "lights"]
    assert port.terminator == "\r"
    # Each line goes to the component that knows it.
    assert port.answer("SCENE3") == ["SCENE3"]
    assert port.answer("<11PR01") == [">00PR01"]
    assert port.sims["lights"].values["scene"] == 3
    assert port.sims["kitchen"].values["power"] is True
    assert port.answer("SCENE?") == ["SCENE3"]
    assert port.unrecognised_lines == 0
    assert port.answer("?12PR") == ["ERR"]
    assert port.unrecognised_lines == 1


def test_simulator_for_needs_a_choice_when_there_are_several_ports(house_model):
    with pytest.raises(LookupError) as caught:
        simulator_for(house_model)
    message = str(caught.value)
    assert "several ports" in message
    assert "--component" in message
    for name in ("kitchen", "lights", "avr", "patio"):
        assert name in message


def test_simulator_for_unknown_component_lists_the_known_ones(house_model):
    with pytest.raises(LookupError) as caught:
        simulator_for(house_model, "garage")
    assert "no component 'garage'" in str(caught.value)
    assert "known: kitchen, lights, avr, patio" in str(caught.value)


def test_file_without_things_simulates_each_device():
    model = load('device Relay { property on: bool { set "R{value}" map { A = true, B = false }}}')
    assert port_groups(model) == {("", "serial", "Relay"): [("Relay", "Relay", {})]}
    port = simulator_for(model)
    assert port.answer("RA") == []
    assert port.sims["Relay"].values["on"] is True


def test_port_needs_a_component():
    with pytest.raises(ValueError):
        PortSimulator([])
