"""The Thing's shadow client (awsiotsdk V2 over awscrt MQTT5) against the real local stack."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import stat
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(port=None, data_dir=tmp_path_factory.mktemp("stack"))
    local.start()
    yield local
    local.stop()


def _sockets_to(port: int) -> list[socket.socket]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            inet = sock.family in (socket.AF_INET, socket.AF_INET6)
            if inet and sock.type == socket.SOCK_STREAM and sock.getpeername()[1] == port:
                found.append(sock)
                continue
        except OSError:
            pass
        sock.close()
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_broker_socket_has_nagle_off(stack: LocalStack) -> None:
    async def check() -> list[int]:
        connection = ShadowConnection(BrokerAddress(stack.host, stack.port))
        await connection.connect()
        try:
            mine = _sockets_to(stack.port)
            values = [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in mine]
            for s in mine:
                s.close()
            return values
        finally:
            await connection.close()

    values = asyncio.run(check())
    # The shadow service's socket and the Thing's: both send small packets at once.
    assert len(values) >= 2
    assert all(values), values


def test_get_update_and_delta_round_trip(stack: LocalStack) -> None:
    async def scenario() -> tuple:
        connection = ShadowConnection(BrokerAddress(stack.host, stack.port))
        await connection.connect()
        try:
            missing = await connection.get("neverSeen")
            deltas: asyncio.Queue = asyncio.Queue()
            await connection.watch_delta("lamp", lambda state, version: deltas.put_nowait(state))
            await connection.update("lamp", reported={"on": False})
            await connection.update("lamp", desired={"on": True})
            delta = await asyncio.wait_for(deltas.get(), 5)
            await connection.update("lamp", reported={"on": True}, desired={"on": None})
            document = await connection.get("lamp")
            return missing, delta, document
        finally:
            await connection.close()

    missing, delta, document = asyncio.run(scenario())
    assert missing is None
    assert delta == {"on": True}
    assert document["reported"] == {"on": True}
    assert document["desired"] == {}
    assert document["delta"] == {}


def test_unreachable_broker_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        await ShadowConnection(BrokerAddress("127.0.0.1", port)).connect(timeout=1.0)

    with pytest.raises(ConnectionError, match="cannot reach the MQTT broker"):
        asyncio.run(scenario())


def test_broker_url_parsing() -> None:
    assert BrokerAddress.parse("mqtt://127.0.0.1:1884") == BrokerAddress("127.0.0.1", 1884)
    assert BrokerAddress.parse("localhost") == BrokerAddress("localhost", 1883)
    with pytest.raises(ValueError, match="mqtt://HOST:PORT"):
        BrokerAddress.parse("http://example:80")


def test_a_settled_report_is_freed_without_the_cyclic_collector(stack: LocalStack) -> None:
    """A report leaves no reference cycle behind: a gateway reporting many times a second
    otherwise stops in the cyclic garbage collector every few dozen reports, for a few
    hundred µs each time, which shows at p99 (bench/latency.py)."""

    async def scenario() -> list[weakref.ref]:
        connection = ShadowConnection(BrokerAddress(stack.host, stack.port))
        await connection.connect()
        try:
            freed = []
            for n in range(10):
                acked = connection.publish_report(
                    "lamp", f"t-{n}", {"n": n}, on_failure=lambda future, error: None
                )
                await asyncio.wrap_future(acked)
                freed.append(weakref.ref(acked))
                del acked
            return freed
        finally:
            await connection.close()

    gc.collect()
    gc.disable()  # only reference counting may free them
    try:
        freed = asyncio.run(scenario())
        alive = sum(ref() is not None for ref in freed)
    finally:
        gc.enable()
    assert alive == 0
