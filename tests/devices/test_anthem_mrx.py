"""devices/anthem_mrx.iot: Anthem's semicolon-terminated IP protocol, reports, "!" errors.

Quoted from Anthem's MRX x20 / AVM 60 commands: "; (semicolon) Command separator/terminator",
"IDM? Query model returns IDM followed by model e.g. "IDMMRX 1120"", "ECHx Tx status set";
zone commands Z1POW1, Z1VOL-50, Z1MUT1, Z1INP3; errors "!I" (invalid command), "!Z" (zone off).
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.runtime.component import DeviceError
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def mrx():
    return simulator_for(device_file("anthem_mrx"))


def test_semicolon_framing_and_zone_commands(mrx):
    assert mrx.terminator == ";"
    assert mrx.respond("Z1POW?") == b"Z1POW0;"
    assert mrx.respond("Z1POW1") == b"Z1POW1;"
    assert mrx.respond("Z1VOL-50") == b"Z1VOL-50;"
    assert mrx.respond("Z1VOL?") == b"Z1VOL-50;"
    assert mrx.respond("Z1INP3") == b"Z1INP3;"
    assert mrx.respond("Z1MUT1") == b"Z1MUT1;"
    assert mrx.respond("ECH1") == b"ECH1;"


def test_model_query(mrx):
    mrx.change("receiver", "model", "MRX 1120")
    assert mrx.respond("IDM?") == b"IDMMRX 1120;"


def test_commands_for_a_zone_that_is_off_are_refused(mrx):
    assert mrx.respond("Z1VOL-50") == b"!Z;"
    assert mrx.sims["receiver"].values["volume"] == 0  # starts at 0 dB, unchanged
    # Out of range is refused too (the receiver says !R; the simulator has one error text).
    mrx.respond("Z1POW1")
    assert mrx.respond("Z1VOL5") == b"!Z;"


def test_reports_of_changes_at_the_receiver(mrx):
    assert mrx.sims["receiver"].change("power", True) == ["Z1POW1"]
    assert mrx.sims["receiver"].change("volume", -35) == ["Z1VOL-35"]


def test_runtime_turns_on_and_sets_volume_then_follows_reports():
    async def scenario() -> None:
        async with running(device_file("anthem_mrx"), "receiver") as (engine, port):
            await eventually(lambda: engine.values.get("power") is False)
            with pytest.raises(DeviceError, match="zone 1 is off"):
                await engine.set("volume", -40)
            assert await engine.set("power", True) is True
            assert await engine.set("volume", -40) == -40
            assert await engine.set("input", 2) == 2
            receiver = port.sims["receiver"]
            assert (receiver.values["volume"], receiver.values["input"]) == (-40, 2)
            port.change("receiver", "volume", -35)  # the knob, reported with ECH1
            await eventually(lambda: engine.values["volume"] == -35)
            assert await engine.read("mute") is False

    asyncio.run(scenario())
