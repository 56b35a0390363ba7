"""A compiled driver is the `.iot` file: for every file in devices/, the same bytes on the wire,
the same values and the same modes, run once from the file and once from `pyiot compile -o`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pyiot.compiler import Program, compile_file
from pyiot.compiler.codegen import driver_source
from pyiot.lang.model import Property
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)

DEVICES = Path(__file__).resolve().parents[2] / "devices"
NAMES = sorted(p.stem for p in DEVICES.glob("*.iot"))

# A set that waits for a mode (a projector's 40 s warm-up) is given this long, in both runs.
HELD = 0.5


def _a_value(prop: Property) -> Any:
    """A value the property's type takes: what the script sets it to."""
    kind = prop.type.kind
    if kind == "bool":
        return True
    if kind == "enum":
        return list(prop.type.choices)[-1]
    if kind == "string":
        return "pyiot"
    low = prop.type.minimum if prop.type.minimum is not None else 0
    return int(low) if kind == "int" else float(low)


async def _script(program: Program, driver: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the first component of the file against its simulator; what was seen.

    With a driver module's namespace, its device class builds the engine.
    """
    model = program.model
    thing = next(iter(model.things.values()))
    component = next(iter(thing.components.values()))
    device = model.devices[component.device]
    port = simulator_for(model, component.name)
    received: list[str] = []
    respond = port.respond

    def recording(line: str) -> bytes:
        received.append(line)
        return respond(line)

    port.respond = recording  # type: ignore[method-assign]
    url = await port.serve_tcp()
    link = open_link("tcp", url.removeprefix("socket://"))
    if driver is None:
        engine = ComponentEngine(
            EngineConfig(
                component.name,
                device,
                program.machines[device.name],
                args=component.args,
                modes=program.modes.get(device.name),
            ),
            link,
        )
    else:
        (device_class,) = [
            v for v in driver.values() if getattr(v, "device", None) is device
        ]
        engine = device_class.engine(component.name, link, component.args)
    values: list[tuple[str, Any]] = []
    modes: list[str] = []
    outcomes: list[tuple[str, str]] = []
    engine.value_listeners.append(lambda c, p, v: values.append((p, v)))
    if engine.modes is not None:
        engine.modes.listeners.append(lambda c, m: modes.append(m))
    await engine.start()
    try:
        await eventually(lambda: engine.status.online and engine.state == "idle")
        # The first refresh after connecting: every read answered or given up.
        await eventually(lambda: engine.state == "idle" and not engine._polls)
        for prop in device.properties.values():
            if not prop.writable:
                continue
            try:
                result = await asyncio.wait_for(engine.set(prop.name, _a_value(prop)), HELD)
                outcomes.append((prop.name, repr(result)))
            except (DeviceError, ValueError) as err:
                outcomes.append((prop.name, type(err).__name__))
            except asyncio.TimeoutError:
                outcomes.append((prop.name, "held"))
            await eventually(lambda: engine.state in ("idle", "offline"))
    finally:
        await engine.stop()
        await port.close()
    return {"sent": received, "values": values, "modes": modes, "outcomes": outcomes}


@pytest.mark.parametrize("name", NAMES)
def test_driver_and_file_say_the_same(name: str, tmp_path: Path) -> None:
    source = DEVICES / f"{name}.iot"
    driver = tmp_path / f"{name}_driver.py"
    driver.write_text(driver_source(compile_file(source), driver.name), encoding="utf-8")
    from_file = asyncio.run(_script(compile_file(source)))
    namespace: dict[str, Any] = {}
    exec(compile(driver.read_text(encoding="utf-8"), str(driver), "exec"), namespace)
    from_driver = asyncio.run(_script(namespace["PROGRAM"], namespace))
    assert from_driver == from_file
    assert from_file["sent"], "the script reached the device"
