"""`LegacyEngine`: pyiot's `ComponentEngine` running a legacy `Component`.

The engine, its transitions machine, its reader, worker, timeouts and reconnects are those a
`.iot` component runs on; this subclass only adds what the original API asks for:

- `queryStatus()` is polled every `queryTiming` seconds, after (re)connecting, when the
  component calls `requestStatus()`, and right after each command (so the shadow shows what
  the device did without waiting for the next period);
- `ready()` holds commands while the device is busy, asking again after the seconds it
  returned and polling meanwhile, as the original's write loop did;
- values come only from what the device says (`assume_sets=False`): a command the device
  takes in silence changes nothing until the device reports it;
- `updateComponent()` (and a thing's `onChange` results) queue commands in order, skipping a
  value the component has already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pyiot.lang.values import BadValue
from pyiot.legacy.component import Component
from pyiot.legacy.model import build_model
from pyiot.legacy.protocol import LegacyFramer, LegacyProtocol
from pyiot.runtime.component import ComponentEngine, ComponentStatus, DeviceError, EngineConfig
from pyiot.runtime.transport import Link

_LOGGER = logging.getLogger("pyiot.legacy")


class LegacyEngine(ComponentEngine):
    """Runs one legacy component over `link`."""

    protocol: LegacyProtocol

    def __init__(self, component: Component, link: Link):
        model = build_model(component)
        name = component.__name__
        config = EngineConfig(
            name,
            model.device,
            model.table,
            hooks=model.hooks,
            protocol=LegacyProtocol(name, model, component._synchronous),
            framer=LegacyFramer(component._eol),
            assume_sets=False,
        )
        super().__init__(config, link)
        self.component = component
        self.loop: asyncio.AbstractEventLoop | None = None
        self._status_wanted = True
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._actions: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._own_tasks: list[asyncio.Task] = []
        self.value_listeners.append(self._on_value)
        self.status_listeners.append(self._on_status)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await super().start()
        self._own_tasks = [
            asyncio.create_task(self._status_loop(), name=f"{self.name}:queryStatus"),
            asyncio.create_task(self._action_loop(), name=f"{self.name}:updates"),
        ]
        self.component._attach(self)

    async def stop(self) -> None:
        self.component._attach(None)
        for task in self._own_tasks:
            task.cancel()
        await asyncio.gather(*self._own_tasks, return_exceptions=True)
        self._own_tasks = []
        await super().stop()

    def submit_set(self, prop_name: str, value: object) -> None:
        """Never written at once: a command of the Python API waits for the component's
        `ready()` (`set`), which only the queued path asks."""
        return None

    async def set(self, prop_name: str, value: object) -> None:
        """Send the property's command once the device is ready.

        Returns None: the value the device takes comes from what it says (reported through
        the value listeners), not from the command.
        """
        await self._until_ready()
        try:
            await super().set(prop_name, value)
        finally:
            self.request_status()

    # ----------------------------------------------------------------- the component's calls
    def request_status(self) -> None:
        """Poll `queryStatus()` as soon as the device is online."""
        self._status_wanted = True
        self._wake.set()

    def update(self, prop_name: str, value: Any) -> None:
        """Queue a command (`updateComponent`); commands run one after another, in order."""
        self._actions.put_nowait((prop_name, value))

    # --------------------------------------------------------------------------- internals
    def _on_value(self, component: str, prop: str, value: Any) -> None:
        self.component.properties[prop] = value
        self._changed.set()

    def _on_status(self, component: str, status: ComponentStatus) -> None:
        if status.online:
            self.request_status()

    def _busy(self) -> float:
        """Seconds to wait before the device takes commands (0: it takes them now)."""
        try:
            busy = self.component.ready()
        except Exception:
            _LOGGER.exception("%s: ready() failed; taking the device as ready", self.name)
            return 0.0
        if busy is True:
            return 1.0
        if not busy or not isinstance(busy, (int, float)):
            return 0.0
        return max(float(busy), 0.0)

    async def _until_ready(self) -> None:
        while busy := self._busy():
            _LOGGER.debug("%s: not ready; asking again in %g s", self.name, busy)
            self.request_status()
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), busy)

    async def _status_loop(self) -> None:
        while True:
            period = self._busy() or self.component._queryTiming or None
            try:
                await asyncio.wait_for(self._wake.wait(), period)
            except asyncio.TimeoutError:
                self._status_wanted = True
            self._wake.clear()
            if self._status_wanted and self.status.online:
                self._status_wanted = False
                self._poll_status()

    def _poll_status(self) -> None:
        try:
            queries = self.component.queryStatus()
        except Exception:
            _LOGGER.exception("%s: queryStatus() failed", self.name)
            return
        if not queries:
            return
        if isinstance(queries, (str, bytes)):
            queries = [queries]
        self.request_poll([self.protocol.query(q) for q in queries if q])

    async def _action_loop(self) -> None:
        while True:
            prop, value = await self._actions.get()
            current = self.component.properties.get(prop)
            if type(current) is type(value) and current == value:
                _LOGGER.debug("%s: %s is %r already", self.name, prop, value)
                continue
            _LOGGER.info("%s: %s = %r", self.name, prop, value)
            try:
                await self.set(prop, value)
            except (BadValue, DeviceError) as err:
                _LOGGER.warning("%s: %s = %r not applied: %s", self.name, prop, value, err)
