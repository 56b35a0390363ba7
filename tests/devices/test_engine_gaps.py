"""What the language says and the simulator plays, done by the engine.

These were strict xfails naming the engine (pyiot/runtime/component.py) while it ignored the
model's fields: `send ... on connect`, `greeting`, `set timeout`, a reply's `then` lines, and a
property's own refusal. Each is now a state or a transition of the compiled machine, and the
last test checks that every transition a run logs is an edge `pyiot graph` draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest

from pyiot.compiler import Program
from pyiot.lang import load, load_file
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.transport import open_link
from tests.devices.conftest import DEVICES, device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)


def test_the_files_say_it():
    assert device_file("anthem_mrx").devices["AnthemMRX"].connect_commands == ["ECH1"]
    epson = device_file("epson_escvp21").devices["EpsonProjector"].properties["power"]
    assert (epson.timeout, epson.set_timeout) == (5.0, 100.0)
    coolmaster = device_file("coolmasternet").devices["CoolMasterNetUnit"]
    assert [r.source for r in coolmaster.groups["status"].reply_then] == ["^OK$"]
    assert coolmaster.greeting == ">"


def test_the_engine_sends_ech1_on_connecting():
    async def scenario() -> None:
        async with running(device_file("anthem_mrx"), "receiver") as (engine, port):
            await engine.read("power")
            assert port.sims["receiver"].values["txStatus"] is True

    asyncio.run(scenario())


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


def _recording(port) -> list[str]:
    """The lines the simulated port receives, in order (its `respond` wrapped)."""
    heard: list[str] = []
    respond = port.respond

    def recorded(line: str) -> bytes:
        heard.append(line)
        return respond(line)

    port.respond = recorded
    return heard


def test_ech1_goes_before_the_first_refresh_and_again_after_a_reconnect():
    async def scenario() -> None:
        model = device_file("anthem_mrx")
        async with running(model, "receiver") as (engine, port):
            heard = _recording(port)
            # The first connection's ECH1 went before `running` saw the engine online.
            receiver = port.sims["receiver"]
            assert receiver.values["txStatus"] is True
            receiver.values["txStatus"] = False  # the receiver forgot (a power cycle)
            for writer in list(port._writers):
                writer.transport.abort()
            await eventually(lambda: "ECH1" in heard)
            assert heard.index("ECH1") == 0, heard  # before the refresh's queries
            await eventually(lambda: engine.values.get("txStatus") is True)
            assert receiver.values["txStatus"] is True

    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def scripted(answers: dict[bytes, bytes], greeting: bytes = b"", end: bytes = b"\r"):
    """A TCP device that says `greeting` on connecting and answers lines from `answers`;
    yields its port number and the lines it heard."""
    heard: list[bytes] = []

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while line := await reader.readuntil(end):
                heard.append(line)
                writer.write(answers.get(line, b""))

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], heard
    finally:
        server.close()


GREETED = """
device Greeted {
    framing line "\\r"
    greeting "HELLO 0\\r"
    timeout 300ms
    retries 0
    property power: bool {
        query "PWR?" reply /^PWR=(?P<value>[01])$/
        map { "1" = true, "0" = false }
    }
}
thing t { component p: Greeted on tcp "127.0.0.1:1" }
"""


def _engine(text: str, device: str, number: int) -> ComponentEngine:
    model = load(text, "test.iot")
    program = Program.from_model(model)
    return ComponentEngine(
        EngineConfig("p", model.devices[device], program.machines[device]),
        open_link("tcp", f"127.0.0.1:{number}"),
    )


def test_lines_before_the_greeting_are_dropped():
    async def scenario() -> None:
        noise = b"\x00\x00boot v1.2\rHELLO 0\r"
        async with scripted({b"PWR?\r": b"PWR=1\r"}, greeting=noise) as (number, heard):
            engine = _engine(GREETED, "Greeted", number)
            await engine.start()
            try:
                await eventually(lambda: engine.values.get("power") is True)
                assert engine.status.unrecognised_lines == 0
                assert engine.status.online
            finally:
                await engine.stop()

    asyncio.run(scenario())


def test_no_greeting_is_a_failed_connect():
    async def scenario() -> None:
        async with scripted({b"PWR?\r": b"PWR=1\r"}, greeting=b"") as (number, heard):
            engine = _engine(GREETED, "Greeted", number)
            await engine.start()
            try:
                await eventually(lambda: "no greeting" in (engine.status.last_error or ""))
                await eventually(lambda: engine.state in ("offline", "connecting"))
                assert not engine.status.online
                assert heard == []  # nothing is sent to a device that has not greeted
            finally:
                await engine.stop()

    asyncio.run(scenario())


REFUSING = """
device Refusing {
    framing line "\\r"
    timeout 300ms
    retries 0
    property power: bool {
        query "PWR?" reply /^PWR(?P<value>\\S+)$/
        error /^PWRN\\/A$/
        map { "1" = true, "0" = false }
    }
    property volume: int 0..100 {
        query "MVL?" reply /^MVL(?P<value>\\d+)$/
        error /^MVLN\\/A$/
    }
}
thing t { component p: Refusing on tcp "127.0.0.1:1" }
"""


def test_another_propertys_refusal_does_not_fail_a_query():
    async def scenario() -> None:
        answers = {b"MVL?\r": b"PWRN/A\rMVL20\r", b"PWR?\r": b"PWR1\r"}
        async with scripted(answers) as (number, _heard):
            engine = _engine(REFUSING, "Refusing", number)
            await engine.start()
            try:
                assert await engine.read("volume") == 20
            finally:
                await engine.stop()

    asyncio.run(scenario())


def test_a_refusal_in_the_replys_shape_is_an_error_reply_not_a_timeout():
    async def scenario() -> None:
        answers = {b"PWR?\r": b"PWRN/A\r", b"MVL?\r": b"MVL20\r"}
        async with scripted(answers) as (number, _heard):
            engine = _engine(REFUSING, "Refusing", number)
            await engine.start()
            try:
                with pytest.raises(DeviceError, match="answered 'PWRN/A'") as refused:
                    await engine.read("power")
                assert refused.value.refused
                assert engine.status.bad_replies == 0
            finally:
                await engine.stop()

    asyncio.run(scenario())


def test_a_set_waits_its_set_timeout_and_a_query_its_own():
    epson = Program.from_model(device_file("epson_escvp21")).machines["EpsonProjector"]
    timeouts = {s["name"]: s.get("timeout") for s in epson["states"]}
    assert (timeouts["set-power"], timeouts["query-power"]) == (100.0, 5.0)


def test_connect_steps_are_drawn_edges(tmp_path, capsys):
    """Greeting, connect commands, a greeting that never came and a SCPI set's error check:
    each logged transition is an edge of the machine `pyiot graph --format json` draws."""
    from pyiot.cli import main
    from tests.runtime.test_runtime_machine_trace import Trace

    path = tmp_path / "connect.iot"
    path.write_text(
        (DEVICES / "anthem_mrx.iot").read_text(encoding="utf-8")
        + (DEVICES / "coolmasternet.iot").read_text(encoding="utf-8")
        + (DEVICES / "keysight_e36300.iot").read_text(encoding="utf-8")
        + GREETED.replace("thing t {", "thing g {"),
        encoding="utf-8",
    )
    assert main(["graph", str(path), "--format", "json"]) == 0
    drawn = json.loads(capsys.readouterr().out)
    model = load_file(path)
    trace = Trace()
    logger = logging.getLogger("pyiot.transitions")
    logger.addHandler(trace)
    logger.setLevel(logging.INFO)

    async def scenario() -> None:
        async with running(model, "receiver") as (anthem, _port):
            await anthem.read("power")
        async with running(model, "bedroom") as (coolmaster, _port):
            await coolmaster.read("power")
        async with running(model, "out1") as (psu, _port):
            await psu.set("output", True)
        async with scripted({}, greeting=b"") as (number, _heard):
            silent = _engine(GREETED, "Greeted", number)
            await silent.start()
            try:
                await eventually(lambda: silent.status.last_error is not None)
            finally:
                await silent.stop()

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(trace)
        logger.setLevel(logging.NOTSET)
    edges = {
        name: {(e["source"], e["dest"], e["trigger"]) for e in machine["transitions"]}
        for name, machine in drawn.items()
    }
    seen = set()
    for line in trace.lines:
        edge = (line["source"], line["dest"], line["trigger"])
        assert edge in edges[line["component"]], line
        seen.add((line["component"], edge))
    assert ("receiver", ("connecting", "connect-send", "connected")) in seen
    assert ("receiver", ("connect-send", "idle", "sent")) in seen
    assert ("bedroom", ("connect-greeting", "idle", "greeted")) in seen
    assert ("p", ("connect-greeting", "offline", "connect_failed")) in seen
    assert ("out1", ("set-output", "check-errors", "sent")) in seen
    assert ("out1", ("check-errors", "idle", "reply")) in seen
