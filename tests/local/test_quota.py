"""The local stack refuses what AWS IoT Core refuses (issue 16, item 2), and with
``aws_limits=False`` (``--no-aws-limits``) takes all of it.

Real mosquitto, the real quota front, real paho-mqtt and awscrt clients. Each test runs on a
stack with the limits (``aws``) and on one without (``free``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from awscrt import mqtt5
from paho.mqtt.enums import CallbackAPIVersion

from pyiot.local import LocalStack
from pyiot.local.front import CONNECT_INTERVAL, MAX_SUBSCRIPTIONS_PER_CONNECTION
from pyiot.local.shadow_service import MAX_IN_FLIGHT_PER_THING
from tests.waiting import PATIENCE, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def free_stack(
    mosquitto_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    with LocalStack(
        port=None, data_dir=tmp_path_factory.mktemp("free"), aws_limits=False
    ) as running:
        yield running


@pytest.fixture(params=["aws", "free"])
def any_stack(request: pytest.FixtureRequest) -> tuple[LocalStack, bool]:
    """(stack, whether it enforces AWS's limits)."""
    limits = request.param == "aws"
    return request.getfixturevalue("stack" if limits else "free_stack"), limits


class Client:
    """A paho client that records its SUBACKs, messages and disconnection."""

    def __init__(self, stack: LocalStack, client_id: str | None = None) -> None:
        self.disconnected = threading.Event()
        self.connected: Future[Any] = Future()
        self.acks: dict[int, threading.Event] = {}
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"quota-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(stack.host, stack.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        if not self.connected.done():
            self.connected.set_result(code)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._lock:
            event = self.acks.setdefault(mid, threading.Event())
        event.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg.topic)

    def subscribe(self, *topics: str) -> threading.Event:
        """Send one SUBSCRIBE; the event is set by its SUBACK."""
        result, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert result == mqtt.MQTT_ERR_SUCCESS
        with self._lock:
            return self.acks.setdefault(mid, threading.Event())

    def received(self, topic: str) -> int:
        with self._lock:
            return self.messages.count(topic)

    def still_connected(self, topic: str | None = None) -> None:
        """A round trip through the broker on `topic` (subscribed to already; else a new
        subscription): the connection is up and served. The probe is sent again every
        tenth of a second, as one right after a burst may be over the publish rate."""
        if topic is None:
            topic = f"quota/alive/{uuid.uuid4().hex[:8]}"
            assert self.subscribe(topic).wait(PATIENCE)
        last = [0.0]

        def echoed() -> bool:
            if self.received(topic) or self.disconnected.is_set():
                return True
            if time.monotonic() - last[0] > 0.1:
                last[0] = time.monotonic()
                self.client.publish(topic, b"1", qos=0)
            return False

        wait_until(echoed, what="echo")
        assert not self.disconnected.is_set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def connect(stack: LocalStack, made: list[Client], client_id: str | None = None) -> Client:
    client = Client(stack, client_id)
    made.append(client)
    return client


def expect_refused(
    stack: LocalStack, client: Client, caplog: pytest.LogCaptureFixture, quota: str
) -> None:
    """The client was disconnected, and the front logged one line naming it and the quota."""
    assert client.disconnected.wait(PATIENCE), "the client was not disconnected"
    client_id = client.client._client_id.decode()
    wait_until(
        lambda: any(
            quota in record.getMessage() and client_id in record.getMessage()
            for record in caplog.records
        ),
        what=f"a log line for {quota}",
    )
    assert stack.front is not None
    assert any(quota in name for name in stack.front.stats()["violations"])


def aws_base() -> str:
    """Topic filters under one thing's named shadows: the subscription quotas count `$aws/`
    filters (beyond them the local stack is a plain broker)."""
    return f"$aws/things/quota-{uuid.uuid4().hex[:8]}/shadow/name"


def test_the_51st_subscription_disconnects(any_stack, clients, caplog) -> None:
    stack, limits = any_stack
    client = connect(stack, clients)
    assert client.connected.result(PATIENCE) == 0
    base = aws_base()
    topics = [f"{base}/{n}" for n in range(MAX_SUBSCRIPTIONS_PER_CONNECTION)]
    for start in range(0, len(topics), 8):
        assert client.subscribe(*topics[start : start + 8]).wait(PATIENCE)
    assert client.subscribe(topics[0]).wait(PATIENCE)  # the same filter again is no new one
    assert not client.disconnected.is_set()
    if limits:
        assert stack.front is not None
        assert stack.front.stats()["max_subscriptions"] >= MAX_SUBSCRIPTIONS_PER_CONNECTION
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        client.client.subscribe(f"{base}/one-too-many", qos=1)
        if limits:
            expect_refused(stack, client, caplog, "more than 50 subscriptions")
        else:
            client.still_connected()


def test_an_unsubscribe_makes_room_for_another_subscription(stack, clients) -> None:
    client = connect(stack, clients)
    base = aws_base()
    topics = [f"{base}/{n}" for n in range(MAX_SUBSCRIPTIONS_PER_CONNECTION)]
    for start in range(0, len(topics), 8):
        assert client.subscribe(*topics[start : start + 8]).wait(PATIENCE)
    done = threading.Event()
    client.client.on_unsubscribe = lambda *args: done.set()
    client.client.unsubscribe(topics[0])
    assert done.wait(PATIENCE)
    assert client.subscribe(f"{base}/instead").wait(PATIENCE)
    client.still_connected()


def test_a_subscribe_of_nine_filters_disconnects(any_stack, clients, caplog) -> None:
    stack, limits = any_stack
    client = connect(stack, clients)
    assert client.connected.result(PATIENCE) == 0
    base = aws_base()
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        # Not client.subscribe(): the disconnect may come before paho's call returns.
        result, mid = client.client.subscribe([(f"{base}/{n}", 1) for n in range(9)])
        with client._lock:
            acked = client.acks.setdefault(mid, threading.Event())
        if limits:
            expect_refused(stack, client, caplog, "more than 8 topic filters")
            assert not acked.is_set()
        else:
            assert acked.wait(PATIENCE)
            client.still_connected()


def test_a_subscribe_of_many_filters_beyond_aws_topics_is_taken(stack, clients) -> None:
    """Home Assistant subscribes its discovery topics hundreds at a time; the local stack
    serves it as a plain broker (those topics never go to AWS IoT)."""
    client = connect(stack, clients)
    base = f"homeassistant/quota-{uuid.uuid4().hex[:8]}"
    topics = [f"{base}/{n}/config" for n in range(3 * MAX_SUBSCRIPTIONS_PER_CONNECTION)]
    assert client.subscribe(*topics).wait(PATIENCE)
    client.still_connected(topics[-1])


def test_a_300_byte_topic_is_refused(any_stack, clients, caplog) -> None:
    stack, limits = any_stack
    client = connect(stack, clients)
    assert client.connected.result(PATIENCE) == 0
    topic = "quota/" + "x" * 294
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        client.client.publish(topic, b"too long", qos=0)
        if limits:
            expect_refused(stack, client, caplog, "topic longer than 256 bytes")
        else:
            client.still_connected()


def test_a_topic_of_eight_slashes_is_refused_but_basic_ingest_prefixes_are_not(
    stack, clients, caplog
) -> None:
    ingest = connect(stack, clients)
    assert ingest.connected.result(PATIENCE) == 0
    # 9 slashes, 3 of them in the Basic Ingest prefix AWS does not count.
    ingest.client.publish("$aws/rules/myRule/a/b/c/d/e/f", b"{}", qos=0)
    ingest.still_connected()
    deep = connect(stack, clients)
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        deep.client.publish("a/b/c/d/e/f/g/h/i", b"{}", qos=0)
        expect_refused(stack, deep, caplog, "more than 7 slashes")


def test_a_client_id_over_128_bytes_is_refused(any_stack, clients, caplog) -> None:
    stack, limits = any_stack
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        client = connect(stack, clients, "c" * 129)
        code = client.connected.result(PATIENCE)
        if limits:
            assert code.is_failure
            assert any("client id longer than 128" in r.getMessage() for r in caplog.records)
        else:
            assert code == 0


def test_a_second_connect_of_one_client_id_within_a_second_is_refused(
    any_stack, clients, caplog
) -> None:
    """AWS takes one CONNECT a second per client id (two gateways sharing one id, a reconnect
    loop). The refused CONNECT never reaches the broker: the first client stays up."""
    stack, limits = any_stack
    name = f"gateway-{uuid.uuid4().hex[:8]}"
    first = connect(stack, clients, name)
    assert first.connected.result(PATIENCE) == 0
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        second = connect(stack, clients, name)
        code = second.connected.result(PATIENCE)
    if not limits:
        assert code == 0  # mosquitto alone takes it (and hands it the first one's session)
        return
    assert code.is_failure
    assert any(
        "more than one CONNECT a second" in r.getMessage() and name in r.getMessage()
        for r in caplog.records
    )
    first.still_connected()
    other = connect(stack, clients, f"{name}-other")  # the quota is per client id
    assert other.connected.result(PATIENCE) == 0
    assert stack.front is not None
    # Only time passing lifts the quota (the refused attempt above counts as the last
    # CONNECT): the front's clock is moved on by the interval instead of waiting for it.
    real_clock = stack.front.clock
    stack.front.clock = lambda: real_clock() + CONNECT_INTERVAL
    try:
        again = connect(stack, clients, name)
        assert again.connected.result(PATIENCE) == 0
    finally:
        stack.front.clock = real_clock


def test_a_publish_burst_above_100_a_second_is_thinned(any_stack, clients, caplog, thing) -> None:
    """AWS discards the publishes of a connection beyond 100 a second and keeps it up."""
    stack, limits = any_stack
    burst = 2000
    listener = connect(stack, clients)
    topic = f"$aws/things/{thing}/shadow/get"  # an AWS IoT topic anonymous clients may use
    assert listener.subscribe(topic).wait(PATIENCE)
    sender = connect(stack, clients)
    assert sender.connected.result(PATIENCE) == 0
    before = stack.front.stats() if stack.front is not None else None
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        for n in range(burst):
            sender.client.publish(topic, str(n).encode(), qos=0)
        if limits:
            assert stack.front is not None and before is not None

            def taken() -> int:
                now = stack.front.stats()  # type: ignore[union-attr]
                return (now["published"] - before["published"]) + (
                    now["discarded"] - before["discarded"]
                )

            wait_until(lambda: taken() >= burst, what="the front read the whole burst")
            discarded = stack.front.stats()["discarded"] - before["discarded"]
            assert discarded > 0
            assert any(
                "more than 100 publishes a second" in r.getMessage()
                and sender.client._client_id.decode() in r.getMessage()
                for r in caplog.records
            )
            sender.still_connected()
            wait_until(lambda: listener.received(topic) >= burst - discarded, what="the rest")
            assert listener.received(topic) == burst - discarded
        else:
            wait_until(lambda: listener.received(topic) >= burst, what="every publish")
            sender.still_connected()


def test_the_11th_in_flight_shadow_request_of_a_thing_gets_429(any_stack, clients, thing) -> None:
    """In flight: received by the shadow service and not yet answered. The test holds the
    shadow store, so the first update cannot finish and the others wait behind it."""
    stack, limits = any_stack
    client = connect(stack, clients)
    topic = f"$aws/things/{thing}/shadow/update"
    assert client.subscribe(f"{topic}/accepted", f"{topic}/rejected").wait(PATIENCE)
    bodies: dict[str, list[dict[str, Any]]] = {"accepted": [], "rejected": []}

    def on_message(c: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        bodies[msg.topic.rsplit("/", 1)[1]].append(json.loads(msg.payload))

    client.client.on_message = on_message
    service = stack.shadow_service
    assert service is not None and stack.store is not None
    count = MAX_IN_FLIGHT_PER_THING + 1
    with stack.store._lock:  # the service's worker blocks on its first save
        for n in range(count):
            body = {"state": {"reported": {"n": n}}, "clientToken": f"t{n}"}
            client.client.publish(topic, json.dumps(body), qos=1).wait_for_publish(PATIENCE)
        if limits:
            wait_until(lambda: bodies["rejected"], what="a rejection")
            assert [r["clientToken"] for r in bodies["rejected"]] == [f"t{count - 1}"]
            assert bodies["rejected"][0]["code"] == 429
        else:
            wait_until(lambda: service.in_flight(thing) == count, what="all in flight")
    wait_until(
        lambda: len(bodies["accepted"]) + len(bodies["rejected"]) == count, what="every answer"
    )
    accepted = [r["clientToken"] for r in bodies["accepted"]]
    assert accepted == [f"t{n}" for n in range(count - 1 if limits else count)]


@pytest.fixture
def crt_client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Factory: an awscrt MQTT 5 client on a stack, and a future set when it is
    disconnected after connecting."""
    made: list[mqtt5.Client] = []

    def make(stack: LocalStack) -> tuple[mqtt5.Client, Future[Any]]:
        connected: Future[bool] = Future()
        dropped: Future[Any] = Future()

        def on_disconnect(data: mqtt5.LifecycleDisconnectData) -> None:
            if not dropped.done():
                dropped.set_result(data)

        client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=stack.host,
                port=stack.port,
                connect_options=mqtt5.ConnectPacket(
                    client_id=f"crt-{uuid.uuid4().hex[:8]}", keep_alive_interval_sec=30
                ),
                on_lifecycle_event_connection_success_fn=lambda data: connected.set_result(True),
                on_lifecycle_event_disconnection_fn=on_disconnect,
            )
        )
        client.start()
        connected.result(PATIENCE)
        made.append(client)
        return client, dropped

    yield make
    for client in made:
        client.stop()


def test_awscrt_nine_filters_and_long_topics(any_stack, crt_client, caplog) -> None:
    """The same quotas for an MQTT 5 client (awscrt, as pyiot's gateway uses)."""
    stack, limits = any_stack
    base = aws_base()
    client, dropped = crt_client(stack)
    nine = mqtt5.SubscribePacket(
        subscriptions=[
            mqtt5.Subscription(f"{base}/{n}", mqtt5.QoS.AT_LEAST_ONCE) for n in range(9)
        ]
    )
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        suback = client.subscribe(nine)
        if limits:
            dropped.result(PATIENCE)
            assert any("more than 8 topic filters" in r.getMessage() for r in caplog.records)
        else:
            suback.result(PATIENCE)
            assert not dropped.done()
    client, dropped = crt_client(stack)
    eight = mqtt5.SubscribePacket(
        subscriptions=[
            mqtt5.Subscription(f"{base}/{n}", mqtt5.QoS.AT_LEAST_ONCE) for n in range(8)
        ]
    )
    client.subscribe(eight).result(PATIENCE)
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        sent = client.publish(
            mqtt5.PublishPacket(
                topic=f"{base}/" + "y" * 300, payload=b"{}", qos=mqtt5.QoS.AT_LEAST_ONCE
            )
        )
        if limits:
            dropped.result(PATIENCE)
            assert any("topic longer than 256" in r.getMessage() for r in caplog.records)
        else:
            sent.result(PATIENCE)
            assert not dropped.done()


def test_malformed_packets_close_that_client_only(stack, clients) -> None:
    """Hostile input: a bad remaining length closes the sender; others are served."""
    import socket

    bystander = connect(stack, clients)
    assert bystander.connected.result(PATIENCE) == 0
    for junk in (b"\x10\xff\xff\xff\xff\x01", b"\x00\x00", b"\x10\x04\x00\x04MQ"):
        with socket.create_connection((stack.host, stack.port)) as sock:
            sock.sendall(junk)
            sock.settimeout(PATIENCE)
            if junk.endswith(b"MQ"):  # cut short: waits for the rest; closing is ours
                continue
            assert sock.recv(16) == b""  # closed by the front
    bystander.still_connected()


def test_random_bytes_never_break_the_front(stack, clients, caplog) -> None:
    """Hostile input: 200 connections of random bytes (some after a valid CONNECT) end
    without an internal error in the front, and it serves the next client."""
    import random
    import socket

    connect_packet = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x1e\x00\x04fuzz"
    chance = random.Random(16)
    with caplog.at_level(logging.WARNING, logger="pyiot.local.front"):
        for n in range(200):
            blob = bytes(chance.getrandbits(8) for _ in range(chance.randint(1, 300)))
            if n % 2:
                blob = connect_packet + bytes([chance.choice([0x30, 0x82, 0xA2])]) + blob
            with socket.create_connection((stack.host, stack.port)) as sock:
                sock.sendall(blob)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    client = connect(stack, clients)
    assert client.connected.result(PATIENCE) == 0
    client.still_connected()


def test_a_burst_outside_aws_topics_is_not_thinned(stack, clients) -> None:
    """Publishes to other topics do not count (Home Assistant's discovery of a large gateway
    sends hundreds at once to the local broker, and none of it goes to AWS IoT)."""
    burst = 1000
    listener = connect(stack, clients)
    topic = f"homeassistant/quota/{uuid.uuid4().hex[:8]}/config"
    assert listener.subscribe(topic).wait(PATIENCE)
    sender = connect(stack, clients)
    assert sender.connected.result(PATIENCE) == 0
    for n in range(burst):
        sender.client.publish(topic, str(n).encode(), qos=1)
    wait_until(lambda: listener.received(topic) >= burst, what="every publish")
