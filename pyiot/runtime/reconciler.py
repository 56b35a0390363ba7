"""A thing's desired-state reconciler: desired keys -> validated commands to the engines.

Each desired key is rejected (unknown, reserved, a value that does not fit, a device that
refuses it), found satisfied (the device already has it: the key is cleared), or sent to its
component's engine as a command. Once the device confirms, the key is cleared from `desired`
and the confirmed value reported, through the thing's `Outbox`; a rejection is shown under
`reported.pyiot.rejected`. No shadow I/O here: the reconciler only tells the outbox what to say.

A wish is kept per key (the newest desired value seen, in shadow order), so that a command
that finishes after the application changed its mind does not clear the newer wish, and a
device back online gets what it missed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from pyiot.lang.values import BadValue
from pyiot.runtime.component import ComponentEngine, DeviceError
from pyiot.runtime.documents import Path, dotted, leaves, lookup, nest, same
from pyiot.runtime.outbox import STATUS_KEY, Outbox
from pyiot.runtime.rejections import Rejections

_LOGGER = logging.getLogger("pyiot.runtime.thing")

# An "unknown property" rejection lists the known keys, up to this many.
_KNOWN_LISTED = 12


class Reconciler:
    """Desired -> engines, for one thing."""

    def __init__(
        self,
        thing: str,
        keys: dict[Path, tuple[ComponentEngine, str]],
        parents: set[Path],
        outbox: Outbox,
        rejections: Rejections,
    ):
        self.thing = thing
        self.keys = keys
        self._parents = parents
        self._outbox = outbox
        self._rejections = rejections
        # The newest desired value seen per key, in shadow order.
        self.wanted: dict[Path, Any] = {}
        self._inflight: dict[Path, tuple[int, Any]] = {}  # key -> (ticket, value being applied)
        # key -> a value applied or rejected whose clearing the shadow has not shown yet: a
        # delta that repeats it was published before the clearing and is stale, not a wish.
        self._handled: dict[Path, Any] = {}
        # key -> ticket whose confirmation already went out with the device's value (the
        # report left in the reply's loop iteration; the apply task has nothing to add).
        self._reported_early: dict[Path, int] = {}
        # key -> its latest apply task (or, written at once, the command's own future)
        self._applying: dict[Path, asyncio.Future] = {}
        # component -> its apply tasks that call `engine.set` (queued, not yet written): a
        # later key may not overtake them by being written at once (`submit_set`).
        self._queued: dict[str, int] = {}
        self.unanswered: set[str] = set()  # components that left a command unanswered
        self._tickets = itertools.count()
        self.tasks: set[asyncio.Future] = set()
        self.applied = 0

    # what the shadow says ------------------------------------------------------------------
    def note_desired(self, desired: dict[str, Any]) -> None:
        """A whole `desired` (from a get or a documents message): the wishes as they are."""
        for key in self.keys:
            self.wanted[key] = lookup(desired, key)[1]
        for key in list(self._handled):  # unknown keys too: rejected ones are handled
            found, value = lookup(desired, key)
            if not found or not same(self._handled[key], value):
                del self._handled[key]

    def resync(self, desired: dict[str, Any]) -> None:
        """The shadow as read by a get: act on every desired key, not only the delta
        (`reported` may be stale), asking the device, not the document, what is satisfied."""
        self.note_desired(desired)
        requests = list(leaves(desired, self.keys, self._parents))
        self.wanted.update(requests)
        with self._outbox.together():
            for key, value in requests:
                self._want(key, value, check_device=True)

    def on_delta(self, delta: dict[str, Any]) -> None:
        wishes = [
            (key, value)
            for key, value in leaves(delta, self.keys, self._parents)
            if not (key in self._handled and same(self._handled[key], value))
        ]
        for key, value in wishes:
            self.wanted[key] = value
        # A device's mode property goes first: `power=on, source=hdmi2` in one update means
        # the source change is judged (held, refused) in the mode that power=on leads to.
        firsts: dict[str, Path] = {}
        for key, _ in wishes:
            if key in self.keys:
                engine, prop = self.keys[key]
                if engine.modes is not None and prop == engine.modes.modes.source:
                    firsts[engine.name] = key
        with self._outbox.together():
            for key, value in wishes:
                after = None
                if key in self.keys:
                    engine, _ = self.keys[key]
                    first = firsts.get(engine.name)
                    after = first if first is not None and first != key else None
                self._want(key, value, check_device=False, after=after)

    def on_document(self, desired: dict[str, Any]) -> None:
        self.note_desired(desired)
        with self._outbox.together():
            for key in self.keys:
                found, value = lookup(desired, key)
                if found:
                    # No delta comes for a wish equal to `reported`: if the device already
                    # meets it, clear it, or it would switch the device back the next time
                    # someone changes it at the device. If not, the report on its way brings
                    # a delta.
                    self._satisfied_or(key, value, apply=False)

    # what the device says ------------------------------------------------------------------
    def confirmed_now(self, key: Path, value: Any) -> bool:
        """A value read from the device: if it is the command in flight for `key` and still
        the wish, clear the wish with it now (one loop iteration from the reply to the
        report). True if so: the caller then reports the value at once, which sends the
        clearing with it; the apply task only does the bookkeeping."""
        pending = self._inflight.get(key)
        if pending is None or not same(pending[1], value) or not same(self.wanted.get(key), value):
            return False
        engine, prop = self.keys[key]
        if engine.device.properties[prop].confirm:
            return False  # the read after the set confirms it, not the set's own reply
        self._reported_early[key] = pending[0]
        self._handled[key] = value
        self._outbox.stage_desired(nest(key, None))
        self._clear_rejection(key, urgent=False)
        return True

    def retry_wanted(self, component: str) -> None:
        """A device back online gets what the application still wants of it (a command it
        missed while silent or unplugged); a command is idempotent, so no harm if it had it."""
        with self._outbox.together():
            for key, (engine, _) in self.keys.items():
                value = self.wanted.get(key)
                if engine.name == component and value is not None and key not in self._inflight:
                    self._want(key, value, check_device=False)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    # acting on one key ---------------------------------------------------------------------
    def _want(self, key: Path, value: Any, check_device: bool, after: Path | None = None) -> None:
        """Act on one desired key: reject it, find it satisfied, or send the command."""
        if key[0] == STATUS_KEY:
            self._reject(key, value, "reserved for pyiot's own status")
            return
        if key not in self.keys:
            self._reject(key, value, f"unknown property (known: {self._known()})")
            return
        pending = self._inflight.get(key)
        if pending is not None and same(pending[1], value):
            return  # already on its way to the device
        if check_device and pending is None:
            self._satisfied_or(key, value, apply=True)
            return
        self._start_apply(key, value, after)

    def _known(self) -> str:
        names = sorted(dotted(key) for key in self.keys)
        more = len(names) - _KNOWN_LISTED
        return ", ".join(names[:_KNOWN_LISTED]) + (f" and {more} more" if more > 0 else "")

    def _satisfied_or(self, key: Path, value: Any, apply: bool) -> None:
        engine, prop = self.keys[key]
        # An offline device's last value is no promise of its state when it comes back.
        known = engine.status.online and prop in engine.values
        if key not in self._inflight and known and same(engine.values[prop], value):
            with self._outbox.together():
                self._clear_desired(key, value)
                self._clear_rejection(key)
        elif apply:
            self._start_apply(key, value)

    def _start_apply(self, key: Path, value: Any, after: Path | None = None) -> None:
        ticket = next(self._tickets)
        self._inflight[key] = (ticket, value)
        before = self._applying.get(after) if after is not None else None
        engine, prop = self.keys[key]
        applying: asyncio.Future | None = None
        if before is None and not self._queued.get(engine.name):
            # An idle component takes the command now, in this loop iteration: no task
            # hand-over between the delta and the write, nor one after the reply: the
            # command's future ends the apply (None: it queues, as `set`).
            applying = engine.submit_set(prop, value)
            if applying is not None:
                applying.add_done_callback(lambda done: self._applied(key, value, ticket, done))
        if applying is None:
            name = f"{self.thing}:{dotted(key)}"
            applying = asyncio.create_task(self._apply(key, value, ticket, before), name=name)
            self._queued[engine.name] = self._queued.get(engine.name, 0) + 1
            applying.add_done_callback(lambda _: self._unqueue(engine.name))
        self._applying[key] = applying
        self.tasks.add(applying)
        applying.add_done_callback(self.tasks.discard)

    def _unqueue(self, component: str) -> None:
        left = self._queued[component] - 1
        if left:
            self._queued[component] = left
        else:
            del self._queued[component]

    async def _apply(
        self, key: Path, value: Any, ticket: int, before: asyncio.Future | None = None
    ) -> None:
        engine, prop = self.keys[key]
        try:
            if before is not None:
                await asyncio.wait({before})
            confirmed = await engine.set(prop, value)
        except (BadValue, DeviceError) as err:
            self._done(key, value, ticket, None, err)
            return
        except BaseException:
            self._end_inflight(key, ticket)
            raise
        self._done(key, value, ticket, confirmed, None)

    def _applied(self, key: Path, value: Any, ticket: int, done: asyncio.Future) -> None:
        """A command written at once (`submit_set`) is answered, refused or lost."""
        if done.cancelled():
            self._end_inflight(key, ticket)
            return
        error = done.exception()
        if error is not None and not isinstance(error, (BadValue, DeviceError)):
            self._end_inflight(key, ticket)
            raise error  # a crash: the loop's exception handler logs it, as for a task
        self._done(key, value, ticket, None if error is not None else done.result(), error)

    def _end_inflight(self, key: Path, ticket: int) -> None:
        if self._inflight.get(key, (None,))[0] == ticket:
            del self._inflight[key]

    def _done(
        self, key: Path, value: Any, ticket: int, confirmed: Any, error: BaseException | None
    ) -> None:
        """The end of one key's command: what the outbox says of it."""
        engine, _ = self.keys[key]
        try:
            if isinstance(error, BadValue) or isinstance(error, DeviceError) and error.refused:
                self._reject(key, value, str(error))
                return
            if error is not None:
                # Silent device: desired stays, and is sent again once the device speaks
                # again (a value read) or comes back online.
                self.unanswered.add(engine.name)
                _LOGGER.warning(
                    "%s: %s = %r not applied: %s", self.thing, dotted(key), value, error
                )
                return
        finally:
            self._end_inflight(key, ticket)
        self.applied += 1
        self._handled[key] = value
        early = self._reported_early.get(key) == ticket
        if early:
            del self._reported_early[key]
        with self._outbox.together():
            if confirmed is not None and not (early and same(confirmed, value)):
                self._outbox.report(nest(key, confirmed))
            if not early:
                self._clear_desired(key, value)
                self._clear_rejection(key)
            self._outbox.flush()

    def _clear_desired(self, key: Path, handled: Any) -> None:
        if same(self.wanted.get(key), handled):
            self._outbox.clear_desired(nest(key, None))

    def _clear_rejection(self, key: Path, urgent: bool = True) -> None:
        name = self._rejections.clear(key)
        if name is not None:
            self._outbox.report({STATUS_KEY: {"rejected": {name: None}}}, urgent=urgent)

    def _reject(self, key: Path, value: Any, reason: str) -> None:
        self._handled[key] = value
        name, change = self._rejections.add(key, value, reason)
        entry = change[name]
        _LOGGER.warning(
            "%s: rejected desired %s = %r: %s", self.thing, name, entry["value"], entry["reason"]
        )
        with self._outbox.together():
            self._outbox.report({STATUS_KEY: {"rejected": change}}, urgent=True)
            self._clear_desired(key, value)
