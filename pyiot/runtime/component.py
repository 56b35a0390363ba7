"""The component engine: one device instance driven by its protocol state machine.

The engine is the machine's model. A worker task takes one request at a time (user commands
before polls), sends it, and waits for the machine to come back to `idle`; a reader task frames
incoming bytes and routes each line: the reply to the outstanding request, the device's error
reply, or an unsolicited report of some property. Timers and retries are machine states.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyiot.compiler.machine import build_machine
from pyiot.compiler.tables import AWAITING_REPLY, OFFLINE, MachineTable
from pyiot.lang.model import Device, Property, Value
from pyiot.lang.values import ValueError_, coerce, decode, encode
from pyiot.runtime.framing import LineFramer
from pyiot.runtime.transport import Link, LinkClosed

_LOGGER = logging.getLogger(__name__)

# Reconnect backoff: first retry soon (a replugged adapter is back in a second), then slower.
RECONNECT_MIN = 0.5
RECONNECT_MAX = 30.0


class DeviceError(Exception):
    """The device refused a request (`refused`) or never answered it."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


@dataclass
class Request:
    """One command on the wire and what answers it."""

    prop: Property
    text: str
    is_set: bool
    value: Value | None = None  # what a set asks for
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class ComponentStatus:
    """What the Thing reports about a component besides its property values."""

    online: bool = False
    state: str = OFFLINE
    last_error: str | None = None
    unrecognised_lines: int = 0


ValueListener = Callable[[str, str, Value], None]
StatusListener = Callable[[str, ComponentStatus], None]


class ComponentEngine:
    """Runs one component: connects, polls, sends commands, and keeps its property values."""

    state: str  # set by the machine

    def __init__(
        self,
        name: str,
        device: Device,
        table: MachineTable,
        link: Link,
        args: dict[str, Value] | None = None,
    ):
        self.name = name
        self.device = device
        self.args = dict(args or {})
        self.link = link
        self.values: dict[str, Value] = {}
        self.status = ComponentStatus()
        self.value_listeners: list[ValueListener] = []
        self.status_listeners: list[StatusListener] = []
        self._framer = LineFramer(device.line_terminator)
        self._replies = {
            p.name: p.reply.compile(self.args) for p in device.properties.values() if p.reply
        }
        self._error = device.error_reply.compile(self.args) if device.error_reply else None
        self._commands: collections.deque[Request] = collections.deque()
        self._polls: collections.deque[Request] = collections.deque()
        self._work = asyncio.Event()
        self._online = asyncio.Event()
        self._current: Request | None = None
        self._outcome: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []
        self.machine = build_machine(self, table)

    # ------------------------------------------------------------------------------ public API
    async def start(self) -> None:
        """Start connecting, polling and serving requests (returns at once)."""
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name=f"{self.name}:link"),
            asyncio.create_task(self._worker(), name=f"{self.name}:worker"),
        ]
        for period, props in self._poll_schedule().items():
            self._tasks.append(
                asyncio.create_task(self._poller(period, props), name=f"{self.name}:poll")
            )

    async def stop(self) -> None:
        """Stop the tasks and the reply timer, and close the link."""
        for task in self._tasks:
            # transitions' AsyncMachine can swallow a cancel that lands inside a trigger
            # (transitions #704): cancel again until the task has really ended.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.05)
            if not task.cancelled():
                task.exception()  # retrieved: a crash was already logged by the loop
        self._tasks = []
        for timer in self.machine.get_state(AWAITING_REPLY).runner.values():
            timer.cancel()
        await self.link.close()

    async def set(self, prop_name: str, value: object) -> Value:
        """Send a property's set command; return the value the device confirms.

        Raises `ValueError_` for a value that does not fit, `DeviceError` when the device
        answers with its error reply or not at all.
        """
        prop = self.device.properties.get(prop_name)
        if prop is None:
            raise ValueError_(f"unknown property {prop_name!r}")
        if not prop.writable:
            raise ValueError_(f"{prop_name} is read-only")
        typed = coerce(prop.type, value)
        text = prop.set_format.format(value=encode(prop, typed), **self.args)
        request = Request(prop, text, is_set=True, value=typed)
        # A user's command goes ahead of any queued poll.
        self._commands.append(request)
        self._work.set()
        return await request.done

    def request_poll(self, props: list[Property] | None = None) -> None:
        """Queue a query of these (default: all) readable properties, skipping queued ones."""
        queued = {r.prop.name for r in self._polls}
        for prop in props if props is not None else self.device.properties.values():
            if prop.query and prop.name not in queued:
                text = prop.query.format(**self.args)
                self._polls.append(Request(prop, text, is_set=False))
        self._work.set()

    # ---------------------------------------------------------------------- machine callbacks
    async def on_enter_awaiting(self) -> None:
        assert self._current is not None
        _LOGGER.debug("%s -> %r", self.name, self._current.text)
        await self.link.write(self._framer.encode(self._current.text))

    async def on_enter_retrying(self) -> None:
        self._resolve_outcome(None)

    async def on_enter_offline(self) -> None:
        self._set_status(online=False)

    async def on_enter_idle(self) -> None:
        self._set_status(online=True)

    # --------------------------------------------------------------------------------- tasks
    async def _connection_loop(self) -> None:
        delay = RECONNECT_MIN
        lost_logged = False
        while True:
            await self.connect()
            try:
                await self.link.open()
            except (OSError, ValueError, Exception) as err:  # pyserial raises its own types
                await self.connect_failed()
                if not lost_logged:
                    _LOGGER.warning("%s: cannot open %s: %s", self.name, self._where(), err)
                    lost_logged = True
                self._set_status(online=False, error=f"cannot open device: {err}")
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            if lost_logged:
                _LOGGER.warning("%s: device back on %s", self.name, self._where())
            lost_logged = False
            delay = RECONNECT_MIN
            self._framer.reset()
            await self.connected()
            self._set_status(online=True, error=None)
            self._online.set()
            self.request_poll()
            error = None
            try:
                await self._reader()
            except LinkClosed as err:
                _LOGGER.warning("%s: device link lost: %s", self.name, err)
                lost_logged = True
                error = f"device link lost: {err}"
            self._online.clear()
            await self.link.close()
            self._resolve_outcome(LinkClosed("device link lost"))
            # Listeners hear of the loss once, from `offline`, with its cause.
            self.status.last_error = error
            await self.link_lost()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    def _where(self) -> str:
        return getattr(self.link, "url", None) or repr(self.link)

    async def _reader(self) -> None:
        while True:
            data = await self.link.read()
            for line in self._framer.feed(data):
                await self._route(line)

    def _poll_schedule(self) -> dict[float, list[Property]]:
        """Polled properties by period: a property's own `poll every`, else the device's."""
        schedule: dict[float, list[Property]] = {}
        for prop in self.device.properties.values():
            period = prop.poll_every or self.device.poll_every
            if prop.query and period:
                schedule.setdefault(period, []).append(prop)
        return schedule

    async def _poller(self, period: float, props: list[Property]) -> None:
        while True:
            await asyncio.sleep(period)
            if self._online.is_set():
                self.request_poll(props)

    async def _worker(self) -> None:
        while True:
            request = await self._next_request()
            await self._online.wait()
            try:
                value = await self._perform(request)
            except (DeviceError, LinkClosed) as err:
                if not request.done.done():
                    refused = isinstance(err, DeviceError) and err.refused
                    request.done.set_exception(DeviceError(f"{self.name}: {err}", refused))
                    if not request.is_set:
                        request.done.exception()  # a failed poll is logged, not raised
                if not isinstance(err, LinkClosed):
                    self._set_status(error=str(err))
                    _LOGGER.warning("%s: %s", self.name, err)
            else:
                if not request.done.done():
                    request.done.set_result(value)

    async def _next_request(self) -> Request:
        while not (self._commands or self._polls):
            self._work.clear()
            await self._work.wait()
        return (self._commands or self._polls).popleft()

    async def _perform(self, request: Request) -> Value | None:
        """Send, wait for reply / error / timeout, retry as the device's `retries` says."""
        self._current = request
        # The `awaiting` state's timer is the reply timeout; a property may set its own.
        self.machine.get_state(AWAITING_REPLY).timeout = request.prop.timeout or self.device.timeout
        try:
            if request.is_set and request.prop.reply is None:
                # Write-only: no reply can confirm it, so the write is the whole exchange.
                await self.send()
                await self.sent()
                return request.value
            for attempt in range(self.device.retries + 1):
                self._outcome = asyncio.get_running_loop().create_future()
                await (self.send() if attempt == 0 else self.resend())
                outcome = await self._outcome
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome is not None:
                    return outcome[1]
            await self.give_up()
            raise DeviceError(f"no reply to {request.text!r} after {self.device.retries + 1} tries")
        finally:
            self._current = None
            self._outcome = None

    def _resolve_outcome(self, outcome: Any) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(outcome)

    # ------------------------------------------------------------------------------- routing
    async def _route(self, line: str) -> None:
        """Match one line: the outstanding request's reply, an error, or an unsolicited report."""
        current = self._current
        if current is not None and self.state == AWAITING_REPLY:
            match = self._replies.get(current.prop.name)
            found = match.search(line) if match else None
            if found is not None:
                value = self._accept(current.prop, found.group("value"))
                await self.reply()
                self._resolve_outcome(("reply", value))
                return
            if self._error is not None and self._error.search(line):
                await self.error_reply()
                self._resolve_outcome(
                    DeviceError(f"device answered {line!r} to {current.text!r}", refused=True)
                )
                return
        for name, pattern in self._replies.items():
            found = pattern.search(line)
            if found is not None:
                self._accept(self.device.properties[name], found.group("value"))
                return
        self.status.unrecognised_lines += 1
        _LOGGER.debug("%s: unrecognised line %r", self.name, line)

    def _accept(self, prop: Property, wire: str) -> Value | None:
        try:
            value = decode(prop, wire)
        except ValueError_ as err:
            self.status.unrecognised_lines += 1
            _LOGGER.debug("%s: %s", self.name, err)
            return None
        if prop.name not in self.values or self.values[prop.name] != value:
            self.values[prop.name] = value
            for listener in self.value_listeners:
                listener(self.name, prop.name, value)
        return value

    def _set_status(self, online: bool | None = None, error: str | None | object = ...) -> None:
        changed = False
        if online is not None and online != self.status.online:
            self.status.online = online
            changed = True
        if error is not ... and error != self.status.last_error:
            self.status.last_error = error  # type: ignore[assignment]
            changed = True
        if self.state != self.status.state:
            self.status.state = self.state
        if changed:
            for listener in self.status_listeners:
                listener(self.name, self.status)
