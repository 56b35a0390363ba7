"""Fixtures for the simulator tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyiot.lang import IotFile, load, load_file

ROOT = Path(__file__).resolve().parents[2]
DEVICES = Path(__file__).resolve().parent / "devices"


class Clock:
    """Time the test moves by hand: `clock.advance(40)` is a projector's warm-up, at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Two amplifier zones sharing one serial line, a receiver on TCP, a meter alone.
# Two components sharing one serial line, a receiver on TCP, a zone alone in another thing.
HOUSE = r"""
device Zone(zone: int) {
    framing line "\r"
    error /^ERR$/
    property power: bool {
        query "?{zone}PR" reply /^>\d\dPR(?P<value>0[01])$/ set "<{zone}PR{value}"
        map { "01" = true, "00" = false }
    }
    property volume: int 0..38 {
        query "?{zone}VO" reply /^>\d\dVO(?P<value>\d\d)$/ set "<{zone}VO{value:02d}"
    }
}

device Lights {
    framing line "\r"
    property scene: int 1..4 { query "SCENE?" reply /^SCENE(?P<value>\d)$/ set "SCENE{value}" }
}

device Receiver {
    property input: string {
        query "SI?" reply /^SI(?P<value>[A-Z]+)$/ set "SI{value}"
        map { TV = "tv", DVD = "dvd", CD = "cd" }
    }
    property level: float -80..10 { query "MV?" reply /^MV(?P<value>-?\d+(\.\d)?)$/ }
    property beep: bool { set "BEEP{value}" map { "1" = true, "0" = false } }
}

thing house {
    component kitchen: Zone(zone = 11) on serial "/dev/ttyUSB0"
    component lights: Lights on serial "/dev/ttyUSB0"
    component avr: Receiver on tcp "192.168.1.20:23"
}

thing garden {
    component patio: Zone(zone = 12) on serial "/dev/ttyUSB1"
}
"""


@pytest.fixture(scope="session")
def relay_model() -> IotFile:
    return load_file(ROOT / "devices" / "relay.iot")


@pytest.fixture(scope="session")
def house_model() -> IotFile:
    return load(HOUSE, "house.iot")


@pytest.fixture(scope="session")
def epson_model() -> IotFile:
    return load_file(DEVICES / "epson.iot")


@pytest.fixture(scope="session")
def monoprice_model() -> IotFile:
    return load_file(DEVICES / "monoprice.iot")


@pytest.fixture
def clock() -> Clock:
    return Clock()
