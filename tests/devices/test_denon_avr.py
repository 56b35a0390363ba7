"""devices/denon_avr.iot: Denon's two-letter commands, events in the command's form.

Quoted from the DENON AVR/AVC control protocol: "PWON<CR> : system PoWer ON",
"PWSTANDBY<CR> : system PoWer STANDBY", "SIDVD<CR> : Select Input source DVD", "SI?<CR> :
Request command for now playing input source >> Return RESPONSE SI***<CR>", "MV80" (80 = 0dB),
"PW?" (Request PW Status), "MUON"; "The RESPONSE should be sent within 200ms".
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def avr():
    return simulator_for(device_file("denon_avr"))


def test_the_protocols_examples(avr):
    assert avr.respond("PW?") == b"PWSTANDBY\r"
    assert avr.respond("PWON") == b"PWON\r"
    assert avr.respond("PW?") == b"PWON\r"
    assert avr.respond("SIDVD") == b"SIDVD\r"
    assert avr.respond("SI?") == b"SIDVD\r"
    assert avr.respond("MV80") == b"MV80\r"
    assert avr.respond("MV50") == b"MV50\r"
    assert avr.respond("MV?") == b"MV50\r"
    assert avr.respond("MUON") == b"MUON\r"
    assert avr.respond("MU?") == b"MUON\r"
    assert avr.respond("PWSTANDBY") == b"PWSTANDBY\r"


def test_input_codes_with_slashes_and_dashes(avr):
    assert avr.respond("SIDBS/SAT") == b"SIDBS/SAT\r"
    assert avr.respond("SIVCR-1") == b"SIVCR-1\r"
    assert avr.sims["receiver"].values["input"] == "vcr1"


def test_unknown_commands_get_no_answer(avr):
    assert avr.respond("ZZ?") == b""
    assert avr.respond("MV100") == b""  # 00-99 only
    assert avr.unrecognised_lines == 1


def test_events_announce_a_change_at_the_receiver(avr):
    assert avr.sims["receiver"].change("volume", 45) == ["MV45"]


def test_runtime_sets_and_reads():
    async def scenario() -> None:
        async with running(device_file("denon_avr"), "receiver") as (engine, port):
            avr = port.sims["receiver"]
            received: list[str] = []
            respond = port.respond
            port.respond = lambda line: (received.append(line), respond(line))[1]
            await eventually(lambda: "input" in engine.values)
            assert await engine.set("power", True) is True
            assert await engine.set("volume", 50) == 50
            assert await engine.set("input", "dvd") == "dvd"
            # The commands reached the receiver in order (how fast is bench/'s business).
            commands = [line for line in received if not line.endswith("?")]
            assert list(dict.fromkeys(commands)) == ["PWON", "MV50", "SIDVD"]
            assert (avr.values["power"], avr.values["volume"], avr.values["input"]) == (
                True,
                50,
                "dvd",
            )
            port.change("receiver", "mute", True)  # EVENT: MUON
            await eventually(lambda: engine.values.get("mute") is True)
            assert await engine.read("volume") == 50

    asyncio.run(scenario())
