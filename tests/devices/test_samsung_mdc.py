"""devices/samsung_mdc.iot: Samsung's binary MDC protocol (Multiple Display Control).

Quoted from Samsung's MDC documents: a command is "Header Command ID Data length Data
Checksum", the header 0xAA; "The checksum is calculated by adding up all values except the
header ... (11+FF+01+01=112), the first digit is removed", so "Power On & ID=0" (ID 0 is written
0xFF) is `AA 11 FF 01 01 12`; the Ack is "0xAA 0xFF ID 3 'A' 0x11 "Power"", the Nak "0xAA 0xFF
ID 3 'N' 0x11 "ERR"". The independent client is python-samsung-mdc (vgavro), whose CLI and
library speak MDC over TCP port 1515.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from pyiot.lang import load
from pyiot.runtime.component import DeviceError
from pyiot.runtime.framing import PacketFramer, framer_for
from pyiot.sim import simulator_for
from tests.devices.conftest import DEVICES, device_file, running

pytestmark = pytest.mark.timeout(60)

NAME = "samsung_mdc"


def mdc(command: int, display: int, data: bytes, reply: bool = False) -> bytes:
    """A frame as the MDC document lays it out, the checksum summed by hand here."""
    body = bytes([0xFF, display, len(data) + 2]) if reply else bytes([command, display, len(data)])
    body += (bytes([ord("A"), command]) if reply else b"") + data
    return b"\xaa" + body + bytes([sum(body) % 256])


async def exchange(port, frames: list[bytes]) -> list[bytes]:
    """Send each frame over real TCP and read the reply frame it gets (length from byte 3)."""
    host, tcp = port.url.removeprefix("socket://").split(":")
    reader, writer = await asyncio.open_connection(host, int(tcp))
    replies = []
    try:
        for frame in frames:
            writer.write(frame)
            head = await reader.readexactly(4)
            replies.append(head + await reader.readexactly(head[3] + 1))
    finally:
        writer.close()
    return replies


def test_the_manuals_power_on_example_byte_for_byte():
    """`AA 11 FF 01 01 12` ("Power On & ID=0") is acknowledged `AA FF FF 03 'A' 11 01` + sum."""

    async def scenario() -> None:
        port = simulator_for(device_file(NAME))
        await port.serve_tcp()
        try:
            replies = await exchange(
                port,
                [
                    bytes.fromhex("AA 11 FF 00 10"),  # Get power, data length 0
                    bytes.fromhex("AA 11 FF 01 01 12"),  # the manual's example
                    bytes.fromhex("AA 11 FF 00 10"),
                ],
            )
        finally:
            await port.close()
        assert replies == [
            bytes.fromhex("AA FF FF 03 41 11 00 53"),
            bytes.fromhex("AA FF FF 03 41 11 01 54"),
            bytes.fromhex("AA FF FF 03 41 11 01 54"),
        ]
        assert replies == [mdc(0x11, 0xFF, b"\x00", True), *[mdc(0x11, 0xFF, b"\x01", True)] * 2]

    asyncio.run(scenario())


def test_volume_mute_and_input_frames(tmp_path):
    port = simulator_for(device_file(NAME))
    assert port.respond("\x12\xff\x32") == mdc(0x12, 0xFF, b"\x32", True)  # volume 50
    assert port.respond("\x12\xff\x0d") == mdc(0x12, 0xFF, b"\x0d", True)  # 13 is a CR byte
    assert port.respond("\x13\xff\x01") == mdc(0x13, 0xFF, b"\x01", True)
    assert port.respond("\x14\xff\x23") == mdc(0x14, 0xFF, b"\x23", True)  # HDMI2
    assert port.sims["display"].values == {
        "power": False, "volume": 13, "mute": True, "input": "hdmi2"
    }
    # Volume 0~100: 101 is refused with a Nak of the volume command.
    nak = port.respond("\x12\xff\x65")
    assert nak[:6] == bytes.fromhex("AA FF FF 03 4E 12")
    assert nak[-1] == sum(nak[1:-1]) % 256
    # A command the file lacks (0x00, the status) is refused with a whole Nak: 'N', two bytes.
    assert port.respond("\x00\xff")[3:5] == bytes.fromhex("03 4E")


def test_runtime_sends_the_documented_frames():
    """The runtime's frames for display ID 1: the forum's `AA 11 01 01 01 14` for Power On."""
    source = (DEVICES / f"{NAME}.iot").read_text().replace("id = 255", "id = 1")
    model = load(source, f"{NAME}.iot")
    framer = framer_for(model.devices["SamsungMDC"])
    assert framer.encode("\x11\x01\x01") == bytes.fromhex("AA 11 01 01 01 14")
    assert framer.encode("\x11\x01") == bytes.fromhex("AA 11 01 00 12")
    # A reply's header is 0xAA 0xFF; its payload text is the ID, then 'A', r-CMD, values.
    assert framer.feed(mdc(0x12, 0x01, b"\x00", True)) == ["\x01A\x12\x00"]
    # A reply with a wrong checksum is dropped, not read.
    bad = bytearray(mdc(0x12, 0x01, b"\x05", True))
    bad[-1] ^= 0xFF
    assert framer.feed(bytes(bad)) == []
    assert framer.dropped == 1


def test_runtime_reads_and_sets_every_property():
    async def scenario() -> None:
        async with running(device_file(NAME), "display") as (engine, port):
            for name in engine.device.properties:
                await engine.read(name)
            assert engine.values == {
                "power": False, "volume": 0, "mute": False, "input": "hdmi1"
            }
            assert await engine.set("power", True) is True
            assert await engine.set("volume", 10) == 10  # 0x0A, a LF byte inside a frame
            assert await engine.set("mute", True) is True
            assert await engine.set("input", "displayport") == "displayport"
            assert port.sims["display"].values == {
                "power": True, "volume": 10, "mute": True, "input": "displayport"
            }

    asyncio.run(scenario())


def test_a_nak_fails_the_request_at_once():
    """A display that refuses (Nak: 'N', r-CMD, "ERR") fails the set without a retry."""
    from pyiot.compiler import Program
    from pyiot.runtime.component import ComponentEngine, EngineConfig
    from pyiot.runtime.transport import open_link

    received: list[str] = []

    async def display(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands = PacketFramer("\xaa{head:2}{size:1}{payload}{sum8:1:}", strip="")
        while data := await reader.read(4096):
            for command in commands.feed(data):
                received.append(str(command))
                nak = bytes([0xFF, 0xFF, 3, ord("N"), ord(str(command)[0]), 0x01])
                writer.write(b"\xaa" + nak + bytes([sum(nak) % 256]))

    async def scenario() -> None:
        model = device_file(NAME)
        program = Program.from_model(model)
        server = await asyncio.start_server(display, "127.0.0.1", 0)
        host, tcp = server.sockets[0].getsockname()[:2]
        engine = ComponentEngine(
            EngineConfig(
                "display",
                model.devices["SamsungMDC"],
                program.machines["SamsungMDC"],
                args={"id": 255},
            ),
            open_link("serial", f"socket://{host}:{tcp}"),
        )
        await engine.start()
        try:
            with pytest.raises(DeviceError):
                await engine.set("volume", 20)
        finally:
            await engine.stop()
            server.close()
            await server.wait_closed()
        assert received.count("\x12\xff\x14") == 1  # volume 20 (0x14), sent once: no retry

    asyncio.run(scenario())


def test_python_samsung_mdc_drives_the_simulated_display():
    """python-samsung-mdc builds its own frames and checks the replies' header, ID and sum."""
    samsung_mdc = pytest.importorskip("samsung_mdc")
    commands = samsung_mdc.commands

    async def scenario() -> None:
        port = simulator_for(device_file(NAME))
        url = await port.serve_tcp()
        try:
            async with samsung_mdc.MDC(url.removeprefix("socket://"), timeout=30) as client:
                assert await client.power(0xFF) == (commands.POWER.POWER_STATE.OFF,)
                await client.power(0xFF, [commands.POWER.POWER_STATE.ON])
                assert await client.volume(0xFF, [42]) == (42,)
                await client.mute(0xFF, [commands.MUTE.MUTE_STATE.ON])
                state = commands.INPUT_SOURCE.INPUT_SOURCE_STATE
                await client.input_source(0xFF, [state.HDMI2])
                assert await client.input_source(0xFF) == (state.HDMI2,)
                assert await client.volume(0xFF) == (42,)
        finally:
            await port.close()
        assert port.sims["display"].values == {
            "power": True, "volume": 42, "mute": True, "input": "hdmi2"
        }

    asyncio.run(scenario())


def test_the_samsung_mdc_cli_drives_the_simulated_display():
    """The `samsung-mdc` command line of python-samsung-mdc, as a user would run it."""
    pytest.importorskip("samsung_mdc")

    async def cli(target: str, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "samsung_mdc", "--timeout", "30", target, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        assert process.returncode == 0, out
        return out.decode()

    async def scenario() -> None:
        port = simulator_for(device_file(NAME))
        url = await port.serve_tcp()
        target = "255@" + url.removeprefix("socket://")
        try:
            assert "POWER_STATE.OFF" in await cli(target, "power")
            assert "POWER_STATE.ON" in await cli(target, "power", "on")
            assert (await cli(target, "volume", "33")).split()[-1] == "33"
            assert "HDMI2" in await cli(target, "input_source", "hdmi2")
        finally:
            await port.close()
        assert port.sims["display"].values["input"] == "hdmi2"
        assert port.sims["display"].values["volume"] == 33

    asyncio.run(scenario())
