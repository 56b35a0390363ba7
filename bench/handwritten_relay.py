"""The baseline: a relay driver written by hand, the way one would without pyiot.

awscrt MQTT5 straight to the shadow topics, pyserial to the device, no state machine, no
validation, no retries. Every hop sets TCP_NODELAY so the comparison is about pyiot's own cost.

    python bench/handwritten_relay.py mqtt://127.0.0.1:1883 socket://127.0.0.1:7000 THING
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from urllib.parse import urlparse

import serial
from awscrt import mqtt5

from pyiot.runtime.shadow_client import disable_nagle_towards


def main(broker_url: str, device_url: str, thing: str) -> None:
    broker = urlparse(broker_url)
    device = serial.serial_for_url(device_url, timeout=2)
    device._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connected = threading.Event()
    update_topic = f"$aws/things/{thing}/shadow/update"

    def on_publish(data: mqtt5.PublishReceivedData) -> None:
        state = json.loads(data.publish_packet.payload).get("state", {})
        if "relayState" not in state:
            return
        device.write(b"RELAYON\n" if state["relayState"] else b"RELAYOFF\n")
        value = device.readline().strip() == b"RELAYON"
        report = {"state": {"reported": {"relayState": value}, "desired": {"relayState": None}}}
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
    threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:4])
