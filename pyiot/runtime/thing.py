"""A Thing: its components' properties mirrored in one Device Shadow.

Device -> shadow: every value a component reads goes to `reported`, only when it changed, and
batched (a short window for device-side bursts; changes that arrive while an update is in
flight go out together in the next one). Shadow -> device: each desired key is validated, sent
as a command, and once the device confirms it the new value is reported and the handled desired
key cleared, so the delta empties. Invalid keys are rejected visibly under
`reported.pyiot.rejected`; the rest keep working.

Keys are paths: flat by default (`volume`), nested or renamed by the thing's `shadow { ... }`
block (`kitchen.volume`); the paths come from `pyiot.lang.shadow_names`, which the checker uses
too. A rejection is listed under the dotted path.

Versions: `update/delta`, `update/documents` and `get` carry the shadow's version; events older
than one already handled are dropped, events of the same version are not (AWS delivers
`update/accepted` and `update/delta` of one update in either order).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from pyiot.lang.model import Thing, Value
from pyiot.lang.values import ValueError_
from pyiot.runtime.component import ComponentEngine, ComponentStatus, DeviceError
from pyiot.runtime.documents import (
    Path,
    diff,
    dotted,
    echo,
    leaves,
    lookup,
    merge,
    nest,
    parents_of,
    same,
)
from pyiot.runtime.shadow_client import ShadowConnection, ShadowError

_LOGGER = logging.getLogger(__name__)

# Rejections shown in `reported.pyiot.rejected` at most (the oldest make way for new ones).
MAX_REJECTIONS_SHOWN = 10

# pyiot's own status lives under this key in `reported` (properties may not use it).
STATUS_KEY = "pyiot"
# Device-side changes come in bursts (several properties in one reply, every poll on
# connect): wait this long to send them as one update. A confirmation the application waits
# for goes out at once, taking whatever is pending with it.
REPORT_WINDOW = 0.02
# A failed update or get is tried again after this, doubling up to the maximum.
RETRY_MIN, RETRY_MAX = 0.5, 10.0
# An update unanswered this long is sent again (an update sent while the shadow service was
# away is never answered; sending the same state twice is harmless).
UPDATE_TIMEOUT = 3.0
# The first get after (re)connecting may go unanswered (the service restarting with the
# broker): it is retried after this long, then after longer and longer waits.
GET_TIMEOUTS = (1.0, 2.0, 5.0, 10.0)
# An "unknown property" rejection lists the known keys, up to this many.
_KNOWN_LISTED = 12


class ThingRuntime:
    """Runs one thing's shadow side over a shared `ShadowConnection`."""

    def __init__(
        self,
        thing: Thing,
        engines: dict[str, ComponentEngine],
        shadow: ShadowConnection,
        paths: dict[tuple[str, str], Path] | None = None,
    ):
        """`paths` maps (component, property) to its key path (default: flat, the name)."""
        self.name = thing.name
        self.engines = engines
        self.shadow = shadow
        paths = paths or {}
        self.keys: dict[Path, tuple[ComponentEngine, str]] = {
            paths.get((name, prop), (prop,)): (engine, prop)
            for name, engine in engines.items()
            for prop in engine.device.properties
        }
        self._paths = {(engine.name, prop): key for key, (engine, prop) in self.keys.items()}
        self._parents = parents_of(set(self.keys))
        self._reported: dict[str, Any] = {}  # changes not yet sent
        self._baseline: dict[Path, Any] = {}  # the shadow's values the device has not told yet
        self._desired: dict[str, Any] = {}  # desired keys to clear (None) in the next update
        self._components: dict[str, dict[str, Any]] = {}
        self._rejections: dict[str, dict[str, Any]] = {}
        # The newest desired value seen per key, in shadow order: a command that finishes
        # after the application changed its mind must not clear the newer wish.
        self._wanted: dict[Path, Any] = {}
        self._inflight: dict[Path, tuple[int, Any]] = {}  # key -> (ticket, value being applied)
        # key -> a value applied or rejected whose clearing the shadow has not shown yet: a
        # delta that repeats it was published before the clearing and is stale, not a wish.
        self._handled: dict[Path, Any] = {}
        self._applying: dict[Path, asyncio.Task] = {}  # key -> its latest apply task
        self._unanswered: set[str] = set()  # components that left a command unanswered
        self._tickets = itertools.count()
        self._version = -1
        self._stale = False
        self._urgent = asyncio.Event()
        self._flushing: asyncio.Task | None = None
        self._resyncing: asyncio.Task | None = None
        self._resync_again = False
        self._tasks: set[asyncio.Task] = set()
        self.applied = 0

    async def start(self) -> None:
        """Listen to components and the shadow, then sync with it."""
        for engine in self.engines.values():
            engine.value_listeners.append(self._on_value)
            engine.status_listeners.append(self._on_status)
            self._on_status(engine.name, engine.status)
        await asyncio.gather(
            self.shadow.watch_delta(self.name, self._on_delta, on_resubscribed=self.request_resync),
            self.shadow.watch_documents(
                self.name, self._on_document, on_resubscribed=self.request_resync
            ),
        )
        try:
            await self.resync(GET_TIMEOUTS[-1])
        except ShadowError as err:
            _LOGGER.warning("%s: cannot read the shadow (%s); retrying", self.name, err)
            self.request_resync()

    def request_resync(self) -> None:
        """Re-read the shadow soon (after a reconnect); retried until it succeeds."""
        self._resync_again = True
        if self._resyncing is None or self._resyncing.done():
            self._resyncing = asyncio.create_task(self._resync_loop(), name=f"{self.name}:resync")

    async def _resync_loop(self) -> None:
        attempt = 0
        while self._resync_again:
            self._resync_again = False
            timeout = GET_TIMEOUTS[min(attempt, len(GET_TIMEOUTS) - 1)]
            try:
                await self.resync(timeout)
                attempt = 0
            except (ShadowError, ConnectionError) as err:
                log = _LOGGER.warning if attempt == 0 else _LOGGER.debug
                log("%s: reading the shadow failed (%s); retrying", self.name, err)
                self._resync_again = True
                attempt += 1

    async def resync(self, timeout: float | None = None) -> None:
        """Read the shadow: apply what `desired` asks that the device may not have, and report
        what `reported` lacks or has wrong (only that)."""
        document = await self.shadow.get(self.name, timeout=timeout)
        if document is not None and document["version"] < self._version and not self._stale:
            # A delta newer than this answer was handled meanwhile: read again. Only once: a
            # shadow deleted and made anew may legitimately start over with lower versions.
            self._stale = True
            self.request_resync()
            return
        self._stale = False
        document = document or {"desired": {}, "reported": {}, "delta": {}, "version": -1}
        self._version = document["version"]
        self._reported = diff(self._snapshot(), document["reported"], STATUS_KEY)
        # Values the device has not told yet: its first report of each is compared with
        # the shadow, so a restarted pyiot does not send again what the shadow shows.
        self._baseline = {}
        for key, (engine, prop) in self.keys.items():
            found, value = lookup(document["reported"], key)
            if found and prop not in engine.values:
                self._baseline[key] = value
        desired = document["desired"]
        self._note_wanted(desired)
        requests = list(leaves(desired, set(self.keys), self._parents))
        self._wanted.update(requests)
        # Every desired key, not only the delta: `reported` may be stale (the device changed
        # while pyiot was away), so the device, not the document, says what is satisfied.
        for key, value in requests:
            self._want(key, value, check_device=True)
        self._schedule_flush(urgent=True)

    def _note_wanted(self, desired: dict[str, Any]) -> None:
        for key in self.keys:
            self._wanted[key] = lookup(desired, key)[1]
        for key in list(self._handled):  # unknown keys too: rejected ones are handled
            found, value = lookup(desired, key)
            if not found or not same(self._handled[key], value):
                del self._handled[key]

    async def stop(self) -> None:
        for task in [*self._tasks, self._flushing, self._resyncing]:
            if task is not None:
                task.cancel()

    # device -> shadow ------------------------------------------------------------------------
    def _on_value(self, component: str, prop: str, value: Value) -> None:
        key = self._paths[(component, prop)]
        if key in self._baseline and same(self._baseline.pop(key), value):
            return  # the shadow shows it already
        self._report(nest(key, value))

    def _on_status(self, component: str, status: ComponentStatus) -> None:
        entry = {"online": status.online, "error": status.last_error}
        previous = self._components.get(component)
        if entry == previous:
            return
        self._components[component] = entry
        self._report({STATUS_KEY: {"components": {component: entry}}})
        back_online = status.online and previous is not None and not previous["online"]
        # A device that ignored a command answers again: its error clears, and it gets what
        # it missed.
        speaks_again = status.online and status.last_error is None and component in self._unanswered
        if back_online or speaks_again:
            self._unanswered.discard(component)
            self._retry_wanted(component)

    def _retry_wanted(self, component: str) -> None:
        """A device back online gets what the application still wants of it (a command it
        missed while silent or unplugged); a command is idempotent, so no harm if it had it."""
        for key, (engine, _) in self.keys.items():
            value = self._wanted.get(key)
            if engine.name == component and value is not None and key not in self._inflight:
                self._want(key, value, check_device=False)

    def _snapshot(self) -> dict[str, Any]:
        """Everything `reported` should hold now."""
        snapshot: dict[str, Any] = {}
        for key, (engine, prop) in self.keys.items():
            if prop in engine.values:
                snapshot = merge(snapshot, nest(key, engine.values[prop]))
        status: dict[str, Any] = {"components": dict(self._components)}
        if self._rejections:  # no empty object in the shadow when all is well
            status["rejected"] = dict(self._rejections)
        return {**snapshot, STATUS_KEY: status}

    def _report(self, changes: dict[str, Any], urgent: bool = False) -> None:
        self._reported = merge(self._reported, changes)
        self._schedule_flush(urgent)

    def _schedule_flush(self, urgent: bool = False) -> None:
        if urgent:
            self._urgent.set()
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name=f"{self.name}:report")

    async def _wait_urgent(self, seconds: float) -> None:
        if not self._urgent.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), seconds)

    async def _flush(self) -> None:
        await self._wait_urgent(REPORT_WINDOW)
        delay = RETRY_MIN
        failing = False
        while self._reported or self._desired:
            self._urgent.clear()
            reported, self._reported = self._reported, {}
            desired, self._desired = self._desired, {}
            try:
                await self.shadow.update(
                    self.name,
                    reported=reported or None,
                    desired=desired or None,
                    timeout=UPDATE_TIMEOUT,
                )
            except (ShadowError, ConnectionError) as err:
                if str(err)[:3] in ("400", "413"):
                    # The service will never take this document: retrying cannot help.
                    _LOGGER.error("%s: shadow refused the update %s: %s", self.name, reported, err)
                    continue
                (_LOGGER.debug if failing else _LOGGER.warning)(
                    "%s: shadow update failed (%s); retrying", self.name, err
                )
                failing = True
                # Keep what was not sent; newer values win.
                self._reported = merge(reported, self._reported)
                self._desired = merge(desired, self._desired)
                await self._wait_urgent(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_MIN
            if failing:
                _LOGGER.warning("%s: shadow updates work again", self.name)
                failing = False

    # shadow -> device ------------------------------------------------------------------------
    def _on_delta(self, delta: dict[str, Any], version: int) -> None:
        if version < self._version:
            return  # older than what was handled already
        self._version = version
        wishes = [
            (key, value)
            for key, value in leaves(delta, set(self.keys), self._parents)
            if not (key in self._handled and same(self._handled[key], value))
        ]
        for key, value in wishes:
            self._wanted[key] = value
        # A device's mode property goes first: `power=on, source=hdmi2` in one update means
        # the source change is judged (held, refused) in the mode that power=on leads to.
        firsts: dict[str, Path] = {}
        for key, _ in wishes:
            if key in self.keys:
                engine, prop = self.keys[key]
                if engine.modes is not None and prop == engine.modes.modes.source:
                    firsts[engine.name] = key
        for key, value in wishes:
            after = None
            if key in self.keys:
                engine, _ = self.keys[key]
                first = firsts.get(engine.name)
                after = first if first is not None and first != key else None
            self._want(key, value, check_device=False, after=after)

    def _on_document(self, document: dict[str, Any]) -> None:
        version = document.get("version")
        if version is not None:
            if version < self._version:
                return
            self._version = version
        desired = document.get("state", {}).get("desired") or {}
        self._note_wanted(desired)
        for key in self.keys:
            found, value = lookup(desired, key)
            if found:
                # No delta comes for a wish equal to `reported`: if the device already meets
                # it, clear it, or it would switch the device back the next time someone
                # changes it at the device. If not, the report on its way brings a delta.
                self._satisfied_or(key, value, apply=False)

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
            self._clear_desired(key, value)
            self._clear_rejection(key)
        elif apply:
            self._start_apply(key, value)

    def _start_apply(self, key: Path, value: Any, after: Path | None = None) -> None:
        ticket = next(self._tickets)
        self._inflight[key] = (ticket, value)
        name = f"{self.name}:{dotted(key)}"
        before = self._applying.get(after) if after is not None else None
        task = asyncio.create_task(self._apply(key, value, ticket, before), name=name)
        self._applying[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(
        self, key: Path, value: Any, ticket: int, before: asyncio.Task | None = None
    ) -> None:
        engine, prop = self.keys[key]
        if before is not None:
            await asyncio.wait({before})
        try:
            confirmed = await engine.set(prop, value)
        except ValueError_ as err:
            self._reject(key, value, str(err))
            return
        except DeviceError as err:
            if err.refused:
                self._reject(key, value, str(err))
            else:
                # Silent device: desired stays, and is sent again once the device speaks
                # again (a value read) or comes back online.
                self._unanswered.add(engine.name)
                _LOGGER.warning("%s: %s = %r not applied: %s", self.name, dotted(key), value, err)
            return
        finally:
            if self._inflight.get(key, (None,))[0] == ticket:
                del self._inflight[key]
        self.applied += 1
        self._handled[key] = value
        if confirmed is not None:
            self._reported = merge(self._reported, nest(key, confirmed))
        self._clear_desired(key, value)
        self._clear_rejection(key)
        self._schedule_flush(urgent=True)

    def _clear_desired(self, key: Path, handled: Any) -> None:
        if same(self._wanted.get(key), handled):
            self._desired = merge(self._desired, nest(key, None))
            self._schedule_flush(urgent=True)

    def _clear_rejection(self, key: Path) -> None:
        if self._rejections.pop(dotted(key), None) is not None:
            self._report({STATUS_KEY: {"rejected": {dotted(key): None}}}, urgent=True)

    def _reject(self, key: Path, value: Any, reason: str) -> None:
        name = dotted(key)
        entry = {"value": echo(value), "reason": reason}
        self._handled[key] = value
        _LOGGER.warning(
            "%s: rejected desired %s = %r: %s", self.name, name, echo(value), entry["reason"]
        )
        self._rejections.pop(name, None)  # the newest go last: the oldest make way first
        self._rejections[name] = entry
        update: dict[str, Any] = {name: entry}
        # Keep the newest few: a stream of unknown keys must not fill the shadow's 8 KB.
        while len(self._rejections) > MAX_REJECTIONS_SHOWN:
            oldest = next(iter(self._rejections))
            del self._rejections[oldest]
            update[oldest] = None
        self._report({STATUS_KEY: {"rejected": update}}, urgent=True)
        self._clear_desired(key, value)
