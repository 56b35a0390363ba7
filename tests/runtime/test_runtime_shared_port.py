"""Six amplifier zones on one line: one port opened once, fair turns, commands first."""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.sharing import COMMAND, POLL, PortTurns, SharedLink
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)

AMP = r"""
device Zone(zone: int) "one zone of a six-zone amplifier" {
    framing line "\r\n" prompt "#" echo
    timeout 300ms retries 1
    query status "?{zone}" every 50ms
        reply /^>(?P<zone>{zone})(?P<power>\d\d)(?P<volume>\d\d)$/
    property power: bool from status.power set "<{zone}PR{value}" { map { "01" = true, "00" = false } }
    property volume: int 0..38 from status.volume set "<{zone}VO{value:02d}"
}
thing house {
    port bus: serial "/dev/ttyUSB0"
    component z11: Zone(zone = 11) on bus
    component z12: Zone(zone = 12) on bus
    component z13: Zone(zone = 13) on bus
    component z14: Zone(zone = 14) on bus
    component z15: Zone(zone = 15) on bus
    component z16: Zone(zone = 16) on bus
    shadow { z11.* in z11  z12.* in z12  z13.* in z13  z14.* in z14  z15.* in z15  z16.* in z16 }
}
"""


def test_turns_go_to_commands_first_then_in_order() -> None:
    async def scenario() -> list[str]:
        turns = PortTurns()
        order: list[str] = []

        async def take(name: str, priority: int) -> None:
            async with turns.turn(priority):
                order.append(name)
                await asyncio.sleep(0.01)

        async with turns.turn(POLL):  # the line is busy while the others line up
            tasks = [
                asyncio.create_task(take("poll a", POLL)),
                asyncio.create_task(take("poll b", POLL)),
            ]
            await asyncio.sleep(0)
            tasks.append(asyncio.create_task(take("command", COMMAND)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["command", "poll a", "poll b"]


def test_six_zones_share_one_line_fairly() -> None:
    async def scenario() -> None:
        program = Program.from_model(load(AMP, "house.iot"))
        port = simulator_for(program.model)
        url = await port.serve_tcp()
        shared = SharedLink(open_link("serial", url))
        device = program.model.devices["Zone"]
        engines = [
            ComponentEngine(
                EngineConfig(name, device, program.machines["Zone"], args={"zone": int(name[1:])}),
                shared.view(),
                shared.turns,
            )
            for name in ("z11", "z12", "z13", "z14", "z15", "z16")
        ]
        for engine in engines:
            await engine.start()
        try:
            await eventually(
                lambda: all("volume" in e.values for e in engines), what="every zone polled"
            )
            # One TCP connection for all six: the port was opened once.
            assert len(port._writers) == 1
            # Every zone keeps polling: nobody is starved ...
            port.sims["z14"].change("volume", 21)
            await eventually(lambda: engines[3].values["volume"] == 21, what="zone 14 polled")
            # ... and a command goes through among the polls of all six (that it goes ahead
            # of them is test_turns_go_to_commands_first_then_in_order; how fast, bench/).
            assert await engines[4].set("volume", 30) == 30
            assert port.sims["z15"].values["volume"] == 30
            assert engines[0].values["volume"] == 0  # zone 11 untouched
        finally:
            for engine in engines:
                await engine.stop()
            await port.close()

    asyncio.run(scenario())


def test_replies_for_another_zone_are_not_counted_as_unrecognised() -> None:
    """Every zone hears every zone's echo and reply: only a line that no zone takes is
    unrecognised, and it counts once for the port, not once per zone."""

    async def scenario() -> None:
        program = Program.from_model(load(AMP, "house.iot"))
        port = simulator_for(program.model)
        url = await port.serve_tcp()
        shared = SharedLink(open_link("serial", url))
        device = program.model.devices["Zone"]
        engines = [
            ComponentEngine(
                EngineConfig(name, device, program.machines["Zone"], args={"zone": int(name[1:])}),
                shared.view(),
                shared.turns,
            )
            for name in ("z11", "z12", "z13", "z14", "z15", "z16")
        ]
        for engine in engines:
            await engine.start()
        try:
            # Each zone polls every 50 ms: after a few rounds every zone has heard the echoes
            # and replies of the five others many times over.
            for engine in engines:
                await eventually(lambda e=engine: "volume" in e.values, what=f"{engine.name}")
            assert await engines[2].set("volume", 9) == 9
            assert [e.status.unrecognised_lines for e in engines] == [0] * 6
            port.announce(["garbled!"])  # noise on the line: nobody's
            await eventually(lambda: sum(e.status.unrecognised_lines for e in engines) == 1)
            assert await engines[0].set("volume", 3) == 3  # it goes on working
            assert sum(e.status.unrecognised_lines for e in engines) == 1
        finally:
            for engine in engines:
                await engine.stop()
            await port.close()

    asyncio.run(scenario())
