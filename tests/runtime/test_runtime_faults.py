"""ComponentEngine faults: silent and refusing devices, noise on the line, a link that drops."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.framing import LineFramer
from pyiot.runtime.transport import open_link
from pyiot.sim import DeviceSimulator, simulator_for
from tests.runtime.conftest import QUICK_SOURCE
from tests.waiting import PATIENCE, eventually

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.2  # the Quick device's `timeout 200ms`
TRIES = 2  # `retries 1`: one send and one retry


class LineServer:
    """A plain TCP device: records every line it receives and answers with `respond(line)`."""

    def __init__(self, respond: Callable[[str], list[str]]):
        self.respond = respond
        self.received: list[tuple[float, str]] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"socket://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        task = asyncio.current_task()
        self._tasks.add(task)
        framer = LineFramer("\n")
        try:
            while data := await reader.read(4096):
                for line in framer.feed(data):
                    self.received.append((time.monotonic(), line))
                    writer.write("".join(f"{answer}\n" for answer in self.respond(line)).encode())
        except ConnectionError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    def lines(self, text: str) -> list[float]:
        """When each copy of `text` arrived."""
        return [at for at, line in self.received if line == text]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        await self._server.wait_closed()


def _engine(program: Program, url: str) -> ComponentEngine:
    device = program.model.devices["Quick"]
    return ComponentEngine(
        EngineConfig("quick", device, program.machines["Quick"]), open_link("serial", url)
    )


async def _stop(engine: ComponentEngine) -> None:
    # Stop once nothing is in flight: see test_stop_during_a_request_returns_promptly.
    try:
        await eventually(lambda: engine.state in ("idle", "offline"))
    finally:
        await asyncio.wait_for(engine.stop(), timeout=5)


def test_quick_device_timing(quick_program):
    device = quick_program.model.devices["Quick"]
    assert (device.timeout, device.retries) == (TIMEOUT, TRIES - 1)


def test_silent_device_makes_set_fail_after_every_retry(quick_program):
    async def scenario() -> None:
        server = LineServer(lambda line: [])  # reads, never answers
        engine = _engine(quick_program, await server.start())
        await engine.start()
        try:
            # The first poll fails first, so the set below is the only request in flight.
            await eventually(lambda: len(server.lines("RELAY?")) == TRIES)
            await eventually(lambda: engine.state == "idle")
            started = time.monotonic()
            with pytest.raises(DeviceError) as caught:
                await engine.set("relayState", True)
            failed = time.monotonic()
            sends = server.lines("RELAYON")
            assert len(sends) == TRIES
            assert caught.value.refused is False
            assert "no reply" in str(caught.value) and "RELAYON" in str(caught.value)
            # The request fails after its last try (how long each try waits is bench/'s
            # business: a loaded machine stretches it).
            assert started <= sends[0] <= sends[-1] <= failed
            assert "no reply" in (engine.status.last_error or "")
            # The engine stays usable at once, with no extra sends after giving up: requests
            # go out in order, so a late resend would reach the device before the next command.
            await engine.set("level", 1)
            await eventually(lambda: server.lines("LEVEL1"), what="the next command")
            assert len(server.lines("RELAYON")) == TRIES
        finally:
            await _stop(engine)
            await server.close()

    asyncio.run(scenario())


def test_silent_device_leaves_values_unknown(quick_program):
    async def scenario() -> None:
        server = LineServer(lambda line: [])
        engine = _engine(quick_program, await server.start())
        await engine.start()
        try:
            await eventually(lambda: len(server.lines("RELAY?")) == TRIES)
            # The machine is back in `idle` when it gives up; the poll that waited on it
            # records the error an iteration later.
            await eventually(
                lambda: engine.state == "idle"
                and "no reply to 'RELAY?'" in (engine.status.last_error or "")
            )
            assert engine.values == {}
            assert engine.status.online is True  # the link is up; the device is mute
        finally:
            await _stop(engine)
            await server.close()

    asyncio.run(scenario())


def test_refusing_device_gives_a_refused_device_error(quick_program):
    async def scenario() -> None:
        server = LineServer(lambda line: ["ERR"])
        engine = _engine(quick_program, await server.start())
        await engine.start()
        try:
            with pytest.raises(DeviceError) as caught:
                await engine.set("relayState", True)
            assert caught.value.refused is True
            assert "ERR" in str(caught.value)
            # A refusal is an answer: it is not retried.
            assert len(server.lines("RELAYON")) == 1
            await eventually(lambda: engine.state == "idle")
            assert engine.status.online is True
        finally:
            await _stop(engine)
            await server.close()

    asyncio.run(scenario())


def test_reply_is_found_after_an_unrelated_garbage_line(quick_program):
    async def scenario() -> None:
        sim = DeviceSimulator("quick", quick_program.model.devices["Quick"])
        noise = "#~ line noise ~#"

        def noisy(line: str) -> list[str]:
            answer = sim.answer(line)
            return [noise, *(answer if answer is not None else sim.error())]

        server = LineServer(noisy)
        engine = _engine(quick_program, await server.start())
        await engine.start()
        try:
            await eventually(lambda: "relayState" in engine.values)
            assert await engine.set("relayState", True) is True
            assert sim.values["relayState"] is True
            assert engine.values["relayState"] is True
            assert engine.state == "idle"
            # Each request got one noise line before its reply; each was counted, none retried.
            assert len(server.lines("RELAYON")) == 1
            assert engine.status.unrecognised_lines == len(server.received) == 2
        finally:
            await _stop(engine)
            await server.close()

    asyncio.run(scenario())


def test_link_loss_goes_offline_and_reconnects(quick_program):
    async def scenario() -> None:
        port = simulator_for(quick_program.model)
        url = await port.serve_tcp()
        number = int(url.rsplit(":", 1)[1])
        engine = _engine(quick_program, url)
        statuses: list[tuple[bool, str | None]] = []
        engine.status_listeners.append(
            lambda name, status: statuses.append((status.online, status.last_error))
        )
        await engine.start()
        second = None
        try:
            await eventually(lambda: engine.values.get("relayState") is False)
            assert engine.status.online is True
            statuses.clear()

            await port.close()  # the device goes away: the peer closes the TCP connection
            await eventually(lambda: engine.status.online is False)
            await eventually(lambda: engine.state == "offline")
            assert statuses and statuses[0][0] is False
            assert "link lost" in (statuses[0][1] or "")

            second = simulator_for(quick_program.model)
            second.sims["quick"].change("relayState", True)  # it comes back switched on
            assert await second.serve_tcp(port=number) == url
            await eventually(lambda: engine.status.online is True)
            assert statuses[-1][0] is True
            # Back online, the engine polls again and sees the device's state.
            await eventually(lambda: engine.values.get("relayState") is True)
            assert engine.status.last_error is None
            assert await engine.set("relayState", False) is False
            assert second.sims["quick"].values["relayState"] is False
        finally:
            await _stop(engine)
            if second is not None:
                await second.close()

    asyncio.run(scenario())


def test_write_only_property_is_set_once(quick_program):
    async def scenario() -> None:
        sim = DeviceSimulator("quick", quick_program.model.devices["Quick"])
        server = LineServer(lambda line: sim.answer(line) or [])  # LEVEL3 -> no answer
        engine = _engine(quick_program, await server.start())
        await engine.start()
        try:
            await eventually(lambda: "relayState" in engine.values)
            await engine.set("level", 3)  # the device takes it without a word
            await eventually(lambda: sim.values["level"] == 3)
            # Requests go out in order: once the next command arrives, a resend of LEVEL3
            # would have arrived before it.
            await engine.set("level", 4)
            await eventually(lambda: server.lines("LEVEL4"), what="the next command")
            # Counted on the device side: the command went out exactly once.
            assert len(server.lines("LEVEL3")) == 1
        finally:
            await _stop(engine)
            await server.close()

    asyncio.run(scenario())


def test_stop_during_a_request_returns_promptly():
    """Stop does not wait out a request in flight: with a timeout of an hour, a stop that
    waited would never end (no clock is read: the hour is the measure)."""
    patient = Program.from_model(
        load(QUICK_SOURCE.replace("timeout 200ms", "timeout 3600s"), "patient.iot")
    )

    async def scenario() -> None:
        server = LineServer(lambda line: [])
        engine = _engine(patient, await server.start())
        await engine.start()
        try:
            # The initial poll is out: the machine waits in its query state.
            await eventually(lambda: engine.state.startswith("query-"))
            await asyncio.wait_for(engine.stop(), timeout=PATIENCE)
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_serial_device_over_tcp_is_read_whatever_its_descriptor_number():
    """A gateway of a thousand simulated or networked serial devices has descriptors above
    1023, which pyserial's socket:// cannot watch (select()); such a link still reads."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    padding: list[int] = []
    try:
        while not padding or padding[-1] < 1030:
            padding.append(os.open(os.devnull, os.O_RDONLY))

        async def scenario() -> bytes:
            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(b"RELAYON\n")
                await writer.drain()

            server = await asyncio.start_server(answer, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            link = open_link("serial", f"socket://127.0.0.1:{port}")
            await link.open()
            try:
                return await asyncio.wait_for(link.read(), PATIENCE)
            finally:
                await link.close()
                server.close()

        assert asyncio.run(scenario()) == b"RELAYON\n"
    finally:
        for fd in padding:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
