"""No broker client can pose as the shadow service (issue 11, item 6): the broker's ACL lets
only the service's own login publish `accepted`, `rejected`, `delta` and `documents`, and a
login reaches only its own things. Real mosquitto, the real shadow service, paho clients and
pyiot's awscrt shadow client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyiot.local import LocalStack
from pyiot.local.auth import SERVICE_USER
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection
from tests.local.conftest import MqttProbe
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)

FORGED = {"state": {"relayState": "FORGED"}, "version": 10**9, "timestamp": 1}


@pytest.fixture
def stack(mosquitto_path: str, tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(data_dir=tmp_path / "data") as running:
        yield running


@pytest.fixture
def probes() -> Iterator[list[MqttProbe]]:
    made: list[MqttProbe] = []
    yield made
    for probe in made:
        probe.close()


def forged_topics(thing: str) -> list[str]:
    topics = []
    for prefix in (f"$aws/things/{thing}/shadow", f"$aws/things/{thing}/shadow/name/settings"):
        for op in ("update", "get", "delete"):
            topics += [f"{prefix}/{op}/accepted", f"{prefix}/{op}/rejected"]
        topics += [f"{prefix}/update/delta", f"{prefix}/update/documents"]
    return topics


@pytest.mark.parametrize("forger_login", [None, SERVICE_USER], ids=["anonymous", "posing"])
def test_a_forged_reply_never_reaches_a_subscriber(stack, probes, forger_login) -> None:
    thing = f"relay{uuid.uuid4().hex[:8]}"
    deltas: list[dict[str, Any]] = []

    async def scenario() -> None:
        # The thing's side, as pyiot runs it: awscrt's shadow client watching deltas.
        connection = ShadowConnection(BrokerAddress.parse(stack.url))
        await connection.connect()
        try:
            await connection.watch_delta(thing, lambda state, version: deltas.append(state))
            # Everything any subscriber could see.
            watcher = MqttProbe(stack.host, stack.port)
            probes.append(watcher)
            watcher.subscribe(f"$aws/things/{thing}/shadow/#")
            login = (forger_login, "a guess") if forger_login else None
            forger = MqttProbe(stack.host, stack.port, login)
            probes.append(forger)
            for topic in forged_topics(thing):
                forger.publish(topic, FORGED)
            # A genuine request from the same client: the broker handles its publishes in
            # order, so the service's genuine delta comes after any forged message would.
            forger.publish(
                f"$aws/things/{thing}/shadow/update",
                {"state": {"desired": {"relayState": "GENUINE"}}},
            )
            await eventually(lambda: deltas, what="the genuine delta")
            await eventually(
                lambda: f"$aws/things/{thing}/shadow/update/documents" in watcher.received,
                what="the genuine documents",
            )
        finally:
            await connection.close()
        assert deltas == [{"relayState": "GENUINE"}]
        replies = [topic for topic in watcher.received if topic in forged_topics(thing)]
        # Only the service's own replies to the genuine update, once each.
        assert sorted(replies) == sorted(
            [
                f"$aws/things/{thing}/shadow/update/accepted",
                f"$aws/things/{thing}/shadow/update/delta",
                f"$aws/things/{thing}/shadow/update/documents",
            ]
        )

    asyncio.run(scenario())


def test_the_service_login_cannot_be_guessed_on_its_own_listener(stack) -> None:
    from tests.local.test_auth import connect

    service_port = stack.shadow_service.port
    assert service_port != stack.port
    assert connect(service_port) != "Success"  # anonymous
    assert connect(service_port, SERVICE_USER, "a guess") != "Success"


def test_a_login_reaches_only_its_own_and_granted_things(mosquitto_path, tmp_path, probes):
    users = {"lamp": "pw-lamp", "app": "pw-app"}
    with LocalStack(data_dir=tmp_path / "data", users=users, grants={"app": ["door"]}) as stack:

        def login(user: str) -> MqttProbe:
            probes.append(MqttProbe(stack.host, stack.port, (user, users[user])))
            return probes[-1]

        lamp, app = login("lamp"), login("app")
        report = {"state": {"reported": {"on": True}}}
        # The login named like a thing reaches that thing.
        assert lamp.request("$aws/things/lamp/shadow/update", report)["version"] == 1
        # ... and not another one: its request to door is dropped by the broker, before the
        # one to its own thing that it then waits for.
        lamp.publish("$aws/things/door/shadow/update", report)
        assert lamp.request("$aws/things/lamp/shadow/update", report)["version"] == 2
        # app is granted door: door's shadow was never made.
        missing = app.request("$aws/things/door/shadow/get", reply="rejected")
        assert missing["code"] == 404
        assert app.request("$aws/things/door/shadow/update", report)["version"] == 1
        # app is not granted lamp: its update is dropped; lamp's shadow stays at version 2.
        app.publish("$aws/things/lamp/shadow/update", report)
        assert lamp.request("$aws/things/lamp/shadow/get")["version"] == 2
        # Nor may a login publish replies on its own thing.
        lamp.subscribe("$aws/things/lamp/shadow/update/delta")
        lamp.publish("$aws/things/lamp/shadow/update/delta", FORGED)
        lamp.publish("$aws/things/lamp/shadow/update", {"state": {"desired": {"on": False}}})
        assert lamp.expect("$aws/things/lamp/shadow/update/delta")["state"] == {"on": False}
