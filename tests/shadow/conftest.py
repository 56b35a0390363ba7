"""Fixtures for the Thing tests: the real local stack, a simulated device on TCP, the Gateway
with its awsiotsdk shadow client, and an application that is another awsiotsdk client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.local import LocalStack
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection
from pyiot.sim import DeviceSimulator, PortSimulator
from tests.local.conftest import MqttProbe
from tests.waiting import PATIENCE

# An amplifier-like device: a bool, an int with a range, a read-only int, an enum; short
# timing so a
# silent device fails a request in 0.4 s.
AMP = r"""
device Amp "amplifier for the shadow tests" {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 200ms
    retries 1
    error /^ERR$/

    property power: bool {
        query "PWR?"
        reply /^PWR(?P<value>ON|OFF)$/
        set   "PWR{value}"
        map   { ON = true, OFF = false }
    }
    property volume: int 0..38 {
        query "VOL?"
        reply /^VOL(?P<value>\d+)$/
        set   "VOL{value}"
    }
    property input: int 1..6 {
        query "INP?"
        reply /^INP(?P<value>\d)$/
    }
    property source: enum { hdmi1 = "30", hdmi2 = "A0" } {
        query "SRC?"
        reply /^SRC(?P<value>\w\w)$/
        set   "SRC{value}"
    }
}
"""


def amp_program(*things: str, component: str = "amp1") -> Program:
    """The Amp device and one thing per name, each with one Amp component."""
    body = "".join(
        f'thing {name} {{\n    component {component}: Amp on serial "/dev/null"\n}}\n'
        for name in things
    )
    return Program.from_model(load(AMP + body, f"{things[0]}.iot"))


def _stack(tmp_path_factory: pytest.TempPathFactory, delta_first: bool) -> Iterator[LocalStack]:
    with LocalStack(
        port=None, data_dir=tmp_path_factory.mktemp("stack"), delta_first=delta_first
    ) as running:
        yield running


@pytest.fixture(scope="module")
def stack(mosquitto_path, tmp_path_factory) -> Iterator[LocalStack]:
    """The local stack, replies in the usual order (accepted, then delta)."""
    yield from _stack(tmp_path_factory, delta_first=False)


@pytest.fixture(scope="module", params=["accepted-first", "delta-first"])
def any_order_stack(mosquitto_path, tmp_path_factory, request) -> Iterator[LocalStack]:
    """The local stack once per reply order AWS may use."""
    yield from _stack(tmp_path_factory, delta_first=request.param == "delta-first")


@pytest.fixture
def thing_name() -> Callable[[], str]:
    """Fresh thing names, so tests sharing a stack do not see each other's shadows."""
    return lambda: f"t{uuid.uuid4().hex[:10]}"


class App:
    """The application side: an awsiotsdk client that sets desired and waits on documents."""

    def __init__(self, connection: ShadowConnection, thing: str):
        self.connection = connection
        self.thing = thing
        self.latest: dict[str, Any] = {}
        self._changed = asyncio.Event()

    async def watch(self) -> None:
        await self.connection.watch_documents(self.thing, self._on_document)
        # What happened before the subscription: documents only tell what comes after.
        current = await self.connection.get(self.thing)
        if current is not None and not self.latest:
            self.latest = {"desired": current["desired"], "reported": current["reported"]}

    def _on_document(self, document: dict[str, Any]) -> None:
        self.latest = document["state"]
        self._changed.set()

    async def set(self, **desired: Any) -> None:
        await self.connection.update(self.thing, desired=desired)

    async def until(self, check: Callable[[dict[str, Any]], bool], timeout: float = PATIENCE) -> dict:
        """Wait until the shadow's state (desired/reported) passes `check`; return it."""

        async def wait() -> dict[str, Any]:
            while not check(self.latest):
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.5)
                except asyncio.TimeoutError:
                    # Documents published while this client was reconnecting are lost to
                    # it, as to any application: look at the shadow itself now and then.
                    current = await self.connection.get(self.thing, timeout=2)
                    if current is not None:
                        self.latest = {k: current[k] for k in ("desired", "reported")}
            return self.latest

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"shadow never got there; last state: {self.latest}") from None

    async def document(self) -> dict[str, Any]:
        got = await self.connection.get(self.thing)
        assert got is not None
        return got


class Rig:
    """Simulated devices, a running Gateway for `programs`, and an App per thing."""

    def __init__(self, stack: LocalStack, *programs: Program):
        self.stack = stack
        self.programs = programs
        self.sims: dict[str, PortSimulator] = {}
        self.gateway: Gateway | None = None
        self.apps: dict[str, App] = {}
        self._app_connection: ShadowConnection | None = None

    @property
    def broker(self) -> BrokerAddress:
        return BrokerAddress(self.stack.host, self.stack.port)

    async def serve_devices(self) -> dict[str, str]:
        endpoints = {}
        for program in self.programs:
            for thing in program.model.things.values():
                for comp in thing.components.values():
                    device = program.model.devices[comp.device]
                    sim = PortSimulator([DeviceSimulator(comp.name, device, comp.args)])
                    key = f"{thing.name}.{comp.name}"
                    endpoints[key] = await sim.serve_tcp()
                    self.sims[key] = sim
        return endpoints

    async def start_app(self) -> None:
        self._app_connection = ShadowConnection(self.broker)
        await self._app_connection.connect()
        for program in self.programs:
            for name in program.model.things:
                self.apps[name] = App(self._app_connection, name)
                await self.apps[name].watch()

    async def start(self) -> Gateway:
        """The usual order: the application first (it sees every report), then the gateway
        on freshly served simulated devices."""
        await self.start_app()
        return await self.start_gateway(await self.serve_devices())

    async def start_gateway(self, endpoints: dict[str, str]) -> Gateway:
        connection = ShadowConnection(self.broker)
        await connection.connect()
        self.gateway = Gateway(list(self.programs), connection, endpoints)
        await self.gateway.start()
        return self.gateway

    async def stop_gateway(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
            await self.gateway.shadow.close()
            self.gateway = None

    async def close(self) -> None:
        await self.stop_gateway()
        if self._app_connection is not None:
            await self._app_connection.close()
        for sim in self.sims.values():
            await sim.close()


def reported(state: dict[str, Any]) -> dict[str, Any]:
    return state.get("reported") or {}


def desired(state: dict[str, Any]) -> dict[str, Any]:
    return state.get("desired") or {}


def status(state: dict[str, Any]) -> dict[str, Any]:
    return reported(state).get("pyiot") or {}


class RequestProbe:
    """Records every request published on a thing's `update` topic (what pyiot sends)."""

    def __init__(self, stack: LocalStack, thing: str):
        self.probe = MqttProbe(stack.host, stack.port)
        self.probe.subscribe(f"$aws/things/{thing}/shadow/update")

    def clear(self) -> None:
        with self.probe._cond:
            self.probe._messages.clear()

    def bodies(self) -> list[dict[str, Any]]:
        """The request bodies so far, without their clientToken."""
        with self.probe._cond:
            bodies = [body for _, body in self.probe._messages]
        return [{k: v for k, v in body.items() if k != "clientToken"} for body in bodies]


@pytest.fixture
def make_request_probe() -> Iterator[Callable[[LocalStack, str], RequestProbe]]:
    made: list[RequestProbe] = []

    def make(stack: LocalStack, thing: str) -> RequestProbe:
        made.append(RequestProbe(stack, thing))
        return made[-1]

    yield make
    for probe in made:
        probe.probe.close()
