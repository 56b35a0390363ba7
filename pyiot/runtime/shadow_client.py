"""The Device Shadow client: awsiotsdk's IotShadowClientV2 over an awscrt MQTT5 connection.

This is the one module that imports awscrt/awsiotsdk. It never knows whether the broker is AWS
IoT Core or pyiot's local stack. awscrt calls back on its own threads; every callback is handed
to the asyncio loop with `call_soon_threadsafe`, and every request future is awaited there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from awscrt import mqtt5, mqtt_request_response
from awsiot import ServiceStreamOptions, V2ServiceException, iotshadow

_LOGGER = logging.getLogger(__name__)

# A dead link must be noticed in seconds, not after the SDK builders' 20-minute default.
KEEP_ALIVE_SECONDS = 30
REQUEST_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class BrokerAddress:
    """Where the MQTT broker is: `mqtt://host:port` (plain TCP, local use)."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme != "mqtt" or not parsed.hostname:
            raise ValueError(f"a broker URL looks like mqtt://HOST:PORT, got {url!r}")
        return cls(parsed.hostname, parsed.port or 1883)

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


class ShadowError(RuntimeError):
    """The shadow service rejected a request or did not answer it."""


DeltaListener = Callable[[dict[str, Any], int], None]


class ShadowConnection:
    """One MQTT connection serving the shadows of one or more things."""

    def __init__(self, broker: BrokerAddress, client_id: str | None = None):
        self.broker = broker
        self.client_id = client_id or f"pyiot-{uuid.uuid4().hex[:12]}"
        self.on_reconnect: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future | None = None
        self._connections = 0
        self._closing = False
        self._streams: list[Any] = []
        self._client: mqtt5.Client | None = None
        self._shadow: iotshadow.IotShadowClientV2 | None = None

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect (plain TCP; the awsiotsdk builders always use TLS, so build the client here)."""
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=self.broker.host,
                port=self.broker.port,
                connect_options=mqtt5.ConnectPacket(
                    client_id=self.client_id, keep_alive_interval_sec=KEEP_ALIVE_SECONDS
                ),
                min_reconnect_delay_ms=200,
                max_reconnect_delay_ms=5000,
                on_lifecycle_event_connection_success_fn=self._on_success,
                on_lifecycle_event_connection_failure_fn=self._on_failure,
                on_lifecycle_event_disconnection_fn=self._on_disconnect,
            )
        )
        self._shadow = iotshadow.IotShadowClientV2(
            self._client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=4,
                max_streaming_subscriptions=8,
                operation_timeout_in_seconds=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        self._client.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except TimeoutError:
            self._client.stop()
            raise ConnectionError(f"cannot reach the MQTT broker at {self.broker}") from None

    # awscrt threads -> loop ------------------------------------------------------------------
    def _on_success(self, data: Any) -> None:
        assert self._loop is not None
        disable_nagle_towards(self.broker.host, self.broker.port)
        self._loop.call_soon_threadsafe(self._connected_in_loop)

    def _connected_in_loop(self) -> None:
        self._connections += 1
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(True)
        if self._connections > 1:
            _LOGGER.warning("reconnected to %s", self.broker)
            if self.on_reconnect is not None:
                self.on_reconnect()

    def _on_failure(self, data: Any) -> None:
        _LOGGER.debug("connection to %s failed: %s", self.broker, data.exception)

    def _on_disconnect(self, data: Any) -> None:
        if not self._closing:
            _LOGGER.warning("disconnected from %s: %s", self.broker, data.exception)

    # shadow operations -------------------------------------------------------------------------
    async def get(self, thing: str) -> dict[str, Any] | None:
        """The shadow's `state` (desired/reported/delta dicts), or None when it does not exist."""
        request = iotshadow.GetShadowRequest(thing_name=thing)
        try:
            response = await self._await(self._shadow_client().get_shadow(request))
        except ShadowError as err:
            if "404" in str(err):
                return None
            raise
        state = response.state
        return {
            "desired": state.desired or {},
            "reported": state.reported or {},
            "delta": state.delta or {},
            "version": response.version,
        }

    async def update(self, thing: str, reported: dict | None = None, desired: dict | None = None):
        """Update the shadow; `None` values inside the dicts delete those keys."""
        request = iotshadow.UpdateShadowRequest(
            thing_name=thing,
            client_token=uuid.uuid4().hex,
            state=iotshadow.ShadowState(desired=desired, reported=reported),
        )
        await self._await(self._shadow_client().update_shadow(request))

    def watch_delta(self, thing: str, listener: DeltaListener) -> asyncio.Future:
        """Call `listener(delta_state, version)` in the loop for each `update/delta`.

        Returns a future done when the subscription is established.
        """
        assert self._loop is not None
        loop = self._loop

        def on_event(event: iotshadow.ShadowDeltaUpdatedEvent) -> None:
            loop.call_soon_threadsafe(listener, event.state or {}, event.version or 0)

        return self._open_stream(
            thing,
            on_event,
            self._shadow_client().create_shadow_delta_updated_stream,
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing),
        )

    def watch_documents(
        self, thing: str, listener: Callable[[dict[str, Any]], None]
    ) -> asyncio.Future:
        """Call `listener(current_document)` in the loop for each `update/documents`."""
        assert self._loop is not None
        loop = self._loop

        def on_event(event: iotshadow.ShadowUpdatedEvent) -> None:
            current = event.current
            document = {
                "state": {
                    "desired": (current.state.desired if current and current.state else None) or {},
                    "reported": (current.state.reported if current and current.state else None)
                    or {},
                },
                "version": current.version if current else None,
            }
            loop.call_soon_threadsafe(listener, document)

        return self._open_stream(
            thing,
            on_event,
            self._shadow_client().create_shadow_updated_stream,
            iotshadow.ShadowUpdatedSubscriptionRequest(thing_name=thing),
        )

    def _open_stream(self, thing: str, on_event, create, request) -> asyncio.Future:
        assert self._loop is not None
        loop = self._loop
        subscribed = loop.create_future()

        def on_status(event: mqtt_request_response.SubscriptionStatusEvent) -> None:
            kind = mqtt_request_response.SubscriptionStatusEventType
            if event.type == kind.SUBSCRIPTION_ESTABLISHED:
                loop.call_soon_threadsafe(_resolve, subscribed, None)
            elif event.type == kind.SUBSCRIPTION_HALTED:
                err = ShadowError(f"subscription for {thing} halted: {event.error}")
                loop.call_soon_threadsafe(_resolve, subscribed, err)

        stream = create(
            request, ServiceStreamOptions(on_event, subscription_status_listener=on_status)
        )
        stream.open()
        self._streams.append(stream)
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

    def _shadow_client(self) -> iotshadow.IotShadowClientV2:
        if self._shadow is None:
            raise ShadowError("not connected")
        return self._shadow

    async def _await(self, future: Any) -> Any:
        try:
            return await asyncio.wrap_future(future)
        except V2ServiceException as err:
            modeled = err.modeled_error
            if modeled is not None and getattr(modeled, "code", None):
                raise ShadowError(f"{modeled.code} {modeled.message}") from err
            raise ShadowError(f"{err.message}: {err.inner_error}") from err


def _resolve(future: asyncio.Future, outcome: BaseException | None) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def disable_nagle_towards(host: str, port: int) -> int:
    """Set TCP_NODELAY on this process's TCP sockets connected to `host:port`; return how many.

    awscrt opens its own sockets and offers no TCP_NODELAY option, and with Nagle on every
    shadow round trip waits ~40 ms for a delayed ACK (measured here: 88 ms instead of a few ms
    desired -> reported). The socket is found among the process's file descriptors by its peer
    address; setting the option on a duplicate descriptor sets it on the shared socket.
    """
    try:
        peers = {info[4][:2] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        fds = [
            int(name)
            for name in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd")
        ]
    except OSError:
        return 0
    changed = 0
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            try:
                if sock.type == socket.SOCK_STREAM and sock.getpeername()[:2] in peers:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    changed += 1
            except OSError:
                pass
    return changed
