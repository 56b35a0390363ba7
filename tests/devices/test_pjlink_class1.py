"""devices/pjlink_class1.iot: PJLink Class 1 exchanges, warm-up, and the pypjlink2 client.

Quoted from the PJLink Class 1 tables makers reproduce: "%1POWR 1" CR is answered
"%1POWR=OK" CR; POWR ? answers 0 standby, 1 on, 2 cooling, 3 warming up; AVMT ? answers 30
(video and audio mute off); errors are "%1xxxx=ERR1".."ERR4" with xxxx the command itself.
The independent client is pypjlink2 (`pypjlink.Projector`), which speaks PJLink over a socket;
the file's driver also meets the exchange recorded in pypjlink's own tests (greeting included).
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.devices.conftest import Clock, device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

NAME = "pjlink_class1"


@pytest.fixture
def projector(clock):
    return simulator_for(device_file(NAME), clock=clock)


def test_the_standard_exchanges(projector, clock):
    assert projector.respond("%1POWR ?") == b"%1POWR=0\r"  # standby
    assert projector.respond("%1POWR 1") == b"%1POWR=OK\r"
    assert projector.respond("%1POWR ?") == b"%1POWR=3\r"  # warming up
    clock.advance(60)
    assert projector.respond("%1POWR ?") == b"%1POWR=1\r"  # power on
    assert projector.respond("%1AVMT ?") == b"%1AVMT=30\r"  # video+audio mute off
    assert projector.respond("%1AVMT 31") == b"%1AVMT=OK\r"
    assert projector.respond("%1AVMT ?") == b"%1AVMT=31\r"
    assert projector.respond("%1INPT 31") == b"%1INPT=OK\r"
    assert projector.respond("%1INPT ?") == b"%1INPT=31\r"
    assert projector.respond("%1ERST ?") == b"%1ERST=000000\r"
    assert projector.respond("%1POWR 0") == b"%1POWR=OK\r"
    assert projector.respond("%1POWR ?") == b"%1POWR=2\r"  # cooling


def test_input_while_in_standby_is_err3_of_inpt(projector):
    """Each refusal names its command and its reason: ERR3 while off, ERR2 for no such input."""
    assert projector.respond("%1INPT 31") == b"%1INPT=ERR3\r"
    assert projector.respond("%1AVMT 31") == b"%1AVMT=ERR3\r"
    assert projector.respond("%1INPT 99") == b"%1INPT=ERR2\r"


def test_runtime_reads_every_property_and_powers_on():
    async def scenario() -> None:
        clock = Clock()
        async with running(device_file(NAME), "projector", clock=clock) as (engine, port):
            sim = port.sims["projector"]
            for name, prop in engine.device.properties.items():
                if prop.query or prop.group:
                    await engine.read(name)
            assert engine.values["power"] == "standby"
            assert engine.values["errorStatus"] == "000000"
            assert engine.values["lampOn"] is False
            with pytest.raises(DeviceError, match="ERR3"):
                await engine.set("input", "digital1")
            assert await engine.set("power", "on") == "warming"
            clock.advance(60)
            assert await engine.read("power") == "on"
            assert await engine.set("input", "digital2") == "digital2"
            assert sim.values["input"] == "digital2"

    asyncio.run(scenario())


def test_pypjlink2_drives_the_simulated_projector():
    pypjlink = pytest.importorskip("pypjlink")

    def session(host: str, port: int, steps) -> list[object]:
        # The simulator greets each connection with "PJLINK 0" (the file's `greeting`), which
        # authenticate() reads before the first command.
        with pypjlink.Projector.from_address(host, port, timeout=10) as proj:
            proj.authenticate()
            return [step(proj) for step in steps]

    async def scenario() -> None:
        clock = Clock()
        port = simulator_for(device_file(NAME), clock=clock)
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        try:
            before = await asyncio.to_thread(
                session,
                host,
                int(number),
                [
                    lambda p: p.get_power(),
                    lambda p: p.set_power("on"),
                    lambda p: p.get_power(),
                    lambda p: p.get_errors(),
                    lambda p: p.get_lamps(),
                ],
            )
            clock.advance(60)
            after = await asyncio.to_thread(
                session,
                host,
                int(number),
                [
                    lambda p: p.get_power(),
                    lambda p: p.set_input("DIGITAL", 2),
                    lambda p: p.get_input(),
                    lambda p: p.set_mute(pypjlink.MUTE_VIDEO | pypjlink.MUTE_AUDIO, True),
                    lambda p: p.get_mute(),
                ],
            )
        finally:
            await port.close()
        assert before[0] == "off" and before[2] == "warm-up"
        assert set(before[3].values()) == {"ok"}
        assert before[4] == [(0, False)]
        assert after[0] == "on"
        assert after[2] == ("DIGITAL", 2)
        assert after[4] == (True, True)
        assert port.sims["projector"].values["input"] == "digital2"

    asyncio.run(scenario())


def test_runtime_against_pypjlinks_recorded_projector():
    """pypjlink's own tests record a projector without a password as b"PJLINK 0\\r" on
    connecting, then b"%1POWR=1\\r" to a power query: the file's driver, against a server that
    plays those bytes, ignores the greeting and reads the power."""
    recorded = {b"%1POWR ?": b"%1POWR=1\r"}
    heard: list[bytes] = []

    async def projector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"PJLINK 0\r")
        buffer = b""
        while data := await reader.read(4096):
            buffer += data
            while b"\r" in buffer:
                line, buffer = buffer.split(b"\r", 1)
                heard.append(line)
                writer.write(recorded.get(line, b"%1" + line[2:6] + b"=ERR3\r"))
        writer.close()

    async def scenario() -> None:
        model = device_file(NAME)
        program = Program.from_model(model)
        server = await asyncio.start_server(projector, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        engine = ComponentEngine(
            EngineConfig(
                "projector",
                program.model.devices["PJLinkProjector"],
                program.machines["PJLinkProjector"],
                args={},
                modes=program.modes.get("PJLinkProjector"),
            ),
            open_link("tcp", f"{host}:{port}"),
        )
        await engine.start()
        try:
            await eventually(lambda: engine.status.online)
            assert await engine.read("power") == "on"
            assert b"%1POWR ?" in heard
        finally:
            await engine.stop()
            server.close()

    asyncio.run(scenario())
