"""Acks, error replies and unit conversion: what a simulated device says back to a set."""

from __future__ import annotations

import pytest

from pyiot.lang import load
from pyiot.sim import DeviceSimulator, simulator_for

# Sony's ADCP style: a set is answered `ok`, a bad command `err_cmd`; values travel quoted.
PROJECTOR = r"""
device Projector {
    framing line "\r\n"
    error /^(?:err_cmd|err_val)$/
    ack /^ok$/
    property power: enum { standby = "standby", startup = "startup", on = "on" } {
        query "power_status ?" reply /^"(?P<value>\w+)"$/ set "power \"{value}\""
    }
    property volume: int 0..50 {
        query "volume ?" reply /^(?P<value>\d+)$/ set "volume {value}"
    }
    property blank: bool {
        set "blank \"{value}\"" map { on = true, off = false }
        ack /^blank (?P<value>on|off) ok$/
    }
}
"""

# Denon AVR master volume: `MV80` is 0 dB, `MV50` is -30 dB (whole dB steps only, here).
RECEIVER = r"""
device Receiver {
    framing line "\r"
    property volume: float -80..18 {
        query "MV?" reply /^MV(?P<value>\d\d)$/ set "MV{value:02d}"
        convert { read = value - 80, write = value + 80 }
    }
    property bass: int -6..6 {
        query "PSBAS ?" reply /^PSBAS (?P<value>\d\d)$/ set "PSBAS {value:02d}"
        convert { read = value - 50, write = value + 50 }
    }
}
"""


@pytest.fixture
def projector() -> DeviceSimulator:
    return DeviceSimulator("projector", load(PROJECTOR, "projector.iot").devices["Projector"])


@pytest.fixture
def receiver() -> DeviceSimulator:
    return DeviceSimulator("avr", load(RECEIVER, "avr.iot").devices["Receiver"])


def test_a_set_is_acknowledged_instead_of_reported(projector):
    assert projector.answer('power "on"') == ["ok"]
    assert projector.values["power"] == "on"
    assert projector.answer("power_status ?") == ['"on"']
    assert projector.answer("volume 30") == ["ok"]
    assert projector.answer("volume ?") == ["30"]


def test_a_property_ack_carries_the_value(projector):
    assert projector.answer('blank "on"') == ["blank on ok"]
    assert projector.values["blank"] is True
    assert projector.answer('blank "off"') == ["blank off ok"]


def test_invalid_values_get_the_error_reply(projector):
    assert projector.answer("volume 51") == ["err_cmd"]
    assert projector.answer('blank "maybe"') is None  # not a set the device knows at all
    assert projector.values == {"power": "standby", "volume": 0, "blank": False}


def test_unknown_lines_get_the_error_reply_on_the_port():
    port = simulator_for(load(PROJECTOR + 'thing t { component p: Projector on tcp "h:1" }'))
    assert port.answer("lamp_timer ?") == ["err_cmd"]
    assert port.answer('power "off"') == ["err_cmd"]  # `off` is no value of this power
    assert port.answer('power "startup"') == ["ok"]
    assert port.unrecognised_lines == 2


def test_values_are_held_in_user_units_and_sent_in_wire_units(receiver):
    assert receiver.values["volume"] == 0.0  # zero where the range holds it
    assert receiver.answer("MV?") == ["MV80"]
    assert receiver.answer("MV50") == ["MV50"]
    assert receiver.values["volume"] == -30.0
    assert receiver.change("volume", 0) == ["MV80"]
    assert receiver.answer("MV99") == []  # 19 dB is outside -80..18: no error reply declared
    assert receiver.values["volume"] == 0.0


def test_converted_ints_round_trip(receiver):
    assert receiver.answer("PSBAS 53") == ["PSBAS 53"]
    assert receiver.values["bass"] == 3
    assert receiver.change("bass", -6) == ["PSBAS 44"]
    assert receiver.answer("PSBAS 57") == []  # +7 is outside -6..6
    assert receiver.values["bass"] == -6
