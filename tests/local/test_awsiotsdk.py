"""The local shadow service against the real awsiotsdk shadow clients (V2 over MQTT 5, V1 over
MQTT 3), built directly on awscrt without TLS (the awsiotsdk builders always add TLS)."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import ServiceStreamOptions, V2ServiceException, iotshadow

from pyiot.local import LocalStack

pytestmark = pytest.mark.timeout(30)
WAIT = 5.0


@pytest.fixture
def mqtt5_client(stack: LocalStack) -> Iterator[mqtt5.Client]:
    connected: Future[bool] = Future()
    stopped: Future[bool] = Future()

    def on_success(data: mqtt5.LifecycleConnectSuccessData) -> None:
        if not connected.done():
            connected.set_result(True)

    def on_failure(data: mqtt5.LifecycleConnectFailureData) -> None:
        if not connected.done():
            connected.set_exception(RuntimeError(f"connect failed: {data.exception}"))

    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=stack.host,
            port=stack.port,
            connect_options=mqtt5.ConnectPacket(
                client_id=f"v2-{uuid.uuid4().hex[:8]}", keep_alive_interval_sec=30
            ),
            on_lifecycle_event_connection_success_fn=on_success,
            on_lifecycle_event_connection_failure_fn=on_failure,
            on_lifecycle_event_stopped_fn=lambda data: stopped.set_result(True),
        )
    )
    client.start()
    connected.result(WAIT)
    yield client
    client.stop()
    stopped.result(WAIT)


@pytest.fixture
def shadow_v2(mqtt5_client: mqtt5.Client) -> iotshadow.IotShadowClientV2:
    return iotshadow.IotShadowClientV2(
        mqtt5_client,
        mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=4,
            max_streaming_subscriptions=4,
            operation_timeout_in_seconds=10,
        ),
    )


def service_error(future: Future) -> iotshadow.V2ErrorResponse:
    with pytest.raises(V2ServiceException) as info:
        future.result(WAIT)
    assert info.value.modeled_error is not None, info.value.message
    return info.value.modeled_error


def test_v2_get_update_get_delete(shadow_v2, thing) -> None:
    missing = service_error(shadow_v2.get_shadow(iotshadow.GetShadowRequest(thing_name=thing)))
    assert missing.code == 404

    updated = shadow_v2.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            state=iotshadow.ShadowState(
                desired={"volume": 12, "input": "tv"}, reported={"volume": 5}
            ),
        )
    ).result(WAIT)
    assert updated.version == 1
    assert updated.state.desired == {"volume": 12, "input": "tv"}
    assert "volume" in updated.metadata.reported

    got = shadow_v2.get_shadow(iotshadow.GetShadowRequest(thing_name=thing)).result(WAIT)
    assert got.version == 1
    assert got.state.reported == {"volume": 5}
    assert got.state.delta == {"volume": 12, "input": "tv"}

    deleted = shadow_v2.delete_shadow(iotshadow.DeleteShadowRequest(thing_name=thing)).result(WAIT)
    assert deleted.version == 1
    assert (
        service_error(shadow_v2.get_shadow(iotshadow.GetShadowRequest(thing_name=thing))).code
        == 404
    )


def test_v2_clearing_desired_with_null(shadow_v2, thing) -> None:
    shadow_v2.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(desired={"a": 1})
        )
    ).result(WAIT)
    cleared = shadow_v2.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            state=iotshadow.ShadowState(desired=None, desired_is_nullable=True),
        )
    ).result(WAIT)
    assert cleared.version == 2
    got = shadow_v2.get_shadow(iotshadow.GetShadowRequest(thing_name=thing)).result(WAIT)
    assert got.state.desired is None and got.state.delta is None


def test_v2_version_conflict_is_a_modeled_409(shadow_v2, thing) -> None:
    shadow_v2.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(reported={"a": 1})
        )
    ).result(WAIT)
    error = service_error(
        shadow_v2.update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=thing, state=iotshadow.ShadowState(reported={"a": 2}), version=7
            )
        )
    )
    assert (error.code, error.message) == (409, "Version conflict")


def test_v2_delta_stream(shadow_v2, thing) -> None:
    events: queue.Queue[iotshadow.ShadowDeltaUpdatedEvent] = queue.Queue()
    subscribed: Future[bool] = Future()

    def on_status(event: mqtt_request_response.SubscriptionStatusEvent) -> None:
        established = mqtt_request_response.SubscriptionStatusEventType.SUBSCRIPTION_ESTABLISHED
        if event.type == established and not subscribed.done():
            subscribed.set_result(True)

    stream = shadow_v2.create_shadow_delta_updated_stream(
        iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing),
        ServiceStreamOptions(
            incoming_event_listener=events.put, subscription_status_listener=on_status
        ),
    )
    stream.open()
    subscribed.result(WAIT)

    shadow_v2.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            state=iotshadow.ShadowState(desired={"lights": {"color": {"r": 255, "g": 255}}}),
        )
    ).result(WAIT)
    event = events.get(timeout=WAIT)
    assert event.state == {"lights": {"color": {"r": 255, "g": 255}}}
    assert event.version == 1

    shadow_v2.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            state=iotshadow.ShadowState(reported={"lights": {"color": {"r": 255, "g": 0}}}),
        )
    ).result(WAIT)
    event = events.get(timeout=WAIT)
    assert event.state == {"lights": {"color": {"g": 255}}}
    assert event.version == 2
    del stream  # awscrt StreamingOperation has no close(); it ends when released


def test_v2_named_shadow(shadow_v2, thing) -> None:
    updated = shadow_v2.update_named_shadow(
        iotshadow.UpdateNamedShadowRequest(
            thing_name=thing,
            shadow_name="zone1",
            state=iotshadow.ShadowState(reported={"power": True}),
        )
    ).result(WAIT)
    assert updated.version == 1
    got = shadow_v2.get_named_shadow(
        iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name="zone1")
    ).result(WAIT)
    assert got.state.reported == {"power": True}
    assert (
        service_error(
            shadow_v2.get_named_shadow(
                iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name="zone2")
            )
        ).code
        == 404
    )
    deleted = shadow_v2.delete_named_shadow(
        iotshadow.DeleteNamedShadowRequest(thing_name=thing, shadow_name="zone1")
    ).result(WAIT)
    assert deleted.version == 1


@pytest.fixture
def mqtt3_connection(stack: LocalStack) -> Iterator[mqtt.Connection]:
    connection = mqtt.Connection(
        client=mqtt.Client(None, None),
        host_name=stack.host,
        port=stack.port,
        client_id=f"v1-{uuid.uuid4().hex[:8]}",
        keep_alive_secs=30,
    )
    connection.connect().result(WAIT)
    yield connection
    connection.disconnect().result(WAIT)


def test_v1_client_over_mqtt3(mqtt3_connection, thing) -> None:
    shadow = iotshadow.IotShadowClient(mqtt3_connection)
    qos = mqtt.QoS.AT_LEAST_ONCE
    inbox: queue.Queue[tuple[str, object]] = queue.Queue()

    def sink(kind: str):
        return lambda response: inbox.put((kind, response))

    subscriptions = [
        shadow.subscribe_to_update_shadow_accepted(
            iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), qos, sink("accepted")
        ),
        shadow.subscribe_to_update_shadow_rejected(
            iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), qos, sink("rejected")
        ),
        shadow.subscribe_to_shadow_delta_updated_events(
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing), qos, sink("delta")
        ),
        shadow.subscribe_to_get_shadow_accepted(
            iotshadow.GetShadowSubscriptionRequest(thing_name=thing), qos, sink("get")
        ),
    ]
    for future, _topic in subscriptions:
        future.result(WAIT)

    shadow.publish_update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            client_token="v1-tok",
            state=iotshadow.ShadowState(desired={"relay": "ON"}),
        ),
        qos,
    ).result(WAIT)
    kinds = dict(inbox.get(timeout=WAIT) for _ in range(2))
    assert kinds["accepted"].client_token == "v1-tok"
    assert kinds["accepted"].version == 1
    assert kinds["delta"].state == {"relay": "ON"}

    shadow.publish_update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            client_token="v1-stale",
            version=5,
            state=iotshadow.ShadowState(reported={"relay": "ON"}),
        ),
        qos,
    ).result(WAIT)
    kind, error = inbox.get(timeout=WAIT)
    assert kind == "rejected"
    assert (error.code, error.client_token) == (409, "v1-stale")

    shadow.publish_get_shadow(
        iotshadow.GetShadowRequest(thing_name=thing, client_token="v1-get"), qos
    ).result(WAIT)
    kind, got = inbox.get(timeout=WAIT)
    assert kind == "get"
    assert got.client_token == "v1-get"
    assert got.state.desired == {"relay": "ON"}
    assert got.state.delta == {"relay": "ON"}
