"""The publish budget of one MQTT connection: AWS IoT Core's per-connection rates, paced.

AWS IoT Core allows each connection 100 publishes a second and 512 KB a second of outbound
payload; beyond that it throttles the connection (and counts `Publish-In.Throttle`). awscrt's
MQTT5 client enforces the same limits with `AWS_IOT_CORE_DEFAULTS`, but by holding publishes
in its own queue, where a shadow request may wait past its timeout. The budget sits in front:
a request waits here, before it is handed to awscrt, so the thing's own outbox keeps merging
newer values into the next report meanwhile (coalesced, the newest never dropped), and
awscrt's limiter never has to act.

Two token buckets, one for publishes and one for bytes. A bucket that holds `burst` tokens
and gains `rate` a second lets through at most `burst + rate` in any one-second window, so
both are chosen to stay under AWS's figures with headroom for the client's own traffic.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

#: AWS IoT Core: publish requests per second per connection.
AWS_PUBLISHES_PER_SECOND = 100
#: AWS IoT Core: outbound throughput per connection, bytes a second (512 KB).
AWS_BYTES_PER_SECOND = 512 * 1024

# Any one-second window: at most 20 + 75 = 95 publishes (5 % headroom)...
PUBLISH_BURST = 20
PUBLISH_RATE = 75.0
# ...and 96 KiB + 384 KiB = 480 KiB (6 % headroom).
BYTES_BURST = 96 * 1024
BYTES_RATE = 384 * 1024.0


@dataclass
class _Bucket:
    """Tokens refilled at `rate` a second up to `burst`. A cost above `burst` (one large
    document) waits for a full bucket and leaves it in debt, paid back before the next."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` (capped at a full bucket) is there; 0 when it is."""
        missing = min(cost, self.burst) - self.tokens
        return max(0.0, missing / self.rate)


class PublishBudget:
    """The per-connection publish budget (a publish rate and a byte rate).

    `await budget.acquire(nbytes)` returns once one publish of `nbytes` fits; callers are
    served in the order they asked (a lock), so no thing of the connection starves.
    """

    def __init__(
        self,
        publishes: float = PUBLISH_RATE,
        publish_burst: int = PUBLISH_BURST,
        byte_rate: float = BYTES_RATE,
        byte_burst: int = BYTES_BURST,
    ) -> None:
        self._publishes = _Bucket(publishes, publish_burst, publish_burst, 0.0)
        self._bytes = _Bucket(byte_rate, byte_burst, byte_burst, 0.0)
        self._started = False
        self._lock: asyncio.Lock | None = None
        #: Publishes that had to wait, and seconds waited in all (for logs and benchmarks).
        self.waits = 0
        self.waited = 0.0

    async def acquire(self, nbytes: int) -> None:
        """Wait until one publish of `nbytes` bytes fits the budget, and take it."""
        loop = asyncio.get_running_loop()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._started:
                self._started = True
                self._publishes.stamp = self._bytes.stamp = loop.time()
            started = loop.time()
            slept = False
            while True:
                now = loop.time()
                self._publishes.refill(now)
                self._bytes.refill(now)
                delay = max(self._publishes.wait_for(1), self._bytes.wait_for(nbytes))
                if delay <= 0:
                    break
                slept = True
                await asyncio.sleep(delay)  # pacing, not synchronisation: the rate is the point
            if slept:
                self.waits += 1
                self.waited += now - started
            self._publishes.tokens -= 1
            self._bytes.tokens -= nbytes
