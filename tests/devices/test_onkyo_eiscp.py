"""Onkyo eISCP: binary frames around ISCP messages, quoted from the ISCP v1.15 document."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyiot.compiler import compile_file
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.framing import PacketFramer
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.waiting import eventually

FILE = Path(__file__).resolve().parents[2] / "devices" / "onkyo_eiscp.iot"


def packet(message: bytes) -> bytes:
    """ "ISCP", header size 16, data size, version 1, 3 reserved bytes, then the message."""
    return (
        b"ISCP"
        + b"\x00\x00\x00\x10"
        + len(message).to_bytes(4, "big")
        + b"\x01\x00\x00\x00"
        + message
    )


@pytest.fixture
def program():
    return compile_file(FILE)


def test_power_on_is_the_documented_packet(program) -> None:
    device = program.model.devices["OnkyoReceiver"]
    framer = PacketFramer(device.packet, device.packet_end)
    # The byte list of a POWER_ON packet: 73;83;67;80;0;0;0;16;...;33;49;80;87;82;48;49;13
    assert framer.encode("!1PWR01") == packet(b"!1PWR01\r")
    assert list(framer.encode("!1PWR01"))[:8] == [73, 83, 67, 80, 0, 0, 0, 16]
    assert list(framer.encode("!1PWR01"))[-8:] == [33, 49, 80, 87, 82, 48, 49, 13]


def test_simulated_receiver_answers_in_packets(program) -> None:
    port = simulator_for(program.model)
    assert port.respond("!1PWRQSTN") == packet(b"!1PWR00\r")
    assert port.respond("!1PWR01") == packet(b"!1PWR01\r")
    # Master volume in two hex digits: 40 is 0x28.
    assert port.respond("!1MVL28") == packet(b"!1MVL28\r")
    assert port.sims["receiver"].values["volume"] == 40
    assert port.respond("!1SLI10") == packet(b"!1SLI10\r")
    assert port.sims["receiver"].values["input"] == "bddvd"


def test_receiver_replies_with_eof_marks_are_read(program) -> None:
    """Over Ethernet the receiver ends messages with [EOF] (0x1A) and often CR LF."""
    device = program.model.devices["OnkyoReceiver"]
    framer = PacketFramer(device.packet, device.packet_end)
    data = packet(b"!1PWR01\x1a\r\n") + packet(b"!1MVL2A\x1a")
    assert framer.feed(data) == ["!1PWR01", "!1MVL2A"]


def test_engine_drives_the_receiver_over_tcp(program) -> None:
    async def scenario() -> None:
        port = simulator_for(program.model)
        url = await port.serve_tcp()
        device = program.model.devices["OnkyoReceiver"]
        engine = ComponentEngine(
            EngineConfig("receiver", device, program.machines["OnkyoReceiver"]),
            open_link("tcp", url.removeprefix("socket://")),
        )
        await engine.start()
        try:
            await eventually(lambda: "power" in engine.values)
            assert engine.values["power"] is False
            assert await engine.set("power", True) is True
            assert await engine.set("volume", 42) == 42
            assert port.sims["receiver"].values["volume"] == 42
            assert await engine.read("volume") == 42
        finally:
            await engine.stop()
            await port.close()

    asyncio.run(scenario())
