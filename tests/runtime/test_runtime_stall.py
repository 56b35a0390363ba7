"""A reply that arrived while the event loop was stalled (a full GC, thousands of replies at
once) counts before the request's timeout, which fell due in the same stall: no false
timeout, no resend. Found by bench/scale.py at 10,000 components, where every stall turned
into a storm of resends."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.transport import open_link
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

# No retry: a timeout that wins over the reply gives the read up.
QUICK = r"""
device Quick {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 300ms
    retries 0
    property relayState: bool {
        query "RELAY?"
        reply /^RELAY(?P<value>ON|OFF)$/
        map   { ON = true, OFF = false }
    }
}
"""


class ThreadDevice:
    """A relay on TCP answered from a thread: it replies while the loop is stalled."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.queries = 0
        self.answered = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            buffer = b""
            while True:
                data = conn.recv(1024)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    _, buffer = buffer.split(b"\n", 1)
                    self.queries += 1
                    conn.sendall(b"RELAYON\n")
                    self.answered.set()


def test_a_reply_that_came_during_a_stall_beats_the_timeout():
    device = ThreadDevice()
    program = Program.from_model(load(QUICK, "quick.iot"))
    engine = ComponentEngine(
        EngineConfig("quick1", program.model.devices["Quick"], program.machines["Quick"]),
        open_link("tcp", f"127.0.0.1:{device.port}"),
    )

    async def scenario() -> tuple[object, int]:
        loop = asyncio.get_running_loop()
        await engine.start()
        try:
            await eventually(lambda: device.queries >= 1 and engine.state == "idle", what="idle")
            device.answered.clear()
            before = device.queries
            reading = asyncio.create_task(engine.read("relayState"))
            while device.queries == before:  # the worker writes it in a few iterations
                await asyncio.sleep(0)
            # The stall: the loop runs nothing until the reply is in and the timeout is due.
            assert device.answered.wait(30)
            timer = engine._timer
            assert timer is not None
            while loop.time() < timer.when():
                pass
            value = await reading
            return value, device.queries - before
        finally:
            await engine.stop()

    value, queries = asyncio.run(scenario())
    assert value is True
    assert queries == 1
