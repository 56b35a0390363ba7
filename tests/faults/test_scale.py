"""Many things on one connection: `pyiot run` serves each thing's shadow over one MQTT client.

Found by the scale benchmark (bench/scale.py), which therefore measures the components alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.local import LocalStack
from pyiot.sim import DeviceSimulator, PortSimulator
from tests.faults.conftest import RELAY, TIMEOUT, GatewayRun
from tests.shadow.conftest import desired, reported

pytestmark = TIMEOUT

THINGS = 20


@pytest.fixture
def unlimited_stack(mosquitto_path: str, tmp_path: Path) -> Iterator[LocalStack]:
    """A stack without AWS IoT's quotas: this test puts 20 things on ONE connection on purpose
    (the runtime's scale, not the pool's), ~60 subscriptions while starting, beyond AWS's 50;
    `pyiot run` spreads them (tests/runtime/test_pool.py checks that under the quotas)."""
    with LocalStack(port=None, data_dir=tmp_path / "stack", aws_limits=False) as running:
        yield running


def test_twenty_things_on_one_connection(unlimited_stack: LocalStack) -> None:
    own_stack = unlimited_stack
    source = RELAY + "".join(
        f'thing house{n} {{ component relay1: Relay on serial "/dev/null" }}\n'
        for n in range(THINGS)
    )
    program = Program.from_model(load(source, "houses.iot"))

    async def scenario() -> None:
        ports = [
            PortSimulator([DeviceSimulator("relay1", program.model.devices["Relay"])])
            for _ in range(THINGS)
        ]
        endpoints = {f"house{n}.relay1": await port.serve_tcp() for n, port in enumerate(ports)}
        try:
            async with GatewayRun(own_stack, program, endpoints) as run:
                last = run.apps[f"house{THINGS - 1}"]
                await last.set(relayState=True)
                await last.until(
                    lambda s: reported(s).get("relayState") is True and not desired(s), 5
                )
        finally:
            for port in ports:
                await port.close()

    asyncio.run(scenario())
