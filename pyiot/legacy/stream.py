"""A component's `stream=` as a pyiot `Link`: blocking reads in a thread, never in the loop.

The original pyIOT read its streams in threads, one byte at a time (`stream.read()`), and
wrote with `stream.write(bytes)`; any object with those methods works (a `serial.Serial`, a
socket wrapper, a GPIO driver). `StreamLink` keeps that contract: a helper thread calls
`read()` and hands what it got to the event loop; writes run on a one-thread executor, in
order. A read that raises is a lost link: the engine reconnects, and a stream with
`open()`/`close()` (pyserial) is closed and opened again. A stream that is a string is a
pyserial URL or device path, opened by pyiot's own non-blocking transport instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from typing import Any

from pyiot.runtime.transport import Link, LinkClosed, open_link

# A stream whose read() returns at once with nothing is asked again after this long.
IDLE_PAUSE = 0.01


def link_for(stream: Any, name: str) -> Link:
    """The link for a component's `stream`: a URL opened by pyiot, or the object itself."""
    if isinstance(stream, str):
        return open_link("serial", stream)
    if stream is None:
        raise ValueError(f"component {name} has no stream (give stream=... when creating it)")
    missing = [m for m in ("read", "write") if not callable(getattr(stream, m, None))]
    if missing:
        raise TypeError(f"component {name}: its stream has no {' or '.join(missing)}() method")
    return StreamLink(stream, name)


class StreamLink:
    """A `Link` over an object with blocking `read()` and `write(bytes)`."""

    def __init__(self, stream: Any, name: str):
        self.stream = stream
        self.url = f"{name}'s stream ({type(stream).__name__})"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._thread: threading.Thread | None = None
        self._delivering = False
        self._failed = False
        self._shut = False
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pyiot-write")

    async def open(self) -> None:
        if self._shut:
            raise LinkClosed(f"{self.url} is shut")
        loop = asyncio.get_running_loop()
        if self._failed and callable(getattr(self.stream, "open", None)):
            # A port that failed (unplugged) is opened again, as pyserial allows.
            await loop.run_in_executor(self._writer, self._reopen)
        self._failed = False
        self._loop = loop
        self._queue = asyncio.Queue()
        self._delivering = True
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._read_loop, name="pyiot-read", daemon=True)
            self._thread.start()

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()
        self.stream.open()

    def _read_loop(self) -> None:
        while not self._shut:
            try:
                data = self._read_some()
            except Exception as err:
                if not self._shut:
                    self._failed = True
                    self._deliver(LinkClosed(f"{self.url}: {err!r}"))
                return
            if data:
                self._deliver(data)
            else:
                time.sleep(IDLE_PAUSE)

    def _read_some(self) -> bytes:
        data = self.stream.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return b""
        waiting = getattr(self.stream, "in_waiting", 0)
        if isinstance(waiting, int) and waiting > 0:  # the rest of a message, in one go
            more = self.stream.read(waiting)
            data += more.encode("utf-8") if isinstance(more, str) else more or b""
        return bytes(data)

    def _deliver(self, item: bytes | BaseException) -> None:
        loop, queue = self._loop, self._queue
        if loop is None or not self._delivering:
            return  # nobody listens: bytes read while the link is closed are dropped
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(queue.put_nowait, item)

    async def read(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def write(self, data: bytes) -> None:
        if self._shut or self._failed:
            raise LinkClosed(f"{self.url} is not open")
        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, self.stream.write, data)
        except Exception as err:
            raise LinkClosed(f"{self.url}: {err!r}") from err

    async def close(self) -> None:
        """Stop listening; the stream itself stays open (the component's `close()` shuts it)."""
        self._delivering = False

    def shutdown(self) -> None:
        """For good: the reading thread ends once its `read()` returns."""
        self._shut = True
        self._delivering = False
        self._writer.shutdown(wait=False)
