"""devices/coolmasternet.iot: CoolMasterNet's ASCII I/F, its PRM examples and pycoolmasternet.

Quoted from the CoolMasterNet PRM (Rev 0.7): a command is answered by its lines, the exit code
"OK", and the prompt ">"; ls2 prints "L1.102 ON 16.9C 27.0C High Cool OK - 0"; an unknown UID
is "No UID"; "temp 101 20" -> "OK". The independent client is pycoolmasternet-async (the
library behind Home Assistant's CoolMasterNet integration). It waits for the ">" the gateway
sends when a connection opens, which the simulator cannot send (docs/devices.md, item 15), and
ends its commands with LF alone, which the gateway takes but the simulator (CR LF, as the file
says) does not (item 17): the test puts a relay in front of the simulator that supplies the
">" and writes LF as CR LF, and shows the bare simulator failing the same client.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running

pytestmark = pytest.mark.timeout(60)

NAME = "coolmasternet"


@pytest.fixture
def gateway():
    return simulator_for(device_file(NAME), "lounge")


def test_the_prm_exchanges(gateway):
    lounge = gateway.sims["lounge"]
    for prop, value in [("power", True), ("setpoint", 25.7), ("roomTemperature", 27.2),
                        ("fanSpeed", "low"), ("mode", "cool"), ("demand", True)]:
        lounge.change(prop, value)
    # The PRM's "ls L2.101" line, for this file's unit L1.101, then "OK" and ">".
    assert gateway.respond("ls2 L1.101") == b"L1.101 ON 25.7C 27.2C Low Cool OK - 1\r\nOK\r\n>"
    assert gateway.respond("temp L1.101 20") == b"OK\r\n>"
    assert gateway.respond("temp L1.101 20.5") == b"OK\r\n>"
    assert lounge.values["setpoint"] == 20.5
    assert gateway.respond("heat L1.101") == b"OK\r\n>"
    assert gateway.respond("fspeed L1.101 h") == b"OK\r\n>"
    assert gateway.respond("off L1.101") == b"OK\r\n>"
    assert gateway.respond("ls2 L1.101") == b"L1.101 OFF 20.5C 27.2C High Heat OK - 1\r\nOK\r\n>"
    assert gateway.respond("ls2 L1.109") == b"No UID\r\n>"  # "1 No UID UID not found"


def test_a_status_ends_with_its_exit_code(gateway):
    """ "ls2" is answered by the status line, then the exit code OK (`then /^OK$/`)."""
    assert gateway.respond("ls2 L1.101").endswith(b" 0\r\nOK\r\n>")


def test_runtime_reads_the_status_and_sets_the_unit():
    async def scenario() -> None:
        async with running(device_file(NAME), "bedroom") as (engine, port):
            await engine.read("power")
            assert engine.values["power"] is False
            assert engine.values["mode"] == "cool"
            assert engine.values["filterSign"] is False
            assert await engine.set("power", True) is True
            assert await engine.set("setpoint", 22.5) == 22.5
            assert await engine.set("mode", "heat") == "heat"
            assert await engine.set("fanSpeed", "auto") == "auto"
            bedroom = port.sims["bedroom"]
            assert (bedroom.values["power"], bedroom.values["setpoint"]) == (True, 22.5)
            assert port.sims["lounge"].values["power"] is False  # the other unit untouched
            bedroom.change("roomTemperature", 24.3)
            await engine.read("roomTemperature")
            assert engine.values["roomTemperature"] == 24.3

    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def greeting_relay(target: str):
    """A TCP relay that sends the gateway's connection prompt ">" and then forwards both ways,
    the client's LF line ends written as CR LF."""
    host, port = target.removeprefix("socket://").rsplit(":", 1)

    async def pipe(reader, writer, crlf: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(4096):
                if crlf:
                    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                writer.write(data)
                await writer.drain()
        writer.close()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b">")
        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def test_pycoolmasternet_drives_the_simulated_gateway():
    cm = pytest.importorskip("pycoolmasternet_async.coolmasternet")

    async def scenario() -> None:
        port = simulator_for(device_file(NAME), "lounge")
        url = await port.serve_tcp()
        try:
            async with greeting_relay(url) as relay_port:
                bridge = cm.CoolMasterNet("127.0.0.1", relay_port, read_timeout=10)
                unit, uid = await cm.CoolMasterNetUnit.create(bridge, "L1.101")
                assert (uid, unit.is_on, unit.mode, unit.thermostat) == ("L1.101", False, "cool", 16.0)
                unit = await unit.turn_on()
                unit = await unit.set_thermostat(23.5)
                unit = await unit.set_mode("heat")
                assert (unit.is_on, unit.thermostat, unit.mode) == (True, 23.5, "heat")
                assert unit.temperature_unit == "celsius"
                assert unit.error_code is None and unit.clean_filter is False
        finally:
            await port.close()
        assert port.sims["lounge"].values["mode"] == "heat"

    asyncio.run(scenario())


def test_pycoolmasternet_against_the_bare_simulator():
    """The gateway's ">" on connecting is the file's `greeting`: no relay needed."""
    cm = pytest.importorskip("pycoolmasternet_async.coolmasternet")

    async def scenario() -> None:
        port = simulator_for(device_file(NAME), "lounge")
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        try:
            bridge = cm.CoolMasterNet(host, int(number), read_timeout=1)
            await cm.CoolMasterNetUnit.create(bridge, "L1.101")
        finally:
            await port.close()

    asyncio.run(scenario())


def test_commands_ended_by_cr_lf_cr_or_lf_are_all_heard():
    """The gateway takes CR LF, CR alone or LF alone after a command (`accepts`)."""

    async def scenario() -> None:
        port = simulator_for(device_file(NAME), "lounge")
        url = await port.serve_tcp()
        host, _, number = url.removeprefix("socket://").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(number))
        try:
            assert await asyncio.wait_for(reader.readuntil(b">"), 30) == b">"  # the greeting
            for end in (b"\r\n", b"\r", b"\n"):
                writer.write(b"on L1.101" + end)
                assert await asyncio.wait_for(reader.readuntil(b">"), 30) == b"OK\r\n>"
            writer.write(b"ls2 L1.101\r")
            status = await asyncio.wait_for(reader.readuntil(b">"), 30)
            assert status.startswith(b"L1.101 ON ")
        finally:
            writer.close()
            await port.close()

    asyncio.run(scenario())
