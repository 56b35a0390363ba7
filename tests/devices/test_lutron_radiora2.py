"""devices/lutron_radiora2.iot: the Lutron integration protocol's examples on a shared line.

Quoted from Lutron's integration protocol guide: "?OUTPUT,3,1<CR><LF>" requests a dimmer's
level, answered (and sent unasked "when a user makes a change to a dimmer locally") as
"~OUTPUT,3,1,90.00<CR><LF>"; "?GROUP,1,3" -> "~GROUP,1,3,3" for an occupied group. pylutron,
the client on the package index, logs in over telnet ("login:", "password:") before anything
else, which the simulator cannot say (docs/devices.md, item 15), so no client test here.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

NAME = "lutron_radiora2"


@pytest.fixture
def repeater():
    return simulator_for(device_file(NAME), "hall")


def test_the_guides_examples(repeater):
    repeater.sims["hall"].change("level", 90)
    assert repeater.respond("?OUTPUT,3,1") == b"~OUTPUT,3,1,90.00\r\nGNET> "
    assert repeater.respond("#OUTPUT,1,1,75") == b"GNET> "
    assert repeater.respond("?OUTPUT,1,1") == b"~OUTPUT,1,1,75.00\r\nGNET> "
    repeater.sims["upstairs"].change("occupancy", "occupied")
    assert repeater.respond("?GROUP,1,3") == b"~GROUP,1,3,3\r\nGNET> "


def test_a_local_change_is_reported_unasked(repeater):
    # "When a user makes a change to a dimmer locally ... ~OUTPUT,3,1,90.00<CR><LF>"
    assert repeater.sims["hall"].change("level", 90) == ["~OUTPUT,3,1,90.00"]


def test_a_level_with_a_fade_time(repeater):
    """Lutron's own example: `#OUTPUT,1,1,75,01:30` (level 75 % over 1 min 30 s)."""
    assert repeater.respond("#OUTPUT,1,1,75,01:30") == b"GNET> "
    assert repeater.sims["kitchen"].values["level"] == 75.0
    assert repeater.sims["kitchen"].values["fade"] == "01:30"
    assert repeater.sims["hall"].values["level"] == 0.0


def test_runtime_sends_a_level_with_its_fade_in_one_command():
    async def scenario() -> None:
        async with running(device_file(NAME), "kitchen") as (engine, port):
            heard: list[str] = []
            respond = port.respond
            port.respond = lambda line: heard.append(line) or respond(line)
            assert await engine.set_together({"level": 75, "fade": "01:30"}) == {
                "level": 75.0,
                "fade": "01:30",
            }
            assert "#OUTPUT,1,1,75.00,01:30" in heard
            assert port.sims["kitchen"].values["level"] == 75.0
            # The fade alone goes with the current level (the repeater has no fade command).
            assert await engine.set("fade", "5") == "5"
            assert "#OUTPUT,1,1,75.00,5" in heard
            assert port.sims["kitchen"].values["fade"] == "5"

    asyncio.run(scenario())


def test_runtime_sets_a_zone_and_hears_a_keypad_change():
    async def scenario() -> None:
        async with running(device_file(NAME), "kitchen") as (engine, port):
            assert await engine.read("level") == 0.0
            assert await engine.set("level", 75) == 75.0
            assert port.sims["kitchen"].values["level"] == 75.0
            assert port.sims["hall"].values["level"] == 0.0  # another zone on the line
            port.change("kitchen", "level", 40)  # someone at the wall dimmer
            await eventually(lambda: engine.values.get("level") == 40.0)
            port.change("hall", "level", 60)  # not this zone's report
            assert await engine.read("level") == 40.0

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("sets level, fade", "sets level, nope", "command sets 'nope', no property of"),
        ('{fade}" sets', '" sets', "command sets fade but has no {fade}"),
        ('{fade}" sets', '{fad}" sets', "unknown field '{fad}'"),
    ],
)
def test_a_joint_command_names_its_properties(before, after, message):
    from pyiot.lang import IotError, load
    from tests.devices.conftest import DEVICES

    text = (DEVICES / f"{NAME}.iot").read_text(encoding="utf-8")
    assert before in text
    with pytest.raises(IotError, match=r"lutron\.iot:\d+:\d+: error: " + re.escape(message)):
        load(text.replace(before, after), "lutron.iot")
