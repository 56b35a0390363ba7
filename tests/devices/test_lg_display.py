"""devices/lg_display.iot: LG's RS-232C protocol, whose acknowledgements end with the letter x.

Quoted from LG's manuals: "[Command1][Command2][ ][Set ID][ ][Data][Cr]" is answered "[Command2]
[ ][Set ID][ ][OK][Data][x]" ("ka 01 01" CR -> "a 01 OK01x", no CR after the x); "Transmit 'FF'
data to read status"; "if set ID is 10, it will send the '0', 'a'"; "Error Acknowledgement
[Command2][ ][Set ID][ ][NG][Data][x]", "Data 00: Illegal Code". No independent client is usable:
lgtv-rs232 0.3.0 on the package index installs no modules.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.lang import load
from pyiot.runtime.framing import framer_for
from pyiot.sim import simulator_for
from tests.devices.conftest import DEVICES, device_file, running

pytestmark = pytest.mark.timeout(60)

NAME = "lg_display"


def test_the_manuals_exchanges_byte_for_byte_over_tcp():
    """Bytes in, bytes out, over a real socket: each answer ends with x and nothing after it."""

    async def scenario() -> None:
        port = simulator_for(device_file(NAME))
        url = await port.serve_tcp()
        host, tcp = url.removeprefix("socket://").split(":")
        reader, writer = await asyncio.open_connection(host, int(tcp))
        answers = []
        try:
            for command in [b"ka 01 FF\r", b"ka 01 01\r", b"kf 01 1E\r", b"ke 01 00\r",
                            b"xb 01 91\r", b"kf 01 65\r", b"ka 01 ff\r"]:
                writer.write(command)
                answers.append(await reader.readuntil(b"x"))
        finally:
            writer.close()
            await port.close()
        assert answers == [
            b"a 01 OK00x",
            b"a 01 OK01x",  # "ka 01 01" turns the set on
            b"f 01 OK1ex",  # volume 30, in small hex characters
            b"e 01 OK00x",  # 0 is "Volume Mute On"
            b"b 01 OK91x",  # HDMI, input 2
            b"f 01 NG00x",  # 0x65 is above 64H: "Illegal Code"
            b"a 01 OK01x",
        ]
        assert port.sims["tv"].values == {
            "power": True, "volume": 30, "muted": True, "input": "hdmi2"
        }

    asyncio.run(scenario())


def test_set_id_ten_is_written_0a_and_replies_end_at_the_x():
    source = (DEVICES / f"{NAME}.iot").read_text().replace("id = 1)", "id = 10)")
    model = load(source, f"{NAME}.iot")
    port = simulator_for(model)
    assert port.respond("ka 0a 01") == b"a 0a OK01x"
    framer = framer_for(model.devices["LGDisplay"])
    assert framer.encode("ka 0a ff") == b"ka 0a ff\r"
    # Two acknowledgements in one read, then one split across reads: x ends each.
    assert framer.feed(b"a 0a OK01xf 0a OK") == ["a 0a OK01"]
    assert framer.feed(b"1ex") == ["f 0a OK1e"]


def test_runtime_reads_and_sets_every_property():
    async def scenario() -> None:
        async with running(device_file(NAME), "tv") as (engine, port):
            for name in engine.device.properties:
                await engine.read(name)
            assert engine.values == {
                "power": False, "volume": 0, "muted": False, "input": "dtv"
            }
            assert await engine.set("power", True) is True
            assert await engine.set("volume", 58) == 58  # 3a: a letter in the hex
            assert await engine.set("muted", True) is True
            assert await engine.set("input", "hdmi3") == "hdmi3"
            assert port.sims["tv"].values == {
                "power": True, "volume": 58, "muted": True, "input": "hdmi3"
            }

    asyncio.run(scenario())
