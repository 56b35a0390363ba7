"""`Thing`: the original pyIOT's thing, run by pyiot's `ThingRuntime` over one shadow client.

`Thing(endpoint=..., thingName=..., rootCAPath=..., certificatePath=..., privateKeyPath=...,
region=..., components=[...])` and `start()`, as before. Each component runs on its own
`LegacyEngine`; the thing's shadow side is the `ThingRuntime` every `.iot` thing runs on
(desired -> command, device -> reported, rejections and connectivity under `reported.pyiot`),
over awsiotsdk's shadow client. Without an endpoint the thing uses the broker pyiot's
configuration names (`PYIOT_BROKER`, `~/.config/pyiot/config.toml`), else the local stack
running for its data folder (`pyiot broker`, `pyiot run`), else it starts that stack itself
(mosquitto and the local Device Shadow service, on 127.0.0.1:1883 or any free port) — the
same choice as the command line's (:func:`pyiot.local.discovery.choose_broker`).

`onChange(updatedProperties)` is called with the properties the devices changed (gathered
for 0.1 s, as the original did); the `{property: value}` it returns (or a list of pairs) are
sent to the components that own those properties. `_localShadow` holds every property's
latest value.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyiot.lang.model import Component as ModelComponent
from pyiot.lang.model import Thing as ModelThing
from pyiot.legacy.component import Component
from pyiot.legacy.engine import LegacyEngine
from pyiot.legacy.model import build_model, class_pos
from pyiot.legacy.stream import StreamLink, link_for

_LOGGER = logging.getLogger("pyiot.legacy")

# Device-side changes arriving this close together reach onChange as one dict (the original
# waited 0.1 s after a change for the rest of a burst).
BATCH_WINDOW = 0.1


class Thing:
    """Components whose properties appear in one Device Shadow (see the module's docstring).

    Args, as the original: `endpoint` (AWS IoT Core's `XXXX-ats.iot.REGION.amazonaws.com`;
    None for a local broker), `thingName`, `rootCAPath`, `certificatePath`, `privateKeyPath`
    (the thing's certificate files, for the endpoint), `region` (implied by the endpoint;
    unused), `components` (one `Component` or a list). Keyword-only additions: `broker`
    (`mqtt://HOST:PORT` of a broker with a Device Shadow service, such as `pyiot broker`),
    `client_id` (default: `thingName` on AWS, a random one locally), `data_dir` (the data
    folder of the local stack to use, or to start when none runs there).
    """

    _logger = _LOGGER

    def __init__(
        self,
        endpoint: str | None = None,
        thingName: str | None = None,  # noqa: N803 (the original API's spelling)
        rootCAPath: str | None = None,  # noqa: N803
        certificatePath: str | None = None,  # noqa: N803
        privateKeyPath: str | None = None,  # noqa: N803
        region: str | None = None,
        components: Component | Iterable[Component] | None = None,
        *,
        broker: str | None = None,
        client_id: str | None = None,
        data_dir: str | Path | None = None,
    ):
        if not thingName:
            raise ValueError("a Thing needs a thingName (the name of its Device Shadow)")
        self.__name__ = thingName
        self.region = region
        if components is None:
            components = []
        elif isinstance(components, Component):
            components = [components]
        self._components: list[Component] = list(components)
        self._propertyHandlers: dict[str, Component] = {}
        self._localShadow: dict[str, Any] = {}
        names: set[str] = set()
        for component in self._components:
            if component.__name__ in names:
                raise ValueError(f"two components of {thingName} are named {component.__name__!r}")
            names.add(component.__name__)
            build_model(component)  # a class the runtime cannot run fails here, not later
            for prop, value in component.properties.items():
                owner = self._propertyHandlers.setdefault(prop, component)
                if owner is not component:
                    raise ValueError(
                        f"property {prop!r} of {thingName} belongs to both {owner.__name__} "
                        f"and {component.__name__}: each shadow key needs one component"
                    )
                self._localShadow[prop] = value
            component._thing = self
        if endpoint and broker:
            raise ValueError("give a Thing an endpoint (AWS IoT Core) or a broker, not both")
        if endpoint and not (certificatePath and privateKeyPath):
            raise ValueError(
                "an endpoint needs the thing's certificate: certificatePath and privateKeyPath"
            )
        options = {"broker": broker, "endpoint": endpoint, "client_id": client_id}
        if endpoint:
            options.update(cert=certificatePath, key=privateKeyPath, ca=rootCAPath)
        self._options = options
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self.broker: str | None = None  # where the thing connected, once it has
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._changes: dict[str, Any] = {}
        self._batching: asyncio.Task | None = None

    def onChange(self, updatedProperties: dict[str, Any]) -> Any:  # noqa: N802, N803
        """Override to act on device-side changes: return `{property: value}` to send (or a
        list of `(property, value)` pairs); None for nothing. `onChange(self, property,
        value)`, called once per change, works too."""
        return None

    # ----------------------------------------------------------------------------- running
    def start(self) -> None:
        """Run until a component's `exit()` (or `stop()`): blocks, as the original did."""
        asyncio.run(self.run())

    def stop(self) -> None:
        """Make `start()` / `run()` return; callable from any thread."""
        self._stop_requested.set()
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stopped.set)

    async def run(self) -> None:
        """Connect the devices and the shadow; return once stopped."""
        from pyiot.local.discovery import check_shadow_service
        from pyiot.runtime.shadow_client import ShadowConnection
        from pyiot.runtime.thing import ThingRuntime

        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        stack = shadow = runtime = None
        engines: dict[str, LegacyEngine] = {}
        try:
            broker, client_id, stack = await self._broker()
            self.broker = str(broker)
            shadow = ShadowConnection(broker, client_id)
            for component in self._components:
                link = link_for(component._stream, component.__name__)
                engines[component.__name__] = LegacyEngine(component, link)
            runtime = ThingRuntime(self._model(engines), engines, shadow)  # type: ignore[arg-type]
            for engine in engines.values():
                engine.value_listeners.append(self._on_value)
            await shadow.connect()
            await check_shadow_service(shadow, broker, self.__name__)
            for engine in engines.values():
                await engine.start()
            await runtime.start()
            _LOGGER.info("thing %s running on %s", self.__name__, self.broker)
            if self._stop_requested.is_set():
                self._stopped.set()
            await self._stopped.wait()
        finally:
            await self._shutdown(stack, shadow, runtime, engines)
            self._stop_requested.clear()  # the thing may be started again

    async def _broker(self) -> tuple[Any, str | None, Any]:
        """(broker, client id, local stack started here or None): the options, pyiot's
        configuration, the local stack of the data folder, else one started here."""
        from pyiot.config import resolve
        from pyiot.local.discovery import choose_broker

        settings = resolve(self._options)
        choice = await choose_broker(settings, self._data_dir, start=True)
        client_id = choice.client_id or (self.__name__ if settings.is_tls else None)
        return choice.broker, client_id, choice.stack

    def _model(self, engines: dict[str, LegacyEngine]) -> ModelThing:
        pos = class_pos(type(self))
        return ModelThing(
            self.__name__,
            pos,
            components={
                name: ModelComponent(name, engine.device.name, pos, endpoint_kind="custom")
                for name, engine in engines.items()
            },
        )

    async def _shutdown(self, stack, shadow, runtime, engines: dict[str, LegacyEngine]) -> None:
        if self._batching is not None:
            self._batching.cancel()
        self._changes = {}
        if runtime is not None:
            await runtime.stop()
        for engine in engines.values():
            try:
                await engine.stop()
            except Exception:
                _LOGGER.exception("%s: stopping %s failed", self.__name__, engine.name)
            if isinstance(engine.link, StreamLink):
                engine.link.shutdown()
        for component in self._components:
            try:
                component.close()
            except Exception:
                _LOGGER.exception("%s: closing %s failed", self.__name__, component.__name__)
        if shadow is not None:
            await shadow.close()
        if stack is not None:
            await asyncio.get_running_loop().run_in_executor(None, stack.stop)
        self._loop = None

    # ---------------------------------------------------------------------------- onChange
    def _on_value(self, component: str, prop: str, value: Any) -> None:
        self._localShadow[prop] = value
        self._changes[prop] = value
        if self._batching is None or self._batching.done():
            self._batching = asyncio.get_running_loop().create_task(self._after_window())

    async def _after_window(self) -> None:
        await asyncio.sleep(BATCH_WINDOW)
        changes, self._changes = self._changes, {}
        for prop, value in self._wanted_by_on_change(changes):
            owner = self._propertyHandlers.get(prop)
            if owner is None:
                _LOGGER.warning(
                    "%s: onChange asked for %s = %r; no component has %s",
                    self.__name__,
                    prop,
                    value,
                    prop,
                )
                continue
            owner.updateComponent(prop, value)

    def _wanted_by_on_change(self, changes: dict[str, Any]) -> list[tuple[str, Any]]:
        per_change = _positional_count(self.onChange) >= 2
        calls = [(p, v) for p, v in changes.items()] if per_change else [(dict(changes),)]
        wanted: dict[str, Any] = {}
        for args in calls:
            try:
                result = self.onChange(*args)
            except Exception:
                _LOGGER.exception("%s: onChange(%r) failed", self.__name__, args)
                continue
            if isinstance(result, dict):
                wanted.update(result)
            elif result:
                try:
                    wanted.update((prop, value) for prop, value in result)
                except (TypeError, ValueError):
                    _LOGGER.warning(
                        "%s: onChange returned %r; expected {property: value}",
                        self.__name__,
                        result,
                    )
        return list(wanted.items())


def _positional_count(method: Any) -> int:
    """How many positional arguments a bound method requires."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty)
