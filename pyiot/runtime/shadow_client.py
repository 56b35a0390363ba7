"""The Device Shadow client: awsiotsdk's IotShadowClientV2 over an awscrt MQTT5 connection.

With `pyiot.runtime.broker`, the one place that imports awscrt/awsiotsdk. It never knows
whether the broker is AWS IoT Core or pyiot's local stack. awscrt calls back on its own threads;
every callback is handed to the asyncio loop with `call_soon_threadsafe`, and every request
future is awaited there. Every operation takes an optional shadow name: None is the classic
shadow, a name selects a named shadow of the same thing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from awscrt import mqtt5, mqtt_request_response
from awsiot import ServiceStreamOptions, V2ServiceException, iotshadow

from pyiot.errors import PyiotError
from pyiot.runtime.broker import (
    AWSCRT_PACKET_COST,
    Broker,
    BrokerAddress,
    Lifecycle,
    TlsEndpoint,
    build_client,
    disable_nagle_towards,
    uses_awscrt_flow_control,
)
from pyiot.runtime.budget import PublishBudget

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "BrokerAddress",
    "ShadowConnection",
    "ShadowError",
    "ShadowTimeout",
    "TlsEndpoint",
    "disable_nagle_towards",
]

REQUEST_TIMEOUT_SECONDS = 10
# MQTT 5 PUBACK reason codes from 0x80 on refuse the publish.
_PUBACK_REFUSED = 0x80
# A request's payload besides its state: `{"clientToken":"<uuid4>"}`.
_TOKEN_PAYLOAD = 55
# QoS 1 replies a request brings, each acknowledged: `accepted` (or `rejected`), and for an
# update `documents` (a `delta` too when desired changed: the budget's headroom covers it).
_REPLY_PACKETS = 2

# What one thing costs in subscriptions on the broker (each topic filter one): its runtime's
# one stream, `update/+` (delta, documents and the answers to its reports: `watch_updates`),
# and room for the request-response client's subscriptions of a get (`get/accepted` and
# `get/rejected`) and of an update an application makes on the same connection (the Home
# Assistant bridge). The request-response client keeps a request's subscriptions after it is
# answered and drops the least recently used only when it needs room; with room for every
# thing's three it seldom churns (SUBSCRIBE/UNSUBSCRIBE, which AWS also rate-limits).
STREAMS_PER_THING = 1
REQUEST_SUBSCRIPTIONS_PER_THING = 3
SUBSCRIPTIONS_PER_THING = STREAMS_PER_THING + REQUEST_SUBSCRIPTIONS_PER_THING
# An application's connection (no thing count given): wide caps.
APP_REQUEST_SUBSCRIPTIONS = 16
APP_STREAMS = 1024


class ShadowError(PyiotError, RuntimeError):
    """The shadow service rejected a request (`code`: its status, 400/404/409/413/429/500/503)
    or the client failed it (`code` None; `client_error`: awscrt's error name, such as
    AWS_ERROR_MQTT_REQUEST_RESPONSE_PUBLISH_FAILURE when the broker refused the request)."""

    what = "shadow request failed"
    code: int | None

    def __init__(self, message: str, code: int | None = None, client_error: str | None = None):
        super().__init__(message)
        self.code = code
        self.client_error = client_error


class ShadowTimeout(ShadowError):
    """No answer within the time given to the request."""

    what = "shadow request unanswered"


DeltaListener = Callable[[dict[str, Any], int], None]
DocumentListener = Callable[[dict[str, Any]], None]


class ShadowConnection:
    """One MQTT connection serving the shadows of one or more things.

    `things` is how many things this connection serves (a gateway's pool says): its
    subscriptions are then capped at exactly what they need (see `subscriptions_for`), so
    the connection stays within AWS IoT Core's 50. Without it (an application, `pyiot
    shadow`) the caps are wide. With `aws_limits` (the default, on every broker) the client
    paces as AWS IoT Core requires: one CONNECT a second at most, and this connection's
    `budget` in front of every request (on the AWS path awscrt's `AWS_IOT_CORE_DEFAULTS`
    also validates and throttles: `pyiot.runtime.broker.build_client`).
    """

    def __init__(
        self,
        broker: Broker,
        client_id: str | None = None,
        things: int | None = None,
        aws_limits: bool = True,
    ):
        self.broker = broker
        if things is None:
            # An application may watch many things: a cap, not an allocation.
            self.max_requests, self.max_streams = APP_REQUEST_SUBSCRIPTIONS, APP_STREAMS
        else:
            self.max_requests = max(2, REQUEST_SUBSCRIPTIONS_PER_THING * things)
            self.max_streams = max(1, STREAMS_PER_THING * things)
        self.client_id = client_id or f"pyiot-{uuid.uuid4().hex[:12]}"
        self.aws_limits = aws_limits
        #: The per-connection publish budget every request waits on (None: not paced).
        self.budget: PublishBudget | None = PublishBudget() if aws_limits else None
        self.on_reconnect: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future | None = None
        self._connections = 0
        self._closing = False
        self._last_failure: str | None = None
        self._streams: list[Any] = []
        self._client: mqtt5.Client | None = None
        self._shadow: iotshadow.IotShadowClientV2 | None = None
        self._will: dict[str, list[str]] = {}

    @property
    def connected_times(self) -> int:
        """How many times this connection has been established (1 + reconnects)."""
        return self._connections

    def declare(self, thing: str, components: list[str]) -> None:
        """Name `thing` and its components in this connection's last will, which reports them
        offline if pyiot dies without a word. The will is fixed when connecting: a thing
        declared later is not in it (its stop still reports it offline)."""
        self._will[thing] = list(components)

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect; raise ConnectionError (with the last failure's reason) after `timeout`."""
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        lifecycle = Lifecycle(self._on_success, self._on_failure, self._on_disconnect)
        self._client = build_client(
            self.broker, self.client_id, lifecycle, self._will, aws_limits=self.aws_limits
        )
        self._shadow = iotshadow.IotShadowClientV2(
            self._client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=self.max_requests,
                max_streaming_subscriptions=self.max_streams,
                operation_timeout_in_seconds=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        self._client.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except asyncio.TimeoutError:
            self._client.stop()
            if self._last_failure:
                reason = f": {self._last_failure}"
            elif isinstance(self.broker, TlsEndpoint):
                # awscrt reports no failure when it distrusts the server's certificate.
                reason = (
                    " (no answer; check that --ca signs the endpoint's certificate and that "
                    f"port {self.broker.port} is open)"
                )
            else:
                reason = ""
            raise ConnectionError(
                f"cannot reach the MQTT broker at {self.broker}{reason}"
            ) from None
        except ConnectionError:
            self._client.stop()
            raise

    # awscrt threads -> loop ------------------------------------------------------------------
    def _on_success(self, data: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._nagle_off_then_connected)

    def _nagle_off_then_connected(self) -> None:
        # awscrt (0.36) has no TCP_NODELAY option (its upstream added one in aws-c-io #816):
        # find its socket among ours and set it, in a worker thread; the scan (and the name
        # lookup) must neither hold awscrt's event thread nor block the loop.
        assert self._loop is not None
        scan = self._loop.run_in_executor(
            None, disable_nagle_towards, self.broker.host, self.broker.port
        )
        scan.add_done_callback(lambda _: self._connected_in_loop())

    def _connected_in_loop(self) -> None:
        self._connections += 1
        self._last_failure = None
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(True)
        if self._connections > 1:
            _LOGGER.warning("reconnected to %s", self.broker)
            if self.on_reconnect is not None:
                self.on_reconnect()

    def _on_failure(self, data: Any) -> None:
        # awscrt names the cause (refused, TLS handshake, not authorized): keep it for the
        # message of a connect() that gives up.
        reason = str(data.exception)
        connack = getattr(data, "connack_packet", None)
        if connack is not None and getattr(connack, "reason_code", None) is not None:
            reason = f"{reason} ({connack.reason_code.name})"
        self._last_failure = reason
        _LOGGER.debug("connection to %s failed: %s", self.broker, reason)
        if self._connected is not None and _is_fatal(reason) and self._loop is not None:
            # A refused certificate or login will be refused again: say so now rather than
            # retrying until the timeout (after a first success, reconnects go on forever).
            error = ConnectionError(f"cannot connect to {self.broker}: {reason}")
            self._loop.call_soon_threadsafe(_resolve, self._connected, error)

    def _on_disconnect(self, data: Any) -> None:
        if not self._closing:
            _LOGGER.warning("disconnected from %s: %s", self.broker, data.exception)

    # shadow operations -------------------------------------------------------------------------
    async def get(
        self, thing: str, shadow: str | None = None, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """The shadow's `state` (desired/reported/delta dicts) and `version`, None if absent.

        `timeout` gives up sooner than the client's own request timeout (raises ShadowError).
        """
        client = self._shadow_client()
        await self._pace(thing, shadow, "get")
        if shadow is None:
            request = client.get_shadow(iotshadow.GetShadowRequest(thing_name=thing))
        else:
            request = client.get_named_shadow(
                iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name=shadow)
            )
        try:
            response = await self._await(request, timeout)
        except ShadowError as err:
            if err.code == 404:
                return None
            raise
        state = response.state
        return {
            "desired": (state.desired if state else None) or {},
            "reported": (state.reported if state else None) or {},
            "delta": (state.delta if state else None) or {},
            "version": response.version,
        }

    async def update(
        self,
        thing: str,
        reported: dict | None = None,
        desired: dict | None = None,
        shadow: str | None = None,
        timeout: float | None = None,
        *,
        paced: bool = True,
    ) -> int | None:
        """Update the shadow; `None` values inside the dicts delete those keys.

        Returns the shadow's new version. The request first waits for this connection's
        `budget`; `paced=False` when the caller already took its place there (an outbox that
        waits before taking its pending changes, with `request_size` as the cost).
        """
        state = iotshadow.ShadowState(desired=desired, reported=reported)
        client = self._shadow_client()
        if paced:
            await self._pace(thing, shadow, "update", {"reported": reported, "desired": desired})
        token = uuid.uuid4().hex
        if shadow is None:
            request = client.update_shadow(
                iotshadow.UpdateShadowRequest(thing_name=thing, client_token=token, state=state)
            )
        else:
            request = client.update_named_shadow(
                iotshadow.UpdateNamedShadowRequest(
                    thing_name=thing, shadow_name=shadow, client_token=token, state=state
                )
            )
        response = await self._await(request, timeout)
        return response.version

    async def delete(self, thing: str, shadow: str | None = None) -> bool:
        """Delete the shadow; False when there was none."""
        client = self._shadow_client()
        await self._pace(thing, shadow, "delete")
        if shadow is None:
            request = client.delete_shadow(iotshadow.DeleteShadowRequest(thing_name=thing))
        else:
            request = client.delete_named_shadow(
                iotshadow.DeleteNamedShadowRequest(thing_name=thing, shadow_name=shadow)
            )
        try:
            await self._await(request)
        except ShadowError as err:
            if err.code == 404:
                return False
            raise
        return True

    def watch_delta(
        self,
        thing: str,
        listener: DeltaListener,
        shadow: str | None = None,
        on_resubscribed: Callable[[], None] | None = None,
    ) -> asyncio.Future:
        """Call `listener(delta_state, version)` in the loop for each `update/delta`.

        Returns a future done when the subscription is established. `on_resubscribed` is
        called in the loop each time it is established again (after a reconnect).
        """
        assert self._loop is not None
        loop = self._loop

        def on_event(event: Any) -> None:
            loop.call_soon_threadsafe(listener, event.state or {}, event.version or 0)

        create, request = self._stream("delta", thing, shadow)
        return self._open_stream(thing, on_event, create, request, on_resubscribed)

    def watch_documents(
        self,
        thing: str,
        listener: DocumentListener,
        shadow: str | None = None,
        on_resubscribed: Callable[[], None] | None = None,
    ) -> asyncio.Future:
        """Call `listener({"state": {desired, reported}, "version"})` for each
        `update/documents` (the shadow after the update)."""
        assert self._loop is not None
        loop = self._loop

        def on_event(event: Any) -> None:
            current = event.current
            state = current.state if current else None
            document = {
                "state": {
                    "desired": (state.desired if state else None) or {},
                    "reported": (state.reported if state else None) or {},
                },
                "version": current.version if current else None,
            }
            loop.call_soon_threadsafe(listener, document)

        create, request = self._stream("documents", thing, shadow)
        return self._open_stream(thing, on_event, create, request, on_resubscribed)

    def _stream(self, kind: str, thing: str, shadow: str | None) -> tuple[Callable, Any]:
        """awsiotsdk's stream factory and request for `kind` ("delta": update/delta,
        "documents": update/documents) of a classic or a named shadow."""
        client = self._shadow_client()
        classic, named = {
            "delta": (
                (
                    client.create_shadow_delta_updated_stream,
                    iotshadow.ShadowDeltaUpdatedSubscriptionRequest,
                ),
                (
                    client.create_named_shadow_delta_updated_stream,
                    iotshadow.NamedShadowDeltaUpdatedSubscriptionRequest,
                ),
            ),
            "documents": (
                (client.create_shadow_updated_stream, iotshadow.ShadowUpdatedSubscriptionRequest),
                (
                    client.create_named_shadow_updated_stream,
                    iotshadow.NamedShadowUpdatedSubscriptionRequest,
                ),
            ),
        }[kind]
        if shadow is None:
            create, request_class = classic
            return create, request_class(thing_name=thing)
        create, request_class = named
        return create, request_class(thing_name=thing, shadow_name=shadow)

    def _open_stream(self, thing, on_event, create, request, on_resubscribed) -> asyncio.Future:
        assert self._loop is not None
        loop = self._loop
        subscribed = loop.create_future()
        on_status = _status_listener(loop, thing, subscribed, on_resubscribed)
        stream = create(
            request, ServiceStreamOptions(on_event, subscription_status_listener=on_status)
        )
        stream.open()
        self._streams.append(stream)
        return subscribed

    # reports: direct QoS 1 publishes (runtime/outbox.py) ------------------------------------
    def publish_report(
        self,
        thing: str,
        token: str,
        reported: dict | None,
        desired: dict | None = None,
        shadow: str | None = None,
        on_failure: Callable[[concurrent.futures.Future, BaseException], None] | None = None,
    ) -> concurrent.futures.Future:
        """Publish a shadow update as a plain QoS 1 message with `clientToken` `token`.

        Returns awscrt's own future, done at the broker's PUBACK (`done()` may be asked from
        any thread). A publish that fails (the client stopping, or a PUBACK whose reason code
        refuses it, such as an ACL's NOT_AUTHORIZED) calls `on_failure(error)` in the loop;
        one the broker takes wakes no one: the service's answer comes to the `watch_updates`
        listener, and every PUBACK handed to the loop would cost a thread hand-over per
        report.
        Cheaper than `update` (no request-response bookkeeping, no awsiotsdk model), and
        callable in the loop iteration that has the value.
        """
        client = self._client
        if client is None or self._shadow is None:
            raise ShadowError("not connected")
        state: dict[str, Any] = {}
        if reported is not None:
            state["reported"] = reported
        if desired is not None:
            state["desired"] = desired
        payload = json.dumps({"state": state, "clientToken": token}, separators=(",", ":"))
        packet = mqtt5.PublishPacket(
            topic=_shadow_topic(thing, shadow, "update"),
            payload=payload.encode(),
            qos=mqtt5.QoS.AT_LEAST_ONCE,
        )
        acked: concurrent.futures.Future = client.publish(packet)
        loop = self._loop

        # `done` names the future by its argument, never by closing over `acked`: the future
        # keeps its callbacks, so a closure over it would make a reference cycle per report
        # (the future, its lock and condition, the PUBACK), garbage that only the cyclic
        # collector frees, in a pause of a few hundred µs every few dozen reports.
        def done(future: concurrent.futures.Future) -> None:  # awscrt's thread (or this one)
            if future.cancelled():
                return
            error = future.exception()
            if error is None:
                puback = getattr(future.result(), "puback", None)
                code = getattr(puback, "reason_code", None)
                if code is None or code < _PUBACK_REFUSED:
                    return
                error = ShadowError(f"the broker refused the report: {code.name}")
            if on_failure is not None and loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(on_failure, future, error)

        acked.add_done_callback(done)
        return acked

    def watch_updates(
        self,
        thing: str,
        on_delta: DeltaListener,
        on_document: DocumentListener,
        on_answer: Callable[[str, int | None, str], None],
        shadow: str | None = None,
        on_resubscribed: Callable[[], None] | None = None,
        tokens: str = "",
    ) -> asyncio.Future:
        """Everything a thing's runtime hears of its shadow, on ONE subscription:
        `$aws/things/T/shadow[/name/N]/update/+`.

        In the loop: `on_delta(state, version)` for `update/delta`, `on_document({"state":
        {desired, reported}, "version"})` for `update/documents` (as `watch_delta` and
        `watch_documents` give them), and `on_answer(client_token, code, message)` for
        `update/accepted` (code None) and `update/rejected` (code "400", "413", "429", ...)
        carrying a client token that starts with `tokens` (others' answers, e.g. to the
        application's own updates, are dropped on awscrt's thread and never wake the loop).
        Returns a future done when subscribed; `on_resubscribed` is called each time it is
        established again (after a reconnect).
        """
        assert self._loop is not None
        loop = self._loop
        subscribed = loop.create_future()
        prefix = _shadow_topic(thing, shadow, "update/")

        marker = tokens.encode()

        def on_publish(event: mqtt_request_response.IncomingPublishEvent) -> None:
            kind = event.topic[len(prefix) :] if event.topic.startswith(prefix) else ""
            payload = bytes(event.payload)
            if kind in ("accepted", "rejected") and marker not in payload:
                return  # the answer to someone else's update: not worth parsing
            try:
                body = json.loads(payload)
            except ValueError:
                return
            if not isinstance(body, dict):
                return
            if kind == "delta":
                delta = _object(body.get("state"))
                loop.call_soon_threadsafe(on_delta, delta, _int(body.get("version")) or 0)
            elif kind == "documents":
                current = _object(body.get("current"))
                state = _object(current.get("state"))
                document = {
                    "state": {
                        "desired": state.get("desired") or {},
                        "reported": state.get("reported") or {},
                    },
                    "version": _int(current.get("version")),
                }
                loop.call_soon_threadsafe(on_document, document)
            elif kind in ("accepted", "rejected"):
                token = body.get("clientToken")
                if not isinstance(token, str) or not token.startswith(tokens):
                    return
                if kind == "accepted":
                    loop.call_soon_threadsafe(on_answer, token, None, "")
                else:
                    raw = body.get("code")
                    code = raw if isinstance(raw, int) and not isinstance(raw, bool) else 500
                    message = str(body.get("message", ""))
                    loop.call_soon_threadsafe(on_answer, token, code, message)

        on_status = _status_listener(loop, thing, subscribed, on_resubscribed)
        operation = self._shadow_client()._rr_client.create_stream(
            mqtt_request_response.StreamingOperationOptions(prefix + "+", on_status, on_publish)
        )
        operation.open()
        self._streams.append(operation)
        return subscribed

    async def close(self) -> None:
        if self._client is None:
            return
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()
        self._closing = True
        self._client.stop()
        # Give the client a moment to send DISCONNECT; it stops on its own thread.
        loop.call_later(0.05, _resolve, stopped, None)
        await stopped
        self._streams.clear()
        self._shadow = None
        self._client = None

    async def _pace(
        self, thing: str, shadow: str | None, action: str, state: dict | None = None
    ) -> None:
        """Wait for this connection's publish budget."""
        if self.budget is not None:
            await self.budget.acquire(self.request_size(thing, shadow, action, state))

    def request_size(
        self, thing: str, shadow: str | None, action: str, state: dict | None = None
    ) -> int:
        """What one request (`action`: get, update, delete) costs in the budget's bytes: its
        topic and payload (a client token, and `state` for an update)."""
        name = f"name/{shadow}/" if shadow else ""
        size = len(f"$aws/things/{thing}/shadow/{name}{action}") + _TOKEN_PAYLOAD
        if state is not None:
            size += len(json.dumps({"state": state}, separators=(",", ":"), default=str))
        if uses_awscrt_flow_control(self.broker):
            # Counted as awscrt's own limiter will (the request and the PUBACKs of its
            # replies, each a whole I/O message), so that requests wait here, not in its queue.
            size = max(size, AWSCRT_PACKET_COST) + _REPLY_PACKETS * AWSCRT_PACKET_COST
        return size

    def _shadow_client(self) -> iotshadow.IotShadowClientV2:
        if self._shadow is None:
            raise ShadowError("not connected")
        return self._shadow

    async def _await(self, future: Any, timeout: float | None = None) -> Any:
        wrapped = asyncio.wrap_future(future)
        # Never cancel awsiotsdk's own future (a timeout here, a task cancelled on stop):
        # it completes it later from its thread and logs an InvalidStateError if cancelled.
        wrapped.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(asyncio.shield(wrapped), timeout)
        except asyncio.TimeoutError:
            raise ShadowTimeout(f"no answer within {timeout:g} s") from None
        except V2ServiceException as err:
            modeled = err.modeled_error
            if modeled is not None and getattr(modeled, "code", None):
                raise ShadowError(f"{modeled.code} {modeled.message}", int(modeled.code)) from err
            name = getattr(err.inner_error, "name", None)
            raise ShadowError(f"{err.message}: {err.inner_error}", client_error=name) from err


# Failures of a first connection that retrying cannot cure: TLS refused (a certificate the
# broker does not accept), or a CONNACK refusing the login.
_FATAL = (
    "AWS_IO_TLS",
    "NOT_AUTHORIZED",
    "BAD_USERNAME_OR_PASSWORD",
    "BANNED",
    "CLIENT_IDENTIFIER_NOT_VALID",
)


def _is_fatal(reason: str) -> bool:
    return any(marker in reason for marker in _FATAL)


def _status_listener(
    loop: asyncio.AbstractEventLoop,
    thing: str,
    subscribed: asyncio.Future,
    on_resubscribed: Callable[[], None] | None,
) -> Callable[[mqtt_request_response.SubscriptionStatusEvent], None]:
    """A stream's subscription status, on awscrt's thread, into the loop: the first
    establishment resolves `subscribed`, each later one (after a reconnect) calls
    `on_resubscribed`, and a halted subscription fails `subscribed`."""
    kinds = mqtt_request_response.SubscriptionStatusEventType

    def on_status(event: mqtt_request_response.SubscriptionStatusEvent) -> None:
        if event.type == kinds.SUBSCRIPTION_ESTABLISHED:
            if not subscribed.done():
                loop.call_soon_threadsafe(_resolve, subscribed, None)
            elif on_resubscribed is not None:
                # After a reconnect: what changed meanwhile is known only to a fresh get.
                loop.call_soon_threadsafe(on_resubscribed)
        elif event.type == kinds.SUBSCRIPTION_HALTED:
            err = ShadowError(f"subscription for {thing} halted: {event.error}")
            loop.call_soon_threadsafe(_resolve, subscribed, err)

    return on_status


def _retrieve(future: asyncio.Future) -> None:
    """Mark an abandoned request's outcome as seen (no "exception never retrieved")."""
    if not future.cancelled():
        future.exception()


def _resolve(future: asyncio.Future, outcome: BaseException | None) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _shadow_topic(thing: str, shadow: str | None, suffix: str) -> str:
    """`$aws/things/T/shadow[/name/N]/SUFFIX`."""
    named = f"/name/{shadow}" if shadow is not None else ""
    return f"$aws/things/{thing}/shadow{named}/{suffix}"
