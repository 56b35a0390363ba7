"""What a device sends and what a desired value carries cannot stop or steer a component.

Replies that match a pattern but break its decoding (a number of 400 digits through `convert`,
an optional group that took no part) are counted and logged, and the component goes on
answering. Desired text holding the framing's terminator, a control character or a character
the framing cannot encode is rejected in the shadow and never written. Endpoints a `.iot` file
names are limited to device paths, socket://, rfc2217:// and host:port, and every written form
of a tcp endpoint connects. Real sockets, the real local stack (mosquitto + shadow service).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.gateway import EndpointNotAllowed, check_endpoints
from pyiot.runtime.transport import open_link
from pyiot.sim import DeviceSimulator
from tests.faults.conftest import TIMEOUT, GatewayRun
from tests.faults.devices import RecordingPort
from tests.shadow.conftest import desired, reported, status
from tests.waiting import PATIENCE, eventually

pytestmark = TIMEOUT

# A volume the device reports in steps of 0.5 dB; it also answers a bare `VOL` when muted.
AMP = r"""
device Amp {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 200ms
    retries 1
    property volume: int {
        query "VOL?"
        reply /^VOL(?P<value>\d+)?$/
        convert { read = value / 2, write = value * 2 }
    }
    property label: string {
        query "LABEL?"
        reply /^LABEL (?P<value>.*)$/
        set   "LABEL {value}"
    }
}
"""

# The Amp's label on a packet framing (payloads are Latin-1).
PACKET_AMP = r"""
device PAmp {
    transport tcp
    framing packet "ISCP\x00\x00\x00\x10{size:4be}\x01\x00\x00\x00{payload}" end "\r"
    timeout 300ms
    retries 1
    property label: string {
        query "LBLQSTN"
        reply /^LBL(?P<value>.*)$/
        set   "LBL{value}"
    }
}
"""


class AnsweringDevice:
    """A TCP device whose answer to each line is `answers[line]` (lines in `received`)."""

    def __init__(self, answers: dict[str, list[bytes]]):
        self.answers = answers
        self.received: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                text = line.decode().rstrip("\n")
                self.received.append(text)
                answers = self.answers.get(text, [])
                if answers:
                    writer.write(answers.pop(0) if len(answers) > 1 else answers[0])
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def test_replies_that_break_decoding_are_counted_and_the_reader_goes_on(caplog) -> None:
    """`VOL` + 400 nines through `convert` (OverflowError) and a bare `VOL` (an empty optional
    group) are bad replies: counted, logged, and the next good reply is read as usual."""
    program = Program.from_model(load(AMP, "amp.iot"))
    device = AnsweringDevice(
        {
            "VOL?": [b"VOL" + b"9" * 400 + b"\n", b"VOL\n", b"VOL40\n"],
            "LABEL?": [b"LABEL Hall\n"],
        }
    )

    async def scenario() -> None:
        address = await device.start()
        engine = ComponentEngine(
            EngineConfig("amp", program.model.devices["Amp"], program.machines["Amp"]),
            open_link("tcp", address),
        )
        await engine.start()
        try:
            await eventually(lambda: engine.status.bad_replies >= 2, what="both bad replies counted")
            # The reader lives: the next answer (VOL40) is read and decoded.
            assert engine.status.online
            assert await engine.read("volume") == 20
        finally:
            await asyncio.wait_for(engine.stop(), PATIENCE)
            await device.close()

    with caplog.at_level(logging.WARNING, logger="pyiot"):
        asyncio.run(scenario())
    bad = [r.getMessage() for r in caplog.records if "bad reply" in r.getMessage()]
    assert bad, "a bad reply is logged"
    assert all(len(line) < 400 for line in bad), "the log quotes the reply short"


def test_no_reply_warning_quotes_a_long_command_short() -> None:
    """A 4 KB command that nothing answers is quoted by its first 60 characters."""
    source = AMP.replace('query "VOL?"', 'query "' + "V" * 4000 + '"')
    program = Program.from_model(load(source, "amp.iot"))
    device = AnsweringDevice({"LABEL?": [b"LABEL Hall\n"]})

    async def scenario() -> str:
        address = await device.start()
        engine = ComponentEngine(
            EngineConfig("amp", program.model.devices["Amp"], program.machines["Amp"]),
            open_link("tcp", address),
        )
        await engine.start()
        try:
            with pytest.raises(DeviceError) as caught:
                await engine.read("volume")
            return str(caught.value)
        finally:
            await asyncio.wait_for(engine.stop(), PATIENCE)
            await device.close()

    message = asyncio.run(scenario())
    assert "no reply" in message
    assert "…" in message
    assert len(message) < 200


def rejected(state: dict) -> dict:
    return status(state).get("rejected") or {}


@pytest.mark.parametrize(
    "label",
    ["Hall\nRELAYON", "Hall\rX", "Hall\x1b[2J", "Hall\x00", "Hall\x85"],
    ids=["terminator", "carriage-return", "escape", "nul", "c1-control"],
)
def test_desired_text_cannot_inject_a_command(own_stack, label: str) -> None:
    """A label holding the terminator or any control character is rejected visibly and
    nothing of it is written; a plain label still goes through."""
    program = Program.from_model(
        load(AMP + 'thing inject {\n    component amp1: Amp on serial "/dev/null"\n}\n', "i.iot")
    )
    sim = RecordingPort([DeviceSimulator("amp1", program.model.devices["Amp"])])

    async def scenario() -> None:
        url = await sim.serve_tcp()
        try:
            async with GatewayRun(own_stack, program, {"amp1": url}) as run:
                app = run.apps["inject"]
                await app.until(lambda s: "label" in reported(s), PATIENCE)
                await app.set(label=label)
                state = await app.until(lambda s: "label" in rejected(s), PATIENCE)
                assert "not sent" in rejected(state)["label"]["reason"]
                assert "label" not in desired(state)
                await app.set(label="Kitchen")
                await app.until(lambda s: reported(s).get("label") == "Kitchen", PATIENCE)
        finally:
            await sim.close()

    asyncio.run(scenario())
    assert "LABEL Kitchen" in sim.received
    assert not any(line.startswith("LABEL Hall") for line in sim.received), sim.received
    assert "RELAYON" not in sim.received


def test_text_a_packet_framing_cannot_encode_is_rejected_and_the_link_stays(own_stack) -> None:
    """A non-Latin-1 label on a packet device is rejected; the link is not closed by it."""
    program = Program.from_model(
        load(PACKET_AMP + 'thing pinject {\n    component amp1: PAmp on tcp "h:1"\n}\n', "p.iot")
    )
    sim = RecordingPort([DeviceSimulator("amp1", program.model.devices["PAmp"])])

    async def scenario() -> None:
        url = await sim.serve_tcp()
        try:
            async with GatewayRun(own_stack, program, {"amp1": url}) as run:
                app = run.apps["pinject"]
                await app.until(lambda s: "label" in reported(s), PATIENCE)
                engine = run.gateway.engines["pinject.amp1"]  # type: ignore[union-attr]
                link = engine.link
                await app.set(label="Salle €")
                state = await app.until(lambda s: "label" in rejected(s), PATIENCE)
                assert "latin-1" in rejected(state)["label"]["reason"]
                await app.set(label="Salle é")
                await app.until(lambda s: reported(s).get("label") == "Salle é", PATIENCE)
                assert engine.link is link and engine.status.online
        finally:
            await sim.close()

    asyncio.run(scenario())
    assert not any("€" in line for line in sim.received)


RELAY = r"""
device Relay {
    transport serial { baud 9600 }
    framing line "\n"
    property relayState: bool {
        query "RELAY?"
        reply /^RELAY(?P<value>ON|OFF)$/
        set   "RELAY{value}"
        map   { ON = true, OFF = false }
    }
}
"""


def relay_file(endpoint: str) -> Program:
    source = RELAY + f'thing urls {{\n    component relay1: Relay on serial "{endpoint}"\n}}\n'
    return Program.from_model(load(source, "urls.iot"))


@pytest.mark.parametrize(
    "url",
    ["spy://{target}?file={target}", "hwgrep://ttyUSB", "loop://", "alt:///dev/ttyS0?class=X"],
)
def test_an_endpoint_url_that_acts_needs_allow_python(tmp_path: Path, url: str) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    program = relay_file(url.format(target=target))
    with pytest.raises(EndpointNotAllowed) as caught:
        check_endpoints([program], {})
    message = str(caught.value)
    assert message.startswith("urls.iot:") and "--allow-python" in message
    assert "\n" not in message
    # The user's own --device, or --allow-python, lets it through.
    check_endpoints([program], {"relay1": "/dev/ttyUSB0"})
    check_endpoints([program], {}, allow_python=True)
    assert target.read_text() == "precious"


@pytest.mark.parametrize(
    "url", ["/dev/ttyUSB0", "socket://127.0.0.1:7000", "rfc2217://10.0.0.5:4001", "tcp://h:23"]
)
def test_device_paths_and_plain_network_urls_are_allowed_from_a_file(url: str) -> None:
    check_endpoints([relay_file(url)], {})


@pytest.mark.parametrize("form", ["{host}:{port}", "tcp://{host}:{port}", "socket://{host}:{port}"])
def test_every_form_of_a_tcp_endpoint_connects(form: str) -> None:
    async def scenario() -> bytes:
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.put_nowait(await reader.readline())
            writer.close()

        server = await asyncio.start_server(client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = open_link("tcp", form.format(host="127.0.0.1", port=port))
        try:
            await link.open()
            await link.write(b"RELAY?\n")
            return await asyncio.wait_for(got.get(), PATIENCE)
        finally:
            await link.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario()) == b"RELAY?\n"


def test_spy_url_in_a_file_stops_pyiot_run_before_the_file_is_touched(tmp_path: Path) -> None:
    """`pyiot run` on a file naming spy://...?file=X: one line, exit 1, X untouched."""
    from tests.e2e.conftest import run_pyiot

    target = tmp_path / "victim.txt"
    target.write_text("precious")
    iot = tmp_path / "spy.iot"
    iot.write_text(
        RELAY
        + f'thing spy {{\n    component relay1: Relay on serial "spy:///dev/null?file={target}"\n}}\n'
    )
    result = run_pyiot("run", str(iot), "--data", str(tmp_path / "data"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow-python" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == "precious"
