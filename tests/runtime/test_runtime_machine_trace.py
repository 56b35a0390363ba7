"""The graph is the machine: every transition a running component logs is an edge it draws.

Three devices from devices/ (a relay, an Epson projector with modes, two Monoprice zones on
one shared port) run against their simulators through a gate that can silence a device or
pull its plug. They go through answered reads and sets, retries, a give-up, a lost device, a
reconnect and mode changes; every transition logged on `pyiot.transitions` (what
`pyiot run -v --log-format json` prints as `component`, `source`, `dest`, `trigger`) must be
an edge of that component's machine as `pyiot graph --format json` prints it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest

from pyiot.cli import main
from pyiot.compiler import compile_file
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.logformat import JsonFormatter
from pyiot.runtime.sharing import SharedLink
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

DEVICES = Path(__file__).resolve().parents[2] / "devices"


def _quick(text: str) -> str:
    """A device file with test-sized timers: short timeouts, polls and mode timers."""
    text = re.sub(r"(?<!set )\btimeout \d+m?s\b", "timeout 150ms", text)  # not `set timeout`
    text = re.sub(r"\bevery \d+m?s\b", "every 100ms", text)
    return re.sub(r"\bafter \d+s\b", "after 300ms", text)


class Gate:
    """A TCP hop in front of a simulated port that can go deaf or be unplugged."""

    def __init__(self, target: str):
        host, _, port = target.removeprefix("socket://").rpartition(":")
        self.target = (host, int(port))
        self.deaf = False  # the device's answers are dropped
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def plug(self) -> str:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"socket://127.0.0.1:{self.port}"

    async def unplug(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, answers: bool):
            try:
                while data := await src.read(4096):
                    if not (answers and self.deaf):
                        dst.write(data)
            except ConnectionError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))
        self._writers -= {writer, up_writer}


class Trace(logging.Handler):
    """The transitions logged, as the JSON lines `--log-format json` writes."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_every_logged_transition_is_a_drawn_edge(tmp_path: Path, capsys) -> None:
    path = tmp_path / "house.iot"
    path.write_text(
        "\n".join(
            _quick((DEVICES / f"{name}.iot").read_text(encoding="utf-8"))
            for name in ("relay", "epson_escvp21", "monoprice_mpr6zhmaut")
        ),
        encoding="utf-8",
    )
    assert main(["graph", str(path), "--format", "json"]) == 0
    drawn = json.loads(capsys.readouterr().out)
    program = compile_file(path)
    model = program.model
    trace = Trace()
    logger = logging.getLogger("pyiot.transitions")
    logger.addHandler(trace)
    logger.setLevel(logging.INFO)

    def engine(name: str, link, turns=None) -> ComponentEngine:
        component = next(
            c for t in model.things.values() for c in t.components.values() if c.name == name
        )
        device = model.devices[component.device]
        return ComponentEngine(
            EngineConfig(
                name,
                device,
                program.machines[device.name],
                args=component.args,
                modes=program.modes.get(device.name),
            ),
            link,
            turns,
        )

    async def scenario() -> None:
        ports = [simulator_for(model, name) for name in ("relay1", "projector", "kitchen")]
        gates = [Gate(await port.serve_tcp()) for port in ports]
        relay_url, projector_url, amp_url = [await gate.plug() for gate in gates]
        shared = SharedLink(open_link("serial", amp_url))
        engines = {
            "relay1": engine("relay1", open_link("serial", relay_url)),
            "projector": engine("projector", open_link("serial", projector_url)),
            "kitchen": engine("kitchen", shared.view(), shared.turns),
            "dining": engine("dining", shared.view(), shared.turns),
        }
        relay, projector, kitchen = engines["relay1"], engines["projector"], engines["kitchen"]
        for each in engines.values():
            await each.start()
        try:
            # Success: first reads, then sets answered on each device.
            await eventually(lambda: "relayState" in relay.values)
            await eventually(lambda: "power" in kitchen.values and "power" in projector.values)
            assert await relay.set("relayState", True) is True
            assert await kitchen.set("volume", 20) == 20
            # Mode changes: PWR ON starts the warm-up, its timer (or the report) ends it.
            await projector.set("power", "on")
            await eventually(lambda: projector.status.mode == "on")
            # Silence: the relay's set is retried, then given up.
            gates[0].deaf = True
            with pytest.raises(DeviceError, match="no reply"):
                await relay.set("relayState", False)
            gates[0].deaf = False
            # A lost device, and its return.
            await gates[0].unplug()
            await eventually(lambda: relay.status.online is False)
            await gates[0].plug()
            await eventually(lambda: relay.status.online and relay.state == "idle")
            assert await relay.set("relayState", False) is False
            # Standby again: cooling, then standby.
            await projector.set("power", "standby")
            await eventually(lambda: projector.status.mode == "standby")
        finally:
            for each in engines.values():
                await each.stop()
            for port in ports:
                await port.close()

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(trace)
        logger.setLevel(logging.NOTSET)

    edges = {
        name: {(e["source"], e["dest"], e["trigger"]) for e in machine["transitions"]}
        for name, machine in drawn.items()
    }
    seen: dict[str, set[tuple[str, str, str]]] = {}
    for line in trace.lines:
        assert {"component", "source", "dest", "trigger"} <= set(line), line
        edge = (line["source"], line["dest"], line["trigger"])
        assert edge in edges[line["component"]], line
        seen.setdefault(line["component"], set()).add(edge)
    # The walk went where it was meant to: retries, a give-up, a loss, modes.
    relay_seen = seen["relay1"]
    assert ("query-relayState", "idle", "reply") in relay_seen
    assert ("set-relayState", "retry-set-relayState", "expire") in relay_seen
    assert ("retry-set-relayState", "set-relayState", "resend") in relay_seen
    assert ("set-relayState", "idle", "expire") in relay_seen  # gave up
    assert any(dest == "offline" and trigger == "link_lost" for _, dest, trigger in relay_seen)
    assert ("connecting", "idle", "connected") in relay_seen
    assert ("modes.standby", "modes.warming", "set power=on") in seen["projector"]
    assert any(source == "modes.cooling" for source, _, _ in seen["projector"])
    assert ("set-volume", "idle", "reply") in seen["kitchen"]
