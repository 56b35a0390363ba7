"""Device modes in the simulator: triggers on sets, timers and values; holds; the first mode."""

from __future__ import annotations

import pytest

from pyiot.lang import load
from pyiot.sim import DeviceSimulator

# A garage door opener: it opens when told, is open once the door reaches the top (or after
# 10 s), closes by itself after a minute open, and takes no light command while moving.
GARAGE = r"""
device Garage {
    framing line "\n"
    error /^NAK$/
    property door: enum { closed = "C", opening = "O", open = "P", closing = "S" } {
        query "DOOR?" reply /^DOOR (?P<value>[COPS])$/ set "DOOR {value}"
    }
    property position: int 0..100 { query "POS?" reply /^POS (?P<value>\d+)$/ }
    property light: bool { set "LIGHT {value}" map { "1" = true, "0" = false } }
    modes from door {
        closed  -> opening : on set door = open
        opening -> open    : after 10s or when position >= 100
        open    -> closing : after 60s or on set door = closed
        closing -> closed  : after 10s
        reject set light unless open, closed "the motor is running"
    }
}
"""


@pytest.fixture
def garage(clock) -> DeviceSimulator:
    device = load(GARAGE, "garage.iot").devices["Garage"]
    return DeviceSimulator("garage", device, clock=clock)


def test_a_set_trigger_starts_a_mode_whose_name_the_property_takes(garage):
    assert garage.mode == "closed"
    assert garage.answer("DOOR P") == ["DOOR O"]  # told to open: it is opening
    assert garage.mode == "opening"
    assert garage.values["door"] == "opening"


def test_a_value_reached_ends_the_mode_before_its_timer(garage, clock):
    garage.answer("DOOR P")
    clock.advance(4)
    garage.change("position", 100)  # the door reached the top
    assert garage.mode == "open"
    assert garage.answer("DOOR?") == ["DOOR P"]
    clock.advance(59)
    assert garage.mode == "open"  # the minute counts from reaching the top
    clock.advance(1)
    assert garage.mode == "closing"


def test_timers_due_while_nobody_asked_apply_in_order(garage, clock):
    changes = []
    garage.on_change = lambda *change: changes.append(change[1:])
    garage.answer("DOOR P")
    clock.advance(75)  # opened at 10 s, closing from 70 s, closed at 80 s: not yet
    assert garage.answer("DOOR?") == ["DOOR S"]
    clock.advance(5)
    assert garage.answer("DOOR?") == ["DOOR C"]
    assert changes == [
        ("door", "opening"),
        ("door", "open"),
        ("door", "closing"),
        ("door", "closed"),
    ]


def test_a_set_matching_no_trigger_just_sets(garage):
    """No transition leaves `closed` on `door = closed`: the door stays closed, no timer runs."""
    assert garage.answer("DOOR C") == ["DOOR C"]
    assert garage.mode == "closed"
    assert garage.next_timer() is None


def test_rejected_sets_get_the_error_reply_until_the_mode_allows(garage, clock):
    assert garage.answer("LIGHT 1") == []  # closed: allowed (write-only, so no report)
    assert garage.values["light"] is True
    garage.answer("DOOR P")
    assert garage.answer("LIGHT 0") == ["NAK"]
    assert garage.values["light"] is True
    clock.advance(10)
    assert garage.answer("LIGHT 0") == []
    assert garage.values["light"] is False


def test_first_mode_when_the_initial_value_names_none(clock):
    device = load(
        r"""
        device Amp {
            property power: enum { unknown = "9", off = "0", on = "1" } {
                query "P?" reply /^P(?P<value>\d)$/ set "P{value}"
            }
            modes from power {
                off -> on  : on set power = on
                on  -> off : on set power = off
            }
        }
        """,
        "amp.iot",
    ).devices["Amp"]
    amp = DeviceSimulator("amp", device, clock=clock)
    assert amp.mode == "off"
    assert amp.answer("P?") == ["P0"]  # the property takes the mode's name
    assert amp.answer("P1") == ["P1"]
    assert amp.mode == "on"
