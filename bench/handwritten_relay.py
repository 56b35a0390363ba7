"""The baseline: a relay driver written by hand, the way one would without pyiot.

awscrt MQTT5 straight to the shadow topics, pyserial to the device, no state machine, no
validation, no retries. Every hop sets TCP_NODELAY so the comparison is about pyiot's own cost.

    python bench/handwritten_relay.py mqtt://127.0.0.1:1883 socket://127.0.0.1:7000 THING
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import serial
from awscrt import mqtt5

from pyiot.runtime.shadow_client import disable_nagle_towards

# bench/latency_stages.py: with PYIOT_BENCH_MARKS=FILE, note when each stage happens.
_MARKS_FILE = os.environ.get("PYIOT_BENCH_MARKS")
_MARKS: list[tuple[str, float]] = []
if _MARKS_FILE:
    atexit.register(lambda: Path(_MARKS_FILE).write_text(json.dumps(_MARKS)))


def mark(stage: str) -> None:
    if _MARKS_FILE:
        _MARKS.append((stage, time.perf_counter()))


def main(broker_url: str, device_url: str, thing: str) -> None:
    broker = urlparse(broker_url)
    device = serial.serial_for_url(device_url, timeout=2)
    device._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connected = threading.Event()
    update_topic = f"$aws/things/{thing}/shadow/update"

    def on_publish(data: mqtt5.PublishReceivedData) -> None:
        mark("delta callback")
        state = json.loads(data.publish_packet.payload).get("state", {})
        if "relayState" not in state:
            return
        mark("command written")
        device.write(b"RELAYON\n" if state["relayState"] else b"RELAYOFF\n")
        value = device.readline().strip() == b"RELAYON"
        mark("reply read")
        report = {"state": {"reported": {"relayState": value}, "desired": {"relayState": None}}}
        mark("update published")
        client.publish(
            mqtt5.PublishPacket(
                topic=update_topic, payload=json.dumps(report), qos=mqtt5.QoS.AT_LEAST_ONCE
            )
        )

    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=broker.hostname,
            port=broker.port,
            connect_options=mqtt5.ConnectPacket(
                client_id=f"handwritten-{thing}", keep_alive_interval_sec=30
            ),
            on_publish_callback_fn=on_publish,
            on_lifecycle_event_connection_success_fn=lambda data: connected.set(),
        )
    )
    client.start()
    if not connected.wait(10):
        raise SystemExit("cannot connect")
    disable_nagle_towards(broker.hostname, broker.port)
    client.subscribe(
        mqtt5.SubscribePacket(
            [mqtt5.Subscription(f"{update_topic}/delta", mqtt5.QoS.AT_LEAST_ONCE)]
        )
    ).result(10)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # exit cleanly: atexit writes marks
    stop.wait()


if __name__ == "__main__":
    main(*sys.argv[1:4])
