"""The broker restarts again and again while an application keeps changing a desired value.

mosquitto is stopped and started on the same port 20 times (3 by default) at random moments,
while the application sets `desired.volume` to a new value, waits until it shows in
`reported`, and moves on (an application retries a request the broker lost, as any must).
Every change must reach the device, and the device must receive exactly the application's
sequence: none lost, none sent twice, none out of order.
"""

from __future__ import annotations

import asyncio
import random
import time

from pyiot.local import LocalStack
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection, ShadowError
from pyiot.sim import DeviceSimulator
from tests.faults.conftest import TIMEOUT, figure, size
from tests.faults.devices import RecordingPort
from tests.shadow.conftest import amp_program

pytestmark = TIMEOUT

RESTARTS = size(20, 3)
THING = "restarted"


async def set_desired(app: ShadowConnection, volume: int) -> None:
    """Publish until the shadow service accepts (a request sent into a restart is lost)."""
    while True:
        try:
            await app.update(THING, desired={"volume": volume}, timeout=1.0)
            return
        except (ShadowError, ConnectionError):
            await asyncio.sleep(0.05)


async def until_reported(app: ShadowConnection, volume: int, timeout: float) -> float:
    """Seconds until `reported.volume` is `volume` and the desired key is cleared."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < timeout:
        try:
            state = await app.get(THING, timeout=1.0)
        except (ShadowError, ConnectionError):
            state = None
        if (
            state is not None
            and state["reported"].get("volume") == volume
            and "volume" not in state["desired"]
        ):
            return loop.time() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"volume {volume} never reported; last state: {state}")


def test_broker_restarts_lose_no_desired_change(own_stack: LocalStack) -> None:
    program = amp_program(THING)
    rng = random.Random(5)

    async def scenario() -> tuple[list[int], list[str], list[float], int]:
        device = program.model.devices["Amp"]
        port = RecordingPort([DeviceSimulator("amp1", device)])
        url = await port.serve_tcp()
        broker = BrokerAddress(own_stack.host, own_stack.port)
        app = ShadowConnection(broker)
        pyiot = ShadowConnection(broker)
        await app.connect()
        await pyiot.connect()
        gateway = Gateway([program], pyiot, {"amp1": url})
        await gateway.start()
        loop = asyncio.get_running_loop()
        restarts = 0

        async def restart_now_and_then() -> None:
            nonlocal restarts
            while restarts < RESTARTS:
                await asyncio.sleep(rng.uniform(0.3, 1.2))
                await loop.run_in_executor(None, own_stack.restart_broker)
                restarts += 1

        asked: list[int] = []
        waits: list[float] = []
        try:
            restarter = asyncio.create_task(restart_now_and_then())
            n = 0
            while not restarter.done():
                volume = n % 38 + 1  # never the value before
                asked.append(volume)
                await set_desired(app, volume)
                waits.append(await until_reported(app, volume, timeout=30))
                n += 1
            await restarter
            # A few more changes after the last restart: everything works as before.
            for extra in range(3):
                volume = (n + extra) % 38 + 1
                asked.append(volume)
                await set_desired(app, volume)
                waits.append(await until_reported(app, volume, timeout=30))
        finally:
            await gateway.stop()
            await pyiot.close()
            await app.close()
            await port.close()
        return asked, port.received, waits, restarts

    started = time.monotonic()
    asked, received, waits, restarts = asyncio.run(scenario())
    sent = [int(line[3:]) for line in received if line.startswith("VOL") and line != "VOL?"]
    figure(
        f"broker restarts: {restarts} restarts in {time.monotonic() - started:.1f} s, "
        f"{len(asked)} desired changes, {len(sent)} set commands at the device; desired -> "
        f"reported max {max(waits):.2f} s, median {sorted(waits)[len(waits) // 2] * 1000:.0f} ms"
    )
    assert restarts == RESTARTS
    assert sent == asked
