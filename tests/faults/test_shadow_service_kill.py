"""The local shadow service killed with SIGKILL in the middle of a stream of updates.

The service runs as its own process (`python -m pyiot.local.shadow_service`) on a real
mosquitto. Clients publish updates as fast as the service takes them, each to a shadow of its
own, and note every `accepted` reply; the service is killed at a random moment and started
again on the same database: every accepted update must be there. Then the same under a running
Gateway: a change at the device reported while the service is dead, and a desired change made
after it is back, both end up in the shadow.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from pyiot.local import Mosquitto
from pyiot.local.mosquitto import free_port
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection, ShadowError
from pyiot.sim import simulator_for
from tests.faults.conftest import ROOT, TIMEOUT, figure, relay_program, size
from tests.shadow.conftest import reported
from tests.waiting import PATIENCE, eventually, wait_until

pytestmark = TIMEOUT

KILLS = size(10, 2)


@pytest.fixture
def broker(mosquitto_path: str, tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(free_port(None), workdir=tmp_path / "broker") as running:
        yield running


class ServiceProcess:
    """The shadow service in a process of its own, on `broker`, storing in `db`."""

    def __init__(self, broker: Mosquitto, db: Path):
        self.broker = broker
        self.db = db
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pyiot.local.shadow_service",
                "--host",
                self.broker.host,
                "--port",
                str(self.broker.port),
                "--db",
                str(self.db),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)
        self.process.stdout.close()
        assert self.process.returncode == -signal.SIGKILL
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.kill()


@pytest.fixture
def service(broker: Mosquitto, tmp_path: Path) -> Iterator[ServiceProcess]:
    running = ServiceProcess(broker, tmp_path / "shadows.sqlite3")
    yield running
    running.stop()


class Flood:
    """An application publishing updates back to back, one new shadow each, QoS 1."""

    def __init__(self, broker: Mosquitto, tag: str):
        self.tag = tag
        self.accepted: dict[str, int] = {}  # thing -> the value its accepted update set
        self.sent = 0
        self._lock = threading.Condition()
        self._got: dict[str, Any] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe(
            [
                ("$aws/things/+/shadow/update/accepted", 1),
                ("$aws/things/+/shadow/get/accepted", 1),
                ("$aws/things/+/shadow/get/rejected", 1),
            ]
        )
        assert subscribed.wait(PATIENCE)

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        thing, op = message.topic.split("/")[2], message.topic.split("/", 4)[4]
        body = json.loads(message.payload)
        with self._lock:
            if op == "update/accepted":
                self.accepted[thing] = body["state"]["reported"]["n"]
            else:
                self._got[thing] = body
                self._lock.notify_all()

    def run(self, stop: threading.Event) -> None:
        """Publish until `stop`, pacing nothing: as fast as paho sends."""
        while not stop.is_set():
            n = self.sent
            thing = f"{self.tag}-{n}"
            payload = json.dumps({"state": {"reported": {"n": n}}, "clientToken": thing})
            self.client.publish(f"$aws/things/{thing}/shadow/update", payload, qos=1)
            self.sent += 1
            if n % 50 == 49:
                time.sleep(0.001)  # let paho's thread read the replies

    def stored(self, things: list[str], timeout: float = PATIENCE) -> dict[str, Any]:
        """`get` every thing (pipelined) and return the answers."""
        with self._lock:
            self._got.clear()
        for thing in things:
            self.client.publish(f"$aws/things/{thing}/shadow/get", b"{}", qos=1)
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._got) < len(things):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{len(self._got)} of {len(things)} gets answered"
                self._lock.wait(remaining)
            return dict(self._got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_kill_9_during_updates_loses_no_accepted_update(broker, service) -> None:
    rng = random.Random(9)
    accepted_total = 0
    in_flight = 0
    service.start()
    for kill in range(KILLS):
        flood = Flood(broker, f"kill{kill}")
        stop = threading.Event()
        publisher = threading.Thread(target=flood.run, args=(stop,))
        publisher.start()
        try:
            # Kill it at a random moment once updates flow.
            wanted = rng.randint(50, 400)
            wait_until(
                lambda f=flood, n=wanted: len(f.accepted) >= n, what="updates accepted"
            )
            service.kill()
            stop.set()
            publisher.join()
            # A reply still on its way is left out of `accepted`: that only checks less.
            accepted = dict(flood.accepted)
            service.start()
            stored = flood.stored(sorted(accepted))
        finally:
            stop.set()
            publisher.join()
            flood.close()
        missing = {t for t in accepted if stored[t].get("state", {}).get("reported") is None}
        wrong = {
            t
            for t in accepted
            if t not in missing and stored[t]["state"]["reported"]["n"] != accepted[t]
        }
        assert not missing, (
            f"kill {kill}: {len(missing)} accepted updates lost: {sorted(missing)[:5]}"
        )
        assert not wrong
        accepted_total += len(accepted)
        in_flight += flood.sent - len(accepted)
    figure(
        f"shadow service kill -9: {KILLS} kills during floods of updates; {accepted_total} "
        f"accepted updates, all present after restart ({in_flight} sent but unanswered when "
        "killed)"
    )


def test_gateway_carries_on_across_a_killed_service(broker, service) -> None:
    """A device change reported while the service is dead lands once it is back; so does a
    desired change made then."""
    thing = "survivor"
    program = relay_program(thing)
    service.start()

    async def scenario() -> dict:
        sim = simulator_for(program.model)
        url = await sim.serve_tcp()
        address = BrokerAddress(broker.host, broker.port)
        app, connection = ShadowConnection(address), ShadowConnection(address)
        await app.connect()
        await connection.connect()
        gateway = Gateway([program], connection, {"relay1": url})
        await gateway.start()
        loop = asyncio.get_running_loop()

        async def state() -> dict:
            while True:
                try:
                    got = await app.get(thing, timeout=1)
                    if got is not None:
                        return got
                except ShadowError:
                    pass
                await asyncio.sleep(0.1)

        async def until(check, timeout: float) -> dict:
            deadline = loop.time() + timeout
            while not check(current := await state()):
                assert loop.time() < deadline, f"shadow never got there: {current}"
                await asyncio.sleep(0.05)
            return current

        try:
            await until(lambda s: reported(s).get("relayState") is False, PATIENCE)
            await loop.run_in_executor(None, service.kill)
            sim.change("relay1", "relayState", True)  # pressed at the device meanwhile
            engine = next(iter(gateway.engines.values()))
            await eventually(lambda: engine.values.get("relayState") is True, what="pressed")
            await loop.run_in_executor(None, service.start)
            await until(lambda s: reported(s).get("relayState") is True, PATIENCE)
            while True:
                try:
                    await app.update(thing, desired={"relayState": False}, timeout=1)
                    break
                except ShadowError:
                    await asyncio.sleep(0.1)
            return await until(
                lambda s: reported(s).get("relayState") is False and not s["desired"], PATIENCE
            )
        finally:
            await gateway.stop()
            await connection.close()
            await app.close()
            await sim.close()

    final = asyncio.run(scenario())
    assert final["reported"]["pyiot"]["components"]["relay1"]["online"] is True
