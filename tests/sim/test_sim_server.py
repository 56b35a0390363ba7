"""The simulator on a real TCP port and a real pseudo-terminal, spoken to with raw bytes."""

from __future__ import annotations

import asyncio
import os

import pytest

from pyiot.lang import load
from pyiot.sim import simulator_for
from pyiot.sim.server import device_options
from tests.sim.conftest import ROOT

pytestmark = pytest.mark.timeout(20)


async def _read_until(read, expected_lines: int, terminator: bytes = b"\n") -> bytes:
    data = b""
    while data.count(terminator) < expected_lines:
        data += await asyncio.wait_for(read(), timeout=3)
    return data


def test_tcp_port_answers_the_relay_protocol(relay_model):
    async def scenario() -> None:
        port = simulator_for(relay_model)
        url = await port.serve_tcp()
        assert url.startswith("socket://127.0.0.1:")
        host, _, number = url.removeprefix("socket://").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(number))

        def read():
            return reader.read(4096)

        try:
            writer.write(b"RELAY?\n")
            assert await _read_until(read, 1) == b"RELAYOFF\n"
            # A command split over two writes, then two commands in one write.
            writer.write(b"RELA")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"YON\nRELAY?\n")
            assert await _read_until(read, 2) == b"RELAYON\nRELAYON\n"
            writer.write(b"garbage\xff\xfe\n")
            assert await _read_until(read, 1) == b"ERR\n"
            assert port.unrecognised_lines == 1
            # A change at the device is announced to the connected client.
            port.change("relay1", "relayState", False)
            assert await _read_until(read, 1) == b"RELAYOFF\n"
            assert port.sims["relay1"].values["relayState"] is False
        finally:
            writer.close()
            await port.close()

    asyncio.run(scenario())


def test_tcp_port_serves_several_clients(relay_model):
    async def scenario() -> None:
        port = simulator_for(relay_model)
        url = await port.serve_tcp()
        host, _, number = url.removeprefix("socket://").rpartition(":")
        first = await asyncio.open_connection(host, int(number))
        second = await asyncio.open_connection(host, int(number))
        try:
            first[1].write(b"RELAYON\n")
            assert await _read_until(lambda: first[0].read(4096), 1) == b"RELAYON\n"
            second[1].write(b"RELAY?\n")
            assert await _read_until(lambda: second[0].read(4096), 1) == b"RELAYON\n"
            port.change("relay1", "relayState", False)
            for reader, _ in (first, second):
                assert await _read_until(lambda r=reader: r.read(4096), 1) == b"RELAYOFF\n"
        finally:
            first[1].close()
            second[1].close()
            await port.close()

    asyncio.run(scenario())


def test_closing_the_tcp_port_disconnects_clients(relay_model):
    async def scenario() -> None:
        port = simulator_for(relay_model)
        url = await port.serve_tcp()
        host, _, number = url.removeprefix("socket://").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(number))
        await port.close()
        assert await asyncio.wait_for(reader.read(4096), timeout=3) == b""
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection(host, int(number))

    asyncio.run(scenario())


def test_pty_answers_the_relay_protocol(relay_model):
    async def scenario() -> None:
        port = simulator_for(relay_model)
        path = await port.serve_pty()
        assert path.startswith("/dev/")
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        loop = asyncio.get_running_loop()
        incoming: asyncio.Queue[bytes] = asyncio.Queue()
        loop.add_reader(fd, lambda: incoming.put_nowait(os.read(fd, 4096)))
        try:
            os.write(fd, b"RELAY?\n")
            assert await _read_until(incoming.get, 1) == b"RELAYOFF\n"
            os.write(fd, b"RELAYON\n")
            assert await _read_until(incoming.get, 1) == b"RELAYON\n"
            assert port.sims["relay1"].values["relayState"] is True
            os.write(fd, b"NONSENSE\n")
            assert await _read_until(incoming.get, 1) == b"ERR\n"
            port.change("relay1", "relayState", False)
            assert await _read_until(incoming.get, 1) == b"RELAYOFF\n"
        finally:
            loop.remove_reader(fd)
            os.close(fd)
            await port.close()

    asyncio.run(scenario())


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, number = url.removeprefix("socket://").rpartition(":")
    return await asyncio.open_connection(host, int(number))


async def _read_until_prompt(reader: asyncio.StreamReader, prompt: bytes, count: int = 1) -> bytes:
    data = b""
    while data.count(prompt) < count:
        data += await asyncio.wait_for(reader.read(4096), timeout=3)
    return data


def test_tcp_port_speaks_esc_vp21_with_its_prompt(epson_model):
    async def scenario() -> None:
        port = simulator_for(epson_model)
        reader, writer = await _connect(await port.serve_tcp())
        try:
            writer.write(b"\r")  # is anyone there?
            assert await _read_until_prompt(reader, b":") == b":"
            writer.write(b"PWR?\rSOURCE?\r")
            assert await _read_until_prompt(reader, b":", 2) == b"PWR=00\r:SOURCE=30\r:"
            writer.write(b"PWR ON\r")
            assert await _read_until_prompt(reader, b":") == b":"
            writer.write(b"SOURCE A0\r")
            assert await _read_until_prompt(reader, b":") == b"ERR\r:"
            port.change("projector", "source", "video")  # announced, then the prompt
            assert await _read_until_prompt(reader, b":") == b"SOURCE=41\r:"
        finally:
            writer.close()
            await port.close()

    asyncio.run(scenario())


def test_mode_timer_fires_while_the_line_is_quiet():
    """`pyiot simulate` logs a warm-up's end when it happens, not at the next poll."""
    model = load(
        r"""
        device Lamp {
            framing line "\r" prompt ":"
            property power: enum { off = "0", on = "1", warming = "2" } {
                query "P?" reply /^P=(?P<value>\d)$/ set "P {value}"
            }
            modes from power { off -> warming : on set power = on  warming -> on : after 200ms }
        }
        """,
        "lamp.iot",
    )

    async def scenario() -> None:
        port = simulator_for(model)
        reader, writer = await _connect(await port.serve_tcp())
        changed = asyncio.Event()
        lamp = port.sims["Lamp"]
        lamp.on_change = lambda _c, _p, value: value == "on" and changed.set()
        try:
            writer.write(b"P 1\r")
            assert await _read_until_prompt(reader, b":") == b":"
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(changed.wait(), timeout=3)
            assert asyncio.get_running_loop().time() - started >= 0.15
            assert lamp.mode == "on"
        finally:
            writer.close()
            await port.close()

    asyncio.run(scenario())


def test_pty_echoes_monoprice_commands(monoprice_model):
    async def scenario() -> None:
        port = simulator_for(monoprice_model, "patio")
        path = await port.serve_pty()
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        loop = asyncio.get_running_loop()
        incoming: asyncio.Queue[bytes] = asyncio.Queue()
        loop.add_reader(fd, lambda: incoming.put_nowait(os.read(fd, 4096)))

        async def exchange(command: bytes) -> bytes:
            os.write(fd, command)
            data = b""
            while not data.endswith(b"#"):
                data += await asyncio.wait_for(incoming.get(), timeout=3)
            return data

        try:
            assert await exchange(b"<12VO20\r\n") == b"<12VO20\r\n#"
            assert await exchange(b"?12\r\n") == b"?12\r\n#>1200000000200000000100\r\n#"
            assert port.sims["patio"].values["volume"] == 20
            assert port.sims["kitchen"].values["volume"] == 0
        finally:
            loop.remove_reader(fd)
            os.close(fd)
            await port.close()

    asyncio.run(scenario())


def test_connect_hint_names_what_points_every_component_at_the_simulator(house_model) -> None:
    """The `--device` options `pyiot simulate` prints: the declared port when the components
    share one (six zones move together), else every component of the simulated line."""
    zones = load((ROOT / "devices" / "monoprice_mpr6zhmaut.iot").read_text(), "m.iot")
    names = list(zones.things["wholeHouse"].components)
    assert device_options(zones, names, "socket://h:1") == ["--device amp=socket://h:1"]
    # Two components on one serial line with no `port`: both are named.
    assert device_options(house_model, ["kitchen", "lights"], "/dev/pts/3") == [
        "--device kitchen=/dev/pts/3",
        "--device lights=/dev/pts/3",
    ]
    assert device_options(house_model, ["patio"], "socket://h:2") == ["--device patio=socket://h:2"]
    # A port name two things use is qualified, as `pyiot run` asks.
    text = """
device D { property p: int { query "P?" reply /^P(?P<value>\\d)$/ } }
thing a {
    port bus: serial "/dev/ttyUSB0"  component x: D on bus  component y: D on bus
    shadow { x.* in x  y.* in y }
}
thing b { port bus: serial "/dev/ttyUSB1"  component z: D on bus }
"""
    model = load(text, "two.iot")
    assert device_options(model, ["x", "y"], "U") == ["--device a.bus=U"]
    assert device_options(model, ["z"], "U") == ["--device b.bus=U"]
