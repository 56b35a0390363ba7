"""devices/extron_crosspoint.iot: SIS ties and tie reads, four outputs on one port.

Quoted from Extron's CrossPoint / MAV SIS table: "1*3!" -> "Out03 In01 All" ("Tie input 1 video
and audio to output 3"); "Read video output tie X@%" -> "X!"; 1-, 2- and 3-digit entries;
"E10 - Invalid command". Responses end with CR LF.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.lang.values import BadValue
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def matrix():
    return simulator_for(device_file("extron_crosspoint"), "classroom")


def test_tie_and_read_tie(matrix):
    assert list(matrix.sims) == ["lobby", "boardroom", "classroom", "confidence"]
    assert matrix.respond("03%") == b"00\r\n"  # untied
    assert matrix.respond("01*03!") == b"Out03 In01 All\r\n"
    assert matrix.respond("03%") == b"01\r\n"
    assert matrix.respond("08*01!") == b"Out01 In08 All\r\n"
    assert matrix.respond("01%") == b"08\r\n"
    assert matrix.respond("03%") == b"01\r\n"


def test_invalid_commands_and_inputs(matrix):
    assert matrix.respond("03X") == b"E10\r\n"
    assert matrix.respond("09*03!") == b"E10\r\n"  # input 9 on an 8x8: the switcher says E01
    assert matrix.respond("01*05!") == b"E10\r\n"  # output 5 is no component here


def test_one_two_and_three_digit_entries_of_the_manual(matrix):
    """ "The matrix switchers support 1-, 2-, and 3-digit numeric entries (1*1!, 02*02&, or
    003*003%)"; the answer writes the output with two digits."""
    assert matrix.respond("1*3!") == b"Out03 In01 All\r\n"
    assert matrix.respond("03*2!") == b"Out02 In03 All\r\n"
    assert matrix.respond("004*003!") == b"Out03 In04 All\r\n"
    assert matrix.respond("3%") == b"04\r\n"
    assert matrix.respond("003%") == b"04\r\n"


def test_runtime_ties_and_reads_one_output():
    async def scenario() -> None:
        model = device_file("extron_crosspoint")
        async with running(model, "classroom") as (engine, port):
            await eventually(lambda: "input" in engine.values)
            assert engine.values["input"] == 0
            assert await engine.set("input", 1) == 1  # 01*03! -> Out03 In01 All
            assert port.sims["classroom"].values["input"] == 1
            assert port.sims["lobby"].values["input"] == 0
            port.sims["classroom"].change("input", 4)  # tied from the front panel
            assert await engine.read("input") == 4
            with pytest.raises(BadValue):
                await engine.set("input", 9)

    asyncio.run(scenario())


def test_commands_without_a_terminator_over_tcp():
    """SIS commands end with their own character: `1*3!` needs nothing after it. Two commands
    in one write are two commands; a CR LF after one (other controllers send it) is ignored."""
    from pyiot.runtime.framing import framer_for

    framer = framer_for(device_file("extron_crosspoint").devices["ExtronOutput"])
    assert framer.encode("01*03!") == b"01*03!"

    async def scenario() -> None:
        port = simulator_for(device_file("extron_crosspoint"), "classroom")
        url = await port.serve_tcp()
        host, tcp = url.removeprefix("socket://").split(":")
        reader, writer = await asyncio.open_connection(host, int(tcp))
        try:
            writer.write(b"2*3")  # not whole yet: no answer until the "!"
            writer.write(b"!")
            assert await reader.readuntil(b"\r\n") == b"Out03 In02 All\r\n"
            writer.write(b"3%1*3!\r\n3%")
            answers = [await reader.readuntil(b"\r\n") for _ in range(3)]
            assert answers == [b"02\r\n", b"Out03 In01 All\r\n", b"01\r\n"]
        finally:
            writer.close()
            await port.close()

    asyncio.run(scenario())
