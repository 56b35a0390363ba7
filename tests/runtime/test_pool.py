"""A gateway's connection pool and publish budget: AWS IoT Core's per-connection quotas.

The pure parts (how many connections, their client ids, the spread) need no I/O. The gateway
tests run a real gateway of many things against the real local stack, with mosquitto's own
log counting, from the broker's side, each client's subscriptions and each SUBSCRIBE's
filters (the test turns on mosquitto's `debug` and `subscribe` log types).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack
from pyiot.local.mosquitto import Mosquitto
from pyiot.runtime.budget import AWS_BYTES_PER_SECOND, AWS_PUBLISHES_PER_SECOND, PublishBudget
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.pool import (
    AWS_SUBSCRIPTIONS_PER_CONNECTION,
    THINGS_PER_CONNECTION,
    ConnectionPool,
    client_ids,
    connections_needed,
    spread,
)
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection, ShadowError
from pyiot.sim import DeviceSimulator, PortSimulator
from tests.shadow.conftest import amp_program
from tests.waiting import PATIENCE, eventually

pytestmark = pytest.mark.timeout(180)


# ------------------------------------------------------------------------------- pure parts
def test_one_connection_up_to_twelve_things_then_one_more_per_twelve() -> None:
    # 4 subscriptions a thing (its update/+ stream, room for 3 request subscriptions): 50 // 4.
    assert THINGS_PER_CONNECTION == 12
    assert [connections_needed(n) for n in (0, 1, 12, 13, 60, 100, 1000)] == [
        1, 1, 1, 2, 5, 9, 84,
    ]  # fmt: skip


def test_client_ids_are_the_base_alone_or_numbered_and_fit_128_bytes() -> None:
    assert client_ids("gw1", 1) == ["gw1"]
    assert client_ids("gw1", 3) == ["gw1-1", "gw1-2", "gw1-3"]
    long = "é" * 200  # two bytes each
    ids = client_ids(long, 12)
    assert len(set(ids)) == 12
    assert all(len(i.encode()) <= 128 for i in ids)
    assert ids[11].endswith("-12")
    assert len(client_ids(long, 1)[0].encode()) <= 128


def test_things_are_spread_evenly_in_order() -> None:
    names = [f"t{i}" for i in range(23)]
    groups = spread(names, connections_needed(23))
    assert [len(g) for g in groups] == [12, 11]
    assert [n for g in groups for n in g] == names


def test_a_connection_never_asks_for_more_than_50_subscriptions() -> None:
    broker = BrokerAddress("127.0.0.1", 1883)
    pool = ConnectionPool(broker, [f"t{i}" for i in range(95)], "gw")
    assert len(pool.connections) == 8
    for connection in pool.connections:
        assert connection.max_requests + connection.max_streams <= 50
    assert pool.client_ids == [f"gw-{n}" for n in range(1, 9)]


# ------------------------------------------------------------------------------ the budget
def _most_in_one_second(stamps: list[tuple[float, int]]) -> tuple[int, int]:
    """The most publishes and bytes taken within any one-second window."""
    most_count = most_bytes = 0
    for start, _ in stamps:
        window = [size for at, size in stamps if start <= at < start + 1.0]
        most_count = max(most_count, len(window))
        most_bytes = max(most_bytes, sum(window))
    return most_count, most_bytes


def test_the_budget_keeps_any_second_within_100_publishes() -> None:
    async def scenario() -> list[tuple[float, int]]:
        budget = PublishBudget()
        loop = asyncio.get_running_loop()
        stamps = []
        for _ in range(180):
            await budget.acquire(200)
            stamps.append((loop.time(), 200))
        return stamps

    count, _ = _most_in_one_second(asyncio.run(scenario()))
    assert count <= AWS_PUBLISHES_PER_SECOND


def test_the_budget_keeps_any_second_within_512_kilobytes() -> None:
    async def scenario() -> list[tuple[float, int]]:
        budget = PublishBudget()
        loop = asyncio.get_running_loop()
        stamps = []
        for _ in range(16):
            await budget.acquire(64 * 1024)
            stamps.append((loop.time(), 64 * 1024))
        return stamps

    _, size = _most_in_one_second(asyncio.run(scenario()))
    assert size <= AWS_BYTES_PER_SECOND


# ------------------------------------------------------------------------------ reconnects
def test_a_client_id_tries_to_connect_at_most_once_a_second() -> None:
    """A port that accepts each TCP connection and closes it at once (a broker refusing in a
    loop): awscrt's tries, as that port sees them, are a second or more apart (AWS IoT Core
    throttles a second CONNECT within a second for the same client id)."""

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        tries: list[float] = []

        def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tries.append(loop.time())
            writer.close()

        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = ShadowConnection(BrokerAddress("127.0.0.1", port), "gw1-1")
        attempt = asyncio.create_task(connection.connect(timeout=PATIENCE))
        try:
            await eventually(lambda: len(tries) >= 3, what="three tries")
        finally:
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            await connection.close()
            server.close()
        return tries

    tries = asyncio.run(scenario())
    gaps = [later - earlier for earlier, later in zip(tries, tries[1:], strict=False)]
    # awscrt's timers and the accept may each be a few milliseconds early or late.
    assert min(gaps) >= 0.98, gaps


# ----------------------------------------------------------------------- against mosquitto
@pytest.fixture
def logged_stack(
    mosquitto_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalStack]:
    """The local stack, its mosquitto also logging every SUBSCRIBE and its filters."""
    plain = Mosquitto.config_text

    def with_subscribe_log(self: Mosquitto) -> str:
        return plain(self) + "log_type debug\nlog_type subscribe\nlog_type unsubscribe\n"

    monkeypatch.setattr(Mosquitto, "config_text", with_subscribe_log)
    with LocalStack(port=None, data_dir=tmp_path / "stack") as running:
        yield running


_CONNECTED = re.compile(r"^\d+: New client connected from \S+ as (\S+) ")
_SUBSCRIBE_PACKET = re.compile(r"^\d+: Received SUBSCRIBE from (\S+)$")
_FILTER = re.compile(r"^\d+: \t(\S+) \(QoS \d\)$")
_SUBSCRIBED = re.compile(r"^\d+: (\S+) \d (\S+)$")
_UNSUBSCRIBED = re.compile(r"^\d+: (\S+) (\S+)$")


class BrokerView:
    """What mosquitto's log says of each client: the most subscriptions it held at once and
    the most filters in one SUBSCRIBE (each (re)connection starts clean)."""

    def __init__(self, log: Path, clients: set[str]):
        self.held: Counter[str] = Counter()
        self.most_held: Counter[str] = Counter()
        self.most_filters = 0
        self.subscribes = 0
        live: dict[str, set[str]] = {}
        packet: str | None = None
        filters = 0
        for line in log.read_text(errors="replace").splitlines():
            if match := _FILTER.match(line):
                filters += 1
                self.most_filters = max(self.most_filters, filters) if packet else self.most_filters
                continue
            packet, filters = None, 0
            if match := _CONNECTED.match(line):
                live[match[1]] = set()
            elif match := _SUBSCRIBE_PACKET.match(line):
                if match[1] in clients:
                    packet = match[1]
                    self.subscribes += 1
            elif (match := _SUBSCRIBED.match(line)) and match[1] in clients:
                live.setdefault(match[1], set()).add(match[2])
                self.most_held[match[1]] = max(self.most_held[match[1]], len(live[match[1]]))
            elif (match := _UNSUBSCRIBED.match(line)) and match[1] in clients:
                live.get(match[1], set()).discard(match[2])


async def _devices(program, sims: list[PortSimulator]) -> dict[str, str]:
    endpoints = {}
    for thing in program.model.things.values():
        for comp in thing.components.values():
            device = program.model.devices[comp.device]
            sim = PortSimulator([DeviceSimulator(comp.name, device, comp.args)])
            url = await sim.serve_tcp()
            # As a raw TCP device (`tcp://`): pyserial's `socket://` close sleeps 0.3 s.
            endpoints[f"{thing.name}.{comp.name}"] = url.replace("socket://", "tcp://", 1)
            sims.append(sim)
    return endpoints


async def _reported(app: ShadowConnection, thing: str, key: str, value: object) -> bool:
    try:
        state = await app.get(thing, timeout=PATIENCE)
    except ShadowError:
        return False
    return state is not None and state["reported"].get(key) == value


async def _all_reported(app: ShadowConnection, things: list[str], key: str, value: object) -> None:
    pending = list(things)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while pending:
        if loop.time() - started > PATIENCE * 2:
            raise AssertionError(f"never reported {key}={value!r}: {pending}")
        answers = await asyncio.gather(*(_reported(app, t, key, value) for t in pending))
        pending = [t for t, ok in zip(pending, answers, strict=True) if not ok]


THINGS = 60


def test_a_gateway_of_60_things_fits_the_quotas_and_survives_a_broker_restart(
    logged_stack: LocalStack,
) -> None:
    names = [f"fleet{i:02d}" for i in range(THINGS)]
    program = amp_program(*names)
    broker = BrokerAddress(logged_stack.host, logged_stack.port)

    async def scenario() -> tuple[ConnectionPool, list[int]]:
        sims: list[PortSimulator] = []
        app = ShadowConnection(broker)
        pool = ConnectionPool(broker, names, "gw1")
        gateway = Gateway(program, pool, await _devices(program, sims))
        try:
            await app.connect()
            await pool.connect()
            await gateway.start()
            # Every thing reports its device (the simulator's amplifier starts at volume 0).
            await _all_reported(app, names, "volume", 0)
            await asyncio.get_running_loop().run_in_executor(None, logged_stack.restart_broker)
            await eventually(
                lambda: all(c.connected_times >= 2 for c in pool.connections),
                what="every connection back",
            )
            await eventually(lambda: app.connected_times >= 2, what="the application back")
            # After the restart every thing still takes a change and reports it.
            for name in names:
                while True:
                    try:
                        await app.update(name, desired={"volume": 7}, timeout=PATIENCE)
                        break
                    except ShadowError:
                        continue  # a request sent into the restart: send it again
            await _all_reported(app, names, "volume", 7)
            return pool, [c.connected_times for c in pool.connections]
        finally:
            await gateway.stop()
            await pool.close()
            await app.close()
            for sim in sims:
                await sim.close()

    pool, _ = asyncio.run(scenario())
    assert len(pool.connections) == 5
    assert logged_stack.mosquitto is not None
    view = BrokerView(logged_stack.mosquitto.log_path, set(pool.client_ids))
    # Seen from the broker: every connection subscribed (before and after the restart) and
    # none ever held more than AWS's 50, nor sent a SUBSCRIBE of more than 8 filters.
    assert set(view.most_held) == set(pool.client_ids)
    assert max(view.most_held.values()) <= AWS_SUBSCRIPTIONS_PER_CONNECTION
    assert 0 < view.most_filters <= 8
