"""The broker restarts under a running Thing (same port): it reconnects, resubscribes, re-reads
its shadow, reports what changed meanwhile and applies what was asked meanwhile."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest

from pyiot.local import LocalStack
from tests.shadow.conftest import Rig, amp_program, desired, reported, status
from tests.waiting import PATIENCE, eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def own_stack(mosquitto_path, tmp_path) -> Iterator[LocalStack]:
    """A stack of this test's own: restarting it must not disturb other tests."""
    with LocalStack(port=None, data_dir=tmp_path / "data") as running:
        yield running


def publish_desired(stack: LocalStack, thing: str, values: dict) -> None:
    """An application that connects right after the restart, before pyiot is back: it
    publishes until the shadow service (itself reconnecting) accepts."""
    accepted = threading.Event()
    token = uuid.uuid4().hex
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: token in m.payload.decode() and accepted.set()
    client.connect(stack.host, stack.port)
    client.loop_start()
    topic = f"$aws/things/{thing}/shadow/update"
    try:
        client.subscribe(f"{topic}/accepted", qos=1)
        payload = json.dumps({"state": {"desired": values}, "clientToken": token})
        deadline = time.monotonic() + PATIENCE
        while not accepted.is_set():
            assert time.monotonic() < deadline, "the shadow service never came back"
            client.publish(topic, payload, qos=1)
            accepted.wait(0.1)
    finally:
        client.disconnect()
        client.loop_stop()


def test_broker_restart_resyncs_both_ways(own_stack: LocalStack, thing_name) -> None:
    name = thing_name()

    async def scenario() -> dict:
        rig = Rig(own_stack, amp_program(name))
        try:
            await rig.start()
            app = rig.apps[name]
            await app.until(lambda s: reported(s).get("input") == 1)
            port = own_stack.port
            loop = asyncio.get_running_loop()
            own_stack.mosquitto.stop()
            # While the broker is down the knob turns: pyiot hears it, the shadow cannot yet.
            rig.sims[f"{name}.amp1"].change("amp1", "volume", 25)
            engine = rig.gateway.engines[f"{name}.amp1"]
            await eventually(lambda: engine.values.get("volume") == 25, what="the knob heard")
            await loop.run_in_executor(None, own_stack.mosquitto.start)
            assert own_stack.port == port  # the same port: clients find it again
            # Someone asks for power while pyiot is still reconnecting.
            await loop.run_in_executor(None, publish_desired, own_stack, name, {"power": True})
            state = await app.until(
                lambda s: (
                    reported(s).get("volume") == 25
                    and reported(s).get("power") is True
                    and not desired(s)
                ),
            )
            # And the subscriptions are back: a change now is applied as usual.
            await app.set(volume=3)
            state = await app.until(lambda s: reported(s).get("volume") == 3 and not desired(s))
            return state
        finally:
            await rig.close()

    state = asyncio.run(scenario())
    assert status(state)["components"]["amp1"]["online"] is True
