"""Fixtures for the local stack tests: a real mosquitto + shadow service, real MQTT clients."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pyiot.local import LocalStack
from tests.waiting import PATIENCE


@pytest.fixture(scope="module")
def stack(mosquitto_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One broker + shadow service per test module, on any free port."""
    with LocalStack(port=None, data_dir=tmp_path_factory.mktemp("stack")) as running:
        yield running


class MqttProbe:
    """A plain paho client that records every message it receives, for assertions."""

    def __init__(self, host: str, port: int, login: tuple[str, str] | None = None) -> None:
        self._cond = threading.Condition()
        self._messages: list[tuple[str, Any]] = []
        self.received: list[str] = []  # every topic, in arrival order
        self._acks: dict[int, threading.Event] = {}
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"probe-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_socket_open = _nodelay
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body: Any = json.loads(msg.payload)
        except ValueError:
            body = msg.payload
        with self._cond:
            self._messages.append((msg.topic, body))
            self.received.append(msg.topic)
            self._cond.notify_all()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[Any], properties: Any
    ) -> None:
        with self._cond:
            event = self._acks.setdefault(mid, threading.Event())
        event.set()

    def subscribe(self, *topics: str) -> None:
        result, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert result == mqtt.MQTT_ERR_SUCCESS
        with self._cond:
            event = self._acks.setdefault(mid, threading.Event())
        assert event.wait(PATIENCE), f"no SUBACK for {topics}"

    def publish(self, topic: str, body: Any = b"") -> None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        self.client.publish(topic, data, qos=1).wait_for_publish(5)

    def expect(self, topic: str, timeout: float = PATIENCE) -> Any:
        """Wait for the next message on ``topic`` and return its JSON body."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, (seen, body) in enumerate(self._messages):
                    if seen == topic:
                        del self._messages[index]
                        return body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pending = [seen for seen, _ in self._messages]
                    raise AssertionError(f"nothing on {topic} in {timeout} s; have {pending}")
                self._cond.wait(remaining)

    def expect_any(self, topics: tuple[str, ...], timeout: float = 5.0) -> tuple[str, Any]:
        """Wait for the next message on any of ``topics``; return (topic, JSON body)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, (seen, body) in enumerate(self._messages):
                    if seen in topics:
                        del self._messages[index]
                        return seen, body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"nothing on {topics} in {timeout} s")
                self._cond.wait(remaining)

    def expect_nothing(self, topic: str, wait: float = 0.3) -> None:
        time.sleep(wait)
        with self._cond:
            seen = [body for got, body in self._messages if got == topic]
        assert not seen, f"unexpected message on {topic}: {seen}"

    def request(self, topic: str, body: Any = b"", reply: str = "accepted") -> Any:
        """Subscribe to the reply topics, publish, and return the body on ``topic/reply``."""
        self.subscribe(f"{topic}/accepted", f"{topic}/rejected")
        self.publish(topic, body)
        return self.expect(f"{topic}/{reply}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@pytest.fixture
def unthrottled(stack: LocalStack) -> Iterator[LocalStack]:
    """The module's stack with AWS's per-thing request rate off, for a test that floods one
    thing on purpose (a round-trip measurement); on again after the test."""
    service = stack.shadow_service
    assert service is not None
    service.aws_limits = False
    try:
        yield stack
    finally:
        service.aws_limits = True


@pytest.fixture
def probe(stack: LocalStack) -> Iterator[MqttProbe]:
    client = MqttProbe(stack.host, stack.port)
    yield client
    client.close()


@pytest.fixture
def make_probe() -> Iterator[Callable[..., MqttProbe]]:
    """Factory for probes on any broker, optionally logging in (closed at teardown)."""
    made: list[MqttProbe] = []

    def make(host: str, port: int, login: tuple[str, str] | None = None) -> MqttProbe:
        made.append(MqttProbe(host, port, login))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def thing() -> str:
    """A fresh thing name per test, so tests sharing a stack do not see each other."""
    return f"thing-{uuid.uuid4().hex[:10]}"
