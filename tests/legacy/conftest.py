"""Fixtures for the Python API tests: pyiot's simulators on pseudo-terminals and TCP ports, the
real local stack, the thing run as the original's users ran it (`start()`, blocking, here in a
thread), and the application as a plain MQTT client (`tests.e2e.conftest.ShadowApp`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pyiot.lang import load_file
from pyiot.local import LocalStack
from pyiot.sim import PortSimulator, simulator_for
from tests.e2e.conftest import ShadowApp
from tests.waiting import PATIENCE, wait_until

DEVICES = Path(__file__).resolve().parents[2] / "devices"


class DeviceRoom:
    """Simulated devices, served from an event loop of their own (the thing runs another)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.sims: list[PortSimulator] = []

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def serve(
        self,
        device_file: str,
        component: str | None = None,
        tcp: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> tuple[PortSimulator, str]:
        """Simulate the port of `component` of devices/`device_file`; return it and its
        pseudo-terminal path (or `socket://` URL with `tcp`)."""
        sim = simulator_for(load_file(DEVICES / device_file), component, clock)
        address = self._run(sim.serve_tcp() if tcp else sim.serve_pty())
        self.sims.append(sim)
        return sim, address

    def value(self, sim: PortSimulator, component: str, prop: str) -> Any:
        """What the simulated device holds now."""

        async def read() -> Any:
            return sim.sims[component].values[prop]

        return self._run(read())

    def wait_value(
        self, sim: PortSimulator, component: str, prop: str, expected: Any, timeout: float = PATIENCE
    ) -> None:
        wait_until(
            lambda: self.value(sim, component, prop) == expected,
            timeout,
            f"{component}.{prop} == {expected!r}",
        )

    def preset(self, sim: PortSimulator, component: str, prop: str, value: Any) -> None:
        """Set what the device holds, without announcing it (how it was left last time)."""

        async def store() -> None:
            sim.sims[component].change(prop, value)

        self._run(store())

    def change(self, sim: PortSimulator, component: str, prop: str, value: Any) -> None:
        """A change made at the device itself (its front panel)."""
        self.loop.call_soon_threadsafe(sim.change, component, prop, value)

    def close(self) -> None:
        for sim in self.sims:
            self._run(sim.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def stack(mosquitto_path: str, tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(port=None, data_dir=tmp_path / "data") as running:
        yield running


@pytest.fixture
def devices() -> Iterator[DeviceRoom]:
    room = DeviceRoom()
    yield room
    room.close()


@pytest.fixture
def app(stack: LocalStack) -> Iterator[Callable[[str], ShadowApp]]:
    """The application side of a thing's shadow (subscribed before the thing starts)."""
    apps: list[ShadowApp] = []

    def connect(thing: str) -> ShadowApp:
        apps.append(ShadowApp(stack.url, thing))
        return apps[-1]

    yield connect
    for one in apps:
        one.client.disconnect()  # first: paho's loop then ends at once, not after 1 s
        one.client.loop_stop()


@contextmanager
def started(thing: Any, stop: Callable[[], None] | None = None) -> Iterator[threading.Thread]:
    """`thing.start()` in a thread, as the original's main program ran it; on leaving, `stop`
    (the README's `component.exit()`) must make `start()` return."""
    failures: list[BaseException] = []

    def main() -> None:
        try:
            thing.start()
        except BaseException as err:  # reported in the test's thread
            failures.append(err)

    thread = threading.Thread(target=main, name="thing.start")
    thread.start()
    try:
        yield thread
    finally:
        (stop or thing.stop)()
        thread.join(15)
        assert not thread.is_alive(), "start() did not return after exit()"
        if failures:
            raise failures[0]


class LogLines(logging.Handler):
    """Messages logged by pyiot.legacy, for tests of what a user is told."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def wait_for(self, text: str, timeout: float = PATIENCE) -> str:
        def found() -> str | None:
            return next((line for line in list(self.lines) if text in line), None)

        wait_until(found, timeout, f"a log line with {text!r} (got {self.lines})")
        line = found()
        assert line is not None
        return line


@pytest.fixture
def legacy_log() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("pyiot.legacy")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
