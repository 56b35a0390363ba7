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

The thing keeps the lifecycle (start, the shadow read at start and after a reconnect, which
events to believe, stop); desired keys are handled by its `Reconciler` (runtime/reconciler.py)
and every report goes out through its `Outbox` (runtime/outbox.py): direct QoS 1 publishes,
one in flight per thing, confirmed by `update/accepted`/`update/rejected`.

pyiot's own report always fits: `reported.pyiot.rejected` is bounded in bytes, and an update
the service refuses as too large or malformed is sent again smaller (without the rejections,
then without property values) rather than dropped, so the components' status always arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pyiot.lang.model import Thing, Value
from pyiot.runtime.component import ComponentEngine, ComponentStatus
from pyiot.runtime.documents import Path, diff, lookup, merge, nest, parents_of, same
from pyiot.runtime.outbox import REPORT_WINDOW, STATUS_KEY, Budget, Outbox
from pyiot.runtime.reconciler import Reconciler
from pyiot.runtime.rejections import Rejections
from pyiot.runtime.shadow_client import ShadowConnection, ShadowError, ShadowTimeout

__all__ = ["MAX_VERSION_JUMP", "REPORT_WINDOW", "STATUS_KEY", "STOPPED", "ThingRuntime"]

_LOGGER = logging.getLogger(__name__)

# A failed get is tried again after this, doubling up to the maximum.
RETRY_MIN, RETRY_MAX = 0.5, 10.0
# The first get after (re)connecting may go unanswered (the service restarting with the
# broker): it is retried after this long, then after longer and longer waits.
GET_TIMEOUTS = (1.0, 2.0, 5.0, 10.0)
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
        budget: Budget | None = None,
    ):
        """`paths` maps (component, property) to its key path (default: flat, the name);
        `budget` paces this thing's reports (see `pyiot.runtime.outbox.Budget`)."""
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
        self._baseline: dict[Path, Any] = {}  # the shadow's values the device has not told yet
        self._components: dict[str, dict[str, Any]] = {}
        self._rejections = Rejections()
        self.outbox = Outbox(
            self.name, shadow, self._rejections, lambda: dict(self._components), budget=budget
        )
        self.reconciler = Reconciler(
            self.name, self.keys, parents_of(set(self.keys)), self.outbox, self._rejections
        )
        self._version = -1
        self._version_checked = False  # whether _version came from a get, not an event
        self._stale = False
        self._started = False  # whether start() reached the shadow (else nothing to report)
        self._stopping = False
        self._resyncing: asyncio.Task | None = None
        self._resync_again = False
        # The connection's last will names this thing's components (it is built on connect).
        shadow.declare(self.name, list(engines))

    @property
    def applied(self) -> int:
        """Desired values the devices confirmed."""
        return self.reconciler.applied

    async def start(self) -> None:
        """Listen to components and the shadow, then sync with it."""
        self._started = True
        for engine in self.engines.values():
            engine.value_listeners.append(self._on_value)
            engine.status_listeners.append(self._on_status)
            self._on_status(engine.name, engine.status)
        # One subscription per thing (update/+): delta, documents, and the answers to reports.
        await self.shadow.watch_updates(
            self.name,
            self._on_delta,
            self._on_document,
            self.outbox.answer,
            on_resubscribed=self.request_resync,
            tokens=self.outbox.token_prefix,
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
                if not isinstance(err, ShadowTimeout):
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
        self.outbox.replace_reported(diff(self._snapshot(), document["reported"], STATUS_KEY))
        # Values the device has not told yet: its first report of each is compared with
        # the shadow, so a restarted pyiot does not send again what the shadow shows.
        self._baseline = {}
        for key, (engine, prop) in self.keys.items():
            found, value = lookup(document["reported"], key)
            if found and prop not in engine.values:
                self._baseline[key] = value
        with self.outbox.together():
            self.reconciler.resync(document["desired"])
            self.outbox.ready()

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
        self.reconciler.cancel()
        if self._resyncing is not None:
            self._resyncing.cancel()
        self.outbox.close()
        if timeout > 0 and self._started:
            # One last update: what was not sent yet, and every component offline.
            offline = {name: {"online": False, "error": STOPPED} for name in self.engines}
            await self.outbox.final({STATUS_KEY: {"components": offline}}, timeout)

    # device -> shadow ------------------------------------------------------------------------
    def _on_value(self, component: str, prop: str, value: Value) -> None:
        key = self._paths[(component, prop)]
        if key in self._baseline and same(self._baseline.pop(key), value):
            return  # the shadow shows it already
        # The reply to a command the application waits for: report it in this iteration.
        urgent = self.reconciler.confirmed_now(key, value)
        self.outbox.report(nest(key, value), urgent=urgent)

    def _on_status(self, component: str, status: ComponentStatus) -> None:
        if self._stopping:
            return
        entry = {"online": status.online, "error": status.last_error}
        previous = self._components.get(component)
        if entry == previous:
            return
        self._components[component] = entry
        self.outbox.report({STATUS_KEY: {"components": {component: entry}}})
        back_online = status.online and previous is not None and not previous["online"]
        # A device that ignored a command answers again: its error clears, and it gets what
        # it missed.
        unanswered = self.reconciler.unanswered
        speaks_again = status.online and status.last_error is None and component in unanswered
        if back_online or speaks_again:
            unanswered.discard(component)
            self.reconciler.retry_wanted(component)

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
        if self._believe(version, "delta"):
            self.reconciler.on_delta(delta)

    def _on_document(self, document: dict[str, Any]) -> None:
        version = document.get("version")
        if self._stopping or version is not None and not self._believe(version, "document"):
            return
        with self.outbox.together():
            self._correct_offline(document.get("state", {}).get("reported") or {})
            self.reconciler.on_document(document.get("state", {}).get("desired") or {})

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
                self.outbox.report({STATUS_KEY: {"components": {name: entry}}}, urgent=True)
