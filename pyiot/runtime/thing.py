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
`update/accepted` and `update/delta` of one update in either order). A version is not trusted
blindly: an event far ahead of the last version seen (forged by another client, or many events
missed) is not acted on but checked with a `get`, and an older event after a version that came
from an event is checked the same way; the service's own answer wins.

Offline: `stop()` reports every component `online: false` before the connection closes (a
bounded wait); when pyiot dies instead, the connection's MQTT last will (see
`pyiot.runtime.broker`) names the things and components, and the local shadow service (or an
AWS IoT rule) writes them offline. A document showing one of ours offline while it is online
(a will applied after a reconnect) is corrected at once.

pyiot's own report always fits: `reported.pyiot.rejected` is bounded in bytes, and an update
the service refuses as too large or malformed is sent again smaller (without the rejections,
then without property values) rather than dropped, so the components' status always arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from pyiot.lang.model import Thing, Value
from pyiot.lang.values import BadValue
from pyiot.runtime.component import ComponentEngine, ComponentStatus, DeviceError
from pyiot.runtime.documents import (
    Path,
    diff,
    dotted,
    leaves,
    lookup,
    merge,
    nest,
    parents_of,
    same,
)
from pyiot.runtime.rejections import Rejections
from pyiot.runtime.shadow_client import ShadowConnection, ShadowError

_LOGGER = logging.getLogger(__name__)

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
# A throttled update (429: AWS allows 20 requests a second per thing) is sent again after this.
THROTTLED_RETRY = 0.25
# On stop, the offline report waits this long at most: it never holds up shutdown.
STOP_REPORT_TIMEOUT = 2.0
# An event this far ahead of the last version seen is checked with a get before it is believed.
MAX_VERSION_JUMP = 10
# What a component's `error` says once pyiot has stopped.
STOPPED = "pyiot stopped"


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
        self._rejections = Rejections()
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
        self._version_checked = False  # whether _version came from a get, not an event
        self._stale = False
        self._started = False  # whether start() reached the shadow (else nothing to report)
        self._stopping = False
        self._urgent = asyncio.Event()
        # Set once the shadow has been read: until then a device's first values cannot be
        # compared with what the shadow already shows, so nothing is sent.
        self._read_once = asyncio.Event()
        self._flushing: asyncio.Task | None = None
        self._resyncing: asyncio.Task | None = None
        self._resync_again = False
        self._tasks: set[asyncio.Task] = set()
        self.applied = 0
        # The connection's last will names this thing's components (it is built on connect).
        shadow.declare(self.name, list(engines))

    async def start(self) -> None:
        """Listen to components and the shadow, then sync with it."""
        self._started = True
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
        if self._stopping:
            return
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
                if not str(err).startswith("no answer"):
                    # Refused at once (throttled, not connected): do not spin on it.
                    await asyncio.sleep(min(RETRY_MIN * 2 ** (attempt - 1), RETRY_MAX))

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
        self._version_checked = True
        self._reported = diff(self._snapshot(), document["reported"], STATUS_KEY)
        # Values the device has not told yet: its first report of each is compared with
        # the shadow, so a restarted pyiot does not send again what the shadow shows.
        self._baseline = {}
        for key, (engine, prop) in self.keys.items():
            found, value = lookup(document["reported"], key)
            if found and prop not in engine.values:
                self._baseline[key] = value
        self._read_once.set()
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

    async def stop(self, timeout: float = STOP_REPORT_TIMEOUT) -> None:
        """Stop acting on the shadow and report every component offline (waiting `timeout`
        at most; 0 skips the report)."""
        if self._stopping:
            return
        self._stopping = True
        for engine in self.engines.values():
            with contextlib.suppress(ValueError):
                engine.value_listeners.remove(self._on_value)
            with contextlib.suppress(ValueError):
                engine.status_listeners.remove(self._on_status)
        for task in [*self._tasks, self._flushing, self._resyncing]:
            if task is not None:
                task.cancel()
        if timeout > 0 and self._started:
            await self._report_offline(timeout)

    async def _report_offline(self, timeout: float) -> None:
        """One last update: what was not sent yet, and every component offline."""
        offline = {name: {"online": False, "error": STOPPED} for name in self.engines}
        status = {STATUS_KEY: {"components": offline}}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # The pending changes with it if they fit; the status alone, making room by deleting
        # the rejections shown, if they do not.
        bare = {STATUS_KEY: {"components": offline, "rejected": None}}
        attempts = [(merge(self._reported, status), self._desired or None), (bare, None)]
        while attempts and loop.time() < deadline:
            reported, desired = attempts[0]
            try:
                await self.shadow.update(
                    self.name, reported=reported, desired=desired, timeout=deadline - loop.time()
                )
                return
            except (ShadowError, ConnectionError) as err:
                if _code(err) in _TOO_BIG:
                    attempts.pop(0)
                elif _code(err) == 429:
                    await asyncio.sleep(min(THROTTLED_RETRY, max(0.0, deadline - loop.time())))
                else:
                    _LOGGER.warning("%s: could not report offline: %s", self.name, err)
                    return
        if attempts:
            _LOGGER.warning("%s: could not report offline within %g s", self.name, timeout)
        else:
            _LOGGER.error("%s: the shadow refused even the offline status", self.name)

    # device -> shadow ------------------------------------------------------------------------
    def _on_value(self, component: str, prop: str, value: Value) -> None:
        key = self._paths[(component, prop)]
        if key in self._baseline and same(self._baseline.pop(key), value):
            return  # the shadow shows it already
        self._report(nest(key, value))

    def _on_status(self, component: str, status: ComponentStatus) -> None:
        if self._stopping:
            return
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
            status["rejected"] = dict(self._rejections.entries)
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
        await self._read_once.wait()
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
                code = _code(err)
                if code in _TOO_BIG:
                    # The service will never take this document as it is: send it smaller.
                    self._shrink(reported, desired, err)
                    continue
                # Keep what was not sent; newer values win.
                self._reported = merge(reported, self._reported)
                self._desired = merge(desired, self._desired)
                if code == 429:
                    # Throttled (too many requests to this thing this second): soon again.
                    _LOGGER.debug("%s: shadow update throttled; retrying", self.name)
                    await asyncio.sleep(THROTTLED_RETRY)
                    continue
                (_LOGGER.debug if failing else _LOGGER.warning)(
                    "%s: shadow update failed (%s); retrying", self.name, err
                )
                failing = True
                await self._wait_urgent(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_MIN
            if failing:
                _LOGGER.warning("%s: shadow updates work again", self.name)
                failing = False

    def _shrink(self, reported: dict[str, Any], desired: dict[str, Any], err: Exception) -> None:
        """Queue a smaller form of a refused update: first without the rejections (deleting
        those the shadow shows), then with pyiot's status alone. Only what no form can carry
        is dropped, and said so; the components' status always goes."""
        status = reported.get(STATUS_KEY)
        carried = isinstance(status, dict) and status.get("rejected") is not None
        if carried or self._rejections:
            _LOGGER.warning(
                "%s: shadow refused the update (%s); sending it without the rejections",
                self.name,
                err,
            )
            self._rejections.drop_all()
            smaller = merge(reported, {STATUS_KEY: {"rejected": None}})
            self._reported = merge(smaller, self._reported)
            self._desired = merge(desired, self._desired)
            return
        if not _is_status_only(reported):
            dropped = sorted(key for key in reported if key != STATUS_KEY)
            _LOGGER.error(
                "%s: shadow refused the update (%s); reporting pyiot's status without %s",
                self.name,
                err,
                ", ".join(dropped),
            )
            components = {STATUS_KEY: {"components": dict(self._components), "rejected": None}}
            self._reported = merge(components, self._reported)
            self._desired = merge(desired, self._desired)
            return
        _LOGGER.error("%s: shadow refused pyiot's status %s: %s", self.name, reported, err)

    # shadow -> device ------------------------------------------------------------------------
    def _believe(self, version: int, what: str) -> bool:
        """Whether to act on an event of `version` (and take it as the latest seen)."""
        if self._stopping:
            return False
        if self._version >= 0 and version > self._version + MAX_VERSION_JUMP:
            # Far ahead of the shadow as last seen: another client's forgery, or many events
            # missed. The service's own get says which, and brings any genuine wish with it.
            checking = self._resyncing is not None and not self._resyncing.done()
            (_LOGGER.debug if checking else _LOGGER.warning)(
                "%s: %s of version %d, far ahead of %d: reading the shadow to check",
                self.name,
                what,
                version,
                self._version,
            )
            self.request_resync()
            return False
        if version < self._version:
            # Older than what was handled: stale, unless the newer version came from an
            # event that lied. Check once per version taken from an event.
            if not self._version_checked:
                self._version_checked = True
                self.request_resync()
            return False
        if version > self._version:
            self._version_checked = False
        self._version = version
        return True

    def _on_delta(self, delta: dict[str, Any], version: int) -> None:
        if not self._believe(version, "delta"):
            return
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
        if self._stopping or version is not None and not self._believe(version, "document"):
            return
        self._correct_offline(document.get("state", {}).get("reported") or {})
        desired = document.get("state", {}).get("desired") or {}
        self._note_wanted(desired)
        for key in self.keys:
            found, value = lookup(desired, key)
            if found:
                # No delta comes for a wish equal to `reported`: if the device already meets
                # it, clear it, or it would switch the device back the next time someone
                # changes it at the device. If not, the report on its way brings a delta.
                self._satisfied_or(key, value, apply=False)

    def _correct_offline(self, reported: dict[str, Any]) -> None:
        """A component shown offline that is online here (a last will applied after this
        connection came back, or a stale document): report it as it is."""
        status = reported.get(STATUS_KEY)
        shown = status.get("components") if isinstance(status, dict) else None
        if not isinstance(shown, dict):
            return
        for name, entry in self._components.items():
            seen = shown.get(name)
            if entry["online"] and isinstance(seen, dict) and seen.get("online") is False:
                self._report({STATUS_KEY: {"components": {name: entry}}}, urgent=True)

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
        except BadValue as err:
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
        name = self._rejections.clear(key)
        if name is not None:
            self._report({STATUS_KEY: {"rejected": {name: None}}}, urgent=True)

    def _reject(self, key: Path, value: Any, reason: str) -> None:
        self._handled[key] = value
        name, change = self._rejections.add(key, value, reason)
        entry = change[name]
        _LOGGER.warning(
            "%s: rejected desired %s = %r: %s", self.name, name, entry["value"], entry["reason"]
        )
        self._report({STATUS_KEY: {"rejected": change}}, urgent=True)
        self._clear_desired(key, value)


# Answers of the service to a document it will never take as it is: malformed (400, e.g. too
# deep) or too large (413).
_TOO_BIG = (400, 413)


def _code(err: Exception) -> int | None:
    """The shadow service's status code of a ShadowError (None: no answer, or no ShadowError)."""
    return err.code if isinstance(err, ShadowError) else None


def _is_status_only(reported: dict[str, Any]) -> bool:
    return set(reported) <= {STATUS_KEY}
