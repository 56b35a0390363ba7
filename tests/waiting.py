"""Waiting in tests: on conditions and events, never on a fixed sleep.

The machine that runs CI is shared and loaded, so a test waits for what it needs to see, with a
generous limit that only ends a test that would otherwise hang. No test asserts an upper bound
on time: timings belong in bench/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: How long a test waits for something that normally takes milliseconds (a loaded machine
#: can be a hundred times slower than an idle one; this only bounds a hang).
PATIENCE = 30.0


async def eventually(
    condition: Callable[[], object], timeout: float = PATIENCE, what: str = "condition"
) -> float:
    """Wait in the event loop until `condition()` is true; return how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        if loop.time() - started > timeout:
            raise AssertionError(f"{what}: not met within {timeout} s")
        await asyncio.sleep(0.005)
    return loop.time() - started


def wait_until(
    condition: Callable[[], object], timeout: float = PATIENCE, what: str = "condition"
) -> float:
    """Wait outside an event loop until `condition()` is true; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - started
