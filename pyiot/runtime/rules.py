"""Rules across components: the original pyIOT's `onChange`, declared in the thing.

`when preamp.input becomes tv then projector.power = on, projector.source = hdmi1`: when a
value *changes* to the one named, the actions are sent as commands. The first reading after
start is no change (a restart must not switch the projector on); an action whose target
already has the value is not sent (no duplicate commands); and a rule that fires again within
`COOLDOWN` seconds is suppressed with a warning, so two rules feeding each other cannot loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pyiot.lang.model import Rule, Thing, Value
from pyiot.lang.values import BadValue
from pyiot.runtime.component import ComponentEngine, DeviceError

_LOGGER = logging.getLogger(__name__)

COOLDOWN = 1.0


class RuleRunner:
    """Watches a thing's components and carries out its rules."""

    def __init__(self, thing: Thing, engines: dict[str, ComponentEngine]):
        self.thing = thing
        self.engines = engines
        self.fired = 0
        self._seen: dict[tuple[str, str], Value] = {}
        self._last_fired: dict[int, float] = {}
        self._tasks: set[asyncio.Task] = set()
        if thing.rules:
            for engine in engines.values():
                engine.value_listeners.append(self._on_value)

    def _on_value(self, component: str, prop: str, value: Value) -> None:
        key = (component, prop)
        before = self._seen.get(key, _UNSEEN)
        self._seen[key] = value
        if before is _UNSEEN or _same(before, value):
            return
        for index, rule in enumerate(self.thing.rules):
            if (rule.component, rule.prop) == key and _same(rule.value, value):
                self._fire(index, rule)

    def _fire(self, index: int, rule: Rule) -> None:
        now = time.monotonic()
        if now - self._last_fired.get(index, -COOLDOWN) < COOLDOWN:
            _LOGGER.warning(
                "%s: rule 'when %s.%s becomes %s' fired again within %gs: suppressed (a loop?)",
                self.thing.name,
                rule.component,
                rule.prop,
                rule.value,
                COOLDOWN,
            )
            return
        self._last_fired[index] = now
        self.fired += 1
        _LOGGER.info(
            "%s: %s.%s became %s: running its rule",
            self.thing.name,
            rule.component,
            rule.prop,
            rule.value,
        )
        task = asyncio.get_running_loop().create_task(self._run(rule))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, rule: Rule) -> None:
        # In order: `power = on, source = hdmi1` must reach the projector in that order.
        for action in rule.actions:
            engine = self.engines[action.component]
            if _same(engine.values.get(action.prop, _UNSEEN), action.value):
                continue
            try:
                await engine.set(action.prop, action.value)
            except (BadValue, DeviceError) as err:
                _LOGGER.warning(
                    "%s: rule action %s.%s = %s failed: %s",
                    self.thing.name,
                    action.component,
                    action.prop,
                    action.value,
                    err,
                )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


_UNSEEN = object()


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b
