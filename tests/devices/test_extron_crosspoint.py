"""devices/extron_crosspoint.iot: SIS ties and tie reads, four outputs on one port.

Quoted from Extron's CrossPoint / MAV SIS table: "1*3!" -> "Out03 In01 All" ("Tie input 1 video
and audio to output 3"); "Read video output tie X@%" -> "X!"; 1-, 2- and 3-digit entries;
"E10 - Invalid command". Responses end with CR LF.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.lang import IotError, IotFile, load
from pyiot.lang.values import BadValue
from pyiot.sim import simulator_for
from tests.devices.conftest import DEVICES, device_file, running
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


def _switcher(inputs: int) -> IotFile:
    """The shipped file with its rack's switcher swapped for one of `inputs` inputs."""
    source = (DEVICES / "extron_crosspoint.iot").read_text()
    return load(source.replace("inputs = 8", f"inputs = {inputs}"), "extron_1616.iot")


def test_the_input_range_is_the_models_own():
    """`int 0..{inputs}`: a CrossPoint 1616 takes input 16 where an 88 answers an error."""
    big = simulator_for(_switcher(16), "classroom")
    assert big.respond("16*3!") == b"Out03 In16 All\r\n"
    assert big.respond("17*3!") == b"E10\r\n"
    small = simulator_for(device_file("extron_crosspoint"), "classroom")
    assert small.respond("16*3!") == b"E10\r\n"


def test_runtime_takes_the_range_of_its_component():
    async def scenario() -> None:
        async with running(_switcher(16), "lobby") as (engine, port):
            assert await engine.set("input", 16) == 16
            assert port.sims["lobby"].values["input"] == 16
            with pytest.raises(BadValue, match="outside 0..16"):
                await engine.set("input", 17)

    asyncio.run(scenario())


def test_a_range_from_an_unknown_or_textual_parameter_is_an_error():
    base = 'device D(n: int, name: string) {{ property p: int 0..{{{top}}} {{ query "P?" reply /^(?P<value>\\d+)$/ }} }}'
    with pytest.raises(IotError, match=r"1:\d+: error: the range of 'p' ends at unknown parameter 'size' \(parameters: n, name\)"):
        load(base.format(top="size"))
    with pytest.raises(IotError, match="ends at 'name', a string, not a number"):
        load(base.format(top="name"))
    thing = base.format(top="n") + ' thing t { component c: D(n = -1, name = "x") on serial "/dev/null" }'
    with pytest.raises(IotError, match=r"parameter 'n' = -1 makes the range of 'p' empty \(0..-1\)"):
        load(thing)
