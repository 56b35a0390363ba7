"""A gateway: every thing of one or more programs, their engines, and their connections.

One `pyiot run a.iot b.iot` is one MQTT client certificate on AWS serving each thing's own
shadow, over as few connections as AWS IoT Core's quotas allow (`pyiot.runtime.pool`: up to
10 things a connection; one thing or ten, one connection). Thing names must be unique across
the files, as each names a shadow. Components on one port (six amplifier zones on one serial
line) share one open link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from pyiot.compiler.program import Program
from pyiot.errors import PyiotError
from pyiot.lang.model import Component, Thing
from pyiot.lang.shadow_names import shadow_paths
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.hooks import resolve_hooks
from pyiot.runtime.pool import ConnectionPool
from pyiot.runtime.rules import RuleRunner
from pyiot.runtime.shadow_client import ShadowConnection
from pyiot.runtime.sharing import SharedLink
from pyiot.runtime.thing import ThingRuntime
from pyiot.runtime.transport import Link, endpoint_refusal, open_link


class DuplicateThing(PyiotError, ValueError):
    """Two files (or one file twice) declare a thing of the same name."""

    what = "thing declared twice"


class EndpointNotAllowed(PyiotError, ValueError):
    """A `.iot` file names an endpoint that acts (pyserial's `spy://`, `hwgrep://`)."""

    what = "endpoint not allowed"


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


def endpoint_for(endpoints: dict[str, str], thing: Thing, component: Component) -> tuple[str, str]:
    """(kind, address) of a component's device: `--device THING.NAME=URL`, else `NAME=URL`
    (NAME the component, or the thing's `port` it sits on), else the file's own."""
    port = thing.ports.get(component.port) if component.port else None
    kind = port.kind if port is not None else component.endpoint_kind
    for name in [component.name, *([component.port] if component.port else [])]:
        for key in (f"{thing.name}.{name}", name):
            if key in endpoints:
                # A URL from the command line or the simulator replaces a custom transport too.
                return ("serial" if kind == "custom" else kind), endpoints[key]
    return kind, port.address if port is not None else component.endpoint


def check_endpoints(
    programs: Sequence[Program], endpoints: dict[str, str], allow_python: bool = False
) -> None:
    """Raise EndpointNotAllowed, positioned, for an endpoint a file names that may act.

    Endpoints the user gives (`--device`, the simulator's) are the user's own and pass; so does
    everything with `allow_python`. Called before anything is opened.
    """
    if allow_python:
        return
    for program in programs:
        for thing in program.model.things.values():
            for comp in thing.components.values():
                if endpoint_for(endpoints, thing, comp) != endpoint_for({}, thing, comp):
                    continue  # the user's own
                port = thing.ports.get(comp.port) if comp.port else None
                kind, address = endpoint_for({}, thing, comp)
                reason = endpoint_refusal(kind, address)
                if reason is None:
                    continue
                where = port.pos if port is not None else comp.positions.get("endpoint", comp.pos)
                raise EndpointNotAllowed(f"{where}: component {comp.name}: {reason}")


def _ports(
    programs: Sequence[Program], endpoints: dict[str, str], allow_python: bool = False
) -> dict[tuple, Link | SharedLink]:
    """One link per port; a port that several components use is opened once and shared."""
    users: dict[tuple[str, str], list[tuple[dict, Path | None]]] = {}
    for program in programs:
        folder = Path(program.model.path).parent if program.model.path else None
        for thing in program.model.things.values():
            for comp in thing.components.values():
                key = endpoint_for(endpoints, thing, comp)
                settings = program.model.devices[comp.device].transport.settings
                users.setdefault(key, []).append((settings, folder))
    ports: dict[tuple, Link | SharedLink] = {}
    for (kind, address), sharing in users.items():
        first, folder = sharing[0]
        link = open_link(kind, address, first, allow_python, folder)
        ports[(kind, address)] = SharedLink(link) if len(sharing) > 1 else link
    return ports


class Gateway:
    """Builds and runs the engines and things of one or more programs.

    `endpoints` maps a component name (or `thing.component`) to the device URL to use instead
    of the file's (from `--device NAME=URL` or the simulator). Components on the same port
    (the same kind and address) share one open link and take turns on it. `allow_python`
    lets files load the Python hooks they name; without it such a file stops the gateway
    before anything connects.

    `shadow` is a `ConnectionPool` (each thing on the connection the pool gives it) or one
    `ShadowConnection` that serves every thing.
    """

    def __init__(
        self,
        programs: Program | Sequence[Program],
        shadow: ShadowConnection | ConnectionPool,
        endpoints: dict[str, str] | None = None,
        allow_python: bool = False,
    ):
        self.programs = [programs] if isinstance(programs, Program) else list(programs)
        check_unique_things(self.programs)
        self.shadow = shadow
        names = [name for program in self.programs for name in program.model.things]
        pool = shadow if isinstance(shadow, ConnectionPool) else ConnectionPool.of(shadow, names)
        self.pool = pool
        endpoints = endpoints or {}
        # Keyed `thing.component`: two things (or files) may use the same component name.
        self.engines: dict[str, ComponentEngine] = {}
        self.things: dict[str, ThingRuntime] = {}
        self.rules: list[RuleRunner] = []
        check_endpoints(self.programs, endpoints, allow_python)
        ports = _ports(self.programs, endpoints, allow_python)
        for program in self.programs:
            model = program.model
            search_dir = Path(model.path).parent if model.path else None
            for thing in model.things.values():
                engines = {}
                for comp in thing.components.values():
                    device = model.devices[comp.device]
                    port = ports[endpoint_for(endpoints, thing, comp)]
                    hooks = resolve_hooks(device, allow_python, search_dir)
                    config = EngineConfig.of(program, comp, hooks)
                    if isinstance(port, SharedLink):
                        engine = ComponentEngine(config, port.view(), port.turns)
                    else:
                        engine = ComponentEngine(config, port)
                    engines[comp.name] = engine
                    self.engines[f"{thing.name}.{comp.name}"] = engine
                paths = shadow_paths(thing, model)
                connection = self.pool.connection_for(thing.name)
                self.things[thing.name] = ThingRuntime(thing, engines, connection, paths)
                self.rules.append(RuleRunner(thing, engines))

    async def start(self) -> None:
        """Start the devices, then connect every thing to its shadow."""
        for engine in self.engines.values():
            await engine.start()
        self.pool.on_reconnect(self._on_reconnect)
        await asyncio.gather(*(thing.start() for thing in self.things.values()))

    def _on_reconnect(self, connection: ShadowConnection) -> None:
        # The broker may have restarted: re-read the shadows of this connection's things and
        # report what they lack. (Each thing also re-reads once its subscriptions are back,
        # whichever comes last.)
        for name in self.pool.things_of(connection):
            self.things[name].request_resync()

    async def stop(self) -> None:
        for rules in self.rules:
            await rules.stop()
        # Together: each reports its components offline, with a bounded wait of its own.
        await asyncio.gather(*(thing.stop() for thing in self.things.values()))
        # Together too: each waits a moment for its link to close, and a gateway of hundreds
        # of components must not take that long hundreds of times.
        await asyncio.gather(
            *(engine.stop() for engine in self.engines.values()), return_exceptions=True
        )
