"""Fixtures for the runtime tests: compiled programs for the relay and a quick-timeout device."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyiot.compiler import Program, compile_file
from pyiot.lang import load

ROOT = Path(__file__).resolve().parents[2]

# The relay protocol with short timing, so fault tests take a fraction of a second:
# a silent device fails a request after (retries + 1) * timeout = 0.4 s.
QUICK_SOURCE = r"""
device Quick "Relay with short timing" {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 200ms
    retries 1
    error /^ERR$/

    property relayState: bool {
        query "RELAY?"
        reply /^RELAY(?P<value>ON|OFF)$/
        set   "RELAY{value}"
        map   { ON = true, OFF = false }
    }
    property level: int 0..10 {
        set "LEVEL{value}"
    }
}

thing quickThing {
    component quick: Quick on serial "/dev/null"
}
"""


@pytest.fixture(scope="session")
def relay_program() -> Program:
    return compile_file(ROOT / "devices" / "relay.iot")


@pytest.fixture(scope="session")
def quick_program() -> Program:
    return Program.from_model(load(QUICK_SOURCE, "quick.iot"))
