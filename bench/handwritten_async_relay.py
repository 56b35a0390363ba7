"""A second hand-written baseline: the relay driver as one writes it for a gateway.

bench/handwritten_relay.py answers each delta on awscrt's callback thread with blocking
device I/O: the least a driver can do, and right for one fast device. A gateway cannot do
that: while that thread waits for a device's reply, its MQTT connection reads, acknowledges and
delivers nothing (a projector's 2 s reply would stall every other device's delta and the
keep-alive). So a driver serving several devices hands each delta to an asyncio loop that
owns the devices' sockets, and publishes from there, as pyiot does. This one does that and no
more: no state machine, no validation, no retries, one device. Set beside pyiot, it says what
pyiot's own software costs; beside the blocking driver, what the hand-overs between awscrt's
thread and the loop cost.

    python bench/handwritten_async_relay.py mqtt://127.0.0.1:1883 socket://127.0.0.1:7000 THING
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from urllib.parse import urlparse

from awscrt import mqtt5

from pyiot.runtime.shadow_client import disable_nagle_towards


async def main(broker_url: str, device_url: str, thing: str) -> None:
    loop = asyncio.get_running_loop()
    broker, device = urlparse(broker_url), urlparse(device_url)
    # asyncio sets TCP_NODELAY on its TCP sockets.
    reader, writer = await asyncio.open_connection(device.hostname, device.port)
    update_topic = f"$aws/things/{thing}/shadow/update"
    connected = loop.create_future()

    def on_delta(payload: bytes) -> None:  # in the loop
        state = json.loads(payload).get("state", {})
        if "relayState" in state:
            writer.write(b"RELAYON\n" if state["relayState"] else b"RELAYOFF\n")

    def report(value: bool) -> None:
        body = {"state": {"reported": {"relayState": value}, "desired": {"relayState": None}}}
        client.publish(
            mqtt5.PublishPacket(
                topic=update_topic, payload=json.dumps(body), qos=mqtt5.QoS.AT_LEAST_ONCE
            )
        )

    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=broker.hostname,
            port=broker.port,
            connect_options=mqtt5.ConnectPacket(
                client_id=f"handwritten-async-{thing}", keep_alive_interval_sec=30
            ),
            on_publish_callback_fn=lambda data: loop.call_soon_threadsafe(
                on_delta, data.publish_packet.payload
            ),
            on_lifecycle_event_connection_success_fn=lambda data: loop.call_soon_threadsafe(
                connected.set_result, None
            ),
        )
    )
    client.start()
    await asyncio.wait_for(connected, 10)
    disable_nagle_towards(broker.hostname, broker.port)
    subscribed = client.subscribe(
        mqtt5.SubscribePacket(
            [mqtt5.Subscription(f"{update_topic}/delta", mqtt5.QoS.AT_LEAST_ONCE)]
        )
    )
    await asyncio.wait_for(asyncio.wrap_future(subscribed), 10)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.cancel)
    print("ready", flush=True)
    reading = asyncio.ensure_future(_read_replies(reader, report))
    with contextlib.suppress(asyncio.CancelledError):
        await stop
    reading.cancel()
    client.stop()


async def _read_replies(reader: asyncio.StreamReader, report: Callable[[bool], None]) -> None:
    while True:
        line = await reader.readline()
        if not line:
            return
        report(line.strip() == b"RELAYON")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
