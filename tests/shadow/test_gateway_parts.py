"""What the Gateway wires for the real device files: six zones on one shared port with nested
shadow names (Monoprice), device modes that refuse a command (Epson), and Python hooks that
only run when allowed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pyiot.compiler import Program, compile_file
from pyiot.lang import load
from pyiot.local import LocalStack
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.hooks import PythonNotAllowed
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection
from pyiot.sim import simulator_for
from tests.shadow.conftest import App, desired, reported, status

pytestmark = pytest.mark.timeout(60)

DEVICES = Path(__file__).resolve().parents[2] / "devices"
ZONES = ("kitchen", "dining", "living", "patio", "master", "office")


async def run_gateway(stack: LocalStack, program: Program, thing: str, scenario) -> Any:
    """Serve the thing's ports from the simulator, run a Gateway, hand an App to `scenario`."""
    model = program.model
    sims, endpoints = [], {}
    for component in model.things[thing].components:
        if any(component in sim.sims for sim in sims):
            continue
        sim = simulator_for(model, component)
        url = await sim.serve_tcp()
        sims.append(sim)
        endpoints.update({f"{thing}.{name}": url for name in sim.sims})
    broker = BrokerAddress(stack.host, stack.port)
    app_connection = ShadowConnection(broker)
    await app_connection.connect()
    app = App(app_connection, thing)
    await app.watch()
    connection = ShadowConnection(broker)
    await connection.connect()
    gateway = Gateway(program, connection, endpoints)
    await gateway.start()
    try:
        return await scenario(app, sims)
    finally:
        await gateway.stop()
        await connection.close()
        await app_connection.close()
        for sim in sims:
            await sim.close()


def test_six_zones_share_one_port_and_nest_in_the_shadow(stack: LocalStack) -> None:
    program = compile_file(DEVICES / "monoprice_mpr6zhmaut.iot")

    async def scenario(app: App, sims: list) -> tuple[dict, int]:
        (port,) = sims
        state = await app.until(lambda s: all("volume" in reported(s).get(z, {}) for z in ZONES))
        connections = len(port._writers)
        assert "volume" not in reported(state)  # nested, not flat
        await app.set(patio={"volume": 20, "bogus": 1}, volume=3)
        state = await app.until(
            lambda s: (
                reported(s)["patio"]["volume"] == 20
                and len(status(s).get("rejected", {})) == 2
                and not desired(s)
            )
        )
        assert port.sims["patio"].values["volume"] == 20
        assert port.sims["kitchen"].values["volume"] != 20
        return state, connections

    state, connections = asyncio.run(run_gateway(stack, program, "wholeHouse", scenario))
    assert connections == 1  # the six zones opened the port once
    rejected = status(state)["rejected"]
    assert rejected["patio.bogus"]["reason"].startswith("unknown property (known: dining.balance")
    assert rejected["patio.bogus"]["reason"].endswith("and 48 more)")
    assert set(rejected) == {"patio.bogus", "volume"}


def test_device_modes_refuse_visibly(stack: LocalStack) -> None:
    """The Epson takes no source while its lamp is off: a rejection, not a silent drop."""
    program = compile_file(DEVICES / "epson_escvp21.iot")

    async def scenario(app: App, sims: list) -> dict:
        await app.until(
            lambda s: status(s).get("components", {}).get("projector", {}).get("online")
        )
        await app.set(source="hdmi2")
        return await app.until(lambda s: "source" in status(s).get("rejected", {}))

    state = asyncio.run(run_gateway(stack, program, "theatre", scenario))
    assert "the lamp is off" in status(state)["rejected"]["source"]["reason"]


def test_python_hooks_need_permission(stack: LocalStack) -> None:
    source = (DEVICES / "relay.iot").read_text()
    hooked = source.replace(
        'set   "RELAY{value}"', 'set   "RELAY{value}"\n        python decode "builtins:str"'
    )
    program = Program.from_model(load(hooked, "hooked.iot"))

    async def build(allow: bool) -> Gateway:
        return Gateway(
            program, ShadowConnection(BrokerAddress(stack.host, stack.port)), allow_python=allow
        )

    with pytest.raises(PythonNotAllowed, match="--allow-python"):
        asyncio.run(build(False))
    assert asyncio.run(build(True)).engines["relayOne.relay1"] is not None
