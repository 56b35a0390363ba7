"""devices/monoprice_blackbird.iot: the Blackbird 8x8 matrix against pyblackbird's recordings
and pyblackbird itself.

The exchanges are those recorded in pyblackbird's own tests (tests/test_blackbird.py of the
library behind Home Assistant's Blackbird integration) and the Blackbird RS-232 guide's system
commands ("/%Lock;" -> "System Locked!"). The independent client is pyblackbird, opening the
simulator as a serial URL (`socket://host:port`).
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.devices.conftest import component_of, device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

NAME = "monoprice_blackbird"


@pytest.fixture
def matrix():
    return simulator_for(device_file(NAME), "out1")


def test_recorded_exchanges(matrix):
    matrix.sims["out1"].change("input", 2)
    # Recorded: b'Status1.\r' -> b'AV: 02->01\r\nIR: 02->01\r\n'.
    assert matrix.respond("Status1.") == b"AV: 02->01\r\nIR: 02->01\r\n"
    assert matrix.respond("1@.") == b"01 Open.\r"
    assert matrix.respond("1$.") == b"01 Closed.\r"
    assert matrix.respond("PWON.") == b"PWON\r"
    assert matrix.respond("%9962.") == b"PWON \r"
    assert matrix.respond("PWOFF.") == b"PWOFF\r"
    # The guide's system commands.
    assert matrix.respond("/%Lock;") == b"System Locked!\r"
    assert matrix.respond("/%Unlock;") == b"System Unlock!\r"


def test_routing_answers_for_the_output_it_changed(matrix):
    # The routing's answer is the AV line of the status, ended the same way.
    assert matrix.respond("5B3.") == b"AV: 05->03\r\n"
    assert matrix.sims["out3"].values["input"] == 5
    assert matrix.sims["out1"].values["input"] == 1
    assert matrix.respond("Status3.") == b"AV: 05->03\r\nIR: 05->03\r\n"


def test_status_has_the_ir_line_too(matrix):
    """Replies ended two ways by kind: Status lines end CR LF, the others CR alone."""
    matrix.sims["out1"].change("input", 2)
    assert matrix.respond("Status1.") == b"AV: 02->01\r\nIR: 02->01\r\n"
    assert matrix.respond("1@.") == b"01 Open.\r"
    assert matrix.respond("%9962.") == b"PWON \r"


def test_runtime_routes_an_output_on_the_shared_line():
    async def scenario() -> None:
        async with running(device_file(NAME), "out3") as (engine, port):
            for name, prop in engine.device.properties.items():
                if prop.query:
                    await engine.read(name)
            assert engine.values["input"] == 1
            assert await engine.set("input", 7) == 7
            assert port.sims["out3"].values["input"] == 7
            assert port.sims["out2"].values["input"] == 1  # the other outputs are untouched
            assert await engine.set("enabled", False) is False
            # Another controller routing output 3 is heard as a report.
            port.change("out3", "input", 4)
            assert await engine.read("input") == 4

    asyncio.run(scenario())


def test_runtime_reads_the_system_component():
    async def scenario() -> None:
        async with running(device_file(NAME), "system") as (engine, port):
            assert await engine.read("power") == "on"
            assert await engine.read("locked") is False
            assert await engine.set("locked", True) is True
            assert await engine.set("power", "off") == "off"
            assert port.sims["system"].values["power"] == "off"

    asyncio.run(scenario())


def _served(steps):
    """Run pyblackbird's synchronous client against the served simulator, in a thread."""
    pyblackbird = pytest.importorskip("pyblackbird")

    async def scenario():
        port = simulator_for(device_file(NAME), "out1")
        url = await port.serve_tcp()
        try:
            client = await asyncio.to_thread(pyblackbird.get_blackbird, url)
            return port, await asyncio.to_thread(lambda: [step(client) for step in steps])
        finally:
            await port.close()

    return asyncio.run(scenario())


def test_pyblackbird_routes_and_locks_the_simulated_matrix():
    port, seen = _served(
        [
            lambda c: c.set_zone_source(3, 6),
            lambda c: c.set_zone_power(3, False),
            lambda c: c.lock_front_buttons(),
            lambda c: c.lock_status(),
            lambda c: c.unlock_front_buttons(),
            lambda c: c.lock_status(),
        ]
    )
    assert seen[3] is True and seen[5] is False
    assert port.sims["out3"].values["input"] == 6
    assert port.sims["out3"].values["enabled"] is False


def test_pyblackbird_reads_a_zone_status():
    """pyblackbird reads a status of at least 20 bytes: the AV line and the IR line (`then`)."""
    _port, seen = _served([lambda c: c.zone_status(1)])
    assert seen[0].av == 1


# Bytes recorded in pyblackbird's tests (tests/test_blackbird.py), request -> answer.
RECORDED = {
    b"Status1.": b"AV: 02->01\r\nIR: 02->01\r\n",
    b"%9962.": b"PWON \r",
    b"PWON.": b"PWON\r",
    b"PWOFF.": b"PWOFF\r",
}


async def _recorded_matrix(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buffer = b""
    while data := await reader.read(4096):
        buffer += data
        while b"\r" in buffer:
            line, buffer = buffer.split(b"\r", 1)
            writer.write(RECORDED.get(line, b""))
    writer.close()


def _engine_on(component: str, url: str):
    model = device_file(NAME)
    program = Program.from_model(model)
    comp = component_of(model, component)
    return ComponentEngine(
        EngineConfig(
            component,
            program.model.devices[comp.device],
            program.machines[comp.device],
            args=comp.args,
        ),
        open_link("serial", url),
    )


def test_runtime_reads_pyblackbirds_recorded_answers():
    """The driver against pyblackbird's recorded bytes: the status answer's CR LF line ends
    (the file frames with CR) and its IR line do not stop it reading output 1's input."""

    async def scenario() -> None:
        server = await asyncio.start_server(_recorded_matrix, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        out1 = _engine_on("out1", f"socket://{host}:{port}")
        system = _engine_on("system", f"socket://{host}:{port}")
        await out1.start()
        await system.start()
        try:
            await eventually(lambda: out1.status.online and system.status.online)
            assert await out1.read("input") == 2
            assert await system.read("power") == "on"
            assert await system.set("power", "off") == "off"
        finally:
            await out1.stop()
            await system.stop()
            server.close()

    asyncio.run(scenario())


def test_the_runtime_reads_both_ends_as_line_ends():
    """A reply's own end joins the framing's: nothing is left over to start the next line."""
    from pyiot.runtime.framing import framer_for

    framer = framer_for(device_file(NAME).devices["BlackbirdOutput"])
    data = b"AV: 02->01\r\nIR: 02->01\r\n01 Open.\r"
    assert [line for i in range(len(data)) for line in framer.feed(data[i : i + 1])] == [
        "AV: 02->01",
        "IR: 02->01",
        "01 Open.",
    ]


@pytest.mark.parametrize(
    ("framing", "end", "message"),
    [
        ('framing line "\\r"', '""', "a reply's end must not be empty"),
        ('framing packet "\\x02{size:1}{payload}"', '"\\r\\n"', "is for lines, not packets"),
    ],
)
def test_a_bad_reply_end_is_a_compile_error(framing, end, message):
    from pyiot.lang import IotError, load

    source = f"""device D {{
    {framing}
    property p: bool {{ query "P?" reply /^P(?P<value>[01])$/ end {end} map {{ "1" = true, "0" = false }} }}
}}
"""
    with pytest.raises(IotError) as caught:
        load(source, "d.iot")
    assert message in str(caught.value)
    assert caught.value.line == 3
