"""devices/anthem_avm20.iot: the AVM 20 commands of pyIOT and Anthem's AVM 2 command set.

Quoted: "to turn the main zone on, send: P1P1<lf>"; "P1P? Query Main Zone Power status returns
P1Px"; "P1? Query Main zone status returns P1SuVvMwDxEy"; "P1VM sxx.xx Set Main master volume";
"Invalid commands return the message "Invalid Command""; "Receiving a command for the Main zone
when not ON, return the message "Main Off"". pyIOT's full-status pattern:
^P1S([0-9])V([+-][0-9]{1,2}[\\.][0-9])M([0-1])D[0-9]E[0-9]$, its sources 0 CD, 5 DVD, 6 TV.
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
def preamp():
    return simulator_for(device_file("anthem_avm20"))


def test_power_on_and_full_status(preamp):
    assert preamp.respond("P1P?") == b"P1P0\n"
    assert preamp.respond("P1P1") == b"P1P1\n"  # Tx Status: the change, in command format
    assert preamp.respond("P1S6") == b""  # "no response is sent back"
    assert preamp.respond("P1VM-35.5") == b""
    assert preamp.respond("P1M1") == b""
    assert preamp.respond("P1?") == b"P1S6V-35.5M1D0E0\n"
    values = preamp.sims["preamp"].values
    assert (values["input"], values["volume"], values["muted"]) == ("tv", -35.5, True)


def test_volume_is_written_with_sign_and_one_decimal(preamp):
    preamp.respond("P1P1")
    preamp.respond("P1VM-95.5")  # the bottom of the range
    assert preamp.respond("P1?") == b"P1S0V-95.5M0D0E0\n"
    preamp.sims["preamp"].change("volume", 5.0)
    assert preamp.respond("P1?") == b"P1S0V+5.0M0D0E0\n"


def test_a_volume_above_reference_is_taken(preamp):
    preamp.respond("P1P1")
    assert preamp.respond("P1VM+5.0") == b""
    assert preamp.respond("P1?") == b"P1S0V+5.0M0D0E0\n"


def test_main_zone_commands_while_off_are_refused(preamp):
    # The simulator answers every refusal with the first error text of the file's pattern: the
    # AVM 20 itself says "Main Off" here (see docs/devices.md, one error text per device).
    assert preamp.respond("P1S5") == b"Invalid Command\n"
    assert preamp.sims["preamp"].values["input"] == "cd"
    assert preamp.respond("P1X") == b"Invalid Command\n"


def test_power_switched_at_the_preamp_is_announced(preamp):
    assert preamp.sims["preamp"].change("power", True) == ["P1P1"]


def test_runtime_turns_on_sets_input_and_reads_full_status():
    async def scenario() -> None:
        async with running(device_file("anthem_avm20"), "preamp") as (engine, port):
            preamp = port.sims["preamp"]
            await eventually(lambda: engine.values.get("power") is False)
            with pytest.raises(DeviceError, match="Main Off"):
                await engine.set("input", "dvd")
            assert await engine.set("power", True) is True
            assert await engine.set("input", "tv") == "tv"
            assert await engine.set("volume", -20.5) == -20.5
            # Sets nothing answers: done once written, at the device a moment later.
            await eventually(lambda: preamp.values["volume"] == -20.5)
            assert preamp.values["input"] == "tv"
            preamp.change("muted", True)  # the mute button on the remote
            assert await engine.read("muted") is True  # read with P1?
            assert engine.values["input"] == "tv"
            # Asynchronous: the power switch at the preamp reaches the runtime unasked.
            port.change("preamp", "power", False)
            await eventually(lambda: engine.values["power"] is False)
            assert engine.modes is not None and engine.modes.state == "off"

    asyncio.run(scenario())


def test_a_turn_of_the_volume_knob_is_read_at_once():
    async def scenario() -> None:
        async with running(device_file("anthem_avm20"), "preamp") as (engine, port):
            await engine.set("power", True)
            assert await engine.read("volume") == 0.0
            # Tx Status: the knob turned to -30 dB. The simulated preamp itself still says
            # 0.0 to a poll, so only the announcement can bring -30 (no timing needed).
            port.announce(["P1VM-30.0"])
            await eventually(lambda: engine.values["volume"] == -30.0)

    asyncio.run(scenario())
