"""A gateway: every thing of one or more programs, their engines, and one shared connection.

One `pyiot run a.iot b.iot` is one MQTT client (one connection, one keep-alive, one client
certificate on AWS) serving each thing's own shadow. Thing names must be unique across the
files, as each names a shadow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from pyiot.compiler.program import Program
from pyiot.lang.model import Component
from pyiot.runtime.component import ComponentEngine
from pyiot.runtime.shadow_client import ShadowConnection
from pyiot.runtime.thing import ThingRuntime
from pyiot.runtime.transport import open_link

_LOGGER = logging.getLogger(__name__)


class DuplicateThing(ValueError):
    """Two files (or one file twice) declare a thing of the same name."""


def check_unique_things(programs: Sequence[Program]) -> None:
    """Raise DuplicateThing naming both places when a thing name is declared twice."""
    seen: dict[str, str] = {}
    for program in programs:
        for thing in program.model.things.values():
            where = str(thing.pos)
            if thing.name in seen:
                raise DuplicateThing(
                    f"thing {thing.name!r} is declared twice ({seen[thing.name]} and {where}); "
                    "each thing is one shadow, so thing names must be unique"
                )
            seen[thing.name] = where


def endpoint_for(endpoints: dict[str, str], thing: str, component: Component) -> str:
    """The device URL of a component: `THING.COMPONENT=URL`, else `COMPONENT=URL`, else the
    file's own."""
    qualified = f"{thing}.{component.name}"
    return endpoints.get(qualified, endpoints.get(component.name, component.endpoint))


class Gateway:
    """Builds and runs the engines and things of one or more programs.

    `endpoints` maps a component name (or `thing.component`) to the device URL to use instead
    of the file's (from `--device NAME=URL` or the simulator).
    """

    def __init__(
        self,
        programs: Program | Sequence[Program],
        shadow: ShadowConnection,
        endpoints: dict[str, str] | None = None,
    ):
        self.programs = [programs] if isinstance(programs, Program) else list(programs)
        check_unique_things(self.programs)
        self.shadow = shadow
        endpoints = endpoints or {}
        # Keyed `thing.component`: two things (or files) may use the same component name.
        self.engines: dict[str, ComponentEngine] = {}
        self.things: dict[str, ThingRuntime] = {}
        for program in self.programs:
            model = program.model
            for thing in model.things.values():
                engines = {}
                for comp in thing.components.values():
                    device = model.devices[comp.device]
                    address = endpoint_for(endpoints, thing.name, comp)
                    link = open_link(comp.endpoint_kind, address, device.transport.settings)
                    engine = ComponentEngine(
                        comp.name, device, program.machines[comp.device], link, comp.args
                    )
                    engines[comp.name] = engine
                    self.engines[f"{thing.name}.{comp.name}"] = engine
                self.things[thing.name] = ThingRuntime(thing, engines, shadow)

    async def start(self) -> None:
        """Start the devices, then connect every thing to its shadow."""
        for engine in self.engines.values():
            await engine.start()
        self.shadow.on_reconnect = self._on_reconnect
        await asyncio.gather(*(thing.start() for thing in self.things.values()))

    def _on_reconnect(self) -> None:
        # The broker may have restarted: re-read every shadow and report what it lacks.
        # (Each thing also re-reads once its subscriptions are back, whichever comes last.)
        for thing in self.things.values():
            thing.request_resync()

    async def stop(self) -> None:
        for thing in self.things.values():
            await thing.stop()
        for engine in self.engines.values():
            with contextlib.suppress(Exception):
                await engine.stop()
