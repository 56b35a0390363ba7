"""devices/keysight_34461a.iot: a Truevolt DMM over its SCPI socket, its guide and PyVISA.

Quoted from the guides: FUNC? answers a quoted string ("VOLT", "VOLT:AC"); a boolean query
returns "0" or "1"; an empty error queue answers `+0,"No error"`; a reading is
"SD.DDDDDDDDESDD<nl>". The independent client is PyVISA with the pyvisa-py backend on
`TCPIP::host::port::SOCKET`.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.lang.values import decode
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running

pytestmark = pytest.mark.timeout(60)

NAME = "keysight_34461a"


@pytest.fixture
def dmm():
    return simulator_for(device_file(NAME))


def test_function_is_a_quoted_string_and_commands_are_unanswered(dmm):
    assert dmm.respond("FUNC?") == b'"VOLT"\n'
    assert dmm.respond('FUNC "VOLT:AC"') == b""
    assert dmm.respond("FUNC?") == b'"VOLT:AC"\n'
    assert dmm.respond("VOLT:DC:RANG:AUTO ON") == b""
    assert dmm.respond("VOLT:DC:RANG:AUTO?") == b"1\n"
    assert dmm.respond("SYST:ERR?") == b'+0,"No error"\n'
    assert dmm.respond('FUNC "OHMS"') == b""  # no such function: not answered (error queued)
    assert dmm.sims["dmm"].values["function"] == "acVolts"


def test_a_reading_in_the_documented_format_is_read():
    """ "SD.DDDDDDDDESDD": the file's reply pattern takes the meter's own reading text."""
    prop = device_file(NAME).devices["KeysightTruevolt"].properties["reading"]
    found = prop.reply.compile().fullmatch("+1.23456789E+00")
    assert found is not None
    assert decode(prop, found.group("value")) == 1.23456789
    found = prop.reply.compile().fullmatch("-4.70000000E-03")
    assert decode(prop, found.group("value")) == -0.0047


def test_the_simulated_reading_has_the_documented_format(dmm):
    """ "SD.DDDDDDDDESDD": the reading's own format, `format "+.8E"` in the file."""
    assert dmm.respond("READ?") == b"+0.00000000E+00\n"


def test_runtime_reads_every_property_and_changes_the_function():
    async def scenario() -> None:
        async with running(device_file(NAME), "dmm") as (engine, port):
            meter = port.sims["dmm"]
            for name, prop in engine.device.properties.items():
                if prop.query:
                    await engine.read(name)
            assert engine.values["function"] == "dcVolts"
            assert engine.values["lastError"] == '+0,"No error"'
            assert await engine.set("function", "resistance") == "resistance"
            assert meter.values["function"] == "resistance"
            meter.change("reading", 1000.5)
            assert await engine.read("reading") == 1000.5
            assert await engine.set("dcAutoRange", True) is True

    asyncio.run(scenario())


def test_pyvisa_drives_the_simulated_meter():
    pyvisa = pytest.importorskip("pyvisa")
    pytest.importorskip("pyvisa_py")

    def session(host: str, port: int) -> dict[str, object]:
        manager = pyvisa.ResourceManager("@py")
        inst = manager.open_resource(
            f"TCPIP::{host}::{port}::SOCKET", read_termination="\n", write_termination="\n"
        )
        inst.timeout = 10_000
        try:
            inst.write('FUNC "FREQ"')
            return {
                "function": inst.query("FUNC?"),
                "reading": inst.query_ascii_values("READ?")[0],
                "error": inst.query("SYST:ERR?"),
            }
        finally:
            inst.close()
            manager.close()

    async def scenario() -> None:
        port = simulator_for(device_file(NAME))
        port.sims["dmm"].change("reading", 50.0)
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        try:
            seen = await asyncio.to_thread(session, host, int(number))
        finally:
            await port.close()
        assert seen == {"function": '"FREQ"', "reading": 50.0, "error": '+0,"No error"'}
        assert port.sims["dmm"].values["function"] == "frequency"

    asyncio.run(scenario())
