"""Helpers for the device tests: each file in devices/, its simulator, and the real runtime.

A device test speaks to the simulator generated from the file (byte for byte, with a hand-moved
clock for warm-ups) and runs the file's own compiled protocol in a `ComponentEngine` against that
simulator over real TCP (pyserial's `socket://`), as `pyiot run --simulate` would.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path

import pytest

from pyiot.compiler import Program
from pyiot.lang import IotFile, load_file
from pyiot.lang.model import Component
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.transport import open_link
from pyiot.sim import PortSimulator, simulator_for
from tests.waiting import eventually

DEVICES = Path(__file__).resolve().parents[2] / "devices"


@cache
def device_file(name: str) -> IotFile:
    """The model of `devices/<name>.iot` (loaded once per test session)."""
    return load_file(DEVICES / f"{name}.iot")


class Clock:
    """Device time moved by hand: `clock.advance(40)` is a projector's warm-up, at once."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def component_of(model: IotFile, name: str) -> Component:
    for thing in model.things.values():
        if name in thing.components:
            return thing.components[name]
    raise LookupError(name)


@contextlib.asynccontextmanager
async def running(
    model: IotFile, component: str, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[tuple[ComponentEngine, PortSimulator]]:
    """The component's engine, running the file's protocol against its simulator over TCP.

    Yields once the engine is connected; on leaving, lets the current exchange finish, then
    stops the engine and closes the simulator.
    """
    port = simulator_for(model, component, clock=clock)
    url = await port.serve_tcp()
    program = Program.from_model(model)
    comp = component_of(model, component)
    engine = ComponentEngine(
        EngineConfig(
            component,
            program.model.devices[comp.device],
            program.machines[comp.device],
            args=comp.args,
            modes=program.modes.get(comp.device),
        ),
        open_link("serial", url),
    )
    await engine.start()
    try:
        await eventually(lambda: engine.status.online)
        yield engine, port
    finally:
        with contextlib.suppress(AssertionError):
            await eventually(lambda: engine.state in ("idle", "offline"), timeout=1.0)
        await engine.stop()
        await port.close()
