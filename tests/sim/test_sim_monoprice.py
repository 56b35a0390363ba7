"""Monoprice zones simulated from their file: one status query filling many properties, echo.

The strings are the amplifier's: `?11` -> `>1100010000130707100400` (zone 11 on, volume 13,
treble 7, bass 7, balance 10, source 4) and `<11VO20` sets zone 11's volume to 20. The real
answer to `?11\\r` is `?11\\r\\r\\n#>11...\\r\\n#`; the simulator sends the same three parts in
the same order: the echoed command, the status line, the `#` prompt.
"""

from __future__ import annotations

import pytest

from pyiot.lang import load
from pyiot.sim import DeviceSimulator, PortSimulator, simulator_for

MANUAL_EXAMPLE = ">1100010000130707100400"


@pytest.fixture
def bus(monoprice_model) -> PortSimulator:
    return simulator_for(monoprice_model, "kitchen")


def test_zones_on_one_bus_share_its_framing(bus):
    assert list(bus.sims) == ["kitchen", "patio"]
    assert (bus.terminator, bus.prompt, bus.echo) == ("\r\n", "#", True)


def test_status_of_a_zone_at_power_on(bus):
    # Everything off and at the bottom of its range; source starts at 1, its lowest.
    assert bus.answer("?11") == [">1100000000000000000100"]
    assert bus.respond("?11") == b"?11\r\n#>1100000000000000000100\r\n#"


def test_sets_then_status_give_the_manual_example(bus):
    for command in ("<11PR01", "<11VO13", "<11TR07", "<11BS07", "<11BL10", "<11CH04"):
        # A set answers nothing but its echo and the prompt.
        assert bus.respond(command) == command.encode() + b"\r\n#"
    assert bus.respond("?11") == b"?11\r\n#" + MANUAL_EXAMPLE.encode() + b"\r\n#"
    kitchen = bus.sims["kitchen"].values
    assert kitchen == {
        "power": True,
        "mute": False,
        "volume": 13,
        "treble": 7,
        "bass": 7,
        "balance": 10,
        "source": 4,
        "keypad": False,
    }


def test_each_zone_answers_only_its_own_lines(bus):
    assert bus.respond("<11VO20") == b"<11VO20\r\n#"
    assert bus.sims["kitchen"].values["volume"] == 20
    assert bus.sims["patio"].values["volume"] == 0
    assert bus.answer("?12") == [">1200000000000000000100"]
    assert bus.answer("<12MU01") == []
    assert bus.answer("?12") == [">1200000100000000000100"]
    assert bus.answer("?11") == [">1100000000200000000100"]
    assert bus.unrecognised_lines == 0


def test_a_zone_nobody_simulates_is_unknown(bus):
    # The file declares no error reply: the amplifier echoes and prompts, nothing more.
    assert bus.respond("?13") == b"?13\r\n#"
    assert bus.respond("<13VO20") == b"<13VO20\r\n#"
    assert bus.unrecognised_lines == 2


def test_out_of_range_set_changes_nothing(bus):
    bus.answer("<11VO13")
    assert bus.respond("<11VO39") == b"<11VO39\r\n#"
    assert bus.respond("<11CH00") == b"<11CH00\r\n#"
    assert bus.answer("?11") == [">1100000000130000000100"]


def test_change_at_the_amplifier_shows_in_the_next_status(bus):
    changes = []
    bus.sims["patio"].on_change = lambda *change: changes.append(change)
    bus.change("patio", "keypad", True)  # a keypad plugged into zone 12
    bus.change("patio", "volume", 38)
    assert changes == [("patio", "keypad", True), ("patio", "volume", 38)]
    assert bus.answer("?12") == [">1200000000380000000101"]


def test_group_fields_without_a_set_format_are_zero_padded():
    """A read-only number in a `\\d\\d` field is written with two digits all the same."""
    model = load(
        r"""
        device Meter {
            query status "STATUS?" reply /^S(?P<temp>\d\d\d)(?P<hum>\d\d) (?P<ok>OK|FAULT)$/
            property temperature: int 0..150 from status.temp
            property humidity: int 0..99 from status.hum
        }
        """,
        "meter.iot",
    )
    meter = DeviceSimulator("meter", model.devices["Meter"])
    assert meter.answer("STATUS?") == ["S00000 OK"]
    meter.change("temperature", 21)
    meter.change("humidity", 7)
    assert meter.answer("STATUS?") == ["S02107 OK"]
    meter.change("temperature", 150)
    assert meter.answer("STATUS?") == ["S15007 OK"]
