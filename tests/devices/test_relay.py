"""devices/relay.iot against its simulator and through the runtime.

The protocol is the original pyIOT guide's ("It accepts the following three commands: RELAYON,
RELAYOFF, RELAY?"; "All three of these commands respond with RELAYON or RELAYOFF"), 9600 8N1,
lines ended by "\\n"; the file adds the ERR reply to anything else.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.lang.values import BadValue
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def relay():
    return simulator_for(device_file("relay"))


def test_the_guides_three_commands(relay):
    assert relay.respond("RELAY?") == b"RELAYOFF\n"
    assert relay.respond("RELAYON") == b"RELAYON\n"
    assert relay.respond("RELAY?") == b"RELAYON\n"
    assert relay.respond("RELAYOFF") == b"RELAYOFF\n"
    assert relay.sims["relay1"].values["relayState"] is False


def test_anything_else_is_err(relay):
    assert relay.respond("RELAY") == b"ERR\n"
    assert relay.respond("relayon") == b"ERR\n"
    assert relay.unrecognised_lines == 2


def test_a_switch_at_the_relay_is_announced(relay):
    assert relay.sims["relay1"].change("relayState", True) == ["RELAYON"]


def test_runtime_sets_and_reads_the_simulated_relay():
    async def scenario() -> None:
        async with running(device_file("relay"), "relay1") as (engine, port):
            await eventually(lambda: engine.values.get("relayState") is False)
            assert await engine.set("relayState", True) is True
            assert port.sims["relay1"].values["relayState"] is True
            port.sims["relay1"].change("relayState", False)  # switched at the relay
            assert await engine.read("relayState") is False
            with pytest.raises(BadValue):
                await engine.set("relayState", "on")

    asyncio.run(scenario())
