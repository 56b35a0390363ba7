"""devices/monoprice_mpr6zhmaut.iot: six zones on one port, the manual's status reply, echo, "#".

Quoted from the Monoprice 10761 (MPR-6ZHMAUT) manual, "RS-232 Control": inquiry "?xx" CR, reply
">xxaabbccddeeffgghhiijj"; control "<xxPPuu" CR, e.g. "<11CH01"; PR power 00/01, VO volume
00-38, TR/BS 00-14, BL 00-20, CH 01-06. The amplifier echoes each command and prompts with "#".
The simulator sends echo, reply and prompt as the amplifier does: "?11\\r\\r\\n#>11...\\r\\n#"
(pymonoprice reads exactly that).
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.lang.values import BadValue
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(10)

ZONES = {"kitchen": 11, "dining": 12, "living": 13, "patio": 14, "master": 15, "office": 16}


@pytest.fixture
def amp():
    return simulator_for(device_file("monoprice_mpr6zhmaut"), "kitchen")


def test_six_zones_share_one_port(amp):
    assert list(amp.sims) == list(ZONES)
    assert (amp.terminator, amp.prompt, amp.echo) == ("\r\n", "#", True)
    for zone in ZONES.values():
        assert amp.respond(f"?{zone}") == f"?{zone}\r\r\n#>{zone}00000000000000000100\r\n#".encode()


def test_commands_then_inquiry_give_the_manuals_reply(amp):
    for command in ("<11PR01", "<11VO13", "<11TR07", "<11BS07", "<11BL10", "<11CH04"):
        assert amp.respond(command) == command.encode() + b"\r\r\n#"  # echo with its CR, CR LF, prompt
    assert amp.respond("?11") == b"?11\r\r\n#>1100010000130707100400\r\n#"
    assert amp.sims["kitchen"].values["volume"] == 13
    assert amp.sims["kitchen"].values["source"] == 4
    assert amp.sims["dining"].values["power"] is False  # zone 12 untouched


def test_ranges_of_the_manual(amp):
    amp.respond("<13VO38")
    amp.respond("<13VO39")  # above 38: ignored
    amp.respond("<13CH07")  # sources are 01-06
    amp.respond("<13DT01")
    assert amp.answer("?13") == [">1300000001380000000100"]  # dnd 01, volume 38


def test_zones_of_a_second_amplifier_are_not_simulated(amp):
    assert amp.respond("?21") == b"?21\r\r\n#"
    assert amp.unrecognised_lines == 1


def test_keypad_and_pa_are_read_only(amp):
    amp.change("patio", "keypad", True)
    amp.change("patio", "publicAddress", True)
    assert amp.answer("?14") == [">1401000000000000000101"]
    assert amp.respond("<14PA01") == b"<14PA01\r\r\n#"
    assert amp.unrecognised_lines == 1


def test_runtime_sets_and_reads_one_zone_among_six():
    async def scenario() -> None:
        model = device_file("monoprice_mpr6zhmaut")
        async with running(model, "patio") as (engine, port):
            await eventually(lambda: "volume" in engine.values)
            assert engine.values["power"] is False
            assert await engine.set("power", True) is True
            assert await engine.set("volume", 20) == 20
            assert await engine.set("source", 3) == 3
            patio = port.sims["patio"].values
            assert (patio["power"], patio["volume"], patio["source"]) == (True, 20, 3)
            assert port.sims["kitchen"].values["volume"] == 0
            port.change("patio", "bass", 12)  # turned at the keypad
            assert await engine.read("bass") == 12
            with pytest.raises(BadValue):
                await engine.set("volume", 39)

    asyncio.run(scenario())


def test_a_client_ending_commands_with_cr_is_answered():
    """The manual ends commands with CR and the amplifier answers with CR LF: a client that
    sends `?11` CR (as pymonoprice does) over a real socket gets the status."""

    async def scenario() -> None:
        port = simulator_for(device_file("monoprice_mpr6zhmaut"), "kitchen")
        url = await port.serve_tcp()
        host, _, number = url.removeprefix("socket://").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(number))
        try:
            writer.write(b"?11\r")
            answer = await asyncio.wait_for(reader.readuntil(b"#"), 30)
            answer += await asyncio.wait_for(reader.readuntil(b"#"), 30)
            assert answer == b"?11\r\r\n#>1100000000000000000100\r\n#"
        finally:
            writer.close()
            await port.close()

    asyncio.run(scenario())


def test_pymonoprice_drives_the_simulated_amplifier():
    """pymonoprice (Home Assistant's Monoprice library) ends commands with CR and reads the
    amplifier's `?11\\r\\r\\n#>11...\\r\\n#`: it drives the file's simulator over TCP."""
    pymonoprice = pytest.importorskip("pymonoprice")

    async def scenario() -> None:
        port = simulator_for(device_file("monoprice_mpr6zhmaut"), "kitchen")
        url = await port.serve_tcp()

        def session():
            amp = pymonoprice.get_monoprice(url)
            amp.set_power(12, True)
            amp.set_volume(12, 20)
            amp.set_source(12, 4)
            return amp.zone_status(12), amp.zone_status(11)

        try:
            dining, kitchen = await asyncio.to_thread(session)
        finally:
            await port.close()
        assert (dining.zone, dining.power, dining.volume, dining.source) == (12, True, 20, 4)
        assert (kitchen.zone, kitchen.power, kitchen.volume) == (11, False, 0)
        assert port.sims["dining"].values["volume"] == 20

    asyncio.run(scenario())
