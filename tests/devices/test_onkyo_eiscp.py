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
    """Replies end with [EOF] (0x1A) and CR LF, not with the commands' CR."""
    port = simulator_for(program.model)
    assert port.respond("!1PWRQSTN") == packet(b"!1PWR00\x1a\r\n")
    assert port.respond("!1PWR01") == packet(b"!1PWR01\x1a\r\n")
    # Master volume in two hex digits: 40 is 0x28.
    assert port.respond("!1MVL28") == packet(b"!1MVL28\x1a\r\n")
    assert port.sims["receiver"].values["volume"] == 40
    assert port.respond("!1SLI10") == packet(b"!1SLI10\x1a\r\n")
    assert port.sims["receiver"].values["input"] == "bddvd"


def test_na_is_answered_under_the_commands_own_code(program) -> None:
    """N/A names the command it refuses: a volume of 0x70 (112) is past 100."""
    port = simulator_for(program.model)
    assert port.respond("!1MVL70") == packet(b"!1MVLN/A\x1a\r\n")
    assert port.respond("!1SLI99") == packet(b"!1SLIN/A\x1a\r\n")
    assert port.sims["receiver"].values["volume"] == 0


def test_runtime_fails_a_set_on_its_own_na(program) -> None:
    """The runtime takes `!1MVLN/A` as the refusal of a volume request."""
    from pyiot.runtime.protocol import DeviceProtocol

    async def scenario() -> None:  # a request holds a future of the running loop
        device = program.model.devices["OnkyoReceiver"]
        protocol = DeviceProtocol(device, {})
        volume = protocol.read_request(device.properties["volume"])
        assert protocol.is_error("!1MVLN/A", volume)
        assert protocol.is_error("!1MVLN/A")

    asyncio.run(scenario())


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


def test_onkyo_eiscp_drives_the_simulated_receiver(program) -> None:
    """onkyo-eiscp parses each reply as "!1" + message + EOF (optionally CR LF) and fails on
    anything else: it reads the simulator's replies, and N/A under the command's own code."""
    eiscp = pytest.importorskip("eiscp")

    async def scenario() -> list:
        port = simulator_for(program.model)
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)

        def session() -> list:
            receiver = eiscp.eISCP(host, int(number))
            try:
                return [
                    receiver.raw("PWRQSTN"),
                    eiscp.core.iscp_to_command(receiver.raw("PWR01")),
                    receiver.raw("MVL28"),
                    receiver.raw("MVLQSTN"),
                    receiver.raw("SLI10"),
                    receiver.raw("MVL70"),
                ]
            finally:
                receiver.disconnect()

        try:
            return await asyncio.to_thread(session)
        finally:
            await port.close()

    answers = asyncio.run(scenario())
    assert answers[0] == "PWR00"
    assert answers[1] == ("system-power", "on")
    assert answers[2:5] == ["MVL28", "MVL28", "SLI10"]
    assert answers[5] == "MVLN/A"
