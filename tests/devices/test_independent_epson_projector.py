"""devices/epson_escvp21.iot against epson-projector, the library Home Assistant's Epson
integration uses, over its serial connection (`Projector(url, type="serial")`).

On opening the line it sends the ESC/VP21 hello, a bare CR, and waits for the projector's
`:`; each request is then `PWR?` CR and everything up to the next `:` is the answer
(`PWR=01`), each command `PWR ON` CR and its colon, which comes when the warm-up ends. The simulated projector is served on a
pseudo-terminal, a real serial line as pyserial opens it.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import Clock, device_file
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def test_epson_projector_drives_the_simulated_projector():
    epson = pytest.importorskip("epson_projector")

    async def scenario() -> None:
        clock = Clock()
        port = simulator_for(device_file("epson_escvp21"), clock=clock)
        path = await port.serve_pty()
        sim = port.sims["projector"]
        first = epson.Projector(host=path, type="serial")
        try:
            assert await first.get_power() == "00"  # standby
            # The colon after PWR ON comes when the warm-up ends (the library waits up to
            # 40 s for it): the projector warms meanwhile, then the clock moves on.
            power_on = asyncio.ensure_future(first.send_command("PWR ON"))
            await eventually(lambda: sim.values["power"] == "warming")
            assert not power_on.done()
            clock.advance(40)
            assert await power_on == ""  # the colon alone: done
        finally:
            first.close()
        # The library then holds itself busy for the warm-up (40 s of its own clock): a new
        # connection, as Home Assistant's next start would, asks the projector.
        second = epson.Projector(host=path, type="serial")
        try:
            assert await second.get_power() == "01"
            assert await second.send_command("SOURCE A0") == ""
            assert sim.values["source"] == "hdmi2"
        finally:
            second.close()
        third = epson.Projector(host=path, type="serial")
        try:
            assert await third.get_property("SOURCE") == "A0"
            assert await third.get_property("MUTE") == "OFF"
        finally:
            third.close()
            await port.close()

    asyncio.run(scenario())
