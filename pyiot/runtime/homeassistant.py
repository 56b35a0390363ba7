"""Home Assistant over MQTT discovery: every pyiot component a device, every property an entity.

A second MQTT client (paho-mqtt, as the local shadow service and Home Assistant itself use)
beside the gateway's shadow connection, on the same broker or on a broker of its own when the
shadows live on AWS IoT Core (Home Assistant cannot connect to AWS IoT's mutual-TLS endpoint).

What it does, in the order a value travels:

- On connect: reads back the retained discovery configs published for its things before; any
  that the files no longer produce are cleared (an empty retained config removes the entity);
  then publishes every config, the availability and every known state, all retained.
- Device -> Home Assistant: it listens to each component engine, as the thing does; each value
  (the same the thing reports to the shadow) is published retained on its state topic, each
  change of a component's online state on the component's availability topic.
- Home Assistant -> device: a message on a command topic becomes a desired update of the
  thing's shadow (`{"state": {"desired": {"volume": 20}}}`), so it takes exactly the path of
  any desired change: validated, held or refused by modes, rejected visibly in
  `reported.pyiot.rejected` and the log. It never reaches an engine directly.
- Availability: an entity is available when both the gateway (`online` while connected, its
  MQTT last will `offline` when pyiot dies, `offline` published on a clean stop) and its
  component (online in pyiot's sense) are.
- Home Assistant's birth message (`<prefix>/status` = `online`) republishes configs, states
  and availability, for brokers that lost the retained ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pyiot.lang.model import Property, Value
from pyiot.runtime.broker import BrokerAddress
from pyiot.runtime.documents import Path, nest
from pyiot.runtime.ha_discovery import (
    OFFLINE,
    ONLINE,
    Entity,
    Topics,
    command_value,
    gateway_id,
    state_text,
    thing_entities,
)

if TYPE_CHECKING:
    from pyiot.runtime.component import ComponentStatus
    from pyiot.runtime.gateway import Gateway

_LOGGER = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 30
CONNECT_TIMEOUT = 10.0
# Publishes held while the broker is away or slow; beyond this paho refuses new ones (each is
# retained and everything is republished on reconnect, so none is lost for good). A large
# gateway's start publishes a config and a state per property at once.
MAX_QUEUED = 10_000
MAX_INFLIGHT = 100
# Commands being passed to the shadow at most; more are dropped (a flood is no user).
MAX_PENDING_COMMANDS = 100
# A command larger than this is no property value (a shadow document is at most 8 KB).
MAX_COMMAND_BYTES = 8192
QOS = 1


@dataclass(frozen=True)
class _Target:
    """Where a command topic leads: a thing's shadow key, and the property's type."""

    thing: str
    key: Path
    prop: Property


class HomeAssistantBridge:
    """Publishes a gateway's components to Home Assistant and passes its commands on."""

    def __init__(self, gateway: Gateway, broker: BrokerAddress, prefix: str = "homeassistant"):
        self.gateway = gateway
        self.broker = broker
        self.topics = Topics(gateway_id(list(gateway.things)), prefix)
        self.entities: list[Entity] = []
        self._targets: dict[str, _Target] = {}
        self._states: dict[tuple[str, str, str], str] = {}  # (thing, component, prop) -> topic
        for name, runtime in gateway.things.items():
            devices = {component: engine.device for component, engine in runtime.engines.items()}
            self.entities += thing_entities(name, devices, self.topics)
            for key, (engine, prop) in runtime.keys.items():
                command = self.topics.command(name, engine.name, prop)
                self._targets[command] = _Target(name, key, engine.device.properties[prop])
                self._states[(name, engine.name, prop)] = self.topics.state(name, engine.name, prop)
        self.cleared: list[str] = []  # config topics emptied at start (published before, gone now)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future | None = None
        self._collecting: dict[str, bytes] | None = None
        self._probe: tuple[str, asyncio.Future] | None = None
        self._ready = False
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"pyiot-ha-{self.topics.gateway}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self._client.max_queued_messages_set(MAX_QUEUED)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._refused = False  # a publish paho refused (queue full), logged once per episode
        if broker.username is not None:
            self._client.username_pw_set(broker.username, broker.password)
        # When pyiot dies the broker says so for it: every entity becomes unavailable.
        self._client.will_set(self.topics.availability, OFFLINE, qos=QOS, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_socket_open = _no_nagle
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._last_failure: str | None = None
        self._client.on_message = self._on_message

    def summary(self) -> str:
        """One line for the console: what was published where."""
        cleared = f", {len(self.cleared)} removed" if self.cleared else ""
        return (
            f"{len(self.entities)} entities under {self.topics.prefix}/ on {self.broker}{cleared}"
        )

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect, clear what is gone, publish everything, then follow the engines."""
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._client.connect_async(self.broker.host, self.broker.port, KEEP_ALIVE_SECONDS)
        self._client.loop_start()
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except (asyncio.TimeoutError, ConnectionError) as err:
            await self._shutdown()
            reason = f": {str(err) or self._last_failure or 'no answer'}"
            raise ConnectionError(
                f"cannot reach the Home Assistant broker at {self.broker}{reason}"
            ) from None
        await self._clear_removed(timeout)
        for runtime in self.gateway.things.values():
            for engine in runtime.engines.values():
                engine.value_listeners.append(functools.partial(self._on_value, runtime.name))
                engine.status_listeners.append(functools.partial(self._on_status, runtime.name))
        self._ready = True
        self._publish_all()
        # Started means published: the broker has them all once it acknowledges the last
        # (one connection's QoS 1 publishes are handled in order).
        last = self._publish(self.topics.availability, ONLINE)
        await self._acknowledged(last)

    async def _acknowledged(self, info: mqtt.MQTTMessageInfo) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(info.wait_for_publish, CONNECT_TIMEOUT)
            )

    async def stop(self) -> None:
        """Say `offline` (a clean stop makes the entities unavailable too) and disconnect."""
        self._stopping = True
        self._ready = False
        for task in self._tasks:
            task.cancel()
        if self._client.is_connected():
            info = self._publish(self.topics.availability, OFFLINE)
            await self._acknowledged(info)
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._client.disconnect()
        # loop_stop joins paho's thread: not on the event loop.
        await asyncio.get_running_loop().run_in_executor(None, self._client.loop_stop)

    async def _clear_removed(self, timeout: float) -> None:
        """Empty the retained configs of this gateway's things that the files no longer give.

        The broker is the record: the retained configs under each thing's node id are read
        back, and a probe message published after subscribing marks the end of them (a
        broker sends a subscription's retained messages before later publishes).
        """
        assert self._loop is not None
        found: dict[str, bytes] = {}
        self._collecting = found
        probe = f"pyiot/_gateway/{self.topics.gateway}/probe/{uuid.uuid4().hex}"
        done = self._loop.create_future()
        self._probe = (probe, done)
        filters = [self.topics.configs(thing) for thing in self.gateway.things]
        self._client.subscribe([(topic, QOS) for topic in [*filters, probe]])
        self._client.publish(probe, b"", qos=QOS)
        try:
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            _LOGGER.warning("Home Assistant: could not read back earlier configs; none cleared")
            found = {}
        finally:
            self._collecting = None
            self._probe = None
            self._client.unsubscribe([*filters, probe])
        current = {entity.topic(self.topics.prefix) for entity in self.entities}
        for topic, payload in sorted(found.items()):
            if payload and topic not in current:
                _LOGGER.info("Home Assistant: removing %s (no longer in the files)", topic)
                self._publish(topic, b"")
                self.cleared.append(topic)

    def _publish(self, topic: str, payload: str | bytes) -> mqtt.MQTTMessageInfo:
        """Publish retained at QoS 1; a publish paho refuses (its queue full) is logged."""
        info = self._client.publish(topic, payload, qos=QOS, retain=True)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE and not self._refused:
            self._refused = True
            _LOGGER.warning(
                "Home Assistant: %d publishes queued; dropping until reconnected", MAX_QUEUED
            )
        return info

    def _publish_all(self) -> None:
        """Configs, availability and every known state (on start, reconnect, HA's birth)."""
        self._refused = False
        self._publish(self.topics.availability, ONLINE)
        for entity in self.entities:
            self._publish(entity.topic(self.topics.prefix), entity.payload())
        for runtime in self.gateway.things.values():
            for engine in runtime.engines.values():
                self._on_status(runtime.name, engine.name, engine.status)
                for prop, value in engine.values.items():
                    self._on_value(runtime.name, engine.name, prop, value)

    # engines -> Home Assistant (event loop) --------------------------------------------------
    def _on_value(self, thing: str, component: str, prop: str, value: Value) -> None:
        topic = self._states.get((thing, component, prop))
        if topic is not None and self._ready:
            self._publish(topic, state_text(value))

    def _on_status(self, thing: str, component: str, status: ComponentStatus) -> None:
        if self._ready:
            topic = self.topics.component_availability(thing, component)
            self._publish(topic, ONLINE if status.online else OFFLINE)

    # Home Assistant -> shadow (event loop) ---------------------------------------------------
    def _command(self, topic: str, payload: bytes) -> None:
        target = self._targets.get(topic)
        if target is None:
            _LOGGER.warning("Home Assistant: no property has the command topic %s", topic)
            return
        if len(payload) > MAX_COMMAND_BYTES:
            _LOGGER.warning("Home Assistant: command on %s too big: %d bytes", topic, len(payload))
            return
        if len(self._tasks) >= MAX_PENDING_COMMANDS:
            _LOGGER.warning(
                "Home Assistant: command on %s dropped: %d pending", topic, len(self._tasks)
            )
            return
        value = command_value(target.prop, payload.decode("utf-8", errors="replace"))
        _LOGGER.info("Home Assistant: %s asks %r", topic, value)
        task = asyncio.create_task(self._desire(target, value), name=f"ha:{topic}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _desire(self, target: _Target, value: Any) -> None:
        """The command as a desired change of the thing's shadow: the thing does the rest."""
        try:
            await self.gateway.shadow.update(target.thing, desired=nest(target.key, value))
        except (RuntimeError, ConnectionError) as err:
            _LOGGER.warning(
                "Home Assistant: %s = %r not passed to the shadow: %s",
                ".".join(target.key),
                value,
                err,
            )

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        if self._probe is not None and topic == self._probe[0]:
            if not self._probe[1].done():
                self._probe[1].set_result(True)
        elif self._collecting is not None and topic.endswith("/config"):
            self._collecting[topic] = payload
        elif topic == self.topics.birth:
            if payload == ONLINE.encode() and self._ready:
                _LOGGER.info("Home Assistant is online: publishing configs and states")
                self._publish_all()
        elif topic in self._targets and not retained:
            # A retained command would be replayed at every start: only live ones count.
            self._command(topic, payload)

    # paho's network thread -> event loop ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, code: Any, props: Any):
        assert self._loop is not None
        if code.is_failure:
            error = ConnectionError(f"the broker refused the connection: {code}")
            self._loop.call_soon_threadsafe(self._resolve_connect, error)
            return
        # A clean session: subscribe again on every (re)connect.
        topics = [self.topics.birth, *(self.topics.commands(t) for t in self.gateway.things)]
        client.subscribe([(topic, QOS) for topic in topics])
        self._loop.call_soon_threadsafe(self._resolve_connect, None)

    def _resolve_connect(self, error: BaseException | None) -> None:
        if self._connected is not None and not self._connected.done():
            if error is None:
                self._connected.set_result(True)
            else:
                self._connected.set_exception(error)
        elif error is None and self._ready:
            _LOGGER.warning("Home Assistant broker %s is back: publishing everything", self.broker)
            self._publish_all()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho says only that it failed; the refused socket is the usual cause.
        self._last_failure = "connection refused or no route"

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, code: Any, props: Any):
        if not self._stopping:
            _LOGGER.warning(
                "lost the Home Assistant broker %s (%s); reconnecting", self.broker, code
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has closed: pyiot is stopping
            self._loop.call_soon_threadsafe(
                self._message, message.topic, bytes(message.payload), bool(message.retain)
            )


def _no_nagle(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    # paho leaves Nagle on: every command would wait ~40 ms for a delayed ACK.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def start_homeassistant(
    settings: Any, gateway: Gateway, shadow_broker: Any
) -> HomeAssistantBridge | None:
    """The bridge `pyiot run --homeassistant` asks for (None when not asked), started.

    `settings` is a `pyiot.config.HomeAssistantSettings`; the bridge uses its own broker, else
    the shadows' (which is then a plain broker: the settings refuse AWS IoT alone).
    """
    if settings is None or not settings.enabled:
        return None
    broker = settings.broker or shadow_broker
    bridge = HomeAssistantBridge(gateway, broker, settings.prefix)
    await bridge.start()
    return bridge


async def stop_homeassistant(bridge: HomeAssistantBridge | None) -> None:
    if bridge is not None:
        await bridge.stop()
