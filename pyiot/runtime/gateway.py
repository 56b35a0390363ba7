"""A gateway: every thing of a program, its components' engines, and one shadow connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pyiot.compiler.program import Program
from pyiot.runtime.component import ComponentEngine
from pyiot.runtime.shadow_client import ShadowConnection
from pyiot.runtime.thing import ThingRuntime
from pyiot.runtime.transport import open_link

_LOGGER = logging.getLogger(__name__)


class Gateway:
    """Builds and runs the engines and things of a program.

    `endpoints` maps a component name to the device URL to use instead of the file's
    (from `--device NAME=URL` or the simulator).
    """

    def __init__(
        self,
        program: Program,
        shadow: ShadowConnection,
        endpoints: dict[str, str] | None = None,
    ):
        self.program = program
        self.shadow = shadow
        endpoints = endpoints or {}
        self.engines: dict[str, ComponentEngine] = {}
        self.things: dict[str, ThingRuntime] = {}
        model = program.model
        for thing in model.things.values():
            engines = {}
            for comp in thing.components.values():
                device = model.devices[comp.device]
                address = endpoints.get(comp.name, comp.endpoint)
                link = open_link(comp.endpoint_kind, address, device.transport.settings)
                engine = ComponentEngine(
                    comp.name, device, program.machines[comp.device], link, comp.args
                )
                engines[comp.name] = engine
                self.engines[comp.name] = engine
            self.things[thing.name] = ThingRuntime(thing, engines, shadow)

    async def start(self) -> None:
        """Start the devices, then connect every thing to its shadow."""
        for engine in self.engines.values():
            await engine.start()
        self.shadow.on_reconnect = self._on_reconnect
        for thing in self.things.values():
            await thing.start()

    def _on_reconnect(self) -> None:
        # The broker may have restarted: re-read every shadow and report everything again.
        for thing in self.things.values():
            asyncio.create_task(thing.resync(), name=f"{thing.name}:resync")

    async def stop(self) -> None:
        for thing in self.things.values():
            await thing.stop()
        for engine in self.engines.values():
            with contextlib.suppress(Exception):
                await engine.stop()
