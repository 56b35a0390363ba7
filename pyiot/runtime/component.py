"""The component engine: one device instance driven by its device's protocol machine.

The engine is a model of its device's machine (compiler/tables.py, compiler/machine.py) and
does the I/O the machine's states call for. A worker task takes one request at a time (user
commands before polls), fires the exchange's trigger (`read-X`, `poll-X`, `write-P`), writes
the command, and waits for the machine to leave the exchange; a link task opens the link when
the machine enters `connecting` and reads it, routing each line: the reply to the outstanding
request, the device's error or acknowledgement, or an unsolicited report of some property.
Reply timeouts, retries and their backoff, the reconnect backoff and the poll periods are the
machine's timers and conditions: the engine has no loop of its own for any of them. What a line
means is `DeviceProtocol`'s business; device modes are a `ModeTracker`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyiot.compiler import tables as T
from pyiot.compiler.machine import build_machine, stop_timer
from pyiot.compiler.tables import OFFLINE, MachineTable
from pyiot.errors import PyiotError
from pyiot.lang.bind import bind
from pyiot.lang.login import digest, greeting_groups, secret_names, secrets_for, variable
from pyiot.lang.model import Device, GroupQuery, Property, Value
from pyiot.lang.values import BadValue, Hooks
from pyiot.runtime.framing import PROMPT, Framer, Prompt, framer_for
from pyiot.runtime.modes import ModeRefused, ModeTracker
from pyiot.runtime.protocol import BadReply, DeviceProtocol, PollGroup, Request
from pyiot.runtime.sharing import COMMAND, POLL, PortTurns
from pyiot.runtime.transport import Link, LinkClosed

_LOGGER = logging.getLogger(__name__)
# `pyiot run -v`: each transition a component's machine makes, one line (see _on_transition);
# `--log-format json` gives its component, source, dest and trigger as fields.
_TRANSITIONS = logging.getLogger("pyiot.transitions")

# What the machine tells the worker waiting on an exchange besides its answer.
_RESEND = object()  # the retry timer ran out: write the command again
_GAVE_UP = object()  # no reply and no retry left

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


class DeviceError(PyiotError):
    """The device refused a request (`refused`) or never answered it."""

    what = "device request failed"

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


@dataclass
class EngineConfig:
    """What a component engine runs: its name, device, machine, arguments and modes.

    `protocol` and `framer` replace the ones the device model implies (the Python API of
    `pyiot.legacy` brings its own: decorated methods decide what a line means, `eol` frames).
    With `assume_sets=False` a set the device accepts without stating the value (an
    acknowledgement, a prompt, a write nothing answers) stores nothing: values come only from
    what the device says.
    """

    name: str
    device: Device
    table: MachineTable
    args: dict[str, Value] = field(default_factory=dict)
    modes: MachineTable | None = None
    hooks: dict[str, Hooks] | None = None
    protocol: DeviceProtocol | None = None
    framer: Framer | None = None
    assume_sets: bool = True

    @classmethod
    def of(
        cls, program: Any, component: Any, hooks: dict[str, Hooks] | None = None
    ) -> EngineConfig:
        """The configuration of a `.iot` file's component (a `Program` and its `Component`)."""
        device = program.model.devices[component.device]
        return cls(
            component.name,
            device,
            program.machines[device.name],
            dict(component.args),
            program.modes.get(device.name),
            hooks,
        )


@dataclass
class _Started:
    """A set begun in its caller's loop iteration (`submit_set`): the worker finishes it."""

    request: Request
    outcome: asyncio.Future  # the exchange's first outcome (`_outcome` when it began)
    unwritten: bytes | None  # what `write_nowait` did not take, for the worker to write
    error: Exception | None  # why the command could not be encoded or written


ValueListener = Callable[[str, str, Value], None]
StatusListener = Callable[[str, ComponentStatus], None]


class ComponentEngine:
    """Runs one component: connects, polls, sends commands, and keeps its property values.

    `config` says what it runs, `link` where; components of a shared port share its `turns`.
    """

    state: str  # set by the machine

    def __init__(self, config: EngineConfig, link: Link, turns: PortTurns | None = None):
        self.config = config
        name, device, table, modes = config.name, config.device, config.table, config.modes
        device = bind(device, config.args)  # ranges topped by a parameter: `0..{inputs}`
        self.name = name
        self.device = device
        self.args = dict(config.args)
        self.link = link
        # On a shared port, one request at a time across its components.
        self.turns = turns or PortTurns()
        self.protocol = config.protocol or DeviceProtocol(device, self.args, config.hooks)
        self.assume_sets = config.assume_sets
        self.values: dict[str, Value] = {}
        self.status = ComponentStatus()
        self.value_listeners: list[ValueListener] = []
        self.status_listeners: list[StatusListener] = []
        self._framer = config.framer or framer_for(device)
        self._commands: collections.deque[Request] = collections.deque()
        self._polls: collections.deque[Request] = collections.deque()
        self._work = asyncio.Event()
        self._online = asyncio.Event()
        self._current: Request | None = None
        self._started: _Started | None = None  # see submit_set
        self._serving = False  # the worker holds a request (from taking it to its end)
        self._outcome: asyncio.Future | None = None
        # With a prompt, a reply counts once the prompt closes it.
        self._pending: Any = None
        self._tasks: list[asyncio.Task] = []
        self._write_failure: str | None = None
        self._answered = False  # the device sent something since the link opened
        self._bad_logged_at: float | None = None
        self._bad_unlogged = 0
        self._connect_due = asyncio.Event()  # the machine entered `connecting`
        self._lost_logged = False  # a loss was logged: say when the device is back
        self._greeting_failed = False  # `connect-greeting`'s timer ran out: a failed connect
        self._connect_task: asyncio.Task | None = None  # writing `send ... on connect`
        # A query's `then` lines still to come after its reply, and the reply's values.
        self._then_left: list[Any] = []
        self._then_answer: dict[str, Value] = {}
        self._poll_timers: list[asyncio.TimerHandle] = []
        self._timer: asyncio.TimerHandle | None = None  # the state timer (compiler/machine.py)
        self._tries = 0  # writes of the current request
        self._login_prefix: str | None = None  # a `login` digest the next command starts with
        self._retries = 0  # retries the current request may have
        self.reconnect_delay = RECONNECT_MIN  # offline's timer: the machine reads it
        self.table = table
        # Lines lately recognised, and the shared port (if any): on a port several components
        # hear, a line counts as unrecognised only when none of them takes it.
        self._recognised: collections.deque[str] = collections.deque(maxlen=16)
        self._shared = getattr(link, "shared", None)
        if self._shared is not None:
            self._shared.engines.append(self)
        self.machine = build_machine(self, table, on_change="_on_transition")
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
        loop = asyncio.get_running_loop()
        for index, group in enumerate(self.protocol.poll_groups()):
            # The first timed poll at a random point of the first period (the link's own
            # poll on connect reads everything at once): thousands of components started
            # together then poll spread over the period, not all in the same instant.
            first = group.period * (1.0 - random.random())
            self._poll_timers.append(loop.call_later(first, self._poll_due, index, group))
        self.trigger(T.CONNECT)  # type: ignore[attr-defined]

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
        if self._started is not None:
            self._started = None
            self.turns.release()  # its worker is gone: let the port's others on
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        for timer in self._poll_timers:
            timer.cancel()
        self._poll_timers = []
        stop_timer(self)
        if self in self.machine.models:
            self.machine.remove_model(self)
        if self.modes is not None:
            await self.modes.stop()
        await self.link.close()

    async def set(self, prop_name: str, value: object) -> Value | None:
        """Send a property's set command; return the value the device confirms (None: an
        engine that learns it later, from what the device says: the legacy API's).

        Raises `BadValue` for a value that does not fit, `DeviceError` when the device
        refuses it (its error reply, or a mode that rejects it) or never answers.
        """
        prop = self.device.properties.get(prop_name)
        if prop is not None and prop.set_format is None and prop.joint:
            # Set only with others (a fade time): their command, with their current values.
            request = self.protocol.joint_request({prop_name: value}, self.values)
        else:
            request = self.protocol.set_request(prop_name, value)
        return await self._run_set(request)

    def submit_set(self, prop_name: str, value: object) -> asyncio.Future | None:
        """`set`, written now when the engine is idle: the command goes out in the caller's
        loop iteration (no task hand-over before the write); the future gets what `set`
        returns or raises. None: the engine cannot take it now (busy, modes to consult, a
        joint or confirmed property): use `set`, which queues it behind what is there.
        """
        prop = self.device.properties.get(prop_name)
        if (
            prop is None
            or self.modes is not None  # its check may wait (a mode to settle)
            or prop.confirm
            or (prop.set_format is None and prop.joint)
            or self._serving
            or self._started is not None
            or self._current is not None
            or self._commands
            or self.state != T.IDLE
            or not self._online.is_set()
            or getattr(self.link, "write_nowait", None) is None
        ):
            return None
        try:
            request = self.protocol.set_request(prop_name, value)
            self._check_wire(request)
        except BadValue as err:
            refused: asyncio.Future = asyncio.get_running_loop().create_future()
            refused.set_exception(err)
            return refused
        if not self.protocol.expects_answer(request) or not self.turns.take_now():
            return None
        _, trigger = self._prepare(request)
        outcome = self._outcome
        assert outcome is not None
        unwritten, error = None, None
        # The command first, the machine after (its `transitions` send costs a tenth of a
        # millisecond): no reply can be routed before this loop iteration ends anyway.
        try:
            unwritten = self._send_start()
        except Exception as err:  # noqa: BLE001 - the worker fails the request with it
            error = err
        try:
            self.trigger(trigger)  # type: ignore[attr-defined]
        except BaseException:
            self._current = self._outcome = None
            self.turns.release()
            raise
        self._started = _Started(request, outcome, unwritten, error)
        self._work.set()  # the worker waits for the reply (and writes what is left)
        return request.done

    async def set_together(self, values: dict[str, object]) -> dict[str, Value | None]:
        """Send the device's one command that sets all of `values` (`command "..." sets level,
        fade`; its other properties go with their current values); return what each is now.

        Raises as `set` does, and `BadValue` when no command of the device sets them together.
        """
        request = self.protocol.joint_request(values, self.values)
        await self._run_set(request)
        return {name: self.values.get(name) for name in values}

    async def _run_set(self, request: Request) -> Value:
        prop_name = request.prop.name  # type: ignore[union-attr]
        self._check_wire(request)
        if self.modes is not None:
            try:
                for name in request.together or [prop_name]:
                    await self.modes.allowed(name)
            except ModeRefused as err:
                raise DeviceError(f"{self.name}: {err}", refused=True) from None
        # A user's command goes ahead of any queued poll.
        self._commands.append(request)
        self._work.set()
        confirmed = await request.done
        prop = request.prop
        assert prop is not None
        if self.modes is not None:
            if not request.modes_told:
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

    def _check_wire(self, request: Request) -> None:
        """The framing decides what would split a command in two or not reach the wire."""
        if request.wire is not None:
            problem = self._framer.value_problem(request.wire)
            if problem is not None:
                raise BadValue(f"{request.prop.name}: {problem}; not sent")  # type: ignore[union-attr]

    async def read(self, prop_name: str) -> Value | None:
        """Query a property now (ahead of polls) and return what the device says."""
        prop = self.device.properties.get(prop_name)
        if prop is None or not prop.readable:
            raise BadValue(f"{prop_name!r} cannot be read")
        request = self.protocol.read_request(prop)
        self._commands.append(request)
        self._work.set()
        await request.done
        return self.values.get(prop_name)

    def request_poll(
        self, targets: list[Property | GroupQuery] | None = None, polled: bool = False
    ) -> None:
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
            request.polled = polled
            if request.key not in queued:
                queued.add(request.key)
                self._polls.append(request)
        self._work.set()

    # ---------------------------------------------------------------------- machine callbacks
    def retries_left(self, event: Any = None) -> bool:
        """The guard on `expire`: the current request may be sent again."""
        return self._tries <= self._retries

    @property
    def backoff_delay(self) -> float:
        """The retry state's timer: the device's backoff, doubling with each retry."""
        return self.device.backoff * 2 ** (self._tries - 1)

    def _on_transition(self, event: Any) -> None:
        """After every transition of this component's machine (called by the machine)."""
        trigger = event.event.name
        dest = self.state
        if _TRANSITIONS.isEnabledFor(logging.INFO):
            _TRANSITIONS.info(
                "%s: %s -> %s on %s",
                self.name,
                event.transition.source,
                dest,
                trigger,
                extra={
                    "component": self.name,
                    "source": event.transition.source,
                    "dest": dest,
                    "trigger": trigger,
                },
            )
        self.status.state = dest
        source = event.transition.source
        if dest == T.GREETING and self._shared is not None:
            # On a shared port the greeting came once, to whoever opened it first.
            self.trigger(T.GREETED)  # type: ignore[attr-defined]
        elif dest == T.CONNECT_SEND:
            self._connect_task = asyncio.get_running_loop().create_task(
                self._send_connect_commands(), name=f"{self.name}:connect"
            )
        elif trigger == T.CONNECT_FAILED and source == T.GREETING:
            self._greeting_failed = True
            # The reader hears LinkClosed; the connection loop counts a failed connect.
            self._connect_task = asyncio.get_running_loop().create_task(self._abort_link())
        if dest == T.IDLE and source in (T.CONNECTING, T.GREETING, T.CONNECT_SEND):
            self._ready()
        if trigger == T.RESEND:
            # The worker writes again; a late reply to the last try answers the new one.
            previous = self._outcome
            self._outcome = asyncio.get_running_loop().create_future()
            if previous is not None and not previous.done():
                previous.set_result(_RESEND)
        elif trigger == T.EXPIRE and dest == T.IDLE:
            self._resolve_outcome(_GAVE_UP)
        elif trigger == T.CONNECT:
            self._connect_due.set()
        elif dest == OFFLINE:
            self._set_status(online=False)
        elif dest == T.IDLE:
            self._set_status(online=True)

    def _no_greeting(self) -> str:
        greeting = self.device.greeting or ""
        return f"no greeting {quote(greeting)} within {self.device.timeout:g} s of connecting"

    def _ready(self) -> None:
        """The link is open and the device greeted and told what it needs: serve requests,
        beginning with a full refresh."""
        if self._lost_logged:
            _LOGGER.warning("%s: device back on %s", self.name, self._where())
            self._lost_logged = False
        self._set_status(online=True, error=None)
        self._online.set()
        self.request_poll()

    async def _abort_link(self) -> None:
        abort = getattr(self.link, "abort", None)
        with contextlib.suppress(Exception):
            await (abort() if abort is not None else self.link.close())

    async def _send_connect_commands(self) -> None:
        """`connect-send`: write the `send ... on connect` commands, in order, then `sent`.

        Their answers, if any, arrive as reports (Anthem answers `ECH1` with `ECH1`)."""
        limit = WRITE_SHARE * self.device.timeout
        for text in self.device.connect_commands:
            command = text.format(**self.args)
            _LOGGER.debug("%s -> %s (on connect)", self.name, quote(command))
            try:
                await self._write_within(self._framer.encode(command), limit)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - a lost or stuck link, reported as lost
                self._write_failure = f"cannot send {quote(command)} on connecting: {err!r}"
                await self._abort_link()
                return
        if self.state == T.CONNECT_SEND:
            self.trigger(T.SENT)  # type: ignore[attr-defined]

    def _send_start(self) -> bytes | None:
        """The first half of `_send_current`, without waiting: write the current request's
        command if the link takes it now. Returns what is left to write (None: written)."""
        assert self._current is not None
        _LOGGER.debug("%s -> %s", self.name, quote(self._current.text))
        self._pending = None
        self._then_left = []
        self._tries += 1
        text, self._login_prefix = (self._login_prefix or "") + self._current.text, None
        data = self._framer.encode(text)
        nowait = getattr(self.link, "write_nowait", None)
        if nowait is not None and nowait(data):
            return None
        return data

    async def _send_current(self, started: _Started | None = None) -> None:
        """Write the current request's command (the machine is in its exchange state);
        `started`: finish what `submit_set` began."""
        assert self._current is not None
        # A device that stops reading (flow control held, a peer that never reads) must not
        # hold the component, let alone the gateway: the write gets most of the reply timeout
        # (no answer could come in time after it anyway), and ends before the state's own
        # timer fires, so the machine hears of a lost link, not of a timeout.
        limit = WRITE_SHARE * self._timeout
        try:
            if started is None:
                data = self._send_start()
            else:
                if started.error is not None:
                    raise started.error
                data = started.unwritten
            if data is not None:
                await self._write_within(data, limit)
            return
        except asyncio.TimeoutError:
            reason = f"the device took no data for {limit:.3g} s (it stopped reading)"
        except LinkClosed as err:
            reason = str(err)
        except Exception as err:  # a custom link's own failure, an unencodable command
            reason = f"write failed: {err!r}"
        # The request fails with the loss, and closing the link wakes the reader with
        # LinkClosed, so the connection loop reports the loss with this reason and reconnects.
        # On a shared port the whole port goes (its other users wait behind the same stuck write).
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

    # --------------------------------------------------------------------------------- tasks
    async def _connection_loop(self) -> None:
        """Open the link whenever the machine enters `connecting`, then read it until it goes.

        When to try again is `offline`'s timer (`reconnect_delay`, set here before each
        `connect_failed`/`link_lost`): first soon, a replugged adapter is back in a second,
        then doubling up to RECONNECT_MAX.
        """
        delay = RECONNECT_MIN
        while True:
            await self._connect_due.wait()
            self._connect_due.clear()
            try:
                await self.link.open()
                self._login_prefix = None  # set in `connect-greeting` when the device asks
            except Exception as err:  # pyserial and sockets raise many kinds; all mean "not now"
                if not self._lost_logged:
                    _LOGGER.warning("%s: cannot open %s: %s", self.name, self._where(), err)
                    self._lost_logged = True
                self.reconnect_delay = delay * random.uniform(0.8, 1.2)
                delay = min(delay * 2, RECONNECT_MAX)
                self.trigger(T.CONNECT_FAILED)  # type: ignore[attr-defined]
                self._set_status(online=False, error=f"cannot open device: {err}")
                continue
            self._answered = False
            self._greeting_failed = False
            self._framer.reset()
            # Should the greeting not come, `offline`'s timer reads this delay at once.
            self.reconnect_delay = delay * random.uniform(0.8, 1.2)
            # `idle` at once, or through the greeting and the connect commands (`_ready`).
            self.trigger(T.CONNECTED)  # type: ignore[attr-defined]
            error = None
            try:
                await self._reader()
            except LinkClosed as err:
                if self._greeting_failed:
                    error = self._no_greeting()
                    if not self._lost_logged:
                        _LOGGER.warning("%s: %s", self.name, error)
                        self._lost_logged = True
                else:
                    cause = self._write_failure or err  # a failed write closed it: say why
                    _LOGGER.warning("%s: device link lost: %s", self.name, cause)
                    self._lost_logged = True
                    error = f"device link lost: {cause}"
            self._write_failure = None
            self._online.clear()
            if self._connect_task is not None:
                self._connect_task.cancel()
                self._connect_task = None
            await self.link.close()
            self._resolve_outcome(LinkClosed("device link lost"))
            if self._greeting_failed:
                # A device that never greeted is a connect that failed: the backoff doubles
                # (offline's timer already runs on `reconnect_delay`, set above).
                delay = min(delay * 2, RECONNECT_MAX)
                self._set_status(online=False, error=error)
                continue
            # A link that never carried a byte from the device (one that accepts and then
            # stops reading) does not reset the backoff: it doubles, as for a port that won't open.
            if self._answered:
                delay = RECONNECT_MIN
            self.reconnect_delay = delay * random.uniform(0.8, 1.2)
            if not self._answered:
                delay = min(delay * 2, RECONNECT_MAX)
            # Listeners hear of the loss once, from `offline`, with its cause.
            self.status.last_error = error
            self.trigger(T.LINK_LOST)  # type: ignore[attr-defined]

    def _login_digest(self, frame: str | Prompt) -> str | None:
        """The digest a `login` greeting asks for (PJLink `PJLINK 1 <random>`), else None.

        Raises LinkClosed when the device asks for a password and none is set
        (PYIOT_SECRET_PASSWORD): without it the connection is of no use.
        """
        login = self.device.login
        if login is None or frame is PROMPT:
            return None
        groups = greeting_groups(login, str(frame))
        if groups is None:
            return None
        secrets = secrets_for(login, self.name)
        if secrets is None:
            names = ", ".join(variable(n) for n in secret_names(login))
            raise LinkClosed(f"the device asks for a password: set {names}")
        _LOGGER.info("%s: the device asks for a password; logging in", self.name)
        return digest(login, groups, secrets)

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

    def _poll_due(self, index: int, group: PollGroup) -> None:
        """A poll timer ran out: queue its reads (a conditional poll waits for its condition)."""
        loop = asyncio.get_running_loop()
        # At a fixed rate: the next poll is due a period after this one was, not after now.
        when = max(self._poll_timers[index].when() + group.period, loop.time())
        self._poll_timers[index] = loop.call_at(when, self._poll_due, index, group)
        if self._online.is_set() and self.protocol.holds(self.values, group.condition):
            self.request_poll(group.targets, polled=True)

    async def _worker(self) -> None:
        while True:
            self._serving = False
            request, priority = await self._next_request()
            started, self._started = self._started, None
            self._serving = True
            try:
                if started is not None:
                    try:  # begun in `submit_set`, which took the port's turn
                        value = await self._perform(request, started)
                    finally:
                        self.turns.release()
                else:
                    await self._online.wait()
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
        while not (self._started or self._commands or self._polls):
            self._work.clear()
            await self._work.wait()
        if self._started is not None:
            return self._started.request, COMMAND
        if self._commands:
            return self._commands.popleft(), COMMAND
        return self._polls.popleft(), POLL

    def _begin(self, request: Request) -> str:
        """Enter a request's exchange (its trigger); return the exchange's state."""
        exchange, trigger = self._prepare(request)
        self.trigger(trigger)  # type: ignore[attr-defined]
        return exchange

    def _prepare(self, request: Request) -> tuple[str, str]:
        """Make `request` the current one; return its exchange's state and trigger."""
        self._current = request
        prop = request.prop
        self._timeout = (prop.timeout if prop else None) or self.device.timeout
        if request.is_set and prop is not None and prop.set_timeout:
            self._timeout = prop.set_timeout  # its own wait, as its state's timer (tables.py)
        self._retries = (
            prop.retries if prop and prop.retries is not None else self.device.retries
        )
        self._tries = 0
        self._outcome = asyncio.get_running_loop().create_future()
        return self._exchange(request)

    async def _perform(self, request: Request, started: _Started | None = None) -> Value | None:
        """Run one exchange through the machine: send, then whatever the machine says next
        (`started`: begun and written by `submit_set`; the rest is the same).

        The machine decides: a reply or an error reply ends it, its timer moves it to retry
        (while `retries_left`), the retry state's timer to `resend`, the last expiry gives up.
        """
        prop = request.prop
        try:
            # A started exchange may be over already (answered, or its link lost): its
            # outcome says so, not the state.
            if started is None:
                exchange = self._begin(request)
                if self.state != exchange:
                    # Only a lost link leaves `idle` between the worker's check and here.
                    raise LinkClosed("device link lost")
            if not self.protocol.expects_answer(request):
                # Write-only: nothing can confirm it, so the write is the whole exchange.
                await self._send_current()
                if request.write_error is not None:
                    raise LinkClosed(request.write_error)
                self.trigger(T.SENT)  # type: ignore[attr-defined]
                if self.state == T.CHECK_ERRORS:
                    await self._check_errors(request)
                if self.assume_sets:
                    self._store(request.together or {request.prop.name: request.value})  # type: ignore[union-attr,dict-item]
                return request.value
            while True:
                await self._send_current(started)
                if prop is not None and prop.set_timeout and request.is_set:
                    await self._tell_modes(request)
                # A started exchange's first outcome: a resend before the worker got here
                # replaced `_outcome` and resolved this one with _RESEND.
                pending = started.outcome if started is not None else self._outcome
                started = None
                outcome = await pending  # type: ignore[misc]
                if outcome is _RESEND:
                    continue
                if outcome is _GAVE_UP:
                    raise DeviceError(
                        f"no reply to {quote(request.text)} after {self._tries} tries"
                    )
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome is not None:
                    return self._result(request, outcome)
        finally:
            self._current = None
            self._outcome = None

    async def _check_errors(self, request: Request) -> None:
        """`check-errors`: ask the error queue whether a set nothing answered was taken.

        Its answer is the oldest queued error: the empty answer (`+0,"No error"`) lets the set
        stand; any other fails it as the device's refusal, naming the error."""
        queue = self.device.error_queue
        assert queue is not None
        check = Request("errors", queue.query)
        check.value = request.text  # named in the refusal
        self._current = check
        self._tries = 0
        self._outcome = asyncio.get_running_loop().create_future()
        while True:
            await self._send_current()
            if check.write_error is not None:
                raise LinkClosed(check.write_error)
            outcome = await self._outcome
            if outcome is _RESEND:
                continue
            if outcome is _GAVE_UP:
                raise DeviceError(f"no reply to {quote(check.text)} after {self._tries} tries")
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is not None:
                return

    async def _tell_modes(self, request: Request) -> None:
        """A set that may take long to be answered (its `set timeout`: ESC/VP21's colon comes
        after the warm-up) moves the modes once written, so the warm-up shows while it lasts."""
        if self.modes is None or request.modes_told or request.write_error is not None:
            return
        request.modes_told = True
        await self.modes.sent(request.prop.name, request.value)  # type: ignore[union-attr,arg-type]

    def _exchange(self, request: Request) -> tuple[str, str]:
        """The machine state of a request's exchange, and the trigger that enters it."""
        if request.is_set:
            name = request.joint or request.prop.name  # type: ignore[union-attr]
            return T.set_state(name), T.write_trigger(name)
        if request.group is None:
            name = request.prop.name  # type: ignore[union-attr]
        elif request.group.name in self.device.groups:
            name = request.group.name
        else:
            name = T.STATUS_QUERY  # the Python API's queryStatus() texts share one exchange
        trigger = T.poll_trigger(name)
        if not (request.polled and trigger in self.machine.events):
            trigger = T.read_trigger(name)
        return T.query_state(name), trigger

    def _result(self, request: Request, values: dict[str, Value]) -> Value | None:
        """What a finished request returns: the property's confirmed (or accepted) value."""
        prop = request.prop
        if prop is None:
            return None
        if request.is_set and request.together and self.assume_sets:
            # Taken: every value the command carried, as far as the answer did not say.
            self._store({k: v for k, v in request.together.items() if k not in values})
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
        awaiting = current is not None and self.state.startswith(("query-", "set-", "check-"))
        if self.state == T.GREETING:
            if self._is_greeting(frame):
                self.trigger(T.GREETED)  # type: ignore[attr-defined]
            elif (prefix := self._login_digest(frame)) is not None:
                self._login_prefix = prefix  # the next command starts with it
                self.trigger(T.GREETED)  # type: ignore[attr-defined]
            return  # anything before the greeting is no answer to anything
        if frame is PROMPT:
            outcome = self._pending or self._prompt_outcome(current)
            if awaiting and outcome is not None:
                await self._finish(outcome)
            return
        line = str(frame)
        login = self.device.login
        if login is not None and login.refused is not None and line == login.refused:
            names = ", ".join(variable(n) for n in secret_names(login))
            if secrets_for(login, self.name) is None:  # its greeting came late, or not at all
                raise LinkClosed(f"the device asks for a password: set {names}")
            raise LinkClosed(f"the device refused the password ({line}); check {names}")
        self._recognised.append(line)  # taken back below if nothing here recognises it
        if awaiting:
            assert current is not None
            if current.kind == "errors" and self.device.error_queue is not None:
                # Whatever the instrument says now is the head of its error queue.
                if line.strip() == self.device.error_queue.empty:
                    await self._complete({})
                else:
                    refusal = DeviceError(
                        f"device queued {quote(line)} after {quote(str(current.value))}", True
                    )
                    await self._complete(refusal)
                return
            if self._then_left:
                # After a reply, the lines that end the answer (CoolMasterNet's `OK`).
                if self._then_left[0].search(line):
                    self._then_left.pop(0)
                    if not self._then_left:
                        await self._complete(self._then_answer)
                    return
            elif self.device.echo and line.strip() == current.text:
                return  # the device repeating the command back
            else:
                try:
                    answer = self.protocol.answers(current, line)
                except BadReply:
                    if not self.protocol.is_error(line, current):
                        raise
                    answer = None  # its refusal, in its reply's shape: an error reply below
                if answer is None and self.protocol.acknowledges(current, line):
                    answer = {}
                if answer is not None:
                    self._store(answer)
                    thens = self.protocol.then_lines(current)
                    if thens:
                        self._then_left = list(thens)
                        self._then_answer = answer
                    else:
                        await self._complete(answer)
                    return
            if self.protocol.is_error(line, current):
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
        if current is not None and self.state.startswith(("query-", "set-", "check-")):
            if current.kind == "errors":
                return True
            if self.device.echo and line.strip() == current.text:
                return True
            if self._then_left and self._then_left[0].search(line):
                return True
            if self.protocol.answers(current, line) is not None:
                return True
            if self.protocol.is_error(line, current):
                return True
            if self.protocol.acknowledges(current, line):
                return True
        return self.protocol.unsolicited(line) is not None

    def _is_greeting(self, frame: str | Prompt) -> bool:
        """Whether a frame is the device's greeting (a prompt, when the greeting is one)."""
        greeting = self.device.greeting or ""
        if frame is PROMPT:
            return greeting == self.device.prompt
        return str(frame).strip("\r\n\x00") == greeting.strip("\r\n\x00")

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
        self.trigger(T.ERROR_REPLY if isinstance(outcome, BaseException) else T.REPLY)  # type: ignore[attr-defined]
        request = self._current
        if request is not None and isinstance(outcome, dict) and not request.done.done():
            # The caller hears of the answer in this loop iteration, not after the worker's.
            request.done.set_result(self._result(request, outcome))
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
