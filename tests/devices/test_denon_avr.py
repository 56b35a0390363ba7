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
    assert avr.respond("MV1000") == b""  # 00-99 (and 005-985 for half decibels) only
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


def test_main_zone_is_zm_and_system_power_is_pw(avr):
    """PW is the whole receiver's power; ZM switches the main zone alone."""
    assert avr.respond("ZM?") == b"ZMOFF\r"
    assert avr.respond("ZMON") == b"ZMON\r"
    assert avr.respond("ZM?") == b"ZMON\r"
    assert avr.respond("PW?") == b"PWSTANDBY\r"


def test_current_receivers_name_sat_cbl(avr):
    """An AVR-X answers SI? with SISAT/CBL; the file reads it as an input, not as noise."""
    assert avr.respond("SISAT/CBL") == b"SISAT/CBL\r"
    assert avr.respond("SI?") == b"SISAT/CBL\r"
    assert avr.sims["receiver"].values["input"] == "satcbl"


def test_half_decibels_are_a_third_digit(avr):
    """ "MV505" is 50.5 and "MV50" is 50: the conversion depends on the text's length."""
    assert avr.respond("MV505") == b"MV505\r"
    assert avr.sims["receiver"].values["volume"] == 50.5
    assert avr.respond("MV?") == b"MV505\r"
    assert avr.respond("MV50") == b"MV50\r"
    assert avr.sims["receiver"].values["volume"] == 50


def test_runtime_sets_and_reads_half_decibels():
    async def scenario() -> None:
        async with running(device_file("denon_avr"), "receiver") as (engine, port):
            assert await engine.set("volume", 50.5) == 50.5
            assert port.sims["receiver"].values["volume"] == 50.5
            port.change("receiver", "volume", 62)  # EVENT: MV62
            await eventually(lambda: engine.values.get("volume") == 62)
            assert await engine.read("volume") == 62
            port.change("receiver", "volume", 38.5)  # EVENT: MV385
            await eventually(lambda: engine.values.get("volume") == 38.5)

    asyncio.run(scenario())


def test_an_input_the_file_does_not_know_is_a_bad_reply_not_silence(caplog):
    """A line that is the input's reply by its pattern but holds an unknown code is counted
    and logged with the code, instead of being taken for no answer at all."""

    async def scenario() -> None:
        async with running(device_file("denon_avr"), "receiver") as (engine, port):
            await eventually(lambda: "input" in engine.values)
            port.announce(["SIBLUETOOTH9"])
            await eventually(lambda: engine.status.bad_replies == 1)

    with caplog.at_level("WARNING"):
        asyncio.run(scenario())
    assert "'BLUETOOTH9' is no code of enum" in caplog.text
