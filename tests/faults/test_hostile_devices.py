"""A hostile device on the gateway: lines made to stall a backtracking regex, and a device that
stops reading. `pyiot run` is a real process with its own local stack; the devices are real
sockets served from this test.

With Python's `re`, one `STATUS aaaa…!` line against `/^STATUS (?P<value>(\\w+\\s?)+)$/`
froze the whole process (every device, MQTT, the shadow service); with RE2 the healthy relay
beside it keeps answering. A device whose socket buffer is full used to block pyiot's write on
the loop, so not even SIGTERM got through; now the write times out, the link counts as lost,
and the process stops cleanly (exit 0) when told to.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CliProcess, ShadowApp, reported
from tests.waiting import PATIENCE

pytestmark = pytest.mark.timeout(300)

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
thing healthy {
    component relay1: Relay on serial "/dev/null"
}
"""

# A plausible pattern that backtracks catastrophically in Python's `re`.
HOSTILE = r"""
device Chatty {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 500ms
    property status: string {
        query "STATUS?"
        reply /^STATUS (?P<value>(\w+\s?)+)$/
    }
}
thing hostile {
    component chatty1: Chatty on serial "/dev/null"
}
"""
# Each extra character doubles a backtracking engine's time: 40 is beyond any patience.
CRAFTED = b"STATUS " + b"a" * 40 + b"!\n"


class HostilePeer:
    """A TCP device served from a thread: `flood` sends CRAFTED lines without end, `deaf`
    accepts and never reads (with a tiny receive buffer, so the sender's fills)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.listener = socket.socket()
        if mode == "deaf":
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.accepted = threading.Event()
        self.flooding = threading.Event()
        self.stopped = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._held.append(conn)  # a deaf peer keeps every connection open, unread
            self.accepted.set()
            if self.mode == "flood":
                threading.Thread(target=self._flood, args=(conn,), daemon=True).start()

    def _flood(self, conn: socket.socket) -> None:
        burst = CRAFTED * 64
        with contextlib.suppress(OSError):
            while not self.stopped.is_set():
                conn.sendall(burst)
                self.flooding.set()

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()


@pytest.fixture
def pyiot_run() -> Iterator[Callable[..., CliProcess]]:
    """Start `pyiot run ...`; whatever is still running at the end is stopped."""
    started: list[CliProcess] = []

    def start(*args: str) -> CliProcess:
        started.append(CliProcess("run", *args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def peers() -> Iterator[list[HostilePeer]]:
    made: list[HostilePeer] = []
    yield made
    for peer in made:
        peer.close()


def stop_and_wait(run: CliProcess, sig: signal.Signals) -> int:
    """Send `sig`; the exit code (a run that hangs is killed and fails the test)."""
    run.process.send_signal(sig)
    try:
        return run.process.wait(timeout=PATIENCE * 2)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait()
        pytest.fail(f"pyiot run did not stop on {sig.name}; output:\n" + "\n".join(run.lines))


def test_a_catastrophic_reply_line_does_not_stall_the_other_devices(
    tmp_path: Path, pyiot_run, peers: list[HostilePeer], mosquitto_path: str
) -> None:
    hostile = HostilePeer("flood")
    peers.append(hostile)
    iot = tmp_path / "two.iot"
    iot.write_text(HOSTILE + RELAY)
    run = pyiot_run(
        str(iot), "--simulate", "--data", str(tmp_path / "data"),
        "--device", f"chatty1=socket://127.0.0.1:{hostile.port}",
    )  # fmt: skip
    broker = run.wait_for(r"(mqtt://[0-9.]+:\d+)", PATIENCE).group(1)
    run.wait_for(r"^ready", PATIENCE)
    app = ShadowApp(broker, "healthy")
    try:
        assert hostile.accepted.wait(PATIENCE) and hostile.flooding.wait(PATIENCE)
        for wish in (True, False, True):
            app.set_desired(relayState=wish)
            app.wait_until(
                lambda d, wish=wish: reported(d).get("relayState") is wish, PATIENCE
            )
    finally:
        app.close()
    assert stop_and_wait(run, signal.SIGINT) == 0


def hog_file(endpoint: str) -> str:
    # A 30 KB query polled as fast as the timeout allows: a peer that does not read has a
    # full socket buffer within seconds.
    return (
        'device Hog {\n    transport serial { baud 9600 }\n    framing line "\\n"\n'
        "    timeout 100ms\n    retries 0\n    poll every 10ms\n"
        f'    property junk: string {{\n        query "{"J" * 30000}"\n'
        "        reply /^J(?P<value>.*)$/\n    }\n}\n"
        f"thing hog {{\n    component hog1: Hog on {endpoint}\n}}\n"
    )


@pytest.mark.parametrize("kind", ["socket", "tcp"])
def test_a_device_that_stops_reading_loses_its_link_and_sigterm_stops_pyiot(
    tmp_path: Path, pyiot_run, peers: list[HostilePeer], mosquitto_path: str, kind: str
) -> None:
    deaf = HostilePeer("deaf")
    peers.append(deaf)
    endpoint = {
        "socket": f'serial "socket://127.0.0.1:{deaf.port}"',
        "tcp": f'tcp "127.0.0.1:{deaf.port}"',
    }[kind]
    iot = tmp_path / "hog.iot"
    iot.write_text(hog_file(endpoint))
    run = pyiot_run(str(iot), "--data", str(tmp_path / "data"))
    run.wait_for(r"^ready", PATIENCE)
    assert deaf.accepted.wait(PATIENCE)
    # The write that cannot finish is a lost link (offline, reconnect with backoff).
    lost = run.wait_for(r"hog1: device link lost: .*(stopped reading|not reading)", PATIENCE * 2)
    assert re.search(r"stopped reading|not reading", lost.group(0))
    assert stop_and_wait(run, signal.SIGTERM) == 0


def test_a_serial_device_that_stops_reading_loses_its_link_and_stops_cleanly(tmp_path) -> None:
    """A pty whose other end never reads (a serial line with flow control held, the device
    off): the writes fill the tty's buffer, time out, the link counts as lost, and the
    component still stops at once."""
    import asyncio
    import os

    from pyiot.compiler import Program
    from pyiot.lang import load
    from pyiot.runtime.component import ComponentEngine, EngineConfig
    from pyiot.runtime.transport import open_link
    from tests.waiting import eventually

    program = Program.from_model(load(hog_file('serial "/dev/null"'), "hog.iot"))
    master, slave = os.openpty()
    path = os.ttyname(slave)

    async def scenario() -> str:
        engine = ComponentEngine(
            EngineConfig("hog1", program.model.devices["Hog"], program.machines["Hog"]),
            open_link("serial", path),
        )  # fmt: skip
        await engine.start()
        try:
            await eventually(
                lambda: "stopped reading" in (engine.status.last_error or ""),
                PATIENCE * 2,
                "the stuck write seen as a lost link",
            )
            return engine.status.last_error or ""
        finally:
            await asyncio.wait_for(engine.stop(), PATIENCE)

    try:
        error = asyncio.run(scenario())
    finally:
        os.close(master)
        os.close(slave)
    assert error.startswith("device link lost")


def test_a_port_without_a_descriptor_writes_from_a_thread() -> None:
    """pyserial ports with no file descriptor (loop://, rfc2217://) still read and write."""
    import asyncio

    from pyiot.runtime.transport import open_link

    async def scenario() -> bytes:
        link = open_link("serial", "loop://")
        await link.open()
        try:
            await asyncio.wait_for(link.write(b"RELAY?\n"), PATIENCE)
            return await asyncio.wait_for(link.read(), PATIENCE)
        finally:
            await asyncio.wait_for(link.close(), PATIENCE)

    assert asyncio.run(scenario()) == b"RELAY?\n"


ZONES = r"""
device Zone(zone: int) {
    transport tcp
    framing line "\n"
    timeout 100ms
    retries 0
    poll every 10ms
    property junk: string {
        query "Z{zone}? PADDING"
        reply /^Z(?P<value>.*)$/
    }
}
thing zones {
    port bus: tcp "127.0.0.1:PORT"
    component one: Zone(zone = 1) on bus
    component two: Zone(zone = 2) on bus
    shadow { one.* in one  two.* in two }
}
"""


def test_a_shared_port_whose_device_stops_reading_is_reopened_for_all(own_stack, peers) -> None:
    """Two components on one port: a write stuck behind a deaf device loses the whole port,
    so both components go offline and reconnect, and the gateway still stops."""
    import asyncio

    from pyiot.compiler import Program
    from pyiot.lang import load
    from tests.faults.conftest import GatewayRun
    from tests.waiting import eventually

    deaf = HostilePeer("deaf")
    peers.append(deaf)
    source = ZONES.replace("PORT", str(deaf.port)).replace("PADDING", "P" * 30000)
    program = Program.from_model(load(source, "zones.iot"))

    async def scenario() -> None:
        async with GatewayRun(own_stack, program, {}) as run:
            assert run.gateway is not None
            engines = [run.gateway.engines[f"zones.{n}"] for n in ("one", "two")]
            await eventually(
                lambda: all("device link lost" in (e.status.last_error or "") for e in engines),
                PATIENCE * 2,
                "both zones lost the stuck port",
            )
            assert any("stopped reading" in (e.status.last_error or "") for e in engines)

    asyncio.run(asyncio.wait_for(scenario(), PATIENCE * 4))
