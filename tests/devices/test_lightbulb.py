"""devices/lightbulb.iot: the pyIOT guide's bulb message P#B###, one line for two properties.

Quoted from the guide: "a lightbulb which sends a message that combines its power state and its
brightness setting using the format P#B###. The P# can be either P0 for power off or P1 for power
on. The B value is a three digit number from 0 to 100"; pyIOT's pattern ^P([0-1])B([0-9]{1,3})$.
The commands ("?", "P1", "B075") are the file's completion of the guide (see the file's header).
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
def bulb():
    return simulator_for(device_file("lightbulb"))


def test_the_message_carries_power_and_a_three_digit_brightness(bulb):
    assert bulb.respond("?") == b"P0B000\n"
    assert bulb.respond("P1") == b""
    assert bulb.respond("B075") == b""
    assert bulb.respond("?") == b"P1B075\n"
    bulb.respond("B100")
    assert bulb.respond("?") == b"P1B100\n"


def test_out_of_range_and_unknown_commands_change_nothing(bulb):
    bulb.respond("B101")
    bulb.respond("P2")
    assert bulb.respond("?") == b"P0B000\n"
    assert bulb.unrecognised_lines == 1  # P2; B101 is a known command with a bad value


def test_runtime_reads_both_values_from_one_message():
    async def scenario() -> None:
        async with running(device_file("lightbulb"), "bulb") as (engine, port):
            await eventually(lambda: "brightness" in engine.values)
            assert (engine.values["power"], engine.values["brightness"]) == (False, 0)
            assert await engine.set("brightness", 75) == 75
            assert await engine.set("power", True) is True
            # Written, nothing answers: at the bulb a moment later.
            await eventually(lambda: port.sims["bulb"].values == {"power": True, "brightness": 75})
            port.sims["bulb"].change("brightness", 40)  # dimmed at the wall
            assert await engine.read("brightness") == 40
            assert engine.values["power"] is True
            with pytest.raises(BadValue):
                await engine.set("brightness", 101)

    asyncio.run(scenario())


def test_runtime_takes_the_bulbs_own_message_unasked():
    async def scenario() -> None:
        async with running(device_file("lightbulb"), "bulb") as (engine, port):
            await eventually(lambda: "brightness" in engine.values)
            port.announce(["P1B050"])  # the bulb reports a change by itself
            await eventually(lambda: engine.values == {"power": True, "brightness": 50})

    asyncio.run(scenario())


def test_one_command_sets_power_and_brightness(bulb):
    """The bulb's message as a command: `P1B075` switches it on at 75 %."""
    assert bulb.respond("P1B075") == b""
    assert bulb.respond("?") == b"P1B075\n"
    bulb.respond("P0B101")  # out of range: neither value is taken
    assert bulb.respond("?") == b"P1B075\n"


def test_runtime_sets_both_in_one_command():
    async def scenario() -> None:
        async with running(device_file("lightbulb"), "bulb") as (engine, port):
            heard: list[str] = []
            respond = port.respond
            port.respond = lambda line: heard.append(line) or respond(line)
            assert await engine.set_together({"power": True, "brightness": 75}) == {
                "power": True,
                "brightness": 75,
            }
            # Nothing answers the bulb's commands: done once written, taken when it arrives.
            await eventually(lambda: "P1B075" in heard)
            assert [line for line in heard if line != "?"] == ["P1B075"]  # one command
            assert port.sims["bulb"].values == {"power": True, "brightness": 75}
            with pytest.raises(BadValue, match="no command sets"):
                await engine.set_together({"brightness": 10, "colour": 3})

    asyncio.run(scenario())
