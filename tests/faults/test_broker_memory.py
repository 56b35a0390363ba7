"""Broker memory stays bounded (issue 11, item 8): a client that subscribed to every shadow
topic with a persistent session and went away no longer makes mosquitto grow with every
update (it grew ~17 MB per 1,000 updates of 4 KB without the queue limits). Real mosquitto,
the real shadow service, paho clients; mosquitto's size read from /proc/PID/status."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pyiot.local import LocalStack
from pyiot.local.mosquitto import MAX_QUEUED_BYTES
from tests.waiting import PATIENCE

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

BATCH = 1000  # updates between two measurements
WINDOW = 50  # requests in flight at once


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def subscribed_client(stack: LocalStack, client_id: str, clean: bool, topic: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    done = threading.Event()
    client.on_subscribe = lambda *args: done.set()
    client.connect(stack.host, stack.port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    assert done.wait(PATIENCE), f"no SUBACK for {topic}"
    return client


def test_a_gone_persistent_session_does_not_grow_the_broker(mosquitto_path, tmp_path) -> None:
    # A flood from one connection on purpose: above AWS IoT's 100 publishes a second, which
    # the local stack's quota front would discard; this test is about mosquitto's memory.
    with LocalStack(data_dir=tmp_path / "data", aws_limits=False) as stack:
        assert stack.mosquitto is not None and stack.mosquitto.pid is not None
        pid = stack.mosquitto.pid
        gone = subscribed_client(stack, "abandoned", False, "$aws/things/+/shadow/#")
        gone.disconnect()
        gone.loop_stop()

        answered = threading.Condition()
        count = [0]

        def on_message(client, userdata, message) -> None:
            with answered:
                count[0] += 1
                answered.notify_all()

        app = subscribed_client(stack, "app", True, "$aws/things/+/shadow/update/accepted")
        app.on_message = on_message
        body = json.dumps({"state": {"reported": {"blob": "x" * 4000}}})
        sizes = []
        sent = 0
        try:
            for _ in range(4):
                for _ in range(BATCH):
                    # Many things: a per-thing throttle must not turn this into rejections.
                    app.publish(f"$aws/things/t{sent % 200}/shadow/update", body, qos=1)
                    sent += 1
                    with answered:
                        assert answered.wait_for(lambda n=sent: n - count[0] < WINDOW, PATIENCE)
                with answered:
                    assert answered.wait_for(lambda n=sent: count[0] == n, PATIENCE)
                sizes.append(rss_kib(pid))
        finally:
            app.disconnect()
            app.loop_stop()
    # The first batches fill the gone session's queue up to its limit; after that, no growth.
    # (Unbounded, each batch added ~17 MB here.)
    growth = sizes[-1] - sizes[1]
    assert growth < MAX_QUEUED_BYTES // 1024 // 4, f"mosquitto grew {growth} KiB: {sizes}"
