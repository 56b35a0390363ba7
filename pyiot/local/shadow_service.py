"""pyiot's local Device Shadow service: answers AWS IoT shadow topics on any MQTT broker.

An ordinary MQTT client (paho-mqtt 2.x) subscribed to the request topics of classic and named
shadows (``$aws/things/+/shadow/{get,update,delete}`` and
``$aws/things/+/shadow/name/+/{get,update,delete}``). Requests are answered one at a time, in
the order received, so updates to a shadow are serialised: on paho's network thread when
nothing is waiting (the quick path), else queued for one worker thread that answers them in
order (a slow store then holds the worker, not the connection). Documents are persisted in a
:class:`~pyiot.local.store.ShadowStore` *before* ``accepted`` is published.
A request is *in flight* from when it is received until it is answered: with ``aws_limits``,
a thing with 10 requests in flight has the next one answered 429 at once, as AWS IoT's Device
Shadow service does ("more than 10 in-flight requests").

Replies follow AWS IoT: ``.../accepted`` or ``.../rejected`` (with ``clientToken`` echoed on
every one, as awsiotsdk's ``IotShadowClientV2`` correlates by it), then for an accepted update
``update/delta`` (when there is something to say) and ``update/documents``, in that order.
AWS IoT promises no order between ``update/accepted`` and ``update/delta`` (they carry the same
version); ``delta_first=True`` publishes the delta first, so clients can be tested both ways.

A gateway's MQTT last will (``pyiot/will/CLIENT_ID``, published by the broker when a pyiot
dies without disconnecting) is applied here as an AWS IoT rule would: each component it names
that the thing's shadow lists under ``reported.pyiot.components`` is written offline, through
an ordinary update (accepted, delta, documents published as usual). Nothing else in the will
is taken: any client may publish on that topic, so it can mark listed components offline and
no more (pyiot corrects a false "offline" for a component it runs at once).

Run on its own (used by tests that kill it): ``python -m pyiot.local.shadow_service --port N
--db PATH``.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pyiot.local.auth import Credentials
from pyiot.local.service import Service
from pyiot.local.shadow_doc import (
    ShadowError,
    lenient_client_token,
    not_found,
    parse_json,
    validate_shadow_name,
    validate_thing_name,
)
from pyiot.local.store import ShadowStore

_LOGGER = logging.getLogger(__name__)

REQUEST_TOPICS = tuple(
    f"$aws/things/+/shadow/{prefix}{op}"
    for prefix in ("", "name/+/")
    for op in ("get", "update", "delete")
)
#: Where pyiot gateways leave their last will (see pyiot.runtime.broker).
WILL_TOPICS = "pyiot/will/+"
_WILL_ERROR_SHOWN = 200
_QOS = 1
_KEEPALIVE_S = 30
_START_TIMEOUT_S = 10.0
#: AWS IoT Core's Device Shadow quota: "up to 20 requests per second per thing", counted per
#: thing (all its shadows, every operation), not per API. Above it, 429.
REQUESTS_PER_SECOND_PER_THING = 20
#: AWS IoT Core's Device Shadow quota: in-flight (received, not yet answered) requests per
#: thing; the one beyond is answered 429.
MAX_IN_FLIGHT_PER_THING = 10
#: Requests queued for the worker at most; beyond, paho's network thread waits (backpressure
#: to the broker).
_MAX_QUEUED = 10_000
_THROTTLE_LOG_S = 1.0
#: Things whose request budget is tracked at most; a full bucket carries no information, so
#: those are forgotten first (a flood of made-up thing names cannot grow the table for ever).
_MAX_TRACKED_THINGS = 10_000


def parse_topic(topic: str) -> tuple[str, str | None, str] | None:
    """``(thing, shadow_name or None, operation)`` of a shadow request topic, else None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3] == "shadow":
        return parts[2], None, parts[4]
    if (
        len(parts) == 7
        and parts[:2] == ["$aws", "things"]
        and parts[3] == "shadow"
        and parts[4] == "name"
    ):
        return parts[2], parts[5], parts[6]
    return None


def _now() -> int:
    return int(time.time())


class RequestBudget:
    """A token bucket per thing: `rate` requests a second, bursts of up to `rate`.

    Not thread-safe by itself: the service uses it from paho's one network thread.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # thing -> (tokens, when)

    def take(self, thing: str) -> bool:
        """Spend one request of `thing`'s budget; False when there is none left."""
        now = self.clock()
        tokens, when = self._buckets.get(thing, (self.rate, now))
        tokens = min(self.rate, tokens + max(0.0, now - when) * self.rate)
        if tokens < 1:
            self._buckets[thing] = (tokens, now)
            return False
        self._buckets[thing] = (tokens - 1, now)
        if len(self._buckets) > _MAX_TRACKED_THINGS:
            self._forget_full(now)
        return True

    def _forget_full(self, now: float) -> None:
        full = [
            thing
            for thing, (tokens, when) in self._buckets.items()
            if tokens + (now - when) * self.rate >= self.rate
        ]
        for thing in full:
            del self._buckets[thing]
        # Still too many (a flood of names): forget the oldest too, down to nine in ten, so
        # that this scan runs once per thousand new names, not on every request.
        while len(self._buckets) > _MAX_TRACKED_THINGS * 9 // 10:
            del self._buckets[next(iter(self._buckets))]


class ShadowService(Service):
    """The local Device Shadow service, connected to the broker at ``host:port``.

    ``credentials`` log it in when the broker requires passwords. ``aws_limits`` (on by
    default) throttles each thing to AWS IoT Core's 20 requests a second and 10 requests in
    flight, answering 429 beyond as AWS does; off, a test or benchmark may flood one thing.
    It may be changed while running.
    """

    def __init__(
        self,
        host: str,
        port: int,
        store: ShadowStore,
        *,
        credentials: Credentials | None = None,
        delta_first: bool = False,
        aws_limits: bool = True,
    ) -> None:
        self.host = host
        self.aws_limits = aws_limits
        self.budget = RequestBudget(REQUESTS_PER_SECOND_PER_THING)
        self.port = port
        self.store = store
        self.delta_first = delta_first
        self._queue: queue.Queue[tuple[str, bytes, str | None] | None] = queue.Queue(_MAX_QUEUED)
        self._in_flight: dict[str, int] = {}
        self._in_flight_lock = threading.Lock()
        self._queued = 0  # requests handed to the worker and not yet answered
        self._worker: threading.Thread | None = None
        self._refused_logged = 0.0
        self._refused_since_log = 0
        self._subscribed = threading.Event()
        self._failure: str | None = None
        self._started = False
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"pyiot-shadow-service-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        # Replies to a burst of requests must not wait on paho's default window of 20.
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        if credentials is not None:
            self._client.username_pw_set(credentials.username, credentials.password)
        # A restarted broker should find the service back at once: things re-read their
        # shadows as soon as they reconnect, and a request sent before the service is back
        # goes unanswered until the client's timeout.
        # paho's annotations say int; it sleeps for any number of seconds.
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)  # type: ignore[arg-type]
        self._client.on_socket_open = self._on_socket_open
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = _START_TIMEOUT_S) -> None:
        """Connect, subscribe, and return once the subscriptions are granted."""
        if self._started:
            return
        self._subscribed.clear()
        self._failure = None
        self._worker = threading.Thread(
            target=self._work, name="pyiot-shadow-service", daemon=True
        )
        self._worker.start()
        self._client.connect_async(self.host, self.port, keepalive=_KEEPALIVE_S)
        self._client.loop_start()
        self._started = True
        # A refused login (wrong password) sets _failure through _on_connect.
        if not self._subscribed.wait(timeout) or self._failure:
            reason = self._failure or f"no subscription within {timeout:.0f} s"
            self.stop()
            raise RuntimeError(
                f"shadow service could not start on mqtt://{self.host}:{self.port}: {reason}"
            )
        _LOGGER.info("shadow service ready on mqtt://%s:%d", self.host, self.port)

    def stop(self) -> None:
        """Disconnect and stop the network thread (the store stays open)."""
        if not self._started:
            return
        self._started = False
        self._client.disconnect()
        self._client.loop_stop()
        if self._worker is not None:
            self._queue.put(None)  # after every request already received
            self._worker.join()
            self._worker = None
        _LOGGER.info("shadow service stopped")

    # -- paho callbacks (network thread) -------------------------------------------------
    @staticmethod
    def _on_socket_open(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # paho leaves Nagle on: one such hop turns a ~2 ms request/reply into ~45 ms.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError) as exc:  # not a TCP socket (e.g. a unix socket)
            _LOGGER.debug("could not set TCP_NODELAY: %s", exc)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._failure = f"broker refused the connection: {reason_code}"
            self._subscribed.set()
            return
        # Clean session: subscribe again on every (re)connect.
        client.subscribe([(topic, _QOS) for topic in (*REQUEST_TOPICS, WILL_TOPICS)])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any], properties: Any
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self._failure = f"broker refused the subscriptions: {', '.join(refused)}"
            _LOGGER.error("%s", self._failure)
        self._subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if self._started:
            _LOGGER.warning("shadow service lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)  # paho types it bytes | bytearray; bytes costs no copy
        try:
            self.receive(msg.topic, payload)
        except Exception:  # never let one request kill paho's network thread
            _LOGGER.exception("shadow request on %s failed", msg.topic)

    def receive(self, topic: str, payload: bytes) -> None:
        """Take one message from the broker: answer it here when nothing waits, else queue it
        for the worker; or answer 429 at once when its thing already has the most requests in
        flight AWS IoT allows."""
        parsed = parse_topic(topic)
        thing = parsed[0] if parsed is not None else None
        if thing is not None:
            with self._in_flight_lock:
                busy = self._in_flight.get(thing, 0)
                if self.aws_limits and busy >= MAX_IN_FLIGHT_PER_THING:
                    refused = True
                else:
                    refused = False
                    self._in_flight[thing] = busy + 1
            if refused:
                self._log_in_flight(thing, busy + 1)
                err = ShadowError(429, "Too Many Requests")
                self._publish(
                    f"{topic}/rejected", err.payload(_now(), lenient_client_token(payload))
                )
                return
        with self._in_flight_lock:
            # Nothing queued or being answered, and the store free: answer here, on paho's
            # network thread, saving two thread hand-overs (to the worker and back for the
            # publishes), about half of the service's time per request. Otherwise queue it
            # behind the others, so that requests are still answered in order, and this
            # thread never waits for the store.
            inline = self._queued == 0 and self.store.try_hold()
            if not inline:
                self._queued += 1
        if inline:
            try:
                self._answer(topic, payload, thing)
            finally:
                self.store.release()
        else:
            self._queue.put((topic, payload, thing))

    def _log_in_flight(self, thing: str, count: int) -> None:
        # One line a second at most: a flood of requests must not flood the log too.
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._refused_logged < _THROTTLE_LOG_S:
            return
        _LOGGER.warning(
            "AWS IoT quota: thing %r: more than %d shadow requests in flight (%d); answered "
            "429 (%d such answers since the last line)",
            thing, MAX_IN_FLIGHT_PER_THING, count, self._refused_since_log,
        )  # fmt: skip
        self._refused_logged = now
        self._refused_since_log = 0

    def in_flight(self, thing: str) -> int:
        """Requests of `thing` received and not yet answered."""
        with self._in_flight_lock:
            return self._in_flight.get(thing, 0)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._answer(*item)
            finally:
                with self._in_flight_lock:
                    self._queued -= 1

    def _answer(self, topic: str, payload: bytes, thing: str | None) -> None:
        """Answer one received request (or apply a last will); it is then no longer in flight."""
        try:
            if not self._started:
                pass  # stopping: no connection to answer on
            elif topic.startswith("pyiot/will/"):
                self.apply_will(payload)
            else:
                self.handle(topic, payload)
        except Exception:  # never let one request end the worker or paho's thread
            _LOGGER.exception("shadow request on %s failed", topic)
        finally:
            if thing is not None:
                with self._in_flight_lock:
                    left = self._in_flight.pop(thing, 1) - 1
                    if left > 0:
                        self._in_flight[thing] = left

    # -- requests ------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> None:
        """Answer one request published on ``topic``."""
        parsed = parse_topic(topic)
        if parsed is None:
            return
        thing, shadow_name, op = parsed
        handler = {"get": self._get, "update": self._update, "delete": self._delete}.get(op)
        if handler is None:
            return
        now = _now()
        try:
            validate_thing_name(thing)
            validate_shadow_name(shadow_name)
            if self.aws_limits and not self.budget.take(thing):
                raise ShadowError(429, "Too Many Requests")
            handler(topic, thing, shadow_name, payload, now)
        except ShadowError as err:
            self._publish(f"{topic}/rejected", err.payload(now, lenient_client_token(payload)))
        except Exception:
            _LOGGER.exception("internal error handling %s", topic)
            failure = ShadowError(500, "Internal service failure")
            self._publish(f"{topic}/rejected", failure.payload(now, lenient_client_token(payload)))

    def apply_will(self, payload: bytes) -> None:
        """Write offline the components a gateway's last will names (see the module doc)."""
        try:
            will = parse_json(payload)
        except ShadowError as err:
            _LOGGER.warning("ignoring a last will that is not JSON: %s", err.message)
            return
        things = will.get("things") if isinstance(will, dict) else None
        if not isinstance(things, dict):
            _LOGGER.warning("ignoring a last will without things")
            return
        for thing, update in things.items():
            named = _will_components(update)
            try:
                validate_thing_name(thing)
                document = self.store.load(thing, None)
            except ShadowError:
                continue
            listed = _components_of(document.reported if document is not None else None)
            offline = {
                name: {"online": False, "error": error}
                for name, error in named.items()
                if name in listed and listed[name].get("online") is not False
            }
            if not offline:
                continue
            body = {"state": {"reported": {"pyiot": {"components": offline}}}}
            topic = f"$aws/things/{thing}/shadow/update"
            try:
                self._update(topic, thing, None, json.dumps(body).encode(), _now())
            except ShadowError as err:
                _LOGGER.warning("%s: last will not applied: %s", thing, err)
                continue
            _LOGGER.info("%s: %s offline (the gateway's last will)", thing, ", ".join(offline))

    def _get(
        self, topic: str, thing: str, shadow_name: str | None, payload: bytes, now: int
    ) -> None:
        document = self.store.load(thing, shadow_name)
        if document is None:
            raise not_found(thing, shadow_name)
        token = lenient_client_token(payload)
        self._publish(f"{topic}/accepted", document.get_payload(now, token))

    def _update(
        self, topic: str, thing: str, shadow_name: str | None, payload: bytes, now: int
    ) -> None:
        request = parse_json(payload)
        # A ShadowError propagates to handle(), which echoes the token on the rejection.
        result = self.store.load_or_new(thing, shadow_name).apply_update(request, now)
        self.store.save(thing, shadow_name, result.document)
        # accepted before delta by default: a client that waits for its accepted sees the
        # delta after. AWS promises neither order; `delta_first` exercises the other one.
        if not self.delta_first:
            self._publish(f"{topic}/accepted", result.accepted)
        if result.delta is not None:
            self._publish(f"{topic}/delta", result.delta)
        if self.delta_first:
            self._publish(f"{topic}/accepted", result.accepted)
        self._publish(f"{topic}/documents", result.documents)

    def _delete(
        self, topic: str, thing: str, shadow_name: str | None, payload: bytes, now: int
    ) -> None:
        version = self.store.delete(thing, shadow_name, now)
        if version is None:
            raise not_found(thing, shadow_name)
        body: dict[str, Any] = {"version": version, "timestamp": now}
        token = lenient_client_token(payload)
        if token is not None:
            body["clientToken"] = token
        self._publish(f"{topic}/accepted", body)

    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        info = self._client.publish(topic, data, qos=_QOS)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            _LOGGER.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))


def _components_of(reported: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """`reported.pyiot.components` of a shadow, the entries that are objects."""
    status = (reported or {}).get("pyiot")
    components = status.get("components") if isinstance(status, dict) else None
    if not isinstance(components, dict):
        return {}
    return {name: entry for name, entry in components.items() if isinstance(entry, dict)}


def _will_components(update: Any) -> dict[str, str]:
    """Component name -> error text, from one thing's update in a will."""
    state = update.get("state") if isinstance(update, dict) else None
    reported = state.get("reported") if isinstance(state, dict) else None
    named = {}
    for name, entry in _components_of(reported if isinstance(reported, dict) else None).items():
        error = entry.get("error")
        text = error if isinstance(error, str) else "pyiot connection lost"
        named[name] = text[:_WILL_ERROR_SHOWN]
    return named


def main(argv: list[str] | None = None) -> None:
    """Run the service against an existing broker until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of the shadows")
    parser.add_argument(
        "--no-aws-limits",
        action="store_true",
        help="do not throttle a thing to AWS IoT's 20 requests a second and 10 in flight",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = ShadowStore(args.db)
    service = ShadowService(args.host, args.port, store, aws_limits=not args.no_aws_limits)
    service.start()
    print("ready", flush=True)  # tests wait for this line
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        store.close()


if __name__ == "__main__":
    main()
