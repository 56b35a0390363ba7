"""A client posing as the shadow service cannot make pyiot deaf to genuine changes.

On a plain mosquitto (no ACL: anyone may publish on the shadow's reply topics, as the local
broker's ACL and AWS IoT itself forbid), another client publishes `update/documents`,
`update/delta` and `update/accepted` with versions far ahead of the shadow's, at once or
creeping up. pyiot checks such versions with a `get` and goes on from the service's real one:
the application's next changes reach the device.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyiot.local.mosquitto import free_port
from pyiot.local.shadow_service import ShadowService
from pyiot.local.store import ShadowStore
from pyiot.runtime.thing import MAX_VERSION_JUMP
from pyiot.sim import DeviceSimulator, PortSimulator
from tests.faults.conftest import TIMEOUT, GatewayRun, LogLines, relay_program
from tests.local.conftest import MqttProbe
from tests.shadow.conftest import desired, reported
from tests.waiting import eventually, wait_until

pytestmark = TIMEOUT

THING = "forgedversions"


@dataclass
class PlainBroker:
    """A bare mosquitto (anonymous, no ACL) with pyiot's shadow service on it."""

    host: str
    port: int


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def plain_broker(mosquitto_path: str, tmp_path: Path) -> Iterator[PlainBroker]:
    port = free_port(None)
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n", encoding="utf-8")
    broker = subprocess.Popen(
        [mosquitto_path, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = ShadowStore(tmp_path / "shadows.sqlite3")
    service = None
    try:
        wait_until(lambda: _accepts(port), what="mosquitto listening")
        service = ShadowService("127.0.0.1", port, store)
        service.start()
        yield PlainBroker("127.0.0.1", port)
    finally:
        if service is not None:
            service.stop()
        store.close()
        broker.terminate()
        broker.wait(10)


def forge(probe: MqttProbe, version: int, wish: dict[str, Any]) -> None:
    """What only the shadow service should say, with a version of the forger's choosing."""
    base = f"$aws/things/{THING}/shadow/update"
    state = {"desired": wish, "reported": {}}
    probe.publish(f"{base}/accepted", {"state": state, "version": version, "timestamp": 1})
    probe.publish(f"{base}/delta", {"state": wish, "version": version})
    probe.publish(
        f"{base}/documents",
        {"previous": None, "current": {"state": state, "version": version}, "timestamp": 1},
    )


@pytest.mark.parametrize("how", ["far-ahead", "creeping"])
def test_forged_versions_do_not_make_pyiot_ignore_genuine_changes(
    plain_broker: PlainBroker, pyiot_log: LogLines, how: str
) -> None:
    program = relay_program(THING)

    async def scenario() -> dict[str, Any]:
        port = PortSimulator([DeviceSimulator("relay1", program.model.devices["Relay"])])
        url = await port.serve_tcp()
        device = port.sims["relay1"]
        forger = MqttProbe(plain_broker.host, plain_broker.port)
        try:
            async with GatewayRun(plain_broker, program, {"relay1": url}) as run:  # type: ignore[arg-type]
                app = run.apps[THING]
                await app.until(lambda s: reported(s).get("relayState") is False)
                real = (await app.document())["version"]
                if how == "far-ahead":
                    forge(forger, 10**9, {"relayState": True})
                    # Seen as a forgery (or a gap): checked, and its wish not acted on.
                    await eventually(lambda: pyiot_log.matching("far ahead"), what="check")
                else:
                    # Each step within what pyiot accepts from an event, 100 versions up.
                    # (No wish in them: what a believed forgery says is the ACL's to stop;
                    # this is about the version it leaves behind.)
                    for step in range(1, 11):
                        forge(forger, real + step * MAX_VERSION_JUMP, {})
                # Genuine changes, with versions far below the forged ones, reach the device.
                await app.set(relayState=True)
                await app.until(lambda s: reported(s).get("relayState") is True and not desired(s))
                assert device.values["relayState"] is True
                await app.set(relayState=False)
                state = await app.until(
                    lambda s: reported(s).get("relayState") is False and not desired(s)
                )
                assert device.values["relayState"] is False
                return state
        finally:
            forger.close()
            await port.close()

    asyncio.run(scenario())
