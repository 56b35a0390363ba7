"""A simulated device speaking binary frames (Onkyo eISCP), to the engine over real TCP."""

from __future__ import annotations

import asyncio

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for

RECEIVER = r"""
device Onkyo {
    transport tcp
    framing packet "ISCP\x00\x00\x00\x10{size:4be}\x01\x00\x00\x00{payload}" end "\r"
    timeout 500ms
    property power: bool {
        query "!1PWRQSTN" reply /^!1PWR(?P<value>0[01])$/ set "!1PWR{value}"
        map { "01" = true, "00" = false }
    }
}
thing den { component receiver: Onkyo on tcp "192.168.1.50:60128" }
"""


def frame(payload: bytes) -> bytes:
    return (
        b"ISCP"
        + (16).to_bytes(4, "big")
        + len(payload).to_bytes(4, "big")
        + b"\x01\x00\x00\x00"
        + payload
    )


def test_simulator_answers_framed_queries_with_frames() -> None:
    sim = simulator_for(load(RECEIVER, "onkyo.iot"))
    assert sim.respond("!1PWRQSTN") == frame(b"!1PWR00\r")
    assert sim.respond("!1PWR01") == frame(b"!1PWR01\r")


def test_engine_and_simulator_over_tcp() -> None:
    async def scenario() -> None:
        program = Program.from_model(load(RECEIVER, "onkyo.iot"))
        sim = simulator_for(program.model)
        url = await sim.serve_tcp()
        device = program.model.devices["Onkyo"]
        engine = ComponentEngine(
            "receiver",
            device,
            program.machines["Onkyo"],
            open_link("tcp", url.removeprefix("socket://")),
        )
        await engine.start()
        try:
            for _ in range(300):
                if "power" in engine.values:
                    break
                await asyncio.sleep(0.01)
            assert engine.values["power"] is False
            assert await engine.set("power", True) is True
            assert sim.sims["receiver"].values["power"] is True
        finally:
            await engine.stop()
            await sim.close()

    asyncio.run(scenario())
