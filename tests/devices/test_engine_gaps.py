"""What the language says and the simulator plays, but the engine does not do yet.

Each runtime test here is a strict xfail naming the engine (pyiot/runtime/component.py): the
file and the simulator are right (their own tests pass), the engine must take the model field.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.transport import open_link
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)


def test_the_files_say_it():
    assert device_file("anthem_mrx").devices["AnthemMRX"].connect_commands == ["ECH1"]
    epson = device_file("epson_escvp21").devices["EpsonProjector"].properties["power"]
    assert (epson.timeout, epson.set_timeout) == (5.0, 100.0)
    coolmaster = device_file("coolmasternet").devices["CoolMasterNetUnit"]
    assert [r.source for r in coolmaster.groups["status"].reply_then] == ["^OK$"]
    assert coolmaster.greeting == ">"


@pytest.mark.xfail(
    strict=True,
    reason="engine: Device.connect_commands (`send \"ECH1\" on connect`) are not sent when the "
    "link opens (pyiot/runtime/component.py)",
)
def test_the_engine_sends_ech1_on_connecting():
    async def scenario() -> None:
        async with running(device_file("anthem_mrx"), "receiver") as (engine, port):
            await engine.read("power")
            assert port.sims["receiver"].values["txStatus"] is True

    asyncio.run(scenario())


@pytest.mark.xfail(
    strict=True,
    reason="engine: a group query's reply_then lines (`then /^OK$/`) are not taken as the end "
    "of its answer; the OK after ls2 is counted as an unrecognised line",
)
def test_the_engine_takes_the_exit_code_as_part_of_the_status():
    async def scenario() -> None:
        async with running(device_file("coolmasternet"), "bedroom") as (engine, _port):
            await engine.read("power")
            await engine.read("power")
            assert engine.status.unrecognised_lines == 0

    asyncio.run(scenario())


SLOW = """
device Slow {
    framing line "\\r" prompt ":"
    timeout 300ms
    retries 0
    property power: enum { standby = "00", on = "01" } {
        query "PWR?" reply /^PWR=(?P<value>\\d\\d)$/
        set "PWR {value}" with { on = "ON", standby = "OFF" }
        set timeout 30s
    }
}
thing t { component p: Slow on tcp "127.0.0.1:1" }
"""


@contextlib.asynccontextmanager
async def slow_projector():
    """A projector that answers PWR? at once and PWR ON's colon 1.5 s later (its lamp)."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while line := await reader.readuntil(b"\r"):
                if line == b"PWR?\r":
                    writer.write(b"PWR=00\r:")
                elif line == b"PWR ON\r":
                    loop.call_later(1.5, writer.write, b":")

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.mark.xfail(
    strict=True,
    raises=DeviceError,
    reason="engine: Property.set_timeout (`set timeout 100s`) is not used for sets; the "
    "property's 300 ms `timeout` fails PWR ON before the colon comes",
)
def test_the_engine_waits_the_set_timeout_for_a_set():
    async def scenario() -> None:
        model = load(SLOW, "slow.iot")
        program = Program.from_model(model)
        async with slow_projector() as number:
            engine = ComponentEngine(
                EngineConfig("p", model.devices["Slow"], program.machines["Slow"]),
                open_link("tcp", f"127.0.0.1:{number}"),
            )
            await engine.start()
            try:
                await eventually(lambda: engine.values.get("power") == "standby", timeout=10)
                assert await engine.set("power", "on") == "on"
            finally:
                await engine.stop()

    asyncio.run(scenario())
