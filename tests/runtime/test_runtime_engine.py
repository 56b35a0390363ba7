"""ComponentEngine against the relay simulator, over a real pty and a real TCP socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pyiot.compiler import Program
from pyiot.lang.values import BadValue
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.transport import open_link
from pyiot.sim import PortSimulator, simulator_for
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)


async def serve(port: PortSimulator, kind: str) -> str:
    """Serve the simulator; return the pyserial URL a component opens."""
    return await (port.serve_pty() if kind == "pty" else port.serve_tcp())


async def quiet_stop(engine: ComponentEngine) -> None:
    """Stop once no request is in flight (see test_stop_during_a_request_returns_promptly)."""
    try:
        await eventually(lambda: engine.state in ("idle", "offline"))
        await asyncio.sleep(0.01)
        await eventually(lambda: engine.state in ("idle", "offline"))
    finally:
        await asyncio.wait_for(engine.stop(), timeout=5)


def run_with_relay(
    program: Program, kind: str, body: Callable[[ComponentEngine, PortSimulator], Awaitable[None]]
) -> None:
    """Serve the relay simulator, start an engine on it, run `body`, stop both."""

    async def scenario() -> None:
        port = simulator_for(program.model, "relay1")
        url = await serve(port, kind)
        device = program.model.devices["Relay"]
        engine = ComponentEngine(
            EngineConfig("relay1", device, program.machines["Relay"]),
            open_link("serial", url, {"baud": 9600}),
        )
        await engine.start()
        try:
            # The first thing an engine does online is poll every readable property.
            await eventually(lambda: "relayState" in engine.values)
            await body(engine, port)
        finally:
            await quiet_stop(engine)
            await port.close()

    asyncio.run(scenario())


TRANSPORTS = pytest.mark.parametrize("kind", ["pty", "tcp"])


@TRANSPORTS
def test_url_kinds(relay_program, kind):
    async def body(engine, port):
        if kind == "pty":
            assert port.url.startswith("/dev/")
        else:
            assert port.url.startswith("socket://127.0.0.1:")
        assert engine.link.url == port.url

    run_with_relay(relay_program, kind, body)


@TRANSPORTS
def test_initial_poll_fills_values(relay_program, kind):
    async def body(engine, port):
        assert engine.values == {"relayState": False}
        assert engine.status.online is True
        assert engine.status.last_error is None
        assert engine.state == "idle"

    run_with_relay(relay_program, kind, body)


@TRANSPORTS
def test_set_switches_the_device(relay_program, kind):
    async def body(engine, port):
        sim = port.sims["relay1"]
        assert await engine.set("relayState", True) is True
        assert sim.values["relayState"] is True
        assert engine.values["relayState"] is True
        assert engine.state == "idle"
        assert await engine.set("relayState", False) is False
        assert sim.values["relayState"] is False
        assert engine.values["relayState"] is False
        assert engine.state == "idle"
        assert port.unrecognised_lines == 0

    run_with_relay(relay_program, kind, body)


@TRANSPORTS
def test_unsolicited_report_updates_values_and_listeners(relay_program, kind):
    async def body(engine, port):
        seen = []
        engine.value_listeners.append(lambda *args: seen.append(args))
        port.change("relay1", "relayState", True)  # someone pressed the button on the device
        await eventually(lambda: engine.values.get("relayState") is True)
        assert seen == [("relay1", "relayState", True)]
        port.change("relay1", "relayState", False)
        await eventually(lambda: engine.values.get("relayState") is False)
        assert seen == [("relay1", "relayState", True), ("relay1", "relayState", False)]
        assert engine.status.unrecognised_lines == 0

    run_with_relay(relay_program, kind, body)


@TRANSPORTS
def test_wrong_values_are_refused_before_anything_is_sent(relay_program, kind):
    async def body(engine, port):
        sim = port.sims["relay1"]
        for wrong in (1, 0, "on", "true", None, 1.0):
            with pytest.raises(BadValue):
                await engine.set("relayState", wrong)
        with pytest.raises(BadValue, match="unknown property"):
            await engine.set("brightness", 3)
        await asyncio.sleep(0.05)
        assert sim.values["relayState"] is False
        assert port.unrecognised_lines == 0
        # The engine still works afterwards.
        assert await engine.set("relayState", True) is True

    run_with_relay(relay_program, kind, body)


@TRANSPORTS
def test_false_is_a_value_that_gets_sent(relay_program, kind):
    async def body(engine, port):
        port.sims["relay1"].change("relayState", True)
        assert await engine.set("relayState", False) is False
        assert port.sims["relay1"].values["relayState"] is False

    run_with_relay(relay_program, kind, body)


def test_request_poll_reads_a_change_made_silently(relay_program):
    async def body(engine, port):
        port.sims["relay1"].change("relayState", True)  # changed, but not announced
        # No await since the change: nothing could have told the engine (no sleep that a
        # periodic poll could fall into).
        assert engine.values["relayState"] is False
        engine.request_poll()
        await eventually(lambda: engine.values.get("relayState") is True)

    run_with_relay(relay_program, "tcp", body)


def test_commands_are_answered_in_order(relay_program):
    async def body(engine, port):
        results = await asyncio.gather(*(engine.set("relayState", i % 2 == 0) for i in range(6)))
        assert results == [True, False, True, False, True, False]
        assert port.sims["relay1"].values["relayState"] is False
        assert engine.values["relayState"] is False

    run_with_relay(relay_program, "tcp", body)
