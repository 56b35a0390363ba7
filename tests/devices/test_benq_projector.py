"""devices/benq_projector.iot: BenQ's RS-232 command table, echoes, and the benqprojector client.

Quoted from BenQ's guides: "<CR>*pow=on#<CR>" turns the projector on, "<CR>*pow=?#<CR>" reads
power; "All the echo text will be same with the command you execute except query command"; a
query echoes "the same input strings with some value" (*POW=ON#); an illegal command answers
"*Illegal format#". The independent client is benqprojector (the library behind Home
Assistant's BenQ integration), over a TCP connection as to a projector's "RS232 via LAN".
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.runtime.component import DeviceError
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running

pytestmark = pytest.mark.timeout(60)

NAME = "benq_projector"


@pytest.fixture
def projector():
    return simulator_for(device_file(NAME))


def test_the_command_table_with_its_echoes(projector):
    assert projector.respond("*pow=?#") == b"*pow=?#\r*POW=OFF#\r"
    assert projector.respond("*pow=on#") == b"*pow=on#\r*POW=ON#\r"  # echo, then the state
    assert projector.respond("*pow=?#") == b"*pow=?#\r*POW=ON#\r"
    assert projector.respond("*sour=hdmi#") == b"*sour=hdmi#\r*SOUR=HDMI#\r"
    assert projector.respond("*sour=?#") == b"*sour=?#\r*SOUR=HDMI#\r"
    assert projector.respond("*mute=on#") == b"*mute=on#\r*MUTE=ON#\r"
    assert projector.respond("*mute=?#") == b"*mute=?#\r*MUTE=ON#\r"
    # "correct input is "*pow=?#" but input "*po=?#" ... it will show "*Illegal format#""
    assert projector.respond("*po=?#") == b"*po=?#\r*Illegal format#\r"


def test_source_is_refused_while_off(projector):
    assert projector.respond("*sour=hdmi2#") == b"*sour=hdmi2#\r*Illegal format#\r"
    assert projector.sims["projector"].values["source"] == "rgb"


def test_commands_in_any_case(projector):
    """The projector takes "Uppercase, lowercase, and a mixture of both"."""
    assert projector.respond("*POW=ON#") == b"*POW=ON#\r*POW=ON#\r"
    assert projector.respond("*Pow=?#") == b"*Pow=?#\r*POW=ON#\r"


def test_runtime_reads_every_property_and_selects_a_source():
    async def scenario() -> None:
        async with running(device_file(NAME), "projector") as (engine, port):
            for name, prop in engine.device.properties.items():
                if prop.query:
                    await engine.read(name)
            assert engine.values["power"] == "off"
            with pytest.raises(DeviceError, match="Block item"):
                await engine.set("source", "hdmi")
            assert await engine.set("power", "on") == "on"
            assert await engine.set("source", "hdmi2") == "hdmi2"
            assert await engine.set("mute", True) is True
            assert port.sims["projector"].values["source"] == "hdmi2"

    asyncio.run(scenario())


def test_benqprojector_drives_the_simulated_projector():
    benq = pytest.importorskip("benqprojector")

    async def scenario() -> None:
        port = simulator_for(device_file(NAME))
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        client = benq.BenQProjectorTelnet(host, int(number), has_prompt=False)
        try:
            assert await client.connect()
            assert client.power_status == client.POWERSTATUS_OFF
            assert await client.send_command("pow", "on", check_supported=False) == "on"
            assert await client.send_command("pow", check_supported=False) == "on"
            assert await client.send_command("sour", "hdmi", check_supported=False) == "hdmi"
            assert await client.send_command("sour", check_supported=False) == "hdmi"
            assert await client.send_command("vol", check_supported=False) == "0"
        finally:
            await client.disconnect()
            await port.close()
        assert port.sims["projector"].values["source"] == "hdmi"

    asyncio.run(scenario())


def test_commands_go_out_between_two_crs():
    """The command table writes "<CR>*pow=on#<CR>": a CR before each command as well."""
    from pyiot.runtime.framing import framer_for

    framer = framer_for(device_file("benq_projector").devices["BenQProjector"])
    assert framer.encode("*pow=on#") == b"\r*pow=on#\r"
