"""devices/rotel_rc1570.iot: Rotel's "!"-terminated ASCII protocol.

Quoted from the RC-1570 RS232 ASCII Controller Command List v1.40: "All commands sent to the
attached Rotel device must have a terminating "!" character. Example Command: power_on!";
power_on! -> power=on!, power_off! -> power=standby!, get_current_power! -> power=on!,
volume_n! (n = 1 - 96) -> volume=##!, mute_on! -> mute=on!, cd! -> source=cd!,
get_current_source! -> source=cd!.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def rotel():
    return simulator_for(device_file("rotel_rc1570"))


def test_the_command_lists_exchanges(rotel):
    assert rotel.terminator == "!"
    assert rotel.respond("get_current_power") == b"power=standby!"
    assert rotel.respond("power_on") == b"power=on!"
    assert rotel.respond("get_current_power") == b"power=on!"
    assert rotel.respond("volume_30") == b"volume=30!"
    assert rotel.respond("volume_5") == b"volume=05!"  # ## : two digits
    assert rotel.respond("mute_on") == b"mute=on!"
    assert rotel.respond("mute_off") == b"mute=off!"
    assert rotel.respond("cd") == b"source=cd!"
    assert rotel.respond("pc_usb") == b"source=pc_usb!"
    assert rotel.respond("get_current_source") == b"source=pc_usb!"
    assert rotel.respond("power_off") == b"power=standby!"


def test_unknown_commands_get_nothing(rotel):
    assert rotel.respond("volume_97") == b""  # n = 1 - 96
    assert rotel.respond("dvd") == b""
    assert rotel.unrecognised_lines == 1


def test_runtime_over_the_bang_terminated_line():
    async def scenario() -> None:
        async with running(device_file("rotel_rc1570"), "preamp") as (engine, port):
            preamp = port.sims["preamp"]
            await eventually(lambda: "source" in engine.values)
            assert await engine.set("power", True) is True
            assert await engine.set("volume", 42) == 42
            assert await engine.set("source", "opt1") == "opt1"
            assert await engine.set("mute", True) is True
            assert (preamp.values["volume"], preamp.values["source"]) == (42, "opt1")
            preamp.change("source", "tuner")
            assert await engine.read("source") == "tuner"
            port.change("preamp", "volume", 20)  # "provided automatically"
            await eventually(lambda: engine.values["volume"] == 20)

    asyncio.run(scenario())


def test_the_ends_of_the_volume_are_words(rotel):
    """The preamplifier reports its top and bottom volume as `volume=max!` / `volume=min!`."""
    assert rotel.respond("volume_96") == b"volume=max!"
    assert rotel.respond("volume_1") == b"volume=min!"
    assert rotel.respond("volume_95") == b"volume=95!"


def test_runtime_reads_words_in_the_numbers_place():
    async def scenario() -> None:
        async with running(device_file("rotel_rc1570"), "preamp") as (engine, port):
            await eventually(lambda: "source" in engine.values)
            assert await engine.set("volume", 96) == 96  # volume_96! -> volume=max!
            port.change("preamp", "volume", 1)  # volume=min!, sent unasked
            await eventually(lambda: engine.values["volume"] == 1)

    asyncio.run(scenario())


def test_texts_that_say_their_own_length(rotel):
    """"must include 2 digit length of text string at beginning followed by "," and text
    string (no terminating character)": the command list's own examples, byte for byte."""
    assert rotel.respond("get_product_type") == b"product_type=07,RC-1570"
    assert rotel.respond("get_product_version") == b"product_version=06,V1.1.8"


def test_the_runtime_reads_a_counted_text_then_the_next_reply():
    """No "!" ends a counted text, and a "!" inside one is text: the count decides."""
    from pyiot.runtime.framing import framer_for

    framer = framer_for(device_file("rotel_rc1570").devices["RotelRC1570"])
    data = b"product_type=08,RDD!1580power=on!display_size=20,04!"
    lines = [line for i in range(len(data)) for line in framer.feed(data[i : i + 1])]
    assert lines == ["product_type=08,RDD!1580", "power=on", "display_size=20,04"]

    async def scenario() -> None:
        async with running(device_file("rotel_rc1570"), "preamp") as (engine, port):
            assert await engine.read("model") == "RC-1570"
            assert await engine.read("power") is False
            assert await engine.read("firmware") == "V1.1.8"

    asyncio.run(scenario())
