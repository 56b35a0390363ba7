"""One device port shared by several components (six amplifier zones on one serial line).

`SharedLink` opens the real port once and gives each component a view of it: every view hears
every byte (each component's patterns pick its own replies), and the port closes when the last
view does. `PortTurns` lets one request at a time onto the line: user commands before polls,
first come first served within each, so six polling zones never starve a command and each
zone gets its turn in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator
from typing import Any

from pyiot.runtime.transport import Link, LinkClosed

COMMAND, POLL = 0, 1


class PortTurns:
    """A lock granted by priority (commands before polls), then in order of asking."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def turn(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    def take_now(self) -> bool:
        """Take the port at once if it is free and nobody waits (an idle engine's set is
        written in its caller's loop iteration); the taker calls `release`."""
        if self._busy or self._waiting:
            return False
        self._busy = True
        return True

    def release(self) -> None:
        self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._busy and not self._waiting:
            self._busy = True
            return
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # granted just as we gave up: pass the turn on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)  # the port stays busy: it changes hands
                return
        self._busy = False


class SharedLink:
    """The real link of a shared port; `view()` gives each component its own `Link`."""

    def __init__(self, link: Link):
        self.link = link
        self.url = getattr(link, "url", None) or repr(link)
        self.turns = PortTurns()
        # The components on this port (each registers itself): see unrecognised_by_all.
        self.engines: list[Any] = []
        self._views: set[_LinkView] = set()
        self._open_views = 0
        self._opening: asyncio.Lock | None = None
        self._pump: asyncio.Task | None = None

    def unrecognised_by_all(self, engine: Any, line: str) -> bool:
        """Whether `engine`, which did not recognise `line`, should count it as unrecognised:
        yes when no other component on the port recognises it either (a reply meant for
        another zone is no noise), and then only for the first component listening, so one
        stray line counts once, not once per component."""
        if any(other.recognises(line) for other in self.engines if other is not engine):
            return False
        listening = [e for e in self.engines if getattr(e.link, "is_open", False)]
        return not listening or listening[0] is engine

    def view(self) -> Link:
        view = _LinkView(self)
        self._views.add(view)
        return view

    async def _open(self, view: _LinkView) -> None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pump is None or self._pump.done():
                await self.link.open()
                self._pump = asyncio.create_task(self._read_all(), name=f"port {self.url}")
            self._open_views += 1
            view.queue = asyncio.Queue()
            view.is_open = True

    async def _read_all(self) -> None:
        try:
            while True:
                data = await self.link.read()
                for view in self._views:
                    if view.is_open:
                        view.queue.put_nowait(data)
        except LinkClosed as err:
            for view in self._views:
                if view.is_open:
                    view.queue.put_nowait(err)

    async def _close(self, view: _LinkView) -> None:
        if not view.is_open:
            return
        view.is_open = False
        self._open_views -= 1
        if self._open_views == 0:
            if self._pump is not None:
                self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
                self._pump = None
            await self.link.close()


class _LinkView:
    """One component's side of a shared port."""

    def __init__(self, shared: SharedLink):
        self.shared = shared
        self.url = shared.url
        self.is_open = False
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    async def open(self) -> None:
        await self.shared._open(self)

    async def read(self) -> bytes:
        item = await self.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def write(self, data: bytes) -> None:
        if not self.is_open:
            raise LinkClosed(f"{self.url} is not open")
        await self.shared.link.write(data)

    async def abort(self) -> None:
        """Close the real port under every view: a write that cannot finish blocks them all.
        Each view's reader hears LinkClosed, so every component reconnects."""
        await self.shared.link.close()

    async def close(self) -> None:
        was_open = self.is_open
        await self.shared._close(self)
        if was_open:
            self.queue.put_nowait(LinkClosed(f"{self.url} closed"))  # wake a waiting read
