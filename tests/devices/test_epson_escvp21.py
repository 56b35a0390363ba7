"""devices/epson_escvp21.iot: the ESC/VP21 guide's exchanges, warm-up and cool-down.

Quoted from Epson's "ESC/VP21 Command User's Guide for Business Projectors": a set command is
answered by a colon; "Get command example: SOURCE?" -> "SOURCE = 21" (written SOURCE=21 on the
wire) then ":"; the null command (CR alone) -> ":"; an illegal command -> "ERR" CR ":".
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.lang import IotError, load
from pyiot.runtime.component import DeviceError
from pyiot.sim import simulator_for
from tests.devices.conftest import DEVICES, device_file, running
from tests.waiting import PATIENCE, eventually

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def projector(clock):
    return simulator_for(device_file("epson_escvp21"), clock=clock)


def test_null_command_get_command_and_illegal_command(projector):
    assert projector.respond("") == b":"
    assert projector.respond("PWR?") == b"PWR=00\r:"
    assert projector.respond("SOURCE?") == b"SOURCE=30\r:"
    assert projector.respond("PWR on") == b"ERR\r:"  # commands are upper case
    assert projector.respond("LAMP?") == b"ERR\r:"


def test_power_on_warms_up_for_40_seconds(projector, clock):
    assert projector.respond("PWR ON") == b""  # the colon comes when the lamp is lit
    assert projector.respond("PWR?") == b"PWR=02\r:"  # 02: warm-up
    clock.advance(39.5)
    assert projector.respond("PWR?") == b"PWR=02\r:"
    clock.advance(0.5)
    # PWR ON's colon, then the answer to PWR?.
    assert projector.respond("PWR?") == b":PWR=01\r:"  # 01: projecting


def test_the_colon_after_pwr_on_comes_when_the_warm_up_ends(projector, clock):
    """Note 1 of the guide: the colon after PWR ON comes once the lamp is lit; PWR OFF's at once."""
    assert projector.respond("PWR ON") == b""
    clock.advance(40)
    assert projector.respond("") == b"::"  # PWR ON's colon, then the null command's
    assert projector.respond("PWR OFF") == b":"
    assert projector.sims["projector"].mode == "cooling"


def test_the_simulated_colon_is_sent_on_time_and_the_runtime_waits_for_it():
    text = (DEVICES / "epson_escvp21.iot").read_text(encoding="utf-8")
    assert "after 40s" in text
    quick = load(text.replace("after 40s", "after 1s"), "epson_quick.iot")

    async def scenario() -> None:
        async with running(quick, "projector") as (engine, port):
            await eventually(lambda: engine.values.get("power") == "standby")
            setting = asyncio.create_task(engine.set("power", "on"))
            # The warm-up shows while the set waits for its colon.
            await eventually(lambda: engine.values.get("power") == "warming")
            assert port.sims["projector"].mode == "warming"
            assert await setting in ("warming", "on")
            assert port.sims["projector"].mode == "on"
            await eventually(lambda: engine.values.get("power") == "on")

    asyncio.run(scenario())


def test_source_and_mute_refused_until_the_lamp_is_lit(projector, clock):
    assert projector.respond("SOURCE A0") == b"ERR\r:"  # standby
    projector.respond("PWR ON")
    assert projector.respond("SOURCE A0") == b"ERR\r:"  # warming up
    assert projector.respond("MUTE ON") == b"ERR\r:"
    clock.advance(40)
    assert projector.respond("SOURCE A0") == b"::"  # PWR ON's colon, then SOURCE A0's
    assert projector.respond("SOURCE?") == b"SOURCE=A0\r:"
    assert projector.respond("MUTE ON") == b":"
    assert projector.respond("MUTE?") == b"MUTE=ON\r:"
    assert projector.respond("SOURCE 99") == b"ERR\r:"  # no such source


def test_power_off_cools_down_to_standby(projector, clock):
    projector.respond("PWR ON")
    clock.advance(40)
    assert projector.respond("PWR OFF") == b"::"  # PWR ON's colon, then PWR OFF's
    assert projector.respond("PWR?") == b"PWR=03\r:"  # 03: cooling down
    assert projector.respond("SOURCE 41") == b"ERR\r:"
    clock.advance(20)
    assert projector.respond("PWR?") == b"PWR=00\r:"
    assert projector.sims["projector"].mode == "standby"


def test_runtime_holds_a_source_change_through_the_warm_up():
    async def scenario() -> None:
        async with running(device_file("epson_escvp21"), "projector") as (engine, port):
            projector = port.sims["projector"]
            await eventually(lambda: engine.values.get("power") == "standby")
            # The colon comes when the warm-up is over: the set runs on while it lasts.
            setting = asyncio.create_task(engine.set("power", "on"))
            await eventually(lambda: engine.values.get("power") == "warming")
            assert projector.values["power"] == "warming"
            # While warming the source change is held by the runtime, not refused.
            held = asyncio.create_task(engine.set("source", "hdmi2"))
            await asyncio.sleep(0.05)
            assert not held.done()
            # The projector reports it is lit: the mode moves on and the command goes out.
            projector.change("power", "on")
            assert await engine.read("power") == "on"
            assert await asyncio.wait_for(held, PATIENCE) == "hdmi2"
            assert await setting in ("warming", "on")
            assert projector.values["source"] == "hdmi2"
            assert await engine.read("source") == "hdmi2"

    asyncio.run(scenario())


def test_runtime_reports_err_as_a_refusal():
    async def scenario() -> None:
        async with running(device_file("epson_escvp21"), "projector") as (engine, port):
            await eventually(lambda: engine.values.get("power") == "standby")
            # In standby the file rejects the source change before anything is sent.
            with pytest.raises(DeviceError, match="the lamp is off") as refused:
                await engine.set("source", "video")
            assert refused.value.refused
            assert port.unrecognised_lines == 0

    asyncio.run(scenario())


def test_hold_written_before_reject_still_refuses_while_off():
    text = (DEVICES / "epson_escvp21.iot").read_text(encoding="utf-8")
    reject = '        reject set source, mute unless on, warming "the lamp is off"\n'
    hold = "        hold set source, mute until on\n"
    assert reject + hold in text
    swapped = load(text.replace(reject + hold, hold + reject), "epson_swapped.iot")

    async def scenario() -> None:
        async with running(swapped, "projector") as (engine, _port):
            await eventually(lambda: engine.values.get("power") == "standby")
            with pytest.raises(DeviceError, match="the lamp is off"):
                await asyncio.wait_for(engine.set("source", "video"), 0.5)

    asyncio.run(scenario())


def test_answered_after_names_a_mode_of_the_file():
    text = (DEVICES / "epson_escvp21.iot").read_text(encoding="utf-8")
    with pytest.raises(IotError, match=r"epson\.iot:\d+:\d+: error: 'warmup' is no mode"):
        load(text.replace("set answered after warming", "set answered after warmup"), "epson.iot")


def test_a_set_answered_after_a_time(clock):
    """`set answered after 2s`: a device without modes answers its set once the time is up."""
    text = """
device Slow {
    framing line "\\r" prompt ":"
    property level: int 0..9 { query "L?" reply /^L=(?P<value>\\d)$/ set "L {value}"
                               set answered after 2s }
}
thing t { component slow: Slow on serial "/dev/null" }
"""
    port = simulator_for(load(text, "slow.iot"), clock=clock)
    assert port.respond("L 5") == b""
    assert port.respond("L?") == b"L=5\r:"  # taken at once, answered later
    clock.advance(2)
    assert port.respond("L?") == b":L=5\r:"
