"""The component engine: one device instance driven by its protocol state machine.

The engine is the machine's model. A worker task takes one request at a time (user commands
before polls), sends it, and waits for the machine to come back to `idle`; a reader task frames
incoming bytes and routes each line: the reply to the outstanding request, the device's error
or acknowledgement, or an unsolicited report of some property. Timers and retries are machine
states; what a line means is `DeviceProtocol`'s business; device modes are a `ModeTracker`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyiot.compiler.machine import build_machine
from pyiot.compiler.tables import AWAITING_REPLY, OFFLINE, MachineTable
from pyiot.lang.model import Device, GroupQuery, Property, Value
from pyiot.lang.values import Hooks, ValueError_
from pyiot.runtime.framing import PROMPT, Framer, Prompt, framer_for
from pyiot.runtime.modes import ModeRefused, ModeTracker
from pyiot.runtime.protocol import DeviceProtocol, PollGroup, Request
from pyiot.runtime.sharing import COMMAND, POLL, PortTurns
from pyiot.runtime.transport import Link, LinkClosed

_LOGGER = logging.getLogger(__name__)

# Reconnect backoff: first retry soon (a replugged adapter is back in a second), then slower.
RECONNECT_MIN = 0.5
RECONNECT_MAX = 30.0

# The part of the reply timeout a command's write may take before the link counts as lost.
WRITE_SHARE = 0.8

# Lines routed before the reader lets the loop run others (see `_reader`).
FRAMES_PER_TURN = 16

# Log lines about bad replies: at most one per this many seconds per component.
BAD_REPLY_LOG_EVERY = 10.0

# Device text quoted in log lines and errors is cut to this many characters.
QUOTE_CHARS = 60


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` as a short repr for a log line: a 4 KB command must not make a 4 KB line."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"… ({len(text)} chars)"


class DeviceError(Exception):
    """The device refused a request (`refused`) or never answered it."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


@dataclass
class ComponentStatus:
    """What the Thing reports about a component besides its property values."""

    online: bool = False
    state: str = OFFLINE
    mode: str | None = None
    last_error: str | None = None
    unrecognised_lines: int = 0
    # Lines that matched a pattern but could not be used (a number too big, an empty group).
    bad_replies: int = 0


ValueListener = Callable[[str, str, Value], None]
StatusListener = Callable[[str, ComponentStatus], None]


class ComponentEngine:
    """Runs one component: connects, polls, sends commands, and keeps its property values.

    `protocol` and `framer` replace the ones the device model implies (the Python API of
    `pyiot.legacy` brings its own: decorated methods decide what a line means, `eol` frames).
    With `assume_sets=False` a set the device accepts without stating the value (an
    acknowledgement, a prompt, a write nothing answers) stores nothing: values come only from
    what the device says.
    """

    state: str  # set by the machine

    def __init__(
        self,
        name: str,
        device: Device,
        table: MachineTable,
        link: Link,
        args: dict[str, Value] | None = None,
        modes: MachineTable | None = None,
        hooks: dict[str, Hooks] | None = None,
        turns: PortTurns | None = None,
        *,
        protocol: DeviceProtocol | None = None,
        framer: Framer | None = None,
        assume_sets: bool = True,
    ):
        self.name = name
        self.device = device
        self.args = dict(args or {})
        self.link = link
        # On a shared port, one request at a time across its components.
        self.turns = turns or PortTurns()
        self.protocol = protocol or DeviceProtocol(device, self.args, hooks)
        self.assume_sets = assume_sets
        self.values: dict[str, Value] = {}
        self.status = ComponentStatus()
        self.value_listeners: list[ValueListener] = []
        self.status_listeners: list[StatusListener] = []
        self._framer = framer or framer_for(device)
        self._commands: collections.deque[Request] = collections.deque()
        self._polls: collections.deque[Request] = collections.deque()
        self._work = asyncio.Event()
        self._online = asyncio.Event()
        self._current: Request | None = None
        self._outcome: asyncio.Future | None = None
        # With a prompt, a reply counts once the prompt closes it.
        self._pending: Any = None
        self._tasks: list[asyncio.Task] = []
        self._write_failure: str | None = None
        self._answered = False  # the device sent something since the link opened
        self._bad_logged_at: float | None = None
        self._bad_unlogged = 0
        # Lines lately recognised, and the shared port (if any): on a port several components
        # hear, a line counts as unrecognised only when none of them takes it.
        self._recognised: collections.deque[str] = collections.deque(maxlen=16)
        self._shared = getattr(link, "shared", None)
        if self._shared is not None:
            self._shared.engines.append(self)
        self.machine = build_machine(self, table)
        self.modes = ModeTracker(name, device, modes) if modes else None
        if self.modes is not None:
            self.status.mode = self.modes.state
            self.modes.listeners.append(self._on_mode)

    # ------------------------------------------------------------------------------ public API
    async def start(self) -> None:
        """Start connecting, polling and serving requests (returns at once)."""
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name=f"{self.name}:link"),
            asyncio.create_task(self._worker(), name=f"{self.name}:worker"),
        ]
        for group in self.protocol.poll_groups():
            self._tasks.append(asyncio.create_task(self._poller(group), name=f"{self.name}:poll"))

    async def stop(self) -> None:
        """Stop the tasks and the timers, and close the link."""
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
        if self.modes is not None:
            await self.modes.stop()
        await self.link.close()

    async def set(self, prop_name: str, value: object) -> Value:
        """Send a property's set command; return the value the device confirms.

        Raises `ValueError_` for a value that does not fit, `DeviceError` when the device
        refuses it (its error reply, or a mode that rejects it) or never answers.
        """
        request = self.protocol.set_request(prop_name, value)
        if request.wire is not None:
            # The framing decides what would split a command in two or not reach the wire.
            problem = self._framer.value_problem(request.wire)
            if problem is not None:
                raise ValueError_(f"{prop_name}: {problem}; not sent")
        if self.modes is not None:
            try:
                await self.modes.allowed(prop_name)
            except ModeRefused as err:
                raise DeviceError(f"{self.name}: {err}", refused=True) from None
        # A user's command goes ahead of any queued poll.
        self._commands.append(request)
        self._work.set()
        confirmed = await request.done
        prop = request.prop
        assert prop is not None
        if self.modes is not None:
            await self.modes.sent(prop_name, request.value)  # type: ignore[arg-type]
            if prop_name == self.modes.modes.source and confirmed is None:
                # Acknowledged only: the mode entered says what the device is now
                # (PWR ON -> warming), when it names a value of the property.
                mode = self.modes.state
                known = mode in prop.type.choices or mode in ("true", "false")
                confirmed = mode if known and prop.type.kind == "enum" else request.value
                self._store({prop_name: confirmed})  # type: ignore[dict-item]
        if prop.confirm:
            await self.read(prop_name)
            return self.values.get(prop_name, confirmed)
        return confirmed

    async def read(self, prop_name: str) -> Value | None:
        """Query a property now (ahead of polls) and return what the device says."""
        prop = self.device.properties.get(prop_name)
        if prop is None or not prop.readable:
            raise ValueError_(f"{prop_name!r} cannot be read")
        request = self.protocol.read_request(prop)
        self._commands.append(request)
        self._work.set()
        await request.done
        return self.values.get(prop_name)

    def request_poll(self, targets: list[Property | GroupQuery] | None = None) -> None:
        """Queue reads of these targets, skipping queued ones.

        By default everything readable whose poll condition holds now (a projector answers
        `SOURCE?` with ERR while off, so `when power == on` applies to the first read too).
        """
        if targets is None:
            targets = [
                t
                for t in self.protocol.readable_targets()
                if self.protocol.holds(self.values, self.protocol.condition_of(t))
            ]
        queued = {r.key for r in self._polls}
        for target in targets:
            request = self.protocol.read_request(target)
            if request.key not in queued:
                queued.add(request.key)
                self._polls.append(request)
        self._work.set()

    # ---------------------------------------------------------------------- machine callbacks
    async def on_enter_awaiting(self) -> None:
        assert self._current is not None
        _LOGGER.debug("%s -> %s", self.name, quote(self._current.text))
        self._pending = None
        # A device that stops reading (flow control held, a peer that never reads) must not
        # hold the component, let alone the gateway: the write gets most of the reply timeout
        # (no answer could come in time after it anyway), and ends before the state's own
        # timer fires, so the machine hears of a lost link, not of a timeout.
        timeout = self.machine.get_state(AWAITING_REPLY).timeout or self.device.timeout
        limit = WRITE_SHARE * timeout
        try:
            await self._write_within(self._framer.encode(self._current.text), limit)
            return
        except asyncio.TimeoutError:
            reason = f"the device took no data for {limit:.3g} s (it stopped reading)"
        except LinkClosed as err:
            reason = str(err)
        except Exception as err:  # a custom link's own failure, an unencodable command
            reason = f"write failed: {err!r}"
        # Not raised into the machine (a retry's write runs inside its timer's trigger): the
        # request fails with the loss, and closing the link wakes the reader with LinkClosed,
        # so the connection loop reports the loss with this reason and reconnects. On a shared
        # port the whole port goes (its other users wait behind the same stuck write).
        self._write_failure = reason
        self._current.write_error = reason
        self._online.clear()  # the next request waits for the link to be back
        self._resolve_outcome(LinkClosed(reason))
        abort = getattr(self.link, "abort", None)
        with contextlib.suppress(Exception):
            await (abort() if abort is not None else self.link.close())

    async def _write_within(self, data: bytes, limit: float) -> None:
        if hasattr(asyncio, "timeout"):  # Python 3.11+: no task of its own per write
            async with asyncio.timeout(limit):
                await self.link.write(data)
        else:  # pragma: no cover - Python 3.10
            await asyncio.wait_for(self.link.write(data), limit)

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
            except Exception as err:  # pyserial and sockets raise many kinds; all mean "not now"
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
            self._answered = False
            self._framer.reset()
            await self.connected()
            self._set_status(online=True, error=None)
            self._online.set()
            self.request_poll()
            error = None
            try:
                await self._reader()
            except LinkClosed as err:
                cause = self._write_failure or err  # a failed write closed it: say why
                _LOGGER.warning("%s: device link lost: %s", self.name, cause)
                lost_logged = True
                error = f"device link lost: {cause}"
            self._write_failure = None
            self._online.clear()
            await self.link.close()
            self._resolve_outcome(LinkClosed("device link lost"))
            # Listeners hear of the loss once, from `offline`, with its cause.
            self.status.last_error = error
            await self.link_lost()
            # A link that never carried a byte from the device (one that accepts and then
            # stops reading) does not reset the backoff: it doubles, as for a port that won't open.
            stable = self._answered
            if stable:
                delay = RECONNECT_MIN
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            if not stable:
                delay = min(delay * 2, RECONNECT_MAX)

    def _where(self) -> str:
        return getattr(self.link, "url", None) or repr(self.link)

    async def _reader(self) -> None:
        while True:
            try:
                data = await self.link.read()
            except LinkClosed:
                raise
            except Exception as err:  # a custom link's own failure, not a crash of pyiot
                raise LinkClosed(f"read failed: {err!r}") from err
            self._answered = True  # a device that talks is there, whatever it says
            for count, frame in enumerate(self._framer.feed(data), 1):
                if count % FRAMES_PER_TURN == 0:
                    # A flooding device gets its turn like everyone else, in small slices:
                    # other devices' replies and the MQTT side wait for a few lines, not 4 KB.
                    await asyncio.sleep(0)
                try:
                    await self._route(frame)
                except LinkClosed:
                    raise
                except Exception as err:  # noqa: BLE001 - no device byte may stop the reader
                    self._bad_reply(frame, err)

    def _bad_reply(self, frame: str | Prompt, err: Exception) -> None:
        """Count a line that broke its decoding; log it, a line per BAD_REPLY_LOG_EVERY s."""
        self.status.bad_replies += 1
        now = asyncio.get_running_loop().time()
        if self._bad_logged_at is not None and now - self._bad_logged_at < BAD_REPLY_LOG_EVERY:
            self._bad_unlogged += 1
            return
        more = f" ({self._bad_unlogged} more since the last report)" if self._bad_unlogged else ""
        _LOGGER.warning(
            "%s: bad reply %s: %s: %s%s",
            self.name,
            quote(str(frame)),
            type(err).__name__,
            str(err)[:200],
            more,
        )
        self._bad_logged_at = now
        self._bad_unlogged = 0

    async def _poller(self, group: PollGroup) -> None:
        while True:
            await asyncio.sleep(group.period)
            # A conditional poll (`when power == on`) waits for its condition.
            if self._online.is_set() and self.protocol.holds(self.values, group.condition):
                self.request_poll(group.targets)

    async def _worker(self) -> None:
        while True:
            request, priority = await self._next_request()
            await self._online.wait()
            try:
                async with self.turns.turn(priority):
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
                if self.status.last_error is not None:
                    self._set_status(error=None)  # it answers again

    async def _next_request(self) -> tuple[Request, int]:
        """The next request and its priority on the port: user commands before polls."""
        while not (self._commands or self._polls):
            self._work.clear()
            await self._work.wait()
        if self._commands:
            return self._commands.popleft(), COMMAND
        return self._polls.popleft(), POLL

    async def _perform(self, request: Request) -> Value | None:
        """Send, wait for reply / ack / prompt / error / timeout, retry with backoff."""
        self._current = request
        prop = request.prop
        # The `awaiting` state's timer is the reply timeout; a property may set its own.
        timeout = (prop.timeout if prop else None) or self.device.timeout
        self.machine.get_state(AWAITING_REPLY).timeout = timeout
        retries = prop.retries if prop and prop.retries is not None else self.device.retries
        try:
            if not self.protocol.expects_answer(request):
                # Write-only: nothing can confirm it, so the write is the whole exchange.
                await self.send()
                if request.write_error is not None:
                    raise LinkClosed(request.write_error)
                await self.sent()
                if self.assume_sets:
                    self._store({request.prop.name: request.value})  # type: ignore[union-attr,dict-item]
                return request.value
            for attempt in range(retries + 1):
                self._outcome = asyncio.get_running_loop().create_future()
                if attempt:
                    # Give a busy device room: the backoff doubles with each retry.
                    await asyncio.sleep(self.device.backoff * 2 ** (attempt - 1))
                await (self.send() if attempt == 0 else self.resend())
                outcome = await self._outcome
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome is not None:
                    return self._result(request, outcome)
            await self.give_up()
            raise DeviceError(f"no reply to {quote(request.text)} after {retries + 1} tries")
        finally:
            self._current = None
            self._outcome = None

    def _result(self, request: Request, values: dict[str, Value]) -> Value | None:
        """What a finished request returns: the property's confirmed (or accepted) value."""
        prop = request.prop
        if prop is None:
            return None
        if request.is_set and prop.name not in values:
            if self.modes is not None and prop.name == self.modes.modes.source:
                return None  # decided by the mode it moves to, in `set`
            # Acknowledged without a value: the device took what was asked.
            if self.assume_sets:
                self._store({prop.name: request.value})  # type: ignore[dict-item]
        return self.values.get(prop.name)

    def _resolve_outcome(self, outcome: Any) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(outcome)

    # ------------------------------------------------------------------------------- routing
    async def _route(self, frame: str | Prompt) -> None:
        """One frame: the outstanding request's answer, an error, a prompt, or unsolicited."""
        current = self._current
        awaiting = current is not None and self.state == AWAITING_REPLY
        if frame is PROMPT:
            outcome = self._pending or self._prompt_outcome(current)
            if awaiting and outcome is not None:
                await self._finish(outcome)
            return
        line = str(frame)
        self._recognised.append(line)  # taken back below if nothing here recognises it
        if awaiting:
            assert current is not None
            if self.device.echo and line.strip() == current.text:
                return  # the device repeating the command back
            answer = self.protocol.answers(current, line)
            if answer is None and self.protocol.acknowledges(current, line):
                answer = {}
            if answer is not None:
                self._store(answer)
                await self._complete(answer)
                return
            if self.protocol.is_error(line):
                refusal = DeviceError(
                    f"device answered {quote(line)} to {quote(current.text)}", True
                )
                await self._complete(refusal)
                return
        values = self.protocol.unsolicited(line)
        if values is None:
            self._recognised.pop()
            if self._shared is None or self._shared.unrecognised_by_all(self, line):
                self.status.unrecognised_lines += 1
                _LOGGER.debug("%s: unrecognised line %s", self.name, quote(line))
            return
        self._store(values)

    def recognises(self, line: str) -> bool:
        """Whether this component took `line` lately, or would take it now (for siblings on a
        shared port, which hear the same lines in their own order)."""
        if line in self._recognised:
            return True
        current = self._current
        if current is not None and self.state == AWAITING_REPLY:
            if self.device.echo and line.strip() == current.text:
                return True
            if self.protocol.answers(current, line) is not None or self.protocol.is_error(line):
                return True
            if self.protocol.acknowledges(current, line):
                return True
        return self.protocol.unsolicited(line) is not None

    async def _complete(self, outcome: Any) -> None:
        # With a prompt the answer is complete only once the prompt follows it.
        if self.device.prompt:
            self._pending = outcome
        else:
            await self._finish(outcome)

    def _prompt_outcome(self, request: Request | None) -> Any:
        """A bare prompt finishes a set (the device's "done"); a query still waits for its
        reply, since some devices (Monoprice) prompt before answering as well as after."""
        if request is not None and request.is_set:
            return {}
        return None

    async def _finish(self, outcome: Any) -> None:
        self._pending = None
        if isinstance(outcome, BaseException):
            await self.error_reply()
        else:
            await self.reply()
        self._resolve_outcome(outcome)

    def _store(self, values: dict[str, Value]) -> None:
        for name, value in values.items():
            if name in self.values and self.values[name] == value:
                continue
            self.values[name] = value
            for listener in self.value_listeners:
                listener(self.name, name, value)
            if self.modes is not None:
                asyncio.get_running_loop().create_task(self.modes.observed(name, value))

    def _on_mode(self, component: str, mode: str) -> None:
        self.status.mode = mode
        assert self.modes is not None
        source = self.device.properties[self.modes.modes.source]
        if mode in source.type.choices and self.values.get(source.name) != mode:
            # A timer moved the device on (warming -> on): its source property follows.
            self._store({source.name: mode})
        for listener in self.status_listeners:
            listener(self.name, self.status)

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
