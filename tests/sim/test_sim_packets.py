"""A simulated device speaking binary frames (Onkyo eISCP). The engine against it over real
TCP is tested with the shipped device file, tests/devices/test_onkyo_eiscp.py."""

from __future__ import annotations

from pyiot.lang import load
from pyiot.sim import simulator_for

RECEIVER = r"""
device Onkyo {
    transport tcp
    framing packet "ISCP\x00\x00\x00\x10{size:4be}\x01\x00\x00\x00{payload}" end "\r"
    timeout 500ms
    property power: bool {
        query "!1PWRQSTN" reply /^!1PWR(?P<value>0[01])$/ set "!1PWR{value}"
        map { "01" = true, "00" = false }
    }
}
thing den { component receiver: Onkyo on tcp "192.168.1.50:60128" }
"""


def frame(payload: bytes) -> bytes:
    return (
        b"ISCP"
        + (16).to_bytes(4, "big")
        + len(payload).to_bytes(4, "big")
        + b"\x01\x00\x00\x00"
        + payload
    )


def test_simulator_answers_framed_queries_with_frames() -> None:
    sim = simulator_for(load(RECEIVER, "onkyo.iot"))
    assert sim.respond("!1PWRQSTN") == frame(b"!1PWR00\r")
    assert sim.respond("!1PWR01") == frame(b"!1PWR01\r")
