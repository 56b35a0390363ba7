"""devices/nad_amplifier.iot: NAD's "Main." commands; every answer in the command's own format.

Quoted from the NAD RS-232 protocol as used for the T 758: "Main.Volume? --> response is
Main.Volume=-30", "Main.Source=3 --> response is Main.Source=3"; Main.Power=On turns it on;
Main.Volume+ / Main.Volume- step the volume.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def nad():
    return simulator_for(device_file("nad_amplifier"))


def test_set_and_query_answer_in_the_same_format(nad):
    assert nad.respond("Main.Power?") == b"Main.Power=Off\r"
    assert nad.respond("Main.Power=On") == b"Main.Power=On\r"
    assert nad.respond("Main.Volume=-30") == b"Main.Volume=-30\r"
    assert nad.respond("Main.Volume?") == b"Main.Volume=-30\r"
    assert nad.respond("Main.Source=3") == b"Main.Source=3\r"
    assert nad.respond("Main.Source?") == b"Main.Source=3\r"
    assert nad.respond("Main.Mute=On") == b"Main.Mute=On\r"
    assert nad.respond("Main.Mute?") == b"Main.Mute=On\r"


def test_values_outside_the_protocol_are_ignored(nad):
    assert nad.respond("Main.Power=Maybe") == b""
    assert nad.respond("Main.Source=0") == b""
    assert nad.respond("Main.Volume?") == b"Main.Volume=0\r"


def test_volume_step_answers_the_new_volume(nad):
    nad.respond("Main.Volume=-30")
    assert nad.respond("Main.Volume+") == b"Main.Volume=-29\r"
    assert nad.respond("Main.Volume-") == b"Main.Volume=-30\r"
    nad.respond("Main.Volume=10")
    assert nad.respond("Main.Volume+") == b"Main.Volume=10\r"  # the top of the range


def test_runtime_sets_reads_and_steps():
    async def scenario() -> None:
        async with running(device_file("nad_amplifier"), "amp") as (engine, port):
            amp = port.sims["amp"]
            await eventually(lambda: "source" in engine.values)
            assert await engine.set("power", True) is True
            assert await engine.set("volume", -30) == -30
            assert await engine.set("source", 3) == 3
            assert (amp.values["power"], amp.values["volume"], amp.values["source"]) == (
                True,
                -30,
                3,
            )
            amp.change("mute", True)
            assert await engine.read("mute") is True
            # The volume button: sent and done (nothing answers it but the new volume).
            assert await engine.set("volumeStep", "up") == "up"
            # The simulated amplifier applies the step and answers the new volume.
            await eventually(lambda: engine.values["volume"] == -29)
            assert amp.values["volume"] == -29

    asyncio.run(scenario())


def test_nad_receiver_drives_the_simulated_amplifier_over_a_pty():
    """nad_receiver (Home Assistant's NAD library) writes `\\rMain.Power?\\r` to a serial port
    and reads up to CR: it drives the file's simulator on a pseudo-terminal."""
    nad_receiver = pytest.importorskip("nad_receiver")

    async def scenario() -> None:
        port = simulator_for(device_file("nad_amplifier"))
        path = await port.serve_pty()

        def session():
            amp = nad_receiver.NADReceiver(path)
            try:
                return [
                    amp.main_power("?"),
                    amp.main_power("=", "On"),
                    amp.main_volume("=", "-30"),
                    amp.main_volume("+"),
                    amp.main_source("=", "3"),
                    amp.main_mute("=", "On"),
                ]
            finally:
                amp.transport.ser.close()

        try:
            answers = await asyncio.to_thread(session)
        finally:
            await port.close()
        assert answers == ["Off", "On", -30.0, -29.0, 3, "On"]
        assert port.sims["amp"].values["volume"] == -29

    asyncio.run(scenario())


class FakeNadLink:
    """A pyiot link onto nad_receiver's own fake C 356BEE (`Fake_NAD_C_356BE_Transport`): each
    command line written is answered the way that fake says, `\\rMESSAGE\\r`."""

    def __init__(self, fake) -> None:
        self.fake = fake
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.buffer = b""

    async def open(self) -> None:
        pass

    async def read(self) -> bytes:
        return await self.replies.get()

    async def write(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\r")
        for line in lines:
            answer = self.fake.communicate(line.decode()) if line else ""
            if answer:
                self.replies.put_nowait(b"\r" + answer.encode() + b"\r")

    async def close(self) -> None:
        self.replies.put_nowait(b"")


def test_the_driver_against_nad_receivers_fake_amplifier():
    """pyiot's NAD driver against the fake device nad_receiver ships: power and mute, the
    properties that fake models as the C 356BEE does (it reports no volume, names sources)."""
    fakes = pytest.importorskip("nad_receiver.nad_fake_transport")
    from pyiot.compiler import Program
    from pyiot.runtime.component import ComponentEngine, EngineConfig

    async def scenario() -> None:
        model = device_file("nad_amplifier")
        program = Program.from_model(model)
        fake = fakes.Fake_NAD_C_356BE_Transport()
        engine = ComponentEngine(
            EngineConfig("amp", model.devices["NadAmplifier"], program.machines["NadAmplifier"]),
            FakeNadLink(fake),
        )
        await engine.start()
        try:
            assert await engine.read("power") is False
            assert await engine.set("power", True) is True
            assert await engine.set("mute", True) is True
            assert await engine.read("mute") is True
            assert fake._toggle["Power"] is True and fake._toggle["Mute"] is True
        finally:
            await engine.stop()

    asyncio.run(scenario())


def test_a_cr_before_and_after_each_command():
    """"send <CR> before and after each command": pyiot's bytes, and the simulator over TCP
    taking `\\rMain.Power?\\r` as one command (the empty line before it is no command)."""
    from pyiot.runtime.framing import framer_for

    framer = framer_for(device_file("nad_amplifier").devices["NadAmplifier"])
    assert framer.encode("Main.Power=On") == b"\rMain.Power=On\r"

    async def scenario() -> None:
        port = simulator_for(device_file("nad_amplifier"))
        url = await port.serve_tcp()
        host, tcp = url.removeprefix("socket://").split(":")
        reader, writer = await asyncio.open_connection(host, int(tcp))
        try:
            writer.write(b"\rMain.Power=On\r\rMain.Power?\r")
            answers = [await reader.readuntil(b"\r") for _ in range(2)]
        finally:
            writer.close()
            await port.close()
        assert answers == [b"Main.Power=On\r", b"Main.Power=On\r"]
        assert port.unrecognised_lines == 0

    asyncio.run(scenario())
