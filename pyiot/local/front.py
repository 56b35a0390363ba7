"""The quota front: refuses on the local stack what AWS IoT Core's message broker refuses.

mosquitto 2.0 cannot enforce AWS IoT Core's per-connection quotas, so by default the local
stack puts this small MQTT front on the user-facing plain port and forwards each client to
mosquitto on an internal loopback port. It reads only the client -> broker direction, and of
that only fixed headers and the CONNECT, SUBSCRIBE, UNSUBSCRIBE and PUBLISH variable headers
(MQTT 3.1, 3.1.1 and 5); everything else, and the whole broker -> client direction, is passed
through as bytes. What it enforces, as AWS does (``AWS IoT Core endpoints and quotas``):

* a client id of at most 128 bytes (CONNACK "identifier rejected", then close);
* at most 8 topic filters in one SUBSCRIBE and at most 50 subscriptions per connection
  (AWS disconnects the client), counted where a SUBSCRIBE names ``$aws/`` topics (beyond
  them the local stack is a plain broker, as for publishes below: Home Assistant subscribes
  hundreds of discovery topics in one SUBSCRIBE, and never talks to AWS IoT);
* topics and topic filters of at most 256 bytes and 7 slashes, not counting the slashes of a
  Basic Ingest prefix ``$aws/rules/NAME/`` (disconnect);
* a payload of at most 128 KiB (disconnect);
* one CONNECT a second per client id: a CONNECT less than a second after the previous one
  with the same client id is refused (CONNACK "quota exceeded" in MQTT 5, "server
  unavailable" in 3.1.1) and closed, as AWS throttles it (``Connect.ClientIDThrottle``): two
  gateways sharing a client id, or a reconnect loop, show here as they would there;
* 100 publishes a second per connection to ``$aws/`` topics (shadows, jobs, Basic Ingest:
  what a gateway sends to AWS IoT): publishes beyond are discarded, as AWS documents, and the
  connection stays up (a token bucket of 100, refilled at 100 a second). Publishes to other
  topics are not counted: there the local stack is a plain broker (Home Assistant's discovery
  of a large gateway publishes hundreds of configs at once, and never goes to AWS IoT).

Each refusal is logged as one line naming the client id, the quota and the value, and
counted in :meth:`QuotaFront.stats`. The front is hostile-input safe: a packet is buffered
only up to the size the quotas allow, a malformed one closes that client alone, and reading
pauses while the other side cannot take more (bounded buffers both ways).

The TLS listener stays mosquitto's own: it authenticates clients by certificate, which the
front could only pass on by terminating TLS and vouching for the identity itself; the quotas
apply on the plain listener, where pyiot's tests and local gateways connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pyiot.errors import PyiotError

_LOGGER = logging.getLogger(__name__)

#: AWS IoT Core's message broker quotas (not adjustable unless noted).
MAX_CLIENT_ID_BYTES = 128
MAX_FILTERS_PER_SUBSCRIBE = 8
MAX_SUBSCRIPTIONS_PER_CONNECTION = 50  # adjustable on AWS
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
MAX_PAYLOAD_BYTES = 128 * 1024
PUBLISHES_PER_SECOND = 100
CONNECT_INTERVAL = 1.0  # seconds between two CONNECTs of one client id
_BASIC_INGEST = "$aws/rules/"
#: Largest packet buffered whole: a payload at its quota plus the largest topic and headers;
#: anything larger breaks a quota anyway, so the client is closed before it is buffered.
_MAX_PACKET = MAX_PAYLOAD_BYTES + 65_535 + 1024
# Pause reading from one side while the other side's unsent bytes exceed this.
_HIGH_WATER = 256 * 1024

_CONNECT, _PUBLISH, _SUBSCRIBE, _UNSUBSCRIBE = 1, 3, 8, 10
# MQTT 5 property identifier -> size of its value: an int is fixed, "s" a two-byte-length
# string or binary, "p" a string pair, "v" a variable byte integer.
_PROPERTY_SIZES: dict[int, int | str] = {
    0x01: 1, 0x02: 4, 0x03: "s", 0x08: "s", 0x09: "s", 0x0B: "v", 0x11: 4, 0x12: "s",
    0x13: 2, 0x15: "s", 0x16: "s", 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: "s", 0x1C: "s",
    0x1F: "s", 0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x26: "p", 0x27: 4, 0x28: 1,
    0x29: 1, 0x2A: 1,
}  # fmt: skip
_TOPIC_ALIAS = 0x23
# Topic aliases remembered per connection at most (mosquitto grants 10 by default).
_MAX_ALIASES = 1024
# Client ids whose last CONNECT is remembered before the stale ones are forgotten.
_MAX_REMEMBERED_CONNECTS = 4096


class Malformed(PyiotError, ValueError):
    """A packet that is not MQTT: the client that sent it is closed."""

    what = "malformed MQTT packet"


class QuotaExceeded(PyiotError):
    """A packet AWS IoT Core would answer by disconnecting the client."""

    what = "AWS IoT Core quota exceeded"

    def __init__(self, quota: str, value: object) -> None:
        super().__init__(f"{quota}: {value}")
        self.quota = quota
        self.value = value


def _varint(data: bytes, at: int, end: int) -> tuple[int, int] | None:
    """(value, next offset) of an MQTT variable byte integer at `at`; None if cut short."""
    value = 0
    for shift in (0, 7, 14, 21):
        if at >= end:
            return None
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
    raise Malformed("remaining length longer than four bytes")


def _string(data: bytes, at: int, end: int) -> tuple[bytes, int]:
    if at + 2 > end:
        raise Malformed("string cut short")
    size = (data[at] << 8) | data[at + 1]
    if at + 2 + size > end:
        raise Malformed("string longer than its packet")
    return bytes(data[at + 2 : at + 2 + size]), at + 2 + size


def _properties(data: bytes, at: int, end: int) -> tuple[int | None, int]:
    """Skip MQTT 5 properties at `at`: (the topic alias among them or None, next offset)."""
    found = _varint(data, at, end)
    if found is None:
        raise Malformed("properties cut short")
    size, at = found
    stop = at + size
    if stop > end:
        raise Malformed("properties longer than their packet")
    alias = None
    while at < stop:
        ident = data[at]
        kind = _PROPERTY_SIZES.get(ident)
        at += 1
        if kind is None:
            raise Malformed(f"unknown property 0x{ident:02x}")
        if ident == _TOPIC_ALIAS and at + 2 <= stop:
            alias = (data[at] << 8) | data[at + 1]
        if isinstance(kind, int):
            at += kind
        elif kind == "s":
            _, at = _string(data, at, stop)
        elif kind == "p":
            _, at = _string(data, at, stop)
            _, at = _string(data, at, stop)
        else:
            skipped = _varint(data, at, stop)
            if skipped is None:
                raise Malformed("property cut short")
            at = skipped[1]
    if at != stop:
        raise Malformed("properties overrun")
    return alias, stop


def check_topic(topic: bytes, what: str = "topic") -> None:
    """Raise :class:`QuotaExceeded` for a topic (or filter) AWS IoT Core refuses."""
    if len(topic) > MAX_TOPIC_BYTES:
        raise QuotaExceeded(f"{what} longer than {MAX_TOPIC_BYTES} bytes", len(topic))
    slashes = topic.count(b"/")
    if topic.startswith(_BASIC_INGEST.encode()):
        slashes -= 3  # "$aws/rules/NAME/" is not counted
    if slashes > MAX_TOPIC_SLASHES:
        raise QuotaExceeded(f"{what} with more than {MAX_TOPIC_SLASHES} slashes", slashes)


class _Closed(PyiotError):
    """The client was refused and closed already (nothing more to say)."""

    what = "client closed"


class _Upstream(asyncio.Protocol):
    """The connection to mosquitto for one client: its bytes go to the client unread."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.close()  # mosquitto closed it (or restarts): so does the client

    def data_received(self, data: bytes) -> None:
        self.session.to_client(data)

    # mosquitto takes what the client sends slower than it comes: stop reading the client.
    def pause_writing(self) -> None:
        self.session.pause_client()

    def resume_writing(self) -> None:
        self.session.resume_client()


class _Session(asyncio.Protocol):
    """One client connection through the front: parses what the client sends."""

    def __init__(self, front: QuotaFront) -> None:
        self.front = front
        self.client: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.buffer = bytearray()
        self.client_id = "?"
        self.version = 4
        self.connected = False
        self.subscriptions: set[bytes] = set()
        self.aliases: dict[int, bytes] = {}
        self.tokens = float(PUBLISHES_PER_SECOND)
        self.refilled = front.clock()
        self.published = 0
        self.dropped = 0
        self._drop_logged = 0.0
        self.closed = False

    # -- client side --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        transport.pause_reading()  # until mosquitto takes the forwarded connection
        self.front.sessions.add(self)
        task = asyncio.get_running_loop().create_task(self._open_upstream())
        self.front.tasks.add(task)
        task.add_done_callback(self.front.tasks.discard)

    async def _open_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(
                lambda: _Upstream(self), self.front.upstream_host, self.front.upstream_port
            )
        except OSError as err:
            _LOGGER.info("front: broker not reachable (%s); closing the client", err)
            self.close()
            return
        self.upstream = upstream
        if self.closed:
            self.close()
            return
        assert self.client is not None
        self.client.resume_reading()

    def data_received(self, data: bytes) -> None:
        try:
            self._take(data)
        except Malformed as err:
            self.front.count("malformed")
            _LOGGER.warning("front: client %r sent a malformed packet (%s); closing it",
                            self.client_id, err)
            self.close()
        except QuotaExceeded as err:
            self.refuse(err.quota, err.value)
        except _Closed:
            pass
        except Exception:  # a bug here must cost one client, never the front
            _LOGGER.exception("front: closing client %r after an internal error", self.client_id)
            self.close()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    # -- forwarding ---------------------------------------------------------------------
    def to_client(self, data: bytes) -> None:
        if self.client is not None and not self.closed:
            self.client.write(data)

    def pause_client(self) -> None:
        if self.client is not None and not self.closed:
            self.client.pause_reading()

    def resume_client(self) -> None:
        if self.client is not None and not self.closed:
            self.client.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.front.sessions.discard(self)
        if self.client is not None:
            self.client.close()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def refuse(self, quota: str, value: object) -> None:
        """Log one line, count it, and disconnect the client, as AWS IoT Core does."""
        self.front.count(quota)
        _LOGGER.warning(
            "AWS IoT quota: client %r: %s (%s); disconnecting it", self.client_id, quota, value
        )
        self.close()

    # -- parsing ------------------------------------------------------------------------
    def _take(self, chunk: bytes) -> None:
        # Most reads hold whole packets: parse the chunk itself and forward it uncopied.
        data = bytes(self.buffer) + chunk if self.buffer else chunk
        end = len(data)
        at = 0  # start of the packet being read
        sent = 0  # bytes before this offset are forwarded (or discarded)
        upstream = self.upstream.transport if self.upstream is not None else None
        try:
            while at < end:
                header = _varint(data, at + 1, end)
                if header is None:
                    break
                size, body = header
                if size > _MAX_PACKET:
                    raise QuotaExceeded(f"payload larger than {MAX_PAYLOAD_BYTES} bytes", size)
                stop = body + size
                if stop > end:
                    break
                kind = data[at] >> 4
                if kind == _PUBLISH:
                    if not self._publish(data, at, body, stop):
                        if upstream is not None and at > sent:
                            upstream.write(data[sent:at])
                        sent = stop
                elif kind == _SUBSCRIBE:
                    self._subscribe(data, body, stop)
                elif kind == _UNSUBSCRIBE:
                    self._unsubscribe(data, body, stop)
                elif kind == _CONNECT:
                    self._connect(data, body, stop)
                elif kind == 0 or (kind == 15 and self.version != 5):
                    raise Malformed(f"packet type {kind}")
                at = stop
        finally:
            # What passed before a refusal still reaches the broker, as it would on AWS.
            if upstream is not None and at > sent and not self.closed:
                upstream.write(data if sent == 0 and at == end else data[sent:at])
        self.buffer = bytearray(data[at:]) if at < end else bytearray()

    def _connect(self, data: bytes, at: int, end: int) -> None:
        if self.connected:
            raise Malformed("a second CONNECT")
        self.connected = True
        name, at = _string(data, at, end)
        if at + 4 > end or name not in (b"MQTT", b"MQIsdp"):
            raise Malformed("not an MQTT CONNECT")
        self.version = data[at]
        at += 4  # level, flags, keep alive
        if self.version == 5:
            _, at = _properties(data, at, end)
        client_id, _ = _string(data, at, end)
        self.client_id = client_id.decode("utf-8", "replace")
        if len(client_id) > MAX_CLIENT_ID_BYTES:
            self.client_id = self.client_id[:40] + "..."
            self.front.count(f"client id longer than {MAX_CLIENT_ID_BYTES} bytes")
            _LOGGER.warning(
                "AWS IoT quota: client %r: client id longer than %d bytes (%d); refusing it",
                self.client_id, MAX_CLIENT_ID_BYTES, len(client_id),
            )  # fmt: skip
            # CONNACK "identifier rejected" (3.1.1: 2; 5: 0x85 "Client Identifier not valid").
            refusal = b"\x20\x03\x00\x85\x00" if self.version == 5 else b"\x20\x02\x00\x02"
            if self.client is not None:
                self.client.write(refusal)
            self.close()
            raise _Closed
        if not self.front.may_connect(client_id):
            self.front.count("more than one CONNECT a second per client id")
            _LOGGER.warning(
                "AWS IoT quota: client %r: more than one CONNECT a second with this client id; "
                "refusing it",
                self.client_id,
            )
            # CONNACK "quota exceeded" (5: 0x97); 3.1.1 has no such code: "server unavailable".
            refusal = b"\x20\x03\x00\x97\x00" if self.version == 5 else b"\x20\x02\x00\x03"
            if self.client is not None:
                self.client.write(refusal)
            self.close()
            raise _Closed

    def _publish(self, data: bytes, start: int, at: int, end: int) -> bool:
        """Check one PUBLISH; False when it is to be discarded (over the publish rate)."""
        qos = (data[start] >> 1) & 3
        topic, at = _string(data, at, end)
        if qos:
            at += 2
        if self.version == 5:
            alias, at = _properties(data, at, end)
            if alias is not None:
                if topic:
                    if alias not in self.aliases and len(self.aliases) >= _MAX_ALIASES:
                        raise Malformed(f"more than {_MAX_ALIASES} topic aliases")
                    self.aliases[alias] = topic
                else:
                    topic = self.aliases.get(alias, b"")
        if at > end:
            raise Malformed("PUBLISH cut short")
        check_topic(topic)
        if end - at > MAX_PAYLOAD_BYTES:
            raise QuotaExceeded(f"payload larger than {MAX_PAYLOAD_BYTES} bytes", end - at)
        rate = self.front.publish_rate
        # Only AWS IoT's own topics count: a connection that publishes elsewhere (Home
        # Assistant's discovery, a dashboard) uses the local broker as a plain MQTT broker,
        # and nothing it sends there would go to AWS IoT.
        if rate is None or not topic.startswith(b"$aws/"):
            self.published += 1
            self.front.published += 1
            return True
        now = self.front.clock()
        self.tokens = min(float(rate), self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.published += 1
            self.front.published += 1
            return True
        self.dropped += 1
        self.front.discarded += 1
        self.front.count(f"more than {rate:g} publishes a second")
        if now - self._drop_logged >= 1.0:  # one line a second per client, not per publish
            self._drop_logged = now
            _LOGGER.warning(
                "AWS IoT quota: client %r: more than %g publishes a second (%d discarded so "
                "far); discarding publishes beyond it",
                self.client_id, rate, self.dropped,
            )  # fmt: skip
        return False

    def _filters(self, data: bytes, at: int, end: int, options: bool) -> list[bytes]:
        at += 2  # packet identifier
        if self.version == 5:
            _, at = _properties(data, at, end)
        filters = []
        while at < end:
            topic, at = _string(data, at, end)
            filters.append(topic)
            if options:
                at += 1
        if at != end or not filters:
            raise Malformed("bad topic filter list")
        return filters

    def _subscribe(self, data: bytes, at: int, end: int) -> None:
        filters = self._filters(data, at, end, options=True)
        for topic in filters:
            check_topic(topic, "topic filter")
        aws = [topic for topic in filters if topic.startswith(b"$aws/")]
        if not aws:
            # Beyond AWS IoT's own topics the local stack is a plain broker, as for publishes:
            # Home Assistant subscribes hundreds of discovery topics in one SUBSCRIBE.
            return
        if len(filters) > MAX_FILTERS_PER_SUBSCRIBE:
            raise QuotaExceeded(
                f"more than {MAX_FILTERS_PER_SUBSCRIBE} topic filters in one SUBSCRIBE",
                len(filters),
            )
        filters = aws
        total = len(self.subscriptions | set(filters))
        if total > MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise QuotaExceeded(
                f"more than {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions on one connection",
                total,
            )
        self.subscriptions.update(filters)
        self.front.max_subscriptions = max(self.front.max_subscriptions, total)

    def _unsubscribe(self, data: bytes, at: int, end: int) -> None:
        self.subscriptions.difference_update(self._filters(data, at, end, options=False))


class QuotaFront:
    """The front on ``host:port`` (0: any free port), forwarding to mosquitto on
    ``upstream_host:upstream_port``. Runs its own event loop in a thread, so a synchronous
    :class:`~pyiot.local.stack.LocalStack` can start and stop it."""

    def __init__(self, host: str, port: int, upstream_host: str, upstream_port: int) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.sessions: set[_Session] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.violations: Counter[str] = Counter()
        self.max_subscriptions = 0
        self.connections_seen = 0
        #: Publishes a second per connection (None: no limit, for benchmarks that measure
        #: the front itself); may be changed while running.
        self.publish_rate: float | None = PUBLISHES_PER_SECOND
        self.published = 0  # publishes forwarded, all clients
        self.discarded = 0  # publishes discarded over the rate, all clients
        #: Seconds between two CONNECTs of one client id (None: no limit); may be changed
        #: while running.
        self.connect_interval: float | None = CONNECT_INTERVAL
        self._last_connect: dict[bytes, float] = {}  # client id -> its last CONNECT, recent
        #: What the quotas read the time from (tests move it on instead of waiting).
        self.clock: Callable[[], float] = time.monotonic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None

    def count(self, quota: str) -> None:
        self.violations[quota] += 1

    def may_connect(self, client_id: bytes) -> bool:
        """Note a CONNECT of `client_id`; False if its previous one (taken or refused) came
        less than `connect_interval` ago. An empty client id is the broker's to assign: each
        is a different client, as on AWS."""
        interval = self.connect_interval
        if interval is None or not client_id:
            return True
        now = self.clock()
        last = self._last_connect
        if len(last) >= _MAX_REMEMBERED_CONNECTS:
            # Forget what no longer counts: bounded by the CONNECTs of one interval.
            for name in [n for n, at in last.items() if now - at >= interval]:
                del last[name]
        previous = last.get(client_id)
        last[client_id] = now
        return previous is None or now - previous >= interval

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and tests: connections open now and ever, the most
        subscriptions any connection held, publishes forwarded and discarded, refusals by
        quota."""
        return self._call(self._stats)

    def _stats(self) -> dict[str, Any]:
        sessions = list(self.sessions)
        return {
            "connections": len(sessions),
            "connections_seen": self.connections_seen,
            "max_subscriptions": self.max_subscriptions,
            "subscriptions_now": max((len(s.subscriptions) for s in sessions), default=0),
            "published": self.published,
            "discarded": self.discarded,
            "violations": dict(self.violations),
        }

    def _call(self, function: Any) -> Any:
        loop = self._loop
        if loop is None or not loop.is_running():
            return function()
        return asyncio.run_coroutine_threadsafe(_async(function), loop).result()

    def _new_session(self) -> _Session:
        self.connections_seen += 1
        return _Session(self)

    def start(self) -> None:
        """Listen; raises OSError (e.g. address in use) if the port cannot be bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            try:
                self._server = await asyncio.get_running_loop().create_server(
                    self._new_session, self.host, self.requested_port, reuse_address=True
                )
            except BaseException as err:
                failure.append(err)
                ready.set()
                return
            self.port = int(self._server.sockets[0].getsockname()[1])
            ready.set()
            self._stopped = asyncio.get_running_loop().create_future()
            await self._stopped  # until stop() ends it
            for _ in range(3):  # let the closed transports call connection_lost
                await asyncio.sleep(0)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="pyiot-quota-front", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            self._loop = None
            raise failure[0]
        _LOGGER.info(
            "AWS IoT quota front on %s:%d -> mosquitto on %s:%d",
            self.host, self.port, self.upstream_host, self.upstream_port,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop listening, close every forwarded connection, end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        def shut() -> None:
            if self._server is not None:
                self._server.close()
            for session in list(self.sessions):
                session.close()
            for task in list(self.tasks):
                task.cancel()
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(shut)
        thread.join(10)
        self._loop = None
        self._thread = None
        self._server = None


async def _async(function: Any) -> Any:
    return function()
