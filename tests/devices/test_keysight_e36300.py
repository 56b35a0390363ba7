"""devices/keysight_e36300.iot: a SCPI bench supply on TCP 5025, its guide and PyVISA.

Quoted from Keysight's guides: commands and responses end with a newline; only queries are
answered ("Only query commands ... will instruct the instrument to send a response message");
a boolean query returns "0" or "1"; an empty error queue answers `+0,"No error"`. The
independent client is PyVISA with the pure-Python pyvisa-py backend, opening
`TCPIP::host::port::SOCKET` as it would open the instrument.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program
from pyiot.lang.values import BadValue, coerce
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.sharing import SharedLink
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

NAME = "keysight_e36300"


@pytest.fixture
def psu():
    return simulator_for(device_file(NAME))


def test_queries_are_answered_and_commands_are_not(psu):
    assert psu.respond("SYST:ERR?") == b'+0,"No error"\n'
    assert psu.respond("OUTP? (@1)") == b"0\n"
    assert psu.respond("OUTP ON,(@1)") == b""  # a command: no response message
    assert psu.respond("OUTP? (@1)") == b"1\n"
    assert psu.respond("VOLT 5.5,(@1)") == b""
    assert float(psu.respond("VOLT? (@1)")) == 5.5
    # Above output 1's 6 V: not taken, and (SCPI) not answered either.
    assert psu.respond("VOLT 12.5,(@1)") == b""
    assert float(psu.respond("VOLT? (@1)")) == 5.5
    assert psu.respond("CURR 0.25,(@1)") == b""
    assert float(psu.respond("CURR? (@1)")) == 0.25
    # A command the instrument cannot parse is not answered (it queues -113).
    assert psu.respond("VOLTS 3,(@1)") == b""
    # A channel the instrument does not have is nobody's (an E36312A has three outputs).
    assert psu.respond("OUTP? (@4)") == b""


def test_numbers_are_answered_in_nr3(psu):
    """The supply answers numbers in NR3 (`format "+.8E"`) and takes them in any form."""
    psu.respond("VOLT 5,(@1)")
    assert psu.respond("VOLT? (@1)") == b"+5.00000000E+00\n"
    assert psu.respond("VOLT 1.25E+01,(@2)") == b""
    assert psu.respond("VOLT? (@2)") == b"+1.25000000E+01\n"


def test_the_simulated_supply_names_its_model(psu):
    assert psu.respond("*IDN?").split(b",")[:2] == [b"Keysight Technologies", b"E36312A"]


def test_runtime_reads_every_property_and_switches_the_output_on():
    async def scenario() -> None:
        async with running(device_file(NAME), "out1") as (engine, port):
            supply = port.sims["out1"]
            for name, prop in engine.device.properties.items():
                if prop.query:
                    await engine.read(name)
            assert engine.values["output"] is False
            assert engine.values["lastError"] == '+0,"No error"'
            assert await engine.set("voltage", 5.0) == 5.0
            assert await engine.set("output", True) is True
            assert supply.values["output"] is True
            assert supply.values["voltage"] == 5.0
            # A change made at the front panel is seen by the next poll or read.
            supply.change("currentLimit", 0.5)
            assert await engine.read("currentLimit") == 0.5
            await eventually(lambda: engine.state in ("idle", "offline"))

    asyncio.run(scenario())


def test_pyvisa_drives_the_simulated_supply():
    pyvisa = pytest.importorskip("pyvisa")
    pytest.importorskip("pyvisa_py")

    def session(host: str, port: int) -> dict[str, str]:
        manager = pyvisa.ResourceManager("@py")
        inst = manager.open_resource(
            f"TCPIP::{host}::{port}::SOCKET", read_termination="\n", write_termination="\n"
        )
        inst.timeout = 10_000
        try:
            seen = {"error": inst.query("SYST:ERR?")}
            inst.write("VOLT 3.3,(@1)")
            inst.write("CURR 0.1,(@1)")
            inst.write("OUTP ON,(@1)")
            seen["volt"] = inst.query("VOLT? (@1)")
            seen["curr"] = inst.query("CURR? (@1)")
            seen["outp"] = inst.query("OUTP? (@1)")
            return seen
        finally:
            inst.close()
            manager.close()

    async def scenario() -> None:
        port = simulator_for(device_file(NAME))
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        try:
            seen = await asyncio.to_thread(session, host, int(number))
        finally:
            await port.close()
        assert seen["error"] == '+0,"No error"'
        assert float(seen["volt"]) == 3.3
        assert float(seen["curr"]) == 0.1
        assert seen["outp"] == "1"
        assert port.sims["out1"].values["output"] is True

    asyncio.run(scenario())


def test_three_outputs_of_one_instrument_answer_their_own_channel(psu):
    """The E36312A's outputs are three components of one port; each answers its channel list,
    and the answers name no channel."""
    assert list(psu.sims) == ["out1", "out2", "out3"]
    assert psu.respond("VOLT 12,(@2)") == b""
    assert psu.respond("VOLT? (@2)") == b"+1.20000000E+01\n"
    assert psu.respond("VOLT? (@1)") == b"+0.00000000E+00\n"
    assert psu.respond("VOLT? (@3)") == b"+0.00000000E+00\n"
    # Each output's own range (`float 0..{volts}`): output 1 stops at 6 V, output 3 takes 25.
    assert psu.respond("VOLT 25,(@3)") == b""
    assert psu.sims["out3"].values["voltage"] == 25.0
    one = psu.sims["out1"].device.properties["voltage"].type
    assert coerce(one, 6.0) == 6.0
    with pytest.raises(BadValue, match="outside 0..6"):
        coerce(one, 25.0)


def test_a_headerless_answer_is_only_the_asking_outputs():
    """Three engines on one connection (as `pyiot run` shares a `port`): output 2's answer
    `+1.20000000E+01` reaches all three, and only output 2 takes it (`to the query only`);
    before, outputs 1 and 3 took it as a report of their own voltage."""

    async def scenario() -> None:
        model = device_file(NAME)
        program = Program.from_model(model)
        port = simulator_for(model)
        url = await port.serve_tcp()
        shared = SharedLink(open_link("serial", url))
        comps = program.model.things["bench"].components
        engines = {
            name: ComponentEngine(EngineConfig.of(program, comps[name]), shared.view(), shared.turns)
            for name in ("out1", "out2", "out3")
        }
        seen: list[tuple[str, str, object]] = []
        for engine in engines.values():
            engine.value_listeners.append(lambda c, p, v: seen.append((c, p, v)))
            await engine.start()
        try:
            await eventually(lambda: all(e.status.online for e in engines.values()))
            assert await engines["out2"].set("voltage", 12.0) == 12.0
            # Each reader has taken every line before its own answer to this read.
            for name in ("out1", "out3"):
                assert await engines[name].read("voltage") == 0.0
            assert await engines["out2"].read("voltage") == 12.0
            twelve = [c for c, p, v in seen if p == "voltage" and v == 12.0]
            assert twelve and set(twelve) == {"out2"}
            assert len(port._writers) == 1  # one socket for the instrument's three outputs
            with pytest.raises(BadValue, match="outside 0..6"):
                await engines["out1"].set("voltage", 12.0)
        finally:
            for engine in engines.values():
                await engine.stop()
            await port.close()

    asyncio.run(scenario())


def test_the_error_queue_holds_what_the_supply_could_not_take(psu):
    """Not parsed: nothing answered, -113 queued; out of range: -222; SYST:ERR? pops the oldest."""
    assert psu.respond("VOLTS 3,(@1)") == b""
    assert psu.respond("VOLT 30,(@1)") == b""  # above the 25 V of the file's range
    assert psu.respond("SYST:ERR?") == b'-113,"Undefined header"\n'
    assert psu.respond("SYST:ERR?") == b'-222,"Data out of range"\n'
    assert psu.respond("SYST:ERR?") == b'+0,"No error"\n'


def test_runtime_reads_the_error_queue_after_a_set():
    """pyiot believes output 1 takes 0..25 V (a file written for another model); the
    E36312A's output 1 takes 0..6 V and queues -222 for 12 V: the set fails with that error,
    a good one stands."""
    from pyiot.compiler import Program
    from pyiot.lang import load
    from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
    from pyiot.runtime.transport import open_link
    from tests.devices.conftest import DEVICES

    text = (DEVICES / f"{NAME}.iot").read_text(encoding="utf-8")
    assert "out1: KeysightE36300(ch = 1, volts = 6," in text
    model = load(text.replace("(ch = 1, volts = 6,", "(ch = 1, volts = 25,"), "psu.iot")
    device = load(text, "e36312a.iot")

    async def scenario() -> None:
        port = simulator_for(device, "out1")
        url = await port.serve_tcp()
        program = Program.from_model(model)
        engine = ComponentEngine(
            EngineConfig.of(program, model.things["bench"].components["out1"]),
            open_link("serial", url),
        )
        await engine.start()
        try:
            await eventually(lambda: engine.status.online)
            assert await engine.set("voltage", 5.0) == 5.0
            with pytest.raises(DeviceError, match=r'queued \'-222,"Data out of range"\'') as err:
                await engine.set("voltage", 12.0)
            assert err.value.refused
            assert port.sims["out1"].values["voltage"] == 5.0
            assert engine.values["voltage"] == 5.0
        finally:
            await engine.stop()
            await port.close()

    asyncio.run(scenario())
