"""A Thing: its components' properties mirrored in one Device Shadow.

Device -> shadow: every value a component reads goes to `reported`, batched (changes that
arrive while an update is in flight go out together in the next one). Shadow -> device: each
key of `update/delta` is validated, sent as a command, and once the device confirms it the new
value is reported and the handled desired key cleared, so the delta empties.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyiot.lang.model import Thing, Value
from pyiot.lang.values import ValueError_
from pyiot.runtime.component import ComponentEngine, ComponentStatus, DeviceError
from pyiot.runtime.shadow_client import ShadowConnection, ShadowError

_LOGGER = logging.getLogger(__name__)

# pyiot's own status lives under this key in `reported` (properties may not use it).
STATUS_KEY = "pyiot"


class ThingRuntime:
    """Runs one thing's shadow side over a shared `ShadowConnection`."""

    def __init__(self, thing: Thing, engines: dict[str, ComponentEngine], shadow: ShadowConnection):
        self.name = thing.name
        self.engines = engines
        self.shadow = shadow
        # Flat shadow names: each property appears under its own name.
        self.keys: dict[str, tuple[ComponentEngine, str]] = {
            prop: (engine, prop) for engine in engines.values() for prop in engine.device.properties
        }
        self._reported: dict[str, Any] = {}
        self._desired: dict[str, Any] = {}
        self._rejected: set[str] = set()
        # The newest desired value seen per key (from deltas and documents, in shadow order):
        # a command finishing after the application changed its mind must not clear the newer wish.
        self._wanted: dict[str, Any] = {}
        self._flushing: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.applied = 0

    async def start(self) -> None:
        """Listen to components and deltas, then sync with the shadow."""
        for engine in self.engines.values():
            engine.value_listeners.append(self._on_value)
            engine.status_listeners.append(self._on_status)
            self._on_status(engine.name, engine.status)
        await self.shadow.watch_delta(self.name, self._on_delta)
        await self.shadow.watch_documents(self.name, self._on_document)
        await self.resync()

    async def resync(self) -> None:
        """After (re)connecting: apply what `desired` still asks, and report everything known."""
        document = await self.shadow.get(self.name)
        for engine in self.engines.values():
            for prop, value in engine.values.items():
                self._reported[prop] = value
            self._on_status(engine.name, engine.status)
        if document:
            if document["delta"]:
                self._on_delta(document["delta"], document["version"])
            self._clear_satisfied(document["desired"], document["reported"])
        self._schedule_flush()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._flushing is not None:
            self._flushing.cancel()

    # device -> shadow ------------------------------------------------------------------------
    def _on_value(self, component: str, prop: str, value: Value) -> None:
        self._reported[prop] = value
        self._schedule_flush()

    def _on_status(self, component: str, status: ComponentStatus) -> None:
        entry = {"online": status.online, "error": status.last_error}
        self._status_section().setdefault("components", {})[component] = entry
        self._schedule_flush()

    def _status_section(self) -> dict[str, Any]:
        return self._reported.setdefault(STATUS_KEY, {})

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name=f"{self.name}:report")

    async def _flush(self) -> None:
        # Changes that arrive while one update is in flight are sent together in the next.
        await asyncio.sleep(0)
        while self._reported or self._desired:
            reported, self._reported = self._reported, {}
            desired, self._desired = self._desired, {}
            try:
                await self.shadow.update(self.name, reported=reported, desired=desired or None)
            except (ShadowError, ConnectionError) as err:
                _LOGGER.warning("%s: shadow update failed: %s", self.name, err)
                # Keep what was not sent; newer values win. The next change or resync retries.
                self._reported = _merge(reported, self._reported)
                self._desired = {**desired, **self._desired}
                return

    # shadow -> device ------------------------------------------------------------------------
    def _on_document(self, document: dict[str, Any]) -> None:
        state = document.get("state", {})
        desired = state.get("desired") or {}
        for key in self.keys:
            self._wanted[key] = desired.get(key)
        self._clear_satisfied(desired, state.get("reported") or {})

    def _clear_satisfied(self, desired: dict[str, Any], reported: dict[str, Any]) -> None:
        """Clear desired keys the device already satisfies.

        The shadow publishes no delta for a desired value equal to `reported`, so nothing
        else would clear it; left in place, it would turn the device back the next time
        someone changes it at the device itself.
        """
        for key, value in desired.items():
            if key in self.keys and key in reported and _same(reported[key], value):
                self._desired[key] = None
        if self._desired:
            self._schedule_flush()

    def _on_delta(self, delta: dict[str, Any], version: int) -> None:
        for key, value in delta.items():
            if key == STATUS_KEY:
                continue
            self._wanted[key] = value
            task = asyncio.create_task(self._apply(key, value), name=f"{self.name}:{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _apply(self, key: str, value: Any) -> None:
        target = self.keys.get(key)
        try:
            if target is None:
                raise ValueError_(f"unknown property (known: {', '.join(sorted(self.keys))})")
            engine, prop = target
            confirmed = await engine.set(prop, value)
        except ValueError_ as err:
            self._reject(key, value, str(err))
            return
        except DeviceError as err:
            if err.refused:
                self._reject(key, value, str(err))
            else:
                # Silent device: keep desired so the change is applied on the next resync.
                _LOGGER.warning("%s: %s = %r not applied: %s", self.name, key, value, err)
            return
        self.applied += 1
        if confirmed is not None:
            self._reported[key] = confirmed
        if _same(self._wanted.get(key), value):
            self._desired[key] = None
        if key in self._rejected:
            self._rejected.discard(key)
            self._status_section().setdefault("rejected", {})[key] = None
        self._schedule_flush()

    def _reject(self, key: str, value: Any, reason: str) -> None:
        _LOGGER.warning("%s: rejected desired %s = %r: %s", self.name, key, value, reason)
        self._rejected.add(key)
        rejected = self._status_section().setdefault("rejected", {})
        rejected[key] = {"value": value, "reason": reason}
        self._desired[key] = None
        self._schedule_flush()


def _same(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`."""
    return type(a) is type(b) and a == b


def _merge(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    merged = dict(older)
    for key, value in newer.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
