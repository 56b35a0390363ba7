"""devices/panasonic_display.iot: STX/ETX commands of Panasonic professional displays.

Quoted from Panasonic's documents: "Power ON Hexadecimal 02h 50h 4Fh 4Eh 03h", its "Response
(Callback)" the same bytes; QPW answers "QPW:*" (0 standby, 1 on); "If an incorrect command is
sent by mistake, this unit will send an "ER401" command back"; "In Standby condition ... the
unit responds to PON command only". No independent client for this protocol is published on
the package index.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.runtime.component import DeviceError
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running

pytestmark = pytest.mark.timeout(60)

NAME = "panasonic_display"


@pytest.fixture
def display():
    return simulator_for(device_file(NAME))


def test_power_on_and_its_callback_byte_for_byte(display):
    assert display.respond("\x02QPW") == bytes.fromhex("02 51 50 57 3a 30 03")  # QPW:0
    # Power ON: 02h 50h 4Fh 4Eh 03h, answered by the same bytes.
    assert display.respond("\x02PON") == bytes.fromhex("02 50 4f 4e 03")
    assert display.respond("\x02QPW") == b"\x02QPW:1\x03"


def test_inputs_volume_and_mute_are_called_back(display):
    display.respond("\x02PON")
    assert display.respond("\x02IMS:HM2") == b"\x02IMS:HM2\x03"
    assert display.respond("\x02QMI") == b"\x02QMI:HM2\x03"
    assert display.respond("\x02AVL:050") == b"\x02AVL:050\x03"
    assert display.respond("\x02QAV") == b"\x02QAV:050\x03"
    assert display.respond("\x02AMT:1") == b"\x02AMT:1\x03"
    assert display.respond("\x02QAM") == b"\x02QAM:1\x03"
    assert display.respond("\x02XYZ") == b"\x02ER401\x03"


def test_standby_takes_only_pon(display):
    assert display.respond("\x02IMS:HM1") == b"\x02ER401\x03"
    assert display.sims["display"].values["input"] == "hdmi1"


def test_power_off_is_called_back_as_pof(display):
    """An acknowledgement that repeats the command: the call-back of POF is POF."""
    display.respond("\x02PON")
    assert display.respond("\x02POF") == b"\x02POF\x03"


def test_runtime_reads_every_property_and_switches_input():
    async def scenario() -> None:
        async with running(device_file(NAME), "display") as (engine, port):
            for name, prop in engine.device.properties.items():
                if prop.query:
                    await engine.read(name)
            assert engine.values["power"] is False
            with pytest.raises(DeviceError, match="only PON"):
                await engine.set("volume", 20)
            # Confirmed by QPW after the call-back, as the document says.
            assert await engine.set("power", True) is True
            assert await engine.set("input", "displayport") == "displayport"
            assert await engine.set("volume", 35) == 35
            assert port.sims["display"].values["volume"] == 35
            assert await engine.read("input") == "displayport"

    asyncio.run(scenario())
