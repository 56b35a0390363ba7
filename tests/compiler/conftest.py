"""Fixtures for the compiler tests: the relay program and a richer one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyiot.compiler import Program, compile_file

ROOT = Path(__file__).resolve().parents[2]

# Parameters, tcp, maps of every value type, flags, a quote and a backslash in a description.
RICH_SOURCE = r"""
device Zone(zone: int) "Monoprice zone \"{zone}\" C:\\amp" {
    transport serial { baud 9600 parity "N" }
    framing line "\r\n"
    timeout 250ms
    retries 3
    poll every 5s
    error /^ERR(OR)?$/i
    property power: bool {
        query "?{zone}PR" reply /^>(?P<value>0[01])$/ set "<{zone}PR{value}"
        map { "01" = true, "00" = false }
    }
    property volume: int 0..38 { set "<{zone}VO{value:02d}" }
    property gain: float -1.5..1.5 { query "G?" reply /^G(?P<value>.+)$/ poll every 1m timeout 2s }
    property input: string { set "SI{value}" map { TV = "tv", "DVD 2" = "dvd" } }
}

device Receiver {
    transport tcp
    timeout 2s
    property name: string { query "NAME?" reply /^NAME=(?P<value>.*)$/ }
}

device import "a device named like a Python keyword" {}

thing house {
    component kitchen: Zone(zone = 11) on serial "/dev/ttyUSB0"
    component avr: Receiver on tcp "192.168.1.20:23"
}
"""


@pytest.fixture(scope="session")
def relay_path() -> Path:
    return ROOT / "devices" / "relay.iot"


@pytest.fixture(scope="session")
def relay_program(relay_path: Path) -> Program:
    return compile_file(relay_path)


@pytest.fixture(scope="session")
def rich_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rich") / "rich.iot"
    path.write_text(RICH_SOURCE, encoding="utf-8")
    return path
