"""A component's device modes: the device's own states (warming, on, cooling) as a machine.

The compiler's mode table names the triggers as the `.iot` file does; this tracker fires them
when the engine sends a set (`set power=on`), when it sees a value (`power==on`), or when the
mode's timer runs out (`after 40s`). A value that names a mode moves there directly: the
device's own report outranks the model's guess. Holds and rejections gate set commands.
Which trigger a value fires and which rule gates a set is the mode model's answer
(compiler/modes.py), the same one the simulator plays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pyiot.compiler.machine import build_machine, stop_timer
from pyiot.compiler.modes import ModeModel
from pyiot.compiler.tables import MachineTable
from pyiot.errors import PyiotError
from pyiot.lang.model import Device, Value

_LOGGER = logging.getLogger(__name__)
_TRANSITIONS = logging.getLogger("pyiot.transitions")


class ModeRefused(PyiotError):
    """A set the device refuses in its current mode (`reject set ... unless ...`)."""

    what = "refused in this mode"


class ModeTracker:
    """The mode machine's model; `state` is the current mode."""

    state: str  # set by the machine
    trigger: Callable[[str], bool]  # added by the machine (transitions' model API)

    def __init__(self, component: str, device: Device, table: MachineTable):
        assert device.modes is not None
        self.component = component
        self.modes = device.modes
        self.table = table
        self.model = ModeModel(device.modes, device, None, 0.0)
        self.listeners: list[Callable[[str, str], None]] = []
        self._changed = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None  # an `after` timer (compiler/machine.py)
        self.machine = build_machine(self, table, on_change="on_mode_change")

    def on_mode_change(self, event: Any = None) -> None:
        self.model.mode = self.state
        if event is not None and _TRANSITIONS.isEnabledFor(logging.INFO):
            source, dest = f"modes.{event.transition.source}", f"modes.{self.state}"
            trigger = event.event.name
            _TRANSITIONS.info(
                "%s: %s -> %s on %s",
                self.component,
                source,
                dest,
                trigger,
                extra={
                    "component": self.component,
                    "source": source,
                    "dest": dest,
                    "trigger": trigger,
                },
            )
        _LOGGER.info("%s: mode %s", self.component, self.state)
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self.listeners:
            listener(self.component, self.state)

    async def sent(self, prop: str, value: Value) -> None:
        """A set command went through: fire `set prop=value` if the current mode has it."""
        for name, (set_prop, literal) in self.table["sets"].items():
            fires = set_prop == prop and self.model.set_fires(prop, value, literal)
            if fires and await self._fire(name):
                return

    async def observed(self, prop: str, value: Value) -> None:
        """A value was read: fire a matching `when`, or follow the device to a named mode."""
        # The file's `when`s, then a value naming a mode (`power==warming`, a table transition
        # from every other mode): the first that the current mode has fires.
        for name, (when_prop, op, literal) in self.table["whens"].items():
            if (
                when_prop == prop
                and self.model.when_holds(prop, value, op, literal)
                and await self._fire(name)
            ):
                return

    async def allowed(self, prop: str) -> None:
        """Return when a set of `prop` may go out: wait through holds, raise on rejections."""
        while True:
            rule = self.model.refusal(prop)
            if rule is None:
                return
            if rule.action == "reject":
                reason = rule.reason or f"not while {self.state}"
                raise ModeRefused(f"{prop} refused in mode {self.state}: {reason}")
            _LOGGER.info(
                "%s: holding set %s until %s", self.component, prop, " or ".join(rule.modes)
            )
            await self._changed.wait()

    async def _fire(self, name: str) -> bool:
        if name not in self.machine.get_triggers(self.state):
            return False
        return self.trigger(name)

    async def stop(self) -> None:
        stop_timer(self)
        if self in self.machine.models:
            self.machine.remove_model(self)
