"""A gateway's MQTT connections: its things spread so that each connection fits AWS IoT Core.

AWS IoT Core allows one connection 50 subscriptions (a SUBSCRIBE beyond is answered by a
disconnect), 100 publishes and 512 KB a second, and one CONNECT a second per client id.
A thing costs four subscriptions (its one `update/+` stream and room for three request
subscriptions: see `pyiot.runtime.shadow_client.SUBSCRIPTIONS_PER_THING`), so a connection
serves at most 50 // 4 = 12 things; a gateway of N things opens ceil(N / 12) connections, the things
spread evenly over them in the order the files declare them.

Each connection has its own client id: the base id alone when one connection is enough (a
small `pyiot run` is unchanged), else `BASE-1`, `BASE-2`, ... (each at most 128 bytes; an
IoT policy allows them all with `client/BASE-*`). Each has its own last will naming its own
things, its own publish budget, and reconnects on its own.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pyiot.runtime.broker import MAX_CLIENT_ID_BYTES, Broker
from pyiot.runtime.shadow_client import SUBSCRIPTIONS_PER_THING, ShadowConnection

#: AWS IoT Core: subscriptions per connection.
AWS_SUBSCRIPTIONS_PER_CONNECTION = 50
#: Things one connection serves, all their subscriptions kept at once.
THINGS_PER_CONNECTION = AWS_SUBSCRIPTIONS_PER_CONNECTION // SUBSCRIPTIONS_PER_THING


def connections_needed(things: int, per_connection: int = THINGS_PER_CONNECTION) -> int:
    """How many connections a gateway of `things` things opens (at least one)."""
    return max(1, math.ceil(things / per_connection))


def client_ids(base: str, count: int) -> list[str]:
    """`[base]` for one connection, else `base-1` ... `base-count`, each cut to 128 bytes
    (the base is shortened, never the number, so the ids stay distinct)."""
    if count == 1:
        return [_cut(base, MAX_CLIENT_ID_BYTES)]
    return [f"{_cut(base, MAX_CLIENT_ID_BYTES - len(f'-{n}'))}-{n}" for n in range(1, count + 1)]


def _cut(text: str, limit: int) -> str:
    """`text` shortened to `limit` UTF-8 bytes without splitting a character."""
    return text.encode()[:limit].decode(errors="ignore")


def spread(names: Sequence[str], count: int) -> list[list[str]]:
    """`names` in order, in `count` groups whose sizes differ by one at most."""
    size, extra = divmod(len(names), count)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        groups.append(list(names[start:end]))
        start = end
    return groups


class ConnectionPool:
    """The connections of one gateway, and which thing is served by which.

    `things` are the thing names, in order. `per_connection` is for tests and for brokers
    with other quotas. The pool answers `get`/`update` for a thing over its own connection,
    so it can stand where one connection did.
    """

    def __init__(
        self,
        broker: Broker,
        things: Sequence[str],
        client_id: str | None = None,
        *,
        per_connection: int = THINGS_PER_CONNECTION,
        aws_limits: bool = True,
    ):
        if per_connection < 1:
            raise ValueError("a connection serves at least one thing")
        self.broker = broker
        count = connections_needed(len(things), per_connection)
        base = client_id or f"pyiot-{uuid.uuid4().hex[:12]}"
        self.connections: list[ShadowConnection] = []
        self._of: dict[str, ShadowConnection] = {}
        for ident, group in zip(client_ids(base, count), spread(things, count), strict=True):
            connection = ShadowConnection(broker, ident, things=len(group), aws_limits=aws_limits)
            self.connections.append(connection)
            self._of.update(dict.fromkeys(group, connection))

    @classmethod
    def of(cls, connection: ShadowConnection, things: Sequence[str]) -> ConnectionPool:
        """A pool of one given connection serving all `things` (callers that made their own)."""
        pool = cls.__new__(cls)
        pool.broker = connection.broker
        pool.connections = [connection]
        pool._of = dict.fromkeys(things, connection)
        return pool

    def connection_for(self, thing: str) -> ShadowConnection:
        return self._of[thing]

    def things_of(self, connection: ShadowConnection) -> list[str]:
        return [name for name, conn in self._of.items() if conn is connection]

    @property
    def client_ids(self) -> list[str]:
        return [connection.client_id for connection in self.connections]

    def on_reconnect(self, callback: Callable[[ShadowConnection], None]) -> None:
        """Call `callback(connection)` in the loop whenever one connection is back."""
        for connection in self.connections:
            connection.on_reconnect = lambda c=connection: callback(c)

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect all (at once: the ids differ, and AWS limits CONNECTs per id); if one
        cannot, close the others and raise its error."""
        results = await asyncio.gather(
            *(connection.connect(timeout) for connection in self.connections),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise failures[0]

    async def close(self) -> None:
        await asyncio.gather(*(connection.close() for connection in self.connections))

    # A pool stands where one connection did (the Home Assistant bridge sets desired values).
    async def get(self, thing: str, shadow: str | None = None, **options: Any) -> Any:
        return await self.connection_for(thing).get(thing, shadow, **options)

    async def update(self, thing: str, **options: Any) -> int | None:
        return await self.connection_for(thing).update(thing, **options)
