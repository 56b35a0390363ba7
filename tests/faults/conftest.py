"""Fixtures for the fault tests: sizes, a running Gateway against the real local stack, the
application's view of the shadow, pyiot's log, and the process's own resources.

Every fault test runs a reduced count by default, so the whole of tests/faults stays within a
minute; `PYIOT_FAULTS_FULL=1` runs the sizes of the issue (100 unplug cycles, 20 broker
restarts, 10,000 garbage frames, 1,000 bad documents, 1,000 mutated files). Each test records
its figures, printed at the end of the run ("fault figures").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.local import LocalStack
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection
from tests.shadow.conftest import App

ROOT = Path(__file__).resolve().parents[2]

FULL = os.environ.get("PYIOT_FAULTS_FULL", "").strip().lower() not in ("", "0", "false", "no")


def size(full: int, default: int) -> int:
    """The issue's count with PYIOT_FAULTS_FULL=1, else the reduced default."""
    return full if FULL else default


# Long enough for the full sizes; the defaults finish in seconds.
TIMEOUT = pytest.mark.timeout(1800 if FULL else 120)

# The relay's protocol (devices/relay.iot) with a 1 s poll, so a fault is also seen by polls.
RELAY = r"""
device Relay "Single-channel serial relay" {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 500ms
    retries 2
    poll every 1s
    error /^ERR$/

    property relayState: bool {
        query "RELAY?"
        reply /^RELAY(?P<value>ON|OFF)$/
        set   "RELAY{value}"
        map   { ON = true, OFF = false }
    }
}
"""
RELAY_TIMEOUT = 0.5


def relay_source(thing: str, endpoint: str = 'serial "/dev/null"') -> str:
    """The relay device and one thing with one component, `relay1`."""
    return RELAY + f"thing {thing} {{\n    component relay1: Relay on {endpoint}\n}}\n"


def relay_program(thing: str, endpoint: str = 'serial "/dev/null"') -> Program:
    return Program.from_model(load(relay_source(thing, endpoint), f"{thing}.iot"))


# ---------------------------------------------------------------------------------- figures
_FIGURES: list[str] = []


def figure(text: str) -> None:
    """Record one measured figure; all are printed at the end of the run."""
    _FIGURES.append(text)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        mode = "full (PYIOT_FAULTS_FULL=1)" if FULL else "reduced; PYIOT_FAULTS_FULL=1 for full"
        terminalreporter.section(f"fault figures, {mode}")
        for line in _FIGURES:
            terminalreporter.write_line(line)


# ------------------------------------------------------------------------------- local stack
@pytest.fixture
def own_stack(mosquitto_path: str, tmp_path: Path) -> Iterator[LocalStack]:
    """A broker and shadow service of this test's own (it may restart or kill them)."""
    with LocalStack(port=None, data_dir=tmp_path / "stack") as running:
        yield running


@pytest.fixture
def flood_stack(own_stack: LocalStack) -> LocalStack:
    """`own_stack` without AWS's 20 requests a second per thing and 100 publishes a second
    per connection: for a test whose application floods one thing on purpose (on AWS it
    would be throttled with 429, and publishes beyond 100 a second discarded)."""
    own_stack.lift_rate_limits()
    return own_stack


class GatewayRun:
    """A Gateway for `program` on `stack`, and an application watching each thing's shadow."""

    def __init__(self, stack: LocalStack, program: Program, endpoints: dict[str, str]):
        self.stack = stack
        self.program = program
        self.endpoints = endpoints
        self.gateway: Gateway | None = None
        self.apps: dict[str, App] = {}
        self._connections: list[ShadowConnection] = []

    async def _connect(self) -> ShadowConnection:
        connection = ShadowConnection(BrokerAddress(self.stack.host, self.stack.port))
        await connection.connect()
        self._connections.append(connection)
        return connection

    async def __aenter__(self) -> GatewayRun:
        try:
            app_connection = await self._connect()
            for name in self.program.model.things:
                self.apps[name] = App(app_connection, name)
                await self.apps[name].watch()
            self.gateway = Gateway([self.program], await self._connect(), self.endpoints)
            await self.gateway.start()
        except BaseException:
            await self.__aexit__()  # `async with` does not when entering fails
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        for connection in reversed(self._connections):
            await connection.close()


# ------------------------------------------------------------------------------------- log
class LogLines(logging.Handler):
    """Every pyiot log record of WARNING and above, as `logger: message`."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@pytest.fixture
def pyiot_log() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("pyiot")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# ------------------------------------------------------------------------------- resources
def open_fds() -> list[str]:
    """What this process's file descriptors point at (sockets, ptys, pipes, files)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue  # the listing's own descriptor, closed meanwhile
    return sorted(found)


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def task_names() -> list[str]:
    """The loop's tasks other than the one asking."""
    current = asyncio.current_task()
    return sorted(task.get_name() for task in asyncio.all_tasks() if task is not current)

