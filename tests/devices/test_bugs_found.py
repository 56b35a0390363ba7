"""The "Bugs found" entries of docs/devices.md, each checked against what `pyiot run` builds.

`pyiot run` builds a `Gateway`: a port that several components use must be opened once and
shared (six Monoprice zones on one serial line, the E36312A's three outputs on one socket),
and each engine must carry its device's modes. The other entries are proved end to end:
modes under `pyiot run` by tests/e2e/test_modes.py, `socket://` for `tcp` components under
`--simulate` by tests/e2e/test_simulate_all.py.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program
from pyiot.runtime.broker import BrokerAddress
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.shadow_client import ShadowConnection
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def _unconnected() -> ShadowConnection:
    """A shadow connection never connected: these tests stop at the device side."""
    return ShadowConnection(BrokerAddress.parse("mqtt://127.0.0.1:1"))


@pytest.mark.parametrize(
    ("name", "port", "components"),
    [
        ("monoprice_mpr6zhmaut", "amp", 6),
        ("keysight_e36300", "supply", 3),
    ],
)
def test_the_gateway_opens_a_shared_port_once(name: str, port: str, components: int) -> None:
    async def scenario() -> None:
        model = device_file(name)
        simulated = simulator_for(model)
        url = await simulated.serve_tcp()
        # As `pyiot run --simulate` points the port at the simulator (`--device PORT=URL`).
        gateway = Gateway(Program.from_model(model), _unconnected(), {port: url})
        assert len(gateway.engines) == components
        try:
            for engine in gateway.engines.values():
                await engine.start()
            await eventually(lambda: all(e.status.online for e in gateway.engines.values()))
            assert len(simulated._writers) == 1  # one connection for every component
        finally:
            for engine in gateway.engines.values():
                await engine.stop()
            await simulated.close()

    asyncio.run(scenario())


def test_the_gateway_gives_each_engine_its_devices_modes() -> None:
    model = device_file("epson_escvp21")
    gateway = Gateway(Program.from_model(model), _unconnected())
    (engine,) = gateway.engines.values()
    assert engine.modes is not None and engine.modes.state == "standby"
